//! Prometheus alert templates: the subset of Go's `text/template` that
//! alerting rules use, parsed once when the rule file loads.
//!
//! Owns the template syntax (`{{ $labels.x }}`, `{{ .Value }}`, pipelines,
//! `{{- -}}` trim markers, `{{/* comments */}}`, `if`/`else`/`end` with
//! `eq ne lt le gt ge and or not`), the functions Prometheus adds
//! (`humanize`, `humanize1024`, `humanizePercentage`, `humanizeDuration`,
//! `humanizeTimestamp`, `toUpper`, `toLower`, `title`, `reReplaceAll`,
//! `match`, `stripPort`) plus Go's `printf`, `print`, `index`, `len`, and
//! Go's number formatting so output matches Prometheus byte for byte.
//! Missing labels render as the empty string (Prometheus runs templates
//! with `missingkey=zero`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use regex::Regex;

use crate::labels::Labels;

/// A template that failed to parse or render. `line` and `col` are 1-based
/// inside the template text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: {message}")]
pub struct TemplateError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// What a template can see.
#[derive(Clone, Copy, Debug)]
pub struct TemplateData<'a> {
    pub labels: &'a Labels,
    pub value: f64,
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
}

/// The functions templates may call, for "expected one of" messages.
pub const FUNCTIONS: &[&str] = &[
    "and",
    "eq",
    "ge",
    "gt",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "index",
    "le",
    "len",
    "lt",
    "match",
    "ne",
    "not",
    "or",
    "print",
    "printf",
    "reReplaceAll",
    "stripPort",
    "title",
    "toLower",
    "toUpper",
];

const VARIABLES: &[&str] = &["$", "$labels", "$value", "$externalLabels", "$externalURL"];

/// A parsed template.
#[derive(Clone, Debug)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Print(Pipeline),
    If {
        cond: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Clone, Debug)]
struct Pipeline {
    cmds: Vec<Command>,
    /// Offset of the action, for runtime error positions.
    at: usize,
}

#[derive(Clone, Debug)]
struct Command {
    /// A function call (`humanize`, `printf "%d" x`) or a single operand.
    func: Option<String>,
    args: Vec<Operand>,
}

#[derive(Clone, Debug)]
enum Operand {
    /// `$labels.x`, `.Labels.x`, `$value`, `.`: a variable or the root
    /// data, then field names.
    Path {
        root: String,
        fields: Vec<String>,
    },
    Str(String),
    Num(f64),
    Bool(bool),
    Sub(Pipeline),
}

#[derive(Clone, Debug, PartialEq)]
enum Val {
    Str(String),
    Num(f64),
    Bool(bool),
    Map(BTreeMap<String, String>),
    Root,
    Nil,
}

impl Template {
    /// Parses a template; unknown functions and variables are errors here,
    /// not at render time.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut p = TParser {
            src: source,
            pos: 0,
        };
        let (nodes, end) = p.nodes(0)?;
        if let Some((kw, at)) = end {
            return Err(p.error_at(at, format!("unexpected {{{{{kw}}}}}")));
        }
        Ok(Template {
            source: source.to_owned(),
            nodes,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders with the given data.
    pub fn render(&self, data: &TemplateData<'_>) -> Result<String, TemplateError> {
        let mut out = String::new();
        self.render_nodes(&self.nodes, data, &mut out)?;
        Ok(out)
    }

    /// Renders, or returns Prometheus's inline error text on failure, as an
    /// alert's annotation shows it.
    pub fn render_or_error(&self, data: &TemplateData<'_>) -> String {
        self.render(data)
            .unwrap_or_else(|e| format!("<error expanding template: {e}>"))
    }

    fn render_nodes(
        &self,
        nodes: &[Node],
        data: &TemplateData<'_>,
        out: &mut String,
    ) -> Result<(), TemplateError> {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Print(p) => {
                    let v = self.eval_pipeline(p, data)?;
                    out.push_str(&to_text(&v, data));
                }
                Node::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    let v = self.eval_pipeline(cond, data)?;
                    if truthy(&v) {
                        self.render_nodes(then, data, out)?;
                    } else {
                        self.render_nodes(otherwise, data, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn err(&self, at: usize, message: impl Into<String>) -> TemplateError {
        let (line, col) = line_col(&self.source, at);
        TemplateError {
            line,
            col,
            message: message.into(),
        }
    }

    fn eval_pipeline(&self, p: &Pipeline, data: &TemplateData<'_>) -> Result<Val, TemplateError> {
        let mut piped: Option<Val> = None;
        for c in &p.cmds {
            let mut args = Vec::with_capacity(c.args.len() + 1);
            for a in &c.args {
                args.push(self.eval_operand(a, data)?);
            }
            if let Some(v) = piped.take() {
                args.push(v);
            }
            let v = match &c.func {
                Some(f) => call(f, args, data).map_err(|m| self.err(p.at, format!("{f}: {m}")))?,
                None => {
                    if args.len() != 1 {
                        return Err(self.err(p.at, "can't give an argument to a non-function"));
                    }
                    args.remove(0)
                }
            };
            piped = Some(v);
        }
        Ok(piped.unwrap_or(Val::Nil))
    }

    fn eval_operand(&self, o: &Operand, data: &TemplateData<'_>) -> Result<Val, TemplateError> {
        Ok(match o {
            Operand::Str(s) => Val::Str(s.clone()),
            Operand::Num(n) => Val::Num(*n),
            Operand::Bool(b) => Val::Bool(*b),
            Operand::Sub(p) => self.eval_pipeline(p, data)?,
            Operand::Path { root, fields } => {
                let mut v = match root.as_str() {
                    "$labels" => Val::Map(data.labels.to_map()),
                    "$externalLabels" => Val::Map(data.external_labels.to_map()),
                    "$value" => Val::Num(data.value),
                    "$externalURL" => Val::Str(data.external_url.to_owned()),
                    _ => Val::Root,
                };
                for f in fields {
                    v = match v {
                        Val::Root => match f.as_str() {
                            "Labels" => Val::Map(data.labels.to_map()),
                            "ExternalLabels" => Val::Map(data.external_labels.to_map()),
                            "Value" => Val::Num(data.value),
                            "ExternalURL" => Val::Str(data.external_url.to_owned()),
                            // Checked at parse time; unreachable in practice.
                            _ => Val::Nil,
                        },
                        Val::Map(m) => Val::Str(m.get(f).cloned().unwrap_or_default()),
                        _ => Val::Nil,
                    };
                }
                v
            }
        })
    }
}

fn line_col(src: &str, byte: usize) -> (usize, usize) {
    let before = &src[..byte.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

fn truthy(v: &Val) -> bool {
    match v {
        Val::Str(s) => !s.is_empty(),
        Val::Num(n) => *n != 0.0,
        Val::Bool(b) => *b,
        Val::Map(m) => !m.is_empty(),
        Val::Root => true,
        Val::Nil => false,
    }
}

fn to_text(v: &Val, data: &TemplateData<'_>) -> String {
    match v {
        Val::Str(s) => s.clone(),
        Val::Num(n) => go_v(*n),
        Val::Bool(b) => b.to_string(),
        Val::Map(m) => {
            let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("map[{}]", inner.join(" "))
        }
        Val::Root => format!("{{{} {}}}", data.labels, go_v(data.value)),
        Val::Nil => String::new(),
    }
}

// ---- parser ----

struct TParser<'a> {
    src: &'a str,
    pos: usize,
}

/// `Some((keyword, offset))` when a block ended at `{{else}}`/`{{end}}`.
type BlockEnd = Option<(String, usize)>;

impl<'a> TParser<'a> {
    fn error_at(&self, at: usize, message: impl Into<String>) -> TemplateError {
        let (line, col) = line_col(self.src, at);
        TemplateError {
            line,
            col,
            message: message.into(),
        }
    }

    /// Text and actions up to the end, or to an `else`/`end` at depth > 0.
    fn nodes(&mut self, depth: usize) -> Result<(Vec<Node>, BlockEnd), TemplateError> {
        let mut nodes = Vec::new();
        loop {
            let rest = &self.src[self.pos..];
            let Some(open) = rest.find("{{") else {
                if !rest.is_empty() {
                    nodes.push(Node::Text(rest.to_owned()));
                }
                self.pos = self.src.len();
                return Ok((nodes, None));
            };
            let action_start = self.pos + open;
            let mut text = rest[..open].to_owned();
            let mut inner_start = action_start + 2;
            if self.src[inner_start..].starts_with("- ")
                || self.src[inner_start..].starts_with("-\n")
                || self.src[inner_start..].starts_with("-\t")
            {
                text.truncate(text.trim_end().len());
                inner_start += 1;
            }
            if !text.is_empty() {
                nodes.push(Node::Text(text));
            }
            let Some(close_rel) = self.src[inner_start..].find("}}") else {
                return Err(self.error_at(action_start, "unclosed action: missing }}"));
            };
            let mut inner_end = inner_start + close_rel;
            let after = inner_end + 2;
            let trim_right = self.src[..inner_end].ends_with(" -")
                || self.src[..inner_end].ends_with("\n-")
                || self.src[..inner_end].ends_with("\t-");
            if trim_right {
                inner_end -= 1;
            }
            let inner = &self.src[inner_start..inner_end];
            self.pos = after;
            if trim_right {
                self.skip_ws();
            }
            let trimmed = inner.trim();
            if trimmed.starts_with("/*") {
                if !trimmed.ends_with("*/") {
                    return Err(self.error_at(action_start, "unclosed comment"));
                }
            } else {
                let toks = tokenize(inner, inner_start).map_err(|(at, m)| self.error_at(at, m))?;
                match toks.first().map(|t| t.text.as_str()) {
                    Some("if") => {
                        let cond = self.pipeline(&toks[1..], action_start)?;
                        if toks.len() == 1 {
                            return Err(self.error_at(action_start, "missing condition in {{if}}"));
                        }
                        let (then, end) = self.nodes(depth + 1)?;
                        let (otherwise, end) = match end {
                            Some((kw, _)) if kw == "else" => self.nodes(depth + 1)?,
                            other => (Vec::new(), other),
                        };
                        match end {
                            Some((kw, _)) if kw == "end" => {}
                            _ => return Err(self.error_at(action_start, "{{if}} without {{end}}")),
                        }
                        nodes.push(Node::If {
                            cond,
                            then,
                            otherwise,
                        });
                    }
                    Some(kw @ ("else" | "end")) => {
                        if depth == 0 {
                            return Err(
                                self.error_at(action_start, format!("unexpected {{{{{kw}}}}}"))
                            );
                        }
                        if toks.len() > 1 {
                            return Err(self.error_at(
                                toks[1].at,
                                format!("unexpected {:?} in {{{{{kw}}}}}", toks[1].text),
                            ));
                        }
                        let kw = kw.to_owned();
                        return Ok((nodes, Some((kw, action_start))));
                    }
                    Some(kw @ ("range" | "with" | "define" | "template" | "block")) => {
                        return Err(self.error_at(
                            action_start,
                            format!("{{{{{kw}}}}} is not supported in alert templates"),
                        ));
                    }
                    None => return Err(self.error_at(action_start, "empty action {{}}")),
                    _ => nodes.push(Node::Print(self.pipeline(&toks, action_start)?)),
                }
            }
        }
    }

    fn skip_ws(&mut self) {
        let rest = &self.src[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn pipeline(&self, toks: &[Tok], at: usize) -> Result<Pipeline, TemplateError> {
        let mut cmds = Vec::new();
        let mut i = 0;
        loop {
            let start = i;
            while i < toks.len() && toks[i].text != "|" {
                i += 1;
            }
            let part = &toks[start..i];
            if part.is_empty() {
                let where_ = toks.get(i).map_or(at, |t| t.at);
                return Err(self.error_at(where_, "missing command in pipeline"));
            }
            cmds.push(self.command(part, !cmds.is_empty())?);
            if i >= toks.len() {
                break;
            }
            i += 1;
        }
        Ok(Pipeline { cmds, at })
    }

    fn command(&self, toks: &[Tok], piped: bool) -> Result<Command, TemplateError> {
        let first = &toks[0];
        let is_ident = first
            .text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && !matches!(first.text.as_str(), "true" | "false");
        if is_ident {
            if !FUNCTIONS.contains(&first.text.as_str()) {
                let hint = crate::diag::did_you_mean(&first.text, FUNCTIONS)
                    .map(|s| format!("did you mean {s}? "))
                    .unwrap_or_default();
                return Err(self.error_at(
                    first.at,
                    format!(
                        "function {:?} not defined; {hint}expected one of {}",
                        first.text,
                        crate::diag::one_of(FUNCTIONS)
                    ),
                ));
            }
            let mut args = Vec::new();
            for t in &toks[1..] {
                args.push(self.operand(t)?);
            }
            return Ok(Command {
                func: Some(first.text.clone()),
                args,
            });
        }
        if toks.len() > 1 {
            return Err(self.error_at(
                toks[1].at,
                format!("unexpected {:?} after an operand", toks[1].text),
            ));
        }
        if piped {
            return Err(self.error_at(first.at, "non-function in a pipeline after |"));
        }
        Ok(Command {
            func: None,
            args: vec![self.operand(first)?],
        })
    }

    fn operand(&self, t: &Tok) -> Result<Operand, TemplateError> {
        if let Some(sub) = &t.sub {
            return Ok(Operand::Sub(self.pipeline(sub, t.at)?));
        }
        let s = t.text.as_str();
        if let Some(q) = t.string.as_ref() {
            return Ok(Operand::Str(q.clone()));
        }
        if s == "true" || s == "false" {
            return Ok(Operand::Bool(s == "true"));
        }
        if s.starts_with('$') {
            let mut parts = s.split('.');
            let root = parts.next().unwrap_or("$").to_owned();
            if !VARIABLES.contains(&root.as_str()) {
                return Err(self.error_at(
                    t.at,
                    format!(
                        "undefined variable {root:?}; expected one of {}",
                        VARIABLES.join(", ")
                    ),
                ));
            }
            let fields: Vec<String> = parts.map(str::to_owned).collect();
            if fields.iter().any(String::is_empty) {
                return Err(self.error_at(t.at, format!("bad field access {s:?}")));
            }
            if !fields.is_empty() && matches!(root.as_str(), "$value" | "$externalURL") {
                return Err(self.error_at(t.at, format!("{root} has no fields")));
            }
            return Ok(Operand::Path { root, fields });
        }
        if let Some(rest) = s.strip_prefix('.') {
            let fields: Vec<String> = if rest.is_empty() {
                Vec::new()
            } else {
                rest.split('.').map(str::to_owned).collect()
            };
            if let Some(f) = fields.first() {
                const ROOT_FIELDS: [&str; 4] = ["Labels", "Value", "ExternalLabels", "ExternalURL"];
                if !ROOT_FIELDS.contains(&f.as_str()) {
                    return Err(self.error_at(
                        t.at,
                        format!(
                            "unknown field .{f}; expected one of .{}",
                            ROOT_FIELDS.join(", .")
                        ),
                    ));
                }
            }
            return Ok(Operand::Path {
                root: "$".to_owned(),
                fields,
            });
        }
        if let Ok(n) = s.parse::<f64>() {
            return Ok(Operand::Num(n));
        }
        Err(self.error_at(t.at, format!("unexpected {s:?} in action")))
    }
}

#[derive(Clone, Debug)]
struct Tok {
    text: String,
    /// Decoded value when the token is a string literal.
    string: Option<String>,
    /// Tokens of a parenthesised sub-pipeline.
    sub: Option<Vec<Tok>>,
    at: usize,
}

/// Splits an action into tokens; `base` is the action's byte offset in the
/// template, for positions.
fn tokenize(s: &str, base: usize) -> Result<Vec<Tok>, (usize, String)> {
    let b: Vec<(usize, char)> = s.char_indices().collect();
    let mut i = 0;
    let mut stack: Vec<(Vec<Tok>, usize)> = Vec::new();
    let mut cur: Vec<Tok> = Vec::new();
    while i < b.len() {
        let (off, c) = b[i];
        let at = base + off;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '|' => {
                cur.push(Tok {
                    text: "|".into(),
                    string: None,
                    sub: None,
                    at,
                });
                i += 1;
            }
            '(' => {
                stack.push((std::mem::take(&mut cur), at));
                i += 1;
            }
            ')' => {
                let Some((mut outer, open_at)) = stack.pop() else {
                    return Err((at, "unexpected ')'".into()));
                };
                outer.push(Tok {
                    text: "(...)".into(),
                    string: None,
                    sub: Some(std::mem::take(&mut cur)),
                    at: open_at,
                });
                cur = outer;
                i += 1;
            }
            '"' | '`' => {
                let quote = c;
                let mut val = String::new();
                i += 1;
                let mut closed = false;
                while i < b.len() {
                    let ch = b[i].1;
                    if ch == quote {
                        closed = true;
                        i += 1;
                        break;
                    }
                    if ch == '\\' && quote == '"' && i + 1 < b.len() {
                        let e = b[i + 1].1;
                        val.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                        i += 2;
                        continue;
                    }
                    val.push(ch);
                    i += 1;
                }
                if !closed {
                    return Err((at, "unterminated quoted string".into()));
                }
                cur.push(Tok {
                    text: format!("{quote}{val}{quote}"),
                    string: Some(val),
                    sub: None,
                    at,
                });
            }
            _ => {
                let start = i;
                while i < b.len() && !b[i].1.is_whitespace() && !"|()\"`".contains(b[i].1) {
                    i += 1;
                }
                let end = b.get(i).map_or(s.len(), |x| x.0);
                let text = &s[off..end];
                if text.contains(":=") || text == "=" {
                    return Err((
                        at,
                        "variable declarations are not supported in alert templates".into(),
                    ));
                }
                let _ = start;
                cur.push(Tok {
                    text: text.to_owned(),
                    string: None,
                    sub: None,
                    at,
                });
            }
        }
    }
    if let Some((_, open_at)) = stack.last() {
        return Err((*open_at, "unclosed '('".into()));
    }
    Ok(cur)
}

// ---- functions ----

fn num_arg(v: &Val) -> Result<f64, String> {
    match v {
        Val::Num(n) => Ok(*n),
        Val::Str(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("can't convert {s:?} to a number")),
        Val::Bool(b) => Ok(if *b { 1.0 } else { 0.0 }),
        _ => Err("expected a number".to_owned()),
    }
}

fn str_arg(v: &Val) -> String {
    match v {
        Val::Str(s) => s.clone(),
        Val::Num(n) => go_v(*n),
        Val::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn want(args: &[Val], n: usize) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args: want {n}, got {}",
            args.len()
        ))
    }
}

fn compare(a: &Val, b: &Val) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => Ok(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Ok(x.cmp(y)),
        _ => {
            let (x, y) = (num_arg(a)?, num_arg(b)?);
            x.partial_cmp(&y)
                .ok_or_else(|| "can't compare NaN".to_owned())
        }
    }
}

fn call(f: &str, args: Vec<Val>, _data: &TemplateData<'_>) -> Result<Val, String> {
    use std::cmp::Ordering::*;
    Ok(match f {
        "humanize" => {
            want(&args, 1)?;
            Val::Str(humanize(num_arg(&args[0])?))
        }
        "humanize1024" => {
            want(&args, 1)?;
            Val::Str(humanize1024(num_arg(&args[0])?))
        }
        "humanizePercentage" => {
            want(&args, 1)?;
            Val::Str(humanize_percentage(num_arg(&args[0])?))
        }
        "humanizeDuration" => {
            want(&args, 1)?;
            Val::Str(humanize_duration(num_arg(&args[0])?))
        }
        "humanizeTimestamp" => {
            want(&args, 1)?;
            Val::Str(humanize_timestamp(num_arg(&args[0])?))
        }
        "toUpper" => {
            want(&args, 1)?;
            Val::Str(str_arg(&args[0]).to_uppercase())
        }
        "toLower" => {
            want(&args, 1)?;
            Val::Str(str_arg(&args[0]).to_lowercase())
        }
        "title" => {
            want(&args, 1)?;
            Val::Str(title(&str_arg(&args[0])))
        }
        "stripPort" => {
            want(&args, 1)?;
            let s = str_arg(&args[0]);
            Val::Str(strip_port(&s))
        }
        "reReplaceAll" => {
            want(&args, 3)?;
            let re = Regex::new(&str_arg(&args[0])).map_err(|e| e.to_string())?;
            let repl = str_arg(&args[1]);
            Val::Str(
                re.replace_all(&str_arg(&args[2]), repl.as_str())
                    .into_owned(),
            )
        }
        "match" => {
            want(&args, 2)?;
            let re = Regex::new(&str_arg(&args[0])).map_err(|e| e.to_string())?;
            Val::Bool(re.is_match(&str_arg(&args[1])))
        }
        "printf" => {
            if args.is_empty() {
                return Err("missing format".to_owned());
            }
            Val::Str(go_sprintf(&str_arg(&args[0]), &args[1..]))
        }
        "print" => {
            // Go's fmt.Sprint: spaces only between operands when neither
            // is a string.
            let mut out = String::new();
            for (i, a) in args.iter().enumerate() {
                if i > 0 && !matches!(a, Val::Str(_)) && !matches!(args[i - 1], Val::Str(_)) {
                    out.push(' ');
                }
                out.push_str(&str_arg(a));
            }
            Val::Str(out)
        }
        "index" => {
            want(&args, 2)?;
            match &args[0] {
                Val::Map(m) => Val::Str(m.get(&str_arg(&args[1])).cloned().unwrap_or_default()),
                _ => return Err("index of a non-map".to_owned()),
            }
        }
        "len" => {
            want(&args, 1)?;
            match &args[0] {
                Val::Map(m) => Val::Num(m.len() as f64),
                Val::Str(s) => Val::Num(s.len() as f64),
                _ => return Err("len of a non-map, non-string".to_owned()),
            }
        }
        "not" => {
            want(&args, 1)?;
            Val::Bool(!truthy(&args[0]))
        }
        "and" => args
            .iter()
            .find(|a| !truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Val::Nil),
        "or" => args
            .iter()
            .find(|a| truthy(a))
            .or(args.last())
            .cloned()
            .unwrap_or(Val::Nil),
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
            want(&args, 2)?;
            let o = compare(&args[0], &args[1])?;
            Val::Bool(match f {
                "eq" => o == Equal,
                "ne" => o != Equal,
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            })
        }
        other => return Err(format!("function {other:?} not defined")),
    })
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_word_start = true;
    for c in s.chars() {
        if at_word_start && c.is_alphanumeric() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_word_start = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

fn strip_port(s: &str) -> String {
    if let Some(rest) = s.strip_prefix('[')
        && let Some(end) = rest.find(']')
    {
        return rest[..end].to_owned();
    }
    match s.rfind(':') {
        Some(i) if s[..i].find(':').is_none() => s[..i].to_owned(),
        _ => s.to_owned(),
    }
}

// ---- Go number formatting ----

/// Go's `%v` (and fmt.Sprint) for a float64: `%g` with the shortest
/// representation, exponent form when the exponent is < -4 or >= 6.
pub fn go_v(v: f64) -> String {
    go_g(v, None)
}

/// Go's `%g` / `%.Ng`. `prec` is the number of significant digits (None:
/// shortest).
fn go_g(v: f64, prec: Option<usize>) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let sci = match prec {
        Some(p) => format!("{:.*e}", p.max(1) - 1, v),
        None => format!("{v:e}"),
    };
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let eprec = match prec {
        Some(p) => {
            if digits.len() > p {
                digits.len() as i32
            } else {
                p as i32
            }
        }
        // Go decides on the exponent form with precision 6 when printing
        // the shortest representation, so 1e6 prints as 1e+06.
        None => 6,
    };
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

fn g4(v: f64) -> String {
    go_g(v, Some(4))
}

/// Prometheus's `humanize`: SI prefixes, 4 significant digits.
pub fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", g4(v))
}

/// Prometheus's `humanize1024`: binary prefixes.
pub fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", g4(v))
}

/// Prometheus's `humanizePercentage`: a ratio as a percentage.
pub fn humanize_percentage(v: f64) -> String {
    format!("{}%", g4(v * 100.0))
}

/// Prometheus's `humanizeDuration`: seconds as `1d 2h 3m 4s`.
pub fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    if v == 0.0 {
        return "0s".to_owned();
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let whole = v as i64;
        let (s, m, h, d) = (
            whole % 60,
            (whole / 60) % 60,
            (whole / 3600) % 24,
            whole / 86400,
        );
        return if d != 0 {
            format!("{sign}{d}d {h}h {m}m {s}s")
        } else if h != 0 {
            format!("{sign}{h}h {m}m {s}s")
        } else if m != 0 {
            format!("{sign}{m}m {s}s")
        } else {
            format!("{sign}{}s", g4(v))
        };
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", g4(v))
}

/// Prometheus's `humanizeTimestamp`: Unix seconds as a UTC time, in Go's
/// `time.Time` String form.
pub fn humanize_timestamp(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    // Prometheus goes through model.Time, which keeps milliseconds.
    let ms = ((v * 1e9) as i64).div_euclid(1_000_000);
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000) as u32);
    match chrono::DateTime::from_timestamp(secs, millis * 1_000_000) {
        Some(t) => {
            let frac = if millis == 0 {
                String::new()
            } else {
                format!(".{millis:03}").trim_end_matches('0').to_owned()
            };
            format!("{}{frac} +0000 UTC", t.format("%Y-%m-%d %H:%M:%S"))
        }
        None => g4(v),
    }
}

/// Go's fmt.Sprintf for the verbs alert templates use: `%s %d %f %e %g %v
/// %q %x %%`, with width, precision and the `-`, `+`, `0` flags.
fn go_sprintf(fmt: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let chars: Vec<char> = fmt.chars().collect();
    let mut i = 0;
    let mut argi = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let (mut minus, mut plus, mut zero) = (false, false, false);
        while i < chars.len() && "-+0 #".contains(chars[i]) {
            match chars[i] {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                _ => {}
            }
            i += 1;
        }
        let mut width = None;
        let wstart = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        if i > wstart {
            width = chars[wstart..i]
                .iter()
                .collect::<String>()
                .parse::<usize>()
                .ok();
        }
        let mut prec = None;
        if i < chars.len() && chars[i] == '.' {
            i += 1;
            let pstart = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            prec = Some(
                chars[pstart..i]
                    .iter()
                    .collect::<String>()
                    .parse::<usize>()
                    .unwrap_or(0),
            );
        }
        let Some(&verb) = chars.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        argi += 1;
        let numeric = |a: &Val| -> Option<f64> {
            match a {
                Val::Num(n) => Some(*n),
                _ => None,
            }
        };
        let mut s = match verb {
            's' => str_arg(arg),
            'v' => match arg {
                Val::Num(n) => go_v(*n),
                other => str_arg(other),
            },
            'q' => format!("{:?}", str_arg(arg)),
            'd' => match numeric(arg) {
                Some(n) if n.fract() == 0.0 && n.is_finite() => format!("{}", n as i64),
                Some(n) => format!("%!d(float64={})", go_v(n)),
                None => format!("%!d(string={})", str_arg(arg)),
            },
            'f' | 'F' => match numeric(arg) {
                Some(n) if n.is_finite() => format!("{:.*}", prec.unwrap_or(6), n),
                Some(n) => go_v(n),
                None => format!("%!f(string={})", str_arg(arg)),
            },
            'e' => match numeric(arg) {
                Some(n) if n.is_finite() => {
                    let s = format!("{:.*e}", prec.unwrap_or(6), n);
                    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                    let e: i32 = e.parse().unwrap_or(0);
                    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
                }
                Some(n) => go_v(n),
                None => format!("%!e(string={})", str_arg(arg)),
            },
            'g' => match numeric(arg) {
                Some(n) => go_g(n, prec),
                None => format!("%!g(string={})", str_arg(arg)),
            },
            'x' => match numeric(arg) {
                Some(n) if n.fract() == 0.0 && n.is_finite() => format!("{:x}", n as i64),
                _ => str_arg(arg).bytes().map(|b| format!("{b:02x}")).collect(),
            },
            other => format!("%!{other}(unsupported)"),
        };
        if plus && numeric(arg).is_some_and(|n| n >= 0.0) && "dfeEgv".contains(verb) {
            s.insert(0, '+');
        }
        if let Some(w) = width {
            let len = s.chars().count();
            if len < w {
                let pad = w - len;
                if minus {
                    s.push_str(&" ".repeat(pad));
                } else if zero && numeric(arg).is_some() {
                    let sign = s.starts_with(['-', '+']);
                    let at = usize::from(sign);
                    s.insert_str(at, &"0".repeat(pad));
                } else {
                    s.insert_str(0, &" ".repeat(pad));
                }
            }
        }
        out.push_str(&s);
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[argi..].iter().map(str_arg).collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, value: f64) -> String {
        let labels: Labels = [
            ("room", "main"),
            ("instance", "10.0.0.1:9090"),
            ("__name__", "x"),
        ]
        .into_iter()
        .collect();
        let ext: Labels = [("cluster", "eu1")].into_iter().collect();
        Template::parse(src)
            .unwrap_or_else(|e| panic!("{src}: {e}"))
            .render(&TemplateData {
                labels: &labels,
                value,
                external_labels: &ext,
                external_url: "http://prom",
            })
            .unwrap()
    }

    #[test]
    fn humanize_matches_prometheus() {
        assert_eq!(humanize(1234567.0), "1.235M");
        assert_eq!(humanize(1000.0), "1k");
        assert_eq!(humanize(999.0), "999");
        assert_eq!(humanize(0.0), "0");
        assert_eq!(humanize(0.001234), "1.234m");
        assert_eq!(humanize(-2500.0), "-2.5k");
        assert_eq!(humanize(12.3456), "12.35");
        assert_eq!(humanize(f64::INFINITY), "+Inf");
        assert_eq!(humanize(f64::NAN), "NaN");
        assert_eq!(humanize1024(1024.0), "1ki");
        assert_eq!(humanize1024(1536.0 * 1024.0), "1.5Mi");
        assert_eq!(humanize1024(0.5), "0.5");
        assert_eq!(humanize_percentage(0.1234), "12.34%");
        assert_eq!(humanize_percentage(0.5), "50%");
        assert_eq!(humanize_duration(90.0), "1m 30s");
        assert_eq!(humanize_duration(0.0), "0s");
        assert_eq!(humanize_duration(1.5), "1.5s");
        assert_eq!(
            humanize_duration(86400.0 + 3600.0 * 2.0 + 61.0),
            "1d 2h 1m 1s"
        );
        assert_eq!(humanize_duration(0.25), "250ms");
        assert_eq!(humanize_duration(-90.0), "-1m 30s");
        assert_eq!(
            humanize_timestamp(1_435_065_584.128),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
    }

    #[test]
    fn go_number_formats() {
        assert_eq!(go_v(0.95), "0.95");
        assert_eq!(go_v(3.0), "3");
        assert_eq!(go_v(1e6), "1e+06");
        assert_eq!(go_v(123456.0), "123456");
        assert_eq!(go_v(1234567.0), "1.234567e+06");
        assert_eq!(go_v(0.0001), "0.0001");
        assert_eq!(go_v(0.00001), "1e-05");
        assert_eq!(go_g(1234.5678, Some(4)), "1235");
        assert_eq!(go_g(12345.678, Some(4)), "1.235e+04");
        assert_eq!(go_g(0.5, Some(4)), "0.5");
        assert_eq!(go_sprintf("%.2f", &[Val::Num(1.005e3)]), "1005.00");
        assert_eq!(go_sprintf("%d items", &[Val::Num(3.0)]), "3 items");
        assert_eq!(
            go_sprintf("%s/%v", &[Val::Str("a".into()), Val::Num(0.5)]),
            "a/0.5"
        );
        assert_eq!(
            go_sprintf("%5.1f|%-4s|%%", &[Val::Num(3.125), Val::Str("ab".into())]),
            "  3.1|ab  |%"
        );
        assert_eq!(go_sprintf("%g", &[Val::Num(100000.0)]), "100000");
        assert_eq!(go_sprintf("%g", &[Val::Num(1e21)]), "1e+21");
    }

    #[test]
    fn renders_common_forms() {
        assert_eq!(
            render("Room {{ $labels.room }} at {{ $value }}", 0.5),
            "Room main at 0.5"
        );
        assert_eq!(render("{{ .Labels.room }}/{{ .Value }}", 2.0), "main/2");
        assert_eq!(render("{{ $externalLabels.cluster }}", 0.0), "eu1");
        assert_eq!(render("{{ $value | humanize }}", 1234567.0), "1.235M");
        assert_eq!(render("{{ humanizePercentage $value }}", 0.1234), "12.34%");
        assert_eq!(render("{{ printf \"%.2f\" $value }}", 2.0 / 3.0), "0.67");
        assert_eq!(render("{{ $labels.room | toUpper }}", 0.0), "MAIN");
        assert_eq!(render("{{ \"HeLLo\" | toLower | title }}", 0.0), "Hello");
        assert_eq!(
            render("{{ $labels.instance | stripPort }}", 0.0),
            "10.0.0.1"
        );
        assert_eq!(render("[{{ $labels.missing }}]", 0.0), "[]");
        assert_eq!(render("{{ $value | printf \"%.1f\" }}", 2.25), "2.2");
        assert_eq!(render("{{ humanizeDuration 90 }}", 0.0), "1m 30s");
        assert_eq!(render("{{/* note */}}x", 0.0), "x");
        assert_eq!(render("{{ index $labels \"room\" }}", 0.0), "main");
        assert_eq!(
            render("{{ printf \"%s=%.0f\" $labels.room (humanize 3) }}", 0.0),
            "main=%!f(string=3)"
        );
    }

    #[test]
    fn trim_markers() {
        assert_eq!(render("a  {{- $labels.room -}}  \n b", 0.0), "amainb");
        assert_eq!(render("a {{- \" \" }} b", 0.0), "a  b");
    }

    #[test]
    fn conditionals() {
        let t = "{{ if gt $value 0.5 }}high{{ else }}low{{ end }}";
        assert_eq!(render(t, 0.9), "high");
        assert_eq!(render(t, 0.1), "low");
        assert_eq!(
            render("{{ if eq $labels.room \"main\" }}yes{{ end }}", 0.0),
            "yes"
        );
        assert_eq!(render("{{ if $labels.nope }}yes{{ end }}", 0.0), "");
    }

    #[test]
    fn parse_errors_are_located() {
        let e = Template::parse("ok {{ $value | humanise }}").unwrap_err();
        assert_eq!((e.line, e.col), (1, 16), "{e}");
        assert!(e.message.contains("did you mean humanize"), "{e}");
        let e = Template::parse("line one\n  {{ $lables.x }}").unwrap_err();
        assert_eq!((e.line, e.col), (2, 6), "{e}");
        assert!(e.message.contains("undefined variable"), "{e}");
        let e = Template::parse("{{ $value ").unwrap_err();
        assert!(e.message.contains("missing }}"), "{e}");
        assert!(Template::parse("{{ if $value }}x").is_err());
        assert!(Template::parse("{{ end }}").is_err());
        assert!(Template::parse("{{ range $labels }}{{ end }}").is_err());
        assert!(Template::parse("{{ .Foo }}").is_err());
    }

    #[test]
    fn render_errors_are_reported_inline() {
        let t = Template::parse("{{ humanize $labels.room }}").unwrap();
        let labels: Labels = [("room", "main")].into_iter().collect();
        let data = TemplateData {
            labels: &labels,
            value: 0.0,
            external_labels: &Labels::new(),
            external_url: "",
        };
        assert!(t.render(&data).is_err());
        assert!(
            t.render_or_error(&data)
                .starts_with("<error expanding template: ")
        );
    }
}
