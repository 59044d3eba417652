//! Rule evaluation and series memory in isolation: a series store filled
//! with `FB_EVAL_SERIES` series (default 30,000), scraped every 10s for
//! 40 scrapes with the watcher's retention (5m10s) and collection, shaped like `watcher_vs_prometheus`'s targets (families of 1,000
//! series with six labels each), and that benchmark's four rule shapes
//! evaluated over one family each.
//!
//! Deterministic apart from the clock: the same store and queries every
//! run, so `valgrind --tool=callgrind` on this binary gives comparable
//! instruction counts. Reports ns per rule and per series-sample read, and
//! heap bytes per stored series (a counting global allocator).
//!
//! Run with `cargo bench --bench eval`. `FB_EVAL_ITERS` (default 20) sets
//! how many times each rule is evaluated.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use firebreak::clock::Millis;
use firebreak::labels::Labels;
use firebreak::promql::{Value, eval_instant, parse};
use firebreak::tsdb::SeriesStore;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const FAMILY: usize = 1_000;
/// Samples a 5m window holds at a 10s step.
const SAMPLES: usize = 30;
const SCRAPES: usize = 40;
const STEP: Millis = 10_000;
const LES: [&str; 8] = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "1", "+Inf"];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The labels of series `j` of family `f`, as the big benchmark's targets
/// expose them (target labels folded into `pod`).
fn series_labels(f: usize, j: usize) -> Labels {
    let t = j / 100;
    let ns = format!("ns-{}", j % 8);
    let zone = format!("zone-{}", j % 3);
    match f % 3 {
        0 => [
            ("__name__", format!("bench_f{f}_requests_total")),
            ("namespace", ns),
            ("pod", format!("api-{t}-{j}")),
            ("zone", zone),
            ("handler", format!("/v1/h{}", j % 10)),
            ("code", ["200", "404", "500", "503"][j % 4].to_owned()),
            ("method", ["GET", "POST"][j % 2].to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        1 => [
            ("__name__", format!("bench_f{f}_queue_depth")),
            ("namespace", ns),
            ("pod", format!("worker-{t}-{j}")),
            ("zone", zone),
            ("queue", format!("q{}", j % 10)),
            ("shard", format!("{}", j % 16)),
            ("tier", ["gold", "silver"][j % 2].to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
        _ => {
            let set = j / LES.len();
            [
                (
                    "__name__",
                    format!("bench_f{f}_request_duration_seconds_bucket"),
                ),
                ("namespace", format!("ns-{}", set % 8)),
                ("pod", format!("api-{t}-{set}")),
                ("zone", format!("zone-{}", set % 3)),
                ("handler", format!("/v1/h{set}")),
                ("method", ["GET", "POST"][set % 2].to_owned()),
                ("le", LES[j % LES.len()].to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
        }
    }
}

fn value(f: usize, j: usize, k: usize) -> f64 {
    let seed = (f * 1_000 + j) as u64;
    match f % 3 {
        0 => (seed * 1_000 + (1 + seed % 50) * 10 * k as u64) as f64,
        1 => ((seed * 7_919 + k as u64 * 104_729) % 10_000) as f64 / 10.0,
        _ => ((1 + seed / 8 % 20) * 10 * k as u64 * (j as u64 % 8 + 1) / 8) as f64,
    }
}

fn main() {
    let series = env("FB_EVAL_SERIES", 30_000).max(3 * FAMILY) / FAMILY * FAMILY;
    let iters = env("FB_EVAL_ITERS", 20).max(1);
    let families = series / FAMILY;

    let before = LIVE.load(Ordering::Relaxed);
    let mut store = SeriesStore::new(310_000);
    let t0 = Instant::now();
    // Scrape order: every series once per timestamp, as targets deliver.
    for k in 0..SCRAPES {
        let ts = 1_000_000 + k as Millis * STEP;
        store.maybe_gc(ts);
        for f in 0..families {
            for j in 0..FAMILY {
                store
                    .append(series_labels(f, j), ts, value(f, j, k))
                    .unwrap();
            }
        }
    }
    let fill = t0.elapsed();
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    let now = 1_000_000 + (SCRAPES as Millis - 1) * STEP;
    println!(
        "store: {series} series x {SCRAPES} scrapes, {} samples kept, filled in {:.0} ns/sample; heap {:.1} MiB, {:.0} bytes/series",
        store.sample_count(),
        fill.as_nanos() as f64 / (series * SCRAPES) as f64,
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / series as f64
    );

    let shapes: [(&str, String, usize); 4] = [
        (
            "sum by rate",
            "sum by (namespace, code) (rate(bench_f0_requests_total[5m])) > 1e15".to_owned(),
            SAMPLES,
        ),
        (
            "histogram_quantile",
            "histogram_quantile(0.99, sum by (le, handler) (rate(bench_f2_request_duration_seconds_bucket[5m]))) > 1e9".to_owned(),
            SAMPLES,
        ),
        (
            "avg_over_time",
            "avg_over_time(bench_f1_queue_depth[5m]) > 1e18".to_owned(),
            SAMPLES,
        ),
        (
            "max by instant",
            "max by (zone) (bench_f1_queue_depth) < -1".to_owned(),
            1,
        ),
    ];
    let mut total_ns = 0.0;
    for (name, q, read) in &shapes {
        let expr = parse(q).unwrap();
        // One unmeasured run, which also checks the query works.
        match eval_instant(&expr, &store, now).unwrap() {
            Value::Vector(_) => {}
            other => panic!("{name}: {other:?}"),
        }
        let allocs = ALLOCS.load(Ordering::Relaxed);
        let t = Instant::now();
        for _ in 0..iters {
            black_box(eval_instant(&expr, &store, black_box(now)).unwrap());
        }
        let ns = t.elapsed().as_nanos() as f64 / iters as f64;
        let allocs = (ALLOCS.load(Ordering::Relaxed) - allocs) as f64 / iters as f64;
        total_ns += ns;
        println!(
            "{name:>20}: {:8.3} ms/rule, {:6.2} ns/series-sample, {:7.0} allocations/rule",
            ns / 1e6,
            ns / (FAMILY * read) as f64,
            allocs
        );
    }
    println!(
        "{:>20}: {:8.3} ms/rule (mean of the four shapes)",
        "all",
        total_ns / shapes.len() as f64 / 1e6
    );
}
