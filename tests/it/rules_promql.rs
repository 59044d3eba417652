//! The evaluator through the public API, fed the way sources feed it:
//! scrapes with staleness, failed targets, lookback, and the numbers
//! alert rules depend on (rate extrapolation, predict_linear,
//! histogram_quantile), each worked out by hand.

use firebreak::clock::Millis;
use firebreak::labels::Labels;
use firebreak::promql::{QueryError, Value, eval_instant, parse, query};
use firebreak::tsdb::SeriesStore;

const S: Millis = 1000;
const T0: Millis = 1_780_000_020_000;

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().copied().collect()
}

fn values(store: &SeriesStore, q: &str, at: Millis) -> Vec<(String, f64)> {
    match query(q, store, at).unwrap() {
        Value::Vector(v) => {
            let mut out: Vec<(String, f64)> = v
                .into_iter()
                .map(|s| (s.labels.to_string(), s.value))
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        other => panic!("{q}: {other:?}"),
    }
}

fn assert_close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

#[test]
fn series_missing_from_a_scrape_end_immediately() {
    let mut st = SeriesStore::new(3600 * S);
    let a = l(&[("__name__", "conn"), ("room", "a")]);
    let b = l(&[("__name__", "conn"), ("room", "b")]);
    st.ingest_scrape("sfu", T0, [(a.clone(), 1.0), (b.clone(), 2.0)]);
    st.ingest_scrape("sfu", T0 + 15 * S, [(a.clone(), 1.0)]);
    // Without the stale marker room b would linger for 5 minutes.
    assert_eq!(values(&st, "conn", T0 + 14 * S).len(), 2);
    assert_eq!(
        values(&st, "conn", T0 + 15 * S),
        vec![(r#"conn{room="a"}"#.to_owned(), 1.0)]
    );
    // A failed scrape ends every series of the target.
    st.mark_target_stale("sfu", T0 + 30 * S);
    assert!(values(&st, "conn", T0 + 30 * S).is_empty());
    assert_eq!(
        values(&st, "absent(conn{room=\"a\"})", T0 + 30 * S),
        vec![(r#"{room="a"}"#.to_owned(), 1.0)]
    );
    // Reappearing starts it again.
    st.ingest_scrape("sfu", T0 + 45 * S, [(b.clone(), 5.0)]);
    assert_eq!(
        values(&st, "conn", T0 + 45 * S),
        vec![(r#"conn{room="b"}"#.to_owned(), 5.0)]
    );
}

#[test]
fn lookback_without_stale_markers_is_five_minutes() {
    let mut st = SeriesStore::new(3600 * S);
    st.append(l(&[("__name__", "g")]), T0, 3.0).unwrap();
    assert_eq!(values(&st, "g", T0 + 300 * S).len(), 1);
    assert!(values(&st, "g", T0 + 300 * S + 1).is_empty());
    // `offset` moves the window back.
    assert_eq!(values(&st, "g offset 5m", T0 + 600 * S).len(), 1);
}

#[test]
fn rate_extrapolation_numbers() {
    let mut st = SeriesStore::new(3600 * S);
    let c = l(&[("__name__", "req_total"), ("job", "api")]);
    // Scraped every 10s from 3s to 53s, +20 each: 20 over 10s = 2/s.
    for k in 0..6 {
        st.append(c.clone(), T0 + (3 + 10 * k) * S, 1000.0 + 20.0 * k as f64)
            .unwrap();
    }
    // At 60s over [1m]: 100 over 50s of samples; 3s to the start and 7s to
    // the end are both under 1.1 * 10s, so extrapolate to 60s: 120.
    let v = values(&st, "increase(req_total[1m])", T0 + 60 * S);
    assert_close(v[0].1, 120.0);
    assert_close(values(&st, "rate(req_total[1m])", T0 + 60 * S)[0].1, 2.0);
    // At 75s the last sample is 22s old (> 11s): extrapolate only half an
    // interval there. Window [15s, 75s] holds 23..53s: 60 over 30s, plus
    // 8s at the start and 5s at the end: 60 * 43/30 = 86.
    assert_close(
        values(&st, "increase(req_total[1m])", T0 + 75 * S)[0].1,
        86.0,
    );
}

#[test]
fn predict_linear_matches_least_squares() {
    let mut st = SeriesStore::new(3600 * S);
    let x = l(&[("__name__", "disk_free"), ("dev", "sda")]);
    // Falling 2 per second, with one noisy point at 30s (+6).
    for (t, v) in [
        (0, 1000.0),
        (15, 970.0),
        (30, 946.0),
        (45, 910.0),
        (60, 880.0),
    ] {
        st.append(x.clone(), T0 + t * S, v).unwrap();
    }
    // x relative to 60s: -60,-45,-30,-15,0 (mean -30); y mean 941.2.
    // dx*dy: (-30)(58.8) + (-15)(28.8) + 0 + (15)(-31.2) + (30)(-61.2) = -4500
    // var 2250 -> slope -2; intercept 941.2 - (-2)(-30) = 881.2.
    // In 600s: 881.2 - 1200 = -318.8.
    assert_close(
        values(&st, "predict_linear(disk_free[1m], 600)", T0 + 60 * S)[0].1,
        -318.8,
    );
    assert_close(values(&st, "deriv(disk_free[1m])", T0 + 60 * S)[0].1, -2.0);
}

#[test]
fn histogram_quantile_from_rates() {
    let mut st = SeriesStore::new(3600 * S);
    // Per second: 30 under 0.1s, 80 under 0.25s, 95 under 1s, 100 total.
    for (le, per_s) in [("0.1", 30.0), ("0.25", 80.0), ("1", 95.0), ("+Inf", 100.0)] {
        for k in 0..=4 {
            st.append(
                l(&[("__name__", "rpc_seconds_bucket"), ("le", le), ("svc", "a")]),
                T0 + k * 15 * S,
                per_s * (k * 15) as f64,
            )
            .unwrap();
        }
    }
    let q = |phi: f64| {
        values(
            &st,
            &format!("histogram_quantile({phi}, rate(rpc_seconds_bucket[1m]))"),
            T0 + 60 * S,
        )[0]
        .1
    };
    // rank 50 in (0.1, 0.25]: 0.1 + 0.15 * 20/50.
    assert_close(q(0.5), 0.16);
    // rank 90 in (0.25, 1]: 0.25 + 0.75 * 10/15.
    assert_close(q(0.9), 0.75);
    // rank 99 is in the +Inf bucket: the highest finite bound.
    assert_close(q(0.99), 1.0);
}

#[test]
fn errors_are_typed() {
    let st = SeriesStore::new(3600 * S);
    assert!(matches!(
        query("rate(x[5m]", &st, T0),
        Err(QueryError::Parse(_))
    ));
    assert!(matches!(
        query("holt_winters(x[5m], 0.5, 0.5)", &st, T0),
        Err(QueryError::Parse(_)) | Err(QueryError::Eval(_))
    ));
    let e = eval_instant(&parse("mad_over_time(x[5m])").unwrap(), &st, T0).unwrap_err();
    assert!(e.to_string().contains("mad_over_time"), "{e}");
}
