//! The audience sampler: for each open incident, how many are listening,
//! how many of them are in danger and how many would be listening had
//! nobody acted, from the PromQL the config gives (`incidents.audience`),
//! rendered with the incident's `group_by` labels. The control loop asks
//! on its own tick and puts the answers on the incident's card and in the
//! store, for the review.
//!
//! An extra beside the card, never on the alert's path: the request queue
//! is small and a full one drops the request (the next tick asks again),
//! a sample that finds the control loop's queue full is dropped the same
//! way, and a query that fails or gives nothing leaves its figure unknown.

use std::collections::BTreeMap;

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, Millis};
use crate::duration::PromDuration;
use crate::promql::Value;
use crate::runbook::template::Templates;
use crate::watcher::Queries;

/// Requests waiting for the sampler; a full queue drops the newest.
pub const QUEUE: usize = 16;

/// How often each open incident's audience is measured by default.
pub const DEFAULT_EVERY: PromDuration = PromDuration::from_secs(15);

/// How long an incident's audience is still measured after it resolved,
/// by default: what a mitigation saved (or cost) often shows later, when
/// the room that was left alone would have crashed.
pub const DEFAULT_FOLLOW_FOR: PromDuration = PromDuration::from_secs(30 * 60);

/// `incidents.audience`.
#[derive(Clone, Debug, PartialEq)]
pub struct AudienceConfig {
    pub every: PromDuration,
    /// Measured this long after the incident resolved, for the review.
    pub follow_for: PromDuration,
    /// Listening now (summed when it gives several series).
    pub listening: String,
    /// Listening in rooms in danger now.
    pub at_risk: Option<String>,
    /// Listening now had nobody acted, where the platform can say.
    pub without_us: Option<String>,
}

impl AudienceConfig {
    /// For the simulator (the demo, rehearsals, `run` against `sim`):
    /// the event's listeners, those in rooms past 90% of their capacity or
    /// down, and the simulator's untouched twin of the platform.
    pub fn for_simulator() -> AudienceConfig {
        AudienceConfig {
            every: DEFAULT_EVERY,
            follow_for: DEFAULT_FOLLOW_FOR,
            listening: r#"sum(live_event_listeners{event="{{ labels.event | promql }}"})"#.into(),
            at_risk: Some(
                r#"sum(
  (live_room_listeners and on(room, account) (live_room_utilisation > 0.9 or live_room_up == 0))
    and on(room, account) live_event_info{event="{{ labels.event | promql }}"}
)"#
                .into(),
            ),
            without_us: Some(
                r#"sum(live_event_counterfactual_listeners{event="{{ labels.event | promql }}"})"#
                    .into(),
            ),
        }
    }
}

/// Whether `src` is a template that renders PromQL: its Jinja must parse,
/// and where it has no template at all, so must its PromQL.
pub fn check_query(src: &str) -> Result<(), String> {
    Templates::new()
        .check(src)
        .map_err(|e| format!("template: {}", e.message))?;
    if !src.contains("{{") && !src.contains("{%") {
        crate::promql::parse(src).map_err(|e| format!("invalid PromQL: {e}"))?;
    }
    Ok(())
}

/// One incident to measure.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub incident: String,
    /// The incident's `group_by` labels, as its first alert had them.
    pub labels: BTreeMap<String, String>,
}

/// One measurement; a figure is `None` when its query failed or gave
/// nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub incident: String,
    pub listening: Option<u64>,
    pub at_risk: Option<u64>,
    pub without_us: Option<u64>,
    pub at: Millis,
}

pub fn queue() -> (mpsc::Sender<Request>, mpsc::Receiver<Request>) {
    mpsc::channel(QUEUE)
}

pub struct Sampler {
    pub config: AudienceConfig,
    pub queries: Queries,
    pub clock: Clock,
    /// Where samples go: the control loop.
    pub samples: mpsc::Sender<Sample>,
}

impl Sampler {
    pub async fn run(self, mut requests: mpsc::Receiver<Request>, shutdown: CancellationToken) {
        let templates = Templates::new();
        loop {
            let req = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = requests.recv() => match r {
                    Some(r) => r,
                    None => break,
                },
            };
            let s = tokio::select! {
                _ = shutdown.cancelled() => break,
                s = self.sample(&templates, req) => s,
            };
            if self.samples.try_send(s).is_err() {
                tracing::debug!("control loop busy; audience sample dropped");
            }
        }
    }

    async fn sample(&self, templates: &Templates, req: Request) -> Sample {
        let ctx = json!({ "labels": req.labels });
        let figure = |expr: Option<String>| {
            let ctx = &ctx;
            async move {
                let src = expr?;
                let rendered = match templates.render_str(&src, ctx) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e.message, "audience query cannot be rendered for this incident");
                        return None;
                    }
                };
                match self.queries.query(&rendered).await {
                    Ok(v) => listeners(&v),
                    Err(e) => {
                        tracing::warn!(error = %e, query = %rendered, "audience query failed");
                        None
                    }
                }
            }
        };
        let listening = figure(Some(self.config.listening.clone())).await;
        let at_risk = figure(self.config.at_risk.clone()).await;
        let without_us = figure(self.config.without_us.clone()).await;
        Sample {
            incident: req.incident,
            listening,
            at_risk,
            without_us,
            at: self.clock.now(),
        }
    }
}

/// A count of people from a query's answer: the sum of its samples,
/// rounded; nothing for an empty answer or one that is not a count.
pub fn listeners(v: &Value) -> Option<u64> {
    let total = match v {
        Value::Scalar(x) => *x,
        Value::Vector(samples) if !samples.is_empty() => samples.iter().map(|s| s.value).sum(),
        _ => return None,
    };
    (total.is_finite() && total >= 0.0).then(|| total.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Labels;
    use crate::promql::Sample as Point;

    #[test]
    fn a_count_is_the_sum_of_what_the_query_gave() {
        let v = Value::Vector(vec![
            Point {
                labels: Labels::new().with("room", "a"),
                value: 10.4,
            },
            Point {
                labels: Labels::new().with("room", "b"),
                value: 5.0,
            },
        ]);
        assert_eq!(listeners(&v), Some(15));
        assert_eq!(listeners(&Value::Scalar(3.0)), Some(3));
        // Nothing is unknown, not zero: a room with no series is not empty.
        assert_eq!(listeners(&Value::Vector(vec![])), None);
        assert_eq!(listeners(&Value::Scalar(f64::NAN)), None);
        assert_eq!(listeners(&Value::Scalar(-1.0)), None);
        assert_eq!(listeners(&Value::String("x".into())), None);
    }

    #[test]
    fn the_simulators_queries_are_valid_and_encode_the_label() {
        let c = AudienceConfig::for_simulator();
        let t = Templates::new();
        for q in [
            Some(&c.listening),
            c.at_risk.as_ref(),
            c.without_us.as_ref(),
        ] {
            let q = q.unwrap();
            check_query(q).unwrap();
            assert!(
                crate::runbook::template::promql_string_warnings(q).is_empty(),
                "{q}"
            );
            // A hostile label value stays inside its string.
            let ctx = json!({"labels": {"event": "x\"} or vector(1) or {a=\""}});
            let rendered = t.render_str(q, &ctx).unwrap();
            assert!(
                rendered.contains(r#"event="x\x22} or vector(1) or {a=\x22""#),
                "{rendered}"
            );
            crate::promql::parse(&rendered).unwrap_or_else(|e| panic!("{rendered}: {e}"));
        }
        assert!(check_query("sum(").is_err());
        assert!(check_query("{{ nope(").is_err());
    }
}
