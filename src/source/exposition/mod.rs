//! Parsing Prometheus text exposition (format 0.0.4) and OpenMetrics 1.0
//! text: the only way samples enter the bot from a scrape.
//!
//! Our own streaming parser: [`parse_with`] walks the text once and hands
//! each sample to a callback as a [`SampleRef`] borrowing the input, so a
//! line costs no allocation; [`parse_exposition`] and [`parse`] collect
//! owned samples on top of it. Anything it cannot read exactly fails the
//! whole exposition with the line and column: a sample is never dropped or
//! altered silently, and the scrape (not the bot) fails.
//!
//! Histograms and summaries come out flattened as Prometheus 2.42 stores
//! them: one series per `_bucket{le}`, `{quantile}`, `_sum`, `_count` and
//! `_created` line; exemplars are checked and then ignored.
//!
//! `prometheus-parse`, which the design first named, mangles valid input
//! (see the README); it lives on in [`reference`] for differential tests.

mod om;
mod parser;
pub mod reference;

use std::collections::BTreeMap;

use crate::labels::{Labels, METRIC_NAME};
use parser::{LabelSpan, Scratch};

/// Which text format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4: lenient about blanks, integer
    /// millisecond timestamps, `untyped`.
    Prometheus004,
    /// OpenMetrics 1.0 text: strict layout, `# EOF`, float-second
    /// timestamps, exemplars, family rules.
    OpenMetrics1,
}

impl Format {
    /// OpenMetrics when the Content-Type says so, else when the body ends
    /// with the `# EOF` line only OpenMetrics has.
    pub fn detect(content_type: Option<&str>, body: &str) -> Format {
        let declared = content_type.map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/openmetrics-text")
        });
        match declared {
            Some(true) => Format::OpenMetrics1,
            _ if body.strip_suffix('\n').unwrap_or(body).ends_with("\n# EOF")
                || body.strip_suffix('\n').unwrap_or(body) == "# EOF" =>
            {
                Format::OpenMetrics1
            }
            _ => Format::Prometheus004,
        }
    }
}

/// A metric family's type from `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    /// `unknown` in OpenMetrics, `untyped` in 0.0.4.
    Unknown,
}

impl MetricType {
    fn parse(word: &str, format: Format) -> Option<MetricType> {
        Some(match (word, format) {
            ("counter", _) => MetricType::Counter,
            ("gauge", _) => MetricType::Gauge,
            ("histogram", _) => MetricType::Histogram,
            ("summary", _) => MetricType::Summary,
            ("untyped", Format::Prometheus004) => MetricType::Unknown,
            ("unknown" | "gaugehistogram" | "info" | "stateset", Format::Prometheus004) => {
                return None;
            }
            ("unknown", _) => MetricType::Unknown,
            ("gaugehistogram", _) => MetricType::GaugeHistogram,
            ("info", _) => MetricType::Info,
            ("stateset", _) => MetricType::StateSet,
            _ => return None,
        })
    }
}

/// What is wrong at an error's position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("invalid metric name")]
    InvalidMetricName,
    #[error("invalid label name")]
    InvalidLabelName,
    #[error("duplicate label name {0:?}")]
    DuplicateLabel(String),
    #[error("unterminated label value")]
    UnterminatedLabelValue,
    #[error("expected {0}")]
    Expected(&'static str),
    #[error("missing sample value")]
    MissingValue,
    #[error("sample value is not a number")]
    InvalidValue,
    #[error("invalid timestamp")]
    InvalidTimestamp,
    #[error("unexpected text after the sample")]
    TrailingGarbage,
    #[error("invalid metadata line: {0}")]
    Metadata(&'static str),
    #[error("invalid exemplar: {0}")]
    Exemplar(&'static str),
    #[error("{0}")]
    Family(&'static str),
    #[error("blank line (not allowed in OpenMetrics)")]
    BlankLine,
    #[error("missing `# EOF` at the end")]
    MissingEof,
    #[error("text after `# EOF`")]
    TextAfterEof,
}

/// Why an exposition was refused, and where (1-based line and character
/// column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}: {text:?}")]
pub struct ExpositionError {
    pub line: usize,
    pub column: usize,
    pub kind: ErrorKind,
    /// The line, cut to 120 characters.
    pub text: String,
}

/// One sample, borrowing the input and the parser's buffers; valid for the
/// duration of the callback.
#[derive(Debug, Clone, Copy)]
pub struct SampleRef<'a> {
    pub name: &'a str,
    /// The metric name and label block exactly as written: the same text
    /// always means the same series, so it keys the store's scrape cache.
    /// [`parse_series`] turns it back into labels.
    pub series: &'a str,
    pub value: f64,
    /// Milliseconds since the epoch, when the exposition gave one.
    pub timestamp_ms: Option<i64>,
    /// 1-based line number.
    pub line: usize,
    labels: &'a [LabelSpan<'a>],
    buf: &'a str,
}

impl<'a> SampleRef<'a> {
    /// Label pairs in the order written, unescaped, without `__name__`.
    /// Empty values are included (Prometheus treats them as absent).
    pub fn labels(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> + 'a {
        let buf = self.buf;
        self.labels.iter().map(move |l| (l.name, l.value(buf)))
    }

    /// The owned label set with `__name__`.
    pub fn to_labels(&self) -> Labels {
        let mut l: Labels = self.labels().collect();
        l.set(METRIC_NAME, self.name);
        l
    }
}

/// One metadata line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetadataRef<'a> {
    Help { name: &'a str, text: &'a str },
    Type { name: &'a str, kind: MetricType },
    Unit { name: &'a str, unit: &'a str },
}

/// What [`parse_with`] hands to its callback, in input order.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    Sample(SampleRef<'a>),
    Metadata(MetadataRef<'a>),
}

/// An owned sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// A family's metadata, as far as the exposition gave it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyMetadata {
    pub kind: Option<MetricType>,
    pub help: Option<String>,
    pub unit: Option<String>,
}

/// A parsed exposition, owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Exposition {
    pub format: Format,
    pub samples: Vec<Sample>,
    pub metadata: BTreeMap<String, FamilyMetadata>,
}

/// Walks `text` once, calling `f` for every sample and metadata line in
/// order. Stops at the first error; items already handed over stay with the
/// caller, who should discard them (the collecting APIs do).
pub fn parse_with<F>(text: &str, format: Format, mut f: F) -> Result<(), ExpositionError>
where
    F: FnMut(Item<'_>),
{
    let mut scratch = Scratch::default();
    let mut help_buf = String::new();
    let mut families = om::Families::default();
    let om_mode = format == Format::OpenMetrics1;
    let mut rest = text;
    let mut line_no = 0;
    let mut eof = false;
    while !rest.is_empty() {
        line_no += 1;
        let (line, next) = match rest.as_bytes().iter().position(|&b| b == b'\n') {
            Some(n) => (&rest[..n], &rest[n + 1..]),
            None => (rest, ""),
        };
        rest = next;
        let fail = |at: usize, kind: ErrorKind| error(line, line_no, at, kind);
        if eof {
            return Err(fail(0, ErrorKind::TextAfterEof));
        }
        let first = line.bytes().find(|b| *b != b' ' && *b != b'\t');
        match first {
            None if om_mode => return Err(fail(0, ErrorKind::BlankLine)),
            None => continue,
            Some(b'#') => {
                if om_mode && line == "# EOF" {
                    eof = true;
                    continue;
                }
                let parsed =
                    metadata_line(line, format, &mut help_buf).map_err(|(at, k)| fail(at, k))?;
                if let Some((m, name_at)) = parsed {
                    if om_mode {
                        let (len, meta) = match m {
                            MetadataRef::Help { name, .. } => (name.len(), om::Meta::Help),
                            MetadataRef::Type { name, kind } => (name.len(), om::Meta::Type(kind)),
                            MetadataRef::Unit { name, .. } => (name.len(), om::Meta::Unit),
                        };
                        // Re-sliced from the line: the family table keeps
                        // names for the whole parse, the item only borrows
                        // the help buffer for this call.
                        let name = &line[name_at..name_at + len];
                        families
                            .metadata(name, meta)
                            .map_err(|k| fail(name_at, k))?;
                    }
                    f(Item::Metadata(m));
                }
            }
            Some(_) => {
                scratch.clear();
                let s =
                    parser::sample(line, format, &mut scratch).map_err(|(at, k)| fail(at, k))?;
                if om_mode {
                    families
                        .sample(
                            s.name,
                            &scratch.spans,
                            &scratch.buf,
                            s.value,
                            s.has_exemplar,
                        )
                        .map_err(|k| fail(0, k))?;
                }
                f(Item::Sample(SampleRef {
                    name: s.name,
                    series: s.series,
                    value: s.value,
                    timestamp_ms: s.timestamp_ms,
                    line: line_no,
                    labels: &scratch.spans,
                    buf: &scratch.buf,
                }));
            }
        }
    }
    if om_mode && !eof {
        return Err(error("", line_no + 1, 0, ErrorKind::MissingEof));
    }
    Ok(())
}

fn error(line: &str, line_no: usize, at: usize, kind: ErrorKind) -> ExpositionError {
    let at = at.min(line.len());
    // `at` is on a char boundary except after a lone byte error; count chars
    // of the longest valid prefix.
    let column = line.char_indices().take_while(|(i, _)| *i < at).count() + 1;
    ExpositionError {
        line: line_no,
        column,
        kind,
        text: line.chars().take(120).collect(),
    }
}

/// A `#` line: metadata, or `None` for a 0.0.4 comment. Also returns where
/// the metric name starts, for family errors.
fn metadata_line<'a>(
    line: &'a str,
    format: Format,
    help_buf: &'a mut String,
) -> parser::LineResult<Option<(MetadataRef<'a>, usize)>> {
    let b = line.as_bytes();
    let om = format == Format::OpenMetrics1;
    let (keyword, name_at) = if om {
        let Some(rest) = line.strip_prefix("# ") else {
            return Err((
                0,
                ErrorKind::Metadata("expected `# HELP`, `# TYPE`, `# UNIT` or `# EOF`"),
            ));
        };
        let kw = ["HELP ", "TYPE ", "UNIT "]
            .into_iter()
            .find(|k| rest.starts_with(k))
            .ok_or((2, ErrorKind::Metadata("expected HELP, TYPE, UNIT or EOF")))?;
        (&kw[..4], 7)
    } else {
        // `#`, blanks, keyword, blanks; anything else is a comment.
        let mut i = line.find('#').unwrap_or(0) + 1;
        let s = i;
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i == s {
            return Ok(None);
        }
        let kw = &line[i..];
        let Some(kw) = ["HELP", "TYPE"].into_iter().find(|k| kw.starts_with(k)) else {
            return Ok(None);
        };
        i += 4;
        let s = i;
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i == s {
            return Ok(None);
        }
        (kw, i)
    };
    let name_end = parser::metric_name(b, name_at)?;
    let name = &line[name_at..name_end];
    let text_at = if om {
        if b.get(name_end) != Some(&b' ') {
            return Err((
                name_end,
                ErrorKind::Metadata("expected a space after the name"),
            ));
        }
        name_end + 1
    } else {
        let mut i = name_end;
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        if i == name_end && i < b.len() {
            return Err((i, ErrorKind::Metadata("expected a space after the name")));
        }
        i
    };
    let text = &line[text_at..];
    let m = match keyword {
        "HELP" => MetadataRef::Help {
            name,
            text: parser::help_text(text, help_buf),
        },
        "TYPE" => {
            let word = if om {
                text
            } else {
                text.trim_end_matches([' ', '\t'])
            };
            let kind = MetricType::parse(word, format)
                .ok_or((text_at, ErrorKind::Metadata("unknown metric type")))?;
            MetadataRef::Type { name, kind }
        }
        _ => {
            if !text
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
            {
                return Err((text_at, ErrorKind::Metadata("invalid unit")));
            }
            let suffixed = name.strip_suffix(text).is_some_and(|p| p.ends_with('_'));
            if !text.is_empty() && !suffixed {
                return Err((
                    text_at,
                    ErrorKind::Metadata("the metric name must end with `_` and the unit"),
                ));
            }
            MetadataRef::Unit { name, unit: text }
        }
    };
    Ok(Some((m, name_at)))
}

/// The labels (with `__name__`) of a series as a sample line of `format`
/// writes it: [`SampleRef::series`]. Errors carry the column in `text`.
pub fn parse_series(text: &str, format: Format) -> Result<Labels, ExpositionError> {
    let strict = format == Format::OpenMetrics1;
    let fail = |at: usize, kind: ErrorKind| error(text, 1, at, kind);
    let b = text.as_bytes();
    let end = parser::metric_name(b, 0).map_err(|(at, k)| fail(at, k))?;
    let mut scratch = Scratch::default();
    let mut i = end;
    if !strict {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
    }
    if i < b.len() {
        if b[i] != b'{' {
            return Err(fail(i, ErrorKind::TrailingGarbage));
        }
        i = parser::labels(text, i + 1, strict, &mut scratch).map_err(|(at, k)| fail(at, k))?;
        if i < b.len() {
            return Err(fail(i, ErrorKind::TrailingGarbage));
        }
    }
    let mut labels: Labels = scratch
        .spans
        .iter()
        .map(|l| (l.name, l.value(&scratch.buf)))
        .collect();
    labels.set(METRIC_NAME, &text[..end]);
    Ok(labels)
}

/// Parses a whole exposition into owned samples and metadata.
pub fn parse_exposition(text: &str, format: Format) -> Result<Exposition, ExpositionError> {
    let mut out = Exposition {
        format,
        samples: Vec::new(),
        metadata: BTreeMap::new(),
    };
    parse_with(text, format, |item| match item {
        Item::Sample(s) => out.samples.push(Sample {
            labels: s.to_labels(),
            value: s.value,
            timestamp_ms: s.timestamp_ms,
        }),
        Item::Metadata(MetadataRef::Help { name, text }) => {
            out.metadata.entry(name.to_owned()).or_default().help = Some(text.to_owned());
        }
        Item::Metadata(MetadataRef::Type { name, kind }) => {
            out.metadata.entry(name.to_owned()).or_default().kind = Some(kind);
        }
        Item::Metadata(MetadataRef::Unit { name, unit }) => {
            out.metadata.entry(name.to_owned()).or_default().unit = Some(unit.to_owned());
        }
    })?;
    Ok(out)
}

/// Parses an exposition (format detected from the body) into
/// `(labels incl. __name__, value)` pairs; timestamps are dropped.
pub fn parse(text: &str) -> Result<Vec<(Labels, f64)>, ExpositionError> {
    let mut out = Vec::new();
    parse_with(text, Format::detect(None, text), |item| {
        if let Item::Sample(s) = item {
            out.push((s.to_labels(), s.value));
        }
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests;
