//! Property tests of the exposition parser: no input makes it panic or
//! hang; expositions written by a small independent writer read back as the
//! samples they were written from, in both formats; and on the inputs
//! `prometheus-parse` reads faithfully, both parsers agree.

use std::collections::BTreeMap;

use firebreak::labels::Labels;
use firebreak::source::exposition::{Format, parse_exposition, reference};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Gen {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
    timestamp_ms: Option<i64>,
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        (0u32..100_000).prop_map(f64::from),
        Just(-0.0),
    ]
}

fn labels(value_chars: &'static str) -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,8}", value_chars, 0..5)
        .prop_map(|m| m.into_iter().filter(|(k, _)| k != "__name__").collect())
}

fn sample(name: &'static str, value_chars: &'static str) -> impl Strategy<Value = Gen> {
    (
        name,
        labels(value_chars),
        value(),
        prop::option::of(-10_000_000_000i64..10_000_000_000_000),
    )
        .prop_map(|(name, labels, value, timestamp_ms)| Gen {
            name,
            labels,
            value,
            timestamp_ms,
        })
}

fn write_value(v: f64, exponent: bool) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if exponent {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Whole-second timestamps in OpenMetrics keep the ms conversion exact.
fn write(samples: &[Gen], format: Format, exponent: bool) -> String {
    let mut out = String::new();
    for s in samples {
        out.push_str(&s.name);
        if !s.labels.is_empty() {
            let pairs: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            out.push_str(&format!("{{{}}}", pairs.join(",")));
        }
        out.push(' ');
        out.push_str(&write_value(s.value, exponent));
        match (s.timestamp_ms, format) {
            (Some(t), Format::Prometheus004) => out.push_str(&format!(" {t}")),
            (Some(t), Format::OpenMetrics1) => out.push_str(&format!(" {}", t / 1000)),
            (None, _) => {}
        }
        out.push('\n');
    }
    if format == Format::OpenMetrics1 {
        out.push_str("# EOF\n");
    }
    out
}

type Key = (Labels, u64, Option<i64>);

fn key(labels: Labels, v: f64, t: Option<i64>) -> Key {
    (labels, if v.is_nan() { 1 } else { v.to_bits() }, t)
}

fn expected(samples: &[Gen], format: Format) -> Vec<Key> {
    samples
        .iter()
        .map(|s| {
            let mut l: Labels = s
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            l.set("__name__", s.name.clone());
            let t = match format {
                Format::Prometheus004 => s.timestamp_ms,
                Format::OpenMetrics1 => s.timestamp_ms.map(|t| t / 1000 * 1000),
            };
            key(l, s.value, t)
        })
        .collect()
}

fn ours(text: &str, format: Format) -> Vec<Key> {
    parse_exposition(text, format)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .samples
        .into_iter()
        .map(|s| key(s.labels, s.value, s.timestamp_ms))
        .collect()
}

const NAME: &str = "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}";
const SPECIAL_VALUE: &str = "[a-z,=}{#\"\\\\\n é☃:]{0,12}";

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        for f in [Format::Prometheus004, Format::OpenMetrics1] {
            let _ = parse_exposition(&text, f);
        }
    }

    #[test]
    fn exposition_like_text_never_panics(text in "[a-z_:{}=\",\\\\# \t\n.0-9eE+-]{0,300}") {
        for f in [Format::Prometheus004, Format::OpenMetrics1] {
            let _ = parse_exposition(&text, f);
        }
    }

    #[test]
    fn written_004_reads_back(
        samples in prop::collection::vec(sample(NAME, SPECIAL_VALUE), 0..20),
        exponent in any::<bool>(),
    ) {
        let text = write(&samples, Format::Prometheus004, exponent);
        prop_assert_eq!(ours(&text, Format::Prometheus004), expected(&samples, Format::Prometheus004));
    }

    #[test]
    fn written_openmetrics_reads_back(
        samples in prop::collection::vec(sample(NAME, SPECIAL_VALUE), 0..20),
        exponent in any::<bool>(),
    ) {
        // OpenMetrics wants a family's samples together.
        let mut samples = samples;
        samples.sort_by(|a, b| a.name.cmp(&b.name));
        let text = write(&samples, Format::OpenMetrics1, exponent);
        prop_assert_eq!(ours(&text, Format::OpenMetrics1), expected(&samples, Format::OpenMetrics1));
    }

    #[test]
    fn agrees_with_prometheus_parse(
        plain in prop::collection::vec(sample("[a-zA-Z_][a-zA-Z0-9_]{0,12}", "[a-zA-Z0-9 ._:/-]{0,10}"), 0..20),
        hist in labels("[a-zA-Z0-9._:/-]{0,6}"),
        bounds in prop::collection::btree_set(0u32..1000, 1..6),
        exponent in any::<bool>(),
    ) {
        let mut text = write(&plain, Format::Prometheus004, exponent);
        // A histogram and a summary, whose buckets and quantiles it groups.
        let hist: BTreeMap<String, String> =
            hist.into_iter().filter(|(k, _)| k != "le" && k != "quantile").collect();
        let pairs: Vec<String> = hist.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let with = |extra: &str| {
            let mut all = pairs.clone();
            all.extend((!extra.is_empty()).then(|| extra.to_owned()));
            if all.is_empty() { String::new() } else { format!("{{{}}}", all.join(",")) }
        };
        text.push_str("# TYPE zz_hist histogram\n");
        for (i, b) in bounds.iter().enumerate() {
            let le = format!("le=\"{}\"", f64::from(*b) / 10.0);
            text.push_str(&format!("zz_hist_bucket{} {i}\n", with(&le)));
        }
        text.push_str(&format!("zz_hist_bucket{} 9\n", with("le=\"+Inf\"")));
        text.push_str(&format!("zz_hist_sum{} 1.5\nzz_hist_count{} 9\n", with(""), with("")));
        text.push_str("# TYPE zz_sum summary\n");
        text.push_str(&format!("zz_sum{} 2\n", with("quantile=\"0.5\"")));
        text.push_str(&format!("zz_sum{} NaN\n", with("quantile=\"0.99\"")));
        text.push_str(&format!("zz_sum_count{} 3\n", with("")));
        let theirs = reference::parse(&text);
        prop_assert!(theirs.is_some(), "prometheus-parse refused or dropped:\n{}", text);
        let theirs = theirs.unwrap();
        let mut mine: Vec<(Labels, f64)> = parse_exposition(&text, Format::Prometheus004)
            .unwrap()
            .samples
            .into_iter()
            .map(|s| (s.labels, s.value))
            .collect();
        reference::normalise(&mut mine);
        let bits = |v: &[(Labels, f64)]| -> Vec<(Labels, u64)> {
            v.iter().map(|(l, x)| (l.clone(), if x.is_nan() { 1 } else { x.to_bits() })).collect()
        };
        prop_assert_eq!(bits(&mine), bits(&theirs));
    }
}
