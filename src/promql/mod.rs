//! PromQL over the series store: parsing (through `promql-parser`) and
//! instant evaluation with Prometheus 2.42 semantics.
//!
//! Owns the query value types ([`Value`], [`Sample`], [`Series`]), the
//! parse and evaluation errors, and the public entry points [`parse`] and
//! [`eval_instant`], which rules, runbooks' `query` steps and the CLI all
//! use. The evaluator itself lives in `eval` (selectors, operators,
//! aggregations) and `functions` (the function library).
//!
//! Semantics follow Prometheus 2.42, where they differ from 3.x:
//! - instant selectors look back 5m and include a sample exactly 5m old
//!   (`[t-5m, t]`); 3.x made that window left-open;
//! - range selectors `x[r]` select `[t-r, t]`, closed on the left; 3.x
//!   selects `(t-r, t]`.
//!
//! Native histograms and experimental functions are not supported and are
//! reported by name, never silently answered.

mod borrowed;
mod eval;
mod functions;
pub mod lookback;

use std::fmt;

pub use promql_parser::parser::Expr;

use crate::duration::Millis;
use crate::labels::Labels;
use crate::tsdb::SeriesStore;

/// How far back an instant selector looks for a sample.
pub const LOOKBACK_MS: Millis = 5 * 60 * 1000;

/// Step for subqueries written without one (`x[10m:]`): Prometheus's default
/// global evaluation interval.
pub const DEFAULT_SUBQUERY_STEP_MS: Millis = 60 * 1000;

/// One element of an instant vector.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// One element of a range vector: samples oldest first.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<(Millis, f64)>,
}

/// The result of evaluating an expression at one instant.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum Value {
    Scalar(f64),
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
    String(String),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::Vector(_) => "instant vector",
            Value::Matrix(_) => "range vector",
            Value::String(_) => "string",
        }
    }
}

/// A query that does not parse. `col` is 1-based in the expression (in
/// characters, counting from the start of the whole string, newlines
/// included), when the error could be placed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PromqlError {
    pub message: String,
    pub col: Option<usize>,
}

impl fmt::Display for PromqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.col {
            Some(c) => write!(f, "column {c}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl PromqlError {
    /// The error's (line, column) inside a multi-line expression, both
    /// 1-based.
    pub fn line_col(&self, expr: &str) -> Option<(usize, usize)> {
        let col = self.col?;
        let mut line = 1;
        let mut line_start = 0;
        for (i, c) in expr.chars().enumerate() {
            if i + 1 >= col {
                break;
            }
            if c == '\n' {
                line += 1;
                line_start = i + 1;
            }
        }
        Some((line, col - line_start))
    }
}

/// Why an expression could not be evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("{0} is not supported by firebreak's evaluator")]
    Unsupported(String),
    #[error("{0}")]
    Type(String),
    #[error("{0}")]
    Matching(String),
    #[error("{0}")]
    Invalid(String),
}

/// Parses a PromQL expression, after [`check_bounds`].
pub fn parse(expr: &str) -> Result<Expr, PromqlError> {
    if expr.trim().is_empty() {
        return Err(PromqlError {
            message: "empty expression".to_owned(),
            col: Some(1),
        });
    }
    check_bounds(expr)?;
    promql_parser::parser::parse(expr).map_err(|message| {
        let col = locate_error(expr, &message);
        let message = if message == "invalid promql query" {
            match col {
                Some(_) => "syntax error: unexpected token here".to_owned(),
                None => "syntax error".to_owned(),
            }
        } else {
            message
        };
        PromqlError { message, col }
    })
}

/// Refuses an expression too long or nested too deep to parse safely:
/// the parser and the evaluator recurse once per level of nesting, so a
/// few thousand levels (from a rule file, or a runbook query rendered
/// from an alert label) would overflow the stack and abort the process,
/// and parse time grows faster than the text. Checked by a scan of the
/// text alone, before the parser sees it.
///
/// Nesting counts open brackets (weighted, see
/// [`crate::limits::MAX_PROMQL_NESTING`]) and every operator: `a + b + c`
/// nests one level per `+`, as the parsed tree does. That over-counts (a
/// matcher's `=` inside braces is not counted, but a number's sign is),
/// which is the safe direction.
pub fn check_bounds(expr: &str) -> Result<(), PromqlError> {
    use crate::limits::{MAX_PROMQL_BYTES, MAX_PROMQL_NESTING, PROMQL_BRACKET_WEIGHT};
    if expr.len() > MAX_PROMQL_BYTES {
        return Err(PromqlError {
            message: format!(
                "expression of {} bytes; firebreak parses at most {MAX_PROMQL_BYTES}",
                expr.len()
            ),
            col: None,
        });
    }
    let b = expr.as_bytes();
    let (mut brackets, mut braces, mut operators) = (0usize, 0usize, 0usize);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'\'' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    if b[i] == b'\\' && q != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'#' => {
                while i + 1 < b.len() && b[i + 1] != b'\n' {
                    i += 1;
                }
            }
            b'(' | b'[' => brackets += 1,
            b'{' => {
                brackets += 1;
                braces += 1;
            }
            b')' | b']' => brackets = brackets.saturating_sub(1),
            b'}' => {
                brackets = brackets.saturating_sub(1);
                braces = braces.saturating_sub(1);
            }
            // Inside braces these are matchers, not operators.
            b'=' | b'!' | b'~' if braces > 0 => {}
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'=' | b'!' | b'<' | b'>' => {
                operators += 1;
                // `==`, `!=`, `<=`, `>=` are one operator.
                if b.get(i + 1) == Some(&b'=') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while b
                    .get(i + 1)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
                {
                    i += 1;
                }
                let word = &expr[start..=i];
                if braces == 0
                    && ["and", "or", "unless", "atan2"]
                        .iter()
                        .any(|k| word.eq_ignore_ascii_case(k))
                {
                    operators += 1;
                }
            }
            _ => {}
        }
        if brackets * PROMQL_BRACKET_WEIGHT + operators > MAX_PROMQL_NESTING {
            let col = expr.char_indices().take_while(|(p, _)| *p < i).count() + 1;
            return Err(PromqlError {
                message: format!(
                    "expression nests too deep (more than {} brackets, or {MAX_PROMQL_NESTING} operators, or a mix); simplify it, or split it into recording rules",
                    MAX_PROMQL_NESTING / PROMQL_BRACKET_WEIGHT
                ),
                col: Some(col),
            });
        }
        i += 1;
    }
    Ok(())
}

/// Evaluates `expr` at instant `at` over `store`.
pub fn eval_instant(expr: &Expr, store: &SeriesStore, at: Millis) -> Result<Value, EvalError> {
    eval::Evaluator::new(store, at).eval(expr, at)
}

/// Parses and evaluates in one call: the runbooks' `query` step.
pub fn query(expr: &str, store: &SeriesStore, at: Millis) -> Result<Value, QueryError> {
    let e = parse(expr)?;
    Ok(eval_instant(&e, store, at)?)
}

/// Either half of [`query`] failing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("parse error: {0}")]
    Parse(#[from] PromqlError),
    #[error("evaluation error: {0}")]
    Eval(#[from] EvalError),
}

/// The parser reports most errors without a position; find one ourselves
/// for the common mistakes: unbalanced brackets, a stray character, an
/// unknown function, and otherwise the first token after which the
/// expression can no longer be completed.
fn locate_error(expr: &str, message: &str) -> Option<usize> {
    let chars: Vec<char> = expr.chars().collect();
    // Unbalanced brackets, outside string literals.
    let mut stack: Vec<(char, usize)> = Vec::new();
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            if c == '\\' {
                i += 1;
            } else if c == q {
                quote = None;
            }
        } else {
            match c {
                '"' | '\'' | '`' => quote = Some(c),
                '#' => {
                    while i < chars.len() && chars[i] != '\n' {
                        i += 1;
                    }
                }
                '(' | '[' | '{' => stack.push((c, i)),
                ')' | ']' | '}' => {
                    let want = match c {
                        ')' => '(',
                        ']' => '[',
                        _ => '{',
                    };
                    match stack.pop() {
                        Some((open, _)) if open == want => {}
                        _ => return Some(i + 1),
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    if let Some((_, at)) = stack.last() {
        return Some(at + 1);
    }
    // "unexpected character: 'x'" and friends from the lexer.
    if let Some(idx) = message.find("unexpected character") {
        let rest = &message[idx..];
        if let Some(q) = rest.find('\'')
            && let Some(ch) = rest[q + 1..].chars().next()
            && let Some(pos) = chars.iter().position(|c| *c == ch)
        {
            return Some(pos + 1);
        }
    }
    // Quoted names in the message ("unknown function with name 'foo'").
    for part in message.split('\'').skip(1).step_by(2) {
        if part.len() > 1
            && let Some(b) = expr.find(part)
        {
            return Some(expr[..b].chars().count() + 1);
        }
    }
    viable_prefix_error(expr)
}

/// The start of the token after the longest prefix that some simple
/// completion turns into a valid expression: where a human reader would
/// say the error is. The longest, not the first, because the completions
/// cannot finish every construct (`sum by` needs two more groups).
fn viable_prefix_error(expr: &str) -> Option<usize> {
    const COMPLETIONS: [&str; 22] = [
        "", " 1", ")", " 1)", "))", " 1))", "x)", " x)", "x))", " x))", "x) x", ") x", " x) x",
        "}", "\"}", "x}", "]", " 1m]", "x", " x", "(x)", "(x) x",
    ];
    if expr.len() > 4000 {
        return None;
    }
    // Each try parses a prefix again: bound the text parsed in all, or an
    // invalid expression with thousands of tokens (a hostile label in a
    // runbook's query) costs seconds to locate.
    const BUDGET_BYTES: usize = 1 << 20;
    let starts = token_starts(expr);
    let mut spent = 0usize;
    let viable = |end: usize| {
        let prefix = &expr[..end];
        COMPLETIONS.iter().any(|c| {
            let mut s = String::with_capacity(prefix.len() + c.len());
            s.push_str(prefix);
            s.push_str(c);
            promql_parser::parser::parse(&s).is_ok()
        })
    };
    // Token k spans starts[k]..starts[k+1]; find the last k whose prefix
    // through it is viable: the next token is the culprit.
    for k in (0..starts.len()).rev() {
        let end = starts.get(k + 1).copied().unwrap_or(expr.len());
        // At most every completion is tried, each a few bytes long.
        spent += (end + 8) * COMPLETIONS.len();
        if viable(end) {
            let culprit = starts.get(k + 1).copied().unwrap_or(expr.trim_end().len());
            return Some(expr[..culprit].chars().count() + 1);
        }
        if spent > BUDGET_BYTES {
            return None;
        }
    }
    starts.first().map(|&b| expr[..b].chars().count() + 1)
}

/// Byte offsets where tokens start, roughly as PromQL lexes them: words,
/// numbers/durations, strings, and operator runs.
fn token_starts(expr: &str) -> Vec<usize> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        out.push(i);
        if c.is_ascii_alphanumeric() || c == b'_' || c == b':' || c == b'.' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b"_:.".contains(&b[i])) {
                i += 1;
            }
        } else if c == b'"' || c == b'\'' || c == b'`' {
            i += 1;
            while i < b.len() && b[i] != c {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if b"=!<>~".contains(&c) {
            while i < b.len() && b"=!<>~".contains(&b[i]) {
                i += 1;
            }
        } else {
            // Single-byte punctuation, or one whole UTF-8 character.
            i += 1;
            while i < b.len() && (b[i] & 0xC0) == 0x80 {
                i += 1;
            }
        }
    }
    out.retain(|&s| s <= expr.len());
    out
}

#[cfg(test)]
mod tests;
