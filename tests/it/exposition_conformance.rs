//! The exposition parser against the OpenMetrics parser test corpus in
//! `../shared/conformance/openmetrics` (not copied into the repo), and
//! against `prometheus-parse` on the good cases it reads faithfully.
//!
//! Good cases must parse as OpenMetrics with one sample per sample line,
//! in order, and the cases checked by hand below with exact samples. Bad
//! cases must be refused, except the allowlisted ones, each with why.

use std::path::{Path, PathBuf};

use firebreak::labels::Labels;
use firebreak::source::exposition::{Format, parse_exposition, reference};

/// Bad cases we accept on purpose. Each needs whole-family state that
/// Prometheus 2.42 does not check either; every sample in them is still
/// read exactly as written, so nothing is lost or altered.
const ACCEPTED_BAD: &[(&str, &str)] = &[
    (
        "bad_counter_values_9",
        "histogram `_sum` beside negative buckets",
    ),
    (
        "bad_counter_values_13",
        "gaugehistogram `_gsum` < 0 without negative buckets",
    ),
    (
        "bad_grouping_or_ordering_0",
        "histogram label groups interleaved",
    ),
    (
        "bad_grouping_or_ordering_2",
        "gaugehistogram label groups interleaved",
    ),
    (
        "bad_grouping_or_ordering_4",
        "timestamps going backwards in a series",
    ),
    (
        "bad_grouping_or_ordering_5",
        "timestamps going backwards in a series",
    ),
    (
        "bad_grouping_or_ordering_6",
        "timestamps going backwards in a series",
    ),
    (
        "bad_grouping_or_ordering_7",
        "timestamps going backwards in a series",
    ),
    (
        "bad_grouping_or_ordering_8",
        "timestamps going backwards in a series",
    ),
    (
        "bad_grouping_or_ordering_9",
        "a series mixing samples with and without timestamps",
    ),
    (
        "bad_grouping_or_ordering_10",
        "a series mixing samples with and without timestamps",
    ),
    ("bad_histograms_0", "histogram `_sum` without buckets"),
    ("bad_histograms_1", "histogram `_sum` without `_count`"),
    ("bad_histograms_2", "histogram `_count` without `_sum`"),
    (
        "bad_histograms_3",
        "histogram `_sum`/`_count` beside negative buckets",
    ),
    ("bad_histograms_6", "gaugehistogram `_gsum` without buckets"),
    (
        "bad_histograms_7",
        "gaugehistogram `_gsum` < 0 without negative buckets",
    ),
    (
        "bad_histograms_8",
        "gaugehistogram `_gsum` without `_gcount`",
    ),
    ("bad_histograms_9", "histogram buckets out of order"),
    ("bad_histograms_10", "histogram bucket counts decreasing"),
    (
        "bad_histograms_11",
        "histogram `_count` differs from the `+Inf` bucket",
    ),
    ("bad_histograms_13", "histogram `_count` before its buckets"),
    (
        "bad_histograms_14",
        "gaugehistogram `_gcount` without `_gsum`",
    ),
];

fn corpus() -> Option<PathBuf> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/conformance/openmetrics"
    ));
    if dir.is_dir() {
        return Some(dir.to_owned());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the OpenMetrics corpus is missing at {} (required under CI)",
        dir.display()
    );
    eprintln!("skipping: no OpenMetrics corpus at {}", dir.display());
    None
}

struct Case {
    name: String,
    text: String,
    should_parse: bool,
}

fn cases(dir: &Path) -> Vec<Case> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let Ok(json) = std::fs::read_to_string(path.join("test.json")) else {
            continue;
        };
        let meta: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(meta["type"], "text", "{}", path.display());
        let file = meta["file"].as_str().unwrap();
        let bytes = std::fs::read(path.join(file)).unwrap();
        out.push(Case {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            // The corpus' bad UTF-8 would be refused before parsing (the
            // scraper reads bodies as text); none of it is a good case.
            text: String::from_utf8_lossy(&bytes).into_owned(),
            should_parse: meta["shouldParse"].as_bool().unwrap(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn sample_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[test]
fn good_cases_parse_with_one_sample_per_line() {
    let Some(dir) = corpus() else { return };
    let cases = cases(&dir);
    assert!(cases.len() > 150, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for c in cases.iter().filter(|c| c.should_parse) {
        assert_eq!(
            Format::detect(None, &c.text),
            Format::OpenMetrics1,
            "{}",
            c.name
        );
        match parse_exposition(&c.text, Format::OpenMetrics1) {
            Err(e) => failures.push(format!("{}: {e}", c.name)),
            Ok(exp) => {
                let lines = sample_lines(&c.text);
                assert_eq!(exp.samples.len(), lines.len(), "{}", c.name);
                for (s, line) in exp.samples.iter().zip(lines) {
                    let name = s.labels.metric_name().unwrap();
                    assert!(
                        line.starts_with(name)
                            && matches!(line.as_bytes()[name.len()], b'{' | b' '),
                        "{}: {name} from {line:?}",
                        c.name
                    );
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "good cases refused:\n{}",
        failures.join("\n")
    );
}

#[test]
fn bad_cases_are_refused_except_the_allowlist() {
    let Some(dir) = corpus() else { return };
    let mut accepted = Vec::new();
    for c in cases(&dir).iter().filter(|c| !c.should_parse) {
        if parse_exposition(&c.text, Format::OpenMetrics1).is_ok() {
            accepted.push(c.name.clone());
        }
        // Nor may the lenient format panic on any of it.
        let _ = parse_exposition(&c.text, Format::Prometheus004);
    }
    let mut listed: Vec<String> = ACCEPTED_BAD.iter().map(|(n, _)| (*n).to_owned()).collect();
    listed.sort();
    accepted.sort();
    assert_eq!(
        accepted, listed,
        "bad cases accepted (left) differ from the allowlist (right)"
    );
}

fn one(dir: &Path, name: &str) -> Vec<(String, f64, Option<i64>)> {
    let text = std::fs::read_to_string(dir.join(name).join("metrics")).unwrap();
    parse_exposition(&text, Format::OpenMetrics1)
        .unwrap()
        .samples
        .into_iter()
        .map(|s| (s.labels.to_string(), s.value, s.timestamp_ms))
        .collect()
}

fn owned(v: &[(&str, f64, Option<i64>)]) -> Vec<(String, f64, Option<i64>)> {
    v.iter()
        .map(|(l, v, t)| ((*l).to_owned(), *v, *t))
        .collect()
}

#[test]
fn chosen_good_cases_have_exact_samples() {
    let Some(dir) = corpus() else { return };
    assert_eq!(
        one(&dir, "escaping"),
        owned(&[
            (r#"a_total{foo="b\"a\nr"}"#, 1.0, None),
            (r#"a_total{foo="b\\a\\z"}"#, 2.0, None),
            (r#"a_total{foo="b\"a\nr # "}"#, 3.0, None),
            (r#"a_total{foo="b\\a\\z # "}"#, 4.0, None),
        ])
    );
    assert_eq!(
        one(&dir, "hash_in_label_value"),
        owned(&[
            (r#"a_total{foo="foo # bar"}"#, 1.0, None),
            (r#"a_total{foo="} foo # bar # "}"#, 1.0, None),
        ])
    );
    assert_eq!(
        one(&dir, "labels_with_curly_braces"),
        owned(&[(r#"a_total{bar="b{a}z", foo="bar"}"#, 1.0, None)])
    );
    assert_eq!(
        one(&dir, "timestamps"),
        owned(&[
            (r#"a_total{foo="1"}"#, 1.0, Some(0)),
            (r#"a_total{foo="2"}"#, 1.0, Some(0)),
            (r#"a_total{foo="3"}"#, 1.0, Some(1100)),
            (r#"a_total{foo="4"}"#, 1.0, Some(i64::MAX)),
            (r#"a_total{foo="5"}"#, 1.0, Some(1_500_000)),
            ("b_total{}", 2.0, Some(1_234_567_890_000)),
        ])
    );
    assert_eq!(
        one(&dir, "exemplars_with_hash_in_label_values"),
        owned(&[
            (r#"a_bucket{foo="bar # ", le="1.0"}"#, 0.0, None),
            (r#"a_bucket{foo="bar # ", le="2.0"}"#, 2.0, None),
            (r#"a_bucket{foo="bar # ", le="+Inf"}"#, 3.0, None),
        ])
    );
    assert_eq!(
        one(&dir, "empty_label"),
        owned(&[
            (r#"a_total{foo="bar"}"#, 1.0, None),
            ("a_total{}", 2.0, None)
        ])
    );
    assert_eq!(
        one(&dir, "uint64_counter"),
        owned(&[("a_total{}", 9_223_372_036_854_775_808.0, None)])
    );
    let labels = one(&dir, "label_escaping");
    let foo: Vec<String> = labels.iter().map(|(l, _, _)| l.clone()).collect();
    assert_eq!(foo[7], r#"a7_total{bar="baz", foo="\\\n"}"#);
    assert!(one(&dir, "nan")[0].1.is_nan());
    let rt = one(&dir, "roundtrip");
    assert_eq!(rt.len(), 40);
    assert!(rt.contains(&("foo_created{}".into(), 1_520_430_000.123, None)));
}

#[test]
fn good_cases_agree_with_prometheus_parse_where_it_reads_them() {
    let Some(dir) = corpus() else { return };
    let mut compared = 0;
    for c in cases(&dir).iter().filter(|c| c.should_parse) {
        let Some(theirs) = reference::parse(&c.text) else {
            continue;
        };
        let mut ours: Vec<(Labels, f64)> = parse_exposition(&c.text, Format::OpenMetrics1)
            .unwrap()
            .samples
            .into_iter()
            .map(|s| (s.labels, s.value))
            .collect();
        reference::normalise(&mut ours);
        assert_eq!(bits(&ours), bits(&theirs), "{}", c.name);
        compared += 1;
    }
    eprintln!("compared {compared} good cases with prometheus-parse");
    assert!(compared >= 20, "only {compared} compared");
}

fn bits(v: &[(Labels, f64)]) -> Vec<(Labels, u64)> {
    v.iter()
        .map(|(l, x)| (l.clone(), if x.is_nan() { 1 } else { x.to_bits() }))
        .collect()
}
