//! The state of alerts other systems push to firebreak (Alertmanager's
//! webhook, or Prometheus through `POST /api/v2/alerts`), turned into the
//! same transitions firebreak's own rules produce, so dispatch cannot tell
//! them apart. Model code: no I/O, `now` is an argument.
//!
//! Alertmanager's rules, kept: a pushed alert without `endsAt` is firing
//! until `resolve_timeout` after it was last pushed; one whose `endsAt` has
//! passed is resolved; pushing a firing alert again only extends it.
//! Webhook alerts never expire: Alertmanager says when they resolve.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::Millis;
use crate::labels::Labels;
use crate::rules::{Alert, AlertEvent, AlertEventKind, AlertState};

/// Alertmanager's default `resolve_timeout`.
pub const DEFAULT_RESOLVE_TIMEOUT_MS: Millis = 5 * 60_000;

/// How an alert's state is known.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Lifecycle {
    /// Alertmanager said firing or resolved, and will say again when that
    /// changes: the alert never expires on its own (a webhook repeats
    /// only every `repeat_interval`, hours apart).
    Told { resolved: bool },
    /// Pushed with a validity, as Prometheus does: firing until `endsAt`
    /// passes (or `resolve_timeout` after it was last pushed, without
    /// one). An `endsAt` already past means resolved.
    Until(Option<Millis>),
}

/// One alert as it arrived, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Incoming {
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    /// `None` when the sender left it out: then it starts now.
    pub starts_at: Option<Millis>,
    pub lifecycle: Lifecycle,
    /// Where it came from, for people: `alertmanager (receiver firebreak)`
    /// or `api`.
    pub via: String,
    pub generator_url: Option<String>,
}

/// One pushed alert that is firing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushedAlert {
    pub alert: Alert,
    /// When it resolves unless pushed again; `None` for webhook alerts.
    pub expires_at: Option<Millis>,
    pub via: String,
    pub generator_url: Option<String>,
}

#[derive(Clone, Debug)]
pub struct PushedAlerts {
    /// By label fingerprint; a BTreeMap so events come out in one order.
    active: BTreeMap<u64, PushedAlert>,
    resolve_timeout: Millis,
}

impl PushedAlerts {
    pub fn new(resolve_timeout: Millis) -> PushedAlerts {
        PushedAlerts {
            active: BTreeMap::new(),
            resolve_timeout,
        }
    }

    /// Takes one request's alerts; returns what changed: alerts that start
    /// firing, and firing ones now resolved. An alert pushed again while
    /// firing changes nothing but its annotations and expiry.
    pub fn apply(&mut self, batch: Vec<Incoming>, now: Millis) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        for inc in batch {
            let fp = inc.labels.fingerprint();
            let (resolved_at, expires_at) = match inc.lifecycle {
                Lifecycle::Told { resolved: true } => (Some(now), None),
                Lifecycle::Told { resolved: false } => (None, None),
                Lifecycle::Until(Some(end)) if end <= now => (Some(end), None),
                Lifecycle::Until(Some(end)) => (None, Some(end)),
                Lifecycle::Until(None) => (None, Some(now + self.resolve_timeout)),
            };
            if let Some(at) = resolved_at {
                if let Some(mut gone) = self.active.remove(&fp) {
                    gone.alert.state = AlertState::Inactive;
                    gone.alert.resolved_at = Some(at.min(now));
                    gone.alert.last_eval = now;
                    gone.alert.annotations = inc.annotations;
                    events.push(AlertEvent {
                        kind: AlertEventKind::Resolved,
                        alert: gone.alert,
                        at: now,
                    });
                }
                continue;
            }
            let value = value_of(&inc.annotations);
            match self.active.get_mut(&fp) {
                Some(p) => {
                    p.alert.annotations = inc.annotations;
                    p.alert.value = value;
                    p.alert.last_eval = now;
                    p.expires_at = expires_at;
                }
                None => {
                    let name = inc.labels.get("alertname").unwrap_or_default().to_owned();
                    let started = inc.starts_at.unwrap_or(now).min(now);
                    let alert = Alert {
                        rule: name,
                        group: group_of(&inc.via),
                        labels: inc.labels,
                        annotations: inc.annotations,
                        state: AlertState::Firing,
                        active_at: started,
                        fired_at: Some(started),
                        resolved_at: None,
                        keep_firing_since: None,
                        last_eval: now,
                        value,
                    };
                    events.push(AlertEvent {
                        kind: AlertEventKind::Firing,
                        alert: alert.clone(),
                        at: now,
                    });
                    self.active.insert(
                        fp,
                        PushedAlert {
                            alert,
                            expires_at,
                            via: inc.via,
                            generator_url: inc.generator_url,
                        },
                    );
                }
            }
        }
        events
    }

    /// Resolves the alerts whose time ran out by `now`.
    pub fn expire(&mut self, now: Millis) -> Vec<AlertEvent> {
        let gone: Vec<u64> = self
            .active
            .iter()
            .filter(|(_, p)| p.expires_at.is_some_and(|t| t <= now))
            .map(|(fp, _)| *fp)
            .collect();
        gone.into_iter()
            .filter_map(|fp| self.active.remove(&fp))
            .map(|mut p| {
                p.alert.state = AlertState::Inactive;
                p.alert.resolved_at = p.expires_at;
                p.alert.last_eval = now;
                AlertEvent {
                    kind: AlertEventKind::Resolved,
                    alert: p.alert,
                    at: now,
                }
            })
            .collect()
    }

    /// When [`PushedAlerts::expire`] next has something to do.
    pub fn next_expiry(&self) -> Option<Millis> {
        self.active.values().filter_map(|p| p.expires_at).min()
    }

    pub fn alerts(&self) -> impl Iterator<Item = &PushedAlert> {
        self.active.values()
    }

    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Puts back alerts saved by an earlier process. Ones that expired
    /// meanwhile stay until the next [`PushedAlerts::expire`], which
    /// resolves them like any other.
    pub fn restore(&mut self, saved: Vec<PushedAlert>) {
        for p in saved {
            self.active.insert(p.alert.labels.fingerprint(), p);
        }
    }
}

/// Pushed alerts carry no value; a `value` annotation (a rule's
/// `value: '{{ $value }}'`) gives one. Otherwise NaN, which chat leaves out
/// and runbook templates see as `none`.
fn value_of(annotations: &BTreeMap<String, String>) -> f64 {
    annotations
        .get("value")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// The "rule group" pushed alerts belong to: `alertmanager` or `api`.
fn group_of(via: &str) -> String {
    via.split_whitespace().next().unwrap_or("api").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;

    fn inc(name: &str, lifecycle: Lifecycle) -> Incoming {
        Incoming {
            labels: Labels::new().with("alertname", name).with("room", "main"),
            annotations: BTreeMap::from([("summary".to_owned(), format!("{name} happens"))]),
            starts_at: Some(1_000),
            lifecycle,
            via: "api".into(),
            generator_url: None,
        }
    }

    fn kinds(evs: &[AlertEvent]) -> Vec<(AlertEventKind, &str)> {
        evs.iter()
            .map(|e| (e.kind, e.alert.rule.as_str()))
            .collect()
    }

    #[test]
    fn fires_once_however_often_pushed() {
        let mut p = PushedAlerts::new(DEFAULT_RESOLVE_TIMEOUT_MS);
        let evs = p.apply(vec![inc("X", Lifecycle::Until(Some(250_000)))], 10_000);
        assert_eq!(kinds(&evs), vec![(AlertEventKind::Firing, "X")]);
        assert_eq!(evs[0].alert.fired_at, Some(1_000));
        assert_eq!(evs[0].alert.group, "api");
        assert!(evs[0].alert.value.is_nan());
        let again = p.apply(vec![inc("X", Lifecycle::Until(Some(310_000)))], 70_000);
        assert!(again.is_empty());
        assert_eq!(p.next_expiry(), Some(310_000));
    }

    #[test]
    fn resolves_when_ends_at_passes_or_is_past() {
        let mut p = PushedAlerts::new(DEFAULT_RESOLVE_TIMEOUT_MS);
        p.apply(
            vec![
                inc("X", Lifecycle::Until(Some(250_000))),
                inc("Y", Lifecycle::Until(Some(900_000))),
            ],
            10_000,
        );
        assert!(p.expire(249_999).is_empty());
        let evs = p.expire(250_000);
        assert_eq!(kinds(&evs), vec![(AlertEventKind::Resolved, "X")]);
        assert_eq!(evs[0].alert.resolved_at, Some(250_000));
        // Prometheus sends a resolved alert with its endsAt in the past.
        let evs = p.apply(vec![inc("Y", Lifecycle::Until(Some(300_000)))], 301_000);
        assert_eq!(kinds(&evs), vec![(AlertEventKind::Resolved, "Y")]);
        assert_eq!(evs[0].alert.resolved_at, Some(300_000));
        assert!(p.is_empty());
        // Resolving what is not firing says nothing.
        assert!(
            p.apply(vec![inc("Y", Lifecycle::Until(Some(300_000)))], 302_000)
                .is_empty()
        );
    }

    #[test]
    fn without_ends_at_it_lasts_the_resolve_timeout_from_the_last_push() {
        let mut p = PushedAlerts::new(60_000);
        p.apply(vec![inc("X", Lifecycle::Until(None))], 10_000);
        assert_eq!(p.next_expiry(), Some(70_000));
        p.apply(vec![inc("X", Lifecycle::Until(None))], 50_000);
        assert!(p.expire(70_000).is_empty());
        assert_eq!(
            kinds(&p.expire(110_000)),
            vec![(AlertEventKind::Resolved, "X")]
        );
    }

    #[test]
    fn webhook_alerts_wait_to_be_told() {
        let mut p = PushedAlerts::new(60_000);
        let mut a = inc("X", Lifecycle::Told { resolved: false });
        a.via = "alertmanager (receiver firebreak)".into();
        let evs = p.apply(vec![a.clone()], 10_000);
        assert_eq!(evs[0].alert.group, "alertmanager");
        assert_eq!(p.next_expiry(), None);
        assert!(p.expire(10_000_000).is_empty());
        a.lifecycle = Lifecycle::Told { resolved: true };
        let evs = p.apply(vec![a], 20_000_000);
        assert_eq!(kinds(&evs), vec![(AlertEventKind::Resolved, "X")]);
    }

    #[test]
    fn value_comes_from_a_value_annotation() {
        let mut p = PushedAlerts::new(60_000);
        let mut a = inc("X", Lifecycle::Until(None));
        a.annotations.insert("value".into(), "570842.5".into());
        let evs = p.apply(vec![a], 10_000);
        assert_eq!(evs[0].alert.value, 570_842.5);
    }

    #[test]
    fn a_start_in_the_future_is_now() {
        let mut p = PushedAlerts::new(60_000);
        let mut a = inc("X", Lifecycle::Until(None));
        a.starts_at = Some(99_000);
        let evs = p.apply(vec![a], 10_000);
        assert_eq!(evs[0].alert.fired_at, Some(10_000));
    }

    #[test]
    fn saved_alerts_come_back_and_expire_late_ones() {
        let mut p = PushedAlerts::new(60_000);
        p.apply(
            vec![
                inc("X", Lifecycle::Until(Some(50_000))),
                inc("Y", Lifecycle::Told { resolved: false }),
            ],
            10_000,
        );
        let saved: Vec<PushedAlert> = p.alerts().cloned().collect();
        let json = serde_json::to_string(&saved).unwrap();
        let mut q = PushedAlerts::new(60_000);
        q.restore(serde_json::from_str(&json).unwrap());
        assert_eq!(q.len(), 2);
        assert_eq!(
            kinds(&q.expire(90_000)),
            vec![(AlertEventKind::Resolved, "X")]
        );
        // Firing again after a restart is not a new firing.
        assert!(
            q.apply(vec![inc("Y", Lifecycle::Told { resolved: false })], 95_000)
                .is_empty()
        );
    }
}
