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
//!    a restart resets neither the budget nor the cooldown.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::clock::Millis;
use crate::runbook::template::Templates;
use crate::runbook::{Runbook, coerce};

/// The alert that starts a run, as templates see it (`alert.*`).
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct AlertCtx {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// NaN when the alert carries no value (every pushed alert without a
    /// `value` annotation). JSON has no NaN, so it is written as `null`
    /// and must read back from `null`, or a run record of such an alert
    /// could not be resumed after a restart.
    #[serde(deserialize_with = "value_or_nan")]
    pub value: f64,
    pub fired_at: Millis,
}

fn value_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(<Option<f64> as serde::Deserialize>::deserialize(d)?.unwrap_or(f64::NAN))
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub runbook: Arc<Runbook>,
    pub concurrency_key: String,
    pub inputs: BTreeMap<String, Json>,
}

#[derive(Clone, Debug)]
pub enum Decision {
    Start(Plan),
    Skip { runbook: String, reason: String },
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Pause {
    pub by: String,
    pub reason: String,
    pub since: Millis,
}

type Key = (String, String);

pub struct Dispatcher {
    runbooks: Vec<Arc<Runbook>>,
    active: HashMap<Key, String>,
    last_start: HashMap<Key, Millis>,
    /// Start times per key, pruned to the longest budget window.
    starts: HashMap<Key, Vec<Millis>>,
    paused: Option<Pause>,
    templates: Templates,
}

impl Dispatcher {
    /// `runbooks` must already be in dispatch order (see [`crate::runbook`]).
    pub fn new(runbooks: Vec<Arc<Runbook>>, paused: Option<Pause>) -> Self {
        Dispatcher {
            runbooks,
            active: HashMap::new(),
            last_start: HashMap::new(),
            starts: HashMap::new(),
            paused,
            templates: Templates::new(),
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
            .map(|((rb, k), id)| (rb.as_str(), k.as_str(), id.as_str()))
    }

    /// Decides what a firing alert starts. The caller must report each
    /// `Start` it acts on with [`Dispatcher::started`].
    pub fn on_firing(&self, alert: &AlertCtx, now: Millis) -> Vec<Decision> {
        let labels: crate::labels::Labels = alert.labels.clone().into();
        let mut out = Vec::new();
        for rb in self.runbooks.iter().filter(|rb| rb.matches_alert(&labels)) {
            out.push(self.decide(rb, alert, now));
        }
        out
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
        if let Some(run) = self.active.get(&k) {
            return skip(format!("run {run} is already handling {key}"));
        }
        if let Some(last) = self.last_start.get(&k) {
            let until = last + rb.cooldown.as_millis() as i64;
            if now < until {
                return skip(format!(
                    "in cooldown for {key} for another {}s",
                    (until - now + 999) / 1000
                ));
            }
        }
        if let Some(why) = self.budget_spent(rb, &k, now) {
            return skip(why);
        }
        Decision::Start(Plan {
            runbook: rb.clone(),
            concurrency_key: key,
            inputs,
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
    ) -> Result<Plan, String> {
        let rb =
            crate::runbook::plan::find_runbook(&self.runbooks, name).map_err(|e| e.to_string())?;
        let rb = self
            .runbooks
            .iter()
            .find(|r| std::ptr::eq(r.as_ref(), rb))
            .expect("found among these runbooks")
            .clone();
        if !rb.manual {
            return Err(format!(
                "runbook {} cannot be started by hand: it does not say `manual: true` under `trigger:`",
                rb.name
            ));
        }
        let inputs: BTreeMap<String, Json> = crate::runbook::plan::resolve_inputs(&rb, None, given)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(k, (v, _))| (k, v))
            .collect();
        let ctx = json!({"alert": null, "inputs": inputs});
        let key = self
            .templates
            .render_str(&rb.concurrency_key, &ctx)
            .map_err(|e| format!("concurrency key: {}", e.message))?;
        let k = (rb.name.clone(), key.clone());
        if let Some(run) = self.active.get(&k) {
            return Err(format!("run {run} is already handling {key}"));
        }
        if let Some(why) = self.budget_spent(&rb, &k, now) {
            return Err(why);
        }
        Ok(Plan {
            runbook: rb,
            concurrency_key: key,
            inputs,
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

    pub fn started(&mut self, runbook: &str, key: &str, run_id: &str, now: Millis) {
        let k = (runbook.to_owned(), key.to_owned());
        self.active.insert(k.clone(), run_id.to_owned());
        self.record_start(k, now);
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

    /// Replays the runs the store remembers (any state), so cooldowns and
    /// budgets hold across restarts.
    pub fn restore<'r>(&mut self, runs: impl IntoIterator<Item = (&'r str, &'r str, Millis)>) {
        for (runbook, key, at) in runs {
            self.record_start((runbook.to_owned(), key.to_owned()), at);
        }
    }

    /// A run resumed after a restart is in progress again.
    pub fn resumed(&mut self, runbook: &str, key: &str, run_id: &str) {
        self.active
            .insert((runbook.to_owned(), key.to_owned()), run_id.to_owned());
    }

    pub fn finished(&mut self, runbook: &str, key: &str) {
        self.active.remove(&(runbook.to_owned(), key.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runbook::{CheckEnv, parse_runbook};

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
        Arc::new(parse_runbook("m.yaml", text, &CheckEnv::default()).unwrap())
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
        d.finished("move", "launch");
        assert!(skip(&d.on_firing(&alert("launch"), 60_000)).contains("cooldown"));
        start(&d.on_firing(&alert("launch"), 600_000));
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
        let rb = Arc::new(parse_runbook("m.yaml", text, &CheckEnv::default()).unwrap());
        let mut d = Dispatcher::new(vec![rb.clone()], None);
        start(&d.on_firing(&alert("launch"), 0));
        d.started("move", "launch", "r1", 0);
        d.finished("move", "launch");
        start(&d.on_firing(&alert("launch"), 120_000));
        d.started("move", "launch", "r2", 120_000);
        d.finished("move", "launch");
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
        d2.restore([("move", "launch", 0), ("move", "launch", 120_000)]);
        assert!(skip(&d2.on_firing(&alert("launch"), 240_000)).contains("budget spent"));
        // An hour after the first, one slot is free again.
        start(&d2.on_firing(&alert("launch"), 3_600_000));
    }

    #[test]
    fn cooldown_survives_a_restart() {
        let mut d = Dispatcher::new(vec![rb()], None);
        d.restore([("move", "launch", 0)]);
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
        let cap = Arc::new(parse_runbook("c.yaml", text, &CheckEnv::default()).unwrap());
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
            .unwrap_err();
        assert!(e.contains("input `room` (string) has no value"), "{e}");
        assert!(e.contains("input `headroom`"), "{e}");
        let e = d.manual_start("cpa", &given(&[]), 0).unwrap_err();
        assert!(e.contains("did you mean \"cap\""), "{e}");
        let e = d
            .manual_start("move", &given(&[("event", "x")]), 0)
            .unwrap_err();
        assert!(e.contains("does not say `manual: true`"), "{e}");

        d.started("cap", "room/main", "cap-1", 0);
        let e = d
            .manual_start("cap", &given(&[("room", "main")]), 1)
            .unwrap_err();
        assert!(e.contains("cap-1 is already handling room/main"), "{e}");
        d.finished("cap", "room/main");
        let e = d
            .manual_start("cap", &given(&[("room", "main")]), 1)
            .unwrap_err();
        assert!(e.contains("budget spent for room/main"), "{e}");
        d.manual_start("cap", &given(&[("room", "side")]), 1)
            .unwrap();
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
