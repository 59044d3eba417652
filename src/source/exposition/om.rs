//! OpenMetrics family rules: which samples belong to which family, that
//! metadata comes before a family's samples and only once, and the per-type
//! constraints on labels, values and exemplars.
//!
//! Checked per line with no allocation: family names borrow the input.
//! Rules that need whole-group state (histogram bucket order, `_count`
//! matching `+Inf`, timestamp order) are not checked: Prometheus 2.42 does
//! not check them either, and every sample is still read exactly.

use std::collections::HashSet;

use super::parser::{LabelSpan, parse_number};
use super::{ErrorKind, MetricType};

struct Family<'t> {
    name: &'t str,
    kind: MetricType,
    typed: bool,
    help: bool,
    unit: bool,
    samples: bool,
}

impl<'a> Family<'a> {
    fn new(name: &'a str) -> Self {
        Family {
            name,
            kind: MetricType::Unknown,
            typed: false,
            help: false,
            unit: false,
            samples: false,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Meta {
    Help,
    Type(MetricType),
    Unit,
}

#[derive(Default)]
pub(super) struct Families<'t> {
    current: Option<Family<'t>>,
    seen: HashSet<&'t str>,
    scratch: String,
}

fn suffixes(kind: MetricType) -> &'static [&'static str] {
    match kind {
        MetricType::Counter => &["_total", "_created"],
        MetricType::Histogram => &["_bucket", "_count", "_sum", "_created"],
        MetricType::GaugeHistogram => &["_bucket", "_gcount", "_gsum"],
        MetricType::Summary => &["", "_count", "_sum", "_created"],
        MetricType::Info => &["_info"],
        MetricType::Gauge | MetricType::StateSet | MetricType::Unknown => &[""],
    }
}

fn err(msg: &'static str) -> ErrorKind {
    ErrorKind::Family(msg)
}

impl<'t> Families<'t> {
    pub fn metadata(&mut self, name: &'t str, meta: Meta) -> Result<(), ErrorKind> {
        let same = self.current.as_ref().is_some_and(|f| f.name == name);
        if !same {
            if self.seen.contains(name) {
                return Err(err("metadata for a family that appeared earlier"));
            }
            self.seen.insert(name);
            self.current = Some(Family::new(name));
        }
        let Some(f) = self.current.as_mut() else {
            return Ok(());
        };
        if f.samples {
            return Err(err("metadata after the family's samples"));
        }
        match meta {
            Meta::Help if f.help => return Err(err("repeated HELP")),
            Meta::Unit if f.unit => return Err(err("repeated UNIT")),
            Meta::Type(_) if f.typed => return Err(err("repeated TYPE")),
            Meta::Help => f.help = true,
            Meta::Unit => f.unit = true,
            Meta::Type(kind) => {
                f.typed = true;
                f.kind = kind;
                for s in suffixes(kind).iter().filter(|s| !s.is_empty()) {
                    self.scratch.clear();
                    self.scratch.push_str(name);
                    self.scratch.push_str(s);
                    if self.seen.contains(self.scratch.as_str()) {
                        return Err(err("family name clashes with an earlier family"));
                    }
                }
            }
        }
        if f.unit && matches!(f.kind, MetricType::Info | MetricType::StateSet) {
            return Err(err("info and stateset families have no unit"));
        }
        Ok(())
    }

    pub fn sample(
        &mut self,
        name: &'t str,
        labels: &[LabelSpan<'_>],
        buf: &str,
        value: f64,
        has_exemplar: bool,
    ) -> Result<(), ErrorKind> {
        let suffix = self.current.as_ref().and_then(|f| {
            let rest = name.strip_prefix(f.name)?;
            suffixes(f.kind).iter().find(|s| **s == rest).copied()
        });
        let suffix = match suffix {
            Some(s) => s,
            None => {
                if !self.seen.insert(name) {
                    return Err(err("samples of a family are not together"));
                }
                self.current = Some(Family::new(name));
                ""
            }
        };
        let Some(f) = self.current.as_mut() else {
            return Ok(());
        };
        f.samples = true;
        let label = |n: &str| labels.iter().find(|l| l.name == n).map(|l| l.value(buf));
        let counted = || {
            if value.is_nan() || value < 0.0 {
                Err(err("a count must be a non-negative number"))
            } else {
                Ok(())
            }
        };
        let exemplar_ok = match (f.kind, suffix) {
            (MetricType::Counter, "_total") => {
                counted()?;
                true
            }
            (MetricType::Histogram | MetricType::GaugeHistogram, "_bucket") => {
                let le = label("le").ok_or(err("bucket without `le`"))?;
                let bound = parse_number(le).filter(|v| !v.is_nan());
                // Infinity is written one way only.
                if bound.is_none() || (bound.is_some_and(f64::is_infinite) && le != "+Inf") {
                    return Err(err("`le` is not a number"));
                }
                counted()?;
                true
            }
            (MetricType::Histogram, "_count" | "_sum")
            | (MetricType::GaugeHistogram, "_gcount")
            | (MetricType::Summary, "_count" | "_sum") => {
                counted()?;
                false
            }
            (MetricType::GaugeHistogram, "_gsum") => {
                if value.is_nan() {
                    return Err(err("`_gsum` is NaN"));
                }
                false
            }
            (MetricType::Summary, "") => {
                let q = label("quantile").ok_or(err("summary quantile without `quantile`"))?;
                if !parse_number(q).is_some_and(|q| (0.0..=1.0).contains(&q)) {
                    return Err(err("`quantile` is not between 0 and 1"));
                }
                if value < 0.0 {
                    return Err(err("a quantile of a summary is negative"));
                }
                false
            }
            (MetricType::Info, _) => {
                if value != 1.0 {
                    return Err(err("an info value must be 1"));
                }
                false
            }
            (MetricType::StateSet, _) => {
                if label(f.name).is_none() {
                    return Err(err("a stateset sample without its own label"));
                }
                if value != 0.0 && value != 1.0 {
                    return Err(err("a stateset value must be 0 or 1"));
                }
                false
            }
            _ => false,
        };
        if has_exemplar && !exemplar_ok {
            return Err(ErrorKind::Exemplar(
                "only counters' `_total` and histograms' `_bucket` carry exemplars",
            ));
        }
        Ok(())
    }
}
