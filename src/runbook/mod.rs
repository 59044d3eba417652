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
//!
//! Safety in the format:
//! - a step may carry a `rollback` (a compensating action); when a step
//!   fails with `on_failure: rollback`, or verification does not recover,
//!   the rollbacks of the steps that succeeded run in reverse order;
//! - a rollback may carry a `guard`: read-only steps run when the rollback
//!   is due and an expression (`holds`) over what they read. Undoing a
//!   move into a room that is too small means moving everyone back into
//!   the room that was saturating, so a rollback is a decision made from
//!   the platform as it is then: when `holds` is false, or cannot be
//!   decided, the rollback is held (not done) and people are told why in
//!   `otherwise`'s words;
//! - `verify` steps run after the mitigation (typically a `wait` until a
//!   query holds); if one fails, the run rolls back or escalates;
//! - `approval` (for the whole run under `policy`, or on one step) holds
//!   the run until a person with the role approves, or its deadline passes;
//! - `policy.budget` caps how many runs a concurrency key gets in a window,
//!   counted from the store, so a restart does not reset it;
//! - `policy.expected_duration` is how long a run takes to take effect
//!   until the bot has measured it, so that dispatch can prefer what
//!   finishes before an alert's predicted breach (rule 6);
//! - `policy.retry` says how often a run that failed on a passing fault
//!   (a timeout, a refused connection, a 5xx or 429) before it changed
//!   anything is tried again while its alert still fires (see
//!   [`crate::dispatch`], rule 5).

pub mod alert;
pub mod calls;
pub mod literals;
pub mod plan;
pub mod spec;
pub mod template;
pub mod testfile;

pub use alert::AlertCtx;

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value as Json;

use crate::diag::{Collector, Diagnostic, Diagnostics, Pos, Sp, did_you_mean, from_yaml, one_of};
use crate::duration::PromDuration;
use crate::labels::Labels;
use crate::matchers::{Matcher, matches_all, parse_matchers};
use crate::roles::Role;
use spec::{ActionSpec, Catalog, Lasts, Reads};
use template::Templates;

/// What a runbook may reference outside itself, for validation: the
/// actions steps may take, the targets they may call, and the ids they
/// should not name.
#[derive(Clone)]
pub struct CheckEnv {
    pub actions: &'static dyn Catalog,
    pub fixture: &'static literals::Fixture,
    pub targets: BTreeSet<String>,
}

impl CheckEnv {
    pub fn new(
        actions: &'static dyn Catalog,
        fixture: &'static literals::Fixture,
        targets: impl IntoIterator<Item = String>,
    ) -> Self {
        CheckEnv {
            actions,
            fixture,
            targets: targets.into_iter().collect(),
        }
    }
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
    /// The whole run waits for this approval before its first step.
    pub approval: Option<Approval>,
    pub budget: Option<Budget>,
    pub retry: RetryPolicy,
    /// How long the author expects a run to take effect (its steps, not
    /// its verification), until the bot has measured it (see
    /// [`crate::dispatch`], rule 6).
    pub expected_duration: Option<PromDuration>,
    pub steps: Vec<Step>,
    pub verify: Option<Verify>,
    /// Identifies this version of the file (and of the runbooks it
    /// calls): a run started under another version is not resumed after a
    /// restart, since its steps may differ.
    pub digest: String,
    /// The runbooks its `runbook` steps call, by name; linked at load.
    pub callees: BTreeMap<String, std::sync::Arc<Runbook>>,
    /// What validation found worth fixing that does not stop it loading.
    pub warnings: Diagnostics,
}

/// Who may let a gated run or step go on, and until when.
#[derive(Clone, Debug, PartialEq)]
pub struct Approval {
    /// The lowest role that may approve.
    pub role: Role,
    /// People who may approve whatever their role (chat user ids).
    pub users: Vec<String>,
    pub timeout: PromDuration,
    pub on_timeout: OnTimeout,
}

impl Approval {
    pub fn allows(&self, user: &str, role: Role) -> bool {
        role >= self.role || self.users.iter().any(|u| u == user)
    }

    /// "a commander", for chat.
    pub fn who(&self) -> String {
        let role = match self.role {
            Role::Viewer => "anyone",
            Role::Responder => "a responder",
            Role::Commander => "a commander",
        };
        if self.users.is_empty() {
            role.to_owned()
        } else {
            format!("{role} or {}", self.users.join(", "))
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    /// Nobody approved in time: the run stops (nothing was done yet).
    Abort,
    /// Nobody objected in time: go on, for steps that are safe by default.
    Proceed,
}

/// At most `runs` runs per concurrency key within `per`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    pub runs: u32,
    pub per: PromDuration,
}

/// Tries again of a run that changed nothing: at most `attempts` in a
/// row, the first `backoff` after the failure, each wait doubling up to
/// `max_backoff`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub backoff: PromDuration,
    pub max_backoff: PromDuration,
}

impl Default for RetryPolicy {
    /// Five tries over about six minutes: long enough to ride out an
    /// admin API restart or a short outage, short enough that a person is
    /// called while the event can still be saved.
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            backoff: PromDuration::from_secs(20),
            max_backoff: PromDuration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The wait before try `n` (1 is the first try again).
    pub fn wait_before(&self, n: u32) -> PromDuration {
        let base = self.backoff.as_millis();
        let doubled = base.saturating_mul(1u64 << n.saturating_sub(1).min(20));
        PromDuration::from_millis(doubled.min(self.max_backoff.as_millis()))
    }
}

#[derive(Clone, Debug)]
pub struct Verify {
    pub steps: Vec<Step>,
    pub on_failure: VerifyFailure,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyFailure {
    /// Undo the mitigation: run the rollbacks in reverse order.
    Rollback,
    /// Leave things as they are and call for humans.
    Escalate,
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
    /// Undo the steps that succeeded (their `rollback`s, in reverse
    /// order); the run is rolled back.
    Rollback,
}

#[derive(Clone, Debug)]
pub struct Step {
    pub id: String,
    pub action: String,
    /// What the model knows of the action.
    pub spec: &'static dyn ActionSpec,
    /// Parameters as written; strings are templates rendered at run time.
    pub with: Json,
    pub when: Option<String>,
    pub timeout: PromDuration,
    pub retries: u32,
    pub backoff: PromDuration,
    pub on_failure: OnFailure,
    /// The step waits for this approval before it acts.
    pub approval: Option<Approval>,
    /// What undoes this step once it has succeeded.
    pub rollback: Option<Box<Step>>,
    /// Only on a rollback: what must be true when it is due for it to run.
    pub guard: Option<Guard>,
    pub pos: Option<Pos>,
}

/// What a rollback checks before it acts. Its reads run when the rollback
/// is due, not when the run started, since the point is to judge the
/// platform as it is after the mitigation.
#[derive(Clone, Debug)]
pub struct Guard {
    pub read: Vec<GuardRead>,
    /// An expression that must give `true` for the rollback to run.
    pub holds: String,
    /// Chat text for people when the rollback is held.
    pub otherwise: String,
}

/// One read-only step of a guard.
#[derive(Clone, Debug)]
pub struct GuardRead {
    /// As written: its output is `steps.<name>`.
    pub name: String,
    /// Recorded as `guard:<step>:<name>`: a `:` is in no step id, so it
    /// cannot collide with one, nor with `rollback:` or `approval:` rows.
    pub step: Step,
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

    pub fn verify_steps(&self) -> &[Step] {
        self.verify.as_ref().map_or(&[], |v| &v.steps)
    }

    /// The targets its `http` steps call and the runbooks its `runbook`
    /// steps call, verify steps, rollbacks and their guards' reads
    /// included: what a run may reach.
    pub fn reaches(&self) -> Reaches {
        let mut out = Reaches::default();
        let mut note = |s: &Step| {
            let name = |k: &str| s.with.get(k).and_then(Json::as_str).map(str::to_owned);
            match s.action.as_str() {
                "http" => out.targets.extend(name("target")),
                "runbook" => out.runbooks.extend(name("runbook")),
                _ => {}
            }
        };
        for s in self.steps.iter().chain(self.verify_steps()) {
            note(s);
            if let Some(undo) = &s.rollback {
                note(undo);
                for r in undo.guard.iter().flat_map(|g| &g.read) {
                    note(&r.step);
                }
            }
        }
        out
    }
}

/// What a runbook's steps call, by name (see [`Runbook::reaches`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reaches {
    pub targets: std::collections::BTreeSet<String>,
    pub runbooks: std::collections::BTreeSet<String>,
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
    verify: Option<Sp<RawVerify>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    steps: Sp<Vec<Sp<RawStep>>>,
    on_failure: Option<VerifyFailure>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproval {
    role: Option<Sp<String>>,
    #[serde(default)]
    users: Vec<String>,
    timeout: Option<Sp<String>>,
    on_timeout: Option<OnTimeout>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    runs: u32,
    per: Sp<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    attempts: Option<u32>,
    backoff: Option<Sp<String>>,
    max_backoff: Option<Sp<String>>,
}

/// A compensating action: a step without an id, condition or policy of
/// its own (it belongs to the step it undoes).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRollback {
    action: Sp<String>,
    #[serde(default)]
    with: Option<Sp<Json>>,
    timeout: Option<Sp<String>>,
    #[serde(default)]
    retries: Option<Sp<RawRetries>>,
    guard: Option<Sp<RawGuard>>,
}

/// `holds` and `otherwise` are required, but read as optional so that
/// every missing one is reported with the rest.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGuard {
    read: Option<Sp<Vec<Sp<RawRead>>>>,
    holds: Option<Sp<String>>,
    otherwise: Option<Sp<String>>,
}

/// A guard's read: a step that can only look, so it has no condition,
/// approval, failure policy or rollback of its own (a failed read holds
/// the rollback).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRead {
    id: Sp<String>,
    action: Sp<String>,
    #[serde(default)]
    with: Option<Sp<Json>>,
    timeout: Option<Sp<String>>,
    #[serde(default)]
    retries: Option<Sp<RawRetries>>,
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
    default: Option<Sp<Json>>,
    #[serde(default)]
    description: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    concurrency_key: Option<Sp<String>>,
    cooldown: Option<Sp<String>>,
    approval: Option<Sp<RawApproval>>,
    budget: Option<Sp<RawBudget>>,
    retry: Option<Sp<RawRetry>>,
    expected_duration: Option<Sp<String>>,
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
    approval: Option<Sp<RawApproval>>,
    rollback: Option<Sp<RawRollback>>,
    /// Only valid under `rollback`; read here to say so.
    guard: Option<Sp<Json>>,
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
const DEFAULT_APPROVAL_TIMEOUT: PromDuration = PromDuration::from_secs(10 * 60);

struct Check<'a> {
    c: Collector<'a>,
    templates: &'a Templates,
    fixture: &'a literals::Fixture,
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
    /// Guard reads, by name, with the step whose rollback they guard:
    /// readable only inside that guard and its rollback.
    guard_reads: &'a BTreeMap<String, String>,
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
                Some(id) if self.guard_reads.contains_key(id) => Some(format!(
                    "step `{id}` is a read of the guard on `{}`'s rollback; only that guard's later reads, `holds` and `otherwise`, and that rollback, can read it",
                    self.guard_reads[id]
                )),
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
        fixture: env.fixture,
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
    let mut guard_reads: BTreeMap<String, String> = BTreeMap::new();
    for s in &raw.steps.value {
        let reads = s.value.rollback.iter().flat_map(|r| &r.value.guard);
        for read in reads.flat_map(|g| &g.value.read).flat_map(|l| &l.value) {
            guard_reads.insert(read.value.id.value.clone(), s.value.id.value.clone());
        }
    }
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
                guard_reads: &guard_reads,
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
            && let Some(why) = d.value.as_str().and_then(|v| c.fixture.warning(v))
        {
            c.warn(Pos::of(d), format!("{field}.default"), why);
        }
        if let Some(d) = r.default.as_ref().map(|d| &d.value)
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
            default: r.default.as_ref().map(|d| d.value.clone()),
            description: r.description.clone(),
        });
    }

    let no_steps: [String; 0] = [];
    let key_scope = Scope {
        inputs: &input_names,
        earlier_steps: &no_steps,
        all_steps: &step_ids,
        only_alert: false,
        guard_reads: &guard_reads,
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
    let verify_raw = raw.verify.as_ref().map(|v| &v.value);
    // Ids are unique across the steps and the verify steps: both are
    // readable as `steps.<id>`, and both are keys in the store.
    let all_ids: Vec<String> = step_ids
        .iter()
        .cloned()
        .chain(
            verify_raw
                .iter()
                .flat_map(|v| v.steps.value.iter().map(|s| s.value.id.value.clone())),
        )
        // Last, so that slices of the steps and verify steps stay as they
        // are; here for the hints of unknown references.
        .chain(guard_reads.keys().cloned())
        .collect();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut steps = Vec::new();
    for (i, sp) in raw.steps.value.iter().enumerate() {
        let field = format!("steps[{i}]");
        check_id(&mut c, &sp.value.id, &field, &mut seen);
        let scope = Scope {
            inputs: &input_names,
            earlier_steps: &step_ids[..i],
            all_steps: &all_ids,
            only_alert: false,
            guard_reads: &guard_reads,
        };
        let mut step = check_step(&mut c, env, sp, &field, &scope);
        if let Some(rb) = &sp.value.rollback {
            let r = &rb.value;
            // A rollback reads what its own step produced (the room it
            // created, say) and anything before it, and what its guard
            // read.
            let mut readable = step_ids[..=i].to_vec();
            let guard = r.guard.as_ref().map(|g| {
                let base = Scope {
                    inputs: &input_names,
                    earlier_steps: &readable,
                    all_steps: &all_ids,
                    only_alert: false,
                    guard_reads: &guard_reads,
                };
                let field = format!("{field}.rollback.guard");
                check_guard(&mut c, env, g, &sp.value.id.value, &field, &base, &mut seen)
            });
            readable.extend(
                guard
                    .iter()
                    .flat_map(|g| g.read.iter().map(|r| r.name.clone())),
            );
            let scope = Scope {
                inputs: &input_names,
                earlier_steps: &readable,
                all_steps: &all_ids,
                only_alert: false,
                guard_reads: &guard_reads,
            };
            let parts = StepParts {
                id: format!("rollback:{}", sp.value.id.value),
                action: &r.action,
                with: r.with.as_ref(),
                when: None,
                timeout: r.timeout.as_ref(),
                retries: r.retries.as_ref(),
                on_failure: None,
                approval: None,
                pos: Pos::of(rb),
            };
            let mut undo = check_parts(&mut c, env, parts, &format!("{field}.rollback"), &scope);
            undo.guard = guard;
            step.rollback = Some(Box::new(undo));
        }
        steps.push(step);
    }
    let verify = verify_raw.map(|v| {
        if v.steps.value.is_empty() {
            c.err(
                Pos::of(&v.steps),
                "verify.steps",
                "verify needs at least one step (for example a `wait` with `until`)",
            );
        }
        let mut vsteps = Vec::new();
        for (i, sp) in v.steps.value.iter().enumerate() {
            let field = format!("verify.steps[{i}]");
            check_id(&mut c, &sp.value.id, &field, &mut seen);
            if sp.value.rollback.is_some() {
                c.err(
                    Pos::of(sp),
                    format!("{field}.rollback"),
                    "verify steps only check; put rollbacks on the steps that act",
                );
            }
            let scope = Scope {
                inputs: &input_names,
                earlier_steps: &all_ids[..step_ids.len() + i],
                all_steps: &all_ids,
                only_alert: false,
                guard_reads: &guard_reads,
            };
            vsteps.push(check_step(&mut c, env, sp, &field, &scope));
        }
        Verify {
            steps: vsteps,
            on_failure: v.on_failure.unwrap_or(VerifyFailure::Rollback),
        }
    });
    let approval = raw
        .policy
        .approval
        .as_ref()
        .map(|a| check_approval(&mut c, a, "policy.approval"));
    let budget = raw.policy.budget.as_ref().map(|b| {
        if b.value.runs == 0 {
            c.err(
                Pos::of(b),
                "policy.budget.runs",
                "a budget of 0 runs means the runbook never runs automatically; use `trigger.manual` alone instead",
            );
        }
        let per = c.duration(
            Some(&b.value.per),
            "policy.budget.per",
            PromDuration::from_secs(3600),
        );
        if per.is_zero() {
            c.err(
                Pos::of(&b.value.per),
                "policy.budget.per",
                "must be greater than 0s",
            );
        }
        Budget {
            runs: b.value.runs,
            per,
        }
    });
    let retry = match raw.policy.retry.as_ref() {
        None => RetryPolicy::default(),
        Some(r) => {
            let d = RetryPolicy::default();
            let backoff = c.duration(r.value.backoff.as_ref(), "policy.retry.backoff", d.backoff);
            let max_backoff = c.duration(
                r.value.max_backoff.as_ref(),
                "policy.retry.max_backoff",
                d.max_backoff.max(backoff),
            );
            if let Some(b) = &r.value.backoff
                && backoff.is_zero()
            {
                c.err(
                    Pos::of(b),
                    "policy.retry.backoff",
                    "must be greater than 0s: trying again at once only hammers a target that is already failing",
                );
            }
            if max_backoff < backoff {
                c.err(
                    Pos::of(r),
                    "policy.retry.max_backoff",
                    format!("{max_backoff} is shorter than backoff ({backoff})"),
                );
            }
            RetryPolicy {
                attempts: r.value.attempts.unwrap_or(d.attempts),
                backoff,
                max_backoff,
            }
        }
    };

    let expected_duration = raw.policy.expected_duration.as_ref().map(|d| {
        c.duration(
            Some(d),
            "policy.expected_duration",
            PromDuration::from_secs(0),
        )
    });
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
        approval,
        budget,
        retry,
        expected_duration,
        steps,
        verify,
        digest: format!("{:016x}", crate::labels::fnv(text.as_bytes())),
        callees: BTreeMap::new(),
        warnings: Diagnostics::new(),
    };
    if c.c.out.is_empty() {
        Ok(Runbook {
            warnings: c.c.warnings,
            ..rb
        })
    } else {
        let mut all = c.c.out;
        all.extend(c.c.warnings);
        Err(all)
    }
}

fn check_id<'r>(c: &mut Check, id: &'r Sp<String>, field: &str, seen: &mut BTreeSet<&'r str>) {
    let v = &id.value;
    if !valid_name(v) && !v.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') {
        c.err(
            Pos::of(id),
            format!("{field}.id"),
            format!("invalid step id {v:?}; use letters, digits and underscores"),
        );
    }
    if !seen.insert(v) {
        c.err(
            Pos::of(id),
            format!("{field}.id"),
            format!("duplicate step id {v:?}"),
        );
    }
}

fn check_approval(c: &mut Check, a: &Sp<RawApproval>, field: &str) -> Approval {
    let r = &a.value;
    let role = match &r.role {
        None => Role::Commander,
        Some(sp) => Role::parse(&sp.value).unwrap_or_else(|| {
            let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            c.err(
                Pos::of(sp),
                format!("{field}.role"),
                format!(
                    "unknown role {:?}; expected one of: {}",
                    sp.value,
                    one_of(&names)
                ),
            );
            Role::Commander
        }),
    };
    let timeout = c.duration(
        r.timeout.as_ref(),
        &format!("{field}.timeout"),
        DEFAULT_APPROVAL_TIMEOUT,
    );
    if timeout.is_zero() {
        c.err(
            r.timeout.as_ref().and_then(Pos::of),
            format!("{field}.timeout"),
            "must be greater than 0s",
        );
    }
    // By id only, as `chat.roles`: anyone can take a name, so a name here
    // would let whoever renamed themselves to it approve.
    for u in r.users.iter().filter(|u| !crate::roles::is_user_id(u)) {
        c.err(
            Pos::of(a),
            format!("{field}.users"),
            format!(
                "{u:?} is not a Slack user id; approvers are listed by member id (`U...`, in the person's Slack profile under ⋮ → Copy member ID), never by name, since anyone can change their name"
            ),
        );
    }
    Approval {
        role,
        users: r.users.clone(),
        timeout,
        on_timeout: r.on_timeout.unwrap_or(OnTimeout::Abort),
    }
}

/// The parts of a step or a rollback that [`check_parts`] validates.
struct StepParts<'r> {
    id: String,
    action: &'r Sp<String>,
    with: Option<&'r Sp<Json>>,
    when: Option<&'r Sp<String>>,
    timeout: Option<&'r Sp<String>>,
    retries: Option<&'r Sp<RawRetries>>,
    on_failure: Option<OnFailure>,
    approval: Option<&'r Sp<RawApproval>>,
    pos: Option<Pos>,
}

fn check_step(c: &mut Check, env: &CheckEnv, sp: &Sp<RawStep>, field: &str, scope: &Scope) -> Step {
    let r = &sp.value;
    if let Some(g) = &r.guard {
        c.err(
            Pos::of(g),
            format!("{field}.guard"),
            "a guard decides whether a rollback runs, so it goes under `rollback:`; a step that should only run sometimes takes `when`",
        );
    }
    let parts = StepParts {
        id: r.id.value.clone(),
        action: &r.action,
        with: r.with.as_ref(),
        when: r.when.as_ref(),
        timeout: r.timeout.as_ref(),
        retries: r.retries.as_ref(),
        on_failure: r.on_failure,
        approval: r.approval.as_ref(),
        pos: Pos::of(sp),
    };
    check_parts(c, env, parts, field, scope)
}

fn check_parts(c: &mut Check, env: &CheckEnv, r: StepParts, field: &str, scope: &Scope) -> Step {
    let with = r
        .with
        .map_or(Json::Object(Default::default()), |w| w.value.clone());
    let with_pos = r.with.and_then(Pos::of).or(r.pos);
    let spec = match env.actions.find(&r.action.value) {
        None => {
            let names = env.actions.names();
            let hint = did_you_mean(&r.action.value, &names)
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            c.err(
                Pos::of(r.action),
                format!("{field}.action"),
                format!(
                    "unknown action {:?}{hint}; expected one of: {}",
                    r.action.value,
                    one_of(&names)
                ),
            );
            &spec::Unknown as &'static dyn ActionSpec
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
            for (name, lang) in action.langs() {
                let src = with.get(*name).and_then(Json::as_str).unwrap_or_default();
                let warnings = match lang {
                    template::Lang::Promql => template::promql_string_warnings(src),
                    template::Lang::Matchers => template::matcher_warnings(src),
                    template::Lang::UrlPath => Vec::new(),
                };
                for why in warnings {
                    c.warn(with_pos, format!("{field}.with.{name}"), why);
                }
            }
            action
        }
    };
    let mut named = Vec::new();
    c.fixture
        .in_with(&with, &format!("{field}.with"), &mut named);
    for (f, why) in named {
        c.warn(with_pos, f, why);
    }
    let mut strings = Vec::new();
    Templates::strings_in(&with, &format!("{field}.with"), &mut strings);
    for (f, s) in strings {
        c.template(&s, false, with_pos, &f, scope);
    }
    if let Some(w) = r.when {
        for why in literals::quoted(&w.value)
            .iter()
            .filter_map(|l| c.fixture.warning(l))
        {
            c.warn(Pos::of(w), format!("{field}.when"), why);
        }
        c.template(&w.value, true, Pos::of(w), &format!("{field}.when"), scope);
    }
    // A step that waits (a `wait`, an approval's deadline) must be given
    // longer than it waits: by default it is, and a timeout set shorter is
    // a mistake that would fail every run.
    let waits_for = match spec.lasts(&with) {
        Lasts::Briefly => None,
        Lasts::For(d) => Some(Some(d)),
        Lasts::Unknown => Some(None),
    };
    let default_timeout = match waits_for {
        Some(Some(d)) => PromDuration::from_millis(d.as_millis() + WAIT_TIMEOUT_MARGIN.as_millis()),
        Some(None) => TEMPLATED_WAIT_TIMEOUT,
        None => DEFAULT_STEP_TIMEOUT,
    };
    let timeout = c.duration(r.timeout, &format!("{field}.timeout"), default_timeout);
    if let (Some(Some(d)), Some(t)) = (waits_for, r.timeout)
        && timeout <= d
    {
        c.err(Pos::of(t), format!("{field}.timeout"), format!("timeout {timeout} is not longer than the wait ({d}); leave it out or make it longer"));
    }
    if timeout.is_zero() {
        c.err(
            r.timeout.and_then(Pos::of),
            format!("{field}.timeout"),
            "must be greater than 0s",
        );
    }
    let (retries, backoff) = match r.retries {
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
    let approval = r
        .approval
        .map(|a| check_approval(c, a, &format!("{field}.approval")));
    Step {
        id: r.id,
        action: r.action.value.clone(),
        spec,
        with,
        when: r.when.map(|w| w.value.clone()),
        timeout,
        retries,
        backoff,
        on_failure: r.on_failure.unwrap_or(OnFailure::Abort),
        approval,
        rollback: None,
        guard: None,
        pos: r.pos,
    }
}

/// What a guard's read may do: look, never act, since acting could change
/// the state the guard is there to judge. What exists that only looks:
/// `query`, and `http` GET (its default method).
const READ_ONLY: &str = "a guard only reads: `http` with method GET, or `query`";

/// Checks a rollback's guard; `base` is what the rollback may read
/// without it. Each read may read the ones before it; `holds` and
/// `otherwise` read them all.
fn check_guard<'r>(
    c: &mut Check,
    env: &CheckEnv,
    g: &'r Sp<RawGuard>,
    step: &str,
    field: &str,
    base: &Scope,
    seen: &mut BTreeSet<&'r str>,
) -> Guard {
    let r = &g.value;
    let raw_reads = r.read.as_ref().map_or(&[][..], |l| l.value.as_slice());
    if raw_reads.is_empty() {
        c.err(
            r.read.as_ref().and_then(Pos::of).or(Pos::of(g)),
            format!("{field}.read"),
            "a guard judges the platform as it is when the rollback is due: give at least one `read` step",
        );
    }
    let mut earlier = base.earlier_steps.to_vec();
    let mut read = Vec::new();
    for (j, sp) in raw_reads.iter().enumerate() {
        let f = format!("{field}.read[{j}]");
        let rr = &sp.value;
        check_id(c, &rr.id, &f, seen);
        check_read_only(c, env, rr, &f);
        let scope = Scope {
            earlier_steps: &earlier,
            ..*base
        };
        let parts = StepParts {
            id: format!("guard:{step}:{}", rr.id.value),
            action: &rr.action,
            with: rr.with.as_ref(),
            when: None,
            timeout: rr.timeout.as_ref(),
            retries: rr.retries.as_ref(),
            on_failure: None,
            approval: None,
            pos: Pos::of(sp),
        };
        let s = check_parts(c, env, parts, &f, &scope);
        read.push(GuardRead {
            name: rr.id.value.clone(),
            step: s,
        });
        earlier.push(rr.id.value.clone());
    }
    let scope = Scope {
        earlier_steps: &earlier,
        ..*base
    };
    let mut text = |src: &Option<Sp<String>>, name: &str, is_expr: bool, what: &str| {
        let f = format!("{field}.{name}");
        match src {
            None => {
                c.err(
                    Pos::of(g),
                    f,
                    format!("missing; a guard needs `{name}`: {what}"),
                );
                String::new()
            }
            Some(sp) => {
                c.template(&sp.value, is_expr, Pos::of(sp), &f, &scope);
                sp.value.clone()
            }
        }
    };
    let holds = text(
        &r.holds,
        "holds",
        true,
        "an expression over what the reads found, true when the state the rollback returns to is better than the one it leaves",
    );
    let otherwise = text(
        &r.otherwise,
        "otherwise",
        false,
        "what to tell people, with the numbers, when the rollback is held",
    );
    if let Some(h) = &r.holds {
        for why in literals::quoted(&h.value)
            .iter()
            .filter_map(|l| c.fixture.warning(l))
        {
            c.warn(Pos::of(h), format!("{field}.holds"), why);
        }
    }
    Guard {
        read,
        holds,
        otherwise,
    }
}

fn check_read_only(c: &mut Check, env: &CheckEnv, r: &RawRead, field: &str) {
    // An unknown action is reported as such by the step's own check.
    let Some(spec) = env.actions.find(&r.action.value) else {
        return;
    };
    let with = r.with.as_ref();
    let params = with.map_or(Json::Null, |w| w.value.clone());
    match spec.reads(&params) {
        Reads::Only => {}
        Reads::NotWith { field: f, why } => c.err(
            with.and_then(Pos::of),
            format!("{field}.with.{f}"),
            format!("{why}; {READ_ONLY}"),
        ),
        Reads::No => c.err(
            Pos::of(&r.action),
            format!("{field}.action"),
            format!("`{}` is not a read; {READ_ONLY}", r.action.value),
        ),
    }
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
    // Calls are checked even when another file failed, so one run of
    // `validate` shows every problem; a call to a runbook that failed to
    // load reads as a call to one that does not exist.
    errs.extend(calls::check(&out));
    errs.into_result(())?;
    Ok(calls::link(out))
}

pub(crate) fn valid_name(s: &str) -> bool {
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
