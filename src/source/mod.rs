//! Sources: where samples come from. Each scrape target is one task that
//! fetches Prometheus text exposition on its interval and hands the parsed
//! batch to the watcher through a bounded queue.

pub mod alertmanager;
pub mod exposition;
pub mod remote;
pub mod scrape;

use crate::clock::Millis;
use crate::labels::Labels;
use exposition::{ExpositionError, Format, Item};

/// One scrape's result, as the watcher receives it.
#[derive(Debug)]
pub struct ScrapeBatch {
    pub target: String,
    pub at: Millis,
    /// Labels added to every series of the target (`job`, `instance`, and
    /// the configured ones); also the labels of its `up` series.
    pub target_labels: Labels,
    /// The samples, or why the scrape failed (then `up` is 0).
    pub result: Result<Scraped, String>,
    pub duration_ms: i64,
}

/// A checked exposition: the body, kept whole, and where each sample's
/// series text is in it. Parsing happens in the scrape task, off the
/// watcher's thread; the watcher then needs only the series text (its
/// cache key) and the value, and reads labels for series it has never seen.
#[derive(Debug)]
pub struct Scraped {
    body: String,
    format: Format,
    /// (offset, length) of the series text, and the value.
    samples: Vec<(u32, u32, f64)>,
}

impl Scraped {
    /// Parses `body`; any error refuses the whole exposition, so a sample
    /// is never half-read.
    pub fn parse(body: String, format: Format) -> Result<Scraped, ExpositionError> {
        let base = body.as_ptr() as usize;
        let mut samples = Vec::new();
        exposition::parse_with(&body, format, |item| {
            if let Item::Sample(s) = item {
                // The series text is a slice of the body (the parser never
                // copies it), so its address gives its offset.
                let at = s.series.as_ptr() as usize - base;
                samples.push((at as u32, s.series.len() as u32, s.value));
            }
        })?;
        Ok(Scraped {
            body,
            format,
            samples,
        })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// `(series text as written, value)`, in exposition order.
    pub fn samples(&self) -> impl Iterator<Item = (&str, f64)> + '_ {
        self.samples
            .iter()
            .map(|&(at, len, v)| (&self.body[at as usize..(at + len) as usize], v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scraped_keeps_series_text_and_values() {
        let body = "# TYPE a counter\na_total{x=\"1\"} 3\n  b 4.5 1000\nc{y=\"q\\\"\"} NaN\n";
        let s = Scraped::parse(body.to_owned(), Format::Prometheus004).unwrap();
        let got: Vec<(&str, f64)> = s.samples().collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], ("a_total{x=\"1\"}", 3.0));
        assert_eq!(got[1], ("b", 4.5));
        assert_eq!(got[2].0, "c{y=\"q\\\"\"}");
        assert!(got[2].1.is_nan());
        let l = exposition::parse_series(got[2].0, s.format()).unwrap();
        assert_eq!(l.get("y"), Some("q\""));
        assert_eq!(l.metric_name(), Some("c"));
    }

    #[test]
    fn a_bad_line_refuses_the_whole_exposition() {
        let e = Scraped::parse("a 1\nb{ 2\n".into(), Format::Prometheus004).unwrap_err();
        assert_eq!(e.line, 2);
    }
}
