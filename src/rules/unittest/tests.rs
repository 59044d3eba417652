//! Unit tests for rule unit tests: the series notation (checked against
//! promtool 2.42 by hand), located validation errors, and the runner's
//! comparisons and report text.

use super::*;
use crate::rules::parse_rule_file;

fn vals(s: &str) -> Vec<SeriesValue> {
    expand_series_values(s).unwrap()
}

fn v(xs: &[f64]) -> Vec<SeriesValue> {
    xs.iter().map(|x| SeriesValue::Value(*x)).collect()
}

#[test]
fn expanding_notation() {
    assert_eq!(vals("1+1x3"), v(&[1.0, 2.0, 3.0, 4.0]));
    assert_eq!(vals("1-1x3"), v(&[1.0, 0.0, -1.0, -2.0]));
    assert_eq!(vals("-2+4x3"), v(&[-2.0, 2.0, 6.0, 10.0]));
    assert_eq!(vals(" 1-2x4"), v(&[1.0, -1.0, -3.0, -5.0, -7.0]));
    // promtool 2.42 accepts the shorthand: n+1 copies.
    assert_eq!(vals("1x3"), v(&[1.0, 1.0, 1.0, 1.0]));
    // Blanks repeat exactly n times.
    assert_eq!(vals("_x3"), vec![SeriesValue::Missing; 3]);
    assert_eq!(vals("1 _ 2"), {
        let mut x = v(&[1.0]);
        x.push(SeriesValue::Missing);
        x.push(SeriesValue::Value(2.0));
        x
    });
    let s = vals("stale");
    assert!(matches!(s[0], SeriesValue::Value(x) if crate::tsdb::is_stale(x)));
    assert_eq!(vals("1e+3 1.5e-1+1e0x1"), v(&[1000.0, 0.15, 1.15]));
    assert_eq!(vals("+Inf -Inf"), v(&[f64::INFINITY, f64::NEG_INFINITY]));
    assert!(matches!(vals("NaN")[0], SeriesValue::Value(x) if x.is_nan()));
    assert_eq!(vals(""), vec![]);
}

#[test]
fn bad_notation_is_located() {
    let e = expand_series_values("1 2 abc").unwrap_err();
    assert_eq!(e.col, 5, "{e}");
    let e = expand_series_values("1+1xq").unwrap_err();
    assert_eq!(e.col, 1, "{e}");
    assert!(expand_series_values("1+1").is_err());
}

#[test]
fn series_descriptions() {
    let l = parse_series_labels(r#"up{job="a", instance='b:1'}"#).unwrap();
    assert_eq!(l.metric_name(), Some("up"));
    assert_eq!(l.get("instance"), Some("b:1"));
    let l = parse_series_labels(r#"{__name__="x", a="q\"t"}"#).unwrap();
    assert_eq!((l.metric_name(), l.get("a")), (Some("x"), Some("q\"t")));
    assert_eq!(parse_series_labels("x").unwrap().len(), 1);
    assert_eq!(parse_series_labels(r#"x{a=~"b"}"#).unwrap_err().1, 5);
    assert!(parse_series_labels(r#"x{a="b""#).is_err());
}

const FILE: &str = r#"rule_files: [r.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="a"}'
        values: '1 1 zz'
      - series: 'up{job=~"b"}'
        values: '1'
    alert_rule_test:
      - eval_time: 5q
        alertname: X
    promql_expr_test:
      - expr: 'sum(up'
        eval_time: 1m
"#;

#[test]
fn every_validation_error_is_located() {
    let e = parse_test_file("t.yml", FILE).unwrap_err();
    let lines: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 4, "{e}");
    assert!(
        lines[0].starts_with("t.yml:7:22: tests[0].input_series[0].values: invalid series values"),
        "{e}"
    );
    assert!(
        lines[1].starts_with("t.yml:8:25: tests[0].input_series[1].series: invalid series"),
        "{e}"
    );
    assert!(
        lines[2].starts_with("t.yml:11:20: tests[0].alert_rule_test[0].eval_time"),
        "{e}"
    );
    assert!(
        lines[3].starts_with("t.yml:14:19: tests[0].promql_expr_test[0].expr: invalid PromQL"),
        "{e}"
    );
}

#[test]
fn unknown_fields_are_located() {
    let e = parse_test_file("t.yml", "rule_files: []\ntests:\n  - intervl: 1m\n").unwrap_err();
    let d = &e.0[0];
    assert_eq!(d.pos.map(|p| p.line), Some(3), "{e}");
    assert!(d.message.contains("intervl"), "{e}");
}

#[test]
fn repeated_group_in_eval_order() {
    let e = parse_test_file("t.yml", "rule_files: []\ngroup_eval_order: [a, b, a]\n").unwrap_err();
    assert_eq!(e.0[0].pos, Some(Pos::new(2, 26)), "{e}");
}

const RULES: &str = r#"groups:
- name: g
  rules:
  - record: job:up:sum
    expr: sum by (job) (up)
  - alert: Down
    expr: up == 0
    for: 2m
    labels: {severity: page}
    annotations: {summary: '{{ $labels.job }} down, value {{ $value }}'}
"#;

fn run(test: &str) -> Vec<GroupReport> {
    let tf = parse_test_file("t.yml", test).unwrap();
    let groups = parse_rule_file("r.yml", RULES).unwrap().groups;
    run_test_file(&tf, &groups)
}

#[test]
fn alerts_fire_after_for_and_compare_with_labels_and_annotations() {
    let r = run(r#"rule_files: [r.yml]
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="a"}'
        values: '1 0x5'
    alert_rule_test:
      - eval_time: 2m
        alertname: Down
      - eval_time: 3m30s
        alertname: Down
        exp_alerts:
          - exp_labels: {job: a, severity: page}
            exp_annotations: {summary: 'a down, value 0'}
    promql_expr_test:
      - expr: job:up:sum
        eval_time: 1m
        exp_samples: [{labels: 'job:up:sum{job="a"}', value: 0}]
"#);
    assert_eq!(r[0].failures, vec![], "{}", r[0]);
}

#[test]
fn mismatches_report_expected_and_got() {
    let r = run(r#"rule_files: [r.yml]
tests:
  - name: wrong
    interval: 1m
    input_series:
      - series: 'up{job="a"}'
        values: '0x5'
    alert_rule_test:
      - eval_time: 3m
        alertname: Down
    promql_expr_test:
      - expr: up
        eval_time: 1m
        exp_samples: [{labels: 'up{job="a"}', value: 1}]
      - expr: vector(0) / 0
        exp_samples: [{value: .nan}]
"#);
    let text = r[0].to_string();
    assert_eq!(r[0].failures.len(), 3, "{text}");
    assert!(text.contains("    name: wrong,\n    alertname: Down, time: 3m,\n        exp:[],\n        got:[\n            0:\n              Labels:{alertname=\"Down\", job=\"a\", severity=\"page\"}\n              Annotations:{summary=\"a down, value 0\"}\n            ]"), "{text}");
    assert!(text.contains("    expr: \"up\", time: 1m,\n        exp: up{job=\"a\"} 1E+00\n        got: up{job=\"a\"} 0E+00"), "{text}");
    // NaN never equals NaN, as in promtool 2.42.
    assert!(text.contains("exp: {} NaN\n        got: {} NaN"), "{text}");
}

#[test]
fn rule_errors_stop_the_group() {
    let tf = parse_test_file(
        "t.yml",
        "rule_files: [r.yml]\ntests:\n  - alert_rule_test:\n      - eval_time: 5m\n        alertname: X\n",
    )
    .unwrap();
    let rules = "groups:\n- name: g\n  rules:\n  - record: r\n    expr: vector(1) or vector(1) + on() group_left label_replace(vector(1), \"a\", \"b\", \"\", \"\")\n  - record: dup\n    expr: label_replace(vector(1), \"x\", \"1\", \"\", \"\") or label_replace(vector(2), \"x\", \"2\", \"\", \"\")\n    labels: {x: same}\n";
    let groups = parse_rule_file("r.yml", rules).unwrap().groups;
    let r = run_test_file(&tf, &groups);
    assert!(
        matches!(&r[0].failures[..], [Failure::RuleError { rule, at: 0, .. }] if rule == "dup"),
        "{}",
        r[0]
    );
}

#[test]
fn go_float_format() {
    assert_eq!(fmt_float(8.0), "8E+00");
    assert_eq!(fmt_float(10.0), "1E+01");
    assert_eq!(fmt_float(0.0015), "1.5E-03");
    assert_eq!(fmt_float(-2.5e300), "-2.5E+300");
    assert_eq!(fmt_float(f64::INFINITY), "+Inf");
}

#[test]
fn eval_order_puts_listed_groups_in_order() {
    let rules = "groups:\n- {name: a, rules: []}\n- {name: b, rules: []}\n- {name: c, rules: []}\n";
    let groups = parse_rule_file("r.yml", rules).unwrap().groups;
    let names: Vec<String> = order_groups(groups, &["c".into(), "b".into(), "a".into()])
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(names, ["c", "b", "a"]);
}
