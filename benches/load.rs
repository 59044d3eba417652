//! Load: the bot as `firebreak run` in its own process, taking a storm of
//! pushed alerts while someone types chat commands and Slack rate-limits
//! it. What the issue asks for, measured end to end:
//!
//! - **alerts lost** (must be 0): `FB_BENCH_ALERTS` (10,000) distinct
//!   alerts go to `POST /api/v2/alerts` as Prometheus's notifier sends
//!   them, in batches of `FB_BENCH_BATCH` (100) every
//!   `FB_BENCH_INTERVAL_MS` (100 ms), so 10 seconds. Batches are sent open
//!   loop: each leaves at its time whether or not earlier ones have been
//!   answered, so a slow bot faces the whole offered rate. A batch answered
//!   429, 5xx or not at all (10 s timeout, Prometheus's default) is sent
//!   again after its `Retry-After` (1 s without one, at most 5 s), as
//!   Alertmanager's clients do, until it is taken or the settle window
//!   closes; any other 4xx is not retried. Then the bench asks the bot
//!   itself, `GET /api/v1/alerts`, until every alert it answered 2xx for
//!   is listed as firing or `FB_BENCH_SETTLE_SECS` (120) have passed since
//!   the push ended. Lost = pushed − distinct bench alerts listed. Asking
//!   is not free (a listing of 10,000 takes the bot a quarter of a second,
//!   a /metrics read counts its outbox), so the bench reads /metrics once
//!   a second and lists only once the watcher's
//!   `firebreak_alert_transitions_total{kind="firing"}` has reached the
//!   number taken, then once a second.
//! - **chat messages**: what the fake Slack Web API (`tests/it/fake_slack`,
//!   on loopback) holds once the bot's outbox is empty
//!   (`firebreak_outbox_depth` 0 twice in a row): top-level posts, thread
//!   replies, `chat.update`s, and the Web API calls by method and status.
//!   The fake answers 429 with `Retry-After: 1` to about every
//!   `FB_BENCH_429_EVERY`th (4th) `chat.postMessage` and `chat.update`
//!   for the whole run (0 turns that off). After the bot has stopped, the
//!   messages its outbox set aside (refused by Slack, or unreadable) are
//!   read from its store: each is a message nobody saw.
//! - **command latency**: `FB_BENCH_CMD_RATE` (5) slash commands a second,
//!   from the first push until the bot lists every alert (at least for the
//!   push's 10 s): `status`, `alerts`, `timeline`, `help` and, every
//!   tenth, `ack` of an incident. Each is signed as Slack signs and sent
//!   to the bot's `/slack/commands`, open loop. The latency is what the
//!   person waits for: from sending the request until the answer is in
//!   hand, either the acknowledgement's body or, when the bot acknowledged
//!   with "working on …", the answer it later posts to the request's
//!   `response_url` (served by this bench and stamped on arrival). A
//!   command refused as busy, failed, or unanswered after 30 s counts as
//!   infinitely slow. Reported as p50/p99/max overall, per phase (during
//!   the push, then while the bot catches up) and per command; the target
//!   is p99 under 200 ms. Replies longer than Slack's 40,000 characters
//!   are counted.
//! - **the web console**: `FB_BENCH_PAGE_RATE` (2) console pages a
//!   second over the same span, open loop, as someone watching the night
//!   would open them: `/`, `/alerts`, `/incidents`, an incident's page,
//!   `/runs`, `/runs` filtered by state and incident, `/checklists`, with
//!   the API's bearer token (the console's rule without
//!   sign-in). The latency is until the whole page is in hand; a page not
//!   answered 200 within 10 s counts as infinitely slow. Reported as
//!   p50/p99/max overall and per page, with the most table rows any one
//!   page held: the storm's 10,000 alerts must come a page at a time. The
//!   target is p99 under 1 s, and no page over 500 rows.
//! - **CPU and memory**: the bot's utime+stime from `/proc/PID/stat` (in
//!   `getconf CLK_TCK` ticks) over the push and over the whole run (push,
//!   catch-up, chat drain), in seconds and as % of one core, and the same
//!   per thread name from `/proc/PID/task/*/stat` (async workers apart
//!   from SQLite's threads). Peak memory is `VmHWM` from
//!   `/proc/PID/status` just before the bot is stopped. Wall times come
//!   from this process's monotonic clock.
//! - the bot's own `/metrics` at the end (pushed alerts received, firing
//!   alerts, chat sent and send errors, outbox depth, commands, runs, mean
//!   server time of the API routes), and its warning and error log lines
//!   counted by message.
//!
//! The bot gets a generated config in a temporary directory: its own
//! SQLite store, the HTTP server on a free loopback port with a bearer
//! token on `/api/`, Slack pointed at the fake with a signing secret, no
//! rules (alerts only arrive pushed, as with Prometheus as the one
//! decider), and one chat-only runbook that answers the first of the
//! four alert names, one run per event. Alerts are grouped by `event` into
//! `FB_BENCH_EVENTS` (3) incidents; they differ in the label
//! `FB_BENCH_SPREAD_LABEL` (`instance`, which the bot's cards and notes
//! leave out; `room`, for one, makes every alert a line of its card).
//! They carry no value, as Prometheus sends them by default;
//! `FB_BENCH_VALUE=1` adds a `value` annotation to each, as the README
//! suggests a rule do.
//!
//! Run: `cargo bench --bench load`. Cargo builds the `firebreak` binary
//! for a bench (release profile) and this runs that one; `FB_BENCH_BIN`
//! runs another. Linux only (`/proc`). `FB_BENCH_KEEP=1` keeps the
//! temporary directory (config, store, the bot's JSON log) and prints
//! where. After the report the bench exits 1 when an alert is lost, the
//! p99 command latency is not under 200 ms, a chat message was set aside
//! or the bot did not stop cleanly.

#[path = "../tests/it/fake_slack/mod.rs"]
mod fake_slack;
#[path = "support/procfs.rs"]
mod procfs;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use fake_slack::{FakeSlack, Fault};
use serde_json::{Value as Json, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// The issue's target for command latency.
const P99_TARGET_MS: f64 = 200.0;
/// A console page answered within this, 99 times in 100, under the storm.
const PAGE_P99_TARGET_MS: f64 = 1000.0;
/// More table rows than this on one page is a list drawn whole.
const PAGE_ROWS_MAX: usize = 500;
/// The console pages the bench reads, in turn.
const PAGES: [&str; 7] = [
    "/",
    "/alerts",
    "/incidents",
    "/incidents/event-0",
    "/runs",
    "/runs?state=succeeded&incident=event-0",
    "/checklists",
];
/// The person typing commands; a responder, so `ack` is allowed.
const USER: &str = "U0BENCH0001";
/// Every pushed alert carries it, so only the bench's alerts are counted.
const JOB: &str = "bench-edge";
const API_TOKEN: &str = "bench-api-token-0123456789";
/// Four kinds of alert; the runbook answers the first.
const NAMES: [&str; 4] = [
    "EdgeErrorRate",
    "EdgeLatencyHigh",
    "ListenerJoinFailures",
    "StreamStall",
];
/// Prometheus's default timeout towards an Alertmanager.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// A late answer to a command that took longer than this is not waited for.
const ANSWER_WAIT: Duration = Duration::from_secs(30);
const RATE_LIMITED: [&str; 2] = ["chat.postMessage", "chat.update"];

struct Knobs {
    alerts: usize,
    batch: usize,
    interval: Duration,
    cmd_rate: f64,
    page_rate: f64,
    every_429: usize,
    events: usize,
    settle: Duration,
    keep: bool,
    bin: Option<PathBuf>,
    /// The label whose value tells the alerts apart.
    spread: String,
    /// Whether alerts carry a `value` annotation (see the README's HTTP
    /// API section); Prometheus sends none unless the rule adds it.
    value: bool,
}

/// A knob that is set but unreadable is an error: a typo must not run
/// the defaults and pass for the measurement asked for.
fn knob<T: std::str::FromStr>(name: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(name) {
        Ok(s) => s
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{name}={s:?} is not a valid value")),
        Err(_) => Ok(default),
    }
}

impl Knobs {
    fn from_env() -> anyhow::Result<Knobs> {
        let k = Knobs {
            alerts: knob("FB_BENCH_ALERTS", 10_000)?,
            batch: knob("FB_BENCH_BATCH", 100)?,
            interval: Duration::from_millis(knob("FB_BENCH_INTERVAL_MS", 100)?),
            cmd_rate: knob("FB_BENCH_CMD_RATE", 5.0)?,
            page_rate: knob("FB_BENCH_PAGE_RATE", 2.0)?,
            every_429: knob("FB_BENCH_429_EVERY", 4)?,
            events: knob("FB_BENCH_EVENTS", 3)?,
            settle: Duration::from_secs(knob("FB_BENCH_SETTLE_SECS", 120)?),
            keep: knob("FB_BENCH_KEEP", 0u8)? != 0,
            bin: std::env::var_os("FB_BENCH_BIN").map(PathBuf::from),
            spread: knob("FB_BENCH_SPREAD_LABEL", "instance".to_owned())?,
            value: knob("FB_BENCH_VALUE", 0u8)? != 0,
        };
        ensure!(k.alerts > 0, "FB_BENCH_ALERTS must be at least 1");
        ensure!(k.batch > 0, "FB_BENCH_BATCH must be at least 1");
        ensure!(
            k.cmd_rate > 0.0 && k.cmd_rate.is_finite(),
            "FB_BENCH_CMD_RATE must be above 0: without commands there is no latency to judge"
        );
        ensure!(
            k.page_rate > 0.0 && k.page_rate.is_finite(),
            "FB_BENCH_PAGE_RATE must be above 0"
        );
        ensure!(
            k.every_429 != 1,
            "FB_BENCH_429_EVERY=1 would rate-limit every call for ever; use 0 (never) or 2 and up"
        );
        ensure!(k.events > 0, "FB_BENCH_EVENTS must be at least 1");
        ensure!(
            !k.spread.is_empty()
                && !["alertname", "event", "job", "severity"].contains(&k.spread.as_str()),
            "FB_BENCH_SPREAD_LABEL={:?} is empty or a label the bench sets itself",
            k.spread
        );
        Ok(k)
    }

    fn batches(&self) -> usize {
        self.alerts.div_ceil(self.batch)
    }

    /// How long the push lasts: the last batch leaves one interval before.
    fn push_window(&self) -> Duration {
        self.interval * self.batches() as u32
    }
}

fn main() -> ExitCode {
    firebreak::net::install_crypto_provider();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run()) {
        Ok(failures) if failures.is_empty() => ExitCode::SUCCESS,
        Ok(failures) => {
            for f in failures {
                println!("FAIL: {f}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The binary Cargo built for this bench, unless told otherwise.
fn bot_binary(k: &Knobs) -> anyhow::Result<PathBuf> {
    let path = match (&k.bin, option_env!("CARGO_BIN_EXE_firebreak")) {
        (Some(p), _) => p.clone(),
        (None, Some(p)) => PathBuf::from(p),
        // Outside Cargo: the bench binary lives in target/release/deps.
        (None, None) => std::env::current_exe()?
            .parent()
            .and_then(Path::parent)
            .context("cannot tell where this bench runs from")?
            .join("firebreak"),
    };
    ensure!(
        path.is_file(),
        "no firebreak binary at {}; run `cargo bench --bench load` (it builds one) or `cargo build --release`, or set FB_BENCH_BIN",
        path.display()
    );
    Ok(path)
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A port nobody listens on now. The bot binds it a moment later; the
/// race is with other processes on this machine only.
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The bot as `firebreak run` runs it; killed if still running when
/// dropped, so a failed bench leaves nothing behind.
struct Bot {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Bot {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Bot {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, as systemd stops it, so the bot drains as in production;
    /// SIGKILL if it has not exited within `within`.
    async fn stop(&mut self, within: Duration) -> anyhow::Result<(Duration, ExitStatus)> {
        let asked = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("cannot run kill")?;
        ensure!(sent.success(), "kill -TERM {} failed", self.pid());
        while asked.elapsed() < within {
            if let Some(s) = self.exited() {
                return Ok((asked.elapsed(), s));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.child.kill()?;
        bail!(
            "the bot did not exit within {within:?} of SIGTERM; killed\n{}",
            self.log_tail(20)
        )
    }
}

const RUNBOOK: &str = r#"kind: runbook
name: edge-storm-note
description: Say once per event, in the incident's thread, that its edge errors.
owner: bench
trigger:
  alerts:
    - alertname: EdgeErrorRate
inputs:
  event: {type: string, from: alert.labels.event}
policy:
  concurrency_key: "edge/{{ inputs.event }}"
  cooldown: 10m
steps:
  - id: note
    action: chat
    with:
      text: "Edge errors during {{ inputs.event }}; the card counts the alerts."
"#;

fn write_setup(dir: &Path, slack_api: &str, port: u16) -> anyhow::Result<PathBuf> {
    let d = dir.display();
    std::fs::create_dir(dir.join("runbooks"))?;
    std::fs::write(dir.join("runbooks/edge-storm-note.yaml"), RUNBOOK)?;
    std::fs::write(dir.join("bot-token"), fake_slack::TOKEN)?;
    std::fs::write(dir.join("signing"), fake_slack::SIGNING_SECRET)?;
    std::fs::write(dir.join("api-token"), API_TOKEN)?;
    // As deploy/firebreak.yaml, minus Prometheus: alerts only arrive pushed.
    let config = format!(
        "\
rules: {{paths: []}}
runbooks: {{paths: ['{d}/runbooks']}}
secrets:
  slack_bot: {{file: '{d}/bot-token'}}
  slack_signing: {{file: '{d}/signing'}}
  api_token: {{file: '{d}/api-token'}}
chat:
  channel: '#incidents'
  slack:
    bot_token_secret: slack_bot
    signing_secret: slack_signing
    api_url: '{slack_api}'
    response_hosts: [127.0.0.1]
  roles:
    responder: {{users: [{USER}]}}
store: {{url: 'sqlite://{d}/firebreak.db'}}
incidents: {{group_by: [event]}}
server:
  listen: '127.0.0.1:{port}'
  token_secret: api_token
"
    );
    let path = dir.join("firebreak.yaml");
    std::fs::write(&path, config)?;
    Ok(path)
}

async fn start_bot(
    bin: &Path,
    dir: &Path,
    config: &Path,
    port: u16,
    http: &reqwest::Client,
) -> anyhow::Result<Bot> {
    let log = dir.join("firebreak.log");
    let stderr = std::fs::File::create(&log)?;
    let child = Command::new(bin)
        .args(["--log-format", "json", "run", "--config"])
        .arg(config)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let mut bot = Bot {
        child,
        addr: loopback(port),
        log,
    };
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = bot.exited() {
            bail!("the bot exited at start ({s})\n{}", bot.log_tail(20));
        }
        let ready = http
            .get(format!("http://{}/-/ready", bot.addr))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return Ok(bot);
        }
        ensure!(
            Instant::now() < until,
            "the bot was not ready within 30s\n{}",
            bot.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `kB` line of `/proc/PID/status`, in MiB.
fn status_mib(pid: u32, key: &str) -> anyhow::Result<f64> {
    Ok(procfs::status_kib(pid, key)? / 1024.0)
}

/// The sum of the samples of `name` whose labels include every pair of
/// `with`, from Prometheus text; `None` when no sample matches.
fn metric(text: &str, name: &str, with: &[(&str, &str)]) -> Option<f64> {
    let mut sum = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, labels) = series.split_once('{').unwrap_or((series, ""));
        if n != name
            || !with
                .iter()
                .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")))
        {
            continue;
        }
        if let Ok(v) = value.parse::<f64>() {
            *sum.get_or_insert(0.0) += v;
        }
    }
    sum
}

/// Mean server-side milliseconds of a route, from its histogram.
fn route_mean_ms(text: &str, route: &str) -> Option<f64> {
    let with = [("route", route)];
    let sum = metric(text, "firebreak_http_request_duration_seconds_sum", &with)?;
    let count = metric(text, "firebreak_http_request_duration_seconds_count", &with)?;
    (count > 0.0).then(|| sum / count * 1000.0)
}

async fn scrape(http: &reqwest::Client, bot: SocketAddr) -> anyhow::Result<String> {
    let r = http
        .get(format!("http://{bot}/metrics"))
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    ensure!(r.status().is_success(), "/metrics answered {}", r.status());
    Ok(r.text().await?)
}

/// How many distinct bench alerts the bot lists as firing.
async fn listed_alerts(
    http: &reqwest::Client,
    bot: SocketAddr,
    spread: &str,
) -> anyhow::Result<usize> {
    let r = http
        .get(format!("http://{bot}/api/v1/alerts"))
        .bearer_auth(API_TOKEN)
        .timeout(Duration::from_secs(15))
        .send()
        .await?;
    ensure!(
        r.status().is_success(),
        "GET /api/v1/alerts answered {}",
        r.status()
    );
    let v: Json = r.json().await?;
    let distinct: HashSet<&str> = v["data"]["alerts"]
        .as_array()
        .context("GET /api/v1/alerts has no data.alerts")?
        .iter()
        .filter(|a| a["labels"]["job"] == JOB)
        .filter_map(|a| a["labels"][spread].as_str())
        .collect();
    Ok(distinct.len())
}

fn postable(i: usize, k: &Knobs, starts: &str, ends: &str) -> Json {
    let name = NAMES[i % NAMES.len()];
    let event = format!("event-{}", i % k.events);
    let who = format!("edge-{i:05}");
    let mut labels = json!({
        "alertname": name,
        "event": event,
        "job": JOB,
        "severity": if i.is_multiple_of(10) { "critical" } else { "warning" },
    });
    labels[&k.spread] = json!(who);
    let mut annotations = json!({"summary": format!("{name} on {who} during {event}")});
    if k.value {
        annotations["value"] = json!(format!("{}", 0.05 + (i % 7) as f64 / 100.0));
    }
    json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": format!("http://prometheus.bench:9090/graph?g0.expr={name}"),
    })
}

/// One batch's fate.
#[derive(Default)]
struct Batch {
    alerts: usize,
    accepted: bool,
    /// Each attempt: the status (or the transport error) and its time.
    attempts: Vec<(String, Duration)>,
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn push_batch(
    http: reqwest::Client,
    bot: SocketAddr,
    body: String,
    alerts: usize,
    give_up_at: Instant,
) -> Batch {
    let mut b = Batch {
        alerts,
        ..Batch::default()
    };
    loop {
        let sent = Instant::now();
        let r = http
            .post(format!("http://{bot}/api/v2/alerts"))
            .bearer_auth(API_TOKEN)
            .header("content-type", "application/json")
            .body(body.clone())
            .timeout(PUSH_TIMEOUT)
            .send()
            .await;
        let (outcome, retry_after) = match r {
            Ok(r) => {
                let status = r.status();
                let after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let text = r.text().await.unwrap_or_default();
                b.attempts
                    .push((status.as_u16().to_string(), sent.elapsed()));
                if status.is_success() {
                    let took = serde_json::from_str::<Json>(&text)
                        .ok()
                        .and_then(|v| v["accepted"].as_u64());
                    // All or nothing: a 2xx that took fewer is a loss.
                    b.accepted = took == Some(alerts as u64);
                    return b;
                }
                if status.as_u16() != 429 && !status.is_server_error() {
                    eprintln!("load: a batch was refused ({status}): {text}");
                    return b;
                }
                (status.as_u16().to_string(), after)
            }
            Err(e) => {
                let what = if e.is_timeout() { "timeout" } else { "error" };
                b.attempts.push((what.into(), sent.elapsed()));
                (what.into(), None)
            }
        };
        let wait = Duration::from_secs(retry_after.unwrap_or(1).clamp(1, 5));
        if Instant::now() + wait > give_up_at {
            eprintln!("load: a batch gave up after {outcome}");
            return b;
        }
        tokio::time::sleep(wait).await;
    }
}

/// Answers the bot posts to `response_url`s, by request id, stamped when
/// they arrive: (when, characters of text).
#[derive(Clone, Default)]
struct Answers {
    waiting: Arc<Mutex<HashMap<u64, AnswerTx>>>,
}

type AnswerTx = oneshot::Sender<(Instant, usize)>;

async fn answered(
    State(a): State<Answers>,
    UrlPath(id): UrlPath<u64>,
    body: Bytes,
) -> &'static str {
    let at = Instant::now();
    let chars = serde_json::from_slice::<Json>(&body)
        .ok()
        .and_then(|v| v["text"].as_str().map(|t| t.chars().count()))
        .unwrap_or(0);
    if let Some(tx) = a.waiting.lock().unwrap().remove(&id) {
        let _ = tx.send((at, chars));
    }
    "ok"
}

async fn serve_answers(a: Answers, stop: CancellationToken) -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new()
        .route("/respond/{id}", axum::routing::post(answered))
        .with_state(a);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    });
    Ok(addr)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum How {
    /// In the slash command's acknowledgement.
    Ack,
    /// Acknowledged "working on …", answered at the response URL.
    Later,
    Busy,
    /// No usable acknowledgement, or no later answer.
    Failed,
}

struct Sample {
    command: &'static str,
    /// When it was sent, from the first push.
    sent_at: Duration,
    how: How,
    /// `None` when no answer came: counted as infinitely slow.
    latency: Option<Duration>,
    reply_chars: usize,
}

/// The commands in the order typed, round and round: mostly reads, as
/// people ask during an incident, and now and then an `ack`.
fn command_text(n: usize, events: usize) -> (&'static str, String) {
    match n % 10 {
        0 | 4 | 8 => ("status", "status".into()),
        1 | 5 => ("alerts", "alerts".into()),
        2 | 6 => ("timeline", "timeline".into()),
        3 | 7 => ("help", "help".into()),
        _ => ("ack", format!("ack event-{}", (n / 10) % events)),
    }
}

struct Typist {
    http: reqwest::Client,
    bot: SocketAddr,
    answers: Answers,
    answers_at: SocketAddr,
    t0: Instant,
}

impl Typist {
    async fn slash(&self, id: u64, command: &'static str, text: String) -> Sample {
        let (tx, later) = oneshot::channel();
        self.answers.waiting.lock().unwrap().insert(id, tx);
        let url = format!("http://{}/respond/{id}", self.answers_at);
        let body = fake_slack::to_bot::slash(USER, "bench", &text, &url);
        let ts = fake_slack::to_bot::now_s();
        let signature = fake_slack::to_bot::sign(fake_slack::SIGNING_SECRET, ts, &body);
        let sent = Instant::now();
        let mut s = Sample {
            command,
            sent_at: sent - self.t0,
            how: How::Failed,
            latency: None,
            reply_chars: 0,
        };
        let r = self
            .http
            .post(format!("http://{}/slack/commands", self.bot))
            .header("content-type", fake_slack::to_bot::FORM)
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", signature)
            .body(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let body = match r {
            Ok(r) if r.status().is_success() => r.bytes().await.ok(),
            _ => None,
        };
        // Stamped before parsing: a 2 MB reply takes this process a while
        // to read, which is not the bot's time.
        let acked = sent.elapsed();
        let ack = body.and_then(|b| serde_json::from_slice::<Json>(&b).ok());
        let reply = ack.as_ref().and_then(|a| a["text"].as_str());
        match reply {
            Some(t) if t.starts_with("working on `") => {
                if let Ok(Ok((at, chars))) = tokio::time::timeout(ANSWER_WAIT, later).await {
                    s.how = How::Later;
                    s.latency = Some(at - sent);
                    s.reply_chars = chars;
                }
            }
            Some(t) if t.starts_with("the bot is answering many requests") => s.how = How::Busy,
            Some(t) => {
                s.how = How::Ack;
                s.latency = Some(acked);
                s.reply_chars = t.chars().count();
            }
            None => {}
        }
        self.answers.waiting.lock().unwrap().remove(&id);
        s
    }

    /// Commands at `rate` a second, from `t0` until `at_least` has passed
    /// and `storm_over` is cancelled.
    async fn type_away(
        self: Arc<Self>,
        rate: f64,
        events: usize,
        at_least: Duration,
        storm_over: CancellationToken,
    ) -> Vec<Sample> {
        let every = Duration::from_secs_f64(1.0 / rate);
        let mut sending = Vec::new();
        for n in 0usize.. {
            let at = self.t0 + every.mul_f64(n as f64);
            if at >= self.t0 + at_least && storm_over.is_cancelled() {
                break;
            }
            tokio::time::sleep_until(at.into()).await;
            let (command, text) = command_text(n, events);
            let me = self.clone();
            sending.push(tokio::spawn(async move {
                me.slash(n as u64, command, text).await
            }));
        }
        let mut out = Vec::with_capacity(sending.len());
        for s in sending {
            out.push(s.await.expect("a command task panicked"));
        }
        out
    }
}

/// One console page read: which, when, how long (None: not 200 in time),
/// and how many table rows it held.
struct PageRead {
    path: &'static str,
    sent_at: Duration,
    latency: Option<Duration>,
    rows: usize,
}

async fn read_page(
    http: reqwest::Client,
    bot: SocketAddr,
    path: &'static str,
    t0: Instant,
) -> PageRead {
    let sent = Instant::now();
    let r = http
        .get(format!("http://{bot}{path}"))
        .bearer_auth(API_TOKEN)
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    let body = match r {
        Ok(r) if r.status().is_success() => r.text().await.ok(),
        _ => None,
    };
    PageRead {
        path,
        sent_at: sent - t0,
        latency: body.as_ref().map(|_| sent.elapsed()),
        rows: body.map_or(0, |b| b.matches("<tr>").count()),
    }
}

/// Console pages at `rate` a second, from `t0` until `at_least` has
/// passed and `storm_over` is cancelled.
async fn watch_pages(
    http: reqwest::Client,
    bot: SocketAddr,
    rate: f64,
    t0: Instant,
    at_least: Duration,
    storm_over: CancellationToken,
) -> Vec<PageRead> {
    let every = Duration::from_secs_f64(1.0 / rate);
    let mut reading = Vec::new();
    for n in 0usize.. {
        let at = t0 + every.mul_f64(n as f64);
        if at >= t0 + at_least && storm_over.is_cancelled() {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        reading.push(tokio::spawn(read_page(
            http.clone(),
            bot,
            PAGES[n % PAGES.len()],
            t0,
        )));
    }
    let mut out = Vec::with_capacity(reading.len());
    for r in reading {
        out.push(r.await.expect("a page task panicked"));
    }
    out
}

/// Latencies in ms, sorted; a page never answered counts as infinite.
fn page_latencies<'a>(reads: impl Iterator<Item = &'a PageRead>) -> Vec<f64> {
    let mut v: Vec<f64> = reads
        .map(|r| {
            r.latency
                .map_or(f64::INFINITY, |d| d.as_secs_f64() * 1000.0)
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Rate-limits about every `every`th call of each method in
/// [`RATE_LIMITED`]: one fault is queued at a time, once `every - 1`
/// calls have gone through since the last 429.
async fn rate_limit(slack: Arc<FakeSlack>, every: usize, stop: CancellationToken) {
    let mut queued = [0usize; RATE_LIMITED.len()];
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        let calls = slack.calls();
        for (k, method) in RATE_LIMITED.iter().enumerate() {
            let mine: Vec<&fake_slack::Call> =
                calls.iter().filter(|c| c.method == *method).collect();
            let served = mine.iter().filter(|c| c.status == 429).count();
            if queued[k] > served {
                continue;
            }
            let since = mine.iter().rev().take_while(|c| c.status != 429).count();
            if since + 1 >= every {
                slack.fail_next_of(
                    method,
                    1,
                    Fault::RateLimited {
                        retry_after_secs: 1,
                    },
                );
                queued[k] += 1;
            }
        }
    }
    slack.clear_faults();
}

/// Nearest-rank percentile of sorted values; NaN for none.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(v: f64) -> String {
    if v.is_infinite() {
        "unanswered".into()
    } else if v.is_nan() {
        "-".into()
    } else {
        format!("{v:.1}")
    }
}

/// Latencies in ms, sorted, an unanswered command as infinity.
fn latencies<'a>(samples: impl Iterator<Item = &'a Sample>) -> Vec<f64> {
    let mut v: Vec<f64> = samples
        .map(|s| {
            s.latency
                .map_or(f64::INFINITY, |d| d.as_secs_f64() * 1000.0)
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

fn p50_p99_max(v: &[f64]) -> String {
    format!(
        "{} / {} / {}",
        ms(pct(v, 50.0)),
        ms(pct(v, 99.0)),
        ms(v.last().copied().unwrap_or(f64::NAN))
    )
}

/// Warning and error lines of the bot's JSON log, counted by message.
fn log_summary(log: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Json>(line) else {
            continue;
        };
        let level = v["level"].as_str().unwrap_or("");
        if level == "WARN" || level == "ERROR" {
            let msg = v["fields"]["message"].as_str().unwrap_or("?");
            *by.entry(format!("{level} {msg}")).or_default() += 1;
        }
    }
    let mut out: Vec<(usize, String)> = by.into_iter().map(|(m, n)| (n, m)).collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    out
}

/// The store's set-aside messages, grouped by reason without positions.
async fn set_aside(store_url: &str) -> anyhow::Result<Vec<(usize, String)>> {
    let store = firebreak::store::Store::open(store_url).await?;
    let rows = store.rejected_outbox().await?;
    store.close().await;
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, reason) in rows {
        let short = reason.split(" at line ").next().unwrap_or(&reason);
        *by.entry(short.to_owned()).or_default() += 1;
    }
    let mut out: Vec<(usize, String)> = by.into_iter().map(|(r, n)| (n, r)).collect();
    out.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    Ok(out)
}

fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    let mut out: String = line.chars().take(max).collect();
    if line.chars().count() > max || text.lines().nth(1).is_some() {
        out.push('…');
    }
    out
}

async fn run() -> anyhow::Result<Vec<String>> {
    let k = Knobs::from_env()?;
    let bin = bot_binary(&k)?;
    let ticks = procfs::clock_ticks();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;

    let slack = Arc::new(FakeSlack::start().await);
    let stop_helpers = CancellationToken::new();
    let answers = Answers::default();
    let answers_at = serve_answers(answers.clone(), stop_helpers.clone()).await?;
    let dir = tempfile::Builder::new().prefix("fb-load-").tempdir()?;
    let port = free_port()?;
    let config = write_setup(dir.path(), slack.api_url().as_str(), port)?;
    let mut bot = start_bot(&bin, dir.path(), &config, port, &http).await?;
    let pid = bot.pid();

    println!(
        "load: {} alerts (distinct `{}`{}) in {} POSTs of up to {} every {:?} to /api/v2/alerts, open loop; {} slash commands/s; {} console pages/s; {} incidents; fake Slack 429 {}",
        k.alerts,
        k.spread,
        if k.value { ", with a value" } else { "" },
        k.batches(),
        k.batch,
        k.interval,
        k.cmd_rate,
        k.page_rate,
        k.events,
        if k.every_429 == 0 {
            "off".to_owned()
        } else {
            format!(
                "(Retry-After: 1) on about every {}th chat.postMessage and chat.update",
                k.every_429
            )
        }
    );
    println!("bot: {} (pid {pid}) on {}", bin.display(), bot.addr);

    let limiter = (k.every_429 > 0)
        .then(|| tokio::spawn(rate_limit(slack.clone(), k.every_429, stop_helpers.clone())));

    let now = chrono::Utc::now();
    // Valid long past the run, as Prometheus's endsAt (4x its resend
    // delay) is past its next resend: nothing expires during the bench.
    let (starts, ends) = (rfc3339(now), rfc3339(now + chrono::Duration::hours(1)));
    // Made before the clock starts, so the schedule is the bot's alone.
    let bodies: Vec<(String, usize)> = (0..k.batches())
        .map(|b| {
            let range = b * k.batch..((b + 1) * k.batch).min(k.alerts);
            let n = range.len();
            let alerts: Vec<Json> = range.map(|i| postable(i, &k, &starts, &ends)).collect();
            (Json::Array(alerts).to_string(), n)
        })
        .collect();

    let threads0 = procfs::cpu_by_thread(pid, ticks);
    let cpu0 = procfs::cpu_secs(pid, ticks)?;
    let t0 = Instant::now();
    let give_up_at = t0 + k.push_window() + k.settle;

    let pusher = {
        let (http, interval, addr) = (http.clone(), k.interval, bot.addr);
        tokio::spawn(async move {
            let mut sending = Vec::with_capacity(bodies.len());
            for (b, (body, n)) in bodies.into_iter().enumerate() {
                tokio::time::sleep_until((t0 + interval * b as u32).into()).await;
                sending.push(tokio::spawn(push_batch(
                    http.clone(),
                    addr,
                    body,
                    n,
                    give_up_at,
                )));
            }
            let mut out = Vec::with_capacity(sending.len());
            for s in sending {
                out.push(s.await.expect("a push task panicked"));
            }
            out
        })
    };
    let storm_over = CancellationToken::new();
    let typist = tokio::spawn(
        Arc::new(Typist {
            http: http.clone(),
            bot: bot.addr,
            answers,
            answers_at,
            t0,
        })
        .type_away(k.cmd_rate, k.events, k.push_window(), storm_over.clone()),
    );
    let watcher = tokio::spawn(watch_pages(
        http.clone(),
        bot.addr,
        k.page_rate,
        t0,
        k.push_window(),
        storm_over.clone(),
    ));

    let batches = pusher.await?;
    let t_pushed = t0.elapsed();
    let cpu_pushed = procfs::cpu_secs(pid, ticks)? - cpu0;
    let accepted: usize = batches
        .iter()
        .filter(|b| b.accepted)
        .map(|b| b.alerts)
        .sum();
    println!(
        "pushed in {:.1}s: {accepted} of {} alerts accepted; waiting up to {:?} for the bot to list them",
        t_pushed.as_secs_f64(),
        k.alerts,
        k.settle
    );

    // Until the bot lists every alert it took, or the window closes.
    // Listing 10,000 alerts costs the bot about half a second of CPU, so
    // the listing is asked for only once the watcher has passed on as many
    // firings as were taken. /metrics is not free either (it counts the
    // outbox in the store): both are read at most once a second.
    let mut listed = 0;
    let mut t_listed = None;
    let mut last_note = Instant::now();
    let mut last_listing: Option<Instant> = None;
    while Instant::now() < give_up_at {
        if let Some(s) = bot.exited() {
            bail!("the bot exited under load ({s})\n{}", bot.log_tail(30));
        }
        let fired = match scrape(&http, bot.addr).await {
            Ok(text) => metric(
                &text,
                "firebreak_alert_transitions_total",
                &[("kind", "firing")],
            ),
            Err(_) => None,
        };
        // Without the counter, the listing is all there is to go by.
        let due = fired.is_none_or(|f| f >= accepted as f64)
            && last_listing.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if due {
            last_listing = Some(Instant::now());
            match listed_alerts(&http, bot.addr, &k.spread).await {
                Ok(n) => listed = n,
                Err(e) => eprintln!("load: reading alerts: {e:#}"),
            }
            if listed >= accepted {
                t_listed = Some(t0.elapsed());
                break;
            }
        }
        if last_note.elapsed() >= Duration::from_secs(5) {
            println!(
                "  {:.0}s: the watcher has passed on {} of {accepted} firings; {}",
                t0.elapsed().as_secs_f64(),
                fired.map_or("?".into(), |f| f.to_string()),
                match last_listing {
                    Some(_) => format!("{listed} listed at the last look"),
                    None => "not listed yet".to_owned(),
                }
            );
            last_note = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if t_listed.is_none() {
        // The verdict is what the bot lists at the deadline, asked or not.
        match listed_alerts(&http, bot.addr, &k.spread).await {
            Ok(n) => listed = n,
            Err(e) => eprintln!("load: reading alerts at the deadline: {e:#}"),
        }
    }
    storm_over.cancel();
    let samples = typist.await?;
    let pages = watcher.await?;

    // Chat is counted once everything the bot queued has gone out.
    let drain_until = Instant::now().max(give_up_at) + Duration::from_secs(30);
    let mut drained = None;
    let mut empty_in_a_row = 0;
    while Instant::now() < drain_until {
        let depth = match scrape(&http, bot.addr).await {
            Ok(text) => metric(&text, "firebreak_outbox_depth", &[]),
            Err(e) => {
                eprintln!("load: scraping /metrics: {e:#}");
                None
            }
        };
        // Twice in a row: a run's last note can follow the card.
        empty_in_a_row = if depth == Some(0.0) {
            empty_in_a_row + 1
        } else {
            0
        };
        if empty_in_a_row >= 2 {
            drained = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let t_end = t0.elapsed();
    let cpu_all = procfs::cpu_secs(pid, ticks)? - cpu0;
    let threads1 = procfs::cpu_by_thread(pid, ticks);
    let peak_mib = status_mib(pid, "VmHWM")?;
    let rss_mib = status_mib(pid, "VmRSS")?;
    let metrics = scrape(&http, bot.addr).await.unwrap_or_default();

    stop_helpers.cancel();
    if let Some(l) = limiter {
        l.await?;
    }
    let (stop_took, status) = bot.stop(Duration::from_secs(30)).await?;
    let messages = slack.messages();
    let calls = slack.calls();
    let aside = set_aside(&format!("sqlite://{}/firebreak.db", dir.path().display())).await?;
    let logged = log_summary(&bot.log);

    // --- the report ---
    let lost = k.alerts - listed.min(k.alerts);
    let never: usize = batches
        .iter()
        .filter(|b| !b.accepted)
        .map(|b| b.alerts)
        .sum();
    let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
    let mut post_ms: Vec<f64> = Vec::new();
    for b in &batches {
        for (s, d) in &b.attempts {
            *statuses.entry(s.as_str()).or_default() += 1;
            post_ms.push(d.as_secs_f64() * 1000.0);
        }
    }
    post_ms.sort_by(f64::total_cmp);

    let lat = latencies(samples.iter());
    let p99 = pct(&lat, 99.0);
    let count = |h: How| samples.iter().filter(|s| s.how == h).count();
    let longest_reply = samples.iter().map(|s| s.reply_chars).max().unwrap_or(0);
    let over_limit = samples
        .iter()
        .filter(|s| s.reply_chars > fake_slack::TEXT_MAX)
        .count();

    let top = messages.iter().filter(|m| m.thread_ts.is_none()).count();
    let longest_chat = messages
        .iter()
        .map(|m| m.text.chars().count())
        .max()
        .unwrap_or(0);
    let updates: usize = messages.iter().map(|m| m.history.len()).sum();
    let calls_of = |method: &str, status: u16| {
        calls
            .iter()
            .filter(|c| c.method == method && c.status == status)
            .count()
    };
    let slack_errors: Vec<String> = calls
        .iter()
        .filter(|c| c.status == 200 && c.error.is_some())
        .map(|c| format!("{}: {}", c.method, c.error.as_deref().unwrap_or("")))
        .collect();
    let set_aside_n: usize = aside.iter().map(|(n, _)| n).sum();
    let secs = |d: Option<Duration>| {
        d.map_or("not reached".into(), |d| {
            format!("{:.1} s", d.as_secs_f64())
        })
    };
    let core = |cpu: f64, wall: Duration| 100.0 * cpu / wall.as_secs_f64();

    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| alerts pushed / accepted (2xx) / never accepted | {} / {accepted} / {never} |",
        k.alerts
    );
    println!(
        "| **alerts lost** (pushed − listed by `GET /api/v1/alerts`) | **{lost}** ({listed} listed) |"
    );
    println!(
        "| push POSTs incl. retries, by status | {} |",
        statuses
            .iter()
            .map(|(s, n)| format!("{s} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| push POST latency p50 / p99 / max | {} ms |",
        p50_p99_max(&post_ms)
    );
    println!(
        "| push ended / all accepted alerts listed / chat outbox drained (from the first push) | {:.1} s / {} / {} |",
        t_pushed.as_secs_f64(),
        secs(t_listed),
        secs(drained)
    );
    println!(
        "| commands sent / answered in the ack / at the response_url / busy / failed or unanswered | {} / {} / {} / {} / {} |",
        samples.len(),
        count(How::Ack),
        count(How::Later),
        count(How::Busy),
        count(How::Failed)
    );
    println!(
        "| **command latency p50 / p99 / max** | **{} ms** |",
        p50_p99_max(&lat)
    );
    let during = latencies(samples.iter().filter(|s| s.sent_at < t_pushed));
    let after = latencies(samples.iter().filter(|s| s.sent_at >= t_pushed));
    println!(
        "| command latency during the push ({}) / while the bot caught up ({}) | {} / {} ms |",
        during.len(),
        after.len(),
        p50_p99_max(&during),
        p50_p99_max(&after)
    );
    println!(
        "| longest command reply / replies over Slack's {} characters | {longest_reply} chars / {over_limit} |",
        fake_slack::TEXT_MAX
    );
    println!(
        "| **chat at Slack**: top-level posts / thread replies / updates in place | {top} / {} / {updates} |",
        messages.len() - top
    );
    println!(
        "| longest chat message at Slack | {longest_chat} chars (Slack's limit {}) |",
        fake_slack::TEXT_MAX
    );
    println!(
        "| **chat set aside by the bot** (nobody saw them) | {set_aside_n}{} |",
        aside
            .iter()
            .map(|(n, r)| format!("; {n}× {r}"))
            .collect::<String>()
    );
    println!(
        "| Slack calls: chat.postMessage ok / 429, chat.update ok / 429 | {} / {}, {} / {} |",
        calls_of("chat.postMessage", 200),
        calls_of("chat.postMessage", 429),
        calls_of("chat.update", 200),
        calls_of("chat.update", 429)
    );
    println!(
        "| Slack calls answered ok: false | {} |",
        if slack_errors.is_empty() {
            "0".to_owned()
        } else {
            format!("{}: {}", slack_errors.len(), slack_errors.join("; "))
        }
    );
    println!(
        "| bot CPU during the push | {cpu_pushed:.2} s ({:.0}% of one core over {:.1} s) |",
        core(cpu_pushed, t_pushed),
        t_pushed.as_secs_f64()
    );
    println!(
        "| bot CPU, whole run (push, catch-up, drain) | {cpu_all:.2} s ({:.0}% of one core over {:.1} s) |",
        core(cpu_all, t_end),
        t_end.as_secs_f64()
    );
    let mut by_thread: Vec<(f64, &String)> = threads1
        .iter()
        .map(|(name, s)| (s - threads0.get(name).copied().unwrap_or(0.0), name))
        .filter(|(s, _)| *s >= 0.01)
        .collect();
    by_thread.sort_by(|a, b| b.0.total_cmp(&a.0));
    println!(
        "| bot CPU by thread, whole run | {} |",
        by_thread
            .iter()
            .map(|(s, n)| format!("{n} {s:.2} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let page_lat = page_latencies(pages.iter());
    let page_p99 = pct(&page_lat, 99.0);
    let most_rows = pages.iter().map(|p| p.rows).max().unwrap_or(0);
    let pages_during = page_latencies(pages.iter().filter(|p| p.sent_at < t_pushed));
    println!(
        "| console pages read / not answered 200 within 10 s | {} / {} |",
        pages.len(),
        pages.iter().filter(|p| p.latency.is_none()).count()
    );
    println!(
        "| **console page answer p50 / p99 / max** (during the push: {}) | **{} ms** ({} ms) |",
        pages_during.len(),
        p50_p99_max(&page_lat),
        p50_p99_max(&pages_during)
    );
    println!("| most table rows on one console page | {most_rows} |");
    println!("| bot peak memory (VmHWM) / RSS at the end | {peak_mib:.1} / {rss_mib:.1} MiB |");
    println!(
        "| bot stop on SIGTERM | {:.1} s, {status} |",
        stop_took.as_secs_f64()
    );

    println!();
    println!(
        "| command | n | p50 ms | p99 ms | max ms | at the response_url | longest reply (chars) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut names: Vec<&str> = samples.iter().map(|s| s.command).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let these = || samples.iter().filter(|s| s.command == name);
        let l = latencies(these());
        println!(
            "| `{name}` | {} | {} | {} | {} | {} | {} |",
            l.len(),
            ms(pct(&l, 50.0)),
            ms(pct(&l, 99.0)),
            ms(l.last().copied().unwrap_or(f64::NAN)),
            these().filter(|s| s.how == How::Later).count(),
            these().map(|s| s.reply_chars).max().unwrap_or(0)
        );
    }

    println!();
    println!("| console page | n | p50 ms | p99 ms | max ms | rows (most) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for path in PAGES {
        let these = || pages.iter().filter(|p| p.path == path);
        let l = page_latencies(these());
        println!(
            "| `{path}` | {} | {} | {} | {} | {} |",
            l.len(),
            ms(pct(&l, 50.0)),
            ms(pct(&l, 99.0)),
            ms(l.last().copied().unwrap_or(f64::NAN)),
            these().map(|p| p.rows).max().unwrap_or(0)
        );
    }

    println!();
    println!(
        "chat as Slack holds it ({} messages), each thread under its head:",
        messages.len()
    );
    // Posting order interleaves threads; read as a person would.
    let mut shown = Vec::new();
    for head in messages.iter().filter(|m| m.thread_ts.is_none()) {
        shown.push((false, head));
        let replies = messages
            .iter()
            .filter(|m| m.thread_ts.as_deref() == Some(head.ts.as_str()));
        shown.extend(replies.map(|m| (true, m)));
    }
    for (reply, m) in shown.iter().take(40) {
        println!(
            "  {}{}{}",
            if *reply { "  └ " } else { "" },
            first_line(&m.text, 110),
            if m.history.is_empty() {
                String::new()
            } else {
                format!("  [updated {}×]", m.history.len())
            }
        );
    }
    if shown.len() > 40 {
        println!("  … and {} more", shown.len() - 40);
    }

    println!();
    println!("the bot's /metrics at the end:");
    let m = |name: &str, with: &[(&str, &str)]| {
        metric(&metrics, name, with).map_or("-".into(), |v| format!("{v}"))
    };
    for (label, name, with) in [
        (
            "pushed alerts received (api_v2)",
            "firebreak_pushed_alerts_received_total",
            &[("endpoint", "api_v2")][..],
        ),
        ("alerts firing", "firebreak_alerts", &[("state", "firing")]),
        (
            "firing transitions",
            "firebreak_alert_transitions_total",
            &[("kind", "firing")],
        ),
        (
            "chat messages sent",
            "firebreak_chat_messages_sent_total",
            &[],
        ),
        (
            "chat send errors, retried",
            "firebreak_chat_send_errors_total",
            &[("kind", "retry")],
        ),
        (
            "chat send errors, rejected",
            "firebreak_chat_send_errors_total",
            &[("kind", "rejected")],
        ),
        ("outbox depth", "firebreak_outbox_depth", &[]),
        (
            "commands ok",
            "firebreak_commands_total",
            &[("outcome", "ok")],
        ),
        ("runs", "firebreak_runs_total", &[]),
    ] {
        println!("  {label}: {}", m(name, with));
    }
    for route in ["/api/v2/alerts", "/api/v1/alerts"] {
        println!(
            "  {route}: mean {} ms in the bot",
            route_mean_ms(&metrics, route).map_or("-".into(), |v| format!("{v:.1}"))
        );
    }
    println!();
    println!("the bot's warnings and errors:");
    if logged.is_empty() {
        println!("  none");
    }
    for (n, what) in logged.iter().take(8) {
        println!("  {n:>6}× {what}");
    }
    if k.keep {
        let kept = dir.keep();
        println!("kept {} (config, store, firebreak.log)", kept.display());
    }

    let mut failures = Vec::new();
    if lost > 0 {
        failures.push(format!(
            "{lost} of {} alerts lost (not listed by the bot within {:?} of the push)",
            k.alerts, k.settle
        ));
    }
    if p99.is_nan() || p99 >= P99_TARGET_MS {
        failures.push(format!(
            "command latency p99 {} ms, target under {P99_TARGET_MS} ms",
            ms(p99)
        ));
    }
    if page_p99.is_nan() || page_p99 >= PAGE_P99_TARGET_MS {
        failures.push(format!(
            "console page answer p99 {} ms, target under {PAGE_P99_TARGET_MS} ms",
            ms(page_p99)
        ));
    }
    if most_rows > PAGE_ROWS_MAX {
        failures.push(format!(
            "a console page held {most_rows} table rows, more than {PAGE_ROWS_MAX}: a list drawn whole"
        ));
    }
    if set_aside_n > 0 {
        failures.push(format!(
            "{set_aside_n} chat messages set aside by the bot, never shown in Slack"
        ));
    }
    if !status.success() {
        failures.push(format!("the bot exited {status} on SIGTERM"));
    }
    println!();
    println!(
        "alerts lost {lost} (must be 0); command p99 {} ms (target under {P99_TARGET_MS} ms); console page p99 {} ms (target under {PAGE_P99_TARGET_MS} ms), at most {most_rows} rows a page; chat set aside {set_aside_n}: {}",
        ms(p99),
        ms(page_p99),
        if failures.is_empty() {
            "met"
        } else {
            "NOT MET"
        }
    );
    Ok(failures)
}
