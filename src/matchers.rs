//! Alertmanager label matchers: `name="value"`, `!=`, `=~`, `!~`.
//!
//! Owns the matcher syntax users already write in Alertmanager routes,
//! silences and `amtool` (`{alertname="X", severity=~"crit|page"}` or the
//! brace-less `alertname=X,severity!=info`), and the matching rule shared
//! with PromQL selectors: regular expressions are fully anchored, and a
//! missing label has the empty value, so `team=""` matches series without
//! `team`.

use std::fmt;

use regex::Regex;

use crate::labels::Labels;

/// The four matching operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum MatchOp {
    #[serde(rename = "=")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
    #[serde(rename = "=~")]
    Regex,
    #[serde(rename = "!~")]
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A problem in a matcher list; `col` is 1-based in the input string.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {col}: {message}")]
pub struct MatcherError {
    pub col: usize,
    pub message: String,
}

impl MatcherError {
    fn at(col: usize, message: impl Into<String>) -> Self {
        MatcherError {
            col,
            message: message.into(),
        }
    }
}

/// One label matcher.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// Compiled, anchored pattern for the regex operators.
    re: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl Matcher {
    /// Builds a matcher, compiling (and anchoring) the regex operators.
    pub fn new(
        name: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let (name, value) = (name.into(), value.into());
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(anchored(&value).map_err(|e| {
                MatcherError::at(1, format!("invalid regular expression {value:?}: {e}"))
            })?),
            _ => None,
        };
        Ok(Matcher {
            name,
            op,
            value,
            re,
        })
    }

    /// Builds a matcher from an already compiled, already anchored regex (as
    /// the PromQL parser hands them over), so the pattern is not compiled
    /// twice per query.
    pub fn with_compiled_regex(
        name: impl Into<String>,
        op: MatchOp,
        value: impl Into<String>,
        re: Regex,
    ) -> Self {
        Matcher {
            name: name.into(),
            op,
            value: value.into(),
            re: Some(re),
        }
    }

    /// Whether a label value (empty for a missing label) matches.
    pub fn matches_value(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Equal => self.value == v,
            MatchOp::NotEqual => self.value != v,
            MatchOp::Regex => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRegex => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_value(labels.get(&self.name).unwrap_or(""))
    }

    /// Whether this matcher accepts the empty string, that is, series that
    /// lack the label entirely.
    pub fn matches_empty(&self) -> bool {
        self.matches_value("")
    }
}

/// Every matcher matches.
pub fn matches_all(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

fn anchored(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"", self.name, self.op)?;
        for c in self.value.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

impl std::str::FromStr for Matcher {
    type Err = MatcherError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut v = parse_matchers(s)?;
        match v.len() {
            1 => Ok(v.remove(0)),
            n => Err(MatcherError::at(
                1,
                format!("expected one matcher, found {n}"),
            )),
        }
    }
}

/// Whether `s` is a valid Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
pub fn is_valid_label_name(s: &str) -> bool {
    let mut it = s.chars();
    matches!(it.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && it.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

const VALID_OPS: &str = "one of =, !=, =~, !~";

/// Parses a comma-separated list of matchers, with or without the
/// surrounding braces; values may be double-quoted (with `\"`, `\\`, `\n`
/// escapes) or bare (up to the next comma or closing brace, trimmed).
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, MatcherError> {
    let chars: Vec<char> = input.chars().collect();
    let mut p = Parser { chars, i: 0 };
    p.skip_ws();
    let braced = p.peek() == Some('{');
    if braced {
        p.i += 1;
    }
    let mut out = Vec::new();
    loop {
        p.skip_ws();
        match p.peek() {
            None if braced => {
                return Err(p.err("missing closing '}'"));
            }
            None => break,
            Some('}') if braced => {
                p.i += 1;
                break;
            }
            _ => {}
        }
        out.push(p.matcher(braced)?);
        p.skip_ws();
        match p.peek() {
            Some(',') => p.i += 1,
            Some('}') if braced => {
                p.i += 1;
                break;
            }
            None if !braced => break,
            None => return Err(p.err("missing closing '}'")),
            Some(c) => {
                return Err(p.err(format!(
                    "unexpected {c:?} after a matcher; expected ',' or {}",
                    if braced { "'}'" } else { "the end" }
                )));
            }
        }
    }
    p.skip_ws();
    if let Some(c) = p.peek() {
        return Err(p.err(format!("unexpected {c:?} after the closing '}}'")));
    }
    Ok(out)
}

struct Parser {
    chars: Vec<char>,
    i: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.i += 1;
        }
    }

    fn err(&self, message: impl Into<String>) -> MatcherError {
        MatcherError::at(self.i + 1, message)
    }

    fn matcher(&mut self, braced: bool) -> Result<Matcher, MatcherError> {
        let name_col = self.i + 1;
        let name = if self.peek() == Some('"') {
            self.quoted()?
        } else {
            let start = self.i;
            while self
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                self.i += 1;
            }
            self.chars[start..self.i].iter().collect()
        };
        if name.is_empty() {
            return Err(self.err(match self.peek() {
                Some(c) => format!("expected a label name, found {c:?}"),
                None => "expected a label name".to_owned(),
            }));
        }
        if !is_valid_label_name(&name) {
            return Err(MatcherError::at(
                name_col,
                format!("invalid label name {name:?}; names match [a-zA-Z_][a-zA-Z0-9_]*"),
            ));
        }
        self.skip_ws();
        let two: String = self.chars[self.i..(self.i + 2).min(self.chars.len())]
            .iter()
            .collect();
        let op = match two.as_str() {
            "=~" => MatchOp::Regex,
            "!~" => MatchOp::NotRegex,
            "!=" => MatchOp::NotEqual,
            _ if two.starts_with('=') => MatchOp::Equal,
            _ => {
                return Err(self.err(format!(
                    "expected an operator after {name:?} ({VALID_OPS}), found {}",
                    self.peek()
                        .map_or_else(|| "the end".to_owned(), |c| format!("{c:?}"))
                )));
            }
        };
        self.i += op.as_str().len();
        self.skip_ws();
        let value_col = self.i + 1;
        let value = if self.peek() == Some('"') {
            self.quoted()?
        } else {
            let start = self.i;
            while self
                .peek()
                .is_some_and(|c| c != ',' && !(braced && c == '}') && c != '"')
            {
                self.i += 1;
            }
            if self.peek() == Some('"') {
                return Err(self.err("unexpected '\"' inside an unquoted value"));
            }
            self.chars[start..self.i]
                .iter()
                .collect::<String>()
                .trim()
                .to_owned()
        };
        Matcher::new(name, op, value).map_err(|e| MatcherError::at(value_col, e.message))
    }

    fn quoted(&mut self) -> Result<String, MatcherError> {
        let start_col = self.i + 1;
        self.i += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(MatcherError::at(
                        start_col,
                        "unterminated quoted string; close it with '\"'",
                    ));
                }
                Some('"') => {
                    self.i += 1;
                    return Ok(s);
                }
                Some('\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some(c @ ('\\' | '"')) => s.push(c),
                        // Regexes keep their own escapes (`\.`, `\d`).
                        Some(c) => {
                            s.push('\\');
                            s.push(c);
                        }
                        None => continue,
                    }
                    self.i += 1;
                }
                Some(c) => {
                    s.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().copied().collect()
    }

    #[test]
    fn parses_braced_quoted_list() {
        let m = parse_matchers(r#"{alertname="X", severity=~"crit|page"}"#).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name, "alertname");
        assert_eq!(m[0].op, MatchOp::Equal);
        assert_eq!(m[0].value, "X");
        assert_eq!(m[1].op, MatchOp::Regex);
        assert_eq!(m[1].value, "crit|page");
    }

    #[test]
    fn parses_bare_unquoted_list() {
        let m = parse_matchers("alertname=X,severity!=info, team !~ a.*").unwrap();
        assert_eq!(
            m.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![r#"alertname="X""#, r#"severity!="info""#, r#"team!~"a.*""#]
        );
    }

    #[test]
    fn regex_is_fully_anchored() {
        let m: Matcher = r#"severity=~"crit""#.parse().unwrap();
        assert!(m.matches(&labels(&[("severity", "crit")])));
        assert!(!m.matches(&labels(&[("severity", "critical")])));
        assert!(!m.matches(&labels(&[("severity", "xcrit")])));
        let n: Matcher = r#"severity!~"crit|page""#.parse().unwrap();
        assert!(n.matches(&labels(&[("severity", "critical")])));
        assert!(!n.matches(&labels(&[("severity", "page")])));
    }

    #[test]
    fn empty_value_matches_missing_label() {
        let m: Matcher = r#"team="""#.parse().unwrap();
        assert!(m.matches(&labels(&[("a", "1")])));
        assert!(!m.matches(&labels(&[("team", "x")])));
        let ne: Matcher = r#"team!="""#.parse().unwrap();
        assert!(!ne.matches(&labels(&[])));
        assert!(ne.matches(&labels(&[("team", "x")])));
        let re: Matcher = "team=~.*".parse().unwrap();
        assert!(re.matches(&labels(&[])));
    }

    #[test]
    fn escapes_in_quoted_values() {
        let m: Matcher = r#"a="x\"y\\z""#.parse().unwrap();
        assert_eq!(m.value, "x\"y\\z");
        let r: Matcher = r#"a=~"v\d+\.0""#.parse().unwrap();
        assert!(r.matches(&labels(&[("a", "v12.0")])));
    }

    #[test]
    fn errors_say_where_and_what() {
        let e = parse_matchers(r#"{a="1", b>"2"}"#).unwrap_err();
        assert_eq!(e.col, 10, "{e}");
        assert!(e.message.contains("=, !=, =~, !~"), "{e}");

        let e = parse_matchers(r#"{a="1""#).unwrap_err();
        assert!(e.message.contains("'}'"), "{e}");

        let e = parse_matchers(r#"a="1"#).unwrap_err();
        assert_eq!(e.col, 3, "{e}");
        assert!(e.message.contains("unterminated"), "{e}");

        let e = parse_matchers(r#"1a="x""#).unwrap_err();
        assert_eq!(e.col, 1, "{e}");

        let e = parse_matchers(r#"a=~"(""#).unwrap_err();
        assert_eq!(e.col, 4, "{e}");
        assert!(e.message.contains("regular expression"), "{e}");

        let e = parse_matchers(r#"{a="1"} x"#).unwrap_err();
        assert_eq!(e.col, 9, "{e}");
    }

    #[test]
    fn empty_lists_parse() {
        assert!(parse_matchers("{}").unwrap().is_empty());
        assert!(parse_matchers("").unwrap().is_empty());
    }

    #[test]
    fn matches_all_requires_every_matcher() {
        let m = parse_matchers("a=1,b=~x|y").unwrap();
        assert!(matches_all(&m, &labels(&[("a", "1"), ("b", "y")])));
        assert!(!matches_all(&m, &labels(&[("a", "1"), ("b", "z")])));
    }
}
