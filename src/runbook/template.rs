//! Runbook templates: MiniJinja with the sharp edges removed.
//!
//! Step parameters, `when` conditions, input sources and concurrency keys
//! are templates over `alert`, `inputs`, `steps` and `run`. The engine is
//! built with no loader (so no `include`), no environment access and a fuel
//! limit, so a template can neither read files or secrets nor loop forever.
//! Undefined values are errors, not empty strings: a typo in a runbook
//! fails loudly at validation or at the step, never posts a blank.
//!
//! Values come from outside (alert labels, chat, target responses), so
//! what a parameter's template writes decides how they go in ([`Lang`]):
//! in a URL path every value is percent-encoded as part of one segment,
//! whoever wrote the template; in PromQL a value inside a string literal
//! goes through the `promql` filter, which validation asks for.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value};
use serde_json::Value as Json;

/// The names a template may start from.
/// Whether a parameter is a template, which can only be checked once
/// rendered.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

pub const ROOTS: [&str; 4] = ["alert", "inputs", "steps", "run"];

/// Enough for any sane step template; a loop over a huge list runs out.
const FUEL: u64 = 50_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// 1-based line inside the template, where MiniJinja knows it.
    pub line: Option<u32>,
    pub message: String,
}

impl TemplateError {
    fn from_mj(e: &minijinja::Error) -> Self {
        let mut message = e
            .detail()
            .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()));
        // MiniJinja keeps the cause (e.g. which key was undefined) separately.
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            message.push_str(&format!(": {s}"));
            src = s.source();
        }
        TemplateError {
            line: e.line().map(|l| l as u32),
            message,
        }
    }
}

/// The variables a template reads, as dotted paths (`steps.create.room`).
pub type Refs = BTreeSet<String>;

/// What a parameter's template writes, where that changes how values go
/// in. Actions declare it for their fields (`Action::langs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    /// A URL path: every `{{ value }}` is percent-encoded as part of one
    /// segment, so a value cannot add segments, a query or a fragment; and
    /// it may not be empty, `.` or `..`, which would name another resource.
    /// The template's own text keeps its slashes.
    UrlPath,
    /// PromQL: values go in as they are, so one inside a string literal
    /// needs `| promql`; validation warns where it is missing.
    Promql,
    /// Alertmanager matchers (a `silence` step): a value belongs inside
    /// double quotes with `| matcher`, or a label could end the value and
    /// add matchers that widen the silence; validation warns otherwise.
    Matchers,
}

pub struct Templates {
    env: Environment<'static>,
    /// The same engine, writing every value as part of a path segment.
    path_env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

impl Templates {
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        // Rendering into JSON bodies and chat, never HTML.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.add_filter("promql", |v: Value| promql_escape(&v.to_string()));
        env.add_filter("matcher", |v: Value| matcher_escape(&v.to_string()));
        // For a value inside a regex (`=~` in PromQL or a matcher): its
        // `.`, `|` and `*` match themselves, not everything.
        env.add_filter("regex_escape", |v: Value| regex::escape(&v.to_string()));
        let mut path_env = env.clone();
        // Not an auto-escape mode: `|safe` and `{% autoescape false %}`
        // must not let a label value add a `/` to a path.
        path_env.set_formatter(|out, _state, v| {
            let s = v.to_string();
            if matches!(s.as_str(), "" | "." | "..") {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "{s:?} cannot go into a URL path: an empty, `.` or `..` value would call another resource"
                    ),
                ));
            }
            out.write_str(&encode_segment(&s))
                .map_err(|_| Error::new(ErrorKind::WriteFailure, "writing a path"))
        });
        Templates { env, path_env }
    }

    /// True when `s` is exactly one `{{ expression }}`: such a value keeps
    /// the expression's type (a number stays a number in a JSON body).
    fn whole_expression(s: &str) -> Option<&str> {
        let t = s.trim();
        let inner = t.strip_prefix("{{")?.strip_suffix("}}")?;
        (!inner.contains("{{")
            && !inner.contains("}}")
            && !inner.starts_with('-')
            && !inner.ends_with('-'))
        .then_some(inner.trim())
    }

    /// Compiles a template and returns what it reads.
    pub fn check(&self, src: &str) -> Result<Refs, TemplateError> {
        if let Some(expr) = Self::whole_expression(src) {
            return self.check_expr(expr);
        }
        let t = self
            .env
            .template_from_str(src)
            .map_err(|e| TemplateError::from_mj(&e))?;
        Ok(t.undeclared_variables(true).into_iter().collect())
    }

    /// Compiles an expression (as in `when:`) and returns what it reads.
    pub fn check_expr(&self, expr: &str) -> Result<Refs, TemplateError> {
        let e = self
            .env
            .compile_expression(expr)
            .map_err(|e| TemplateError::from_mj(&e))?;
        Ok(e.undeclared_variables(true).into_iter().collect())
    }

    pub fn render_str(&self, src: &str, ctx: &Json) -> Result<String, TemplateError> {
        let ctx = Value::from(minijinja::value::Serde(ctx));
        self.env
            .render_str(src, ctx)
            .map_err(|e| TemplateError::from_mj(&e))
    }

    fn eval_raw(&self, expr: &str, ctx: &Json) -> Result<Value, TemplateError> {
        let e = self
            .env
            .compile_expression(expr)
            .map_err(|e| TemplateError::from_mj(&e))?;
        e.eval(Value::from(minijinja::value::Serde(ctx)))
            .map_err(|e| TemplateError::from_mj(&e))
    }

    pub fn eval(&self, expr: &str, ctx: &Json) -> Result<Json, TemplateError> {
        let v = self.eval_raw(expr, ctx)?;
        serde_json::to_value(&v).map_err(|e| TemplateError {
            line: None,
            message: format!("expression result cannot be used as a value: {e}"),
        })
    }

    pub fn eval_bool(&self, expr: &str, ctx: &Json) -> Result<bool, TemplateError> {
        Ok(self.eval_raw(expr, ctx)?.is_true())
    }

    /// Renders a URL path template: each value encoded as part of one
    /// segment, never kept whole as a typed value.
    pub fn render_path(&self, src: &str, ctx: &Json) -> Result<String, TemplateError> {
        if !src.contains("{{") && !src.contains("{%") {
            return Ok(src.to_owned());
        }
        let ctx = Value::from(minijinja::value::Serde(ctx));
        self.path_env
            .render_str(src, ctx)
            .map_err(|e| TemplateError::from_mj(&e))
    }

    /// Renders a step's parameters: the top-level fields named in `langs`
    /// as what they are, every other string as [`Templates::render_value`].
    pub fn render_params(
        &self,
        with: &Json,
        langs: &[(&str, Lang)],
        ctx: &Json,
    ) -> Result<Json, TemplateError> {
        let Json::Object(map) = with else {
            return self.render_value(with, ctx);
        };
        map.iter()
            .map(|(k, v)| {
                let lang = langs.iter().find(|(f, _)| f == k).map(|(_, l)| *l);
                let rendered = match (lang, v) {
                    (Some(Lang::UrlPath), Json::String(s)) => {
                        Json::String(self.render_path(s, ctx)?)
                    }
                    _ => self.render_value(v, ctx)?,
                };
                Ok((k.clone(), rendered))
            })
            .collect::<Result<_, TemplateError>>()
            .map(Json::Object)
    }

    /// Renders every string inside a JSON value; keys are left alone.
    pub fn render_value(&self, v: &Json, ctx: &Json) -> Result<Json, TemplateError> {
        Ok(match v {
            Json::String(s) if !s.contains("{{") && !s.contains("{%") => v.clone(),
            Json::String(s) => match Self::whole_expression(s) {
                Some(expr) => self.eval(expr, ctx)?,
                None => Json::String(self.render_str(s, ctx)?),
            },
            Json::Array(items) => Json::Array(
                items
                    .iter()
                    .map(|i| self.render_value(i, ctx))
                    .collect::<Result<_, _>>()?,
            ),
            Json::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, i)| Ok((k.clone(), self.render_value(i, ctx)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => other.clone(),
        })
    }

    /// Every template string inside a JSON value, with its field path.
    pub fn strings_in(v: &Json, path: &str, out: &mut Vec<(String, String)>) {
        match v {
            Json::String(s) if s.contains("{{") || s.contains("{%") => {
                out.push((path.to_owned(), s.clone()))
            }
            Json::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, x)| Self::strings_in(x, &format!("{path}[{i}]"), out)),
            Json::Object(map) => map
                .iter()
                .for_each(|(k, x)| Self::strings_in(x, &format!("{path}.{k}"), out)),
            _ => {}
        }
    }
}

/// One `{{ expression }}` of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExprTag<'a> {
    /// Byte range of the whole tag, `{{` to `}}`.
    pub start: usize,
    pub end: usize,
    /// The expression, without delimiters, trim markers or outer spaces.
    pub expr: &'a str,
    /// Whether the tag trims whitespace before it (`{{-`) and after it
    /// (`-}}`).
    pub trim_left: bool,
    pub trim_right: bool,
}

/// Each `{{ expression }}` of a template, in order: not those inside
/// `{% raw %}` or comments, and a `}}` inside a string literal does not
/// end one.
pub fn expression_tags(src: &str) -> Vec<ExprTag<'_>> {
    let mut tags = Vec::new();
    let mut i = 0;
    while let Some(rel) = src[i..].find('{') {
        let start = i + rel;
        let rest = &src[start..];
        if rest.starts_with("{#") {
            i = rest.find("#}").map_or(src.len(), |e| start + e + 2);
        } else if rest.starts_with("{%") {
            let Some((end, word)) = block_tag(src, start) else {
                break;
            };
            i = end;
            if word == "raw" {
                // Up to and past the `{% endraw %}`.
                i = src.len();
                let mut j = end;
                while let Some((e, w)) = src[j..].find("{%").and_then(|r| block_tag(src, j + r)) {
                    if w == "endraw" {
                        i = e;
                        break;
                    }
                    j = e;
                }
            }
        } else if rest.starts_with("{{") {
            let Some(end) = tag_end(src, start + 2, "}}") else {
                break;
            };
            let inner = &src[start + 2..end - 2];
            let trim_left = inner.starts_with('-');
            let trim_right = inner.ends_with('-');
            let body = inner.strip_prefix(['-', '+']).unwrap_or(inner);
            let expr = body.strip_suffix(['-', '+']).unwrap_or(body).trim();
            tags.push(ExprTag {
                start,
                end,
                expr,
                trim_left,
                trim_right,
            });
            i = end;
        } else {
            i = start + 1;
        }
    }
    tags
}

/// A `{% ... %}` tag opening at `open`: where it ends, and what it says
/// without delimiters, trim markers and outer spaces.
fn block_tag(src: &str, open: usize) -> Option<(usize, &str)> {
    let end = tag_end(src, open + 2, "%}")?;
    let inner = &src[open + 2..end - 2];
    Some((
        end,
        inner.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace()),
    ))
}

/// Where a tag opened before `from` ends: past its `close`, skipping
/// string literals; None if it never does.
fn tag_end(src: &str, from: usize, close: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut chars = src[from..].char_indices();
    while let Some((k, c)) = chars.next() {
        match quote {
            Some(_) if c == '\\' => {
                chars.next();
            }
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if src[from + k..].starts_with(close) => return Some(from + k + close.len()),
            None => {}
        }
    }
    None
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so
/// `/`, `?`, `#`, `%`, `\` and non-ASCII stay inside one segment.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A value escaped to sit inside a PromQL string literal, double- or
/// single-quoted: quotes are written as `\x22` and `\x27` because `\'` is
/// an error inside "..." (and `\"` inside '...'). Backtick strings cannot
/// escape anything; validation says so.
pub fn promql_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '"' | '\'' => {
                let _ = write!(out, "\\x{:02x}", u32::from(ch));
            }
            c if c.is_control() && u32::from(c) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// A value escaped to sit inside a double-quoted Alertmanager matcher
/// value (`room="{{ v | matcher }}"`), as `crate::matchers` reads one.
pub fn matcher_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// What a validation warning says about each `{{ ... }}` in a `silence`
/// step's matchers that is not inside double quotes ending in
/// `| matcher`: places a value can add matchers of its own.
pub fn matcher_warnings(src: &str) -> Vec<String> {
    unescaped_in(src, "matcher", &['"'], true)
        .into_iter()
        .map(|expr| format!("`{expr}` is not inside double quotes with `| matcher`: a value with a quote, a comma or a brace would add matchers and widen the silence; write name=\"{{{{ ... | matcher }}}}\""))
        .collect()
}

/// What a validation warning says about each `{{ ... }}` in a PromQL
/// template that sits inside a string literal without ending in
/// `| promql` (or inside a backtick string, where no escape works), each
/// once: places a value can end the string and write PromQL.
pub fn promql_string_warnings(src: &str) -> Vec<String> {
    unescaped_exprs(src)
        .into_iter()
        .map(|expr| format!("`{expr}` is inside a PromQL string without `| promql`: a value with a quote or a backslash would end the string and rewrite the query; end it with `| promql`, in double or single quotes"))
        .collect()
}

/// The expressions [`promql_string_warnings`] warns about.
fn unescaped_exprs(src: &str) -> Vec<String> {
    unescaped_in(src, "promql", &['"', '\'', '`'], false)
}

/// Each `{{ ... }}` of `src` that sits inside a string opened by one of
/// `quotes` without ending in `| filter` (a backtick string escapes
/// nothing, so anything in one), and with `bare` also each one outside
/// any string.
fn unescaped_in(src: &str, filter: &str, quotes: &[char], bare: bool) -> Vec<String> {
    let mut found = Vec::new();
    let mut quote: Option<char> = None;
    let mut rest = src;
    while let Some(ch) = rest.chars().next() {
        // Jinja first: its own quotes are not PromQL's.
        if let Some(after) = rest.strip_prefix("{{") {
            let end = after.find("}}").unwrap_or(after.len());
            let expr = after[..end].trim_matches(|c: char| c == '-' || c.is_whitespace());
            let last_filter = expr.rsplit('|').next().unwrap_or_default();
            let escaped =
                expr.contains('|') && last_filter.trim().split(['(', ' ']).next() == Some(filter);
            let shown = format!("{{{{ {expr} }}}}");
            let unsafe_here = match quote {
                Some(q) => q == '`' || !escaped,
                None => bare,
            };
            if unsafe_here && !found.contains(&shown) {
                found.push(shown);
            }
            rest = after.get(end + 2..).unwrap_or_default();
            continue;
        }
        let block_end = if rest.starts_with("{%") {
            Some("%}")
        } else if rest.starts_with("{#") {
            Some("#}")
        } else {
            None
        };
        if let Some(close) = block_end {
            rest = rest[2..].find(close).map_or("", |e| &rest[2 + e + 2..]);
            continue;
        }
        let mut skip = ch.len_utf8();
        match quote {
            Some(q) if ch == '\\' && q != '`' => {
                skip += rest[skip..].chars().next().map_or(0, char::len_utf8);
            }
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None if quotes.contains(&ch) => quote = Some(ch),
            // A PromQL comment runs to the end of the line.
            None if ch == '#' && filter == "promql" => skip = rest.find('\n').unwrap_or(rest.len()),
            None => {}
        }
        rest = &rest[skip..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expression_tags_skip_strings_raw_blocks_and_comments() {
        let src = "a {{ x }} {# {{ no }} #}{% raw %}{{ no }}{% endraw %}{{- \"}}\" ~ y -}}{% if z %}{{ 'q' }}{% endif %}{{ open";
        let tags: Vec<(&str, bool, bool)> = expression_tags(src)
            .iter()
            .map(|t| (t.expr, t.trim_left, t.trim_right))
            .collect();
        assert_eq!(
            tags,
            [
                ("x", false, false),
                ("\"}}\" ~ y", true, true),
                ("'q'", false, false)
            ]
        );
        let t = &expression_tags(src)[1];
        assert_eq!(&src[t.start..t.end], "{{- \"}}\" ~ y -}}");
    }

    #[test]
    fn whole_expressions_keep_their_type() {
        let t = Templates::new();
        let ctx = json!({"inputs": {"capacity": 1500000, "room": "r1"}});
        let v = t
            .render_value(
                &json!({"capacity": "{{ inputs.capacity }}", "title": "Room {{ inputs.room }}"}),
                &ctx,
            )
            .unwrap();
        assert_eq!(v, json!({"capacity": 1500000, "title": "Room r1"}));
    }

    #[test]
    fn undefined_is_an_error_naming_the_key() {
        let t = Templates::new();
        let e = t
            .render_str("x {{ inputs.nope }}", &json!({"inputs": {}}))
            .unwrap_err();
        assert!(e.message.contains("undefined"), "{e}");
    }

    #[test]
    fn refs_are_reported_nested() {
        let t = Templates::new();
        let r = t
            .check("{{ steps.create.room }} {{ alert.labels.room }}")
            .unwrap();
        assert!(r.contains("steps.create.room"), "{r:?}");
        assert!(r.contains("alert.labels.room"), "{r:?}");
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let t = Templates::new();
        let e = t.check("ok\n{{ inputs.x | }}").unwrap_err();
        assert_eq!(e.line, Some(2), "{e:?}");
    }

    #[test]
    fn templates_cannot_include_files() {
        let t = Templates::new();
        let e = t
            .render_str("{% include '/etc/passwd' %}", &json!({}))
            .unwrap_err();
        assert!(!e.message.contains("root:"), "{e}");
    }

    #[test]
    fn runaway_loops_run_out_of_fuel() {
        let t = Templates::new();
        let e = t.render_str(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            &json!({}),
        );
        assert!(e.is_err());
    }

    fn path_with(value: &str) -> Result<String, TemplateError> {
        Templates::new().render_path(
            "/api/v1/rooms/main/speakers/{{ inputs.speaker }}/mute",
            &json!({"inputs": {"speaker": value}}),
        )
    }

    #[test]
    fn a_path_value_stays_inside_its_segment() {
        for (value, encoded) in [
            ("../../../rooms#", "..%2F..%2F..%2Frooms%23"),
            ("%2e%2e", "%252e%252e"),
            ("a/b?c=1", "a%2Fb%3Fc%3D1"),
            ("..\\..", "..%5C.."),
            ("ana maría", "ana%20mar%C3%ADa"),
            ("bob-1.x_y~z", "bob-1.x_y~z"),
        ] {
            assert_eq!(
                path_with(value).unwrap(),
                format!("/api/v1/rooms/main/speakers/{encoded}/mute"),
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_path_value_cannot_be_empty_or_a_dot_segment() {
        for value in ["", ".", ".."] {
            let e = path_with(value).unwrap_err();
            assert!(e.message.contains("another resource"), "{value:?}: {e}");
        }
    }

    #[test]
    fn a_path_value_is_encoded_even_when_marked_safe() {
        let t = Templates::new();
        let ctx = json!({"inputs": {"p": "x/../y"}});
        for src in [
            "/r/{{ inputs.p | safe }}",
            "/r/{% autoescape false %}{{ inputs.p }}{% endautoescape %}",
        ] {
            assert_eq!(t.render_path(src, &ctx).unwrap(), "/r/x%2F..%2Fy", "{src}");
        }
        // A whole-expression path is still text, not the value as it is.
        assert_eq!(t.render_path("{{ inputs.p }}", &ctx).unwrap(), "x%2F..%2Fy");
    }

    #[test]
    fn only_fields_declared_as_paths_are_encoded() {
        let t = Templates::new();
        let ctx = json!({"inputs": {"room": "a/b"}});
        let v = t
            .render_params(
                &json!({"path": "/rooms/{{ inputs.room }}", "body": {"room": "{{ inputs.room }}"}}),
                &[("path", Lang::UrlPath)],
                &ctx,
            )
            .unwrap();
        assert_eq!(v, json!({"path": "/rooms/a%2Fb", "body": {"room": "a/b"}}));
    }

    #[test]
    fn a_promql_escaped_value_stays_one_label_value() {
        let t = Templates::new();
        for value in [
            "main\"}) or vector(1) or max(x{a=\"",
            "main'}) or vector(1) or max(x{a='",
            "back\\slash\\",
            "two\nlines\r\t",
            "`tick` and 'single' and \"double\"",
            "ünï\u{7}cödé",
        ] {
            let ctx = json!({"alert": {"labels": {"room": value}}});
            for q in ['"', '\''] {
                let src =
                    format!("live_room_up{{room={q}{{{{ alert.labels.room | promql }}}}{q}}}");
                let expr = t.render_str(&src, &ctx).unwrap();
                let parsed = crate::promql::parse(&expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
                let promql_parser::parser::Expr::VectorSelector(vs) = parsed else {
                    panic!("{expr} is not one selector");
                };
                let room = vs.matchers.find_matchers("room");
                assert_eq!(room.len(), 1, "{expr}");
                assert_eq!(room[0].value, value, "{expr}");
            }
        }
    }

    /// Regression: a label pasted into a silence's matchers could close
    /// the value and add `alertname=~".*"`, silencing every alert of the
    /// event. Escaped, it stays one value.
    #[test]
    fn a_matcher_escaped_value_stays_one_matcher_value() {
        let t = Templates::new();
        for hostile in [
            r#"launch",alertname=~".*"#,
            r#"x\"#,
            "a\nb}",
            r#"\",room=~".+"#,
        ] {
            let ctx = json!({"inputs": {"event": hostile}});
            let text = t
                .render_str(
                    r#"alertname="RoomFull",event="{{ inputs.event | matcher }}""#,
                    &ctx,
                )
                .unwrap();
            let ms =
                crate::matchers::parse_matchers(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(ms.len(), 2, "{text}");
            assert_eq!(ms[1].value, hostile, "{text}");
        }
        let ctx = json!({"inputs": {"room": "main.hall"}});
        assert_eq!(
            t.render_str("{{ inputs.room | regex_escape }}", &ctx)
                .unwrap(),
            "main\\.hall"
        );
    }

    #[test]
    fn unescaped_values_in_matchers_are_found() {
        let w = matcher_warnings(
            r#"alertname="A",event="{{ inputs.event }}",room={{ inputs.room }},ok="{{ inputs.ok | matcher }}""#,
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("`{{ inputs.event }}` is not inside double quotes with `| matcher`"),
            "{w:?}"
        );
        assert!(w[1].starts_with("`{{ inputs.room }}`"), "{w:?}");
    }

    #[test]
    fn unescaped_values_inside_promql_strings_are_found() {
        let found = unescaped_exprs(
            r#"max(x{room="{{ alert.labels.room }}", a='{{ inputs.a|promql }}'}) > {{ steps.s.n }}
               and y{b=`{{ inputs.b | promql }}`, c="{{- inputs.c | lower -}}", d="\"{{ inputs.d }}"} # "{{ inputs.e }}"
               {% set q = '"' %}{# " #}{{ inputs.f }}"#,
        );
        assert_eq!(
            found,
            [
                "{{ alert.labels.room }}",
                "{{ inputs.b | promql }}",
                "{{ inputs.c | lower }}",
                "{{ inputs.d }}",
            ]
        );
        assert!(
            unescaped_exprs(
                r#"sum(x{room="{{ inputs.room | promql }}"}) >= {{ steps.b.n * 0.8 }}"#
            )
            .is_empty()
        );
    }

    #[test]
    fn when_expressions_are_truthy() {
        let t = Templates::new();
        let ctx = json!({"alert": {"value": 3.0}});
        assert!(t.eval_bool("alert.value > 2", &ctx).unwrap());
        assert!(!t.eval_bool("alert.value > 5", &ctx).unwrap());
    }
}
