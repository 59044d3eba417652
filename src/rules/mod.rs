//! Rules: Prometheus rule files, alert templates, alert state, and the
//! engine that evaluates rule groups on their intervals.
//!
//! - [`file`](mod@file): the rule file format and its located validation.
//! - [`template`]: `{{ $labels.x }}` annotation and label templates.
//! - [`alert`]: per-alert state, exactly as Prometheus keeps it.
//! - [`unittest`]: rule unit tests in `promtool test rules` format.
//! - this module: [`RuleEngine`], which schedules groups, evaluates their
//!   rules in order (recording rules write to the store, so later rules see
//!   them), writes `ALERTS`/`ALERTS_FOR_STATE`, and returns the alert
//!   transitions. Model code: the caller passes `now` and the store.

pub mod alert;
pub mod file;
pub mod pushed;
pub mod template;
pub mod unittest;

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

pub use alert::{Alert, AlertEvent, AlertEventKind, AlertState, RuleAlerts, TemplateEnv};
pub use file::{
    AlertingRule, REMOTE_TEMPLATE_QUERY, RecordingRule, Rule, RuleFile, RuleFileOptions, RuleGroup,
    parse_rule_file, parse_rule_file_opts, parse_rule_file_with,
};
pub use template::{Template, TemplateData, TemplateError};

use crate::duration::Millis;
use crate::labels::{Labels, METRIC_NAME};
use crate::promql::{self, Sample, Value};
use crate::tsdb::SeriesStore;

/// One rule's evaluation failing; the other rules still ran.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RuleError {
    pub group: String,
    pub rule: String,
    pub at: Millis,
    pub message: String,
}

/// What one call to [`RuleEngine::eval_due`] did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EvalOutcome {
    /// Alert transitions, in evaluation order.
    pub events: Vec<AlertEvent>,
    pub errors: Vec<RuleError>,
    /// (group, evaluation timestamp) for each group evaluated.
    pub evaluated: Vec<(String, Millis)>,
    /// Scheduled evaluations skipped because `eval_due` was called late.
    pub missed: u64,
}

/// Alert state for persistence: enough to carry `pending`/`firing` across
/// a restart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StateSnapshot {
    pub taken_at: Millis,
    pub alerts: Vec<Alert>,
    /// Alerts pushed over HTTP that are firing (the watcher adds them; the
    /// rule engine neither writes nor reads this).
    #[serde(default)]
    pub pushed: Vec<pushed::PushedAlert>,
}

/// An alert waiting out its rule's `for`: it fires at `fires_at` if its
/// condition still holds then.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PendingAlert {
    pub name: String,
    pub group: String,
    pub labels: Labels,
    pub summary: String,
    pub value: f64,
    pub active_at: Millis,
    pub fires_at: Millis,
}

struct GroupState {
    def: RuleGroup,
    next_due: Millis,
    /// Per rule: alert state (alerting rules) and the series written last
    /// time, which get staleness markers when they stop being produced.
    alerts: Vec<RuleAlerts>,
    written: Vec<HashSet<Labels>>,
}

/// A group due for evaluation; see [`RuleEngine::due`].
#[derive(Clone, Debug, PartialEq)]
pub struct DueGroup {
    pub index: usize,
    pub ts: Millis,
    pub missed: u64,
    /// The rules' expressions, in order, as written.
    pub exprs: Vec<String>,
}

/// How alert state is carried over a restart, as Prometheus's
/// `--rules.alert.for-outage-tolerance` and `--rules.alert.for-grace-period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Longer down than this and nothing is restored.
    pub outage_tolerance_ms: Millis,
    /// A restored pending alert never fires sooner than this after start.
    pub grace_period_ms: Millis,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            outage_tolerance_ms: 60 * 60 * 1000,
            grace_period_ms: 10 * 60 * 1000,
        }
    }
}

/// The `active_at` a pending alert resumes with after a restart at `now`,
/// having last been seen at `down_at`; `None` if it starts afresh.
///
/// Prometheus 2.42's rules: an alert whose `for` is within the grace
/// period starts afresh; one that had already served its `for` keeps its
/// time (and fires at the next evaluation if still active); one with less
/// than the grace period left fires a grace period after the restart;
/// otherwise the downtime does not count towards its `for`.
///
/// Alerts that were already firing are restored as they were. Prometheus
/// restores only their `active_at`, which can make a short-`for` alert fire
/// again; here a second Firing event could start a second mitigation, so a
/// firing alert stays firing.
pub fn restored_active_at(
    active_at: Millis,
    for_ms: Millis,
    down_at: Millis,
    now: Millis,
    grace_ms: Millis,
) -> Option<Millis> {
    if for_ms <= grace_ms {
        return None;
    }
    let remaining = for_ms - (down_at - active_at);
    Some(if remaining <= 0 {
        active_at
    } else if remaining < grace_ms {
        now + grace_ms - for_ms
    } else {
        active_at + (now - down_at)
    })
}

/// Evaluates rule groups; see the module documentation.
pub struct RuleEngine {
    groups: Vec<GroupState>,
    external_labels: Labels,
    external_url: String,
}

impl RuleEngine {
    /// Every group is first due at `now`, then every `interval` after.
    pub fn new(groups: Vec<RuleGroup>, external_labels: Labels, now: Millis) -> Self {
        let groups = groups
            .into_iter()
            .map(|def| GroupState {
                next_due: now,
                alerts: vec![RuleAlerts::default(); def.rules.len()],
                written: vec![HashSet::new(); def.rules.len()],
                def,
            })
            .collect();
        RuleEngine {
            groups,
            external_labels,
            external_url: String::new(),
        }
    }

    /// Swaps in a new set of groups (a reload), keeping what Prometheus
    /// keeps across one: a group with the same file and name keeps its
    /// schedule if its interval is unchanged, and each of its rules keeps
    /// the alerts (and the series it wrote) of the rule of the same kind
    /// and name there. Alerts of rules that are gone end: the firing ones
    /// come back as Resolved events at `now`, so nothing stays firing that
    /// nothing evaluates any more.
    pub fn replace_groups(&mut self, groups: Vec<RuleGroup>, now: Millis) -> Vec<AlertEvent> {
        let mut old: Vec<GroupState> = std::mem::take(&mut self.groups);
        for def in groups {
            let n = def.rules.len();
            let mut g = GroupState {
                next_due: now,
                alerts: vec![RuleAlerts::default(); n],
                written: vec![HashSet::new(); n],
                def,
            };
            if let Some(p) = old
                .iter_mut()
                .find(|p| p.def.file == g.def.file && p.def.name == g.def.name)
            {
                if p.def.interval_ms == g.def.interval_ms {
                    g.next_due = p.next_due;
                }
                for (i, r) in g.def.rules.iter().enumerate() {
                    if let Some(j) = p.def.rules.iter().position(|q| same_rule(q, r)) {
                        g.alerts[i] = std::mem::take(&mut p.alerts[j]);
                        g.written[i] = std::mem::take(&mut p.written[j]);
                    }
                }
            }
            self.groups.push(g);
        }
        // What was not taken above belongs to rules that no longer exist.
        let mut ended = Vec::new();
        for a in old
            .iter_mut()
            .flat_map(|g| g.alerts.iter_mut())
            .flat_map(|r| std::mem::take(&mut r.active).into_values())
        {
            if a.state == AlertState::Firing {
                let mut alert = a;
                alert.state = AlertState::Inactive;
                alert.resolved_at = Some(now);
                ended.push(AlertEvent {
                    kind: AlertEventKind::Resolved,
                    alert,
                    at: now,
                });
            }
        }
        ended
    }

    /// The URL templates see as `$externalURL`.
    pub fn with_external_url(mut self, url: impl Into<String>) -> Self {
        self.external_url = url.into();
        self
    }

    pub fn groups(&self) -> impl Iterator<Item = &RuleGroup> {
        self.groups.iter().map(|g| &g.def)
    }

    /// When the next group is due; `Millis::MAX` with no groups.
    pub fn next_due(&self) -> Millis {
        self.groups
            .iter()
            .map(|g| g.next_due)
            .min()
            .unwrap_or(Millis::MAX)
    }

    /// Evaluates every group whose time has come. A group called late runs
    /// once, at its latest scheduled slot not after `now` (as Prometheus
    /// skips missed iterations), and evaluates at that slot's timestamp.
    pub fn eval_due(&mut self, store: &mut SeriesStore, now: Millis) -> EvalOutcome {
        let mut out = EvalOutcome::default();
        for due in self.due(now) {
            self.eval_group_with(
                &due,
                store,
                &mut out,
                &mut local_query,
                &local_template_query,
            );
        }
        out
    }

    /// The groups whose time has come at `now`, each with the timestamp it
    /// evaluates at and its rules' expressions. For sources that answer
    /// queries elsewhere: fetch each expression's result at `ts`, then
    /// hand them to [`RuleEngine::eval_group_with`] in this order.
    pub fn due(&self, now: Millis) -> Vec<DueGroup> {
        self.groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.next_due <= now)
            .map(|(index, g)| {
                let interval = g.def.interval_ms.max(1);
                let behind = (now - g.next_due) / interval;
                DueGroup {
                    index,
                    ts: g.next_due + behind * interval,
                    missed: behind as u64,
                    exprs: g
                        .def
                        .rules
                        .iter()
                        .map(|r| match r {
                            Rule::Alerting(a) => a.expr_text.clone(),
                            Rule::Recording(r) => r.expr_text.clone(),
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Evaluates one due group, taking each rule's result from `query`
    /// and answering its templates' `query` calls with `template_query`.
    pub fn eval_group_with(
        &mut self,
        due: &DueGroup,
        store: &mut SeriesStore,
        out: &mut EvalOutcome,
        query: &mut QueryFn<'_>,
        template_query: &TemplateQueryFn<'_>,
    ) {
        let Some(g) = self.groups.get_mut(due.index) else {
            return;
        };
        if g.next_due > due.ts {
            // Already evaluated for this slot.
            return;
        }
        let interval = g.def.interval_ms.max(1);
        out.missed += due.missed;
        g.next_due = due.ts + interval;
        eval_group(
            g,
            store,
            due.ts,
            &self.external_labels,
            &self.external_url,
            out,
            query,
            template_query,
        );
        out.evaluated.push((g.def.name.clone(), due.ts));
    }

    /// Pending and firing alerts, group by group, rule by rule.
    pub fn active_alerts(&self) -> Vec<Alert> {
        self.all_alerts()
            .filter(|a| a.state != AlertState::Inactive)
            .cloned()
            .collect()
    }

    /// Alerts whose condition holds but whose `for` has not run out yet,
    /// oldest first: what Prometheus's `/alerts` page shows as pending.
    pub fn pending(&self) -> Vec<PendingAlert> {
        let mut out: Vec<PendingAlert> = self
            .groups
            .iter()
            .flat_map(|g| {
                g.def.rules.iter().zip(&g.alerts).flat_map(|(rule, state)| {
                    let for_ms = match rule {
                        Rule::Alerting(a) => a.for_ms,
                        Rule::Recording(_) => 0,
                    };
                    state
                        .alerts()
                        .filter(|a| a.state == AlertState::Pending)
                        .map(move |a| PendingAlert {
                            name: a.rule.clone(),
                            group: a.group.clone(),
                            labels: a.labels.clone(),
                            summary: a.annotations.get("summary").cloned().unwrap_or_default(),
                            value: a.value,
                            active_at: a.active_at,
                            fires_at: a.active_at + for_ms,
                        })
                })
            })
            .collect();
        out.sort_by(|a, b| (a.active_at, &a.name).cmp(&(b.active_at, &b.name)));
        out
    }

    /// Every alert the engine holds, including resolved ones still within
    /// their 15-minute retention.
    pub fn all_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.groups
            .iter()
            .flat_map(|g| g.alerts.iter().flat_map(|r| r.alerts()))
    }

    /// The alert state, for persisting.
    pub fn snapshot_state(&self, now: Millis) -> StateSnapshot {
        StateSnapshot {
            taken_at: now,
            alerts: self.all_alerts().cloned().collect(),
            pushed: Vec::new(),
        }
    }

    /// Restores alert state saved by [`RuleEngine::snapshot_state`] into the
    /// rules with the same group and alert name, as Prometheus 2.42 restores
    /// `for` state after a restart (defaults: 1h outage tolerance, 10m grace
    /// period); see [`RestoreOptions`]. Returns how many alerts were
    /// restored.
    pub fn restore_state(&mut self, snapshot: StateSnapshot, now: Millis) -> usize {
        self.restore_state_with(snapshot, now, RestoreOptions::default())
    }

    pub fn restore_state_with(
        &mut self,
        snapshot: StateSnapshot,
        now: Millis,
        opts: RestoreOptions,
    ) -> usize {
        let down_at = snapshot.taken_at;
        if now - down_at > opts.outage_tolerance_ms {
            // Down too long for the old state to mean anything.
            return 0;
        }
        let mut restored = 0;
        for mut a in snapshot.alerts {
            for g in &mut self.groups {
                if g.def.name != a.group {
                    continue;
                }
                for (i, r) in g.def.rules.iter().enumerate() {
                    if let Rule::Alerting(ar) = r
                        && ar.name == a.rule
                    {
                        if a.state == AlertState::Pending {
                            match restored_active_at(
                                a.active_at,
                                ar.for_ms,
                                down_at,
                                now,
                                opts.grace_period_ms,
                            ) {
                                Some(t) => a.active_at = t,
                                None => continue,
                            }
                        }
                        g.alerts[i].active.insert(a.fingerprint(), a.clone());
                        restored += 1;
                    }
                }
            }
        }
        restored
    }
}

/// Where a rule's expression gets its result: the local evaluator, or
/// results fetched beforehand from a remote Prometheus-compatible API.
/// Called with the rule's index in its group, its expression, the store
/// (which holds earlier recording rules' output) and the evaluation time.
pub type QueryFn<'a> =
    dyn FnMut(usize, &promql::Expr, &SeriesStore, Millis) -> Result<Value, String> + 'a;

fn local_query(
    _i: usize,
    expr: &promql::Expr,
    store: &SeriesStore,
    ts: Millis,
) -> Result<Value, String> {
    promql::eval_instant(expr, store, ts).map_err(|e| e.to_string())
}

/// Answers a template's `query "expr"` at the evaluation time `ts`.
/// Rules are evaluated in order, so it sees what earlier recording rules
/// of the group wrote.
pub type TemplateQueryFn<'a> =
    dyn Fn(&str, &SeriesStore, Millis) -> Result<Vec<Sample>, String> + 'a;

/// A template's query against the local store, as Prometheus's rule
/// manager answers it.
pub fn local_template_query(
    q: &str,
    store: &SeriesStore,
    ts: Millis,
) -> Result<Vec<Sample>, String> {
    let expr = promql::parse(q).map_err(|e| e.to_string())?;
    let v = promql::eval_instant(&expr, store, ts).map_err(|e| e.to_string())?;
    as_vector(v, "a template's query")
}

/// A rule's or a template query's result as samples: a scalar is one
/// sample without labels.
fn as_vector(v: Value, what: &str) -> Result<Vec<Sample>, String> {
    match v {
        Value::Vector(v) => Ok(v),
        Value::Scalar(v) => Ok(vec![Sample {
            labels: Labels::new(),
            value: v,
        }]),
        other => Err(format!(
            "{what} must return an instant vector or scalar, got {}",
            other.type_name()
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn eval_group(
    g: &mut GroupState,
    store: &mut SeriesStore,
    ts: Millis,
    external_labels: &Labels,
    external_url: &str,
    out: &mut EvalOutcome,
    query: &mut QueryFn<'_>,
    template_query: &TemplateQueryFn<'_>,
) {
    for (i, rule) in g.def.rules.iter().enumerate() {
        let err = |message: String| RuleError {
            group: g.def.name.clone(),
            rule: rule.name().to_owned(),
            at: ts,
            message,
        };
        let expr = match rule {
            Rule::Alerting(a) => &a.expr,
            Rule::Recording(r) => &r.expr,
        };
        let result = query(i, expr, store, ts).and_then(|v| as_vector(v, "rule expression"));
        let ask = |q: &str| template_query(q, store, ts);
        let env = TemplateEnv {
            external_labels,
            external_url,
            query: Some(&ask),
        };
        let produced = match (rule, result) {
            (_, Err(m)) => Err(m),
            (Rule::Recording(r), Ok(v)) => record(r, &g.def, v),
            (Rule::Alerting(a), Ok(v)) => g.alerts[i]
                .eval(a, &g.def.name, &g.def.labels, v, ts, &env, g.def.limit)
                .map(|o| {
                    out.events.extend(o.events);
                    o.series
                })
                .map_err(|e| e.to_string()),
        };
        // On failure, Prometheus ends the rule's previous series too.
        let series = match produced {
            Ok(s) => s,
            Err(m) => {
                out.errors.push(err(m));
                Vec::new()
            }
        };
        let mut now_written = HashSet::with_capacity(series.len());
        for s in series {
            if let Err(e) = store.append(s.labels.clone(), ts, s.value) {
                out.errors.push(err(e.to_string()));
            }
            now_written.insert(s.labels);
        }
        for gone in g.written[i].difference(&now_written) {
            store.mark_stale(gone, ts);
        }
        g.written[i] = now_written;
    }
}

fn record(r: &RecordingRule, group: &RuleGroup, v: Vec<Sample>) -> Result<Vec<Sample>, String> {
    let mut seen = HashSet::with_capacity(v.len());
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        s.labels.set(METRIC_NAME, r.record.clone());
        for (k, val) in group.labels.iter().chain(r.labels.iter()) {
            s.labels.set(k, val);
        }
        if !seen.insert(s.labels.clone()) {
            return Err(format!(
                "vector contains metrics with the same labelset after applying rule labels: {}",
                s.labels
            ));
        }
        out.push(s);
    }
    if group.limit > 0 && out.len() > group.limit {
        return Err(format!(
            "exceeded limit of {} with {} series",
            group.limit,
            out.len()
        ));
    }
    Ok(out)
}

/// Alert counts per state, for status pages.
/// Whether two rules are the same rule across a reload: same kind, same
/// name. Their expressions may differ: that is what a reload changes.
fn same_rule(a: &Rule, b: &Rule) -> bool {
    match (a, b) {
        (Rule::Alerting(x), Rule::Alerting(y)) => x.name == y.name,
        (Rule::Recording(x), Rule::Recording(y)) => x.record == y.record,
        _ => false,
    }
}

pub fn count_by_state(alerts: &[Alert]) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for a in alerts {
        *m.entry(a.state.as_str()).or_insert(0) += 1;
    }
    m
}

#[cfg(test)]
mod restore_tests {
    use super::*;

    const MIN: Millis = 60_000;

    #[test]
    fn restored_active_at_follows_prometheus() {
        let grace = 10 * MIN;
        // `for` within the grace period: starts afresh.
        assert_eq!(restored_active_at(0, 5 * MIN, MIN, 2 * MIN, grace), None);
        // Already served its `for` when it went down: keeps its time.
        assert_eq!(
            restored_active_at(0, 30 * MIN, 40 * MIN, 45 * MIN, grace),
            Some(0)
        );
        // Less than the grace period left: fires a grace period after start.
        assert_eq!(
            restored_active_at(0, 30 * MIN, 25 * MIN, 27 * MIN, grace),
            Some(27 * MIN + grace - 30 * MIN)
        );
        // Otherwise the downtime does not count.
        assert_eq!(
            restored_active_at(0, 30 * MIN, 5 * MIN, 10 * MIN, grace),
            Some(5 * MIN)
        );
    }

    fn engine(for_: &str) -> RuleEngine {
        let text = format!(
            "groups:\n  - name: g\n    interval: 1m\n    rules:\n      - alert: Up\n        expr: x > 0\n        for: {for_}\n"
        );
        let f = parse_rule_file("r.yml", &text).unwrap();
        RuleEngine::new(f.groups, Labels::new(), 0)
    }

    fn feed(store: &mut SeriesStore, upto: Millis) {
        let l = Labels::new().with("__name__", "x");
        let mut t = store
            .get(&l)
            .and_then(|s| s.samples().last().map(|(t, _)| t + MIN))
            .unwrap_or(0);
        while t <= upto {
            store.append(l.clone(), t, 1.0).unwrap();
            t += MIN;
        }
    }

    fn firing_events(o: &EvalOutcome) -> usize {
        o.events
            .iter()
            .filter(|e| e.kind == AlertEventKind::Firing)
            .count()
    }

    #[test]
    fn a_restart_does_not_reset_for_and_downtime_does_not_count() {
        let mut store = SeriesStore::new(3_600_000);
        let mut e = engine("30m");
        feed(&mut store, 5 * MIN);
        for t in (0..=5).map(|m| m * MIN) {
            e.eval_due(&mut store, t);
        }
        let snap: StateSnapshot =
            serde_json::from_str(&serde_json::to_string(&e.snapshot_state(5 * MIN)).unwrap())
                .unwrap();

        // Down from 5m to 10m; a fresh engine restores.
        let mut e = engine("30m");
        let mut e_start = 10 * MIN;
        assert_eq!(e.restore_state(snap, e_start), 1);
        feed(&mut store, 40 * MIN);
        let mut fired_at = None;
        while e_start <= 40 * MIN {
            let o = e.eval_due(&mut store, e_start);
            if firing_events(&o) > 0 && fired_at.is_none() {
                fired_at = Some(e_start);
            }
            e_start += MIN;
        }
        // Pending since 0, 5m of downtime not counted: fires at 35m, not
        // 30m (which a plain restore would give) or 40m (a reset).
        assert_eq!(fired_at, Some(35 * MIN));
    }

    #[test]
    fn a_firing_alert_stays_firing_across_a_restart_without_firing_again() {
        let mut store = SeriesStore::new(3_600_000);
        let mut e = engine("1m");
        feed(&mut store, 3 * MIN);
        let mut fired = 0;
        for t in (0..=3).map(|m| m * MIN) {
            fired += firing_events(&e.eval_due(&mut store, t));
        }
        assert_eq!(fired, 1);
        let snap = e.snapshot_state(3 * MIN);
        let mut e = engine("1m");
        assert_eq!(e.restore_state(snap, 4 * MIN), 1);
        feed(&mut store, 6 * MIN);
        let mut again = 0;
        for t in (4..=6).map(|m| m * MIN) {
            again += firing_events(&e.eval_due(&mut store, t));
        }
        assert_eq!(again, 0, "no second Firing event, so no second mitigation");
        assert_eq!(e.active_alerts()[0].state, AlertState::Firing);
    }

    /// Issue 22, item 8: what is pending, and when it will fire, is known
    /// (Prometheus's alerts page shows it); once firing it is not pending.
    #[test]
    fn pending_alerts_say_when_they_fire() {
        let mut store = SeriesStore::new(3_600_000);
        let mut e = engine("3m");
        feed(&mut store, 10 * MIN);
        assert!(e.pending().is_empty());
        e.eval_due(&mut store, 0);
        e.eval_due(&mut store, MIN);
        let p = e.pending();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].name, "Up");
        assert_eq!(p[0].group, "g");
        assert_eq!(p[0].active_at, 0);
        assert_eq!(p[0].fires_at, 3 * MIN);
        assert_eq!(p[0].labels.get("alertname"), Some("Up"));
        for t in 2..=3 {
            e.eval_due(&mut store, t * MIN);
        }
        assert!(e.pending().is_empty(), "firing now");
    }

    #[test]
    fn nothing_is_restored_after_a_long_outage() {
        let mut store = SeriesStore::new(3_600_000);
        let mut e = engine("30m");
        feed(&mut store, 0);
        e.eval_due(&mut store, 0);
        let snap = e.snapshot_state(0);
        let mut e = engine("30m");
        assert_eq!(e.restore_state(snap, 61 * MIN), 0);
    }
}

#[cfg(test)]
mod reload_tests {
    use super::*;

    const MIN: Millis = 60_000;

    fn groups(rules: &str) -> Vec<RuleGroup> {
        let text = format!("groups:\n  - name: g\n    interval: 1m\n    rules:\n{rules}");
        parse_rule_file("r.yml", &text).unwrap().groups
    }

    const UP: &str = "      - alert: Up\n        expr: x > 0\n        for: 2m\n";
    const HIGH: &str = "      - alert: High\n        expr: x > 0\n";

    fn run(
        e: &mut RuleEngine,
        store: &mut SeriesStore,
        from: Millis,
        to: Millis,
    ) -> Vec<AlertEvent> {
        let l = Labels::new().with("__name__", "x");
        let mut out = Vec::new();
        let mut t = from;
        while t <= to {
            store.append(l.clone(), t, 1.0).unwrap();
            out.extend(e.eval_due(store, t).events);
            t += MIN;
        }
        out
    }

    fn kinds(evs: &[AlertEvent]) -> Vec<(String, AlertEventKind)> {
        evs.iter().map(|e| (e.alert.rule.clone(), e.kind)).collect()
    }

    #[test]
    fn a_reload_keeps_the_state_of_rules_that_stay_and_ends_the_rest() {
        let mut store = SeriesStore::new(3_600_000);
        let mut e = RuleEngine::new(groups(&format!("{UP}{HIGH}")), Labels::new(), 0);
        // Up pending since 0; High firing since 0.
        let evs = run(&mut e, &mut store, 0, MIN);
        assert_eq!(
            kinds(&evs),
            [
                ("Up".into(), AlertEventKind::Pending),
                ("High".into(), AlertEventKind::Firing)
            ]
        );

        // Reload at 1m30s: Up stays (its expression changes), High goes,
        // Low is new.
        let ended = e.replace_groups(
            groups(
                "      - alert: Up\n        expr: x >= 1\n        for: 2m\n      - alert: Low\n        expr: x < 0\n",
            ),
            MIN + 30_000,
        );
        assert_eq!(kinds(&ended), [("High".into(), AlertEventKind::Resolved)]);
        assert_eq!(ended[0].alert.resolved_at, Some(MIN + 30_000));
        // The schedule is kept (same interval): next due at 2m, not now.
        assert_eq!(e.next_due(), 2 * MIN);

        // Up's `for` did not restart: it fires at 2m, two minutes after it
        // began, with no second Pending.
        let evs = run(&mut e, &mut store, 2 * MIN, 2 * MIN);
        assert_eq!(kinds(&evs), [("Up".into(), AlertEventKind::Firing)]);
        assert_eq!(evs[0].alert.active_at, 0);
    }

    #[test]
    fn a_changed_interval_or_a_new_group_is_due_at_once() {
        let mut e = RuleEngine::new(groups(UP), Labels::new(), 0);
        let mut store = SeriesStore::new(3_600_000);
        run(&mut e, &mut store, 0, 0);
        let text = format!(
            "groups:\n  - name: g\n    interval: 30s\n    rules:\n{UP}  - name: other\n    rules:\n{HIGH}"
        );
        let g = parse_rule_file("r.yml", &text).unwrap().groups;
        assert!(e.replace_groups(g, 10_000).is_empty());
        assert_eq!(e.next_due(), 10_000);
        assert_eq!(e.groups().count(), 2);
        // The pending alert is still there.
        assert_eq!(e.active_alerts().len(), 1);
    }
}

#[cfg(test)]
mod template_query_tests {
    use super::*;

    /// A template's `query` reads the store at the evaluation time,
    /// including what a recording rule earlier in the group wrote then.
    #[test]
    fn templates_query_the_store_at_evaluation_time() {
        let text = r#"groups:
  - name: g
    interval: 1m
    rules:
      - record: room:capacity:doubled
        expr: capacity * 2
      - alert: Full
        expr: listeners > 5
        annotations:
          summary: '{{ with query (printf "room:capacity:doubled{room=%q}" $labels.room) }}{{ . | first | value }}{{ end }} at {{ with query "time()" }}{{ (index . 0).Value }}{{ end }}'
"#;
        let groups = parse_rule_file("r.yml", text).unwrap().groups;
        let mut e = RuleEngine::new(groups, Labels::new(), 0);
        let mut store = SeriesStore::new(3_600_000);
        let room = |name: &str| Labels::new().with("__name__", name).with("room", "main");
        store.append(room("listeners"), 0, 9.0).unwrap();
        store.append(room("capacity"), 0, 10.0).unwrap();
        let out = e.eval_due(&mut store, 60_000);
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let alert = e.all_alerts().next().expect("the alert is pending");
        assert_eq!(alert.annotations["summary"], "20 at 60");
    }
}
