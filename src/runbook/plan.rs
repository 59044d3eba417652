//! Plans: what a run of a runbook would do, step by step, with its
//! templates rendered, without doing any of it (`firebreak plan`).
//!
//! Pure model: the plan is built from a runbook, an optional alert, the
//! inputs given and the targets' base URLs, at a `now` passed in. Values
//! that only a run can know (earlier steps' outputs, or the alert's when
//! none is given) render as visible placeholders such as
//! `<steps.create_room.room>`, so a plan never fails on them; an
//! expression that computes with one renders as that expression, the
//! values the plan knows put in (`<(steps.room.capacity * 0.9) | int>`).
//!
//! Also here, because plans and runbook tests share them: the shape of an
//! alert given by hand ([`AlertInput`]) and how inputs are filled
//! ([`resolve_inputs`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use super::AlertCtx;
use super::template::{Lang, Templates, encode_segment, expression_tags};
use super::{
    Approval, Budget, OnFailure, OnTimeout, RetryPolicy, Runbook, Step, VerifyFailure, coerce,
};
use crate::diag::{did_you_mean, one_of};
use crate::duration::Millis;
use crate::duration::PromDuration;
use crate::labels::Labels;

/// An alert given by hand: `firebreak plan --alert FILE` (JSON or YAML)
/// and a runbook test's `alert:`. The alert's name is its `alertname`
/// label, as in Prometheus.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertInput {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The alert expression's value (`{{ $value }}` in rules). Left out,
    /// the alert has none, as one pushed by Alertmanager or Prometheus
    /// (templates see `none`).
    #[serde(default)]
    pub value: Option<f64>,
}

impl AlertInput {
    /// As templates see it (`alert.*`), fired at `now`.
    pub fn to_ctx(&self, now: Millis) -> AlertCtx {
        AlertCtx {
            name: self.labels.get("alertname").cloned().unwrap_or_default(),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            value: self.value.unwrap_or(f64::NAN),
            fired_at: now,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("no runbook named {name:?}{hint}; loaded runbooks: {known}")]
    UnknownRunbook {
        name: String,
        hint: String,
        known: String,
    },
    /// Every input problem at once, one per line.
    #[error("{}", .0.join("\n"))]
    Inputs(Vec<String>),
}

/// Where an input's value came from.
#[derive(Clone, Debug, PartialEq)]
pub enum InputSource {
    Given,
    /// The input's `from:` expression over the alert.
    Alert(String),
    Default,
}

/// Fills a runbook's inputs: a value given by name wins, then the input's
/// `from:` over the alert, then its default; each is coerced to the
/// input's type (`capacity=2000000` on a command line is a string). Every
/// problem is reported at once: unknown names, values of the wrong type,
/// and inputs left without a value, with how to give one.
pub fn resolve_inputs(
    rb: &Runbook,
    alert: Option<&AlertCtx>,
    given: &BTreeMap<String, Json>,
) -> Result<BTreeMap<String, (Json, InputSource)>, PlanError> {
    let templates = Templates::new();
    let mut problems = Vec::new();
    let names: Vec<&str> = rb.inputs.iter().map(|i| i.name.as_str()).collect();
    for name in given.keys() {
        if !names.contains(&name.as_str()) {
            let hint = did_you_mean(name, &names)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            problems.push(format!(
                "unknown input `{name}`{hint}; runbook {} takes: {}",
                rb.name,
                if names.is_empty() {
                    "no inputs".to_owned()
                } else {
                    one_of(&names)
                }
            ));
        }
    }
    let ctx = json!({ "alert": alert });
    let mut out = BTreeMap::new();
    for input in &rb.inputs {
        let ty = format!("{:?}", input.ty).to_lowercase();
        let from_alert = || {
            let from = input.from.as_ref()?;
            let v = templates.eval(from, &ctx).ok().filter(|v| !v.is_null())?;
            Some((v, InputSource::Alert(from.clone())))
        };
        let found = given
            .get(&input.name)
            .map(|v| (v.clone(), InputSource::Given))
            .or_else(|| alert.and_then(|_| from_alert()))
            .or_else(|| input.default.clone().map(|v| (v, InputSource::Default)));
        match found {
            None => {
                let from = input
                    .from
                    .as_ref()
                    .map(|f| match alert {
                        None => format!(", or give an alert that has `{f}`"),
                        Some(_) => format!(" (the alert has no `{f}`)"),
                    })
                    .unwrap_or_default();
                problems.push(format!(
                    "input `{}` ({ty}) has no value and no default: give it as `{}=VALUE`{from}",
                    input.name, input.name
                ));
            }
            Some((v, source)) => match coerce(input.ty, v) {
                Ok(v) => {
                    out.insert(input.name.clone(), (v, source));
                }
                Err(e) => problems.push(format!("input `{}`: {e}", input.name)),
            },
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(PlanError::Inputs(problems))
    }
}

/// The runbook called `name`, or an error naming the close ones.
pub fn find_runbook<'a, R: AsRef<Runbook>>(
    runbooks: &'a [R],
    name: &str,
) -> Result<&'a Runbook, PlanError> {
    if let Some(rb) = runbooks.iter().map(AsRef::as_ref).find(|r| r.name == name) {
        return Ok(rb);
    }
    let names: Vec<&str> = runbooks.iter().map(|r| r.as_ref().name.as_str()).collect();
    Err(PlanError::UnknownRunbook {
        name: name.to_owned(),
        hint: did_you_mean(name, &names)
            .map(|s| format!(" (did you mean {s:?}?)"))
            .unwrap_or_default(),
        known: if names.is_empty() {
            "none".to_owned()
        } else {
            one_of(&names)
        },
    })
}

/// What a run would do.
#[derive(Clone, Debug)]
pub struct Plan {
    pub runbook: String,
    pub file: String,
    pub description: String,
    pub at: Millis,
    pub alert: Option<AlertCtx>,
    /// Whether the alert (if any) starts this runbook automatically.
    pub alert_matches: bool,
    pub manual: bool,
    pub inputs: Vec<(String, Json, InputSource)>,
    pub concurrency_key: String,
    pub cooldown: PromDuration,
    pub budget: Option<Budget>,
    pub retry: RetryPolicy,
    pub expected_duration: Option<PromDuration>,
    pub approval: Option<Approval>,
    pub steps: Vec<PlannedStep>,
    pub verify: Option<(VerifyFailure, Vec<PlannedStep>)>,
    /// Templates that could not be rendered, with why; shown as written.
    pub notes: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct PlannedStep {
    pub id: String,
    pub action: String,
    /// Parameters with templates rendered (placeholders where unknown).
    pub params: Json,
    /// For `http`: the URL it would call (the target's base URL + path).
    pub url: Option<String>,
    pub when: Option<(String, When)>,
    pub timeout: PromDuration,
    pub retries: u32,
    pub backoff: PromDuration,
    pub on_failure: OnFailure,
    pub approval: Option<Approval>,
    pub rollback: Option<Box<PlannedStep>>,
    /// On a rollback: what decides whether it runs.
    pub guard: Option<PlannedGuard>,
}

/// A rollback's guard as a plan shows it: its reads rendered as steps,
/// `holds` and `otherwise` as written (they read what only the run's
/// reads will know).
#[derive(Clone, Debug)]
pub struct PlannedGuard {
    pub read: Vec<PlannedStep>,
    pub holds: String,
    pub otherwise: String,
}

/// A step's `when`, as far as a plan can tell.
#[derive(Clone, Debug, PartialEq)]
pub enum When {
    True,
    False,
    /// Reads values only a run knows.
    AtRunTime(Vec<String>),
    Error(String),
}

/// Builds the plan of a run of `rb`. `targets` maps target names to base
/// URLs. Fails only on inputs (see [`resolve_inputs`]).
pub fn build_plan(
    rb: &Runbook,
    alert: Option<&AlertInput>,
    given: &BTreeMap<String, Json>,
    targets: &BTreeMap<String, String>,
    now: Millis,
) -> Result<Plan, PlanError> {
    let alert = alert.map(|a| a.to_ctx(now));
    let inputs = resolve_inputs(rb, alert.as_ref(), given)?;
    let templates = Templates::new();
    // Every value a run would read that a plan cannot know becomes its own
    // name in angle brackets.
    let mut unknown_roots = vec!["steps".to_owned()];
    if alert.is_none() {
        unknown_roots.push("alert".to_owned());
    }
    let mut refs = BTreeSet::new();
    let mut sources: Vec<(String, bool)> = Vec::new();
    for s in rb.steps.iter().chain(rb.verify_steps()) {
        collect_sources(s, &mut sources);
    }
    sources.push((rb.concurrency_key.clone(), false));
    for (src, is_expr) in &sources {
        let r = if *is_expr {
            templates.check_expr(src)
        } else {
            templates.check(src)
        };
        refs.extend(r.unwrap_or_default());
    }
    let mut ctx = json!({
        "alert": alert,
        "inputs": inputs.iter().map(|(k, (v, _))| (k.clone(), v.clone())).collect::<Map<String, Json>>(),
        "steps": {},
        "run": {"id": "<run.id>", "runbook": rb.name, "incident": "<run.incident>"},
    });
    if alert.is_none() {
        ctx["alert"] = json!({});
    }
    let mut placeholders = Vec::new();
    for r in &refs {
        if unknown_roots
            .iter()
            .any(|root| r.split('.').next() == Some(root))
        {
            set_placeholder(&mut ctx, r);
            let shown = format!("<{r}>");
            placeholders.push((encode_segment(&shown), shown));
        }
    }
    let mut p = Planner {
        templates: &templates,
        ctx: &ctx,
        targets,
        unknown_roots: &unknown_roots,
        placeholders,
        notes: Vec::new(),
    };
    let concurrency_key = p.render_str(&rb.concurrency_key, "policy.concurrency_key");
    let steps = rb.steps.iter().map(|s| p.step(s, "steps")).collect();
    let verify = rb.verify.as_ref().map(|v| {
        (
            v.on_failure,
            v.steps.iter().map(|s| p.step(s, "verify.steps")).collect(),
        )
    });
    let alert_matches = alert.as_ref().is_some_and(|a| {
        let labels: Labels = a
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        rb.matches_alert(&labels)
    });
    Ok(Plan {
        runbook: rb.name.clone(),
        file: rb.file.clone(),
        description: rb.description.clone(),
        at: now,
        alert,
        alert_matches,
        manual: rb.manual,
        inputs: inputs.into_iter().map(|(k, (v, s))| (k, v, s)).collect(),
        concurrency_key,
        cooldown: rb.cooldown,
        budget: rb.budget,
        retry: rb.retry,
        expected_duration: rb.expected_duration,
        approval: rb.approval.clone(),
        steps,
        verify,
        notes: p.notes,
    })
}

/// Every template source in a step and its rollback: (text, is `when`).
fn collect_sources(s: &Step, out: &mut Vec<(String, bool)>) {
    let mut strings = Vec::new();
    Templates::strings_in(&s.with, "", &mut strings);
    out.extend(strings.into_iter().map(|(_, t)| (t, false)));
    if let Some(w) = &s.when {
        out.push((w.clone(), true));
    }
    if let Some(r) = &s.rollback {
        collect_sources(r, out);
    }
    if let Some(g) = &s.guard {
        for r in &g.read {
            collect_sources(&r.step, out);
        }
        out.push((g.holds.clone(), true));
        out.push((g.otherwise.clone(), false));
    }
}

/// Puts `<a.b.c>` at `a.b.c` in `ctx`, making objects on the way.
fn set_placeholder(ctx: &mut Json, path: &str) {
    let mut at = ctx;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !at.is_object() {
            *at = json!({});
        }
        let map = at.as_object_mut().expect("made an object above");
        if i + 1 == parts.len() {
            // A deeper placeholder already made this an object; keep it.
            map.entry(*part)
                .or_insert_with(|| Json::String(format!("<{path}>")));
            return;
        }
        at = map.entry(*part).or_insert_with(|| json!({}));
    }
}

struct Planner<'a> {
    templates: &'a Templates,
    ctx: &'a Json,
    targets: &'a BTreeMap<String, String>,
    unknown_roots: &'a [String],
    /// Each placeholder percent-encoded, and as it is shown.
    placeholders: Vec<(String, String)>,
    notes: Vec<String>,
}

/// Filters that pass a placeholder through as the run would pass its
/// value, so the placeholder shows what goes there.
const PASS_THROUGH: [&str; 9] = [
    "promql",
    "matcher",
    "regex_escape",
    "string",
    "safe",
    "e",
    "escape",
    "default",
    "d",
];

/// Whether `expr` is a variable, maybe through [`PASS_THROUGH`] filters
/// (with arguments): `steps.a.b | promql`, `steps.a.b | default("x")`.
fn passes_through(expr: &str) -> bool {
    let mut parts = split_outside_strings(expr, '|').into_iter();
    let is_ident = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let path_ok = parts
        .next()
        .is_some_and(|p| p.trim().split('.').all(is_ident));
    path_ok
        && parts.all(|f| {
            let f = f.trim();
            let name = f.split('(').next().unwrap_or(f).trim();
            PASS_THROUGH.contains(&name) && (name.len() == f.len() || f.ends_with(')'))
        })
}

/// `s` split at each `sep` outside string literals and brackets.
fn split_outside_strings(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut quote, mut depth, mut from) = (None, 0i32, 0);
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (Some(_), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth -= 1,
            (None, c) if c == sep && depth == 0 => {
                parts.push(&s[from..i]);
                from = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[from..]);
    parts
}

impl Planner<'_> {
    fn is_unknown(&self, path: &str) -> bool {
        self.unknown_roots
            .iter()
            .any(|root| path.split('.').next() == Some(root))
    }

    /// `src` with each `{{ expression }}` that computes with a value only
    /// a run knows written out as that expression in angle brackets, as
    /// a placeholder is, with the plain values the plan knows put in:
    /// `{{ steps.room.capacity * inputs.headroom }}` becomes
    /// `<steps.room.capacity * 0.9>`. Placeholders are strings, so the
    /// arithmetic itself would fail or repeat them. None if nothing
    /// changes.
    fn symbolic(&self, src: &str) -> Option<String> {
        let mut out = String::with_capacity(src.len());
        let mut copied = 0;
        for tag in expression_tags(src) {
            let Ok(refs) = self.templates.check_expr(tag.expr) else {
                continue;
            };
            if !refs.iter().any(|r| self.is_unknown(r)) || passes_through(tag.expr) {
                continue;
            }
            out.push_str(&src[copied..tag.start]);
            out.push_str(if tag.trim_left {
                "{%- raw %}<"
            } else {
                "{% raw %}<"
            });
            out.push_str(&self.with_known_values(tag.expr));
            out.push_str(if tag.trim_right {
                ">{% endraw -%}"
            } else {
                ">{% endraw %}"
            });
            copied = tag.end;
        }
        (copied > 0).then(|| {
            out.push_str(&src[copied..]);
            out
        })
    }

    /// `expr` with each variable the plan knows a plain value of (an
    /// input, `run.runbook`, the alert's labels) replaced by that value.
    fn with_known_values(&self, expr: &str) -> String {
        let mut out = String::with_capacity(expr.len());
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        let mut chars = expr.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            let starts_path = quote.is_none()
                && (c.is_ascii_alphabetic() || c == '_')
                && !(prev.is_ascii_alphanumeric() || prev == '_' || prev == '.');
            if !starts_path {
                match (quote, c) {
                    (Some(q), c) if c == q && prev != '\\' => quote = None,
                    (None, '"' | '\'') => quote = Some(c),
                    _ => {}
                }
                out.push(c);
                prev = c;
                continue;
            }
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if d.is_ascii_alphanumeric() || d == '_' || d == '.' {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let path = &expr[i..end];
            let known = (!self.is_unknown(path))
                .then(|| path.split('.').try_fold(self.ctx, |v, k| v.get(k)))
                .flatten()
                .filter(|v| !v.is_object() && !v.is_array());
            match known {
                Some(Json::Null) => out.push_str("none"),
                Some(v) => out.push_str(&v.to_string()),
                None => out.push_str(path),
            }
            prev = path.chars().last().unwrap_or(c);
        }
        out
    }

    fn render_str(&mut self, src: &str, field: &str) -> String {
        if !super::template::is_template(src) {
            return src.to_owned();
        }
        let symbolic = self.symbolic(src);
        self.templates
            .render_str(symbolic.as_deref().unwrap_or(src), self.ctx)
            .unwrap_or_else(|e| {
                self.notes
                    .push(format!("{field} is shown as written: {}", e.message));
                src.to_owned()
            })
    }

    /// Renders every string in `v` on its own, so one that cannot be
    /// rendered stays as written and the rest still show their values.
    fn render_value(&mut self, v: &Json, field: &str) -> Json {
        match v {
            Json::String(s) if super::template::is_template(s) => self
                .templates
                .render_value(
                    &self.symbolic(s).map_or_else(|| v.clone(), Json::String),
                    self.ctx,
                )
                .unwrap_or_else(|e| {
                    self.notes
                        .push(format!("{field} is shown as written: {}", e.message));
                    Json::String(s.clone())
                }),
            Json::Array(items) => Json::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| self.render_value(x, &format!("{field}[{i}]")))
                    .collect(),
            ),
            Json::Object(map) => Json::Object(
                map.iter()
                    .map(|(k, x)| (k.clone(), self.render_value(x, &format!("{field}.{k}"))))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// A step's parameters, each top-level field rendered as what its
    /// action says it is (a `path` encoded as the run would).
    fn render_params(&mut self, with: &Json, langs: &[(&str, Lang)], field: &str) -> Json {
        let Json::Object(map) = with else {
            return self.render_value(with, field);
        };
        let mut out = Map::new();
        for (k, v) in map {
            let f = format!("{field}.{k}");
            let lang = langs.iter().find(|(name, _)| name == k).map(|(_, l)| *l);
            let rendered = match (lang, v) {
                (Some(Lang::UrlPath), Json::String(s)) => {
                    let symbolic = self.symbolic(s);
                    match self
                        .templates
                        .render_path(symbolic.as_deref().unwrap_or(s), self.ctx)
                    {
                        // A placeholder is shown as itself, not percent-encoded.
                        Ok(path) => Json::String(
                            self.placeholders
                                .iter()
                                .fold(path, |p, (encoded, shown)| p.replace(encoded, shown)),
                        ),
                        Err(e) => {
                            self.notes
                                .push(format!("{f} is shown as written: {}", e.message));
                            v.clone()
                        }
                    }
                }
                _ => self.render_value(v, &f),
            };
            out.insert(k.clone(), rendered);
        }
        Json::Object(out)
    }

    fn when(&mut self, cond: &str) -> When {
        let refs = match self.templates.check_expr(cond) {
            Ok(r) => r,
            Err(e) => return When::Error(e.message),
        };
        let unknown: Vec<String> = refs
            .into_iter()
            .filter(|r| {
                self.unknown_roots
                    .iter()
                    .any(|root| r.split('.').next() == Some(root))
            })
            .collect();
        if !unknown.is_empty() {
            return When::AtRunTime(unknown);
        }
        match self.templates.eval_bool(cond, self.ctx) {
            Ok(true) => When::True,
            Ok(false) => When::False,
            Err(e) => When::Error(e.message),
        }
    }

    fn step(&mut self, s: &Step, list: &str) -> PlannedStep {
        let field = format!("{list}.{}", s.id);
        let params = self.render_params(&s.with, s.spec.langs(), &format!("{field}.with"));
        let url = s.spec.destination(&params, self.targets).map(|d| {
            if let Some((param, why)) = d.refused {
                self.notes.push(format!("{field}.with.{param}: {why}"));
            }
            d.url
        });
        PlannedStep {
            id: s.id.clone(),
            action: s.action.clone(),
            params,
            url,
            when: s.when.as_ref().map(|w| (w.clone(), self.when(w))),
            timeout: s.timeout,
            retries: s.retries,
            backoff: s.backoff,
            on_failure: s.on_failure,
            approval: s.approval.clone(),
            rollback: s.rollback.as_ref().map(|r| Box::new(self.step(r, list))),
            guard: s.guard.as_ref().map(|g| PlannedGuard {
                read: g
                    .read
                    .iter()
                    .map(|r| PlannedStep {
                        // Shown by the name it is read as, under its guard.
                        id: r.name.clone(),
                        ..self.step(&r.step, list)
                    })
                    .collect(),
                holds: g.holds.clone(),
                otherwise: g.otherwise.clone(),
            }),
        }
    }
}

// ---- text ------------------------------------------------------------------

fn approval_text(a: &Approval) -> String {
    let then = match a.on_timeout {
        OnTimeout::Abort => "the run stops",
        OnTimeout::Proceed => "the run goes on",
    };
    format!(
        "{} must approve within {}; without an answer {then}",
        a.who(),
        a.timeout
    )
}

fn value_text(v: &Json) -> String {
    v.to_string()
}

fn fmt_time(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("{ms}ms"),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

/// Where a planned step is shown, which changes what its lines say.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Step,
    Rollback,
    GuardRead,
}

impl PlannedStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>, head: &str, indent: &str) -> fmt::Result {
        let place = match head {
            "rollback: " => Place::Rollback,
            "read " => Place::GuardRead,
            _ => Place::Step,
        };
        if place == Place::Rollback {
            // Its id is `rollback:<step>`; under the step it undoes,
            // the action says enough.
            writeln!(f, "{indent}rollback ({})", self.action)?;
        } else {
            writeln!(f, "{indent}{head}{} ({})", self.id, self.action)?;
        }
        let pad = format!("{indent}     ");
        if let Some(g) = &self.guard {
            writeln!(
                f,
                "{pad}guard: when the rollback is due, read the platform; it runs only if `holds` is true, else it is held for a person"
            )?;
            for r in &g.read {
                r.fmt(f, "read ", &format!("{pad}  "))?;
            }
            let holds: Vec<&str> = g.holds.split_whitespace().collect();
            writeln!(f, "{pad}  holds: `{}`", holds.join(" "))?;
            writeln!(
                f,
                "{pad}  otherwise: {}",
                value_text(&Json::String(g.otherwise.trim().to_owned()))
            )?;
        }
        if let Some((cond, w)) = &self.when {
            let w = match w {
                When::True => "true: the step runs".to_owned(),
                When::False => "false: the step is skipped".to_owned(),
                When::AtRunTime(refs) => {
                    format!("decided during the run (reads {})", refs.join(", "))
                }
                When::Error(e) => format!("cannot be evaluated: {e}"),
            };
            writeln!(f, "{pad}when `{cond}`: {w}")?;
        }
        if let Some(a) = &self.approval {
            writeln!(f, "{pad}approval gate: {}", approval_text(a))?;
        }
        let mut rest: Vec<(&String, &Json)> = Vec::new();
        match (&self.url, self.params.as_object()) {
            (Some(url), Some(map)) => {
                let method = map.get("method").and_then(Json::as_str).unwrap_or("GET");
                let target = map.get("target").and_then(Json::as_str).unwrap_or("");
                writeln!(f, "{pad}{method} {url} (target {target})")?;
                rest.extend(
                    map.iter()
                        .filter(|(k, _)| !matches!(k.as_str(), "method" | "target" | "path")),
                );
            }
            (_, Some(map)) => rest.extend(map.iter()),
            (_, None) => {}
        }
        for (k, v) in rest {
            writeln!(f, "{pad}{k}: {}", value_text(v))?;
        }
        let retries = if self.retries == 0 {
            "no retries".to_owned()
        } else {
            format!(
                "{} retries (backoff {}, doubling)",
                self.retries, self.backoff
            )
        };
        let on_failure = match self.on_failure {
            OnFailure::Abort => "abort",
            OnFailure::Continue => "continue",
            OnFailure::Rollback => "rollback",
        };
        match place {
            Place::Rollback => writeln!(f, "{pad}timeout {}, {retries}", self.timeout)?,
            Place::GuardRead => writeln!(
                f,
                "{pad}timeout {}, {retries}, on failure: the rollback is held",
                self.timeout
            )?,
            Place::Step => writeln!(
                f,
                "{pad}timeout {}, {retries}, on failure: {on_failure}",
                self.timeout
            )?,
        }
        if let Some(r) = &self.rollback {
            r.fmt(f, "rollback: ", &pad)?;
        }
        Ok(())
    }
}

impl Plan {
    /// The plan as `firebreak plan --json` prints it (the shape is in
    /// docs/json.md). Durations are written as in the runbook (`5m`);
    /// values only a run knows stay `<placeholders>` as in the text.
    pub fn json(&self) -> Json {
        let inputs: Vec<Json> = self
            .inputs
            .iter()
            .map(|(name, v, src)| {
                let (source, from) = match src {
                    InputSource::Given => ("given", None),
                    InputSource::Alert(from) => ("alert", Some(from.clone())),
                    InputSource::Default => ("default", None),
                };
                json!({"name": name, "value": v, "source": source, "from": from})
            })
            .collect();
        json!({
            "runbook": self.runbook,
            "file": self.file,
            "description": self.description.trim(),
            "at": fmt_time(self.at),
            "alert": self.alert.as_ref().map(|a| json!({
                "labels": a.labels,
                "annotations": a.annotations,
                "value": if a.value.is_finite() { json!(a.value) } else { Json::Null },
                "matches_trigger": self.alert_matches,
            })),
            "manual": self.manual,
            "inputs": inputs,
            "policy": {
                "concurrency_key": self.concurrency_key,
                "cooldown": self.cooldown.to_string(),
                "budget": self.budget.as_ref().map(|b| json!({"runs": b.runs, "per": b.per.to_string()})),
                "expected_duration": self.expected_duration.map(|d| d.to_string()),
                "retry": {
                    "attempts": self.retry.attempts,
                    "backoff": self.retry.backoff.to_string(),
                    "max_backoff": self.retry.max_backoff.to_string(),
                },
                "approval": self.approval.as_ref().map(approval_json),
            },
            "steps": self.steps.iter().map(PlannedStep::json).collect::<Vec<_>>(),
            "verify": self.verify.as_ref().map(|(on_failure, steps)| json!({
                "on_failure": match on_failure {
                    VerifyFailure::Rollback => "rollback",
                    VerifyFailure::Escalate => "escalate",
                },
                "steps": steps.iter().map(PlannedStep::json).collect::<Vec<_>>(),
            })),
            "notes": self.notes,
        })
    }
}

impl PlannedStep {
    fn json(&self) -> Json {
        let when = self.when.as_ref().map(|(cond, w)| {
            let (result, detail) = match w {
                When::True => ("true", Json::Null),
                When::False => ("false", Json::Null),
                When::AtRunTime(refs) => ("at_run_time", json!(refs)),
                When::Error(e) => ("error", json!(e)),
            };
            json!({"condition": cond, "result": result, "detail": detail})
        });
        json!({
            "id": self.id,
            "action": self.action,
            "with": self.params,
            "url": self.url,
            "when": when,
            "approval": self.approval.as_ref().map(approval_json),
            "timeout": self.timeout.to_string(),
            "retries": self.retries,
            "backoff": self.backoff.to_string(),
            "on_failure": match self.on_failure {
                OnFailure::Abort => "abort",
                OnFailure::Continue => "continue",
                OnFailure::Rollback => "rollback",
            },
            "rollback": self.rollback.as_ref().map(|r| r.json()),
            "guard": self.guard.as_ref().map(|g| json!({
                "read": g.read.iter().map(PlannedStep::json).collect::<Vec<_>>(),
                "holds": g.holds.split_whitespace().collect::<Vec<_>>().join(" "),
                "otherwise": g.otherwise.trim(),
            })),
        })
    }
}

fn approval_json(a: &Approval) -> Json {
    json!({
        "role": a.role.as_str(),
        "users": a.users,
        "timeout": a.timeout.to_string(),
        "on_timeout": match a.on_timeout {
            OnTimeout::Abort => "abort",
            OnTimeout::Proceed => "proceed",
        },
    })
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "plan of runbook {} ({}) at {}",
            self.runbook,
            self.file,
            fmt_time(self.at)
        )?;
        if !self.description.is_empty() {
            writeln!(f, "  {}", self.description.trim())?;
        }
        match &self.alert {
            Some(a) => {
                let labels: Labels = a
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                if a.value.is_nan() {
                    writeln!(f, "started by: alert {labels} (no value)")?;
                } else {
                    writeln!(f, "started by: alert {labels} with value {}", a.value)?;
                }
                if !self.alert_matches {
                    writeln!(
                        f,
                        "  note: this alert matches none of the runbook's triggers, so it would not start it by itself"
                    )?;
                }
            }
            None if self.manual => writeln!(f, "started by: hand (no alert)")?,
            None => writeln!(
                f,
                "started by: hand (no alert); note: the runbook has no `trigger.manual: true`, so only an alert starts it"
            )?,
        }
        writeln!(f, "inputs:")?;
        if self.inputs.is_empty() {
            writeln!(f, "  none")?;
        }
        for (name, v, src) in &self.inputs {
            let src = match src {
                InputSource::Given => "given".to_owned(),
                InputSource::Alert(from) => format!("from {from}"),
                InputSource::Default => "default".to_owned(),
            };
            writeln!(f, "  {name} = {} ({src})", value_text(v))?;
        }
        writeln!(f, "policy:")?;
        writeln!(f, "  concurrency key: {}", self.concurrency_key)?;
        writeln!(f, "  cooldown: {}", self.cooldown)?;
        match &self.budget {
            Some(b) => writeln!(
                f,
                "  budget: {} run(s) per {} per concurrency key",
                b.runs, b.per
            )?,
            None => writeln!(f, "  budget: none")?,
        }
        if let Some(d) = self.expected_duration {
            writeln!(
                f,
                "  expected to take effect within {d} (until measured; weighed against an alert's time_to_breach)"
            )?;
        }
        match self.retry.attempts {
            0 => writeln!(
                f,
                "  retry: never (a run that fails before changing anything waits for a person)"
            )?,
            n => writeln!(
                f,
                "  retry: a run that fails on a passing fault before changing anything is tried again while the alert fires, up to {n} time(s), first after {}, doubling up to {}",
                self.retry.backoff, self.retry.max_backoff
            )?,
        }
        match &self.approval {
            Some(a) => writeln!(f, "  approval before the first step: {}", approval_text(a))?,
            None => writeln!(f, "  approval: none, the run starts at once")?,
        }
        writeln!(f, "steps:")?;
        for (i, s) in self.steps.iter().enumerate() {
            s.fmt(f, &format!("{}. ", i + 1), "  ")?;
        }
        match &self.verify {
            None => writeln!(f, "verify: none")?,
            Some((on_failure, steps)) => {
                let then = match on_failure {
                    VerifyFailure::Rollback => "roll back",
                    VerifyFailure::Escalate => "escalate",
                };
                writeln!(f, "verify (on failure: {then}):")?;
                for (i, s) in steps.iter().enumerate() {
                    s.fmt(f, &format!("{}. ", i + 1), "  ")?;
                }
            }
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        writeln!(
            f,
            "Values in <angle brackets> are known only during the run. Nothing was done: no call, no chat message, no record."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::parse_runbook;

    const NOW: Millis = 1_684_951_500_000; // 2023-05-24T18:05:00Z

    fn shipped(name: &str) -> Runbook {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("runbooks/{name}.yaml")),
        )
        .unwrap();
        let env = crate::load::check_env(["platform".to_owned()]);
        parse_runbook(&format!("runbooks/{name}.yaml"), &text, &env).unwrap()
    }

    fn targets() -> BTreeMap<String, String> {
        [("platform".to_owned(), "http://127.0.0.1:9100/".to_owned())].into()
    }

    fn alert() -> AlertInput {
        AlertInput {
            labels: [
                ("alertname", "ListenerCapacityBreachPredicted"),
                ("severity", "critical"),
                ("event", "launch"),
                ("room", "main"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            annotations: [("time_to_breach".to_owned(), "564".to_owned())].into(),
            // The rule's value: seconds until 95% of capacity.
            value: Some(563.9),
        }
    }

    #[test]
    fn move_to_secondary_room_plan() {
        let rb = shipped("move-to-secondary-room");
        let plan = build_plan(&rb, Some(&alert()), &BTreeMap::new(), &targets(), NOW).unwrap();
        insta::assert_snapshot!(plan.to_string());
    }

    #[test]
    fn without_an_alert_its_values_are_placeholders() {
        let rb = shipped("move-to-secondary-room");
        let given = [("event".to_owned(), json!("launch"))].into();
        let plan = build_plan(&rb, None, &given, &targets(), NOW).unwrap();
        let text = plan.to_string();
        assert!(text.contains("concurrency key: event/launch"), "{text}");
        assert!(
            text.contains(r#"body: {"room":"<steps.create_room.room>"}"#),
            "{text}"
        );
        assert!(
            text.contains("POST http://127.0.0.1:9100/api/v1/events/launch/move"),
            "{text}"
        );
        // A placeholder is no number, so the announcement takes the branch
        // for alerts without a value.
        assert!(
            text.contains("text: \"<alert.labels.alertname> fired for room <alert.labels.room>. Moving event launch"),
            "{text}"
        );
    }

    /// A plan shows the path a run would call, its values encoded; and
    /// says when the run would refuse it.
    #[test]
    fn a_plan_encodes_path_values_as_the_run_does() {
        let rb = shipped("mute-feedback-speaker");
        let mut a = alert();
        a.labels.insert("speaker".into(), "../../../rooms#".into());
        let plan = build_plan(&rb, Some(&a), &BTreeMap::new(), &targets(), NOW).unwrap();
        let out = plan.to_string();
        assert!(
            out.contains(
                "POST http://127.0.0.1:9100/api/v1/rooms/main/speakers/..%2F..%2F..%2Frooms%23/mute"
            ),
            "{out}"
        );
        a.labels.insert("speaker".into(), "..".into());
        let plan = build_plan(&rb, Some(&a), &BTreeMap::new(), &targets(), NOW).unwrap();
        let out = plan.to_string();
        assert!(
            out.contains("note: steps.mute.with.path is shown as written: invalid operation: \"..\" cannot go into a URL path"),
            "{out}"
        );
        // A placeholder is shown as itself.
        let yaml = "kind: runbook\nname: r\ntrigger: {manual: true}\nsteps:\n  - id: get\n    action: http\n    with: {target: platform, path: \"/rooms/{{ alert.labels.room }}\"}\n";
        let env = crate::load::check_env(["platform".to_owned()]);
        let rb = parse_runbook("r.yaml", yaml, &env).unwrap();
        let out = build_plan(&rb, None, &BTreeMap::new(), &targets(), NOW)
            .unwrap()
            .to_string();
        assert!(
            out.contains("GET http://127.0.0.1:9100/rooms/<alert.labels.room>"),
            "{out}"
        );
    }

    /// Arithmetic over values only a run knows renders as the expression,
    /// with the values the plan knows put in, not as a "shown as written"
    /// note (nor as a placeholder repeated by `*`).
    #[test]
    fn arithmetic_over_step_outputs_is_rendered() {
        let yaml = r#"kind: runbook
name: r
trigger: {manual: true}
inputs:
  headroom: {type: number, default: 0.9}
steps:
  - id: room
    action: http
    with: {target: platform, path: /rooms/main}
  - id: cap
    action: http
    with:
      target: platform
      method: PUT
      path: "/rooms/{{ steps.room.id }}/cap/{{ steps.room.capacity // 2 }}"
      body: {max_listeners: "{{ (steps.room.capacity * inputs.headroom) | int }}"}
  - id: say
    action: chat
    with:
      text: "double {{ steps.room.capacity * 2 }}, {{ steps.room.capacity + 1 }} in,
        level {{ alert.value | round(2) }} on {{- ' ' ~ steps.room.id -}} ,
        {{ steps.room.name | promql }}"
"#;
        let env = crate::load::check_env(["platform".to_owned()]);
        let rb = parse_runbook("r.yaml", yaml, &env).unwrap();
        let plan = build_plan(&rb, None, &BTreeMap::new(), &targets(), NOW).unwrap();
        let out = plan.to_string();
        assert!(!out.contains("note:"), "{out}");
        assert!(
            out.contains(r#"body: {"max_listeners":"<(steps.room.capacity * 0.9) | int>"}"#),
            "{out}"
        );
        assert!(
            out.contains(
                "PUT http://127.0.0.1:9100/rooms/<steps.room.id>/cap/<steps.room.capacity // 2>"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "text: \"double <steps.room.capacity * 2>, <steps.room.capacity + 1> in, level <alert.value | round(2)> on<' ' ~ steps.room.id>, <steps.room.name>\""
            ),
            "{out}"
        );
    }

    /// A statement that computes with a value only a run knows cannot be
    /// planned: the step is shown as written, with a note.
    #[test]
    fn a_statement_over_run_values_is_noted() {
        let yaml = "kind: runbook\nname: r\ntrigger: {manual: true}\nsteps:\n  - id: say\n    action: chat\n    with:\n      text: \"{% if alert.value + 2 > 3 %}high{% endif %}\"\n";
        let env = crate::load::check_env(["platform".to_owned()]);
        let rb = parse_runbook("r.yaml", yaml, &env).unwrap();
        let plan = build_plan(&rb, None, &BTreeMap::new(), &targets(), NOW).unwrap();
        let out = plan.to_string();
        assert!(out.contains("note: steps.say.with.text"), "{out}");
        assert!(
            out.contains("text: \"{% if alert.value + 2 > 3 %}high{% endif %}\""),
            "{out}"
        );
    }

    #[test]
    fn missing_and_unknown_inputs_say_how_to_give_them() {
        let rb = shipped("move-to-secondary-room");
        let given = [("evnt".to_owned(), json!("launch"))].into();
        let e = build_plan(&rb, None, &given, &targets(), NOW)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown input `evnt` (did you mean `event`?)"),
            "{e}"
        );
        assert!(
            e.contains("input `event` (string) has no value and no default: give it as `event=VALUE`, or give an alert that has `alert.labels.event`"),
            "{e}"
        );
        let mut a = alert();
        a.labels.remove("event");
        let e = build_plan(&rb, Some(&a), &BTreeMap::new(), &targets(), NOW)
            .unwrap_err()
            .to_string();
        assert!(e.contains("(the alert has no `alert.labels.event`)"), "{e}");
        let rb = shipped("cap-listeners");
        let given = [("headroom".to_owned(), json!("lots"))].into();
        let e = build_plan(&rb, Some(&alert()), &given, &targets(), NOW)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("input `headroom`: \"lots\" is not a number"),
            "{e}"
        );
    }

    #[test]
    fn when_is_evaluated_unless_it_reads_the_run() {
        let text = r#"kind: runbook
name: w
trigger: {manual: true}
inputs:
  n: {type: integer, default: 3}
steps:
  - id: a
    action: chat
    when: inputs.n > 2
    with: {text: "a"}
  - id: b
    action: chat
    when: inputs.n > 5
    with: {text: "b"}
  - id: c
    action: chat
    when: steps.a.posted
    with: {text: "c"}
"#;
        let rb = parse_runbook("w.yaml", text, &crate::load::check_env([])).unwrap();
        let plan = build_plan(&rb, None, &BTreeMap::new(), &BTreeMap::new(), NOW).unwrap();
        let whens: Vec<When> = plan
            .steps
            .iter()
            .map(|s| s.when.clone().unwrap().1)
            .collect();
        assert_eq!(
            whens,
            [
                When::True,
                When::False,
                When::AtRunTime(vec!["steps.a.posted".into()])
            ]
        );
    }

    #[test]
    fn unknown_runbooks_get_a_suggestion() {
        let rbs = vec![std::sync::Arc::new(shipped("mute-feedback-speaker"))];
        let e = find_runbook(&rbs, "mute-feedbak-speaker").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no runbook named \"mute-feedbak-speaker\" (did you mean \"mute-feedback-speaker\"?); loaded runbooks: mute-feedback-speaker"
        );
    }
}
