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
pub mod template;
pub mod unittest;

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

pub use alert::{Alert, AlertEvent, AlertEventKind, AlertState, RuleAlerts};
pub use file::{
    AlertingRule, RecordingRule, Rule, RuleFile, RuleGroup, parse_rule_file, parse_rule_file_with,
};
pub use template::{Template, TemplateData, TemplateError};

use crate::clock::Millis;
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
}

struct GroupState {
    def: RuleGroup,
    next_due: Millis,
    /// Per rule: alert state (alerting rules) and the series written last
    /// time, which get staleness markers when they stop being produced.
    alerts: Vec<RuleAlerts>,
    written: Vec<HashSet<Labels>>,
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
        for g in &mut self.groups {
            if g.next_due > now {
                continue;
            }
            let interval = g.def.interval_ms.max(1);
            let behind = (now - g.next_due) / interval;
            out.missed += behind as u64;
            let ts = g.next_due + behind * interval;
            g.next_due = ts + interval;
            eval_group(
                g,
                store,
                ts,
                &self.external_labels,
                &self.external_url,
                &mut out,
            );
            out.evaluated.push((g.def.name.clone(), ts));
        }
        out
    }

    /// Pending and firing alerts, group by group, rule by rule.
    pub fn active_alerts(&self) -> Vec<Alert> {
        self.all_alerts()
            .filter(|a| a.state != AlertState::Inactive)
            .cloned()
            .collect()
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
        }
    }

    /// Restores alert state saved by [`RuleEngine::snapshot_state`] into the
    /// rules with the same group and alert name; alerts of rules that no
    /// longer exist are dropped. Returns how many alerts were restored.
    ///
    /// Restored as saved: Prometheus's `for_outage_tolerance` and
    /// `for_grace_period` adjustment of `active_at` after downtime is not
    /// applied yet; it belongs here, given `snapshot.taken_at` and `now`.
    pub fn restore_state(&mut self, snapshot: StateSnapshot, _now: Millis) -> usize {
        let mut restored = 0;
        for a in snapshot.alerts {
            for g in &mut self.groups {
                if g.def.name != a.group {
                    continue;
                }
                for (i, r) in g.def.rules.iter().enumerate() {
                    if let Rule::Alerting(ar) = r
                        && ar.name == a.rule
                    {
                        g.alerts[i].active.insert(a.fingerprint(), a.clone());
                        restored += 1;
                    }
                }
            }
        }
        restored
    }
}

fn eval_group(
    g: &mut GroupState,
    store: &mut SeriesStore,
    ts: Millis,
    external_labels: &Labels,
    external_url: &str,
    out: &mut EvalOutcome,
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
        let result = match promql::eval_instant(expr, store, ts) {
            Ok(Value::Vector(v)) => Ok(v),
            Ok(Value::Scalar(v)) => Ok(vec![Sample {
                labels: Labels::new(),
                value: v,
            }]),
            Ok(other) => Err(format!(
                "rule expression must return an instant vector or scalar, got {}",
                other.type_name()
            )),
            Err(e) => Err(e.to_string()),
        };
        let produced = match (rule, result) {
            (_, Err(m)) => Err(m),
            (Rule::Recording(r), Ok(v)) => record(r, &g.def, v),
            (Rule::Alerting(a), Ok(v)) => g.alerts[i]
                .eval(
                    a,
                    &g.def.name,
                    &g.def.labels,
                    v,
                    ts,
                    external_labels,
                    external_url,
                    g.def.limit,
                )
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
pub fn count_by_state(alerts: &[Alert]) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for a in alerts {
        *m.entry(a.state.as_str()).or_insert(0) += 1;
    }
    m
}
