//! firebreak's watcher against a real Prometheus, side by side, on the same
//! simulated targets and the same alerting rules: per-cycle scrape and rule
//! evaluation time, CPU seconds and peak memory, for 10k/100k/1M series and
//! 100/1,000 rules. Each system runs alone in its own process (this binary
//! re-executed in a child mode), one after the other, so they never share
//! the cores and their CPU and memory are read per process.
//!
//! Run with `cargo bench --bench watcher_vs_prometheus`. Environment:
//! `FB_BENCH_SERIES=10000,100000` `FB_BENCH_RULES=100,1000`
//! `FB_BENCH_CYCLES=6` (measured) `FB_BENCH_WARMUP=2` `FB_BENCH_INTERVAL=10s`
//! `FB_BENCH_TARGETS=10`. The table also goes to
//! `$CARGO_TARGET_DIR/watcher_vs_prometheus.md` (or `target/`).
//!
//! Definitions, the same for both systems:
//! - scrape time per cycle: the sum over targets of fetch + parse + append.
//!   Prometheus's `scrape_duration_seconds` is reported after the append,
//!   so it covers the same steps; firebreak's is the scrape task's
//!   `duration_ms` (fetch + parse, whole milliseconds) plus the time of
//!   `Watcher::ingest`.
//! - evaluation time per cycle: the sum over rule groups of one
//!   evaluation (Prometheus: `prometheus_rule_group_last_duration_seconds`,
//!   read from its `/metrics` once per cycle). These are wall times.
//!   Prometheus runs its groups (and its scrapes) concurrently, so on a
//!   machine with fewer cores than groups each group's time includes
//!   waiting for a core and the sum can exceed the CPU time the process
//!   used; firebreak evaluates its groups one after another, so its sum is
//!   elapsed time. Compare the systems on CPU seconds, not on this column.
//! - CPU: user + system time of the process over the measured cycles.
//! - memory: `VmHWM` (peak resident set) at the end of the run.

use std::collections::HashMap;
#[path = "support/procfs.rs"]
mod procfs;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use firebreak::clock::{Clock, Millis};
use firebreak::config::ScrapeTarget;
use firebreak::duration::PromDuration;
use firebreak::labels::Labels;
use firebreak::rules::{RuleEngine, parse_rule_file_with};
use firebreak::tsdb::SeriesStore;
use firebreak::watcher::{Watcher, retention_for};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Series of one metric family on one target; with 10 targets each family
/// has about 1,000 series, so a rule selects a realistic slice.
const SERIES_PER_FAMILY_PER_TARGET: usize = 100;
const RULES_PER_GROUP: usize = 10;
/// The goals: firebreak's CPU and peak memory as fractions of Prometheus's.
const GOAL_RATIOS: (f64, f64) = (0.5, 0.25);

#[derive(Clone, Debug)]
struct Params {
    series: Vec<usize>,
    rules: Vec<usize>,
    warmup: usize,
    cycles: usize,
    interval: PromDuration,
    targets: usize,
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(|s| {
                let s = s.trim().replace('_', "");
                let (num, mult) = match s.strip_suffix(['k', 'K']) {
                    Some(n) => (n.to_owned(), 1_000),
                    None => match s.strip_suffix(['m', 'M']) {
                        Some(n) => (n.to_owned(), 1_000_000),
                        None => (s.clone(), 1),
                    },
                };
                num.parse::<usize>()
                    .unwrap_or_else(|_| panic!("{name}: {s:?} is not a number"))
                    * mult
            })
            .collect(),
        _ => default.to_vec(),
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: not a number")))
        .unwrap_or(default)
}

impl Params {
    fn from_env() -> Params {
        let interval = std::env::var("FB_BENCH_INTERVAL")
            .ok()
            .map(|v| PromDuration::parse(&v).expect("FB_BENCH_INTERVAL: a duration like 10s"))
            .unwrap_or(PromDuration::from_secs(10));
        let p = Params {
            series: env_list("FB_BENCH_SERIES", &[10_000, 100_000, 1_000_000]),
            rules: env_list("FB_BENCH_RULES", &[100, 1_000]),
            warmup: env_usize("FB_BENCH_WARMUP", 2),
            cycles: env_usize("FB_BENCH_CYCLES", 6).max(1),
            interval,
            targets: env_usize("FB_BENCH_TARGETS", 10).max(1),
        };
        for &n in &p.series {
            assert!(
                n % (p.targets * SERIES_PER_FAMILY_PER_TARGET) == 0 && n > 0,
                "series counts must be multiples of {}",
                p.targets * SERIES_PER_FAMILY_PER_TARGET
            );
        }
        p
    }

    fn interval_ms(&self) -> Millis {
        self.interval.as_millis() as Millis
    }
}

// ---------------------------------------------------------------------------
// Simulated targets

#[derive(Clone, Copy)]
enum Kind {
    Counter {
        rate: u64,
        base: u64,
    },
    Gauge {
        seed: u64,
    },
    /// One cumulative bucket: `num/den` of the observations.
    Bucket {
        rate: u64,
        num: u64,
        den: u64,
    },
    HistSum {
        rate: u64,
    },
    HistCount {
        rate: u64,
    },
}

/// A series whose labels are rendered once; only the value changes.
struct Line {
    prefix: String,
    kind: Kind,
}

impl Line {
    fn value(&self, t: u64, out: &mut String) {
        use std::fmt::Write as _;
        let _ = match self.kind {
            Kind::Counter { rate, base } => writeln!(out, "{}", base + rate * t),
            Kind::Gauge { seed } => {
                let v = (seed.wrapping_mul(7_919) + t.wrapping_mul(104_729)) % 10_000;
                writeln!(out, "{}", v as f64 / 10.0)
            }
            Kind::Bucket { rate, num, den } => writeln!(out, "{}", rate * t * num / den),
            Kind::HistSum { rate } => writeln!(out, "{}", (rate * t) as f64 * 0.093),
            Kind::HistCount { rate } => writeln!(out, "{}", rate * t),
        };
    }
}

const CODES: [&str; 4] = ["200", "404", "500", "503"];
const METHODS: [&str; 2] = ["GET", "POST"];
const LES: [&str; 8] = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "1", "+Inf"];

fn families(series: usize, targets: usize) -> usize {
    series / (targets * SERIES_PER_FAMILY_PER_TARGET)
}

/// The series of one target: family `f` is a counter, a gauge or a
/// histogram by `f % 3`, each with six labels of mixed cardinality.
fn target_lines(series: usize, targets: usize, t: usize) -> Vec<Line> {
    let mut lines = Vec::with_capacity(series / targets);
    for f in 0..families(series, targets) {
        let seed0 = (f * 1_000 + t * 100) as u64;
        match f % 3 {
            0 => {
                let name = format!("bench_f{f}_requests_total");
                for j in 0..SERIES_PER_FAMILY_PER_TARGET {
                    let header = if j == 0 {
                        format!("# HELP {name} Requests handled.\n# TYPE {name} counter\n")
                    } else {
                        String::new()
                    };
                    lines.push(Line {
                        prefix: format!(
                            "{header}{name}{{namespace=\"ns-{}\",pod=\"api-{t}-{j}\",zone=\"zone-{}\",handler=\"/v1/h{}\",code=\"{}\",method=\"{}\"}} ",
                            j % 8,
                            j % 3,
                            j % 10,
                            CODES[j % 4],
                            METHODS[j % 2]
                        ),
                        kind: Kind::Counter {
                            rate: 1 + (seed0 + j as u64) % 50,
                            base: (seed0 + j as u64) * 1_000,
                        },
                    });
                }
            }
            1 => {
                let name = format!("bench_f{f}_queue_depth");
                for j in 0..SERIES_PER_FAMILY_PER_TARGET {
                    let header = if j == 0 {
                        format!("# HELP {name} Items waiting.\n# TYPE {name} gauge\n")
                    } else {
                        String::new()
                    };
                    lines.push(Line {
                        prefix: format!(
                            "{header}{name}{{namespace=\"ns-{}\",pod=\"worker-{t}-{j}\",zone=\"zone-{}\",queue=\"q{}\",shard=\"{}\",tier=\"{}\"}} ",
                            j % 8,
                            j % 3,
                            j % 10,
                            j % 16,
                            ["gold", "silver"][j % 2]
                        ),
                        kind: Kind::Gauge {
                            seed: seed0 + j as u64,
                        },
                    });
                }
            }
            _ => {
                let name = format!("bench_f{f}_request_duration_seconds");
                let per_set = LES.len() + 2;
                for j in 0..SERIES_PER_FAMILY_PER_TARGET / per_set {
                    let rate = 1 + (seed0 + j as u64) % 20;
                    let labels = format!(
                        "namespace=\"ns-{}\",pod=\"api-{t}-{j}\",zone=\"zone-{}\",handler=\"/v1/h{j}\",method=\"{}\"",
                        j % 8,
                        j % 3,
                        METHODS[j % 2]
                    );
                    for (k, le) in LES.iter().enumerate() {
                        let header = if j == 0 && k == 0 {
                            format!("# HELP {name} Request latency.\n# TYPE {name} histogram\n")
                        } else {
                            String::new()
                        };
                        lines.push(Line {
                            prefix: format!("{header}{name}_bucket{{{labels},le=\"{le}\"}} "),
                            kind: Kind::Bucket {
                                rate,
                                num: k as u64 + 1,
                                den: LES.len() as u64,
                            },
                        });
                    }
                    lines.push(Line {
                        prefix: format!("{name}_sum{{{labels}}} "),
                        kind: Kind::HistSum { rate },
                    });
                    lines.push(Line {
                        prefix: format!("{name}_count{{{labels}}} "),
                        kind: Kind::HistCount { rate },
                    });
                }
            }
        }
    }
    lines
}

struct TargetData {
    lines: Vec<Line>,
    /// The body of the current time bucket: every scraper in one interval
    /// gets the same bytes, and the server renders each body only once.
    cache: tokio::sync::Mutex<Option<(i64, Bytes)>>,
}

struct Targets {
    count: usize,
    interval_ms: Millis,
    started_bucket: i64,
    sizes: Mutex<HashMap<usize, Arc<Vec<TargetData>>>>,
}

impl Targets {
    fn size(&self, series: usize) -> Arc<Vec<TargetData>> {
        let mut sizes = self.sizes.lock().unwrap();
        sizes
            .entry(series)
            .or_insert_with(|| {
                Arc::new(
                    (0..self.count)
                        .map(|t| TargetData {
                            lines: target_lines(series, self.count, t),
                            cache: tokio::sync::Mutex::new(None),
                        })
                        .collect(),
                )
            })
            .clone()
    }
}

async fn serve_metrics(
    State(targets): State<Arc<Targets>>,
    Path((series, t)): Path<(usize, usize)>,
) -> Result<([(axum::http::HeaderName, &'static str); 1], Bytes), axum::http::StatusCode> {
    if series == 0 || series % (targets.count * SERIES_PER_FAMILY_PER_TARGET) != 0 {
        return Err(axum::http::StatusCode::NOT_FOUND);
    }
    let size = targets.size(series);
    let target = size.get(t).ok_or(axum::http::StatusCode::NOT_FOUND)?;
    let bucket = Clock::system().now() / targets.interval_ms;
    let mut cache = target.cache.lock().await;
    let body = match &*cache {
        Some((b, body)) if *b == bucket => body.clone(),
        _ => {
            // Seconds since the server started, plus an offset, so
            // counters start non-zero and grow by `rate` per second.
            let secs = ((bucket - targets.started_bucket) * targets.interval_ms / 1000) as u64;
            let t = secs + 1_000;
            let mut out = String::with_capacity(target.lines.len() * 150);
            for line in &target.lines {
                out.push_str(&line.prefix);
                line.value(t, &mut out);
            }
            let body = Bytes::from(out);
            *cache = Some((bucket, body.clone()));
            body
        }
    };
    Ok((
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        body,
    ))
}

fn serve_targets(p: &Params) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let targets = Arc::new(Targets {
            count: p.targets,
            interval_ms: p.interval_ms(),
            started_bucket: Clock::system().now() / p.interval_ms(),
            sizes: Mutex::new(HashMap::new()),
        });
        let app = axum::Router::new()
            .route("/{series}/metrics/{target}", get(serve_metrics))
            .with_state(targets);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?);
        std::io::stdout().flush()?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}

fn target_path(series: usize, t: usize) -> String {
    format!("/{series}/metrics/{t}")
}

// ---------------------------------------------------------------------------
// Rules

/// `rules` alerting rules in groups of ten; rule `i` reads family
/// `i % families`. One rule in fifty has a threshold that holds, so some
/// alerts go pending and then firing and templates get rendered.
fn rule_file(series: usize, targets: usize, rules: usize, interval: PromDuration) -> String {
    let fams = families(series, targets);
    let mut out = String::from("groups:\n");
    for i in 0..rules {
        if i % RULES_PER_GROUP == 0 {
            out.push_str(&format!(
                "  - name: bench-{}\n    interval: {interval}\n    rules:\n",
                i / RULES_PER_GROUP
            ));
        }
        let f = i % fams;
        let fire = i % 50 == 0;
        let (expr, key) = match f % 3 {
            0 => (
                format!(
                    "sum by (namespace, code) (rate(bench_f{f}_requests_total[5m])) > {}",
                    if fire { "0" } else { "1e15" }
                ),
                "namespace",
            ),
            // Per-series alerts would make a firing rule a thousand
            // alerts, so firing gauge rules aggregate first.
            1 if i % 2 == 0 && !fire => (
                format!("avg_over_time(bench_f{f}_queue_depth[5m]) > 1e18"),
                "pod",
            ),
            1 => (
                format!(
                    "max by (zone) (bench_f{f}_queue_depth) {}",
                    if fire { "> -1" } else { "< -1" }
                ),
                "zone",
            ),
            _ => (
                format!(
                    "histogram_quantile(0.99, sum by (le, handler) (rate(bench_f{f}_request_duration_seconds_bucket[5m]))) > {}",
                    if fire { "0" } else { "1e9" }
                ),
                "handler",
            ),
        };
        let body = "      - alert: BenchRule@I\n        expr: @EXPR\n        for: 1m\n        labels:\n          severity: warning\n          scope: \"{{ $labels.@KEY }}\"\n        annotations:\n          summary: \"@KEY {{ $labels.@KEY }} is at {{ $value }}\"\n";
        out.push_str(
            &body
                .replace("@I", &i.to_string())
                .replace("@EXPR", &expr)
                .replace("@KEY", key),
        );
    }
    out
}

// ---------------------------------------------------------------------------
// firebreak child

struct FbConfig {
    addr: String,
    series: usize,
    rules_path: String,
}

fn run_firebreak_child(p: &Params, c: &FbConfig) -> anyhow::Result<()> {
    let tck = procfs::clock_ticks();
    let text = std::fs::read_to_string(&c.rules_path)?;
    let groups = parse_rule_file_with("bench.yml", &text, p.interval_ms())
        .map_err(|d| anyhow::anyhow!("rule file: {d}"))?
        .groups;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let stats = rt.block_on(async {
        let http = firebreak::net::client()?;
        let clock = Clock::system();
        let start = clock.now();
        let (tx, mut rx) = mpsc::channel(64);
        let shutdown = CancellationToken::new();
        for t in 0..p.targets {
            let target = ScrapeTarget {
                name: format!("t{t}"),
                url: reqwest::Url::parse(&format!(
                    "http://{}{}",
                    c.addr,
                    target_path(c.series, t)
                ))?,
                interval: p.interval,
                timeout: p.interval,
                labels: Labels::new(),
            };
            tokio::spawn(firebreak::source::scrape::run(
                target,
                http.clone(),
                clock.clone(),
                tx.clone(),
                shutdown.clone(),
            ));
        }
        drop(tx);
        let mut watcher = Watcher {
            series: SeriesStore::new(retention_for(&groups)),
            engine: RuleEngine::new(groups, Labels::new(), start),
            state: None,
            remote: None,
            pushed: None,
            reloads: None,
            sight: None,
            pending: None,
        };

        let interval = p.interval_ms();
        let total = p.warmup + p.cycles;
        let cycle_of = |at: Millis| (((at - start) / interval).max(0) as usize).min(total - 1);
        let measure_from = start + p.warmup as Millis * interval;
        let end = start + total as Millis * interval;
        let mut fetch_parse = vec![0.0f64; total];
        let mut ingest = vec![0.0f64; total];
        let mut batches = vec![0usize; total];
        let mut eval = vec![0.0f64; total];
        let mut gc = vec![0.0f64; total];
        let (mut scrape_errors, mut eval_errors, mut missed, mut events) = (0, 0, 0, 0);
        let mut first_error = String::new();
        let mut cpu_start = None;
        loop {
            let due = watcher.engine.next_due();
            let wake = due.min(if cpu_start.is_none() {
                measure_from
            } else {
                end
            });
            tokio::select! {
                b = rx.recv() => {
                    let Some(b) = b else { anyhow::bail!("scrape tasks ended") };
                    let k = cycle_of(b.at);
                    if let Err(e) = &b.result {
                        scrape_errors += 1;
                        if first_error.is_empty() {
                            first_error = format!("scrape {}: {e}", b.target);
                        }
                    }
                    fetch_parse[k] += b.duration_ms as f64 / 1000.0;
                    batches[k] += 1;
                    let t = Instant::now();
                    watcher.ingest(b);
                    ingest[k] += t.elapsed().as_secs_f64();
                }
                _ = clock.sleep_until(wake) => {
                    let now = clock.now();
                    if cpu_start.is_none() && now >= measure_from {
                        cpu_start = Some(procfs::cpu_secs("self", tck)?);
                    }
                    if now >= end {
                        // Batches already queued were scraped in the
                        // window; their ingest belongs to it too.
                        while let Ok(b) = rx.try_recv() {
                            let k = cycle_of(b.at);
                            fetch_parse[k] += b.duration_ms as f64 / 1000.0;
                            batches[k] += 1;
                            let t = Instant::now();
                            watcher.ingest(b);
                            ingest[k] += t.elapsed().as_secs_f64();
                        }
                        break;
                    }
                    if due <= now {
                        let k = cycle_of(due);
                        let t = Instant::now();
                        let outcome = watcher.evaluate(now).await;
                        eval[k] += t.elapsed().as_secs_f64();
                        let t = Instant::now();
                        watcher.series.maybe_gc(now);
                        gc[k] += t.elapsed().as_secs_f64();
                        missed += outcome.missed;
                        events += outcome.events.len();
                        eval_errors += outcome.errors.len();
                        if let Some(e) = outcome.errors.first()
                            && first_error.is_empty()
                        {
                            first_error = format!("rule {} in {}: {}", e.rule, e.group, e.message);
                        }
                    }
                }
            }
        }
        let cpu = procfs::cpu_secs("self", tck)? - cpu_start.unwrap_or(0.0);
        shutdown.cancel();
        let m = p.warmup..total;
        let scrape: Vec<f64> = m.clone().map(|k| fetch_parse[k] + ingest[k]).collect();
        anyhow::Ok(json!({
            "scrape_s": scrape,
            "fetch_parse_s": fetch_parse[m.clone()],
            "ingest_s": ingest[m.clone()],
            "eval_s": eval[m.clone()],
            "gc_s": gc[m.clone()],
            "batches": batches[m],
            "cpu_s": cpu,
            "hwm_kib": procfs::status_kib("self", "VmHWM")? as u64,
            "series": watcher.series.series_count(),
            "samples": watcher.series.sample_count(),
            "scrape_errors": scrape_errors,
            "eval_errors": eval_errors,
            "first_error": first_error,
            "missed": missed,
            "events": events,
        }))
    })?;
    println!("{stats}");
    Ok(())
}

// ---------------------------------------------------------------------------
// Parent

struct Stats {
    scrape: Vec<f64>,
    eval: Vec<f64>,
    cpu_s: f64,
    hwm_kib: u64,
    wall: Duration,
    note: String,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until wall-clock time `at` (milliseconds since the epoch).
async fn sleep_until(at: Millis) {
    Clock::system().sleep_until(at).await;
}

fn prometheus_yml(p: &Params, addr: &str, series: usize, rules_path: &str) -> String {
    let mut y = format!(
        "global:\n  scrape_interval: {i}\n  scrape_timeout: {i}\n  evaluation_interval: {i}\nrule_files:\n  - {rules_path}\nscrape_configs:\n",
        i = p.interval
    );
    for t in 0..p.targets {
        y.push_str(&format!(
            "  - job_name: t{t}\n    metrics_path: {}\n    static_configs:\n      - targets: ['{addr}']\n",
            target_path(series, t)
        ));
    }
    y
}

async fn prom_query(http: &reqwest::Client, base: &str, q: &str) -> anyhow::Result<Vec<Value>> {
    let v: Value = http
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await?
        .json()
        .await?;
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

fn prom_scalar(result: &[Value]) -> Option<f64> {
    result.first()?["value"][1].as_str()?.parse().ok()
}

/// Sums the samples of `name` in a Prometheus `/metrics` page.
async fn self_metric(http: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn run_prometheus(
    p: &Params,
    http: &reqwest::Client,
    addr: &str,
    series: usize,
    rules_path: &str,
    dir: &std::path::Path,
) -> anyhow::Result<Stats> {
    let tck = procfs::clock_ticks();
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, prometheus_yml(p, addr, series, rules_path))?;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join("prometheus.log"))?;
    let began = Instant::now();
    let mut child = KillOnDrop(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    let pid = child.0.id().to_string();
    let ready_by = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{base}/-/ready")).send().await
            && r.status().is_success()
        {
            break;
        }
        if let Some(status) = child.0.try_wait()? {
            anyhow::bail!(
                "prometheus exited ({status}); see {}",
                dir.join("prometheus.log").display()
            );
        }
        anyhow::ensure!(Instant::now() < ready_by, "prometheus not ready in 60s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let interval = p.interval_ms();
    let start = Clock::system().now();
    let window_start = start + p.warmup as Millis * interval;
    sleep_until(window_start).await;
    let cpu0 = procfs::cpu_secs(&pid, tck)?;
    let mut eval = Vec::with_capacity(p.cycles);
    for k in 1..=p.cycles {
        // Just before the cycle ends, so its groups have all run.
        sleep_until(window_start + k as Millis * interval - 50).await;
        eval.push(self_metric(http, &base, "prometheus_rule_group_last_duration_seconds").await?);
    }
    let window_end = window_start + p.cycles as Millis * interval;
    sleep_until(window_end).await;
    let cpu = procfs::cpu_secs(&pid, tck)? - cpu0;
    let hwm_kib = procfs::status_kib(&pid, "VmHWM")? as u64;

    let up = prom_query(http, &base, "up == 1").await?.len();
    let head = self_metric(http, &base, "prometheus_tsdb_head_series").await? as usize;
    let range: Value = http
        .get(format!("{base}/api/v1/query_range"))
        .query(&[
            ("query", "sum(scrape_duration_seconds)".to_owned()),
            (
                "start",
                format!("{:.3}", (window_start + interval) as f64 / 1e3),
            ),
            ("end", format!("{:.3}", window_end as f64 / 1e3)),
            ("step", format!("{:.3}", interval as f64 / 1e3)),
        ])
        .send()
        .await?
        .json()
        .await?;
    let scrape: Vec<f64> = range["data"]["result"][0]["values"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter_map(|v| v[1].as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let firing = prom_scalar(&prom_query(http, &base, "count(ALERTS)").await?).unwrap_or(0.0);
    let failed = self_metric(http, &base, "prometheus_rule_evaluation_failures_total").await?;

    // A graceful stop, as an operator would; killed if it hangs.
    let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
    let stop_by = Instant::now() + Duration::from_secs(30);
    while child.0.try_wait()?.is_none() && Instant::now() < stop_by {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = began.elapsed();

    anyhow::ensure!(
        up == p.targets,
        "prometheus: up == 1 for {up} of {} targets",
        p.targets
    );
    anyhow::ensure!(
        head >= series && head <= series + series / 20 + 1_000,
        "prometheus: {head} head series, expected about {series}"
    );
    anyhow::ensure!(
        failed == 0.0,
        "prometheus: {failed} rule evaluation failures"
    );
    anyhow::ensure!(
        scrape.len() == p.cycles,
        "prometheus: {} scrape-duration points for {} cycles",
        scrape.len(),
        p.cycles
    );
    Ok(Stats {
        scrape,
        eval,
        cpu_s: cpu,
        hwm_kib,
        wall,
        note: format!("{head} head series, {firing} alert series"),
    })
}

fn run_firebreak(p: &Params, addr: &str, series: usize, rules_path: &str) -> anyhow::Result<Stats> {
    let began = Instant::now();
    let out = Command::new(std::env::current_exe()?)
        .env("FB_BENCH_CHILD", "firebreak")
        .env("FB_BENCH_ADDR", addr)
        .env("FB_BENCH_N", series.to_string())
        .env("FB_BENCH_RULE_FILE", rules_path)
        .stderr(Stdio::inherit())
        .output()?;
    let wall = began.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "firebreak child failed: {}",
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .ok_or_else(|| anyhow::anyhow!("firebreak child printed no stats"))?;
    let v: Value = serde_json::from_str(line)?;
    let floats = |k: &str| -> Vec<f64> {
        v[k].as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let n = |k: &str| v[k].as_u64().unwrap_or(0);
    let count = n("series") as usize;
    anyhow::ensure!(
        n("scrape_errors") == 0,
        "firebreak: {} failed scrapes, first: {}",
        n("scrape_errors"),
        v["first_error"]
    );
    anyhow::ensure!(
        n("eval_errors") == 0,
        "firebreak: {} rule evaluation errors, first: {}",
        n("eval_errors"),
        v["first_error"]
    );
    anyhow::ensure!(
        count >= series && count <= series + series / 20 + 1_000,
        "firebreak: {count} series in the store, expected about {series}"
    );
    // A slow evaluation delays the scrape loops, so the last cycle may
    // come up short; any earlier gap means the scrapes really failed.
    let batches = floats("batches");
    let (last, earlier) = batches.split_last().unwrap_or((&0.0, &[]));
    anyhow::ensure!(
        earlier.iter().all(|&b| b as usize == p.targets) && *last >= 1.0,
        "firebreak: scrapes per measured cycle {batches:?}, expected {} each",
        p.targets
    );
    let behind = if (*last as usize) < p.targets {
        format!(
            " FELL BEHIND: {last} of {} scrapes in the last cycle;",
            p.targets
        )
    } else {
        String::new()
    };
    let (fp, ing, gc) = (
        mean(&floats("fetch_parse_s")),
        mean(&floats("ingest_s")),
        mean(&floats("gc_s")),
    );
    Ok(Stats {
        scrape: floats("scrape_s"),
        eval: floats("eval_s"),
        cpu_s: v["cpu_s"].as_f64().unwrap_or(0.0),
        hwm_kib: n("hwm_kib"),
        wall,
        note: format!(
            "{count} series, {} samples;{behind} per cycle fetch+parse {:.1} ms, ingest {:.1} ms, gc {:.1} ms; {} alert events, {} missed evals",
            n("samples"),
            fp * 1e3,
            ing * 1e3,
            gc * 1e3,
            n("events"),
            n("missed")
        ),
    })
}

struct Row {
    series: usize,
    rules: usize,
    prom: Option<Result<Stats, String>>,
    fb: Result<Stats, String>,
}

fn human(n: usize) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

fn cells(system: &str, s: &Result<Stats, String>) -> Vec<String> {
    match s {
        Ok(s) => vec![
            system.to_owned(),
            format!("{:.1}", mean(&s.scrape) * 1e3),
            format!("{:.1}", max(&s.scrape) * 1e3),
            format!("{:.1}", mean(&s.eval) * 1e3),
            format!("{:.1}", max(&s.eval) * 1e3),
            format!("{:.2}", s.cpu_s),
            format!("{:.0}", s.hwm_kib as f64 / 1024.0),
        ],
        Err(e) => {
            let mut v = vec![system.to_owned(), format!("failed: {e}")];
            v.resize(7, String::new());
            v
        }
    }
}

fn table(rows: &[Row]) -> (Vec<String>, Vec<Vec<String>>) {
    let header = [
        "series",
        "rules",
        "system",
        "scrape ms/cycle mean",
        "scrape max",
        "eval ms/cycle mean",
        "eval max",
        "CPU s",
        "peak RSS MiB",
        "CPU fb/prom (target ≤0.5)",
        "mem fb/prom (target ≤0.25)",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut out = Vec::new();
    for r in rows {
        let lead = vec![human(r.series), r.rules.to_string()];
        if let Some(prom) = &r.prom {
            let mut row = lead.clone();
            row.extend(cells("Prometheus", prom));
            row.extend([String::new(), String::new()]);
            out.push(row);
        }
        let mut row = lead;
        row.extend(cells("firebreak", &r.fb));
        let (cpu, mem) = match (&r.prom, &r.fb) {
            (Some(Ok(pr)), Ok(fb)) => {
                let c = fb.cpu_s / pr.cpu_s.max(1e-9);
                let m = fb.hwm_kib as f64 / pr.hwm_kib.max(1) as f64;
                let mark = |ok: bool| if ok { "✓" } else { "✗" };
                (
                    format!("{c:.2}× {}", mark(c <= GOAL_RATIOS.0)),
                    format!("{m:.2}× {}", mark(m <= GOAL_RATIOS.1)),
                )
            }
            _ => ("n/a".to_owned(), "n/a".to_owned()),
        };
        row.extend([cpu, mem]);
        out.push(row);
    }
    (header, out)
}

fn markdown(header: &[String], rows: &[Vec<String>], p: &Params) -> String {
    let mut s = format!(
        "Scrape and evaluation interval {}, {} targets, {} measured cycles after {} warm-up cycles. \
         Scrape time: sum over targets of fetch + parse + append per cycle. \
         Evaluation time: sum over rule groups per cycle of each group's wall time; Prometheus runs groups \
         and scrapes concurrently, so its sums include time spent waiting for a core and can exceed its CPU \
         time (compare CPU s). CPU: user + system over the measured cycles. \
         Memory: peak RSS (VmHWM).\n\n",
        p.interval, p.targets, p.cycles, p.warmup
    );
    s.push_str(&format!("| {} |\n", header.join(" | ")));
    s.push_str(&format!(
        "|{}|\n",
        header
            .iter()
            .enumerate()
            .map(|(i, _)| if i < 3 { "---" } else { "---:" })
            .collect::<Vec<_>>()
            .join("|")
    ));
    for r in rows {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    s
}

fn plain(header: &[String], rows: &[Vec<String>]) -> String {
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |r: &[String]| {
        r.iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut s = line(header);
    s.push('\n');
    for r in rows {
        s.push_str(&line(r));
        s.push('\n');
    }
    s
}

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(cmd).is_file()))
}

fn parent(p: &Params) -> anyhow::Result<()> {
    let have_prometheus = on_path("prometheus");
    if !have_prometheus {
        println!("prometheus is not on PATH: running firebreak alone, with no comparison");
    }
    let mut server = KillOnDrop(
        Command::new(std::env::current_exe()?)
            .env("FB_BENCH_CHILD", "serve-targets")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?,
    );
    let mut first = String::new();
    BufReader::new(server.0.stdout.take().expect("piped stdout")).read_line(&mut first)?;
    let addr = first.trim().to_owned();
    anyhow::ensure!(!addr.is_empty(), "the targets server printed no address");
    println!(
        "targets on {addr}; interval {}, {} targets, {} warm-up + {} measured cycles",
        p.interval, p.targets, p.warmup, p.cycles
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let http = firebreak::net::client()?;
    let mut rows = Vec::new();
    for &series in &p.series {
        // Builds the server's series up front (seconds at 1M) and checks
        // every target answers before either system starts.
        let t = Instant::now();
        let mut bytes = 0;
        for target in 0..p.targets {
            let body = rt.block_on(async {
                http.get(format!("http://{addr}{}", target_path(series, target)))
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await
            })?;
            bytes += body.len();
        }
        println!(
            "\n{} series: {:.1} MB per scrape round, served in {:.1}s",
            human(series),
            bytes as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
        for &rules in &p.rules {
            let dir = tempfile::tempdir()?;
            let rules_path = dir.path().join("rules.yml");
            std::fs::write(&rules_path, rule_file(series, p.targets, rules, p.interval))?;
            let rules_path = rules_path.display().to_string();
            let prom = have_prometheus.then(|| {
                println!("  {} series, {rules} rules: Prometheus…", human(series));
                let r = rt
                    .block_on(run_prometheus(
                        p,
                        &http,
                        &addr,
                        series,
                        &rules_path,
                        dir.path(),
                    ))
                    .map_err(|e| e.to_string());
                report("Prometheus", &r);
                r
            });
            println!("  {} series, {rules} rules: firebreak…", human(series));
            let fb = run_firebreak(p, &addr, series, &rules_path).map_err(|e| e.to_string());
            report("firebreak", &fb);
            rows.push(Row {
                series,
                rules,
                prom,
                fb,
            });
        }
    }

    let (header, body) = table(&rows);
    println!("\n{}", plain(&header, &body));
    let md = markdown(&header, &body, p);
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "target".into());
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("watcher_vs_prometheus.md");
    std::fs::write(&path, md)?;
    println!("Markdown table written to {}", path.display());
    Ok(())
}

fn report(system: &str, r: &Result<Stats, String>) {
    match r {
        Ok(s) => println!(
            "    {system}: {:.0}s wall; scrape {:.1}/{:.1} ms, eval {:.1}/{:.1} ms (mean/max), CPU {:.2}s, peak {:.0} MiB; {}",
            s.wall.as_secs_f64(),
            mean(&s.scrape) * 1e3,
            max(&s.scrape) * 1e3,
            mean(&s.eval) * 1e3,
            max(&s.eval) * 1e3,
            s.cpu_s,
            s.hwm_kib as f64 / 1024.0,
            s.note
        ),
        Err(e) => println!("    {system}: FAILED, not reported: {e}"),
    }
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; everything else comes from the
    // environment, which the child processes inherit.
    let p = Params::from_env();
    match std::env::var("FB_BENCH_CHILD").as_deref() {
        Ok("serve-targets") => serve_targets(&p),
        Ok("firebreak") => {
            let var = |k: &str| std::env::var(k).map_err(|_| anyhow::anyhow!("{k} not set"));
            let c = FbConfig {
                addr: var("FB_BENCH_ADDR")?,
                series: var("FB_BENCH_N")?.parse()?,
                rules_path: var("FB_BENCH_RULE_FILE")?,
            };
            run_firebreak_child(&p, &c)
        }
        Ok(other) => anyhow::bail!("unknown FB_BENCH_CHILD {other:?}"),
        Err(_) => parent(&p),
    }
}
