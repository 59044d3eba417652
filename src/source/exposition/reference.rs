//! `prometheus-parse` as a second, independent reading of the text format,
//! for differential tests only: nothing on the scrape path calls this.
//!
//! It mishandles some valid input (README, "Crate choices"), so [`parse`]
//! answers `None` for input it cannot be trusted on rather than comparing
//! against a known-wrong answer: a dropped line, any backslash or `,` `=`
//! `}` inside a label value, a blank after a label comma, empty braces.

use prometheus_parse::{Scrape, Value};

use crate::labels::Labels;

/// Samples flattened as Prometheus stores them (`_bucket{le}`,
/// `{quantile}`), in [`normalise`]d order, or `None` where the crate is
/// known to read the input wrongly. Timestamps are not compared: the crate
/// substitutes the scrape time for any it cannot read.
pub fn parse(text: &str) -> Option<Vec<(Labels, f64)>> {
    let mut sample_lines = 0;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        sample_lines += 1;
        if !trusted_line(t) {
            return None;
        }
    }
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).ok()?;
    let mut out = Vec::with_capacity(sample_lines);
    for s in scrape.samples {
        let labels: Labels = s
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
                out.push((labels.with("__name__", s.metric), v));
            }
            Value::Histogram(buckets) => {
                for b in buckets {
                    let l = labels
                        .clone()
                        .with("__name__", format!("{}_bucket", s.metric))
                        .with("le", format_float(b.less_than));
                    out.push((l, b.count));
                }
            }
            Value::Summary(qs) => {
                for q in qs {
                    let l = labels
                        .clone()
                        .with("__name__", s.metric.clone())
                        .with("quantile", format_float(q.quantile));
                    out.push((l, q.count));
                }
            }
        }
    }
    if out.len() != sample_lines {
        return None;
    }
    normalise(&mut out);
    Some(out)
}

/// Whether the crate's regex and `split(',')` read this sample line right.
fn trusted_line(line: &str) -> bool {
    let Some(open) = line.find('{') else {
        return !line.contains('\\');
    };
    // Its regex wants at least one character between the braces.
    if line[open..].starts_with("{}") {
        return false;
    }
    let mut quoted = false;
    let mut prev = b'{';
    for &c in &line.as_bytes()[open + 1..] {
        match (quoted, c) {
            (_, b'\\') => return false,
            (false, b'"') | (true, b'"') => quoted = !quoted,
            (true, b',' | b'=' | b'}') => return false,
            (false, b'}') => return true,
            (false, b' ' | b'\t') if prev == b',' || prev == b'{' => return false,
            _ => {}
        }
        prev = c;
    }
    true
}

/// Makes two readings comparable: `le` and `quantile` values written as
/// their number (`1.0` and `1` are the same bucket), samples sorted.
pub fn normalise(samples: &mut [(Labels, f64)]) {
    for (labels, _) in samples.iter_mut() {
        for key in ["le", "quantile"] {
            if let Some(v) = labels.get(key).and_then(|v| v.parse::<f64>().ok()) {
                labels.set(key, format_float(v));
            }
        }
    }
    samples.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
}

/// A float as Prometheus writes bounds: `+Inf`, `0.5`, `1`.
pub fn format_float(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}
