//! Bounds on data that comes from outside: pushed alerts, PromQL that a
//! runbook renders from alert labels, and what the bot echoes back.
//!
//! One place, so the README's security model can list them and a reader
//! can see every ceiling at once. Each is far above what a real
//! Prometheus, Alertmanager or runbook sends, and low enough that one
//! hostile request costs milliseconds, not the runtime.

/// Labels on one pushed alert. Prometheus sets no default; real alerts
/// carry a few dozen at most, external labels included.
pub const MAX_ALERT_LABELS: usize = 128;
/// Bytes in one label name.
pub const MAX_LABEL_NAME_BYTES: usize = 256;
/// Bytes in one label value.
pub const MAX_LABEL_VALUE_BYTES: usize = 4096;
/// Annotations on one pushed alert.
pub const MAX_ALERT_ANNOTATIONS: usize = 64;
/// Bytes in one annotation value (descriptions and runbook links).
pub const MAX_ANNOTATION_BYTES: usize = 16 * 1024;
/// Problems (or ignored fields) named in one answer; the rest are counted.
pub const MAX_PROBLEMS_LISTED: usize = 20;

/// Bytes in one file the bot reads: a config, rule, runbook or test file.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;

/// Bytes in one PromQL expression, in a rule file or rendered by a
/// runbook step. Parse time grows faster than the text.
pub const MAX_PROMQL_BYTES: usize = 16 * 1024;
/// How deep one PromQL expression may nest. The parser and the evaluator
/// recurse once per level, and a bracket (a call, an aggregation, a
/// subquery) costs the evaluator about four times the stack of an
/// operator, so an open bracket counts [`PROMQL_BRACKET_WEIGHT`] and an
/// operator one (an `a + b + c` chain nests one level per operator): at
/// most 64 brackets deep, or a chain of 256 operators.
pub const MAX_PROMQL_NESTING: usize = 256;
/// What one open bracket counts towards [`MAX_PROMQL_NESTING`].
pub const PROMQL_BRACKET_WEIGHT: usize = 4;

/// Keeps the first [`MAX_PROBLEMS_LISTED`] items and says how many more
/// there were (`... and 30 more problems`), so an answer to a hostile
/// request stays small.
pub fn clip_list(mut items: Vec<String>, noun: &str) -> Vec<String> {
    if items.len() > MAX_PROBLEMS_LISTED {
        let more = items.len() - MAX_PROBLEMS_LISTED;
        items.truncate(MAX_PROBLEMS_LISTED);
        items.push(format!("... and {more} more {noun}"));
    }
    items
}

/// The first `max` bytes of `s`, cut at a character boundary, for naming
/// an oversized value in a message without echoing all of it.
pub fn head(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_clipped_with_a_count() {
        let p: Vec<String> = (0..50).map(|i| format!("p{i}")).collect();
        let c = clip_list(p, "problems");
        assert_eq!(c.len(), MAX_PROBLEMS_LISTED + 1);
        assert_eq!(c.last().unwrap(), "... and 30 more problems");
        assert_eq!(clip_list(vec!["a".into()], "problems"), ["a"]);
    }

    #[test]
    fn head_cuts_at_a_character() {
        assert_eq!(head("héllo", 2), "h");
        assert_eq!(head("abc", 10), "abc");
    }
}
