//! Go's text/template syntax, as Go 1.19 (Prometheus 2.42) reads it: the
//! lexer and the parser, with the checks Go makes at parse time (every
//! function and variable defined, `break` and `continue` only inside
//! `range`, ...) and Go's variable scoping: a variable declared inside
//! `if`, `with` or `range` is visible to that structure's `{{end}}`, one
//! declared at the top to the end of the template, and a `define`d
//! template sees only `$`.
//!
//! A few things Go would only find when the template runs are refused
//! here, as nothing in an alert template's data could make them work: a
//! field given arguments, a non-function after `|`, methods of the time
//! `toTime` returns, complex numbers.

use super::value::{ROOT_FIELDS, TIME_METHODS};
use super::{FUNCTIONS, TemplateError};

#[derive(Clone, Debug)]
pub(super) enum Node {
    Text(String),
    /// `{{ pipeline }}`: writes its value unless it declares or assigns.
    Action(Pipe),
    If(Control),
    With(Control),
    Range(Control),
    Break,
    Continue,
    /// `{{ template "name" pipeline }}`.
    Template {
        name: String,
        pipe: Option<Pipe>,
        at: usize,
    },
}

/// `if`, `with` and `range`: the pipeline, the body and the `else` part.
#[derive(Clone, Debug)]
pub(super) struct Control {
    pub pipe: Pipe,
    pub body: Vec<Node>,
    pub otherwise: Vec<Node>,
}

#[derive(Clone, Debug)]
pub(super) struct Pipe {
    pub at: usize,
    /// Variables declared (`:=`) or assigned (`=`).
    pub decl: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Clone, Debug)]
pub(super) struct Cmd {
    pub at: usize,
    pub args: Vec<Arg>,
}

#[derive(Clone, Debug)]
pub(super) enum Arg {
    /// A function: called with the command's other arguments when first,
    /// with none elsewhere.
    Func(String),
    Dot,
    /// `.a.b`: fields of dot.
    Field(Vec<String>),
    /// `$x.a.b`.
    Var(String, Vec<String>),
    /// `(pipeline)`.
    Sub(Box<Pipe>),
    /// `(pipeline).a.b` or `func.a`.
    Chain(Box<Arg>, Vec<String>),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
}

/// A parsed template: its text and the templates it `define`s.
pub(super) struct Parsed {
    pub root: Vec<Node>,
    pub defines: Vec<(String, Vec<Node>)>,
}

/// The variables Prometheus declares before an alert template.
pub(super) const PROMETHEUS_VARS: [&str; 5] =
    ["$", "$labels", "$externalLabels", "$externalURL", "$value"];

/// How deep blocks and parentheses may nest. The parser (and the
/// executor after it) recurses once per level, so a hostile template
/// must not go as deep as it likes; real ones stay within a few levels.
pub(super) const MAX_NESTING: usize = 100;

const KEYWORDS: [&str; 10] = [
    "block", "break", "continue", "define", "else", "end", "if", "range", "template", "with",
];

pub(super) fn parse(src: &str) -> Result<Parsed, TemplateError> {
    let items = lex(src).map_err(|(at, m)| error_at(src, at, m))?;
    let mut p = Parser {
        src,
        items,
        i: 0,
        vars: PROMETHEUS_VARS.iter().map(|v| (*v).to_owned()).collect(),
        range_depth: 0,
        dot_is_root: true,
        defines: Vec::new(),
        nesting: 0,
    };
    let mut root = Vec::new();
    loop {
        match p.next_kind() {
            Kind::Eof => break,
            Kind::Text(t) => root.push(Node::Text(t)),
            Kind::LeftDelim => {
                if matches!(p.peek_non_space(), Kind::Ident(k) if k == "define") {
                    p.next_non_space();
                    p.definition()?;
                    continue;
                }
                match p.action()? {
                    Step::Node(n) => root.push(n),
                    Step::End(at) => return Err(p.err(at, "unexpected {{end}}")),
                    Step::Else(at, _) => return Err(p.err(at, "unexpected {{else}}")),
                }
            }
            other => return Err(p.err(p.at_prev(), format!("unexpected {}", describe(&other)))),
        }
    }
    Ok(Parsed {
        root,
        defines: p.defines,
    })
}

pub(super) fn error_at(src: &str, at: usize, message: impl Into<String>) -> TemplateError {
    let before = &src[..at.min(src.len())];
    TemplateError {
        line: before.matches('\n').count() + 1,
        col: before.rsplit('\n').next().unwrap_or("").chars().count() + 1,
        message: message.into(),
    }
}

// ---- lexer ----

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Text(String),
    LeftDelim,
    RightDelim,
    Space,
    Ident(String),
    Field(String),
    Dot,
    Var(String),
    Str(String),
    Char(i64),
    Number(String),
    Bool(bool),
    Nil,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    Eof,
}

#[derive(Clone, Debug)]
struct Item {
    kind: Kind,
    at: usize,
}

fn describe(k: &Kind) -> String {
    match k {
        Kind::Text(_) => "text".into(),
        Kind::LeftDelim => "{{".into(),
        Kind::RightDelim => "}}".into(),
        Kind::Space => "space".into(),
        Kind::Ident(s) if KEYWORDS.contains(&s.as_str()) => format!("<{s}>"),
        Kind::Ident(s) | Kind::Field(s) | Kind::Var(s) | Kind::Number(s) => format!("{s:?}"),
        Kind::Dot => "\".\"".into(),
        Kind::Str(s) => format!("{s:?}"),
        Kind::Char(c) => format!("character constant {c}"),
        Kind::Bool(b) => format!("{b:?}"),
        Kind::Nil => "nil".into(),
        Kind::Pipe => "\"|\"".into(),
        Kind::LParen => "\"(\"".into(),
        Kind::RParen => "\")\"".into(),
        Kind::Declare => "\":=\"".into(),
        Kind::Assign => "\"=\"".into(),
        Kind::Comma => "\",\"".into(),
        Kind::Eof => "end of template".into(),
    }
}

/// Go's isSpace inside templates: space, tab, CR, LF and nothing else.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

/// `{{- ` opens an action that trims the text before it.
fn left_trim(rest: &str) -> bool {
    let mut c = rest.chars();
    c.next() == Some('-') && c.next().is_some_and(is_space)
}

/// ` -}}` closes an action that trims the text after it.
fn right_trim_delim(rest: &str) -> bool {
    let mut c = rest.chars();
    c.next().is_some_and(is_space) && c.as_str().starts_with("-}}")
}

fn lex(src: &str) -> Result<Vec<Item>, (usize, String)> {
    let mut items = Vec::new();
    let mut pos = 0;
    loop {
        let Some(open_rel) = src[pos..].find("{{") else {
            if pos < src.len() {
                items.push(Item {
                    kind: Kind::Text(src[pos..].to_owned()),
                    at: pos,
                });
            }
            items.push(Item {
                kind: Kind::Eof,
                at: src.len(),
            });
            return Ok(items);
        };
        let open = pos + open_rel;
        let mut text = &src[pos..open];
        let mut p = open + 2;
        if left_trim(&src[p..]) {
            text = text.trim_end_matches(is_space);
            p += 2;
        }
        if !text.is_empty() {
            items.push(Item {
                kind: Kind::Text(text.to_owned()),
                at: pos,
            });
        }
        let (end, trim) = if src[p..].starts_with("/*") {
            let Some(close) = src[p + 2..].find("*/") else {
                return Err((open, "unclosed comment".into()));
            };
            let q = p + 2 + close + 2;
            if right_trim_delim(&src[q..]) {
                (q + 4, true)
            } else if src[q..].starts_with("}}") {
                (q + 2, false)
            } else {
                return Err((open, "comment ends before closing delimiter".into()));
            }
        } else {
            items.push(Item {
                kind: Kind::LeftDelim,
                at: open,
            });
            lex_action(src, p, &mut items)?
        };
        pos = end;
        if trim {
            pos += src[pos..].len() - src[pos..].trim_start_matches(is_space).len();
        }
    }
}

/// Lexes the inside of an action from `p`; returns where the action ends
/// and whether it trims the text after it.
fn lex_action(
    src: &str,
    mut p: usize,
    items: &mut Vec<Item>,
) -> Result<(usize, bool), (usize, String)> {
    let mut depth = 0usize;
    let push = |items: &mut Vec<Item>, kind: Kind, at: usize| items.push(Item { kind, at });
    loop {
        let rest = &src[p..];
        let at_delim = if right_trim_delim(rest) {
            Some((p + 4, true))
        } else if rest.starts_with("}}") {
            Some((p + 2, false))
        } else {
            None
        };
        if let Some((end, trim)) = at_delim {
            if depth > 0 {
                return Err((p, "unclosed left paren".into()));
            }
            push(items, Kind::RightDelim, p);
            return Ok((end, trim));
        }
        let Some(c) = rest.chars().next() else {
            return Err((p, "unclosed action".into()));
        };
        let start = p;
        match c {
            c if is_space(c) => {
                let n = rest.len() - rest.trim_start_matches(is_space).len();
                // The space before `-}}` belongs to the delimiter.
                p += if right_trim_delim(&src[p + n - 1..]) {
                    n - 1
                } else {
                    n
                };
                if p > start {
                    push(items, Kind::Space, start);
                }
            }
            '=' => {
                p += 1;
                push(items, Kind::Assign, start);
            }
            ':' => {
                if !rest.starts_with(":=") {
                    return Err((p, "expected :=".into()));
                }
                p += 2;
                push(items, Kind::Declare, start);
            }
            '|' => {
                p += 1;
                push(items, Kind::Pipe, start);
            }
            '(' => {
                p += 1;
                depth += 1;
                push(items, Kind::LParen, start);
            }
            ')' => {
                if depth == 0 {
                    return Err((p, "unexpected right paren".into()));
                }
                depth -= 1;
                p += 1;
                push(items, Kind::RParen, start);
            }
            ',' => {
                p += 1;
                push(items, Kind::Comma, start);
            }
            '"' | '`' | '\'' => {
                let (len, kind) = lex_quoted(rest, c).map_err(|m| (start, m))?;
                p += len;
                push(items, kind, start);
            }
            '$' => {
                let n = alnum_len(&rest[1..]);
                p += 1 + n;
                check_terminator(src, p)?;
                push(items, Kind::Var(rest[..1 + n].to_owned()), start);
            }
            '.' if !rest[1..].starts_with(|c: char| c.is_ascii_digit()) => {
                let n = alnum_len(&rest[1..]);
                p += 1 + n;
                check_terminator(src, p)?;
                let kind = if n == 0 {
                    Kind::Dot
                } else {
                    Kind::Field(rest[1..1 + n].to_owned())
                };
                push(items, kind, start);
            }
            c if c == '.' || c == '+' || c == '-' || c.is_ascii_digit() => {
                let n = number_len(rest);
                if rest[n..].starts_with(is_alnum) {
                    let bad = &rest[..n + rest[n..].chars().next().map_or(0, char::len_utf8)];
                    return Err((start, format!("bad number syntax: {bad:?}")));
                }
                p += n;
                push(items, Kind::Number(rest[..n].to_owned()), start);
            }
            c if is_alnum(c) => {
                let n = alnum_len(rest);
                p += n;
                check_terminator(src, p)?;
                let word = &rest[..n];
                let kind = match word {
                    "true" => Kind::Bool(true),
                    "false" => Kind::Bool(false),
                    "nil" => Kind::Nil,
                    w => Kind::Ident(w.to_owned()),
                };
                push(items, kind, start);
            }
            c => {
                return Err((p, format!("unexpected {c:?} in command")));
            }
        }
    }
}

fn alnum_len(s: &str) -> usize {
    s.len() - s.trim_start_matches(is_alnum).len()
}

/// After a word: space, the end, `.`, `,`, `|`, `:`, a paren or `}}`.
fn check_terminator(src: &str, p: usize) -> Result<(), (usize, String)> {
    let rest = &src[p..];
    match rest.chars().next() {
        None => Ok(()),
        Some(c) if is_space(c) || ".,|:()".contains(c) || rest.starts_with("}}") => Ok(()),
        Some(c) => Err((p, format!("bad character {c:?}"))),
    }
}

/// The length of a number as Go's lexer scans it (sign, base prefix,
/// digits with `_`, fraction, exponent, `i`).
fn number_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    let accept = |i: &mut usize, set: &[u8]| {
        if *i < b.len() && set.contains(&b[*i]) {
            *i += 1;
            true
        } else {
            false
        }
    };
    let run = |i: &mut usize, set: &[u8]| {
        while *i < b.len() && set.contains(&b[*i]) {
            *i += 1;
        }
    };
    accept(&mut i, b"+-");
    let mut digits: &[u8] = b"0123456789_";
    if accept(&mut i, b"0") {
        if accept(&mut i, b"xX") {
            digits = b"0123456789abcdefABCDEF_";
        } else if accept(&mut i, b"oO") {
            digits = b"01234567_";
        } else if accept(&mut i, b"bB") {
            digits = b"01_";
        }
    }
    run(&mut i, digits);
    if accept(&mut i, b".") {
        run(&mut i, digits);
    }
    if digits.len() == 11 && accept(&mut i, b"eE") {
        accept(&mut i, b"+-");
        run(&mut i, b"0123456789_");
    }
    if digits.len() == 23 && accept(&mut i, b"pP") {
        accept(&mut i, b"+-");
        run(&mut i, b"0123456789_");
    }
    accept(&mut i, b"i");
    i
}

/// A quoted string, raw string or character constant at the start of
/// `s`: its length and its token.
fn lex_quoted(s: &str, quote: char) -> Result<(usize, Kind), String> {
    let mut chars = s.char_indices().skip(1);
    let mut end = None;
    while let Some((i, c)) = chars.next() {
        if c == quote {
            end = Some(i);
            break;
        }
        if quote == '`' {
            continue;
        }
        if c == '\n' {
            break;
        }
        if c == '\\' {
            chars.next();
        }
    }
    let Some(end) = end else {
        return Err(match quote {
            '`' => "unterminated raw quoted string",
            '"' => "unterminated quoted string",
            _ => "unterminated character constant",
        }
        .into());
    };
    let body = &s[1..end];
    let kind = match quote {
        '`' => Kind::Str(body.replace('\r', "")),
        '"' => Kind::Str(unquote(body, '"')?),
        _ => {
            let v = unquote(body, '\'')?;
            let mut cs = v.chars();
            match (cs.next(), cs.next()) {
                (Some(c), None) => Kind::Char(i64::from(u32::from(c))),
                _ => return Err(format!("malformed character constant: '{body}'")),
            }
        }
    };
    Ok((end + 1, kind))
}

/// Go's escapes inside a quoted string or character constant.
fn unquote(body: &str, quote: char) -> Result<String, String> {
    let bad = || format!("invalid syntax in {quote}{body}{quote}");
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or_else(bad)?;
        let hex = |chars: &mut std::str::Chars<'_>, n: usize| -> Result<u32, String> {
            let digits: String = chars.by_ref().take(n).collect();
            if digits.len() != n {
                return Err(bad());
            }
            u32::from_str_radix(&digits, 16).map_err(|_| bad())
        };
        match e {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            q if q == quote => out.push(q),
            'x' => out.push(char::from_u32(hex(&mut chars, 2)?).ok_or_else(bad)?),
            'u' => out.push(char::from_u32(hex(&mut chars, 4)?).ok_or_else(bad)?),
            'U' => out.push(char::from_u32(hex(&mut chars, 8)?).ok_or_else(bad)?),
            '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                let v = u32::from_str_radix(&format!("{e}{rest}"), 8).map_err(|_| bad())?;
                if rest.len() != 2 || v > 255 {
                    return Err(bad());
                }
                out.push(char::from_u32(v).ok_or_else(bad)?);
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// A number token as Go types it: an integer unless it is written as a
/// float (with `.`, an exponent, or hex `p`); a character constant is an
/// integer.
fn number(text: &str) -> Result<Arg, String> {
    if text.ends_with('i') {
        return Err(format!(
            "complex number {text} is not supported in alert templates"
        ));
    }
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let hex = lower.starts_with("0x");
    let looks_float = if hex {
        lower.contains('p')
    } else {
        lower.contains(['.', 'e'])
    };
    let clean = underscores(&lower).ok_or_else(|| format!("illegal number syntax: {text:?}"))?;
    if !looks_float {
        let (digits, radix) = if let Some(d) = clean.strip_prefix("0x") {
            (d, 16)
        } else if let Some(d) = clean.strip_prefix("0o") {
            (d, 8)
        } else if let Some(d) = clean.strip_prefix("0b") {
            (d, 2)
        } else if clean.len() > 1 && clean.starts_with('0') {
            (&clean[1..], 8)
        } else {
            (clean.as_str(), 10)
        };
        if digits.is_empty() {
            return Err(format!("illegal number syntax: {text:?}"));
        }
        let mag = u64::from_str_radix(digits, radix).map_err(|e| {
            if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
                format!("{text} overflows int")
            } else {
                format!("illegal number syntax: {text:?}")
            }
        })?;
        let v = if neg {
            0i64.checked_sub_unsigned(mag)
        } else {
            i64::try_from(mag).ok()
        };
        return v
            .map(Arg::Int)
            .ok_or_else(|| format!("{text} overflows int"));
    }
    let v = if hex {
        hex_float(&clean[2..])
    } else {
        clean.parse::<f64>().ok()
    }
    .filter(|v| v.is_finite())
    .ok_or_else(|| format!("illegal number syntax: {text:?}"))?;
    Ok(Arg::Float(if neg { -v } else { v }))
}

/// Go allows `_` between digits (and after a base prefix).
fn underscores(s: &str) -> Option<String> {
    if !s.contains('_') {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let prev_ok = i > 0 && (b[i - 1].is_ascii_alphanumeric());
            let next_ok = b.get(i + 1).is_some_and(u8::is_ascii_hexdigit);
            if !prev_ok || !next_ok {
                return None;
            }
        }
    }
    Some(s.replace('_', ""))
}

/// A hex float's mantissa and `p` exponent, without `0x`.
fn hex_float(s: &str) -> Option<f64> {
    let (mant, exp) = s.split_once('p')?;
    let exp: i32 = exp.parse().ok()?;
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let mut v = 0f64;
    for c in int.chars().chain(frac.chars()) {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    Some(v * 2f64.powi(exp - 4 * frac.len() as i32))
}

// ---- parser ----

enum Step {
    Node(Node),
    /// `{{end}}` at this offset.
    End(usize),
    /// `{{else}}` at this offset; true for `{{else if ...}}`, whose `if`
    /// is left to read.
    Else(usize, bool),
}

struct Parser<'s> {
    src: &'s str,
    items: Vec<Item>,
    i: usize,
    /// Variables in scope, innermost last.
    vars: Vec<String>,
    range_depth: usize,
    /// Whether `.` is surely the template's data here (outside `with`,
    /// `range` and `define`), so `.Field` can be checked now.
    dot_is_root: bool,
    defines: Vec<(String, Vec<Node>)>,
    /// Blocks and parentheses open here.
    nesting: usize,
}

impl Parser<'_> {
    /// Runs `f` one level deeper, refusing to go past [`MAX_NESTING`].
    fn nested<T>(
        &mut self,
        at: usize,
        f: impl FnOnce(&mut Self) -> Result<T, TemplateError>,
    ) -> Result<T, TemplateError> {
        if self.nesting >= MAX_NESTING {
            return Err(self.err(
                at,
                format!("blocks and parentheses nest deeper than {MAX_NESTING} levels"),
            ));
        }
        self.nesting += 1;
        let r = f(self);
        self.nesting -= 1;
        r
    }

    fn err(&self, at: usize, m: impl Into<String>) -> TemplateError {
        error_at(self.src, at, m)
    }

    fn at(&self) -> usize {
        self.items.get(self.i).map_or(self.src.len(), |t| t.at)
    }

    fn at_prev(&self) -> usize {
        self.items
            .get(self.i.saturating_sub(1))
            .map_or(self.src.len(), |t| t.at)
    }

    fn peek(&self) -> &Kind {
        self.items.get(self.i).map_or(&Kind::Eof, |t| &t.kind)
    }

    fn next_kind(&mut self) -> Kind {
        let k = self.peek().clone();
        if self.i < self.items.len() {
            self.i += 1;
        }
        k
    }

    fn skip_space(&mut self) {
        while *self.peek() == Kind::Space {
            self.i += 1;
        }
    }

    fn peek_non_space(&mut self) -> Kind {
        self.skip_space();
        self.peek().clone()
    }

    fn next_non_space(&mut self) -> Kind {
        self.skip_space();
        self.next_kind()
    }

    fn expect_right_delim(&mut self, context: &str) -> Result<(), TemplateError> {
        match self.next_non_space() {
            Kind::RightDelim => Ok(()),
            other => Err(self.err(
                self.at_prev(),
                format!("unexpected {} in {context}", describe(&other)),
            )),
        }
    }

    /// Text and actions up to `{{end}}` or `{{else}}`.
    fn item_list(&mut self) -> Result<(Vec<Node>, Step), TemplateError> {
        let mut nodes = Vec::new();
        loop {
            match self.next_kind() {
                Kind::Eof => return Err(self.err(self.src.len(), "unexpected EOF")),
                Kind::Text(t) => nodes.push(Node::Text(t)),
                Kind::LeftDelim => match self.action()? {
                    Step::Node(n) => nodes.push(n),
                    end => return Ok((nodes, end)),
                },
                other => {
                    return Err(
                        self.err(self.at_prev(), format!("unexpected {}", describe(&other)))
                    );
                }
            }
        }
    }

    /// One action, after its `{{`.
    fn action(&mut self) -> Result<Step, TemplateError> {
        let at = self.at_prev();
        let Kind::Ident(word) = self.peek_non_space() else {
            return Ok(Step::Node(Node::Action(self.pipeline("command", true)?)));
        };
        if !KEYWORDS.contains(&word.as_str()) {
            return Ok(Step::Node(Node::Action(self.pipeline("command", true)?)));
        }
        self.next_non_space();
        Ok(match word.as_str() {
            "if" | "with" | "range" => Step::Node(self.nested(at, |p| p.control(&word))?),
            "end" => {
                self.expect_right_delim("end")?;
                Step::End(at)
            }
            "else" => {
                if matches!(self.peek_non_space(), Kind::Ident(w) if w == "if") {
                    Step::Else(at, true)
                } else {
                    self.expect_right_delim("else")?;
                    Step::Else(at, false)
                }
            }
            "break" | "continue" => {
                if self.range_depth == 0 {
                    return Err(self.err(at, format!("{{{{{word}}}}} outside {{{{range}}}}")));
                }
                self.expect_right_delim(&word)?;
                Step::Node(if word == "break" {
                    Node::Break
                } else {
                    Node::Continue
                })
            }
            "template" => Step::Node(self.template_call(at)?),
            "block" => Step::Node(self.block(at)?),
            _ => {
                return Err(self.err(
                    at,
                    "{{define}} is only allowed at the top level of a template",
                ));
            }
        })
    }

    /// `if`, `with` or `range`, after its keyword, through its `{{end}}`.
    fn control(&mut self, kind: &str) -> Result<Node, TemplateError> {
        let mark = self.vars.len();
        let pipe = self.pipeline(kind, true)?;
        let dot_was_root = self.dot_is_root;
        if kind != "if" {
            self.dot_is_root = false;
        }
        if kind == "range" {
            self.range_depth += 1;
        }
        let listed = self.item_list();
        if kind == "range" {
            self.range_depth -= 1;
        }
        self.dot_is_root = dot_was_root;
        let (body, end) = listed?;
        let otherwise = match end {
            Step::End(_) => Vec::new(),
            Step::Else(_, true) => {
                // `{{else if c}}...{{end}}` is `{{else}}{{if c}}...{{end}}{{end}}`
                // with one `{{end}}`: the inner `if` takes it.
                self.next_non_space();
                vec![self.nested(self.at(), |p| p.control("if"))?]
            }
            Step::Else(_, false) => {
                let (list, end) = self.item_list()?;
                match end {
                    Step::End(_) => list,
                    Step::Else(at, _) => return Err(self.err(at, "expected end; found {{else}}")),
                    Step::Node(_) => unreachable!("item_list ends only at end or else"),
                }
            }
            Step::Node(_) => unreachable!("item_list ends only at end or else"),
        };
        self.vars.truncate(mark);
        let c = Control {
            pipe,
            body,
            otherwise,
        };
        Ok(match kind {
            "if" => Node::If(c),
            "with" => Node::With(c),
            _ => Node::Range(c),
        })
    }

    fn template_name(&mut self, context: &str) -> Result<String, TemplateError> {
        match self.next_non_space() {
            Kind::Str(s) => Ok(s),
            other => Err(self.err(
                self.at_prev(),
                format!("unexpected {} in {context} clause", describe(&other)),
            )),
        }
    }

    /// `{{template "name" pipeline}}`, after `template`.
    fn template_call(&mut self, at: usize) -> Result<Node, TemplateError> {
        let name = self.template_name("template")?;
        let pipe = if self.peek_non_space() == Kind::RightDelim {
            self.next_non_space();
            None
        } else {
            Some(self.pipeline("template", true)?)
        };
        Ok(Node::Template { name, pipe, at })
    }

    /// A template's body, parsed as Go parses a new template: only `$`
    /// in scope, dot unknown, outside any `range`.
    fn body(&mut self, context: &str) -> Result<Vec<Node>, TemplateError> {
        self.nested(self.at(), |p| p.body_inner(context))
    }

    fn body_inner(&mut self, context: &str) -> Result<Vec<Node>, TemplateError> {
        let vars = std::mem::replace(&mut self.vars, vec!["$".to_owned()]);
        let depth = std::mem::replace(&mut self.range_depth, 0);
        let dot = std::mem::replace(&mut self.dot_is_root, false);
        let listed = self.item_list();
        self.vars = vars;
        self.range_depth = depth;
        self.dot_is_root = dot;
        match listed? {
            (nodes, Step::End(_)) => Ok(nodes),
            (_, Step::Else(at, _)) => {
                Err(self.err(at, format!("unexpected {{{{else}}}} in {context}")))
            }
            (_, Step::Node(_)) => unreachable!("item_list ends only at end or else"),
        }
    }

    /// `{{define "name"}}...{{end}}`, after `define`.
    fn definition(&mut self) -> Result<(), TemplateError> {
        let name = self.template_name("define")?;
        self.expect_right_delim("define")?;
        let body = self.body("define")?;
        self.defines.push((name, body));
        Ok(())
    }

    /// `{{block "name" pipeline}}...{{end}}`: defines the template and
    /// runs it here.
    fn block(&mut self, at: usize) -> Result<Node, TemplateError> {
        let name = self.template_name("block")?;
        let pipe = self.pipeline("block", true)?;
        let body = self.body("block")?;
        self.defines.push((name.clone(), body));
        Ok(Node::Template {
            name,
            pipe: Some(pipe),
            at,
        })
    }

    /// A pipeline up to `}}` (`to_delim`) or `)`, with its declarations.
    fn pipeline(&mut self, context: &str, to_delim: bool) -> Result<Pipe, TemplateError> {
        self.skip_space();
        let at = self.at();
        let mut decl = Vec::new();
        let mut assign = false;
        while let Kind::Var(v) = self.peek_non_space() {
            let save = self.i;
            self.next_kind();
            match self.peek_non_space() {
                Kind::Declare | Kind::Assign => {
                    assign = self.next_non_space() == Kind::Assign;
                    self.declare(&v, assign, at)?;
                    decl.push(v);
                    break;
                }
                Kind::Comma => {
                    self.next_non_space();
                    self.declare(&v, false, at)?;
                    decl.push(v);
                    if context == "range" && decl.len() < 2 {
                        match self.peek_non_space() {
                            Kind::Var(_) | Kind::RightDelim | Kind::RParen => continue,
                            _ => return Err(self.err(at, "range can only initialize variables")),
                        }
                    }
                    return Err(self.err(at, format!("too many declarations in {context}")));
                }
                _ => {
                    self.i = save;
                    break;
                }
            }
        }
        let mut cmds = Vec::new();
        loop {
            let k = self.next_non_space();
            match k {
                Kind::RightDelim if to_delim => break,
                Kind::RParen if !to_delim => break,
                Kind::Bool(_)
                | Kind::Char(_)
                | Kind::Dot
                | Kind::Field(_)
                | Kind::Ident(_)
                | Kind::Number(_)
                | Kind::Nil
                | Kind::Str(_)
                | Kind::Var(_)
                | Kind::LParen => {
                    self.i -= 1;
                    let stage = cmds.len() + 1;
                    cmds.push(self.command(stage)?);
                }
                other => {
                    return Err(self.err(
                        self.at_prev(),
                        format!("unexpected {} in {context}", describe(&other)),
                    ));
                }
            }
        }
        if cmds.is_empty() {
            return Err(self.err(at, format!("missing value for {context}")));
        }
        Ok(Pipe {
            at,
            decl,
            assign,
            cmds,
        })
    }

    /// Declares `$v`; with `=` it must already be in scope.
    fn declare(&mut self, v: &str, assign: bool, at: usize) -> Result<(), TemplateError> {
        if assign && !self.vars.iter().any(|x| x == v) {
            return Err(self.err(at, format!("undefined variable {v:?}; declare it with :=")));
        }
        if v == "$" {
            return Err(self.err(at, "cannot declare or assign $"));
        }
        self.vars.push(v.to_owned());
        Ok(())
    }

    /// One command of a pipeline; `stage` counts from 1.
    fn command(&mut self, stage: usize) -> Result<Cmd, TemplateError> {
        self.skip_space();
        let at = self.at();
        let mut args = Vec::new();
        loop {
            self.skip_space();
            let arg_at = self.at();
            if let Some(a) = self.operand()? {
                args.push((a, arg_at));
            }
            match self.next_kind() {
                Kind::Space => continue,
                Kind::RightDelim | Kind::RParen => {
                    self.i -= 1;
                    break;
                }
                Kind::Pipe => break,
                other => {
                    return Err(self.err(
                        self.at_prev(),
                        format!("unexpected {} in operand", describe(&other)),
                    ));
                }
            }
        }
        let Some((first, first_at)) = args.first() else {
            return Err(self.err(at, "empty command"));
        };
        match first {
            Arg::Func(_) => {}
            Arg::Nil => return Err(self.err(*first_at, "nil is not a command")),
            Arg::Bool(_) | Arg::Dot | Arg::Int(_) | Arg::Float(_) | Arg::Str(_) if stage > 1 => {
                return Err(self.err(
                    *first_at,
                    format!("non executable command in pipeline stage {stage}"),
                ));
            }
            // Nothing in an alert template's data has methods, so a field
            // or value can take no arguments.
            _ if stage > 1 || args.len() > 1 => {
                let what = &self.src[*first_at..self.at().max(*first_at)];
                let what = what.split_whitespace().next().unwrap_or(what);
                return Err(self.err(
                    *first_at,
                    format!(
                        "{what} is not a function, so it takes no arguments (nor a value piped in)"
                    ),
                ));
            }
            _ => {}
        }
        Ok(Cmd {
            at,
            args: args.into_iter().map(|(a, _)| a).collect(),
        })
    }

    fn operand(&mut self) -> Result<Option<Arg>, TemplateError> {
        let at = self.at();
        let Some(term) = self.term()? else {
            return Ok(None);
        };
        let mut fields = Vec::new();
        while let Kind::Field(f) = self.peek() {
            fields.push(f.clone());
            self.i += 1;
        }
        if fields.is_empty() {
            return Ok(Some(term));
        }
        Ok(Some(match term {
            Arg::Field(mut f) => {
                f.extend(fields);
                Arg::Field(f)
            }
            Arg::Var(v, mut f) => {
                f.extend(fields);
                Arg::Var(v, f)
            }
            Arg::Bool(_) | Arg::Str(_) | Arg::Int(_) | Arg::Float(_) | Arg::Nil | Arg::Dot => {
                return Err(self.err(at, "unexpected . after term"));
            }
            Arg::Sub(p) if calls_last(&p, "toTime") => {
                return Err(self.err(at, format!("{TIME_METHODS}; .{} is one", fields[0])));
            }
            Arg::Func(ref f) if f == "toTime" => {
                return Err(self.err(at, format!("{TIME_METHODS}; .{} is one", fields[0])));
            }
            other => Arg::Chain(Box::new(other), fields),
        }))
    }

    fn term(&mut self) -> Result<Option<Arg>, TemplateError> {
        self.skip_space();
        let at = self.at();
        let k = self.next_kind();
        Ok(Some(match k {
            Kind::Ident(name) if KEYWORDS.contains(&name.as_str()) => {
                self.i -= 1;
                return Ok(None);
            }
            Kind::Ident(name) => {
                if !FUNCTIONS.contains(&name.as_str()) {
                    let hint = crate::diag::did_you_mean(&name, FUNCTIONS)
                        .map(|s| format!("did you mean {s}? "))
                        .unwrap_or_default();
                    return Err(self.err(
                        at,
                        format!(
                            "function {name:?} not defined; {hint}expected one of {}",
                            crate::diag::one_of(FUNCTIONS)
                        ),
                    ));
                }
                Arg::Func(name)
            }
            Kind::Dot => Arg::Dot,
            Kind::Nil => Arg::Nil,
            Kind::Var(v) => {
                if !self.vars.contains(&v) {
                    let mut known: Vec<&str> = self.vars.iter().map(String::as_str).collect();
                    known.dedup();
                    return Err(self.err(
                        at,
                        format!(
                            "undefined variable {v:?}; expected one of {}",
                            known.join(", ")
                        ),
                    ));
                }
                Arg::Var(v, Vec::new())
            }
            Kind::Field(f) => {
                if self.dot_is_root && !ROOT_FIELDS.contains(&f.as_str()) {
                    return Err(self.err(
                        at,
                        format!(
                            "unknown field .{f}; expected one of .{}",
                            ROOT_FIELDS.join(", .")
                        ),
                    ));
                }
                Arg::Field(vec![f])
            }
            Kind::Bool(b) => Arg::Bool(b),
            Kind::Char(c) => Arg::Int(c),
            Kind::Number(n) => number(&n).map_err(|m| self.err(at, m))?,
            Kind::Str(s) => Arg::Str(s),
            Kind::LParen => Arg::Sub(Box::new(
                self.nested(at, |p| p.pipeline("parenthesized pipeline", false))?,
            )),
            _ => {
                self.i -= 1;
                return Ok(None);
            }
        }))
    }
}

/// Whether the pipeline's value comes from the function `f`.
fn calls_last(p: &Pipe, f: &str) -> bool {
    p.cmds
        .last()
        .and_then(|c| c.args.first())
        .is_some_and(|a| matches!(a, Arg::Func(name) if name == f))
}

/// Where the template calls function `f` first, for load-time checks.
pub(super) fn first_call(
    nodes: &[Node],
    defines: &[(String, Vec<Node>)],
    f: &str,
) -> Option<usize> {
    fn in_pipe(p: &Pipe, f: &str) -> Option<usize> {
        p.cmds.iter().find_map(|c| {
            c.args
                .iter()
                .find_map(|a| in_arg(a, f).map(|at| at.unwrap_or(c.at)))
        })
    }
    /// `Some(None)`: found, at the command's position.
    fn in_arg(a: &Arg, f: &str) -> Option<Option<usize>> {
        match a {
            Arg::Func(name) if name == f => Some(None),
            Arg::Sub(p) => in_pipe(p, f).map(Some),
            Arg::Chain(inner, _) => in_arg(inner, f),
            _ => None,
        }
    }
    fn in_nodes(nodes: &[Node], f: &str) -> Option<usize> {
        nodes.iter().find_map(|n| match n {
            Node::Action(p) => in_pipe(p, f),
            Node::If(c) | Node::With(c) | Node::Range(c) => in_pipe(&c.pipe, f)
                .or_else(|| in_nodes(&c.body, f))
                .or_else(|| in_nodes(&c.otherwise, f)),
            Node::Template { pipe, .. } => pipe.as_ref().and_then(|p| in_pipe(p, f)),
            Node::Text(_) | Node::Break | Node::Continue => None,
        })
    }
    in_nodes(nodes, f).or_else(|| defines.iter().find_map(|(_, body)| in_nodes(body, f)))
}
