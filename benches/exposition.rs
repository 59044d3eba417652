//! Throughput of the exposition parser and of `prometheus-parse` on one
//! generated exposition like a busy exporter's: 100k series, counters,
//! gauges and histograms with several labels. Best of N runs, single core.
//! Also the whole scrape path into the series store: the scrape task's
//! parse into a `Scraped`, and the watcher's cached ingest of a target it
//! has seen before (the steady state), each on one core.
//! Run with `cargo bench --bench exposition`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use firebreak::source::Scraped;
use firebreak::source::exposition::{Format, Item, parse_series, parse_with};
use firebreak::tsdb::SeriesStore;

fn exposition(series: usize) -> String {
    let mut out = String::with_capacity(series * 160);
    let mut n = 0;
    let mut family = 0;
    while n < series {
        family += 1;
        let name = format!("app_subsystem_{family}");
        match family % 3 {
            0 => {
                out.push_str(&format!(
                    "# HELP {name}_seconds Request latency.\n# TYPE {name}_seconds histogram\n"
                ));
                for i in 0..40 {
                    let l = format!(
                        "method=\"GET\",handler=\"/api/v1/items/{i}\",code=\"200\",instance=\"10.0.0.{}:9100\"",
                        i % 250
                    );
                    let mut c = 0u64;
                    for le in ["0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf"] {
                        c += (i * 7 + 3) as u64;
                        out.push_str(&format!("{name}_seconds_bucket{{{l},le=\"{le}\"}} {c}\n"));
                    }
                    out.push_str(&format!("{name}_seconds_sum{{{l}}} {}.{}\n", c * 3, i));
                    out.push_str(&format!("{name}_seconds_count{{{l}}} {c}\n"));
                    n += 10;
                }
            }
            1 => {
                out.push_str(&format!(
                    "# HELP {name}_total Things done.\n# TYPE {name}_total counter\n"
                ));
                for i in 0..200 {
                    out.push_str(&format!(
                        "{name}_total{{pod=\"web-{i}-7f9c\",namespace=\"prod\",zone=\"eu-west-1a\"}} {}\n",
                        i * 1_234_567
                    ));
                    n += 1;
                }
            }
            _ => {
                out.push_str(&format!(
                    "# HELP {name}_bytes Memory.\n# TYPE {name}_bytes gauge\n"
                ));
                for i in 0..200 {
                    out.push_str(&format!(
                        "{name}_bytes{{pod=\"web-{i}-7f9c\",area=\"heap\"}} {:e}\n",
                        (i as f64 + 0.5) * 1.0e7
                    ));
                    n += 1;
                }
            }
        }
    }
    out
}

fn best_of(runs: usize, mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut count = 0;
    for _ in 0..runs {
        let t = Instant::now();
        count = black_box(f());
        best = best.min(t.elapsed());
    }
    (best, count)
}

fn report(what: &str, bytes: usize, (t, samples): (Duration, usize)) {
    let s = t.as_secs_f64();
    println!(
        "{what:<34} {:>8.1} MB/s {:>12.0} samples/s  ({samples} samples, best {:.1} ms)",
        bytes as f64 / 1e6 / s,
        samples as f64 / s,
        s * 1e3
    );
}

fn main() {
    let text = exposition(100_000);
    let bytes = text.len();
    println!(
        "exposition: {:.1} MB, {} lines",
        bytes as f64 / 1e6,
        text.lines().count()
    );

    report(
        "firebreak parse_with (borrowed)",
        bytes,
        best_of(10, || {
            let mut n = 0;
            parse_with(&text, Format::Prometheus004, |item| {
                if let Item::Sample(s) = item {
                    black_box(s.value);
                    n += s.labels().len().min(1);
                }
            })
            .unwrap();
            n
        }),
    );
    report(
        "firebreak parse (owned Labels)",
        bytes,
        best_of(5, || {
            firebreak::source::exposition::parse(&text).unwrap().len()
        }),
    );
    report(
        "Scraped::parse (scrape task)",
        bytes,
        best_of(10, || {
            Scraped::parse(text.clone(), Format::Prometheus004)
                .unwrap()
                .len()
        }),
    );
    let scraped = Scraped::parse(text.clone(), Format::Prometheus004).unwrap();
    let mut store = SeriesStore::new(i64::MAX / 4);
    let new_series = |k: &str| parse_series(k, Format::Prometheus004).map_err(|e| e.to_string());
    let mut ts = 0;
    report(
        "store ingest, first scrape",
        bytes,
        best_of(1, || {
            ts += 1000;
            store
                .ingest_raw("t", ts, scraped.samples(), new_series)
                .appended
        }),
    );
    report(
        "store ingest, cached (watcher)",
        bytes,
        best_of(10, || {
            ts += 1000;
            store
                .ingest_raw("t", ts, scraped.samples(), new_series)
                .appended
        }),
    );
    report(
        "parse + cached ingest, end to end",
        bytes,
        best_of(5, || {
            ts += 1000;
            let s = Scraped::parse(text.clone(), Format::Prometheus004).unwrap();
            store.ingest_raw("t", ts, s.samples(), new_series).appended
        }),
    );
    report(
        "prometheus-parse Scrape::parse",
        bytes,
        best_of(3, || {
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
                .unwrap()
                .samples
                .len()
        }),
    );
}
