//! The functions an alert template can call: Go's builtins (`printf`,
//! `index`, `eq`, ...) and the ones Prometheus 2.42 adds (`query`,
//! `humanize`, `reReplaceAll`, ...), each with Go's argument types, so a
//! call Prometheus refuses fails here too.

use std::cmp::Ordering;
use std::rc::Rc;

use regex::Regex;

use super::QueryFn;
use super::gofmt::{self, g4, go_v};
use super::value::{QSample, Val};

/// Every function a template may call.
pub const FUNCTIONS: &[&str] = &[
    "and",
    "args",
    "call",
    "eq",
    "externalURL",
    "first",
    "ge",
    "graphLink",
    "gt",
    "html",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "index",
    "js",
    "label",
    "le",
    "len",
    "lt",
    "match",
    "ne",
    "not",
    "or",
    "parseDuration",
    "pathPrefix",
    "print",
    "printf",
    "println",
    "query",
    "reReplaceAll",
    "safeHtml",
    "slice",
    "sortByLabel",
    "stripPort",
    "strvalue",
    "tableLink",
    "title",
    "toLower",
    "toTime",
    "toUpper",
    "urlquery",
    "value",
];

/// What functions can reach beyond their arguments.
pub(super) struct Env<'a> {
    pub query: Option<&'a QueryFn<'a>>,
    pub external_url: &'a str,
}

fn arity(name: &str, args: &[Val], n: usize) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ))
    }
}

fn at_least(name: &str, args: &[Val], n: usize) -> Result<(), String> {
    if args.len() >= n {
        Ok(())
    } else {
        Err(format!(
            "wrong number of args for {name}: want at least {n} got {}",
            args.len()
        ))
    }
}

fn wrong_type(v: &Val, want: &str) -> String {
    match v {
        Val::Nil => format!("invalid value; expected {want}"),
        v => format!(
            "wrong type for value; expected {want}; got {}",
            v.type_name()
        ),
    }
}

fn string(v: &Val) -> Result<&str, String> {
    match v {
        Val::Str(s) => Ok(s),
        v => Err(wrong_type(v, "string")),
    }
}

fn sample(v: &Val) -> Result<&QSample, String> {
    match v {
        Val::Sample(s) => Ok(s),
        v => Err(wrong_type(v, "*template.sample")),
    }
}

fn vector(v: &Val) -> Result<&Rc<Vec<Rc<QSample>>>, String> {
    match v {
        Val::Vector(s) => Ok(s),
        v => Err(wrong_type(v, "template.queryResult")),
    }
}

/// Prometheus's convertToFloat: numbers, and strings as Go's
/// strconv.ParseFloat reads them.
fn float(v: &Val) -> Result<f64, String> {
    match v {
        Val::Float(f) => Ok(*f),
        Val::Int(i) => Ok(*i as f64),
        Val::Str(s) => s
            .parse::<f64>()
            .map_err(|_| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")),
        v => Err(format!("can't convert {} to float", v.type_name())),
    }
}

pub(super) fn call(name: &str, args: Vec<Val>, env: &Env<'_>) -> Result<Val, String> {
    let one = |args: &[Val]| -> Result<(), String> { arity(name, args, 1) };
    Ok(match name {
        "query" => {
            one(&args)?;
            let q = string(&args[0])?;
            let run = env
                .query
                .ok_or("no queries can be made where this template is rendered")?;
            let samples = run(q)?;
            Val::Vector(Rc::new(samples.iter().map(QSample::from_sample).collect()))
        }
        "first" => {
            one(&args)?;
            match vector(&args[0])?.first() {
                Some(s) => Val::Sample(s.clone()),
                None => return Err("first() called on vector with no elements".into()),
            }
        }
        "label" => {
            arity(name, &args, 2)?;
            let l = string(&args[0])?;
            Val::Str(sample(&args[1])?.labels.get(l).cloned().unwrap_or_default())
        }
        "value" => {
            one(&args)?;
            Val::Float(sample(&args[0])?.value)
        }
        "strvalue" => {
            one(&args)?;
            Val::Str(
                sample(&args[0])?
                    .labels
                    .get("__value__")
                    .cloned()
                    .unwrap_or_default(),
            )
        }
        "args" => Val::Args(Rc::new(
            args.into_iter()
                .enumerate()
                .map(|(i, v)| (format!("arg{i}"), v))
                .collect(),
        )),
        "reReplaceAll" => {
            arity(name, &args, 3)?;
            let re = regex(string(&args[0])?)?;
            let repl = string(&args[1])?;
            Val::Str(re.replace_all(string(&args[2])?, repl).into_owned())
        }
        "match" => {
            arity(name, &args, 2)?;
            let re = regex(string(&args[0])?)?;
            Val::Bool(re.is_match(string(&args[1])?))
        }
        "safeHtml" => {
            one(&args)?;
            Val::Str(string(&args[0])?.to_owned())
        }
        "title" => {
            one(&args)?;
            Val::Str(title(string(&args[0])?))
        }
        "toUpper" => {
            one(&args)?;
            Val::Str(string(&args[0])?.chars().map(simple_upper).collect())
        }
        "toLower" => {
            one(&args)?;
            Val::Str(string(&args[0])?.chars().map(simple_lower).collect())
        }
        "graphLink" | "tableLink" => {
            one(&args)?;
            let tab = if name == "graphLink" { 0 } else { 1 };
            Val::Str(format!(
                "/graph?g0.expr={}&g0.tab={tab}",
                gofmt::query_escape(string(&args[0])?)
            ))
        }
        "sortByLabel" => {
            arity(name, &args, 2)?;
            let l = string(&args[0])?;
            let mut v: Vec<Rc<QSample>> = vector(&args[1])?.as_ref().clone();
            let key = |s: &Rc<QSample>| s.labels.get(l).cloned().unwrap_or_default();
            v.sort_by_key(key);
            Val::Vector(Rc::new(v))
        }
        "stripPort" => {
            one(&args)?;
            let s = string(&args[0])?;
            Val::Str(split_host_port(s).map_or(s, |(h, _)| h).to_owned())
        }
        "humanize" | "humanize1024" | "humanizeDuration" | "humanizePercentage" => {
            one(&args)?;
            let f: fn(f64) -> String = match name {
                "humanize" => humanize,
                "humanize1024" => humanize1024,
                "humanizeDuration" => humanize_duration,
                _ => humanize_percentage,
            };
            Val::Str(f(float(&args[0])?))
        }
        "humanizeTimestamp" => {
            one(&args)?;
            let v = float(&args[0])?;
            if !v.is_finite() {
                Val::Str(g4(v))
            } else {
                let ms = millis(v)?;
                Val::Str(gofmt::time_string(ms).ok_or_else(|| overflow(v))?)
            }
        }
        "toTime" => {
            one(&args)?;
            let v = float(&args[0])?;
            if !v.is_finite() {
                return Err("value is NaN or Inf".into());
            }
            Val::Time(millis(v)?)
        }
        "pathPrefix" => {
            arity(name, &args, 0)?;
            Val::Str(url_path(env.external_url).to_owned())
        }
        "externalURL" => {
            arity(name, &args, 0)?;
            Val::Str(env.external_url.to_owned())
        }
        "parseDuration" => {
            one(&args)?;
            let s = string(&args[0])?;
            let d = crate::duration::PromDuration::parse(s)
                .map_err(|_| format!("not a valid duration string: {s:?}"))?;
            Val::Float(d.as_secs_f64())
        }
        "not" => {
            one(&args)?;
            Val::Bool(!args[0].truthy())
        }
        "len" => {
            one(&args)?;
            Val::Int(match &args[0] {
                Val::Str(s) => s.len(),
                Val::Labels(m) => m.len(),
                Val::Args(m) => m.len(),
                Val::Vector(v) => v.len(),
                Val::Nil => return Err("len of nil pointer".into()),
                v => return Err(format!("len of type {}", v.type_name())),
            } as i64)
        }
        "index" => {
            at_least(name, &args, 1)?;
            let mut it = args.into_iter();
            let item = it.next().unwrap_or(Val::Nil);
            it.try_fold(item, |item, i| index(&item, &i))?
        }
        "slice" => {
            at_least(name, &args, 1)?;
            slice(&args[0], &args[1..])?
        }
        "print" => Val::Str(gofmt::sprint(&args)),
        "println" => Val::Str(gofmt::sprintln(&args)),
        "printf" => {
            at_least(name, &args, 1)?;
            Val::Str(gofmt::sprintf(string(&args[0])?, &args[1..]))
        }
        "html" => Val::Str(gofmt::html_escape(&joined(&args))),
        "js" => Val::Str(gofmt::js_escape(&joined(&args))),
        "urlquery" => Val::Str(gofmt::query_escape(&joined(&args))),
        "call" => {
            at_least(name, &args, 1)?;
            // Nothing in an alert template's data is a function.
            return Err(match &args[0] {
                Val::Nil => "call of nil".into(),
                v => format!("non-function of type {}", v.type_name()),
            });
        }
        "eq" => {
            at_least(name, &args, 1)?;
            if args.len() == 1 {
                return Err("missing argument for comparison".into());
            }
            let mut any = false;
            for b in &args[1..] {
                any |= eq(&args[0], b)?;
            }
            Val::Bool(any)
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            arity(name, &args, 2)?;
            let (a, b) = (&args[0], &args[1]);
            Val::Bool(match name {
                "ne" => !eq(a, b)?,
                "lt" => lt(a, b)?,
                "le" => le(a, b)?,
                "gt" => !le(a, b)?,
                _ => !lt(a, b)?,
            })
        }
        other => return Err(format!("function {other:?} not defined")),
    })
}

fn regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("regexp: Compile({pattern:?}): {e}"))
}

/// html, js and urlquery take one string as it is, anything else as
/// an action would print it.
fn joined(args: &[Val]) -> String {
    match args {
        [Val::Str(s)] => s.clone(),
        _ => gofmt::printable(args),
    }
}

/// Seconds as Unix milliseconds the way Prometheus converts them:
/// through nanoseconds, truncated.
fn millis(v: f64) -> Result<i64, String> {
    let ns = v * 1e9;
    if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
        return Err(overflow(v));
    }
    Ok(ns as i64 / 1_000_000)
}

fn overflow(v: f64) -> String {
    format!(
        "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
        go_v(v)
    )
}

/// The path of a URL, as Go's url.URL.Path: after the host, before the
/// query.
fn url_path(u: &str) -> &str {
    let rest = u.split_once("://").map_or(u, |(_, r)| r);
    let rest = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    rest.find('/').map_or("", |i| &rest[i..])
}

/// Go's net.SplitHostPort.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    let i = s.rfind(':')?;
    let (host, j, k) = if s.starts_with('[') {
        let end = s.find(']')?;
        if end + 1 != i {
            return None;
        }
        (&s[1..end], 1, end + 1)
    } else {
        let host = &s[..i];
        if host.contains(':') {
            return None;
        }
        (host, 0, 0)
    };
    if s[j..].contains('[') || s[k..].contains(']') {
        return None;
    }
    Some((host, &s[i + 1..]))
}

/// Go's unicode.ToUpper: one rune for one rune, so `ß` stays.
fn simple_upper(c: char) -> char {
    let mut u = c.to_uppercase();
    match (u.next(), u.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

fn simple_lower(c: char) -> char {
    if c == '\u{130}' {
        return 'i';
    }
    let mut l = c.to_lowercase();
    match (l.next(), l.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

/// Go's strings.Title (Prometheus 2.42 uses it): the first letter of
/// each word in title case; words are split by anything but ASCII
/// letters, digits and `_` and non-ASCII letters and digits, except
/// that non-ASCII punctuation does not split.
fn title(s: &str) -> String {
    let separator = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else if c.is_alphabetic() || c.is_numeric() {
            false
        } else {
            c.is_whitespace()
        }
    };
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let out = if separator(prev) {
                match c {
                    'Ǆ' | 'ǅ' | 'ǆ' => 'ǅ',
                    'Ǉ' | 'ǈ' | 'ǉ' => 'ǈ',
                    'Ǌ' | 'ǋ' | 'ǌ' => 'ǋ',
                    'Ǳ' | 'ǲ' | 'ǳ' => 'ǲ',
                    c => simple_upper(c),
                }
            } else {
                c
            };
            prev = c;
            out
        })
        .collect()
}

/// An index up to `max`, as Go checks one.
fn int_index(v: &Val, max: usize) -> Result<usize, String> {
    match v {
        Val::Int(i) if *i >= 0 && (*i as usize) <= max => Ok(*i as usize),
        Val::Int(i) => Err(format!("index out of range: {i}")),
        v => Err(format!(
            "cannot index slice/array with type {}",
            v.type_name()
        )),
    }
}

/// Go's index builtin, one level.
fn index(item: &Val, i: &Val) -> Result<Val, String> {
    Ok(match item {
        Val::Labels(m) => match i {
            Val::Str(k) => Val::Str(m.get(k).cloned().unwrap_or_default()),
            v => {
                return Err(format!(
                    "value has type {}; should be string",
                    v.type_name()
                ));
            }
        },
        Val::Args(m) => match i {
            Val::Str(k) => m.get(k).cloned().unwrap_or(Val::Nil),
            v => {
                return Err(format!(
                    "value has type {}; should be string",
                    v.type_name()
                ));
            }
        },
        Val::Vector(v) => {
            let n = int_index(i, v.len())?;
            match v.get(n) {
                Some(s) => Val::Sample(s.clone()),
                None => return Err(format!("index out of range: {n}")),
            }
        }
        Val::Str(s) => {
            let n = int_index(i, s.len())?;
            match s.as_bytes().get(n) {
                Some(b) => Val::Int(i64::from(*b)),
                None => return Err(format!("index out of range: {n}")),
            }
        }
        Val::Nil => return Err("index of untyped nil".into()),
        v => return Err(format!("can't index item of type {}", v.type_name())),
    })
}

/// Go's slice builtin for strings and query results.
fn slice(item: &Val, idx: &[Val]) -> Result<Val, String> {
    let len = match item {
        Val::Str(s) => s.len(),
        Val::Vector(v) => v.len(),
        Val::Nil => return Err("slice of untyped nil".into()),
        v => return Err(format!("can't slice item of type {}", v.type_name())),
    };
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()));
    }
    if idx.len() == 3 && matches!(item, Val::Str(_)) {
        return Err("cannot 3-index slice a string".into());
    }
    let mut bounds = [0, len, len];
    for (k, v) in idx.iter().enumerate() {
        bounds[k] = int_index(v, len)?;
    }
    for k in 1..idx.len().max(1) {
        if bounds[k - 1] > bounds[k] {
            return Err(format!(
                "invalid slice index: {} > {}",
                bounds[k - 1],
                bounds[k]
            ));
        }
    }
    let (from, to) = (bounds[0], bounds[1]);
    Ok(match item {
        Val::Str(s) => Val::Str(String::from_utf8_lossy(&s.as_bytes()[from..to]).into_owned()),
        Val::Vector(v) => Val::Vector(Rc::new(v[from..to].to_vec())),
        _ => unreachable!("checked above"),
    })
}

#[derive(PartialEq)]
enum Basic {
    Bool,
    Int,
    Float,
    Str,
}

fn basic(v: &Val) -> Option<Basic> {
    match v {
        Val::Bool(_) => Some(Basic::Bool),
        Val::Int(_) => Some(Basic::Int),
        Val::Float(_) => Some(Basic::Float),
        Val::Str(_) => Some(Basic::Str),
        _ => None,
    }
}

/// Go's eq for two values.
fn eq(a: &Val, b: &Val) -> Result<bool, String> {
    for v in [a, b] {
        if matches!(
            v,
            Val::Labels(_) | Val::Args(_) | Val::Vector(_) | Val::Root(_)
        ) {
            return Err(format!(
                "non-comparable type {}: {}",
                gofmt::action_text(v),
                v.type_name()
            ));
        }
    }
    Ok(match (a, b) {
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Int(x), Val::Int(y)) => x == y,
        (Val::Float(x), Val::Float(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Nil, Val::Nil) => true,
        (Val::Nil, _) | (_, Val::Nil) => false,
        (Val::Sample(x), Val::Sample(y)) => Rc::ptr_eq(x, y),
        (Val::Time(x), Val::Time(y)) => x == y,
        _ => return Err("incompatible types for comparison".into()),
    })
}

/// Go's lt: numbers and strings of one kind only.
fn lt(a: &Val, b: &Val) -> Result<bool, String> {
    let (ka, kb) = (basic(a), basic(b));
    if ka.is_none() || kb.is_none() || ka == Some(Basic::Bool) || kb == Some(Basic::Bool) {
        return Err("invalid type for comparison".into());
    }
    if ka != kb {
        return Err("incompatible types for comparison".into());
    }
    Ok(match (a, b) {
        (Val::Int(x), Val::Int(y)) => x < y,
        (Val::Float(x), Val::Float(y)) => x.partial_cmp(y) == Some(Ordering::Less),
        (Val::Str(x), Val::Str(y)) => x < y,
        _ => false,
    })
}

fn le(a: &Val, b: &Val) -> Result<bool, String> {
    Ok(lt(a, b)? || eq(a, b)?)
}

/// Scales `v` by `step` until it is below `step` (or, with `up` false,
/// at least 1), taking the next prefix each time.
fn scaled(mut v: f64, step: f64, up: bool, prefixes: [&'static str; 8]) -> (f64, &'static str) {
    let mut prefix = "";
    for p in prefixes {
        if (up && v.abs() < step) || (!up && v.abs() >= 1.0) {
            break;
        }
        prefix = p;
        v = if up { v / step } else { v * step };
    }
    (v, prefix)
}

const SI_UP: [&str; 8] = ["k", "M", "G", "T", "P", "E", "Z", "Y"];
const SI_DOWN: [&str; 8] = ["m", "u", "n", "p", "f", "a", "z", "y"];

/// Prometheus's `humanize`: SI prefixes, 4 significant digits.
pub fn humanize(v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    let (v, prefix) = if v.abs() >= 1.0 {
        scaled(v, 1000.0, true, SI_UP)
    } else {
        scaled(v, 1000.0, false, SI_DOWN)
    };
    format!("{}{prefix}", g4(v))
}

/// Prometheus's `humanize1024`: binary prefixes.
pub fn humanize1024(v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return g4(v);
    }
    let binary = ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"];
    let (v, prefix) = scaled(v, 1024.0, true, binary);
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
    let (v, prefix) = scaled(v, 1000.0, false, SI_DOWN);
    format!("{}{prefix}s", g4(v))
}

/// Label maps as `args` and tests build them.
#[cfg(test)]
pub(super) fn labels(pairs: &[(&str, &str)]) -> Val {
    Val::Labels(Rc::new(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<std::collections::BTreeMap<_, _>>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env<'static> {
        Env {
            query: None,
            external_url: "http://ext.example/prefix/",
        }
    }

    fn s(x: &str) -> Val {
        Val::Str(x.to_owned())
    }

    fn text(v: Result<Val, String>) -> String {
        match v {
            Ok(v) => gofmt::action_text(&v),
            Err(e) => format!("error: {e}"),
        }
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
        let e = env();
        assert_eq!(
            text(call(
                "humanizeTimestamp",
                vec![Val::Float(1_435_065_584.128)],
                &e
            )),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        // Prometheus converts strings and integers too, not booleans.
        assert_eq!(text(call("humanize", vec![s("1234")], &e)), "1.234k");
        assert_eq!(text(call("humanize1024", vec![s("2048")], &e)), "2ki");
        assert_eq!(
            text(call("humanizeDuration", vec![Val::Int(90)], &e)),
            "1m 30s"
        );
        assert_eq!(
            text(call("humanizeTimestamp", vec![s("1")], &e)),
            "1970-01-01 00:00:01 +0000 UTC"
        );
        assert_eq!(
            text(call("humanize", vec![Val::Bool(true)], &e)),
            "error: can't convert bool to float"
        );
    }

    /// What Prometheus 2.42 rendered for the same calls.
    #[test]
    fn prometheus_functions() {
        let e = env();
        let c = |name: &str, args: Vec<Val>| text(call(name, args, &e));
        assert_eq!(c("parseDuration", vec![s("1h30m")]), "5400");
        assert_eq!(
            c("toTime", vec![Val::Float(1435065584.128)]),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(
            c("graphLink", vec![s("up{a=\"b\"}")]),
            "/graph?g0.expr=up%7Ba%3D%22b%22%7D&g0.tab=0"
        );
        assert_eq!(
            c("tableLink", vec![s("x y")]),
            "/graph?g0.expr=x+y&g0.tab=1"
        );
        assert_eq!(c("pathPrefix", vec![]), "/prefix/");
        assert_eq!(c("externalURL", vec![]), "http://ext.example/prefix/");
        assert_eq!(c("args", vec![Val::Int(1), s("x")]), "map[arg0:1 arg1:x]");
        assert_eq!(c("safeHtml", vec![s("<b>")]), "<b>");
        assert_eq!(
            c("title", vec![s("it's a-b_c é.x 1st ǆa")]),
            "It'S A-B_c É.X 1st ǅa"
        );
        assert_eq!(c("toUpper", vec![s("ßa")]), "ßA");
        for (input, want) in [
            ("host", "host"),
            ("[::1]", "[::1]"),
            ("[::1]:80", "::1"),
            ("host:", "host"),
            (":80", ""),
            ("[a]b:1", "[a]b:1"),
            ("a:b:c", "a:b:c"),
        ] {
            assert_eq!(c("stripPort", vec![s(input)]), want, "{input}");
        }
        assert_eq!(
            c("reReplaceAll", vec![s("(a)"), s("[$1]"), s("banana")]),
            "b[a]n[a]n[a]"
        );
        assert_eq!(c("match", vec![s("a.c"), s("abc")]), "true");
        assert_eq!(
            c("toUpper", vec![Val::Int(1)]),
            "error: wrong type for value; expected string; got int"
        );
        assert_eq!(
            c("first", vec![Val::Vector(Rc::new(Vec::new()))]),
            "error: first() called on vector with no elements"
        );
        assert_eq!(
            c("query", vec![s("up")]),
            "error: no queries can be made where this template is rendered"
        );
    }

    /// Go 1.19's builtins, as Prometheus 2.42 ran them.
    #[test]
    fn go_builtins() {
        let e = env();
        let c = |name: &str, args: Vec<Val>| text(call(name, args, &e));
        let l = labels(&[("__name__", "x"), ("i", "a")]);
        assert_eq!(
            c("html", vec![s("<a href=\"x\">&' \0")]),
            "&lt;a href=&#34;x&#34;&gt;&amp;&#39; \u{FFFD}"
        );
        assert_eq!(
            c("urlquery", vec![s("a b&c/é"), Val::Int(1)]),
            "a+b%26c%2F%C3%A91"
        );
        assert_eq!(
            c("println", vec![Val::Int(1), s("a"), Val::Int(2)]),
            "1 a 2\n"
        );
        assert_eq!(
            c("slice", vec![s("abcdef"), Val::Int(1), Val::Int(3)]),
            "bc"
        );
        assert_eq!(c("index", vec![s("abc"), Val::Int(1)]), "98");
        assert_eq!(c("index", vec![l.clone(), s("i")]), "a");
        assert_eq!(c("index", vec![l.clone(), s("nope")]), "");
        assert_eq!(
            c("index", vec![l.clone(), Val::Int(1)]),
            "error: value has type int; should be string"
        );
        assert_eq!(c("len", vec![l.clone()]), "2");
        assert_eq!(c("len", vec![s("é")]), "2");
        assert_eq!(c("len", vec![Val::Int(5)]), "error: len of type int");
        assert_eq!(
            c(
                "eq",
                vec![Val::Int(1), Val::Int(2), Val::Int(3), Val::Int(1)]
            ),
            "true"
        );
        assert_eq!(c("eq", vec![s("a"), s("b")]), "false");
        assert_eq!(c("not", vec![Val::Int(0)]), "true");
        assert_eq!(
            c("eq", vec![Val::Int(1), Val::Float(1.0)]),
            "error: incompatible types for comparison"
        );
        assert_eq!(
            c("gt", vec![Val::Float(3.0), Val::Int(0)]),
            "error: incompatible types for comparison"
        );
        assert_eq!(
            c("lt", vec![Val::Bool(true), Val::Bool(false)]),
            "error: invalid type for comparison"
        );
        assert_eq!(
            c("eq", vec![l.clone(), l]),
            "error: non-comparable type map[__name__:x i:a]: map[string]string"
        );
        assert_eq!(c("lt", vec![s("a"), s("b")]), "true");
        assert_eq!(c("le", vec![Val::Int(2), Val::Int(2)]), "true");
        assert_eq!(c("ge", vec![Val::Float(1.5), Val::Float(2.5)]), "false");
        // Go's gt is "not less or equal", so NaN is greater than anything.
        assert_eq!(c("gt", vec![Val::Float(f64::NAN), Val::Float(1.0)]), "true");
        assert_eq!(c("call", vec![Val::Nil]), "error: call of nil");
    }
}
