//! The chart task: when an alert first fires in an incident, the control
//! loop asks for a chart ([`ChartRequest`]); this task evaluates the
//! alert's metric over the last window through the watcher's query
//! handle (or the remote API), draws it ([`super::chart`]) and posts it
//! into the incident's thread through the outbox.
//!
//! Charts are an extra beside the card, never on the alert's path: the
//! request queue is small and a full one drops the request (the control
//! loop never waits), one chart is drawn at a time, and a failure is
//! logged and skipped.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::FixedOffset;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::chart::{self, Lines, Spec};
use super::{ChatMessage, Image, Kind, Outbox};
use crate::clock::{Clock, Millis};
use crate::duration::PromDuration;
use crate::labels::Labels;
use crate::promql::Value;
use crate::rules::{Rule, RuleGroup};
use crate::watcher::Queries;

/// Requests waiting for the chart task. Full, a request is dropped: a
/// storm of new alerts must not queue minutes of drawing.
pub const QUEUE: usize = 8;

/// How far back a chart looks, at most: the local series store keeps
/// only what the rules need (at least five minutes), so there it covers
/// what it has.
pub const WINDOW_MS: Millis = 15 * 60 * 1000;

/// Points per line.
pub const POINTS: i64 = 30;

/// A chart wanted for one alert of one incident.
#[derive(Clone, Debug)]
pub struct ChartRequest {
    pub incident: String,
    pub channel: String,
    pub group: String,
    pub rule: String,
    pub labels: Labels,
    pub at: Millis,
}

/// Alerting rules' expressions, by (group, alert name).
pub type Exprs = HashMap<(String, String), String>;

pub fn exprs(groups: &[RuleGroup]) -> Exprs {
    groups
        .iter()
        .flat_map(|g| {
            g.rules.iter().filter_map(move |r| match r {
                Rule::Alerting(a) => Some(((g.name.clone(), a.name.clone()), a.expr_text.clone())),
                Rule::Recording(_) => None,
            })
        })
        .collect()
}

pub struct Charts {
    pub exprs: Arc<Exprs>,
    pub queries: Queries,
    pub outbox: Outbox,
    pub clock: Clock,
    /// How far back the source can answer (the local store's retention;
    /// [`WINDOW_MS`] for a remote API).
    pub window: Millis,
    pub offset: FixedOffset,
    pub zone: String,
}

/// The queue the control loop sends requests into, and its other end.
pub fn queue() -> (mpsc::Sender<ChartRequest>, mpsc::Receiver<ChartRequest>) {
    mpsc::channel(QUEUE)
}

impl Charts {
    pub async fn run(self, mut rx: mpsc::Receiver<ChartRequest>, shutdown: CancellationToken) {
        loop {
            let req = tokio::select! {
                r = rx.recv() => match r { Some(r) => r, None => return },
                () = shutdown.cancelled() => return,
            };
            tokio::select! {
                () = self.one(req) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    async fn one(&self, req: ChartRequest) {
        let Some(expr) = self.exprs.get(&(req.group.clone(), req.rule.clone())) else {
            // Alerts from Alertmanager carry no expression here.
            return;
        };
        match self.draw(&req, expr).await {
            Ok(Some(msg)) => {
                if let Err(e) = self.outbox.post(&msg).await {
                    tracing::error!(error = %e, rule = %req.rule, "cannot queue the chart");
                }
            }
            Ok(None) => tracing::debug!(rule = %req.rule, "no points to chart"),
            Err(e) => tracing::warn!(error = %e, rule = %req.rule, "cannot chart the alert"),
        }
    }

    /// `expr` at each of `times`, the alert's own series only.
    async fn lines(
        &self,
        expr: &str,
        times: &[Millis],
        alert: &Labels,
    ) -> Result<Lines, crate::watcher::QueryError> {
        let mut lines = Lines::default();
        let values = self.queries.query_at(expr, times.to_vec()).await?;
        for (t, v) in times.iter().zip(values) {
            match v {
                Value::Vector(samples) => {
                    for s in samples.iter().filter(|s| chart::belongs(&s.labels, alert)) {
                        lines.push(&s.labels, *t, s.value);
                    }
                }
                Value::Scalar(v) => lines.push(&Labels::new(), *t, v),
                // Alert expressions are instant vectors; anything else has
                // nothing to draw.
                _ => {}
            }
        }
        Ok(lines)
    }

    async fn draw(&self, req: &ChartRequest, expr: &str) -> anyhow::Result<Option<ChatMessage>> {
        let plan = chart::plan(expr);
        // Whole minutes read better in a title than the store's 5m1s.
        let window = self.window.clamp(60_000, WINDOW_MS) / 60_000 * 60_000;
        let step = window / POINTS;
        let from = req.at - window;
        let times: Vec<Millis> = (0..=POINTS).map(|i| from + i * step).collect();
        let lines = self.lines(&plan.expr, &times, &req.labels).await?;
        if lines.is_empty() {
            return Ok(None);
        }
        let limits = match &plan.against {
            Some(e) => self.lines(e, &times, &req.labels).await?.into_lines(),
            None => Vec::new(),
        };
        let span = PromDuration::from_millis(window as u64);
        let title = format!("{}: last {span}", req.rule);
        let spec = Spec {
            title: title.clone(),
            lines: lines.into_lines(),
            threshold: plan.threshold,
            limits,
            from,
            to: req.at,
            offset: self.offset,
            zone: self.zone.clone(),
        };
        // Drawing is CPU work of tens of milliseconds: off the runtime's
        // threads.
        let png = tokio::task::spawn_blocking(move || chart::render(&spec)).await??;
        let threshold = match (&plan.threshold, &plan.against) {
            (Some(t), _) => format!(" against the threshold {}", super::card::human_value(*t)),
            (None, Some(e)) => format!(" against `{e}`"),
            (None, None) => String::new(),
        };
        Ok(Some(ChatMessage {
            channel: req.channel.clone(),
            incident: Some(req.incident.clone()),
            kind: Kind::Note,
            text: format!("chart: `{}` over the last {span}{threshold}", plan.expr),
            at: self.clock.now(),
            image: Some(Image { png, title }),
            ..ChatMessage::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::tsdb::SeriesStore;

    const NOW: Millis = 1_684_965_600_000;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().copied().collect()
    }

    /// The chart task against a fixed series store: what it posts.
    async fn chart_for(req: ChartRequest, expr: &str) -> Vec<ChatMessage> {
        let mut series = SeriesStore::new(WINDOW_MS);
        for i in 0..=60 {
            let t = NOW - WINDOW_MS + i * 15_000;
            for (event, v) in [("launch", 1000.0 * i as f64), ("other", 5.0)] {
                series
                    .append(
                        labels(&[("__name__", "joins_per_minute"), ("event", event)]),
                        t,
                        v,
                    )
                    .unwrap();
            }
        }
        let clock = Clock::manual(NOW);
        let (queries, requests) = crate::watcher::queries(None, clock.clone());
        tokio::spawn(crate::watcher::serve_fixed(requests, series, clock.clone()));
        let store = Store::open("sqlite::memory:").await.unwrap();
        let outbox = Outbox::new(store.clone());
        let mut exprs = Exprs::new();
        exprs.insert(("g".into(), "Surge".into()), expr.into());
        let charts = Charts {
            exprs: Arc::new(exprs),
            queries,
            outbox,
            clock,
            window: WINDOW_MS,
            offset: FixedOffset::east_opt(0).unwrap(),
            zone: "UTC".into(),
        };
        let (tx, rx) = queue();
        tx.send(req).await.unwrap();
        drop(tx);
        charts.run(rx, CancellationToken::new()).await;
        store
            .pending_outbox(10)
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_str(&r.payload_json).unwrap())
            .collect()
    }

    fn request(rule: &str) -> ChartRequest {
        ChartRequest {
            incident: "launch".into(),
            channel: "#live".into(),
            group: "g".into(),
            rule: rule.into(),
            labels: labels(&[
                ("alertname", "Surge"),
                ("event", "launch"),
                ("severity", "page"),
            ]),
            at: NOW,
        }
    }

    #[tokio::test]
    async fn a_firing_alert_gets_its_series_charted_in_the_incident_thread() {
        let posted = chart_for(request("Surge"), "joins_per_minute > 40000").await;
        assert_eq!(posted.len(), 1, "{posted:?}");
        let m = &posted[0];
        assert_eq!(m.incident.as_deref(), Some("launch"));
        assert_eq!(
            m.text,
            "chart: `joins_per_minute` over the last 15m against the threshold 40,000"
        );
        let img = m.image.as_ref().expect("an image, kept through the outbox");
        assert_eq!(img.title, "Surge: last 15m");
        assert_eq!(&img.png[..4], b"\x89PNG");
    }

    #[tokio::test]
    async fn an_unknown_rule_or_nothing_to_draw_posts_nothing() {
        assert!(chart_for(request("NotARule"), "x > 1").await.is_empty());
        assert!(
            chart_for(request("Surge"), "no_such_metric > 1")
                .await
                .is_empty()
        );
    }
}
