//! Alert state for one alerting rule, exactly as Prometheus keeps it.
//!
//! Owns the per-label-set state machine (inactive → pending → firing,
//! `for`, `keep_firing_for`, resolved alerts kept 15 minutes), alert
//! labels and annotations from templates, the `ALERTS` and
//! `ALERTS_FOR_STATE` series each evaluation writes back, and the group
//! `limit`. Model code: the caller passes the query result and `now`.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::file::AlertingRule;
use super::template::{QueryFn, TemplateData};
use crate::duration::Millis;
use crate::labels::{Labels, METRIC_NAME};
use crate::promql::Sample;

/// How long a resolved alert is kept (and reported as resolved).
pub const RESOLVED_RETENTION_MS: Millis = 15 * 60 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert: an alerting rule's state for one label set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The alert name (the rule's `alert:`).
    pub rule: String,
    /// The rule group, which with `rule` identifies the rule.
    pub group: String,
    /// Series labels without `__name__`, plus rule labels, plus `alertname`.
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    /// When the expression first returned this label set (this episode).
    pub active_at: Millis,
    pub fired_at: Option<Millis>,
    pub resolved_at: Option<Millis>,
    /// Set while `keep_firing_for` holds a firing alert whose expression no
    /// longer returns it.
    pub keep_firing_since: Option<Millis>,
    pub last_eval: Millis,
    /// The expression's value at the latest evaluation that returned it.
    /// Non-finite values serialize as "NaN", "+Inf", "-Inf" so a snapshot
    /// survives JSON.
    #[serde(with = "float_or_string")]
    pub value: f64,
}

/// JSON has no NaN or infinities; Prometheus's API writes them as strings.
mod float_or_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_nan() {
            s.serialize_str("NaN")
        } else if v.is_infinite() {
            s.serialize_str(if *v > 0.0 { "+Inf" } else { "-Inf" })
        } else {
            s.serialize_f64(*v)
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Num(f64),
        Str(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Num(v) => Ok(v),
            Repr::Str(s) => match s.as_str() {
                "NaN" => Ok(f64::NAN),
                "+Inf" | "Inf" => Ok(f64::INFINITY),
                "-Inf" => Ok(f64::NEG_INFINITY),
                other => other.parse().map_err(serde::de::Error::custom),
            },
        }
    }
}

impl Alert {
    pub fn fingerprint(&self) -> u64 {
        self.labels.fingerprint()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertEventKind {
    Pending,
    Firing,
    Resolved,
}

/// A state transition. A `for: 0` alert goes straight to `Firing`; a
/// pending alert whose expression stops returning it is dropped silently,
/// as Prometheus never sent it anywhere.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub kind: AlertEventKind,
    pub alert: Alert,
    pub at: Millis,
}

/// Why one evaluation of an alerting rule failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AlertEvalError {
    #[error("vector contains metrics with the same labelset after applying alert labels: {0}")]
    DuplicateLabels(Labels),
    #[error("exceeded limit of {limit} with {count} alerts")]
    LimitExceeded { limit: usize, count: usize },
}

/// What an alerting rule's templates see besides the sample: the
/// external labels and URL, and where `query` is answered.
#[derive(Clone, Copy)]
pub struct TemplateEnv<'a> {
    pub external_labels: &'a Labels,
    pub external_url: &'a str,
    pub query: Option<&'a QueryFn<'a>>,
}

/// The state of one alerting rule across evaluations.
#[derive(Clone, Debug, Default)]
pub struct RuleAlerts {
    /// Keyed by label fingerprint; a BTreeMap so iteration (and thus the
    /// order of events and written series) is deterministic.
    pub(super) active: BTreeMap<u64, Alert>,
}

/// What one evaluation produced.
#[derive(Debug, Default)]
pub struct AlertEvalOutput {
    pub events: Vec<AlertEvent>,
    /// `ALERTS` and `ALERTS_FOR_STATE` samples to write at `now`.
    pub series: Vec<Sample>,
}

impl RuleAlerts {
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }

    /// Advances the state with one query result at `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn eval(
        &mut self,
        rule: &AlertingRule,
        group: &str,
        group_labels: &Labels,
        result: Vec<Sample>,
        now: Millis,
        env: &TemplateEnv<'_>,
        limit: usize,
    ) -> Result<AlertEvalOutput, AlertEvalError> {
        let mut fresh: BTreeMap<u64, Alert> = BTreeMap::new();
        for s in result {
            let data = TemplateData {
                labels: &s.labels,
                value: s.value,
                external_labels: env.external_labels,
                external_url: env.external_url,
                query: env.query,
            };
            let mut labels = s.labels.without_metric_name();
            for (k, v) in group_labels.iter() {
                labels.set(k, v);
            }
            for (k, t) in &rule.labels {
                labels.set(k.clone(), t.render_or_error(&data));
            }
            labels.set("alertname", rule.name.clone());
            let annotations = rule
                .annotations
                .iter()
                .map(|(k, t)| (k.clone(), t.render_or_error(&data)))
                .collect();
            let fp = labels.fingerprint();
            if fresh.contains_key(&fp) {
                return Err(AlertEvalError::DuplicateLabels(labels));
            }
            fresh.insert(
                fp,
                Alert {
                    rule: rule.name.clone(),
                    group: group.to_owned(),
                    labels,
                    annotations,
                    state: AlertState::Pending,
                    active_at: now,
                    fired_at: None,
                    resolved_at: None,
                    keep_firing_since: None,
                    last_eval: now,
                    value: s.value,
                },
            );
        }

        let mut out = AlertEvalOutput::default();
        let returned: HashSet<u64> = fresh.keys().copied().collect();
        for (fp, a) in fresh {
            match self.active.get_mut(&fp) {
                Some(existing) if existing.state != AlertState::Inactive => {
                    existing.value = a.value;
                    existing.annotations = a.annotations;
                }
                _ => {
                    self.active.insert(fp, a);
                }
            }
        }

        let mut remove = Vec::new();
        let mut active_count = 0;
        for (fp, a) in self.active.iter_mut() {
            a.last_eval = now;
            if !returned.contains(fp) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && rule.keep_firing_for_ms > 0 {
                    let since = *a.keep_firing_since.get_or_insert(now);
                    keep_firing = now - since < rule.keep_firing_for_ms;
                }
                if a.state == AlertState::Pending
                    || a.resolved_at
                        .is_some_and(|r| now - r > RESOLVED_RETENTION_MS)
                {
                    remove.push(*fp);
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    let was_firing = a.state == AlertState::Firing;
                    a.state = AlertState::Inactive;
                    a.resolved_at = Some(now);
                    if was_firing {
                        out.events.push(AlertEvent {
                            kind: AlertEventKind::Resolved,
                            alert: a.clone(),
                            at: now,
                        });
                    }
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since = None;
            }
            active_count += 1;
            if a.state == AlertState::Pending {
                if now - a.active_at >= rule.for_ms {
                    a.state = AlertState::Firing;
                    a.fired_at = Some(now);
                    out.events.push(AlertEvent {
                        kind: AlertEventKind::Firing,
                        alert: a.clone(),
                        at: now,
                    });
                } else if a.active_at == now {
                    out.events.push(AlertEvent {
                        kind: AlertEventKind::Pending,
                        alert: a.clone(),
                        at: now,
                    });
                }
            }
            out.series.push(alerts_sample(a));
            out.series.push(for_state_sample(a));
        }
        for fp in remove {
            self.active.remove(&fp);
        }
        if limit > 0 && active_count > limit {
            self.active.clear();
            return Err(AlertEvalError::LimitExceeded {
                limit,
                count: active_count,
            });
        }
        Ok(out)
    }
}

fn alerts_sample(a: &Alert) -> Sample {
    let mut labels = a.labels.clone();
    labels.set(METRIC_NAME, "ALERTS");
    labels.set("alertstate", a.state.as_str());
    Sample { labels, value: 1.0 }
}

fn for_state_sample(a: &Alert) -> Sample {
    let mut labels = a.labels.clone();
    labels.set(METRIC_NAME, "ALERTS_FOR_STATE");
    Sample {
        labels,
        value: a.active_at as f64 / 1000.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::template::Template;

    fn rule(for_ms: Millis, keep: Millis) -> AlertingRule {
        AlertingRule {
            name: "HighLoad".into(),
            expr: crate::promql::parse("load > 1").unwrap(),
            expr_text: "load > 1".into(),
            for_ms,
            keep_firing_for_ms: keep,
            labels: vec![("severity".into(), Template::parse("page").unwrap())],
            annotations: vec![(
                "summary".into(),
                Template::parse("{{ $labels.host }} at {{ $value }}").unwrap(),
            )],
        }
    }

    fn no_env() -> TemplateEnv<'static> {
        static NONE: std::sync::LazyLock<Labels> = std::sync::LazyLock::new(Labels::new);
        TemplateEnv {
            external_labels: &NONE,
            external_url: "",
            query: None,
        }
    }

    fn sample(host: &str, v: f64) -> Sample {
        Sample {
            labels: [("__name__", "load"), ("host", host)].into_iter().collect(),
            value: v,
        }
    }

    fn step(
        ra: &mut RuleAlerts,
        r: &AlertingRule,
        res: Vec<Sample>,
        now: Millis,
    ) -> AlertEvalOutput {
        ra.eval(r, "g", &Labels::new(), res, now, &no_env(), 0)
            .unwrap()
    }

    fn kinds(o: &AlertEvalOutput) -> Vec<AlertEventKind> {
        o.events.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn pending_then_firing_then_resolved() {
        let r = rule(60_000, 0);
        let mut ra = RuleAlerts::default();
        let o = step(&mut ra, &r, vec![sample("a", 2.0)], 0);
        assert_eq!(kinds(&o), vec![AlertEventKind::Pending]);
        let a = &o.events[0].alert;
        assert_eq!(
            a.labels.to_string(),
            r#"{alertname="HighLoad", host="a", severity="page"}"#
        );
        assert_eq!(a.annotations["summary"], "a at 2");
        assert_eq!(o.series.len(), 2);
        assert_eq!(o.series[0].labels.get("alertstate"), Some("pending"));
        assert_eq!(
            kinds(&step(&mut ra, &r, vec![sample("a", 3.0)], 30_000)),
            vec![]
        );
        let o = step(&mut ra, &r, vec![sample("a", 4.0)], 60_000);
        assert_eq!(kinds(&o), vec![AlertEventKind::Firing]);
        assert_eq!(o.events[0].alert.fired_at, Some(60_000));
        assert_eq!(o.events[0].alert.active_at, 0);
        assert_eq!(o.events[0].alert.annotations["summary"], "a at 4");
        let o = step(&mut ra, &r, vec![], 90_000);
        assert_eq!(kinds(&o), vec![AlertEventKind::Resolved]);
        assert_eq!(o.events[0].alert.resolved_at, Some(90_000));
        assert!(o.series.is_empty());
        // Kept (inactive) for 15 minutes, reported once.
        assert_eq!(kinds(&step(&mut ra, &r, vec![], 120_000)), vec![]);
        assert_eq!(ra.alerts().count(), 1);
        step(&mut ra, &r, vec![], 90_000 + RESOLVED_RETENTION_MS + 1);
        assert_eq!(ra.alerts().count(), 0);
    }

    #[test]
    fn non_finite_values_survive_json() {
        let r = rule(0, 0);
        let mut ra = RuleAlerts::default();
        let o = step(&mut ra, &r, vec![sample("a", f64::INFINITY)], 0);
        let json = serde_json::to_string(&o.events[0].alert).unwrap();
        assert!(json.contains(r#""value":"+Inf""#), "{json}");
        let back: Alert = serde_json::from_str(&json).unwrap();
        assert_eq!(back.value, f64::INFINITY);
        let mut nan = back.clone();
        nan.value = f64::NAN;
        let back: Alert = serde_json::from_str(&serde_json::to_string(&nan).unwrap()).unwrap();
        assert!(back.value.is_nan());
    }

    #[test]
    fn for_zero_fires_at_once() {
        let r = rule(0, 0);
        let mut ra = RuleAlerts::default();
        let o = step(&mut ra, &r, vec![sample("a", 2.0)], 0);
        assert_eq!(kinds(&o), vec![AlertEventKind::Firing]);
    }

    #[test]
    fn pending_that_disappears_is_dropped_without_event() {
        let r = rule(60_000, 0);
        let mut ra = RuleAlerts::default();
        step(&mut ra, &r, vec![sample("a", 2.0)], 0);
        let o = step(&mut ra, &r, vec![], 15_000);
        assert!(o.events.is_empty());
        assert_eq!(ra.alerts().count(), 0);
        // Coming back starts a new pending period.
        let o = step(&mut ra, &r, vec![sample("a", 2.0)], 30_000);
        assert_eq!(o.events[0].alert.active_at, 30_000);
    }

    #[test]
    fn keep_firing_for_holds_then_resolves() {
        let r = rule(0, 60_000);
        let mut ra = RuleAlerts::default();
        step(&mut ra, &r, vec![sample("a", 2.0)], 0);
        assert!(step(&mut ra, &r, vec![], 15_000).events.is_empty());
        let o = step(&mut ra, &r, vec![], 60_000);
        assert!(o.events.is_empty(), "still within keep_firing_for");
        assert_eq!(o.series[0].labels.get("alertstate"), Some("firing"));
        let o = step(&mut ra, &r, vec![], 75_000);
        assert_eq!(kinds(&o), vec![AlertEventKind::Resolved]);
    }

    #[test]
    fn keep_firing_resets_when_expression_returns() {
        let r = rule(0, 30_000);
        let mut ra = RuleAlerts::default();
        step(&mut ra, &r, vec![sample("a", 2.0)], 0);
        step(&mut ra, &r, vec![], 15_000);
        step(&mut ra, &r, vec![sample("a", 2.0)], 30_000);
        assert!(step(&mut ra, &r, vec![], 45_000).events.is_empty());
        assert!(step(&mut ra, &r, vec![], 60_000).events.is_empty());
        assert_eq!(
            kinds(&step(&mut ra, &r, vec![], 75_000)),
            vec![AlertEventKind::Resolved]
        );
    }

    #[test]
    fn duplicate_labelsets_and_limit() {
        let mut r = rule(0, 0);
        r.labels = vec![("host".into(), Template::parse("same").unwrap())];
        let mut ra = RuleAlerts::default();
        let e = ra
            .eval(
                &r,
                "g",
                &Labels::new(),
                vec![sample("a", 2.0), sample("b", 2.0)],
                0,
                &no_env(),
                0,
            )
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("same labelset after applying alert labels"),
            "{e}"
        );
        let r = rule(0, 0);
        let e = ra
            .eval(
                &r,
                "g",
                &Labels::new(),
                vec![sample("a", 2.0), sample("b", 2.0)],
                0,
                &no_env(),
                1,
            )
            .unwrap_err();
        assert_eq!(e, AlertEvalError::LimitExceeded { limit: 1, count: 2 });
        assert_eq!(ra.alerts().count(), 0);
    }
}
