//! Evaluator tests: every expected value is worked out by hand in the
//! comment beside it.

use super::*;
use crate::tsdb::STALE_NAN;

const S: Millis = 1000;
/// An arbitrary, minute-aligned base time so nothing depends on time zero.
const T0: Millis = 1_700_000_040_000;

fn lbl(s: &str) -> Labels {
    // `name{a="1",b="2"}` shorthand for tests.
    let (name, rest) = s.split_once('{').unwrap_or((s, "}"));
    let mut l = Labels::new();
    if !name.is_empty() {
        l.set("__name__", name);
    }
    for kv in rest
        .trim_end_matches('}')
        .split(',')
        .filter(|x| !x.is_empty())
    {
        let (k, v) = kv.split_once('=').unwrap();
        l.set(k.trim(), v.trim().trim_matches('"'));
    }
    l
}

fn store(series: &[(&str, &[(Millis, f64)])]) -> SeriesStore {
    let mut s = SeriesStore::new(24 * 3600 * S);
    for (l, pts) in series {
        for (t, v) in pts.iter() {
            s.append(lbl(l), T0 + t, *v).unwrap();
        }
    }
    s
}

fn vec_of(store: &SeriesStore, q: &str, at: Millis) -> Vec<(String, f64)> {
    match eval_instant(&parse(q).unwrap(), store, T0 + at) {
        Ok(Value::Vector(v)) => {
            let mut out: Vec<(String, f64)> = v
                .into_iter()
                .map(|s| (s.labels.to_string(), s.value))
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        other => panic!("{q}: expected a vector, got {other:?}"),
    }
}

fn one(store: &SeriesStore, q: &str, at: Millis) -> f64 {
    let v = vec_of(store, q, at);
    assert_eq!(v.len(), 1, "{q}: {v:?}");
    v[0].1
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

fn every_15s(from: Millis, vals: &[f64]) -> Vec<(Millis, f64)> {
    vals.iter()
        .enumerate()
        .map(|(i, v)| (from + i as Millis * 15 * S, *v))
        .collect()
}

#[test]
fn rate_extrapolates_to_window_edges() {
    // Samples at 5,20,35,50s of 100..145; window [0,60]. Starts 5s and
    // ends 10s from the edges (< 1.1 * 15s), so the 45 increase over 45s
    // extends to 60s: increase 60, rate 1/s.
    let pts = every_15s(5 * S, &[100.0, 115.0, 130.0, 145.0]);
    let st = store(&[("c", &pts)]);
    close(one(&st, "increase(c[1m])", 60 * S), 60.0);
    close(one(&st, "rate(c[1m])", 60 * S), 1.0);
}

#[test]
fn rate_does_not_extrapolate_below_zero() {
    // Same spacing, values 0..45: the zero point is at the first sample
    // (0s before it), so only the 10s at the end extends: 45 * 55/45 = 55.
    let pts = every_15s(5 * S, &[0.0, 15.0, 30.0, 45.0]);
    let st = store(&[("c", &pts)]);
    close(one(&st, "increase(c[1m])", 60 * S), 55.0);
    close(one(&st, "rate(c[1m])", 60 * S), 55.0 / 60.0);
}

#[test]
fn rate_extrapolates_half_an_interval_when_series_starts_late() {
    // Samples at 30s and 45s only (100, 115), window [0,60]: 30s to the
    // start exceeds 1.1 * 15s, so only 7.5s is added there; 15s to the end
    // is added fully: 15 * (15 + 7.5 + 15)/15 = 37.5; rate 37.5/60.
    let st = store(&[("c", &[(30 * S, 100.0), (45 * S, 115.0)])]);
    close(one(&st, "increase(c[1m])", 60 * S), 37.5);
    close(one(&st, "rate(c[1m])", 60 * S), 0.625);
}

#[test]
fn rate_handles_counter_resets() {
    // 100,115,5,20: raw change -80, plus 115 at the reset = 35. Zero point
    // is far before the window, so extrapolate 5s + 10s: 35 * 60/45.
    let pts = every_15s(5 * S, &[100.0, 115.0, 5.0, 20.0]);
    let st = store(&[("c", &pts)]);
    close(one(&st, "increase(c[1m])", 60 * S), 35.0 * 60.0 / 45.0);
    close(one(&st, "resets(c[1m])", 60 * S), 1.0);
    // irate: last two samples 5 -> 20 over 15s.
    close(one(&st, "irate(c[1m])", 60 * S), 1.0);
    close(one(&st, "changes(c[1m])", 60 * S), 3.0);
}

#[test]
fn irate_after_reset_uses_the_new_value() {
    let pts = every_15s(5 * S, &[100.0, 130.0, 6.0]);
    let st = store(&[("c", &pts)]);
    // 130 -> 6 is a reset: 6 / 15s.
    close(one(&st, "irate(c[1m])", 60 * S), 0.4);
    // idelta does not know about counters: 6 - 130.
    close(one(&st, "idelta(c[1m])", 60 * S), -124.0);
}

#[test]
fn delta_extrapolates_gauges_without_zero_limit() {
    // 10,5,20,0 at 5..50s: -10 * 60/45.
    let pts = every_15s(5 * S, &[10.0, 5.0, 20.0, 0.0]);
    let st = store(&[("g", &pts)]);
    close(one(&st, "delta(g[1m])", 60 * S), -10.0 * 60.0 / 45.0);
}

#[test]
fn rate_needs_two_samples_and_drops_the_name() {
    let st = store(&[
        ("c{a=1}", &[(50 * S, 1.0)]),
        ("c{a=2}", &[(40 * S, 1.0), (50 * S, 2.0)]),
    ]);
    let v = vec_of(&st, "rate(c[1m])", 60 * S);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].0, r#"{a="2"}"#);
}

#[test]
fn predict_linear_and_deriv() {
    // 10, 20, 30 at 0, 60, 120s: slope 1/6 per second. Evaluated at 120s
    // over [2m] (closed on the left in 2.42, so all three samples count):
    // 30 + 600/6 = 130.
    let st = store(&[("x", &[(0, 10.0), (60 * S, 20.0), (120 * S, 30.0)])]);
    close(one(&st, "predict_linear(x[2m], 600)", 120 * S), 130.0);
    close(one(&st, "deriv(x[2m])", 120 * S), 1.0 / 6.0);
    // Intercept is at the evaluation time, not the last sample: at 150s the
    // fitted line is at 35, so 35 + 100.
    close(one(&st, "predict_linear(x[3m], 600)", 150 * S), 135.0);
}

#[test]
fn predict_linear_least_squares_on_noisy_points() {
    // x = -30,-20,-10,0 s (relative to eval time), y = 1, 3, 2, 4.
    // mean x = -15, mean y = 2.5; cov = sum(dx*dy) = (-15*-1.5)+(-5*0.5)+(5*-0.5)+(15*1.5) = 40;
    // var = 225+25+25+225 = 500; slope = 0.08; intercept = 2.5 + 0.08*15 = 3.7.
    let st = store(&[(
        "y",
        &[(30 * S, 1.0), (40 * S, 3.0), (50 * S, 2.0), (60 * S, 4.0)],
    )]);
    close(one(&st, "predict_linear(y[1m], 10)", 60 * S), 3.7 + 0.8);
}

fn hist_store(counts: &[(&str, f64)]) -> SeriesStore {
    let mut s = SeriesStore::new(24 * 3600 * S);
    for (le, c) in counts {
        s.append(lbl(&format!("h_bucket{{le={le},job=a}}")), T0, *c)
            .unwrap();
    }
    s
}

#[test]
fn histogram_quantile_interpolates_within_buckets() {
    let st = hist_store(&[("0.1", 50.0), ("0.5", 80.0), ("1", 100.0), ("+Inf", 100.0)]);
    // rank 90 falls in (0.5, 1]: 0.5 + 0.5 * (90-80)/20 = 0.75.
    close(one(&st, "histogram_quantile(0.9, h_bucket)", 0), 0.75);
    // rank 50 is exactly the first bucket's count: its upper bound.
    close(one(&st, "histogram_quantile(0.5, h_bucket)", 0), 0.1);
    // rank 99: 0.5 + 0.5 * 19/20.
    close(one(&st, "histogram_quantile(0.99, h_bucket)", 0), 0.975);
    let v = vec_of(&st, "histogram_quantile(0.9, h_bucket)", 0);
    assert_eq!(v[0].0, r#"{job="a"}"#);
    assert_eq!(
        one(&st, "histogram_quantile(1.5, h_bucket)", 0),
        f64::INFINITY
    );
    assert_eq!(
        one(&st, "histogram_quantile(-1, h_bucket)", 0),
        f64::NEG_INFINITY
    );
}

#[test]
fn histogram_quantile_in_inf_bucket_returns_highest_bound() {
    let st = hist_store(&[("0.1", 50.0), ("1", 100.0), ("+Inf", 120.0)]);
    // rank 118.8 is beyond the last finite bucket: its bound, 1.
    close(one(&st, "histogram_quantile(0.99, h_bucket)", 0), 1.0);
}

#[test]
fn histogram_quantile_fixes_monotonicity_and_needs_inf() {
    // 0.5's count 45 < 50 is raised to 50; rank 50 -> 0.1.
    let st = hist_store(&[("0.1", 50.0), ("0.5", 45.0), ("1", 100.0), ("+Inf", 100.0)]);
    close(one(&st, "histogram_quantile(0.5, h_bucket)", 0), 0.1);
    // rank 75 in (0.5, 1]: 0.5 + 0.5 * 25/50.
    close(one(&st, "histogram_quantile(0.75, h_bucket)", 0), 0.75);
    let st = hist_store(&[("0.1", 50.0), ("1", 100.0)]);
    assert!(one(&st, "histogram_quantile(0.5, h_bucket)", 0).is_nan());
}

#[test]
fn histogram_quantile_of_summed_rates() {
    // Two instances, each bucket growing linearly; sum by (le) then rate.
    let mut st = SeriesStore::new(3600 * S);
    for inst in ["i1", "i2"] {
        for (le, per_s) in [("1", 1.0), ("2", 3.0), ("+Inf", 4.0)] {
            for k in 0..=4 {
                st.append(
                    lbl(&format!("lat_bucket{{le={le},instance={inst},room=r}}")),
                    T0 + k * 15 * S,
                    per_s * (k * 15) as f64 + 100.0,
                )
                .unwrap();
            }
        }
    }
    // Rates per le summed over instances: 2, 6, 8 per second. rank 0.5*8 =
    // 4 falls in (1, 2]: 1 + 1 * (4-2)/(6-2) = 1.5.
    let v = vec_of(
        &st,
        "histogram_quantile(0.5, sum by (le, room) (rate(lat_bucket[1m])))",
        60 * S,
    );
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].0, r#"{room="r"}"#);
    close(v[0].1, 1.5);
}

#[test]
fn lookback_is_five_minutes_closed_on_the_left() {
    let st = store(&[("g", &[(0, 7.0)])]);
    close(one(&st, "g", 0), 7.0);
    close(one(&st, "g", 300 * S), 7.0);
    assert!(vec_of(&st, "g", 300 * S + 1).is_empty());
    assert!(vec_of(&st, "g", -1).is_empty());
}

#[test]
fn stale_marker_ends_a_series_at_once() {
    let st = store(&[("g", &[(0, 7.0), (15 * S, STALE_NAN)])]);
    close(one(&st, "g", 14 * S), 7.0);
    assert!(vec_of(&st, "g", 15 * S).is_empty());
    assert!(vec_of(&st, "g", 60 * S).is_empty());
    // Range selectors skip the marker rather than returning NaN.
    close(one(&st, "count_over_time(g[1m])", 60 * S), 1.0);
}

#[test]
fn range_selector_is_closed_on_the_left() {
    let st = store(&[("g", &every_15s(0, &[1.0, 2.0, 3.0, 4.0, 5.0]))]);
    // [0, 60s] holds all five samples in 2.42 (3.x would see four).
    close(one(&st, "count_over_time(g[1m])", 60 * S), 5.0);
    close(one(&st, "sum_over_time(g[1m])", 60 * S), 15.0);
    close(one(&st, "avg_over_time(g[1m])", 60 * S), 3.0);
    close(one(&st, "min_over_time(g[1m])", 60 * S), 1.0);
    close(one(&st, "max_over_time(g[1m])", 60 * S), 5.0);
    close(one(&st, "last_over_time(g[1m])", 60 * S), 5.0);
    close(one(&st, "present_over_time(g[1m])", 60 * S), 1.0);
    // Population variance of 1..5 is 2.
    close(one(&st, "stdvar_over_time(g[1m])", 60 * S), 2.0);
    close(one(&st, "stddev_over_time(g[1m])", 60 * S), 2f64.sqrt());
    // rank 0.5 * 4 = 2 -> 3; 0.9 * 4 = 3.6 -> 4.6.
    close(one(&st, "quantile_over_time(0.5, g[1m])", 60 * S), 3.0);
    close(one(&st, "quantile_over_time(0.9, g[1m])", 60 * S), 4.6);
    // last_over_time keeps the metric name; the others drop it.
    assert_eq!(vec_of(&st, "last_over_time(g[1m])", 60 * S)[0].0, "g{}");
    assert_eq!(vec_of(&st, "max_over_time(g[1m])", 60 * S)[0].0, "{}");
}

#[test]
fn offset_and_at_modifiers() {
    let st = store(&[("g", &every_15s(0, &[1.0, 2.0, 3.0, 4.0, 5.0]))]);
    close(one(&st, "g offset 30s", 60 * S), 3.0);
    close(one(&st, "g offset -15s", 30 * S), 4.0);
    let at = (T0 + 15 * S) as f64 / 1000.0;
    close(one(&st, &format!("g @ {at}"), 60 * S), 2.0);
    close(one(&st, "g @ end()", 45 * S), 4.0);
    close(
        one(&st, "sum_over_time(g[30s] offset 15s)", 60 * S),
        2.0 + 3.0 + 4.0,
    );
}

fn room_store() -> SeriesStore {
    store(&[
        ("cap{room=a,account=x}", &[(0, 100.0)]),
        ("cap{room=b,account=x}", &[(0, 200.0)]),
        ("listeners{room=a,account=x,instance=1}", &[(0, 50.0)]),
        ("listeners{room=a,account=x,instance=2}", &[(0, 99.0)]),
        ("listeners{room=b,account=x,instance=1}", &[(0, 150.0)]),
    ])
}

#[test]
fn group_left_comparison_keeps_the_many_side() {
    let st = room_store();
    // cap * 0.95: a -> 95, b -> 190. Only instance 2 of room a (99) passes.
    let v = vec_of(
        &st,
        "listeners > on(room, account) group_left cap * 0.95",
        0,
    );
    assert_eq!(
        v,
        vec![(
            r#"listeners{account="x", instance="2", room="a"}"#.to_owned(),
            99.0
        )]
    );
    // With bool every pair is kept, as 0/1, without the name.
    let v = vec_of(
        &st,
        "listeners > bool on(room, account) group_left cap * 0.95",
        0,
    );
    assert_eq!(v.len(), 3);
    assert_eq!(v.iter().map(|x| x.1).sum::<f64>(), 1.0);
    assert!(v.iter().all(|x| x.0.starts_with('{')));
}

#[test]
fn group_left_copies_labels_from_the_one_side() {
    let st = store(&[
        ("req{job=a,instance=1}", &[(0, 10.0)]),
        ("info{job=a,version=v2}", &[(0, 1.0)]),
    ]);
    let v = vec_of(&st, "req * on(job) group_left(version) info", 0);
    assert_eq!(
        v,
        vec![(r#"{instance="1", job="a", version="v2"}"#.to_owned(), 10.0)]
    );
}

#[test]
fn one_to_one_arithmetic_and_its_errors() {
    let st = room_store();
    // sum by room then divide: a: 149/100, b: 150/200.
    let v = vec_of(&st, "sum by (room) (listeners) / sum by (room) (cap)", 0);
    assert_eq!(v.len(), 2);
    close(v[0].1, 1.49);
    close(v[1].1, 0.75);
    // Without group_left, two listeners series match one cap: an error.
    let e = eval_instant(
        &parse("listeners / on(room, account) cap").unwrap(),
        &st,
        T0,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("many-to-one matching must be explicit"),
        "{e}"
    );
    let e = eval_instant(&parse("cap / on(account) listeners").unwrap(), &st, T0).unwrap_err();
    assert!(
        e.to_string()
            .contains("duplicate series for the match group"),
        "{e}"
    );
}

#[test]
fn ignoring_and_default_matching() {
    let st = store(&[
        ("a{job=j,instance=1,extra=z}", &[(0, 6.0)]),
        ("b{job=j,instance=1}", &[(0, 3.0)]),
    ]);
    assert!(vec_of(&st, "a / b", 0).is_empty());
    let v = vec_of(&st, "a / ignoring(extra) b", 0);
    assert_eq!(v, vec![(r#"{instance="1", job="j"}"#.to_owned(), 2.0)]);
}

#[test]
fn scalar_vector_ops_and_filters() {
    let st = room_store();
    assert_eq!(
        vec_of(&st, "cap > 150", 0),
        vec![(r#"cap{account="x", room="b"}"#.to_owned(), 200.0)]
    );
    // Scalar on the left of a comparison still keeps the vector's value.
    assert_eq!(vec_of(&st, "150 < cap", 0)[0].1, 200.0);
    let v = vec_of(&st, "cap > bool 150", 0);
    assert_eq!(v.iter().map(|x| x.1).collect::<Vec<_>>(), vec![0.0, 1.0]);
    close(one(&st, "cap{room=\"a\"} - 1", 0), 99.0);
    close(one(&st, "2 ^ 3 * cap{room=\"a\"} % 7", 0), 800.0 % 7.0);
    close(one(&st, "-cap{room=\"a\"}", 0), -100.0);
    match eval_instant(&parse("1 + 2 * 3").unwrap(), &st, T0).unwrap() {
        Value::Scalar(v) => close(v, 7.0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn set_operators() {
    let st = store(&[
        ("fb{room=a,speaker=s1}", &[(0, 0.9)]),
        ("fb{room=a,speaker=s2}", &[(0, 0.7)]),
        ("fb{room=b,speaker=s1}", &[(0, 0.1)]),
        ("muted{room=a,speaker=s1,instance=x}", &[(0, 1.0)]),
        ("muted{room=a,speaker=s2,instance=x}", &[(0, 0.0)]),
    ]);
    let v = vec_of(&st, "fb > 0.5 unless on(room, speaker) muted == 1", 0);
    assert_eq!(v, vec![(r#"fb{room="a", speaker="s2"}"#.to_owned(), 0.7)]);
    let v = vec_of(&st, "fb and on(room, speaker) muted", 0);
    assert_eq!(v.len(), 2);
    let v = vec_of(&st, "fb{room=\"b\"} or on(room) muted", 0);
    // muted{room=a} is added (room a not on the left), twice (two speakers).
    assert_eq!(v.len(), 3);
}

#[test]
fn aggregations() {
    let st = store(&[
        ("v{g=a,i=1}", &[(0, 2.0)]),
        ("v{g=a,i=2}", &[(0, 4.0)]),
        ("v{g=a,i=3}", &[(0, 4.0)]),
        ("v{g=a,i=4}", &[(0, 4.0)]),
        ("v{g=b,i=5}", &[(0, 5.0)]),
        ("v{g=b,i=6}", &[(0, 5.0)]),
        ("v{g=b,i=7}", &[(0, 7.0)]),
        ("v{g=b,i=8}", &[(0, 9.0)]),
    ]);
    close(one(&st, "sum(v)", 0), 40.0);
    close(one(&st, "avg(v)", 0), 5.0);
    close(one(&st, "count(v)", 0), 8.0);
    close(one(&st, "group(v)", 0), 1.0);
    close(one(&st, "min(v)", 0), 2.0);
    close(one(&st, "max(v)", 0), 9.0);
    // Classic example: population stddev of 2,4,4,4,5,5,7,9 is 2.
    close(one(&st, "stddev(v)", 0), 2.0);
    close(one(&st, "stdvar(v)", 0), 4.0);
    // Median of 8 values: rank 3.5 between 4 and 5.
    close(one(&st, "quantile(0.5, v)", 0), 4.5);
    assert_eq!(
        vec_of(&st, "sum by (g) (v)", 0),
        vec![
            (r#"{g="a"}"#.to_owned(), 14.0),
            (r#"{g="b"}"#.to_owned(), 26.0)
        ]
    );
    assert_eq!(vec_of(&st, "sum without (i) (v)", 0).len(), 2);
    let top = vec_of(&st, "topk(2, v)", 0);
    assert_eq!(top.iter().map(|x| x.1).collect::<Vec<_>>(), vec![7.0, 9.0]);
    assert!(top[0].0.starts_with("v{"), "topk keeps the name");
    let bottom = vec_of(&st, "bottomk by (g) (1, v)", 0);
    assert_eq!(
        bottom.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![2.0, 5.0]
    );
    let cv = vec_of(&st, "count_values(\"val\", v)", 0);
    assert_eq!(cv.len(), 5);
    assert!(cv.contains(&(r#"{val="4"}"#.to_owned(), 3.0)), "{cv:?}");
}

#[test]
fn label_functions() {
    let st = store(&[("up{job=api-server,service=\"a:c\"}", &[(0, 1.0)])]);
    let v = vec_of(
        &st,
        r#"label_replace(up, "foo", "$1", "service", "(.*):.*")"#,
        0,
    );
    assert_eq!(v[0].0, r#"up{foo="a", job="api-server", service="a:c"}"#);
    // No match: unchanged.
    let v = vec_of(
        &st,
        r#"label_replace(up, "foo", "$1", "service", "x(.*)")"#,
        0,
    );
    assert_eq!(v[0].0, r#"up{job="api-server", service="a:c"}"#);
    let v = vec_of(&st, r#"label_join(up, "both", "-", "job", "service")"#, 0);
    assert!(v[0].0.contains(r#"both="api-server-a:c""#), "{v:?}");
}

#[test]
fn absent_and_absent_over_time() {
    let st = store(&[("up{job=a}", &[(0, 1.0)])]);
    assert!(vec_of(&st, "absent(up)", 0).is_empty());
    let v = vec_of(&st, r#"absent(nope{job="x", env=~"p.*"})"#, 0);
    assert_eq!(v, vec![(r#"{job="x"}"#.to_owned(), 1.0)]);
    let v = vec_of(&st, r#"absent_over_time(up{job="a"}[1m])"#, 10 * 60 * S);
    assert_eq!(v, vec![(r#"{job="a"}"#.to_owned(), 1.0)]);
    assert!(vec_of(&st, "absent_over_time(up[1m])", 30 * S).is_empty());
}

#[test]
fn math_and_misc_functions() {
    let st = store(&[("x{a=1}", &[(0, -2.5)]), ("y", &[(10 * S, 16.0)])]);
    close(one(&st, "abs(x)", 0), 2.5);
    close(one(&st, "ceil(x)", 0), -2.0);
    close(one(&st, "floor(x)", 0), -3.0);
    // Prometheus rounds half up: -2.5 -> -2.
    close(one(&st, "round(x)", 0), -2.0);
    close(one(&st, "round(y, 5)", 10 * S), 15.0);
    close(one(&st, "sqrt(y)", 10 * S), 4.0);
    close(one(&st, "log2(y)", 10 * S), 4.0);
    close(one(&st, "log10(y * 625)", 10 * S), 4.0);
    close(one(&st, "ln(exp(y))", 10 * S), 16.0);
    close(one(&st, "clamp(x, -1, 1)", 0), -1.0);
    close(one(&st, "clamp_min(x, 0)", 0), 0.0);
    close(one(&st, "clamp_max(y, 10)", 10 * S), 10.0);
    assert!(vec_of(&st, "clamp(x, 1, -1)", 0).is_empty());
    close(
        one(&st, "timestamp(y)", 20 * S),
        (T0 + 10 * S) as f64 / 1000.0,
    );
    close(
        one(&st, "timestamp(y * 1)", 20 * S),
        (T0 + 20 * S) as f64 / 1000.0,
    );
    close(
        one(&st, "vector(time())", 20 * S),
        (T0 + 20 * S) as f64 / 1000.0,
    );
    match eval_instant(&parse("scalar(y)").unwrap(), &st, T0 + 10 * S).unwrap() {
        Value::Scalar(v) => close(v, 16.0),
        other => panic!("{other:?}"),
    }
    let sorted = match eval_instant(&parse("sort_desc(x or y)").unwrap(), &st, T0 + 10 * S).unwrap()
    {
        Value::Vector(v) => v.iter().map(|s| s.value).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(sorted, vec![16.0, -2.5]);
}

#[test]
fn subqueries_evaluate_at_aligned_steps() {
    // A counter rising 1/s; rate over 30s is 1 everywhere; max over a 2m
    // subquery at 30s steps is 1.
    let pts: Vec<(Millis, f64)> = (0..=20).map(|k| (k * 15 * S, (k * 15) as f64)).collect();
    let st = store(&[("c", &pts)]);
    close(
        one(&st, "max_over_time(rate(c[30s])[2m:30s])", 300 * S),
        1.0,
    );
    // T0 is minute-aligned: steps at 180,210,240,270,300s -> 5 points.
    close(
        one(&st, "count_over_time(rate(c[30s])[2m:30s])", 300 * S),
        5.0,
    );
}

#[test]
fn duplicate_labelsets_after_dropping_names_are_errors() {
    let st = store(&[("a{x=1}", &[(0, 1.0)]), ("b{x=1}", &[(0, 1.0)])]);
    let e = eval_instant(&parse(r#"abs({x="1"})"#).unwrap(), &st, T0).unwrap_err();
    assert!(e.to_string().contains("same labelset"), "{e}");
}

#[test]
fn unsupported_constructs_are_named() {
    let st = store(&[]);
    let e = eval_instant(&parse("histogram_count(x)").unwrap(), &st, T0).unwrap_err();
    assert!(e.to_string().contains("histogram_count"), "{e}");
    assert!(matches!(e, EvalError::Unsupported(_)));
}

#[test]
fn parse_errors_carry_columns() {
    let e = parse("rate(foo[5m]").unwrap_err();
    assert_eq!(e.col, Some(5), "{e}");
    let e = parse("sum(rate(x[1m])))").unwrap_err();
    assert_eq!(e.col, Some(17), "{e}");
    let e = parse("foo > > 1").unwrap_err();
    assert_eq!(e.col, Some(7), "{e}");
    let e = parse("foo{a=\"1\"} $ 2").unwrap_err();
    assert_eq!(e.col, Some(12), "{e}");
    let e = parse("nosuchfn(foo)").unwrap_err();
    assert_eq!(e.col, Some(1), "{e}");
    assert!(parse("").is_err());
    let e = parse("a +\n  > 2").unwrap_err();
    assert_eq!(e.line_col("a +\n  > 2"), Some((2, 3)), "{e:?}");
}

/// The borrowed fast path against the general one: a `__name__` regex
/// matcher selects the same series but sends the query down the general
/// path, so both spellings must give identical results (values and label
/// sets, in order), stale markers and counter resets included.
#[test]
fn the_fast_path_agrees_with_the_general_one() {
    let mut s = SeriesStore::new(24 * 3600 * S);
    for i in 0..12u32 {
        let l = lbl(&format!(
            "x{{a=\"{}\",b=\"{}\",i=\"{i}\",le=\"{}\"}}",
            i % 3,
            i % 2,
            ["0.1", "1", "+Inf"][(i % 3) as usize]
        ));
        for k in 0..40i64 {
            let v = if i == 5 && k == 20 {
                STALE_NAN
            } else if i == 7 && k > 25 {
                k as f64
            } else {
                (i as f64 + 1.0) * k as f64 + if i == 3 { f64::NAN } else { 0.0 }
            };
            s.append(l.clone(), T0 + k * 10 * S, v).unwrap();
        }
    }
    let shapes = [
        "sum by (a, b) (rate(@[5m])) > 1",
        "sum by (a) (rate(@[5m]))",
        "avg without (b) (increase(@[2m]))",
        "count by (__name__, a) (@)",
        "max by (a) (@) < 100",
        "min(@)",
        "stddev by (b) (@)",
        "quantile by (a) (0.9, delta(@[5m]))",
        "group by (b) (@)",
        "avg_over_time(@[5m]) > 10",
        "last_over_time(@[5m])",
        "100 > bool max_over_time(@[1m])",
        "-1 < sum_over_time(@[5m])",
        "@ * 2",
        "@ >= 20",
        "irate(@[5m])",
        "deriv(@[5m]) / 2",
        "changes(@[5m]) + resets(@[5m])",
        "stddev_over_time(@[5m]) != 0",
        "histogram_quantile(0.9, sum by (le, a) (rate(@[5m])))",
    ];
    for q in shapes {
        for at in [190 * S, 200 * S, 390 * S, 700 * S] {
            let fast = eval_instant(&parse(&q.replace('@', "x")).unwrap(), &s, T0 + at);
            let general = eval_instant(
                &parse(&q.replace('@', "{__name__=~\"x\"}")).unwrap(),
                &s,
                T0 + at,
            );
            assert_eq!(format!("{fast:?}"), format!("{general:?}"), "{q} at {at}");
        }
    }
}

/// Deep nesting from a rule file or a label rendered into a runbook's
/// query used to overflow the parser's stack and abort the process.
#[test]
fn deep_nesting_is_refused_before_the_parser_sees_it() {
    let n = 5000;
    let cases = [
        format!("{}up{}", "(".repeat(n), ")".repeat(n)),
        format!("{}1", "-".repeat(n)),
        format!("{}up", "- ".repeat(n)),
        format!("up{}", " + up".repeat(n)),
        format!("up{}", " or up".repeat(n)),
        format!("{}up{}", "abs(".repeat(n), ")".repeat(n)),
        format!("{}up{}", "sum(rate(".repeat(n / 2), "[5m]))".repeat(n / 2)),
        // Unbalanced: still refused, not parsed.
        "(".repeat(n),
    ];
    for expr in cases {
        let e = parse(&expr).unwrap_err();
        assert!(
            e.message.contains("nests too deep") || e.message.contains("bytes"),
            "{}: {e}",
            &expr[..40]
        );
    }
}

#[test]
fn long_expressions_are_refused_by_size() {
    let expr = format!("up{}", " + up".repeat(32 * 1024));
    let e = parse(&expr).unwrap_err();
    assert!(e.message.contains("firebreak parses at most"), "{e}");
    assert_eq!(e.col, None);
}

#[test]
fn nesting_up_to_the_bound_parses_and_evaluates() {
    // On a thread with the runtime's 2 MiB stack, in a debug build: the
    // bound must leave the parser and the evaluator room, for every shape.
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            use crate::limits::{MAX_PROMQL_NESTING, PROMQL_BRACKET_WEIGHT};
            let s = store(&[("up", &[(T0, 2.0)])]);
            let deep = MAX_PROMQL_NESTING / PROMQL_BRACKET_WEIGHT;
            for (open, close) in [
                ("(", ")"),
                ("abs(", ")"),
                ("sum by (job) (", ")"),
                ("clamp_min(", ", 0)"),
                ("label_replace(", ", \"a\", \"b\", \"c\", \"d\")"),
            ] {
                let e = format!("{}up{}", open.repeat(deep), close.repeat(deep));
                assert_eq!(one(&s, &e, T0), 2.0, "{open}");
            }
            let mixed = format!(
                "{}up{}",
                "(-".repeat(deep - deep / 4),
                ")".repeat(deep - deep / 4)
            );
            assert_eq!(one(&s, &mixed, T0).abs(), 2.0);
            let chain = format!("up{}", " + up".repeat(MAX_PROMQL_NESTING));
            assert_eq!(one(&s, &chain, T0), 2.0 * (MAX_PROMQL_NESTING + 1) as f64);
            let negs = format!("{}up", "-".repeat(MAX_PROMQL_NESTING));
            assert_eq!(one(&s, &negs, T0), 2.0);
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn nested_subqueries_are_bounded_in_all() {
    let s = store(&[("up", &every_15s(T0 - 3600 * S, &[1.0; 241]))]);
    // One subquery of 61 steps is fine; nesting three multiplies them.
    assert_eq!(one(&s, "max_over_time(up[1h:1m])", T0), 1.0);
    let nested = "max_over_time(max_over_time(max_over_time(up[1h:1m])[1h:1m])[1h:1m])";
    let e = query(nested, &s, T0).unwrap_err();
    assert!(
        e.to_string().contains("more than 100000 steps in all"),
        "{e}"
    );
}

#[test]
fn what_sits_in_strings_and_matchers_is_not_nesting() {
    // Brackets and operators inside string literals, and the `=`, `!=`,
    // `=~` of matchers, do not count.
    let inside = "((((-+".repeat(1000);
    parse(&format!("up{{job=\"{inside}\"}}")).unwrap();
    let matchers: Vec<String> = (0..300).map(|i| format!("l{i}!=\"x\"")).collect();
    parse(&format!("up{{{}}}", matchers.join(","))).unwrap();
    // A quote escaped inside a string does not end it.
    parse(&format!("up{{job=\"\\\"{}\"}}", "(".repeat(1000))).unwrap();
}

#[test]
fn the_refusal_points_at_where_the_bound_was_passed() {
    let expr = format!("{}up", "(".repeat(300));
    let e = parse(&expr).unwrap_err();
    assert_eq!(e.col, Some(65));
    let expr = format!("up{}", "+up".repeat(300));
    let e = parse(&expr).unwrap_err();
    // The 257th `+`, after `up` and 256 `+up`.
    assert_eq!(e.col, Some(3 + 3 * 256));
}
