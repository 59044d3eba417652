//! Parsing Prometheus text exposition, behind one small interface.
//!
//! The design names the `prometheus-parse` crate. It skips lines it cannot
//! read without saying so, which would lose samples silently; this wrapper
//! refuses the whole exposition instead, naming the first bad line, so the
//! scrape fails loudly (`up` = 0). The alert-watcher issue replaces the
//! parser underneath with a streaming one that also handles escapes,
//! OpenMetrics and timestamps exactly; callers only see [`parse`].

use prometheus_parse::{LineInfo, Scrape, Value};

use crate::labels::{Labels, METRIC_NAME};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}: {text:?}")]
pub struct ExpositionError {
    pub line: usize,
    pub message: String,
    pub text: String,
}

/// Parses an exposition into `(labels incl. __name__, value)` pairs.
pub fn parse(text: &str) -> Result<Vec<(Labels, f64)>, ExpositionError> {
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let err = |message: &str| ExpositionError {
            line: i + 1,
            message: message.to_owned(),
            text: truncate(raw),
        };
        if line.starts_with('#') {
            continue;
        }
        match LineInfo::parse(line) {
            LineInfo::Sample { value, labels, .. } => {
                let v = value.to_ascii_lowercase();
                if v.parse::<f64>().is_err() && v != "nan" {
                    return Err(err("sample value is not a number"));
                }
                // The crate drops label values containing `}` or `,` and
                // garbles escapes; refuse rather than corrupt.
                if let Some(l) = labels
                    && (l.contains('\\')
                        || l.matches('"').count() % 2 != 0
                        || l.split(',')
                            .any(|kv| !kv.trim().is_empty() && kv.matches('=').count() != 1))
                {
                    return Err(err(
                        "label values with escapes, commas or `=` are not supported by this parser yet",
                    ));
                }
            }
            _ => return Err(err("not a valid sample line")),
        }
    }
    let scrape =
        Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).map_err(|e| ExpositionError {
            line: 0,
            message: e.to_string(),
            text: String::new(),
        })?;
    let mut out = Vec::with_capacity(scrape.samples.len());
    for s in scrape.samples {
        let mut labels: Labels = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
                labels.set(METRIC_NAME, s.metric);
                out.push((labels, v));
            }
            Value::Histogram(buckets) => {
                for b in buckets {
                    let l = labels
                        .clone()
                        .with(METRIC_NAME, format!("{}_bucket", s.metric))
                        .with("le", format_le(b.less_than));
                    out.push((l, b.count));
                }
            }
            Value::Summary(qs) => {
                for q in qs {
                    let l = labels
                        .clone()
                        .with(METRIC_NAME, s.metric.clone())
                        .with("quantile", format_le(q.quantile));
                    out.push((l, q.count));
                }
            }
        }
    }
    Ok(out)
}

/// Bucket bounds as Prometheus writes them: `+Inf`, `0.5`, `1`.
fn format_le(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(samples: &[(Labels, f64)], text: &str) -> f64 {
        samples
            .iter()
            .find(|(l, _)| l.to_string() == text)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {text} in {samples:?}"))
    }

    #[test]
    fn parses_counters_gauges_and_histograms() {
        let text = "\
# HELP live_room_listeners Listeners.
# TYPE live_room_listeners gauge
live_room_listeners{room=\"main\",account=\"owner\"} 512000
# TYPE live_join_requests_total counter
live_join_requests_total{room=\"main\"} 1.5e6
# TYPE lat histogram
lat_bucket{room=\"main\",le=\"0.5\"} 3
lat_bucket{room=\"main\",le=\"+Inf\"} 5
lat_sum{room=\"main\"} 2.5
lat_count{room=\"main\"} 5
up_like NaN
";
        let s = parse(text).unwrap();
        assert_eq!(
            find(&s, r#"live_room_listeners{account="owner", room="main"}"#),
            512000.0
        );
        assert_eq!(find(&s, r#"live_join_requests_total{room="main"}"#), 1.5e6);
        assert_eq!(find(&s, r#"lat_bucket{le="0.5", room="main"}"#), 3.0);
        assert_eq!(find(&s, r#"lat_bucket{le="+Inf", room="main"}"#), 5.0);
        assert_eq!(find(&s, r#"lat_count{room="main"}"#), 5.0);
        assert!(find(&s, "up_like{}").is_nan());
        assert_eq!(s.len(), 7);
    }

    #[test]
    fn a_bad_line_fails_the_whole_exposition_with_its_number() {
        let e = parse("ok 1\nbroken{ 2\nok2 3\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse("ok 1\nx notanumber\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("not a number"), "{e}");
    }

    #[test]
    fn label_values_it_would_corrupt_are_refused() {
        assert!(parse("x{a=\"1,2\"} 1\n").is_err());
        assert!(parse("x{a=\"q\\\"q\"} 1\n").is_err());
    }
}
