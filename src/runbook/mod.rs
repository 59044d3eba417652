//! Runbooks: declarative mitigations, loaded from YAML and validated.
//!
//! A runbook says which alerts start it, what inputs it takes, the policy
//! that keeps it from running wild (one run per concurrency key, a
//! cooldown), and its steps. Loading is strict: unknown fields and actions,
//! template errors, references to steps that do not exist (or come later),
//! undeclared inputs and unknown targets are all reported at once, each with
//! its `file:line:col`.
//!
//! When several runbooks match one alert, they start in `priority` order
//! (lower first, default 100), then by name.

pub mod template;

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value as Json;

use crate::diag::{Collector, Diagnostic, Diagnostics, Pos, Sp, did_you_mean, from_yaml, one_of};
use crate::duration::PromDuration;
use crate::labels::Labels;
use crate::matchers::{Matcher, matches_all, parse_matchers};
use template::Templates;

/// What a runbook may reference outside itself, for validation.
#[derive(Clone, Debug, Default)]
pub struct CheckEnv {
    pub targets: BTreeSet<String>,
}

#[derive(Clone, Debug)]
pub struct Runbook {
    pub name: String,
    pub file: String,
    pub description: String,
    pub owner: String,
    pub links: Vec<Link>,
    pub priority: i32,
    pub triggers: Vec<Trigger>,
    /// May be started by hand (chat or CLI) as well as by alerts.
    pub manual: bool,
    pub inputs: Vec<Input>,
    pub concurrency_key: String,
    pub cooldown: PromDuration,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub title: String,
    pub url: String,
}

#[derive(Clone, Debug)]
pub struct Trigger {
    pub alertname: String,
    pub matchers: Vec<Matcher>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    String,
    Integer,
    Number,
    Boolean,
}

#[derive(Clone, Debug)]
pub struct Input {
    pub name: String,
    pub ty: InputType,
    /// An expression over `alert` that fills the input when an alert
    /// starts the run.
    pub from: Option<String>,
    pub default: Option<Json>,
    pub description: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Stop the run; it is failed.
    Abort,
    /// Record the failure and go on with the next step.
    Continue,
}

#[derive(Clone, Debug)]
pub struct Step {
    pub id: String,
    pub action: String,
    /// Parameters as written; strings are templates rendered at run time.
    pub with: Json,
    pub when: Option<String>,
    pub timeout: PromDuration,
    pub retries: u32,
    pub backoff: PromDuration,
    pub on_failure: OnFailure,
    pub pos: Option<Pos>,
}

impl Runbook {
    /// Whether this runbook starts for an alert with these labels.
    pub fn matches_alert(&self, labels: &Labels) -> bool {
        let name = labels.get("alertname").unwrap_or_default();
        self.triggers
            .iter()
            .any(|t| t.alertname == name && matches_all(&t.matchers, labels))
    }

    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id == id)
    }
}

// ---- raw shapes ------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunbook {
    kind: Sp<String>,
    name: Sp<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    links: Vec<Link>,
    priority: Option<i32>,
    #[serde(default)]
    trigger: RawTrigger,
    #[serde(default)]
    inputs: BTreeMap<String, Sp<RawInput>>,
    #[serde(default)]
    policy: RawPolicy,
    steps: Sp<Vec<Sp<RawStep>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    #[serde(default)]
    alerts: Vec<Sp<RawAlertTrigger>>,
    #[serde(default)]
    manual: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertTrigger {
    alertname: Sp<String>,
    #[serde(default)]
    matchers: Vec<Sp<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    #[serde(rename = "type")]
    ty: InputType,
    from: Option<Sp<String>>,
    default: Option<Json>,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    concurrency_key: Option<Sp<String>>,
    cooldown: Option<Sp<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: Sp<String>,
    action: Sp<String>,
    #[serde(default)]
    with: Option<Sp<Json>>,
    when: Option<Sp<String>>,
    timeout: Option<Sp<String>>,
    #[serde(default)]
    retries: Option<Sp<RawRetries>>,
    on_failure: Option<OnFailure>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetries {
    attempts: u32,
    backoff: Option<String>,
}

const DEFAULT_STEP_TIMEOUT: PromDuration = PromDuration::from_secs(30);
/// A wait's default timeout: its duration plus this.
const WAIT_TIMEOUT_MARGIN: PromDuration = PromDuration::from_secs(30);
/// A wait whose duration is a template gets this unless `timeout` is set.
const TEMPLATED_WAIT_TIMEOUT: PromDuration = PromDuration::from_secs(3600);
const DEFAULT_COOLDOWN: PromDuration = PromDuration::from_secs(10 * 60);
const MAX_RETRIES: u32 = 10;

struct Check<'a> {
    c: Collector<'a>,
    templates: &'a Templates,
}

impl<'a> std::ops::Deref for Check<'a> {
    type Target = Collector<'a>;
    fn deref(&self) -> &Collector<'a> {
        &self.c
    }
}

impl std::ops::DerefMut for Check<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.c
    }
}

impl Check<'_> {
    /// Checks a template and that everything it reads exists.
    fn template(&mut self, src: &str, is_expr: bool, pos: Option<Pos>, field: &str, scope: &Scope) {
        let refs = if is_expr {
            self.templates.check_expr(src)
        } else {
            self.templates.check(src)
        };
        match refs {
            Err(e) => {
                let pos = match (pos, e.line) {
                    (Some(p), Some(l)) if l > 1 => Some(Pos::new(p.line + l - 1, 1)),
                    _ => pos,
                };
                self.err(pos, field, format!("invalid template: {}", e.message));
            }
            Ok(refs) => {
                for r in refs {
                    if let Some(msg) = scope.check_ref(&r) {
                        self.err(pos, field, msg);
                    }
                }
            }
        }
    }
}

/// What a template at a given place may read.
struct Scope<'a> {
    inputs: &'a BTreeSet<String>,
    /// Steps that run before this point.
    earlier_steps: &'a [String],
    all_steps: &'a [String],
    /// `alert` is readable (the only thing `from:` may read).
    only_alert: bool,
}

impl Scope<'_> {
    fn check_ref(&self, r: &str) -> Option<String> {
        let mut parts = r.split('.');
        let root = parts.next().unwrap_or_default();
        let second = parts.next();
        if self.only_alert && root != "alert" {
            return Some(format!(
                "`{r}`: an input's `from` may only read `alert` (its labels, annotations and value)"
            ));
        }
        match root {
            "alert" | "run" => None,
            "inputs" => match second {
                Some(name) if !self.inputs.contains(name) => {
                    let known: Vec<&String> = self.inputs.iter().collect();
                    let hint = did_you_mean(name, &known)
                        .map(|s| format!(" (did you mean `inputs.{s}`?)"))
                        .unwrap_or_default();
                    Some(format!(
                        "unknown input `{name}`{hint}; declared inputs: {}",
                        if known.is_empty() {
                            "none".into()
                        } else {
                            one_of(&known)
                        }
                    ))
                }
                _ => None,
            },
            "steps" => match second {
                Some(id) if self.earlier_steps.iter().any(|s| s == id) => None,
                Some(id) if self.all_steps.iter().any(|s| s == id) => Some(format!(
                    "step `{id}` runs later; a step can only read the output of earlier steps"
                )),
                Some(id) => {
                    let hint = did_you_mean(id, self.all_steps)
                        .map(|s| format!(" (did you mean `steps.{s}`?)"))
                        .unwrap_or_default();
                    Some(format!(
                        "unknown step `{id}`{hint}; earlier steps: {}",
                        if self.earlier_steps.is_empty() {
                            "none".into()
                        } else {
                            self.earlier_steps.join(", ")
                        }
                    ))
                }
                None => None,
            },
            other => Some(format!(
                "unknown variable `{other}`; templates can read {}",
                template::ROOTS.join(", ")
            )),
        }
    }
}

/// Parses and validates one runbook file.
pub fn parse_runbook(file: &str, text: &str, env: &CheckEnv) -> Result<Runbook, Diagnostics> {
    let raw: RawRunbook = from_yaml(file, text)?;
    let templates = Templates::new();
    let mut c = Check {
        c: Collector::new(file),
        templates: &templates,
    };

    if raw.kind.value != "runbook" {
        c.err(
            Pos::of(&raw.kind),
            "kind",
            format!("expected `kind: runbook`, got {:?}", raw.kind.value),
        );
    }
    if !valid_name(&raw.name.value) {
        c.err(
            Pos::of(&raw.name),
            "name",
            format!(
                "invalid name {:?}; use lowercase letters, digits and dashes",
                raw.name.value
            ),
        );
    }

    let mut triggers = Vec::new();
    for (i, t) in raw.trigger.alerts.iter().enumerate() {
        let mut matchers = Vec::new();
        for (j, m) in t.value.matchers.iter().enumerate() {
            match parse_matchers(&m.value) {
                Ok(ms) => matchers.extend(ms),
                Err(e) => {
                    let pos = Pos::of(m).map(|p| p.offset_within(e.col as u32));
                    c.err(pos, format!("trigger.alerts[{i}].matchers[{j}]"), format!("{}; expected Alertmanager matchers like severity=\"critical\" or room=~\"main|backup\"", e.message));
                }
            }
        }
        if t.value.alertname.value.is_empty() {
            c.err(
                Pos::of(&t.value.alertname),
                format!("trigger.alerts[{i}].alertname"),
                "must not be empty",
            );
        }
        triggers.push(Trigger {
            alertname: t.value.alertname.value.clone(),
            matchers,
        });
    }
    if triggers.is_empty() && !raw.trigger.manual {
        c.err(
            Pos::of(&raw.name),
            "trigger",
            "the runbook can never start: give `trigger.alerts` or `trigger.manual: true`",
        );
    }

    let input_names: BTreeSet<String> = raw.inputs.keys().cloned().collect();
    let step_ids: Vec<String> = raw
        .steps
        .value
        .iter()
        .map(|s| s.value.id.value.clone())
        .collect();
    let mut inputs = Vec::new();
    for (name, sp) in &raw.inputs {
        let r = &sp.value;
        let field = format!("inputs.{name}");
        if let Some(from) = &r.from {
            let scope = Scope {
                inputs: &input_names,
                earlier_steps: &[],
                all_steps: &step_ids,
                only_alert: true,
            };
            c.template(
                &from.value,
                true,
                Pos::of(from),
                &format!("{field}.from"),
                &scope,
            );
        }
        if let Some(d) = &r.default
            && !type_fits(r.ty, d)
        {
            c.err(
                Pos::of(sp),
                format!("{field}.default"),
                format!("default {d} is not of type {:?}", r.ty).to_lowercase(),
            );
        }
        inputs.push(Input {
            name: name.clone(),
            ty: r.ty,
            from: r.from.as_ref().map(|f| f.value.clone()),
            default: r.default.clone(),
            description: r.description.clone(),
        });
    }

    let no_steps: [String; 0] = [];
    let key_scope = Scope {
        inputs: &input_names,
        earlier_steps: &no_steps,
        all_steps: &step_ids,
        only_alert: false,
    };
    let concurrency_key = match &raw.policy.concurrency_key {
        Some(k) => {
            c.template(
                &k.value,
                false,
                Pos::of(k),
                "policy.concurrency_key",
                &key_scope,
            );
            k.value.clone()
        }
        // One run of a runbook at a time unless the author says otherwise.
        None => raw.name.value.clone(),
    };
    let cooldown = c.duration(
        raw.policy.cooldown.as_ref(),
        "policy.cooldown",
        DEFAULT_COOLDOWN,
    );

    if raw.steps.value.is_empty() {
        c.err(
            Pos::of(&raw.steps),
            "steps",
            "a runbook needs at least one step",
        );
    }
    let mut steps = Vec::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for (i, sp) in raw.steps.value.iter().enumerate() {
        let r = &sp.value;
        let field = format!("steps[{i}]");
        let id = &r.id.value;
        if !valid_name(id) && !id.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
            c.err(
                Pos::of(&r.id),
                format!("{field}.id"),
                format!("invalid step id {id:?}; use letters, digits and underscores"),
            );
        }
        if !seen.insert(id) {
            c.err(
                Pos::of(&r.id),
                format!("{field}.id"),
                format!("duplicate step id {id:?}"),
            );
        }
        let with = r
            .with
            .as_ref()
            .map_or(Json::Object(Default::default()), |w| w.value.clone());
        let with_pos = r.with.as_ref().and_then(Pos::of).or(Pos::of(sp));
        match crate::executor::actions::find(&r.action.value) {
            None => {
                let names = crate::executor::actions::names();
                let hint = did_you_mean(&r.action.value, &names)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                c.err(
                    Pos::of(&r.action),
                    format!("{field}.action"),
                    format!(
                        "unknown action {:?}{hint}; expected one of: {}",
                        r.action.value,
                        one_of(&names)
                    ),
                );
            }
            Some(action) => {
                for (sub, msg) in action.check(&with, env) {
                    let f = if sub.is_empty() {
                        format!("{field}.with")
                    } else {
                        format!("{field}.with.{sub}")
                    };
                    c.err(with_pos, f, msg);
                }
            }
        }
        let scope = Scope {
            inputs: &input_names,
            earlier_steps: &step_ids[..i],
            all_steps: &step_ids,
            only_alert: false,
        };
        let mut strings = Vec::new();
        Templates::strings_in(&with, &format!("{field}.with"), &mut strings);
        for (f, s) in strings {
            c.template(&s, false, with_pos, &f, &scope);
        }
        if let Some(w) = &r.when {
            c.template(&w.value, true, Pos::of(w), &format!("{field}.when"), &scope);
        }
        // A wait's timeout must outlast the wait (its `duration`, or the
        // `within` of a wait `until`): by default it does, and one set
        // shorter is a mistake that would fail every run.
        let waits_for = (r.action.value == "wait")
            .then(|| {
                with.get("duration")
                    .or_else(|| with.get("within"))
                    .and_then(|d| d.as_str())
                    .map(|d| PromDuration::parse(d).ok())
            })
            .flatten();
        let default_timeout = match waits_for {
            Some(Some(d)) => {
                PromDuration::from_millis(d.as_millis() + WAIT_TIMEOUT_MARGIN.as_millis())
            }
            Some(None) => TEMPLATED_WAIT_TIMEOUT,
            None => DEFAULT_STEP_TIMEOUT,
        };
        let timeout = c.duration(
            r.timeout.as_ref(),
            &format!("{field}.timeout"),
            default_timeout,
        );
        if let (Some(Some(d)), Some(t)) = (waits_for, &r.timeout)
            && timeout <= d
        {
            c.err(Pos::of(t), format!("{field}.timeout"), format!("timeout {timeout} is not longer than the wait ({d}); leave it out or make it longer"));
        }
        if timeout.is_zero() {
            c.err(
                r.timeout.as_ref().and_then(Pos::of),
                format!("{field}.timeout"),
                "must be greater than 0s",
            );
        }
        let (retries, backoff) = match &r.retries {
            None => (0, PromDuration::from_secs(1)),
            Some(rs) => {
                if rs.value.attempts > MAX_RETRIES {
                    c.err(
                        Pos::of(rs),
                        format!("{field}.retries.attempts"),
                        format!(
                            "{} retries is too many; at most {MAX_RETRIES}",
                            rs.value.attempts
                        ),
                    );
                }
                let b = match &rs.value.backoff {
                    None => PromDuration::from_secs(1),
                    Some(b) => PromDuration::parse(b).unwrap_or_else(|e| {
                        c.err(
                            Pos::of(rs),
                            format!("{field}.retries.backoff"),
                            e.to_string(),
                        );
                        PromDuration::from_secs(1)
                    }),
                };
                (rs.value.attempts, b)
            }
        };
        steps.push(Step {
            id: id.clone(),
            action: r.action.value.clone(),
            with,
            when: r.when.as_ref().map(|w| w.value.clone()),
            timeout,
            retries,
            backoff,
            on_failure: r.on_failure.unwrap_or(OnFailure::Abort),
            pos: Pos::of(sp),
        });
    }

    let rb = Runbook {
        name: raw.name.value.clone(),
        file: file.to_owned(),
        description: raw.description,
        owner: raw.owner,
        links: raw.links,
        priority: raw.priority.unwrap_or(100),
        triggers,
        manual: raw.trigger.manual,
        inputs,
        concurrency_key,
        cooldown,
        steps,
    };
    c.c.out.into_result(rb)
}

/// Loads a set of runbook files, checking names are unique across them.
/// Returns runbooks in dispatch order (priority, then name).
pub fn load_runbooks(
    files: &[(String, String)],
    env: &CheckEnv,
) -> Result<Vec<Runbook>, Diagnostics> {
    let mut out = Vec::new();
    let mut errs = Diagnostics::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    for (file, text) in files {
        match parse_runbook(file, text, env) {
            Ok(rb) => {
                if let Some(first) = names.insert(rb.name.clone(), file.clone()) {
                    errs.push(Diagnostic::new(
                        file,
                        None,
                        "name",
                        format!("runbook name {:?} is already used by {first}", rb.name),
                    ));
                }
                out.push(rb);
            }
            Err(e) => errs.extend(e),
        }
    }
    out.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
    errs.into_result(out)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
}

pub fn type_fits(ty: InputType, v: &Json) -> bool {
    match ty {
        InputType::String => v.is_string(),
        InputType::Integer => v.is_i64() || v.is_u64(),
        InputType::Number => v.is_number(),
        InputType::Boolean => v.is_boolean(),
    }
}

/// Coerces a value to an input's type: alert labels are strings, so
/// `"1500000"` must become an integer input.
pub fn coerce(ty: InputType, v: Json) -> Result<Json, String> {
    if type_fits(ty, &v) {
        return Ok(v);
    }
    let s = match &v {
        Json::String(s) => s.trim().to_owned(),
        Json::Number(n) if ty == InputType::String => return Ok(Json::String(n.to_string())),
        Json::Bool(b) if ty == InputType::String => return Ok(Json::String(b.to_string())),
        _ => return Err(format!("{v} is not a {}", format!("{ty:?}").to_lowercase())),
    };
    let parsed = match ty {
        InputType::Integer => s.parse::<i64>().ok().map(Json::from),
        InputType::Number => s
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Json::from),
        InputType::Boolean => match s.as_str() {
            "true" => Some(Json::Bool(true)),
            "false" => Some(Json::Bool(false)),
            _ => None,
        },
        InputType::String => Some(Json::String(s.clone())),
    };
    parsed.ok_or_else(|| format!("{s:?} is not a {}", format!("{ty:?}").to_lowercase()))
}

#[cfg(test)]
mod tests;
