//! Located diagnostics: every user-facing config error says where
//! (`file:line:col`), which field, what value, and what would be valid.
//!
//! Loaders deserialize into raw types, then validate into real types,
//! pushing every problem into a [`Diagnostics`] list before failing, so a
//! user fixes a file in one pass rather than one error per run.

use std::fmt;

use serde::de::DeserializeOwned;

pub mod unknown;

/// A 1-based line and column in a source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub const fn new(line: u32, col: u32) -> Self {
        Pos { line, col }
    }

    /// The position of a value read through [`Sp`], if the YAML reader knew it.
    pub fn of<T>(sp: &Sp<T>) -> Option<Pos> {
        let loc = sp.referenced;
        (loc.line() > 0).then(|| Pos::new(loc.line() as u32, loc.column() as u32))
    }

    /// Moves a position found inside a YAML scalar (for example a PromQL
    /// error column) to the file. `col` is 1-based inside the scalar; only
    /// exact for plain and single-line scalars, which is what rules use.
    pub fn offset_within(self, col_in_value: u32) -> Pos {
        Pos::new(self.line, self.col + col_in_value.saturating_sub(1))
    }
}

/// A value read from YAML together with where it was written.
pub type Sp<T> = serde_saphyr::Spanned<T>;

/// One problem found in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub pos: Option<Pos>,
    /// A path to the field such as `groups[0].rules[2].expr`; empty for
    /// whole-file problems.
    pub field: String,
    pub message: String,
    /// Worth fixing, but the file loads: `firebreak validate` still passes.
    pub warning: bool,
}

impl Diagnostic {
    pub fn new(
        file: impl Into<String>,
        pos: Option<Pos>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.into(),
            pos,
            field: field.into(),
            message: message.into(),
            warning: false,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(p) = self.pos {
            write!(f, ":{}:{}", p.line, p.col)?;
        }
        f.write_str(": ")?;
        if self.warning {
            f.write_str("warning: ")?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found while loading a set of files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// `Ok(value)` when nothing was reported, else every diagnostic.
    pub fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// Ordered by file and position so output reads top to bottom.
    pub fn sorted(mut self) -> Self {
        self.0
            .sort_by(|a, b| (&a.file, a.pos).cmp(&(&b.file, b.pos)));
        self
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Collects the diagnostics of one file, so validators read as a list of
/// checks that each report and carry on.
pub struct Collector<'a> {
    pub file: &'a str,
    pub out: Diagnostics,
    /// Kept apart from `out`: they do not fail the file.
    pub warnings: Diagnostics,
}

impl<'a> Collector<'a> {
    pub fn new(file: &'a str) -> Self {
        Collector {
            file,
            out: Diagnostics::new(),
            warnings: Diagnostics::new(),
        }
    }

    pub fn err(&mut self, pos: Option<Pos>, field: impl Into<String>, msg: impl Into<String>) {
        self.out.push(Diagnostic::new(self.file, pos, field, msg));
    }

    pub fn warn(&mut self, pos: Option<Pos>, field: impl Into<String>, msg: impl Into<String>) {
        self.warnings.push(Diagnostic {
            warning: true,
            ..Diagnostic::new(self.file, pos, field, msg)
        });
    }

    /// An optional duration field: its value, or `default` (also after
    /// reporting a bad one, so checking goes on).
    pub fn duration(
        &mut self,
        v: Option<&Sp<String>>,
        field: &str,
        default: crate::duration::PromDuration,
    ) -> crate::duration::PromDuration {
        match v {
            None => default,
            Some(sp) => crate::duration::PromDuration::parse(&sp.value).unwrap_or_else(|e| {
                self.err(Pos::of(sp), field, e.to_string());
                default
            }),
        }
    }

    /// As [`Collector::duration`], for a timeout or an interval: `0s`
    /// would fail every call at once (or spin), so it is an error.
    pub fn positive_duration(
        &mut self,
        v: Option<&Sp<String>>,
        field: &str,
        default: crate::duration::PromDuration,
    ) -> crate::duration::PromDuration {
        let d = self.duration(v, field, default);
        if d.is_zero()
            && let Some(sp) = v
        {
            self.err(Pos::of(sp), field, "must be greater than 0s");
            return default;
        }
        d
    }
}

/// Joins a list of valid choices for "expected one of" messages.
pub fn one_of<S: AsRef<str>>(choices: &[S]) -> String {
    let mut v: Vec<&str> = choices.iter().map(AsRef::as_ref).collect();
    v.sort_unstable();
    v.join(", ")
}

/// The closest choice within a small edit distance, for "did you mean".
pub fn did_you_mean<'a, S: AsRef<str>>(got: &str, choices: &'a [S]) -> Option<&'a str> {
    choices
        .iter()
        .map(AsRef::as_ref)
        .map(|c| (edit_distance(got, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Parses one YAML document into a raw type. Every key that a struct
/// does not declare is reported, each with its path and a did-you-mean
/// (see [`unknown`]); a syntax error or another shape error (a wrong type,
/// a missing field) is one more diagnostic, since serde cannot go on past
/// those, and later checks collect the rest.
pub fn from_yaml<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, Diagnostics> {
    let mut found = Vec::new();
    // Aliases are bounded by serde-saphyr's defaults, which refuse
    // "billion laughs" expansion; duplicate keys are an error there too.
    let read = serde_saphyr::with_deserializer_from_str(text, |de| {
        let (read, unknown) = unknown::deserialize::<T, _>(de);
        found = unknown;
        read
    });
    let mut out = Diagnostics(
        found
            .iter()
            .map(|u| Diagnostic::new(file, u.pos, &u.path, u.message()))
            .collect(),
    );
    match read {
        Ok(v) => out.into_result(v),
        Err(e) => {
            out.push(yaml_error(file, text, &e));
            Err(out.sorted())
        }
    }
}

/// One diagnostic for an error serde-saphyr stopped at.
fn yaml_error(file: &str, text: &str, e: &serde_saphyr::Error) -> Diagnostic {
    let pos = e
        .location()
        .filter(|l| l.line() > 0)
        .map(|l| Pos::new(l.line() as u32, l.column() as u32));
    if let (Some(scan), Some(at)) = (scan_error(e), pos)
        && let Some((pos, sentence)) = layout_sentence(scan.kind(), text, at)
    {
        return Diagnostic::new(file, Some(pos), "", sentence);
    }
    Diagnostic::new(file, pos, "", yaml_message(e))
}

/// The YAML parser's own error, when that is what stopped the reading.
fn scan_error(e: &serde_saphyr::Error) -> Option<&serde_saphyr::granit_parser::ScanError> {
    match e.without_snippet() {
        serde_saphyr::Error::ExternalMessage { source, .. } => match &**source {
            serde_saphyr::ExternalMessageSource::Parser(scan) => Some(scan),
            _ => None,
        },
        _ => None,
    }
}

/// A parser error that comes from how the lines are laid out, said in
/// terms of the file: the parser's words ("mapping values are not allowed
/// in this context") name its own state, which nobody editing YAML knows.
/// The position moves to where the line's text starts, which is what is
/// out of place.
fn layout_sentence(
    kind: &serde_saphyr::granit_parser::ErrorKind,
    text: &str,
    at: Pos,
) -> Option<(Pos, String)> {
    use serde_saphyr::granit_parser::ErrorKind as K;
    let lines: Vec<&str> = text.lines().collect();
    let line_no = at.line as usize;
    let line = *lines.get(line_no.checked_sub(1)?)?;
    let indent = line.len() - line.trim_start_matches(' ').len();
    let start = Pos::new(at.line, indent as u32 + 1);
    if matches!(
        kind,
        K::TabInIndentation | K::TabInBlockIndentation | K::TabNotAllowed
    ) {
        return Some((
            start,
            format!("line {line_no} is indented with a tab; YAML indents with spaces only"),
        ));
    }
    let hint = match kind {
        // Also what a second `: ` in an unquoted value gives: the colon the
        // parser stopped at then comes after another on the same line.
        K::MappingValueNotAllowed => {
            let before = line
                .get(..(at.col as usize).saturating_sub(1))
                .unwrap_or("");
            if before.contains(": ") {
                return Some((
                    at,
                    format!(
                        "line {line_no} has a second `: ` after its key; a value holding `: ` goes in quotes (`text: \"note: it broke\"`)"
                    ),
                ));
            }
            "the keys of one mapping start in the same column, and what belongs under a key starts further right than the key, on the lines after it"
        }
        K::ExpectedBlockMappingKey | K::MappingKeyNotAllowed | K::InvalidSimpleKey => {
            "the keys of one mapping start in the same column, and what belongs under a key starts further right than the key"
        }
        K::ExpectedBlockSequenceEntry | K::BlockSequenceEntryNotAllowed => {
            "the items of a list each start with `- ` in the same column, and a key of an item lines up with the text after its `- `"
        }
        K::InvalidIndentation => {
            "what belongs under a key starts further right than the key, and lines at one level start in the same column"
        }
        _ => return None,
    };
    let above = lines[..line_no - 1]
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| l.len() - l.trim_start_matches(' ').len() + 1);
    let columns = match above {
        Some(c) => format!(
            " (it starts in column {}, the line above in column {c})",
            indent + 1
        ),
        None => String::new(),
    };
    Some((
        start,
        format!(
            "line {line_no}: this line's indentation does not match the lines around it{columns}; {hint}"
        ),
    ))
}

/// serde-saphyr renders a source snippet into its Display; chat and
/// terminals want the one-line reason, since we print the location
/// ourselves.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let full = e.to_string();
    let first = full.lines().next().unwrap_or_default().trim();
    // Drop a trailing " at line X column Y" that duplicates our prefix.
    let cut = first.find(" at line ").map_or(first, |i| &first[..i]);
    let cut = cut.trim_start_matches("error: ");
    strip_line_column_prefix(cut).to_owned()
}

/// `line 3 column 5: msg` -> `msg`.
fn strip_line_column_prefix(s: &str) -> &str {
    let Some(rest) = s.strip_prefix("line ") else {
        return s;
    };
    let Some((_, rest)) = rest.split_once(" column ") else {
        return s;
    };
    let Some((col, msg)) = rest.split_once(": ") else {
        return s;
    };
    if col.chars().all(|c| c.is_ascii_digit()) {
        msg
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Raw {
        name: Sp<String>,
        count: Option<u32>,
    }

    #[test]
    fn unknown_field_is_located() {
        let errs = from_yaml::<Raw>("f.yaml", "name: x\ncuont: 3\n").unwrap_err();
        assert_eq!(
            errs.to_string(),
            "f.yaml:2:1: cuont: unknown field `cuont` (did you mean `count`?)"
        );
    }

    /// Issue 22, item 6: serde stopped at the first unknown field, so a
    /// file with two typos took two runs to fix.
    #[test]
    fn every_unknown_field_is_reported_at_once() {
        let errs = from_yaml::<Raw>("f.yaml", "nmae: x\ncuont: 3\nzzz: 1\n").unwrap_err();
        let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "f.yaml:1:1: nmae: unknown field `nmae` (did you mean `name`?)",
                "f.yaml:2:1: cuont: unknown field `cuont` (did you mean `count`?)",
                "f.yaml:3:1: zzz: unknown field `zzz`; expected one of: count, name",
            ]
        );
    }

    #[test]
    fn bad_indentation_is_said_in_terms_of_the_file() {
        // A key indented one space further than the one above it.
        let text = "name: x\nsteps:\n  - id: a\n    action: chat\n     with: {text: hi}\n";
        let e = from_yaml::<serde::de::IgnoredAny>("f.yaml", text).unwrap_err();
        assert_eq!(
            e.to_string(),
            "f.yaml:5:6: line 5: this line's indentation does not match the lines around it (it starts in column 6, the line above in column 5); the keys of one mapping start in the same column, and what belongs under a key starts further right than the key, on the lines after it"
        );
        // A key of a list item that fell back out of line with the item.
        let text = "steps:\n  - id: a\n    action: chat\n  with: {text: hi}\n";
        let e = from_yaml::<serde::de::IgnoredAny>("f.yaml", text).unwrap_err();
        let e = e.to_string();
        assert!(
            e.starts_with("f.yaml:4:3: line 4: this line's indentation does not match the lines around it (it starts in column 3, the line above in column 5); "),
            "{e}"
        );
        assert!(!e.contains("indicator"), "{e}");
        let e = from_yaml::<serde::de::IgnoredAny>("f.yaml", "a:\n\tb: 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "f.yaml:2:1: line 2 is indented with a tab; YAML indents with spaces only"
            ),
            "{e}"
        );
        // Not indentation: a second `: ` in a plain value.
        let e = from_yaml::<serde::de::IgnoredAny>("f.yaml", "a: 1\ntext: note: it broke\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("f.yaml:2:11: line 2 has a second `: ` after its key; a value holding `: ` goes in quotes"),
            "{e}"
        );
    }

    #[test]
    fn spanned_values_know_their_position() {
        let raw = from_yaml::<Raw>("f.yaml", "count: 1\nname:   hello\n").unwrap();
        assert_eq!(Pos::of(&raw.name), Some(Pos::new(2, 9)));
    }

    #[test]
    fn wrong_type_is_located() {
        let err = from_yaml::<Raw>("f.yaml", "name: x\ncount: many\n").unwrap_err();
        assert_eq!(err.0[0].pos.map(|p| p.line), Some(2), "{err}");
    }

    #[test]
    fn display_has_file_line_col_field() {
        let d = Diagnostic::new(
            "a.yml",
            Some(Pos::new(3, 7)),
            "steps[1].action",
            "unknown action",
        );
        assert_eq!(d.to_string(), "a.yml:3:7: steps[1].action: unknown action");
    }

    #[test]
    fn suggests_close_names() {
        assert_eq!(did_you_mean("htp", &["http", "chat", "wait"]), Some("http"));
        assert_eq!(did_you_mean("zzzzzz", &["http", "chat"]), None);
    }
}
