//! Rule unit tests in `promtool test rules` format (Prometheus 2.42):
//! the test file, its validation, the expanding series notation, and
//! running one test group against the [`RuleEngine`] and the evaluator.
//!
//! Semantics are promtool's: time starts at the Unix epoch; input series
//! get one sample every `interval`; every group is evaluated at every
//! `evaluation_interval` from 0 through the largest `eval_time` (a group's
//! own `interval` is ignored); alerts are compared after the last
//! evaluation at or before their `eval_time` (firing alerts only); PromQL
//! expressions are evaluated after all rule evaluations, against the
//! samples loaded so far. Values compare exactly, as promtool 2.42 does
//! (so a `NaN` never matches).
//!
//! Model code: [`crate::load::rule_test_file`] reads the named test file
//! and the rule files it points to; everything here takes its inputs.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use super::file::RuleGroup;
use super::{AlertState, RuleEngine};
use crate::diag::{Diagnostic, Diagnostics, Pos, Sp, from_yaml};
use crate::duration::Millis;
use crate::duration::PromDuration;
use crate::labels::{Labels, METRIC_NAME};
use crate::matchers::is_valid_label_name;
use crate::promql::{self, Expr, Value};
use crate::tsdb::{STALE_NAN, SeriesStore};

/// promtool's default `evaluation_interval`.
pub const DEFAULT_EVALUATION_INTERVAL_MS: Millis = 60_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestFile {
    #[serde(default)]
    rule_files: Vec<Sp<String>>,
    evaluation_interval: Option<Sp<String>>,
    #[serde(default)]
    group_eval_order: Vec<Sp<String>>,
    #[serde(default)]
    tests: Vec<Sp<RawTestGroup>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestGroup {
    interval: Option<Sp<String>>,
    #[serde(default)]
    input_series: Vec<Sp<RawSeries>>,
    name: Option<Sp<String>>,
    #[serde(default)]
    alert_rule_test: Vec<Sp<RawAlertTest>>,
    #[serde(default)]
    promql_expr_test: Vec<Sp<RawExprTest>>,
    #[serde(default)]
    external_labels: BTreeMap<String, Sp<String>>,
    external_url: Option<Sp<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeries {
    series: Option<Sp<String>>,
    values: Option<Sp<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertTest {
    eval_time: Option<Sp<String>>,
    alertname: Option<Sp<String>>,
    #[serde(default)]
    exp_alerts: Vec<Sp<RawExpAlert>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExprTest {
    expr: Option<Sp<String>>,
    eval_time: Option<Sp<String>>,
    #[serde(default)]
    exp_samples: Vec<Sp<RawExpSample>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpSample {
    #[serde(default)]
    labels: Option<Sp<String>>,
    value: Option<Sp<f64>>,
}

/// A validated test file.
#[derive(Clone, Debug)]
pub struct TestFile {
    pub file: String,
    /// As written (relative to the test file, maybe globs).
    pub rule_files: Vec<(String, Option<Pos>)>,
    pub evaluation_interval_ms: Millis,
    pub group_eval_order: Vec<String>,
    pub tests: Vec<TestGroup>,
}

#[derive(Clone, Debug)]
pub struct TestGroup {
    pub name: String,
    pub interval_ms: Millis,
    pub input_series: Vec<InputSeries>,
    pub alert_tests: Vec<AlertTest>,
    pub expr_tests: Vec<ExprTest>,
    pub external_labels: Labels,
    pub external_url: String,
}

/// One input series: `values[i]` is the sample at `i * interval`.
#[derive(Clone, Debug, PartialEq)]
pub struct InputSeries {
    pub labels: Labels,
    pub values: Vec<SeriesValue>,
}

/// One slot of the expanding notation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SeriesValue {
    /// `_`: no sample at this step.
    Missing,
    /// A sample; `stale` is [`STALE_NAN`].
    Value(f64),
}

#[derive(Clone, Debug)]
pub struct AlertTest {
    pub eval_time_ms: Millis,
    /// As written, for reports.
    pub eval_time: String,
    pub alertname: String,
    pub exp_alerts: Vec<ExpAlert>,
}

/// An expected firing alert; `labels` includes `alertname`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpAlert {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct ExprTest {
    pub expr: Expr,
    pub expr_text: String,
    pub eval_time_ms: Millis,
    pub eval_time: String,
    pub exp_samples: Vec<(Labels, f64)>,
}

/// Why a `values:` string is not valid expanding notation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {col}: {message}")]
pub struct SeriesNotationError {
    /// 1-based, in the `values` string.
    pub col: usize,
    pub message: String,
}

/// Expands promtool's series notation: space-separated items, each a
/// number, `stale`, `_`, `axn` (n+1 copies of a), `a+bxn` / `a-bxn`
/// (a, then n further values stepping by b), or `_xn` (n missing).
pub fn expand_series_values(text: &str) -> Result<Vec<SeriesValue>, SeriesNotationError> {
    let mut out = Vec::new();
    let mut start = None;
    // Items are whitespace-separated; track columns for errors.
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                expand_item(&text[s..i], &mut out).map_err(|message| SeriesNotationError {
                    col: text[..s].chars().count() + 1,
                    message,
                })?;
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    Ok(out)
}

fn expand_item(item: &str, out: &mut Vec<SeriesValue>) -> Result<(), String> {
    let (base, times) = match item.rfind('x') {
        // `0x1f` style hex has its x second; promtool's grammar has no hex
        // in series values worth supporting, so treat x as repetition.
        Some(i) => {
            let n = &item[i + 1..];
            let n: u64 = n
                .parse()
                .map_err(|_| format!("invalid repetition count {n:?} in {item:?}"))?;
            (&item[..i], Some(n))
        }
        None => (item, None),
    };
    if base == "_" {
        let n = times.unwrap_or(1);
        out.extend((0..n).map(|_| SeriesValue::Missing));
        return Ok(());
    }
    if base == "stale" {
        if times.is_some() {
            return Err(format!("{item:?}: stale cannot be repeated"));
        }
        out.push(SeriesValue::Value(STALE_NAN));
        return Ok(());
    }
    // An increment starts at a sign that is neither leading nor part of
    // an exponent (`1e+3`).
    let b = base.as_bytes();
    let split = (1..b.len()).find(|&i| {
        (b[i] == b'+' || b[i] == b'-') && !matches!(b[i - 1], b'e' | b'E') && b[i - 1] != b'+'
    });
    let (a, step) = match split {
        Some(i) => (&base[..i], Some(&base[i..])),
        None => (base, None),
    };
    let a = parse_number(a).ok_or_else(|| format!("invalid value {a:?} in {item:?}"))?;
    let step = match step {
        Some(s) => Some(parse_number(s).ok_or_else(|| format!("invalid step {s:?} in {item:?}"))?),
        None => None,
    };
    match (step, times) {
        (None, None) => out.push(SeriesValue::Value(a)),
        (Some(_), None) => return Err(format!("{item:?}: a step needs a count, as in a+bxn")),
        (step, Some(n)) => {
            let step = step.unwrap_or(0.0);
            let mut v = a;
            for _ in 0..=n {
                out.push(SeriesValue::Value(v));
                v += step;
            }
        }
    }
    Ok(())
}

/// A number as PromQL writes one: decimal, `Inf`, `NaN`, with an optional
/// sign.
fn parse_number(s: &str) -> Option<f64> {
    let (sign, body) = match s.as_bytes().first()? {
        b'+' => (1.0, &s[1..]),
        b'-' => (-1.0, &s[1..]),
        _ => (1.0, s),
    };
    let v = match body.to_ascii_lowercase().as_str() {
        "inf" => f64::INFINITY,
        "nan" => f64::NAN,
        b if b.starts_with(|c: char| c.is_ascii_digit() || c == '.') => body.parse().ok()?,
        _ => return None,
    };
    Some(sign * v)
}

/// Parses a series description, `name{a="b", c='d'}`, `name` or
/// `{__name__="x"}`: the `series:` of an input and the `labels:` of an
/// expected sample. `Err` holds the message and the 1-based column.
pub fn parse_series_labels(text: &str) -> Result<Labels, (String, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    let ident = |i: &mut usize, metric: bool| -> String {
        let s = *i;
        while *i < chars.len()
            && (chars[*i].is_ascii_alphanumeric()
                || chars[*i] == '_'
                || (metric && chars[*i] == ':'))
        {
            *i += 1;
        }
        chars[s..*i].iter().collect()
    };
    let mut labels = Labels::new();
    skip_ws(&mut i);
    let name = ident(&mut i, true);
    if !name.is_empty() {
        if name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err((format!("invalid metric name {name:?}"), 1));
        }
        labels.set(METRIC_NAME, name);
    }
    skip_ws(&mut i);
    if i < chars.len() && chars[i] == '{' {
        i += 1;
        loop {
            skip_ws(&mut i);
            if i < chars.len() && chars[i] == '}' {
                i += 1;
                break;
            }
            let at = i + 1;
            let k = ident(&mut i, false);
            if k.is_empty() || !is_valid_label_name(&k) {
                return Err(("expected a label name".to_owned(), at));
            }
            skip_ws(&mut i);
            if i >= chars.len() || chars[i] != '=' {
                return Err((
                    format!("expected = after label name {k:?} (only = is allowed here)"),
                    i + 1,
                ));
            }
            i += 1;
            skip_ws(&mut i);
            let q = match chars.get(i) {
                Some(&q @ ('"' | '\'' | '`')) => q,
                _ => return Err(("expected a quoted label value".to_owned(), i + 1)),
            };
            let vstart = i + 1;
            i += 1;
            let mut v = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(("unterminated label value".to_owned(), vstart)),
                    Some(&c) if c == q => break,
                    Some('\\') if q != '`' => {
                        i += 1;
                        match chars.get(i) {
                            Some('n') => v.push('\n'),
                            Some('t') => v.push('\t'),
                            Some(&c) => v.push(c),
                            None => return Err(("unterminated label value".to_owned(), vstart)),
                        }
                    }
                    Some(&c) => v.push(c),
                }
                i += 1;
            }
            i += 1;
            if labels.get(&k).is_some() {
                return Err((format!("duplicate label name {k:?}"), at));
            }
            labels.set(k, v);
            skip_ws(&mut i);
            match chars.get(i) {
                Some(',') => i += 1,
                Some('}') => {}
                _ => return Err(("expected , or }".to_owned(), i + 1)),
            }
        }
    } else if labels.is_empty() {
        return Err(("expected a metric name or {".to_owned(), i + 1));
    }
    skip_ws(&mut i);
    if i < chars.len() {
        return Err(("unexpected text after the series".to_owned(), i + 1));
    }
    Ok(labels)
}

/// Parses and validates a test file, collecting every problem.
pub fn parse_test_file(file: &str, text: &str) -> Result<TestFile, Diagnostics> {
    let raw: RawTestFile = if text.trim().is_empty() {
        RawTestFile {
            rule_files: Vec::new(),
            evaluation_interval: None,
            group_eval_order: Vec::new(),
            tests: Vec::new(),
        }
    } else {
        from_yaml(file, text)?
    };
    let mut v = Check {
        file,
        text,
        out: Diagnostics::new(),
    };
    let evaluation_interval_ms = v
        .duration(raw.evaluation_interval.as_ref(), "evaluation_interval")
        .filter(|d| *d > 0)
        .unwrap_or(DEFAULT_EVALUATION_INTERVAL_MS);
    let mut order: Vec<String> = Vec::new();
    for (i, g) in raw.group_eval_order.iter().enumerate() {
        if order.contains(&g.value) {
            v.err(
                Pos::of(g),
                format!("group_eval_order[{i}]"),
                format!("group name repeated in evaluation order: {}", g.value),
            );
        } else {
            order.push(g.value.clone());
        }
    }
    let tests = raw
        .tests
        .iter()
        .enumerate()
        .map(|(i, t)| v.group(&format!("tests[{i}]"), t, evaluation_interval_ms))
        .collect();
    v.out.sorted().into_result(TestFile {
        file: file.to_owned(),
        rule_files: raw
            .rule_files
            .iter()
            .map(|r| (r.value.clone(), Pos::of(r)))
            .collect(),
        evaluation_interval_ms,
        group_eval_order: order,
        tests,
    })
}

struct Check<'a> {
    file: &'a str,
    text: &'a str,
    out: Diagnostics,
}

impl Check<'_> {
    fn err(&mut self, pos: Option<Pos>, field: impl Into<String>, msg: impl Into<String>) {
        self.out.push(Diagnostic::new(self.file, pos, field, msg));
    }

    fn duration(&mut self, d: Option<&Sp<String>>, field: &str) -> Option<Millis> {
        let d = d?;
        match PromDuration::parse(d.value.trim()) {
            Ok(x) => Some(x.as_millis() as Millis),
            Err(e) => {
                self.err(Pos::of(d), field, e.to_string());
                None
            }
        }
    }

    /// Position of 1-based column `col` inside a single-line scalar,
    /// allowing for an opening quote.
    fn inside(&self, sp: &Sp<String>, col: usize) -> Option<Pos> {
        let start = Pos::of(sp)?;
        let line = self.text.lines().nth(start.line as usize - 1).unwrap_or("");
        let quoted = matches!(line.chars().nth(start.col as usize - 1), Some('"' | '\''));
        Some(start.offset_within(col as u32 + u32::from(quoted)))
    }

    fn group(&mut self, path: &str, g: &Sp<RawTestGroup>, eval_ms: Millis) -> TestGroup {
        let g = &g.value;
        let interval_ms = self
            .duration(g.interval.as_ref(), &format!("{path}.interval"))
            .filter(|d| *d > 0)
            .unwrap_or(eval_ms);
        let mut input_series = Vec::new();
        for (i, s) in g.input_series.iter().enumerate() {
            let p = format!("{path}.input_series[{i}]");
            let labels = match &s.value.series {
                None => {
                    self.err(Pos::of(s), format!("{p}.series"), "missing series");
                    None
                }
                Some(sp) => match parse_series_labels(&sp.value) {
                    Ok(l) => Some(l),
                    Err((m, col)) => {
                        let pos = self.inside(sp, col);
                        self.err(pos, format!("{p}.series"), format!("invalid series: {m}"));
                        None
                    }
                },
            };
            let values = match &s.value.values {
                None => Some(Vec::new()),
                Some(sp) => match expand_series_values(&sp.value) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        let pos = self.inside(sp, e.col);
                        self.err(
                            pos,
                            format!("{p}.values"),
                            format!("invalid series values: {}", e.message),
                        );
                        None
                    }
                },
            };
            if let (Some(labels), Some(values)) = (labels, values) {
                input_series.push(InputSeries { labels, values });
            }
        }
        let mut alert_tests = Vec::new();
        for (i, a) in g.alert_rule_test.iter().enumerate() {
            let p = format!("{path}.alert_rule_test[{i}]");
            let a = &a.value;
            let eval_time_ms = self
                .duration(a.eval_time.as_ref(), &format!("{p}.eval_time"))
                .unwrap_or(0);
            let alertname = a
                .alertname
                .as_ref()
                .map(|n| n.value.clone())
                .unwrap_or_default();
            let exp_alerts = a
                .exp_alerts
                .iter()
                .map(|e| {
                    let mut labels: Labels = e
                        .value
                        .exp_labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    // Users list the rule's labels; Prometheus adds this one.
                    labels.set("alertname", alertname.clone());
                    ExpAlert {
                        labels,
                        annotations: e.value.exp_annotations.clone(),
                    }
                })
                .collect();
            alert_tests.push(AlertTest {
                eval_time_ms,
                eval_time: time_text(a.eval_time.as_ref()),
                alertname,
                exp_alerts,
            });
        }
        let mut expr_tests = Vec::new();
        for (i, t) in g.promql_expr_test.iter().enumerate() {
            let p = format!("{path}.promql_expr_test[{i}]");
            let t = &t.value;
            let eval_time_ms = self
                .duration(t.eval_time.as_ref(), &format!("{p}.eval_time"))
                .unwrap_or(0);
            let expr = match &t.expr {
                None => {
                    self.err(None, format!("{p}.expr"), "missing expr");
                    None
                }
                Some(e) => match promql::parse(&e.value) {
                    Ok(x) => Some((x, e.value.clone())),
                    Err(err) => {
                        let pos = match err.line_col(&e.value) {
                            Some((1, c)) => self.inside(e, c),
                            _ => Pos::of(e),
                        };
                        self.err(
                            pos,
                            format!("{p}.expr"),
                            format!("invalid PromQL: {}", err.message),
                        );
                        None
                    }
                },
            };
            let mut exp_samples = Vec::new();
            for (j, s) in t.exp_samples.iter().enumerate() {
                let sp = format!("{p}.exp_samples[{j}]");
                let labels = match &s.value.labels {
                    None => Some(Labels::new()),
                    Some(l) if l.value.trim().is_empty() || l.value.trim() == "{}" => {
                        Some(Labels::new())
                    }
                    Some(l) => match parse_series_labels(&l.value) {
                        Ok(x) => Some(x),
                        Err((m, col)) => {
                            let pos = self.inside(l, col);
                            self.err(pos, format!("{sp}.labels"), format!("invalid labels: {m}"));
                            None
                        }
                    },
                };
                let value = s.value.value.as_ref().map_or(0.0, |v| v.value);
                if let Some(labels) = labels {
                    exp_samples.push((labels, value));
                }
            }
            if let Some((expr, expr_text)) = expr {
                expr_tests.push(ExprTest {
                    expr,
                    expr_text,
                    eval_time_ms,
                    eval_time: time_text(t.eval_time.as_ref()),
                    exp_samples,
                });
            }
        }
        let mut external_labels = Labels::new();
        for (k, v) in &g.external_labels {
            if is_valid_label_name(k) {
                external_labels.set(k.clone(), v.value.clone());
            } else {
                self.err(
                    Pos::of(v),
                    format!("{path}.external_labels.{k}"),
                    format!("invalid label name {k:?}"),
                );
            }
        }
        TestGroup {
            name: g.name.as_ref().map(|n| n.value.clone()).unwrap_or_default(),
            interval_ms,
            input_series,
            alert_tests,
            expr_tests,
            external_labels,
            external_url: g
                .external_url
                .as_ref()
                .map(|u| u.value.clone())
                .unwrap_or_default(),
        }
    }
}

fn time_text(t: Option<&Sp<String>>) -> String {
    t.map_or_else(|| "0s".to_owned(), |t| t.value.trim().to_owned())
}

/// One failed check of a test group.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    Alert {
        alertname: String,
        eval_time: String,
        exp: Vec<ExpAlert>,
        got: Vec<ExpAlert>,
    },
    Expr {
        expr: String,
        eval_time: String,
        exp: Vec<(Labels, f64)>,
        got: Vec<(Labels, f64)>,
    },
    ExprError {
        expr: String,
        eval_time: String,
        message: String,
    },
    /// A rule failed to evaluate; promtool stops the group there.
    RuleError {
        rule: String,
        at: Millis,
        message: String,
    },
    /// Appending an input sample failed (e.g. a duplicate timestamp with
    /// a recording rule's output).
    Load(String),
}

impl Failure {
    /// What kind of check failed, for `firebreak test rules --json`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Alert { .. } => "alert",
            Failure::Expr { .. } => "expr",
            Failure::ExprError { .. } => "expr_error",
            Failure::RuleError { .. } => "rule_error",
            Failure::Load(_) => "load",
        }
    }
}

/// The result of one test group: its name and every failed check.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupReport {
    pub name: String,
    pub failures: Vec<Failure>,
}

impl fmt::Display for GroupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for fail in &self.failures {
            if !self.name.is_empty() {
                writeln!(f, "    name: {},", self.name)?;
            }
            writeln!(f, "{fail}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Alert {
                alertname,
                eval_time,
                exp,
                got,
            } => {
                writeln!(f, "    alertname: {alertname}, time: {eval_time},")?;
                write!(
                    f,
                    "        exp:{},\n        got:{}",
                    alerts_block(exp),
                    alerts_block(got)
                )
            }
            Failure::Expr {
                expr,
                eval_time,
                exp,
                got,
            } => write!(
                f,
                "    expr: {expr:?}, time: {eval_time},\n        exp: {}\n        got: {}",
                samples_line(exp),
                samples_line(got)
            ),
            Failure::ExprError {
                expr,
                eval_time,
                message,
            } => write!(f, "    expr: {expr:?}, time: {eval_time}, err: {message}"),
            Failure::RuleError { rule, at, message } => {
                write!(f, "    rule: {rule}, time: {}, err: {message}", fmt_ms(*at))
            }
            Failure::Load(m) => write!(f, "    loading input series: {m}"),
        }
    }
}

fn alerts_block(a: &[ExpAlert]) -> String {
    if a.is_empty() {
        return "[]".to_owned();
    }
    let mut s = String::from("[\n");
    for (i, x) in a.iter().enumerate() {
        let ann: Labels = x
            .annotations
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        s.push_str(&format!(
            "            {i}:\n              Labels:{}\n              Annotations:{}\n",
            x.labels, ann
        ));
    }
    s.push_str("            ]");
    s
}

fn samples_line(s: &[(Labels, f64)]) -> String {
    if s.is_empty() {
        return "nil".to_owned();
    }
    s.iter()
        .map(|(l, v)| format!("{l} {}", fmt_float(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Floats as promtool prints them (Go's `%E` with the shortest digits:
/// `8E+00`, `1.5E-03`), so reports read the same.
pub fn fmt_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let s = format!("{v:E}");
    match s.split_once('E') {
        Some((m, e)) => {
            let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
            format!("{m}E{sign}{digits:0>2}")
        }
        None => s,
    }
}

fn fmt_ms(ms: Millis) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{}ms", ms)
    }
}

/// Runs one test group against `groups` (already in evaluation order):
/// the promtool algorithm described in the module documentation.
pub fn run_group(
    t: &TestGroup,
    groups: &[RuleGroup],
    evaluation_interval_ms: Millis,
) -> GroupReport {
    let ei = evaluation_interval_ms.max(1);
    let groups: Vec<RuleGroup> = groups
        .iter()
        .cloned()
        .map(|mut g| {
            // promtool evaluates every group at every evaluation_interval,
            // whatever the group's own interval.
            g.interval_ms = ei;
            g
        })
        .collect();
    let mut engine = RuleEngine::new(groups, t.external_labels.clone(), 0)
        .with_external_url(t.external_url.clone());
    let mut store = SeriesStore::new(Millis::MAX / 4);
    let mut failures = Vec::new();
    let max_t = t
        .alert_tests
        .iter()
        .map(|a| a.eval_time_ms)
        .chain(t.expr_tests.iter().map(|e| e.eval_time_ms))
        .max()
        .unwrap_or(0);
    let mut alert_tests: Vec<&AlertTest> = t.alert_tests.iter().collect();
    alert_tests.sort_by_key(|a| a.eval_time_ms);
    let mut next_alert = 0;
    // Per input series, how many of its values are loaded.
    let mut loaded = vec![0usize; t.input_series.len()];
    let interval = t.interval_ms.max(1);
    let mut ts = 0;
    while ts <= max_t {
        // Like promtool's lazy loader: input samples up to `ts`, so rule
        // output written at earlier steps interleaves with them.
        for (s, n) in t.input_series.iter().zip(loaded.iter_mut()) {
            while *n < s.values.len() && (*n as Millis) * interval <= ts {
                if let SeriesValue::Value(v) = s.values[*n]
                    && let Err(e) = store.append(s.labels.clone(), *n as Millis * interval, v)
                {
                    failures.push(Failure::Load(e.to_string()));
                }
                *n += 1;
            }
        }
        if !failures.is_empty() {
            return GroupReport {
                name: t.name.clone(),
                failures,
            };
        }
        let out = engine.eval_due(&mut store, ts);
        if !out.errors.is_empty() {
            failures.extend(out.errors.into_iter().map(|e| Failure::RuleError {
                rule: e.rule,
                at: e.at,
                message: e.message,
            }));
            return GroupReport {
                name: t.name.clone(),
                failures,
            };
        }
        while next_alert < alert_tests.len() && alert_tests[next_alert].eval_time_ms < ts + ei {
            let a = alert_tests[next_alert];
            next_alert += 1;
            let mut got: Vec<ExpAlert> = engine
                .all_alerts()
                .filter(|x| x.rule == a.alertname && x.state == AlertState::Firing)
                .map(|x| ExpAlert {
                    labels: x.labels.clone(),
                    annotations: x.annotations.clone(),
                })
                .collect();
            let mut exp = a.exp_alerts.clone();
            got.sort();
            exp.sort();
            if got != exp {
                failures.push(Failure::Alert {
                    alertname: a.alertname.clone(),
                    eval_time: a.eval_time.clone(),
                    exp,
                    got,
                });
            }
        }
        ts += ei;
    }
    for e in &t.expr_tests {
        let got = match promql::eval_instant(&e.expr, &store, e.eval_time_ms) {
            Ok(Value::Vector(v)) => v.into_iter().map(|s| (s.labels, s.value)).collect(),
            Ok(Value::Scalar(v)) => vec![(Labels::new(), v)],
            Ok(other) => {
                failures.push(Failure::ExprError {
                    expr: e.expr_text.clone(),
                    eval_time: e.eval_time.clone(),
                    message: format!(
                        "rule result is not a vector or scalar (got {})",
                        other.type_name()
                    ),
                });
                continue;
            }
            Err(err) => {
                failures.push(Failure::ExprError {
                    expr: e.expr_text.clone(),
                    eval_time: e.eval_time.clone(),
                    message: err.to_string(),
                });
                continue;
            }
        };
        let mut got: Vec<(Labels, f64)> = got;
        let mut exp = e.exp_samples.clone();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        exp.sort_by(|a, b| a.0.cmp(&b.0));
        if !samples_equal(&exp, &got) {
            failures.push(Failure::Expr {
                expr: e.expr_text.clone(),
                eval_time: e.eval_time.clone(),
                exp,
                got,
            });
        }
    }
    GroupReport {
        name: t.name.clone(),
        failures,
    }
}

/// Exact float equality, as promtool 2.42 compares (`NaN` never equal).
fn samples_equal(a: &[(Labels, f64)], b: &[(Labels, f64)]) -> bool {
    #[allow(clippy::float_cmp)]
    let same = |x: &(Labels, f64), y: &(Labels, f64)| x.0 == y.0 && x.1 == y.1;
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
}

/// Orders rule groups as `group_eval_order` asks: listed groups by their
/// position, unlisted ones keep file order at position 0 (promtool's
/// default for a name it was not given).
pub fn order_groups(mut groups: Vec<RuleGroup>, order: &[String]) -> Vec<RuleGroup> {
    let key = |g: &RuleGroup| order.iter().position(|n| *n == g.name).unwrap_or(0);
    groups.sort_by_key(key);
    groups
}

/// Runs every test group of a file whose rule groups are loaded.
pub fn run_test_file(t: &TestFile, groups: &[RuleGroup]) -> Vec<GroupReport> {
    let groups = order_groups(groups.to_vec(), &t.group_eval_order);
    t.tests
        .iter()
        .map(|g| run_group(g, &groups, t.evaluation_interval_ms))
        .collect()
}

#[cfg(test)]
mod tests;
