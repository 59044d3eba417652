//! Dispatch: which runbooks start for a firing alert, with what inputs,
//! and whether policy lets them.
//!
//! Pure model: the control loop owns one [`Dispatcher`] and feeds it alerts
//! and run ends with `now`. Policy, in the order it is checked:
//! 1. a global pause stops every automatic start;
//! 2. one run per (runbook, concurrency key) at a time: a second alert for
//!    the same event joins the run in progress instead of starting another;
//! 3. a cooldown after a run started for that key;
//! 4. the runbook's budget: at most N runs per key within a window. Starts
//!    are restored from the store at startup ([`Dispatcher::restore`]), so
//!    a restart resets neither the budget nor the cooldown;
//! 5. a run that failed on a passing fault (a timeout, a refused
//!    connection, a 5xx, a 429) before changing anything did not happen,
//!    as far as rules 3 and 4 go: the platform is as it was, so a
//!    mitigation is still wanted. It is tried again after the runbook's
//!    `retry` backoff, doubling, at most `retry.attempts` times in a row
//!    ([`Dispatcher::finished`] says when; the caller checks that the
//!    alert still fires and asks [`Dispatcher::retry`]). A run that
//!    changed something, or failed for a reason that will not pass by
//!    itself, counts like any other and is not tried again: what to do
//!    next is then a decision for the next alert or a person;
//! 6. time: an alert that states its predicted breach (the annotation
//!    [`TIME_TO_BREACH`]) is weighed against how long each runbook takes
//!    to take effect, measured on its last runs ([`Dispatcher::took_effect`])
//!    or, until then, as its author expects (`policy.expected_duration`).
//!    When one that would start can take effect in time, those that
//!    cannot are not started ([`Decision::TooSlow`]); when none can, all
//!    start anyway (nothing faster exists) and each plan says it is
//!    [`Late`], so the caller pages people at once. A runbook of unknown
//!    duration is neither preferred nor passed over;
//! 7. a cooldown gives way to a breach that comes before it ends: when
//!    the alert predicts its breach (the same annotation) sooner than the
//!    cooldown of rule 3 runs out, the runbook may start again, because
//!    waiting out the cooldown would mean watching the breach happen. The
//!    run reads the platform afresh and decides what fits now (a second
//!    move, a split, a cap); the plan says it overrode a cooldown
//!    ([`Plan::cooldown_overridden`]) so people are told. Rules 1, 2 and 4
//!    still hold: a budget that is spent is spent.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::duration::Millis;
use crate::duration::PromDuration;
use crate::runbook::template::Templates;
use crate::runbook::{Runbook, coerce};

pub use crate::runbook::AlertCtx;

#[derive(Clone, Debug)]
pub struct Plan {
    pub runbook: Arc<Runbook>,
    pub concurrency_key: String,
    pub inputs: BTreeMap<String, Json>,
    /// Rule 6: no runbook for the alert can take effect before its
    /// predicted breach, this one included.
    pub late: Option<Late>,
    /// Rule 7: the cooldown this start overrode, and why.
    pub cooldown_overridden: Option<CooldownOverride>,
}

/// A start within a cooldown because the breach comes first (rule 7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CooldownOverride {
    pub breach_in: Millis,
    pub cooldown_left: Millis,
}

impl CooldownOverride {
    /// "predicts its breach in 2m, before the cooldown's 11m30s are over".
    pub fn text(&self) -> String {
        format!(
            "the breach is predicted in {}, before the {} of cooldown left are over",
            crate::human::duration(self.breach_in),
            crate::human::duration(self.cooldown_left)
        )
    }
}

/// How late a mitigation will be (rule 6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Late {
    pub breach_in: Millis,
    pub takes: Millis,
    /// The runs `takes` was measured on; 0 when it is the runbook's own
    /// `expected_duration`.
    pub measured: usize,
}

impl Late {
    /// "about 2m10s (the slowest of its last 3 runs)".
    pub fn takes_text(&self) -> String {
        takes_text(self.takes, self.measured)
    }
}

fn takes_text(ms: Millis, measured: usize) -> String {
    let d = crate::human::duration(ms);
    match measured {
        0 => format!("about {d} (its expected_duration; not measured yet)"),
        1 => format!("about {d} (measured on its last run)"),
        n => format!("about {d} (the slowest of its last {n} runs)"),
    }
}

#[derive(Clone, Debug)]
pub enum Decision {
    Start(Plan),
    Skip {
        runbook: String,
        reason: String,
    },
    /// Rule 6: another runbook for the alert takes effect in time and
    /// this one would not. People are told, as it is a choice.
    TooSlow {
        runbook: String,
        reason: String,
    },
}

/// The annotation with which an alert states when it predicts the harm:
/// seconds from its evaluation (`285`, `-3` for already), or a duration
/// (`4m45s`).
pub const TIME_TO_BREACH: &str = "time_to_breach";

/// A deadline further away than this is no deadline to plan against.
const MAX_BREACH: Millis = 24 * 3600 * 1000;

/// Measured durations kept per runbook; the slowest of them is used.
const TIMINGS_KEPT: usize = 10;

/// The predicted breach an alert states (rule 6), if it states a usable
/// one. Alert data is hostile: anything long, not a number or a duration,
/// or not finite is no deadline.
pub fn time_to_breach(alert: &AlertCtx) -> Option<Millis> {
    let raw = alert.annotations.get(TIME_TO_BREACH)?.trim();
    if raw.is_empty() || raw.len() > 32 {
        return None;
    }
    let ms = match raw.parse::<f64>() {
        Ok(secs) if secs.is_finite() => {
            (secs.clamp(0.0, (MAX_BREACH / 1000) as f64) * 1000.0) as i64
        }
        Ok(_) => return None,
        Err(_) => PromDuration::parse(raw).ok()?.as_millis() as i64,
    };
    Some(ms.min(MAX_BREACH))
}

/// What follows the end of a run (rule 5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterRun {
    Nothing,
    /// Try again at `at` while the alert still fires: try `attempt` of
    /// `of` tries again.
    Retry {
        at: Millis,
        attempt: u32,
        of: u32,
    },
    /// `attempts` tries again changed nothing either: no more.
    GaveUp {
        attempts: u32,
    },
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Pause {
    pub by: String,
    pub reason: String,
    pub since: Millis,
}

type Key = (String, String);

/// A run in progress.
struct Active {
    run: String,
    /// When this process started it; `None` for a run resumed after a
    /// restart, whose start was restored with the others.
    started_at: Option<Millis>,
    /// The key's latest start before this run, put back if the run turns
    /// out to have changed nothing (rule 5).
    prev_last: Option<Millis>,
}

pub struct Dispatcher {
    runbooks: Vec<Arc<Runbook>>,
    active: HashMap<Key, Active>,
    /// Runs in a row per key that changed nothing (rule 5).
    streak: HashMap<Key, u32>,
    last_start: HashMap<Key, Millis>,
    /// Start times per key, pruned to the longest budget window.
    starts: HashMap<Key, Vec<Millis>>,
    paused: Option<Pause>,
    templates: Templates,
    /// How long each runbook's recent successful runs took to take
    /// effect, newest last (rule 6).
    timings: HashMap<String, VecDeque<Millis>>,
}

/// Why a runbook cannot be started by hand now.
#[derive(Debug, thiserror::Error)]
pub enum StartRefused {
    #[error(transparent)]
    Plan(#[from] crate::runbook::plan::PlanError),
    #[error(
        "runbook {0} cannot be started by hand: it does not say `manual: true` under `trigger:`"
    )]
    NotManual(String),
    #[error("concurrency key: {0}")]
    ConcurrencyKey(String),
    #[error("run {run} is already handling {key}")]
    Busy { run: String, key: String },
    /// Rule 4's budget, as it explains itself.
    #[error("{0}")]
    BudgetSpent(String),
}

impl Dispatcher {
    /// `runbooks` must already be in dispatch order (see [`crate::runbook`]).
    pub fn new(runbooks: Vec<Arc<Runbook>>, paused: Option<Pause>) -> Self {
        Dispatcher {
            runbooks,
            active: HashMap::new(),
            streak: HashMap::new(),
            last_start: HashMap::new(),
            starts: HashMap::new(),
            paused,
            templates: Templates::new(),
            timings: HashMap::new(),
        }
    }

    /// A reload: from now on alerts match `runbooks` (in dispatch order).
    /// What is running, cooldowns and budgets are kept by name, so a
    /// reload neither restarts a mitigation nor resets its budget.
    pub fn replace_runbooks(&mut self, runbooks: Vec<Arc<Runbook>>) {
        self.runbooks = runbooks;
    }

    pub fn runbooks(&self) -> &[Arc<Runbook>] {
        &self.runbooks
    }

    pub fn paused(&self) -> Option<&Pause> {
        self.paused.as_ref()
    }

    pub fn pause(&mut self, p: Pause) {
        self.paused = Some(p);
    }

    pub fn resume(&mut self) -> Option<Pause> {
        self.paused.take()
    }

    /// Runs in progress: (runbook, concurrency key) -> run id.
    pub fn active(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.active
            .iter()
            .map(|((rb, k), a)| (rb.as_str(), k.as_str(), a.run.as_str()))
    }

    /// Decides what a firing alert starts. The caller must report each
    /// `Start` it acts on with [`Dispatcher::started`].
    pub fn on_firing(&self, alert: &AlertCtx, now: Millis) -> Vec<Decision> {
        let labels: crate::labels::Labels = alert.labels.clone().into();
        let mut out = Vec::new();
        for rb in self.runbooks.iter().filter(|rb| rb.matches_alert(&labels)) {
            out.push(self.decide(rb, alert, now));
        }
        if let Some(breach_in) = time_to_breach(alert) {
            self.against_deadline(&mut out, breach_in);
        }
        out
    }

    /// Rule 6.
    fn against_deadline(&self, out: &mut [Decision], breach_in: Millis) {
        let takes: Vec<Option<(Millis, usize)>> = out
            .iter()
            .map(|d| match d {
                Decision::Start(p) => self.expected(&p.runbook),
                _ => None,
            })
            .collect();
        let mut in_time = Vec::new();
        let mut unknown = false;
        for (d, t) in out.iter().zip(&takes) {
            if let Decision::Start(p) = d {
                match t {
                    Some((ms, _)) if *ms <= breach_in => in_time.push(p.runbook.name.clone()),
                    Some(_) => {}
                    None => unknown = true,
                }
            }
        }
        let left = crate::human::duration(breach_in);
        for (d, t) in out.iter_mut().zip(takes) {
            let (Decision::Start(p), Some((ms, measured))) = (&mut *d, t) else {
                continue;
            };
            if ms <= breach_in {
                continue;
            }
            if !in_time.is_empty() {
                *d = Decision::TooSlow {
                    runbook: p.runbook.name.clone(),
                    reason: format!(
                        "it takes {} to take effect, more than the {left} left before the predicted breach; {} can take effect in time",
                        takes_text(ms, measured),
                        in_time
                            .iter()
                            .map(|n| format!("*{n}*"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
            } else if !unknown {
                p.late = Some(Late {
                    breach_in,
                    takes: ms,
                    measured,
                });
            }
        }
    }

    /// How long `rb` takes to take effect, and on how many runs that was
    /// measured (0: the runbook's own estimate).
    fn expected(&self, rb: &Runbook) -> Option<(Millis, usize)> {
        match self.timings.get(&rb.name) {
            Some(v) if !v.is_empty() => Some((v.iter().copied().max()?, v.len())),
            _ => rb.expected_duration.map(|d| (d.as_millis() as i64, 0)),
        }
    }

    /// A run of `runbook` took `ms` from its start to the end of its last
    /// step (before verification). Fed by the caller for runs that
    /// succeeded, from the store at startup too.
    pub fn took_effect(&mut self, runbook: &str, ms: Millis) {
        let v = self.timings.entry(runbook.to_owned()).or_default();
        v.push_back(ms.max(0));
        while v.len() > TIMINGS_KEPT {
            v.pop_front();
        }
    }

    fn decide(&self, rb: &Arc<Runbook>, alert: &AlertCtx, now: Millis) -> Decision {
        let skip = |reason: String| Decision::Skip {
            runbook: rb.name.clone(),
            reason,
        };
        if let Some(p) = &self.paused {
            return skip(format!("automation is paused by {} ({})", p.by, p.reason));
        }
        let inputs = match self.inputs_from_alert(rb, alert) {
            Ok(i) => i,
            Err(e) => return skip(e),
        };
        let ctx = json!({"alert": alert, "inputs": inputs});
        let key = match self.templates.render_str(&rb.concurrency_key, &ctx) {
            Ok(k) => k,
            Err(e) => return skip(format!("concurrency key: {}", e.message)),
        };
        let k = (rb.name.clone(), key.clone());
        if let Some(a) = self.active.get(&k) {
            return skip(format!("run {} is already handling {key}", a.run));
        }
        let mut cooldown_overridden = None;
        if let Some(last) = self.last_start.get(&k) {
            let until = last + rb.cooldown.as_millis() as i64;
            if now < until {
                match time_to_breach(alert) {
                    Some(breach_in) if now + breach_in < until => {
                        cooldown_overridden = Some(CooldownOverride {
                            breach_in,
                            cooldown_left: until - now,
                        });
                    }
                    _ => {
                        return skip(format!(
                            "in cooldown for {key} for another {}s",
                            (until - now + 999) / 1000
                        ));
                    }
                }
            }
        }
        if let Some(why) = self.budget_spent(rb, &k, now) {
            return skip(why);
        }
        Decision::Start(Plan {
            runbook: rb.clone(),
            concurrency_key: key,
            inputs,
            late: None,
            cooldown_overridden,
        })
    }

    /// Why the runbook's budget for key `k` allows no start at `now`.
    fn budget_spent(&self, rb: &Runbook, k: &Key, now: Millis) -> Option<String> {
        let b = rb.budget?;
        let window = b.per.as_millis() as i64;
        let recent: Vec<Millis> = self
            .starts
            .get(k)
            .map(|v| v.iter().copied().filter(|t| now - t < window).collect())
            .unwrap_or_default();
        if recent.len() < b.runs as usize {
            return None;
        }
        let next = recent.iter().min().copied().unwrap_or(now) + window;
        Some(format!(
            "budget spent for {}: {} run(s) in the last {}; the next is allowed in {}s",
            k.1,
            recent.len(),
            b.per,
            (next - now + 999) / 1000
        ))
    }

    /// A start by hand (`run RUNBOOK key=value...`): the runbook must say
    /// `manual: true`, the inputs given are typed and checked like the
    /// runbook declares them, and one run per concurrency key and the
    /// budget hold as for alerts. Pause does not apply (it stops automatic
    /// starts; a person starting a run has decided), nor does the
    /// cooldown, which exists to stop automation repeating itself. The
    /// caller reports the start with [`Dispatcher::started`].
    pub fn manual_start(
        &self,
        name: &str,
        given: &BTreeMap<String, Json>,
        now: Millis,
    ) -> Result<Plan, StartRefused> {
        let rb = crate::runbook::plan::find_runbook(&self.runbooks, name)?;
        let rb = self
            .runbooks
            .iter()
            .find(|r| std::ptr::eq(r.as_ref(), rb))
            .expect("found among these runbooks")
            .clone();
        if !rb.manual {
            return Err(StartRefused::NotManual(rb.name.clone()));
        }
        let inputs: BTreeMap<String, Json> =
            crate::runbook::plan::resolve_inputs(&rb, None, given)?
                .into_iter()
                .map(|(k, (v, _))| (k, v))
                .collect();
        let ctx = json!({"alert": null, "inputs": inputs});
        let key = self
            .templates
            .render_str(&rb.concurrency_key, &ctx)
            .map_err(|e| StartRefused::ConcurrencyKey(e.message))?;
        let k = (rb.name.clone(), key.clone());
        if let Some(a) = self.active.get(&k) {
            return Err(StartRefused::Busy {
                run: a.run.clone(),
                key,
            });
        }
        if let Some(why) = self.budget_spent(&rb, &k, now) {
            return Err(StartRefused::BudgetSpent(why));
        }
        Ok(Plan {
            runbook: rb,
            concurrency_key: key,
            inputs,
            late: None,
            cooldown_overridden: None,
        })
    }

    /// Fills inputs from the alert (`from:`), falling back to defaults.
    pub fn inputs_from_alert(
        &self,
        rb: &Runbook,
        alert: &AlertCtx,
    ) -> Result<BTreeMap<String, Json>, String> {
        let ctx = json!({"alert": alert});
        let mut out = BTreeMap::new();
        for input in &rb.inputs {
            let from = input
                .from
                .as_ref()
                .and_then(|f| self.templates.eval(f, &ctx).ok())
                .filter(|v| !v.is_null());
            let Some(v) = from.or_else(|| input.default.clone()) else {
                return Err(format!(
                    "input `{}` has no value: the alert has no `{}` and there is no default",
                    input.name,
                    input.from.as_deref().unwrap_or("source")
                ));
            };
            let v = coerce(input.ty, v).map_err(|e| format!("input `{}`: {e}", input.name))?;
            out.insert(input.name.clone(), v);
        }
        Ok(out)
    }

    /// A run started afresh (an alert fired, a person asked): a new
    /// streak of tries begins.
    pub fn started(&mut self, runbook: &str, key: &str, run_id: &str, now: Millis) {
        self.streak.remove(&(runbook.to_owned(), key.to_owned()));
        self.retried(runbook, key, run_id, now);
    }

    /// A run started as a try again ([`Dispatcher::retry`]): the streak
    /// goes on.
    pub fn retried(&mut self, runbook: &str, key: &str, run_id: &str, now: Millis) {
        let k = (runbook.to_owned(), key.to_owned());
        let prev_last = self.last_start.get(&k).copied();
        self.active.insert(
            k.clone(),
            Active {
                run: run_id.to_owned(),
                started_at: Some(now),
                prev_last,
            },
        );
        self.record_start(k, now);
    }

    /// Runs in a row for `key` that changed nothing.
    pub fn streak(&self, runbook: &str, key: &str) -> u32 {
        self.streak
            .get(&(runbook.to_owned(), key.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Whether the streak for `key` has used every try again.
    pub fn tries_spent(&self, runbook: &str, key: &str) -> bool {
        let Some(rb) = self.runbooks.iter().find(|r| r.name == runbook) else {
            return true;
        };
        self.streak(runbook, key) > rb.retry.attempts
    }

    /// Decides a try again of `runbook` for `alert` (rule 5): as for a
    /// firing alert, so a pause, a run in progress, a cooldown left by a
    /// run that did act, or a spent budget still stop it.
    pub fn retry(&self, runbook: &str, alert: &AlertCtx, now: Millis) -> Option<Decision> {
        let rb = self.runbooks.iter().find(|r| r.name == runbook)?;
        Some(self.decide(rb, alert, now))
    }

    fn record_start(&mut self, k: Key, at: Millis) {
        let last = self.last_start.entry(k.clone()).or_insert(at);
        *last = (*last).max(at);
        let keep = self
            .runbooks
            .iter()
            .filter_map(|r| r.budget.map(|b| b.per.as_millis() as i64))
            .max()
            .unwrap_or(0);
        let v = self.starts.entry(k).or_default();
        v.push(at);
        v.retain(|t| at - t < keep);
    }

    /// Replays the runs the store remembers (any state, in the order they
    /// started), so cooldowns, budgets and streaks hold across restarts.
    /// `changed_nothing` marks the runs of rule 5.
    pub fn restore<'r>(
        &mut self,
        runs: impl IntoIterator<Item = (&'r str, &'r str, Millis, bool)>,
    ) {
        for (runbook, key, at, changed_nothing) in runs {
            let k = (runbook.to_owned(), key.to_owned());
            if changed_nothing {
                *self.streak.entry(k).or_default() += 1;
            } else {
                self.streak.remove(&k);
                self.record_start(k, at);
            }
        }
    }

    /// A run resumed after a restart is in progress again. What it did
    /// before is not known here, so it counts as having acted.
    pub fn resumed(&mut self, runbook: &str, key: &str, run_id: &str) {
        let k = (runbook.to_owned(), key.to_owned());
        let prev_last = self.last_start.get(&k).copied();
        self.active.insert(
            k,
            Active {
                run: run_id.to_owned(),
                started_at: None,
                prev_last,
            },
        );
    }

    /// A run ended. `changed_nothing`: it failed on a passing fault before
    /// changing anything, so it is forgotten by cooldown and budget, and
    /// the answer says whether and when to try again (rule 5).
    pub fn finished(
        &mut self,
        runbook: &str,
        key: &str,
        changed_nothing: bool,
        now: Millis,
    ) -> AfterRun {
        let k = (runbook.to_owned(), key.to_owned());
        let active = self.active.remove(&k);
        if !changed_nothing {
            self.streak.remove(&k);
            return AfterRun::Nothing;
        }
        if let Some(a) = active {
            self.forget_start(&k, a);
        }
        let Some(rb) = self.runbooks.iter().find(|r| r.name == runbook) else {
            return AfterRun::Nothing;
        };
        let policy = rb.retry;
        let n = self.streak.entry(k).or_default();
        *n += 1;
        if policy.attempts == 0 {
            AfterRun::Nothing
        } else if *n > policy.attempts {
            AfterRun::GaveUp {
                attempts: policy.attempts,
            }
        } else {
            AfterRun::Retry {
                at: now + policy.wait_before(*n).as_millis() as i64,
                attempt: *n,
                of: policy.attempts,
            }
        }
    }

    fn forget_start(&mut self, k: &Key, a: Active) {
        if let Some(at) = a.started_at
            && let Some(v) = self.starts.get_mut(k)
            && let Some(i) = v.iter().position(|t| *t == at)
        {
            v.remove(i);
        }
        match a.prev_last {
            Some(t) => {
                self.last_start.insert(k.clone(), t);
            }
            None => {
                self.last_start.remove(k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::parse_runbook;

    fn rb() -> Arc<Runbook> {
        let text = r#"kind: runbook
name: move
trigger:
  alerts: [{alertname: Full}]
inputs:
  event: {type: string, from: alert.labels.event}
  capacity: {type: integer, from: alert.labels.cap, default: 10}
policy:
  concurrency_key: "{{ inputs.event }}"
  cooldown: 10m
steps:
  - {id: a, action: wait, with: {duration: 1s}}
"#;
        Arc::new(parse_runbook("m.yaml", text, &crate::load::check_env([])).unwrap())
    }

    fn alert(event: &str) -> AlertCtx {
        AlertCtx {
            name: "Full".into(),
            labels: [("alertname", "Full"), ("event", event), ("cap", "250")]
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect(),
            annotations: BTreeMap::new(),
            value: 1.0,
            fired_at: 0,
        }
    }

    #[test]
    fn an_alert_without_a_value_reads_back_from_its_record() {
        let mut a = alert("launch");
        a.value = f64::NAN;
        let text = serde_json::to_string(&a).unwrap();
        assert!(text.contains("\"value\":null"), "{text}");
        let back: AlertCtx = serde_json::from_str(&text).unwrap();
        assert!(back.value.is_nan());
        assert_eq!(back.labels, a.labels);
        let valued: AlertCtx =
            serde_json::from_str(&serde_json::to_string(&alert("x")).unwrap()).unwrap();
        assert_eq!(valued, alert("x"));
    }

    fn start(d: &[Decision]) -> &Plan {
        match d {
            [Decision::Start(p)] => p,
            other => panic!("expected one start, got {other:?}"),
        }
    }

    fn skip(d: &[Decision]) -> &str {
        match d {
            [Decision::Skip { reason, .. }] => reason,
            other => panic!("expected one skip, got {other:?}"),
        }
    }

    #[test]
    fn one_run_per_event_then_cooldown() {
        let mut d = Dispatcher::new(vec![rb()], None);
        let p = start(&d.on_firing(&alert("launch"), 0)).clone();
        assert_eq!(p.concurrency_key, "launch");
        assert_eq!(p.inputs["capacity"], json!(250));
        d.started("move", "launch", "run-1", 0);
        assert!(
            skip(&d.on_firing(&alert("launch"), 1000)).contains("run-1 is already handling launch")
        );
        // Another event is independent.
        start(&d.on_firing(&alert("other"), 1000));
        d.finished("move", "launch", false, 0);
        assert!(skip(&d.on_firing(&alert("launch"), 60_000)).contains("cooldown"));
        start(&d.on_firing(&alert("launch"), 600_000));
    }

    #[test]
    fn a_cooldown_gives_way_only_to_a_breach_that_comes_before_it_ends() {
        let mut d = Dispatcher::new(vec![rb()], None);
        d.started("move", "launch", "run-1", 0);
        d.finished("move", "launch", false, 0);
        let at = |secs: &str| {
            let mut a = alert("launch");
            a.annotations.insert(TIME_TO_BREACH.into(), secs.into());
            a
        };
        // Cooldown of 10m from 0; at 1m, 9m are left.
        let why = skip(&d.on_firing(&at("600"), 60_000)).to_owned();
        assert!(why.contains("cooldown"), "{why}");
        assert!(skip(&d.on_firing(&alert("launch"), 60_000)).contains("cooldown"));
        assert!(skip(&d.on_firing(&at("junk"), 60_000)).contains("cooldown"));
        let p = start(&d.on_firing(&at("120"), 60_000)).clone();
        let o = p
            .cooldown_overridden
            .clone()
            .expect("overrode the cooldown");
        assert_eq!((o.breach_in, o.cooldown_left), (120_000, 540_000));
        assert!(
            o.text().contains("2m") && o.text().contains("9m"),
            "{}",
            o.text()
        );
        // Past the cooldown nothing is overridden.
        let p = start(&d.on_firing(&at("120"), 600_000)).clone();
        assert_eq!(p.cooldown_overridden, None);
        // A run in progress still holds (rule 2).
        d.started("move", "launch", "run-2", 60_000);
        assert!(skip(&d.on_firing(&at("1"), 61_000)).contains("already handling"));
    }

    #[test]
    fn budget_caps_runs_per_key_and_survives_a_restart() {
        let text = r#"kind: runbook
name: move
trigger:
  alerts: [{alertname: Full}]
inputs:
  event: {type: string, from: alert.labels.event}
policy:
  concurrency_key: "{{ inputs.event }}"
  cooldown: 1m
  budget: {runs: 2, per: 1h}
steps:
  - {id: a, action: wait, with: {duration: 1s}}
"#;
        let rb = Arc::new(parse_runbook("m.yaml", text, &crate::load::check_env([])).unwrap());
        let mut d = Dispatcher::new(vec![rb.clone()], None);
        start(&d.on_firing(&alert("launch"), 0));
        d.started("move", "launch", "r1", 0);
        d.finished("move", "launch", false, 0);
        start(&d.on_firing(&alert("launch"), 120_000));
        d.started("move", "launch", "r2", 120_000);
        d.finished("move", "launch", false, 0);
        let why = skip(&d.on_firing(&alert("launch"), 240_000)).to_owned();
        assert!(
            why.contains("budget spent for launch: 2 run(s) in the last 1h"),
            "{why}"
        );
        assert!(why.contains("allowed in 3360s"), "{why}");
        // Another key has its own budget.
        start(&d.on_firing(&alert("other"), 240_000));

        // A new process, told of the same two runs by the store.
        let mut d2 = Dispatcher::new(vec![rb], None);
        d2.restore([
            ("move", "launch", 0, false),
            ("move", "launch", 120_000, false),
        ]);
        assert!(skip(&d2.on_firing(&alert("launch"), 240_000)).contains("budget spent"));
        // An hour after the first, one slot is free again.
        start(&d2.on_firing(&alert("launch"), 3_600_000));
    }

    #[test]
    fn cooldown_survives_a_restart() {
        let mut d = Dispatcher::new(vec![rb()], None);
        d.restore([("move", "launch", 0, false)]);
        assert!(skip(&d.on_firing(&alert("launch"), 60_000)).contains("cooldown"));
        d.resumed("move", "launch", "run-9");
        assert!(
            skip(&d.on_firing(&alert("launch"), 900_000)).contains("run-9 is already handling")
        );
    }

    #[test]
    fn pause_stops_automatic_starts() {
        let mut d = Dispatcher::new(vec![rb()], None);
        d.pause(Pause {
            by: "alice".into(),
            reason: "maintenance".into(),
            since: 0,
        });
        assert!(skip(&d.on_firing(&alert("launch"), 0)).contains("paused by alice (maintenance)"));
        d.resume();
        start(&d.on_firing(&alert("launch"), 0));
    }

    #[test]
    fn a_manual_start_checks_inputs_key_and_budget_but_not_pause() {
        let text = r#"kind: runbook
name: cap
trigger:
  alerts: [{alertname: Full}]
  manual: true
inputs:
  room: {type: string, from: alert.labels.room}
  headroom: {type: number, default: 0.95}
policy:
  concurrency_key: "room/{{ inputs.room }}"
  budget: {runs: 1, per: 1h}
steps:
  - {id: a, action: wait, with: {duration: 1s}}
"#;
        let cap = Arc::new(parse_runbook("c.yaml", text, &crate::load::check_env([])).unwrap());
        let mut d = Dispatcher::new(vec![cap, rb()], None);
        d.pause(Pause {
            by: "alice".into(),
            reason: "drill".into(),
            since: 0,
        });
        let given = |pairs: &[(&str, &str)]| -> BTreeMap<String, Json> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect()
        };
        let p = d
            .manual_start("cap", &given(&[("room", "main"), ("headroom", "0.9")]), 0)
            .unwrap();
        assert_eq!(p.concurrency_key, "room/main");
        assert_eq!(p.inputs["headroom"], json!(0.9));
        let e = d
            .manual_start("cap", &given(&[("headroom", "lots")]), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("input `room` (string) has no value"), "{e}");
        assert!(e.contains("input `headroom`"), "{e}");
        let e = d
            .manual_start("cpa", &given(&[]), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("did you mean \"cap\""), "{e}");
        let e = d
            .manual_start("move", &given(&[("event", "x")]), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not say `manual: true`"), "{e}");

        d.started("cap", "room/main", "cap-1", 0);
        let e = d
            .manual_start("cap", &given(&[("room", "main")]), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cap-1 is already handling room/main"), "{e}");
        d.finished("cap", "room/main", false, 0);
        let e = d
            .manual_start("cap", &given(&[("room", "main")]), 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("budget spent for room/main"), "{e}");
        d.manual_start("cap", &given(&[("room", "side")]), 1)
            .unwrap();
    }

    fn retrying(attempts: Option<u32>) -> Arc<Runbook> {
        let retry = attempts.map_or(String::new(), |n| {
            format!("  retry: {{attempts: {n}, backoff: 10s, max_backoff: 30s}}\n")
        });
        let text = format!(
            r#"kind: runbook
name: move
trigger:
  alerts: [{{alertname: Full}}]
inputs:
  event: {{type: string, from: alert.labels.event}}
policy:
  concurrency_key: "{{{{ inputs.event }}}}"
  cooldown: 15m
  budget: {{runs: 2, per: 1h}}
{retry}steps:
  - {{id: a, action: wait, with: {{duration: 1s}}}}
"#
        );
        Arc::new(parse_runbook("m.yaml", &text, &crate::load::check_env([])).unwrap())
    }

    #[test]
    fn a_run_that_changed_nothing_is_tried_again_with_backoff_until_the_tries_are_spent() {
        let mut d = Dispatcher::new(vec![retrying(Some(3))], None);
        start(&d.on_firing(&alert("launch"), 0));
        d.started("move", "launch", "r1", 0);
        // Failed on a passing fault before acting: no cooldown, no budget.
        let after = d.finished("move", "launch", true, 5_000);
        assert_eq!(
            after,
            AfterRun::Retry {
                at: 15_000,
                attempt: 1,
                of: 3
            }
        );
        assert!(
            d.retry("move", &alert("launch"), 15_000)
                .is_some_and(|x| matches!(x, Decision::Start(_)))
        );
        d.retried("move", "launch", "r2", 15_000);
        assert_eq!(
            d.finished("move", "launch", true, 16_000),
            AfterRun::Retry {
                at: 36_000,
                attempt: 2,
                of: 3
            }
        );
        d.retried("move", "launch", "r3", 36_000);
        // The wait doubles up to max_backoff (30s).
        assert_eq!(
            d.finished("move", "launch", true, 40_000),
            AfterRun::Retry {
                at: 70_000,
                attempt: 3,
                of: 3
            }
        );
        d.retried("move", "launch", "r4", 70_000);
        assert_eq!(
            d.finished("move", "launch", true, 71_000),
            AfterRun::GaveUp { attempts: 3 }
        );
        assert!(d.tries_spent("move", "launch"));
        // Four runs, none counted: the budget of two is whole, no cooldown.
        start(&d.on_firing(&alert("launch"), 72_000));
        // A fresh start begins a new streak; one that acts counts as usual.
        d.started("move", "launch", "r5", 72_000);
        assert_eq!(d.streak("move", "launch"), 0);
        assert_eq!(
            d.finished("move", "launch", false, 80_000),
            AfterRun::Nothing
        );
        assert!(skip(&d.on_firing(&alert("launch"), 90_000)).contains("cooldown"));
    }

    #[test]
    fn a_try_again_obeys_pause_cooldown_and_a_run_in_progress() {
        let mut d = Dispatcher::new(vec![retrying(None)], None);
        // An earlier run acted: its cooldown stands through a later no-op.
        d.started("move", "launch", "r1", 0);
        d.finished("move", "launch", false, 1_000);
        d.started("move", "launch", "r2", 1_000);
        let after = d.finished("move", "launch", true, 2_000);
        // Default policy: five tries, the first after 20s.
        assert_eq!(
            after,
            AfterRun::Retry {
                at: 22_000,
                attempt: 1,
                of: 5
            }
        );
        let Some(Decision::Skip { reason, .. }) = d.retry("move", &alert("launch"), 22_000) else {
            panic!("expected a skip");
        };
        assert!(reason.contains("cooldown"), "{reason}");
        // The forgotten no-op left the first run's cooldown, not its own.
        assert!(
            d.retry("move", &alert("launch"), 900_000)
                .is_some_and(|x| matches!(x, Decision::Start(_)))
        );
        d.started("move", "launch", "r3", 900_000);
        assert!(matches!(
            d.retry("move", &alert("launch"), 900_001),
            Some(Decision::Skip { .. })
        ));
        d.finished("move", "launch", true, 901_000);
        d.pause(Pause {
            by: "alice".into(),
            reason: "drill".into(),
            since: 0,
        });
        let Some(Decision::Skip { reason, .. }) = d.retry("move", &alert("launch"), 930_000) else {
            panic!("expected a skip");
        };
        assert!(reason.contains("paused"), "{reason}");
        assert!(d.retry("gone", &alert("launch"), 930_000).is_none());
    }

    #[test]
    fn no_tries_again_when_the_runbook_says_none() {
        let mut d = Dispatcher::new(vec![retrying(Some(0))], None);
        d.started("move", "launch", "r1", 0);
        assert_eq!(d.finished("move", "launch", true, 1_000), AfterRun::Nothing);
        // Still forgotten: the next alert is not held by a cooldown.
        start(&d.on_firing(&alert("launch"), 2_000));
    }

    #[test]
    fn streaks_and_uncounted_runs_survive_a_restart() {
        let mut d = Dispatcher::new(vec![retrying(Some(2))], None);
        d.restore([
            ("move", "launch", 0, false),
            ("move", "launch", 1_000_000, true),
            ("move", "launch", 1_020_000, true),
            ("move", "other", 1_000_000, true),
        ]);
        assert_eq!(d.streak("move", "launch"), 2);
        assert!(!d.tries_spent("move", "launch"));
        assert_eq!(d.streak("move", "other"), 1);
        // The no-ops hold no cooldown: only the first run's, long over.
        start(&d.on_firing(&alert("launch"), 1_030_000));
        d.retried("move", "launch", "r", 1_030_000);
        assert_eq!(
            d.finished("move", "launch", true, 1_031_000),
            AfterRun::GaveUp { attempts: 2 }
        );
        // A run that acted ends a streak.
        d.restore([("move", "other", 1_100_000, false)]);
        assert_eq!(d.streak("move", "other"), 0);
    }

    /// A runbook named `name` for `Full`, expecting to take `expected`.
    fn timed(name: &str, expected: Option<&str>) -> Arc<Runbook> {
        let expected = expected.map_or(String::new(), |d| format!("  expected_duration: {d}\n"));
        let text = format!(
            "kind: runbook\nname: {name}\ntrigger:\n  alerts: [{{alertname: Full}}]\npolicy:\n  concurrency_key: x\n{expected}steps:\n  - {{id: a, action: wait, with: {{duration: 1s}}}}\n"
        );
        Arc::new(parse_runbook("t.yaml", &text, &crate::load::check_env([])).unwrap())
    }

    fn breaching_in(v: &str) -> AlertCtx {
        let mut a = alert("launch");
        a.annotations.insert(TIME_TO_BREACH.into(), v.into());
        a
    }

    fn names(d: &[Decision]) -> Vec<String> {
        d.iter()
            .map(|d| match d {
                Decision::Start(p) => match &p.late {
                    None => format!("start {}", p.runbook.name),
                    Some(l) => format!("late {} {}>{}", p.runbook.name, l.takes, l.breach_in),
                },
                Decision::Skip { runbook, .. } => format!("skip {runbook}"),
                Decision::TooSlow { runbook, .. } => format!("slow {runbook}"),
            })
            .collect()
    }

    #[test]
    fn what_takes_effect_before_the_breach_is_preferred() {
        let d = Dispatcher::new(
            vec![timed("cap", Some("10s")), timed("move", Some("3m"))],
            None,
        );
        // Ten minutes left: both in time.
        assert_eq!(
            names(&d.on_firing(&breaching_in("600"), 0)),
            ["start cap", "start move"]
        );
        // Two minutes left: the move would land after the breach.
        let out = d.on_firing(&breaching_in("2m"), 0);
        assert_eq!(names(&out), ["start cap", "slow move"]);
        let Decision::TooSlow { reason, .. } = &out[1] else {
            unreachable!()
        };
        assert_eq!(
            reason,
            "it takes about 3m (its expected_duration; not measured yet) to take effect, more than the 2m left before the predicted breach; *cap* can take effect in time"
        );
        // No deadline stated: time is not weighed.
        assert_eq!(
            names(&d.on_firing(&alert("launch"), 0)),
            ["start cap", "start move"]
        );
    }

    #[test]
    fn when_nothing_can_finish_in_time_all_start_late() {
        let mut d = Dispatcher::new(
            vec![timed("cap", Some("10s")), timed("move", Some("3m"))],
            None,
        );
        assert_eq!(
            names(&d.on_firing(&breaching_in("5"), 0)),
            ["late cap 10000>5000", "late move 180000>5000"]
        );
        // Already breaching (a negative prediction) is no time at all.
        assert_eq!(
            names(&d.on_firing(&breaching_in("-30"), 0)),
            ["late cap 10000>0", "late move 180000>0"]
        );
        // Measured runs replace the estimate: the slowest of the last ones.
        d.took_effect("cap", 2_000);
        d.took_effect("cap", 4_000);
        let out = d.on_firing(&breaching_in("5"), 0);
        assert_eq!(names(&out), ["start cap", "slow move"]);
        d.took_effect("cap", 9_000);
        let out = d.on_firing(&breaching_in("5"), 0);
        let Decision::Start(p) = &out[0] else {
            unreachable!()
        };
        assert_eq!(
            p.late.as_ref().unwrap().takes_text(),
            "about 9s (the slowest of its last 3 runs)"
        );
        // Only the last ten count.
        for _ in 0..10 {
            d.took_effect("cap", 1_000);
        }
        assert_eq!(names(&d.on_firing(&breaching_in("5"), 0))[0], "start cap");
    }

    #[test]
    fn a_runbook_of_unknown_duration_is_neither_preferred_nor_passed_over() {
        let d = Dispatcher::new(vec![timed("cap", None), timed("move", Some("3m"))], None);
        // Nothing known to be in time: the move still starts, and nobody
        // is paged, since the cap might be in time.
        assert_eq!(
            names(&d.on_firing(&breaching_in("60"), 0)),
            ["start cap", "start move"]
        );
    }

    #[test]
    fn a_hostile_deadline_is_no_deadline() {
        for v in ["soon", "NaN", "inf", "", &"9".repeat(40), "1e400"] {
            assert_eq!(time_to_breach(&breaching_in(v)), None, "{v:?}");
        }
        assert_eq!(time_to_breach(&breaching_in("4m30s")), Some(270_000));
        assert_eq!(time_to_breach(&breaching_in(" 12.5 ")), Some(12_500));
        // A week away is capped at a day.
        assert_eq!(time_to_breach(&breaching_in("604800")), Some(86_400_000));
    }

    #[test]
    fn missing_input_is_a_clear_skip() {
        let d = Dispatcher::new(vec![rb()], None);
        let mut a = alert("launch");
        a.labels.remove("event");
        assert!(skip(&d.on_firing(&a, 0)).contains("input `event` has no value"));
    }

    #[test]
    fn other_alerts_start_nothing() {
        let d = Dispatcher::new(vec![rb()], None);
        let mut a = alert("launch");
        a.labels.insert("alertname".into(), "Other".into());
        assert!(d.on_firing(&a, 0).is_empty());
    }
}
