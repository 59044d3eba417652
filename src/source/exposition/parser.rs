//! The line grammar of both text formats: one pass over the bytes of a line,
//! borrowing names and label values from the input and unescaping into one
//! reused buffer only when a value holds a backslash.
//!
//! Positions in errors are byte offsets into the line; the caller turns them
//! into 1-based character columns, which is only paid for on the error path.

use super::{ErrorKind, Format};

/// Where a label value lives: in the input (no escapes) or in the scratch
/// buffer (unescaped).
#[derive(Debug, Clone, Copy)]
pub(super) enum ValueAt<'t> {
    Text(&'t str),
    Buf(usize, usize),
}

#[derive(Debug, Clone, Copy)]
pub(super) struct LabelSpan<'t> {
    pub name: &'t str,
    pub value: ValueAt<'t>,
}

impl<'t> LabelSpan<'t> {
    pub fn value<'a>(&self, buf: &'a str) -> &'a str
    where
        't: 'a,
    {
        match self.value {
            ValueAt::Text(s) => s,
            ValueAt::Buf(a, b) => &buf[a..b],
        }
    }
}

/// Reused across lines so that a sample costs no allocation once the
/// vectors have grown to the widest line.
#[derive(Default)]
pub(super) struct Scratch<'t> {
    pub spans: Vec<LabelSpan<'t>>,
    pub buf: String,
}

impl Scratch<'_> {
    pub fn clear(&mut self) {
        self.spans.clear();
        self.buf.clear();
    }
}

pub(super) type LineResult<T> = Result<T, (usize, ErrorKind)>;

/// A sample line, less its labels (which are in the scratch).
pub(super) struct SampleLine<'t> {
    pub name: &'t str,
    /// The name and label block as written.
    pub series: &'t str,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
    pub has_exemplar: bool,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

fn is_label_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_label_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_blank(b[i]) {
        i += 1;
    }
    i
}

/// Scans a metric name at `i`; returns its end.
pub(super) fn metric_name(b: &[u8], i: usize) -> LineResult<usize> {
    if i >= b.len() || !is_name_start(b[i]) {
        return Err((i, ErrorKind::InvalidMetricName));
    }
    let mut j = i + 1;
    while j < b.len() && is_name_char(b[j]) {
        j += 1;
    }
    Ok(j)
}

/// The end of a token: the next blank (0.0.4) or space (OpenMetrics, where
/// a tab inside a token makes it invalid rather than a separator).
fn token_end(b: &[u8], mut i: usize, strict: bool) -> usize {
    if strict {
        while i < b.len() && b[i] != b' ' {
            i += 1;
        }
    } else {
        while i < b.len() && !is_blank(b[i]) {
            i += 1;
        }
    }
    i
}

/// A sample value: a decimal float, or `NaN` / `[+-]Inf[inity]` in any case.
/// Hex floats, underscores and the like are refused (Rust's `f64::from_str`
/// would also take `infinity` with a sign on NaN; the charset check keeps
/// the accepted language explicit).
pub(super) fn parse_number(tok: &str) -> Option<f64> {
    let b = tok.as_bytes();
    if b.is_empty() {
        return None;
    }
    // Most values are small integers; exact in f64 below 2^53.
    if b.len() <= 15 && b.iter().all(u8::is_ascii_digit) {
        let mut n: u64 = 0;
        for d in b {
            n = n * 10 + u64::from(d - b'0');
        }
        return Some(n as f64);
    }
    if b.iter()
        .all(|c| c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.' | b'e' | b'E'))
    {
        // Must hold a digit: `f64::from_str` refuses `.`, `e`, `+` anyway.
        return tok.parse().ok();
    }
    let unsigned = tok.strip_prefix(['+', '-']).unwrap_or(tok);
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return Some(if b[0] == b'-' {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if tok.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    }
    None
}

/// A finite decimal number only (OpenMetrics timestamps and exemplar
/// timestamps).
fn parse_real(tok: &str) -> Option<f64> {
    let b = tok.as_bytes();
    if b.is_empty()
        || !b
            .iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    tok.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn parse_timestamp(tok: &str, format: Format) -> Option<i64> {
    match format {
        Format::Prometheus004 => {
            let b = tok.as_bytes();
            let digits = b.strip_prefix(b"-").or(b.strip_prefix(b"+")).unwrap_or(b);
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            tok.parse().ok()
        }
        // Float seconds to integer milliseconds, truncated as Prometheus does;
        // `as` saturates for the absurd ones instead of wrapping.
        Format::OpenMetrics1 => parse_real(tok).map(|s| (s * 1000.0) as i64),
    }
}

/// Label pairs from just after `{` up to and including `}`, appended to the
/// scratch. Returns the position after `}`.
pub(super) fn labels<'t>(
    line: &'t str,
    mut i: usize,
    strict: bool,
    scratch: &mut Scratch<'t>,
) -> LineResult<usize> {
    let b = line.as_bytes();
    let first = scratch.spans.len();
    if !strict {
        i = skip_blanks(b, i);
    }
    if i < b.len() && b[i] == b'}' {
        return Ok(i + 1);
    }
    loop {
        if !strict {
            i = skip_blanks(b, i);
            // 0.0.4 writers may leave a trailing comma.
            if i < b.len() && b[i] == b'}' && scratch.spans.len() > first {
                return Ok(i + 1);
            }
        }
        if i >= b.len() || !is_label_start(b[i]) {
            return Err((i, ErrorKind::InvalidLabelName));
        }
        let start = i;
        i += 1;
        while i < b.len() && is_label_char(b[i]) {
            i += 1;
        }
        let name = &line[start..i];
        if !strict {
            i = skip_blanks(b, i);
        }
        if i >= b.len() || b[i] != b'=' {
            return Err((i, ErrorKind::Expected("`=` after the label name")));
        }
        i += 1;
        if !strict {
            i = skip_blanks(b, i);
        }
        if i >= b.len() || b[i] != b'"' {
            return Err((i, ErrorKind::Expected("`\"` to open the label value")));
        }
        let (value, end) = label_value(line, i + 1, &mut scratch.buf)?;
        if scratch.spans[first..].iter().any(|s| s.name == name) || name == "__name__" {
            return Err((start, ErrorKind::DuplicateLabel(name.to_owned())));
        }
        scratch.spans.push(LabelSpan { name, value });
        i = end;
        if !strict {
            i = skip_blanks(b, i);
        }
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => return Ok(i + 1),
            _ => return Err((i, ErrorKind::Expected("`,` or `}` after the label value"))),
        }
    }
}

/// A quoted value from just after its opening quote; returns where it lives
/// and the position after the closing quote.
fn label_value<'t>(
    line: &'t str,
    start: usize,
    buf: &mut String,
) -> LineResult<(ValueAt<'t>, usize)> {
    let b = line.as_bytes();
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'"' => return Ok((ValueAt::Text(&line[start..i]), i + 1)),
            b'\\' => break,
            _ => i += 1,
        }
    }
    if i >= b.len() {
        return Err((start - 1, ErrorKind::UnterminatedLabelValue));
    }
    let from = buf.len();
    let mut seg = start;
    while i < b.len() {
        match b[i] {
            b'"' => {
                buf.push_str(&line[seg..i]);
                return Ok((ValueAt::Buf(from, buf.len()), i + 1));
            }
            b'\\' => {
                buf.push_str(&line[seg..i]);
                match b.get(i + 1) {
                    Some(b'\\') => buf.push('\\'),
                    Some(b'"') => buf.push('"'),
                    Some(b'n') => buf.push('\n'),
                    // Unknown escapes stay as written, as Prometheus keeps them.
                    Some(_) => {
                        seg = i;
                        i += 1;
                        // Step over the whole following character so a
                        // multi-byte one is never split.
                        i += line[i..].chars().next().map_or(1, char::len_utf8);
                        continue;
                    }
                    None => return Err((start - 1, ErrorKind::UnterminatedLabelValue)),
                }
                i += 2;
                seg = i;
            }
            _ => i += 1,
        }
    }
    Err((start - 1, ErrorKind::UnterminatedLabelValue))
}

/// HELP text with `\\`, `\n` (and `\"`, which OpenMetrics adds) unescaped.
/// Borrowed when it holds no backslash.
pub(super) fn help_text<'a>(text: &'a str, buf: &'a mut String) -> &'a str {
    if !text.contains('\\') {
        return text;
    }
    buf.clear();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            buf.push(c);
            continue;
        }
        match chars.clone().next() {
            Some('\\') => {
                buf.push('\\');
                chars.next();
            }
            Some('n') => {
                buf.push('\n');
                chars.next();
            }
            Some('"') => {
                buf.push('"');
                chars.next();
            }
            _ => buf.push('\\'),
        }
    }
    buf
}

/// A sample line; labels go to the scratch.
pub(super) fn sample<'t>(
    line: &'t str,
    format: Format,
    scratch: &mut Scratch<'t>,
) -> LineResult<SampleLine<'t>> {
    let strict = format == Format::OpenMetrics1;
    let b = line.as_bytes();
    let mut i = if strict { 0 } else { skip_blanks(b, 0) };
    let name_start = i;
    i = metric_name(b, i)?;
    let name = &line[name_start..i];
    // Where a separator before the value must start.
    let mut sep = i;
    if !strict {
        i = skip_blanks(b, i);
    }
    if i < b.len() && b[i] == b'{' {
        i = labels(line, i + 1, strict, scratch)?;
        sep = i;
    } else {
        i = sep;
    }
    if strict {
        if i < b.len() && b[i] == b' ' {
            i += 1;
        }
    } else {
        i = skip_blanks(b, i);
    }
    if i >= b.len() {
        return Err((i, ErrorKind::MissingValue));
    }
    if i == sep {
        return Err((i, ErrorKind::Expected("a space before the value")));
    }
    let end = token_end(b, i, strict);
    let value = parse_number(&line[i..end]).ok_or((i, ErrorKind::InvalidValue))?;
    i = end;
    let mut out = SampleLine {
        name,
        series: &line[name_start..sep],
        value,
        timestamp_ms: None,
        has_exemplar: false,
    };
    if !strict {
        i = skip_blanks(b, i);
        if i >= b.len() {
            return Ok(out);
        }
        let end = token_end(b, i, false);
        out.timestamp_ms =
            Some(parse_timestamp(&line[i..end], format).ok_or((i, ErrorKind::InvalidTimestamp))?);
        i = skip_blanks(b, end);
        if i < b.len() {
            return Err((i, ErrorKind::TrailingGarbage));
        }
        return Ok(out);
    }
    // OpenMetrics: exactly `value[ timestamp][ # exemplar]`, single spaces.
    if i >= b.len() {
        return Ok(out);
    }
    i += 1; // the space (token_end stopped on it)
    if !line[i..].starts_with("# ") {
        let end = token_end(b, i, true);
        out.timestamp_ms =
            Some(parse_timestamp(&line[i..end], format).ok_or((i, ErrorKind::InvalidTimestamp))?);
        i = end;
        if i >= b.len() {
            return Ok(out);
        }
        if !line[i..].starts_with(" # ") {
            return Err((i, ErrorKind::TrailingGarbage));
        }
        i += 1;
    }
    exemplar(line, i + 2, scratch)?;
    out.has_exemplar = true;
    Ok(out)
}

/// An exemplar from just after `# `: checked for syntax and its 128-character
/// label limit, then discarded, as Prometheus 2.42 does for stored samples.
fn exemplar<'t>(line: &'t str, mut i: usize, scratch: &mut Scratch<'t>) -> LineResult<()> {
    let b = line.as_bytes();
    if b.get(i) != Some(&b'{') {
        return Err((i, ErrorKind::Exemplar("expected `{`")));
    }
    let (spans, buf) = (scratch.spans.len(), scratch.buf.len());
    let start = i;
    i = labels(line, i + 1, true, scratch)?;
    let chars: usize = scratch.spans[spans..]
        .iter()
        .map(|s| s.name.len() + s.value(&scratch.buf).chars().count())
        .sum();
    scratch.spans.truncate(spans);
    scratch.buf.truncate(buf);
    if chars > 128 {
        return Err((
            start,
            ErrorKind::Exemplar("labels longer than 128 characters"),
        ));
    }
    if b.get(i) != Some(&b' ') {
        return Err((i, ErrorKind::Exemplar("expected a space and a value")));
    }
    i += 1;
    let end = token_end(b, i, true);
    parse_number(&line[i..end]).ok_or((i, ErrorKind::Exemplar("invalid value")))?;
    i = end;
    if i >= b.len() {
        return Ok(());
    }
    i += 1;
    let end = token_end(b, i, true);
    parse_real(&line[i..end]).ok_or((i, ErrorKind::Exemplar("invalid timestamp")))?;
    if end < b.len() {
        return Err((end, ErrorKind::TrailingGarbage));
    }
    Ok(())
}
