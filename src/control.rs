//! The control loop: the one owner of run state.
//!
//! Alert transitions from the watcher, run ends from the executor and
//! commands from people (chat, CLI, HTTP; parsed and authorised at the
//! edge) all arrive here through bounded queues. The loop records alerts
//! and the incident timeline, posts to chat, asks dispatch what to start,
//! and starts runs on the executor.

use std::collections::BTreeMap;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::chat::{ChatMessage, Kind, Outbox};
use crate::clock::{Clock, Millis};
use crate::dispatch::{AlertCtx, Decision, Dispatcher, Pause};
use crate::executor::{Executor, Outcome, RunFinished, RunRequest, Verdict, Waiting};
use crate::roles::Role;
use crate::rules::{AlertEvent, AlertEventKind};
use crate::store::Store;

/// A command from a person, already parsed and authorised.
#[derive(Debug)]
pub enum Command {
    Status(oneshot::Sender<Status>),
    Pause {
        by: String,
        reason: String,
    },
    Resume {
        by: String,
    },
    /// Approve or deny the gate a run waits at. The reply is what was
    /// decided, or why the person may not.
    Answer {
        run: String,
        verdict: Verdict,
        by: String,
        role: Role,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Stop a run now.
    Abort {
        run: String,
        by: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Status {
    pub paused: Option<Pause>,
    /// (runbook, concurrency key, run id)
    pub running: Vec<(String, String, String)>,
    pub firing: Vec<String>,
    /// Runs waiting for a person's approval.
    pub waiting: Vec<Waiting>,
}

pub struct Control {
    pub dispatcher: Dispatcher,
    pub executor: Executor,
    pub store: Store,
    pub outbox: Outbox,
    pub clock: Clock,
    pub channel: String,
    pub incident_group_by: Vec<String>,
    /// Fingerprint -> (alertname, incident) of alerts now firing.
    firing: BTreeMap<u64, (String, String)>,
    last_incident: Option<String>,
    run_seq: u64,
    /// Differs between processes, so run ids (and the idempotency keys
    /// made from them) never repeat across restarts.
    boot: u16,
}

impl Control {
    pub fn new(
        dispatcher: Dispatcher,
        executor: Executor,
        store: Store,
        outbox: Outbox,
        clock: Clock,
        channel: String,
        incident_group_by: Vec<String>,
    ) -> Self {
        Control {
            dispatcher,
            executor,
            store,
            outbox,
            clock,
            channel,
            incident_group_by,
            firing: BTreeMap::new(),
            last_incident: None,
            run_seq: 0,
            boot: {
                use std::hash::{BuildHasher, Hasher};
                std::collections::hash_map::RandomState::new()
                    .build_hasher()
                    .finish() as u16
            },
        }
    }

    /// Runs until shutdown or until every input queue is closed.
    pub async fn run(
        mut self,
        mut alerts: mpsc::Receiver<AlertEvent>,
        mut finished: mpsc::Receiver<RunFinished>,
        mut commands: mpsc::Receiver<Command>,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(ev) = alerts.recv() => self.on_alert(ev).await,
                Some(f) = finished.recv() => self.on_finished(f).await,
                Some(c) = commands.recv() => self.on_command(c).await,
                else => break,
            }
        }
    }

    /// Alerts for one event form one incident: the values of the
    /// `group_by` labels name it. An alert without them joins the newest
    /// open incident, since in practice it is about the same trouble.
    fn incident_for(&mut self, labels: &BTreeMap<String, String>, alertname: &str) -> String {
        let parts: Vec<&str> = self
            .incident_group_by
            .iter()
            .filter_map(|k| labels.get(k).map(String::as_str))
            .collect();
        let id = if !parts.is_empty() {
            parts.join("-")
        } else if let Some(last) = &self.last_incident {
            last.clone()
        } else {
            alertname.to_owned()
        };
        self.last_incident = Some(id.clone());
        id
    }

    async fn say(&self, incident: Option<&str>, kind: Kind, text: String) {
        let msg = ChatMessage {
            channel: self.channel.clone(),
            incident: incident.map(str::to_owned),
            kind,
            text,
            at: self.clock.now(),
        };
        if let Err(e) = self.outbox.post(&msg).await {
            tracing::error!(error = %e, "cannot queue chat message");
        }
    }

    async fn timeline(&self, incident: &str, at: Millis, kind: &str, actor: &str, text: &str) {
        if let Err(e) = self
            .store
            .append_timeline(incident, at, kind, actor, text)
            .await
        {
            tracing::error!(error = %e, "cannot write timeline");
        }
    }

    async fn on_alert(&mut self, ev: AlertEvent) {
        let a = &ev.alert;
        let labels: BTreeMap<String, String> = a.labels.as_map().clone();
        let fp = a.labels.fingerprint();
        let state = match ev.kind {
            AlertEventKind::Pending => "pending",
            AlertEventKind::Firing => "firing",
            AlertEventKind::Resolved => "resolved",
        };
        let labels_json = serde_json::to_string(&labels).unwrap_or_default();
        let ann_json = serde_json::to_string(&a.annotations).unwrap_or_default();
        if let Err(e) = self
            .store
            .upsert_alert(
                &format!("{fp:016x}"),
                &a.rule,
                &labels_json,
                &ann_json,
                state,
                a.active_at,
                a.fired_at,
                a.resolved_at,
                a.value,
            )
            .await
        {
            tracing::error!(error = %e, "cannot record alert");
        }
        let summary = a
            .annotations
            .get("summary")
            .cloned()
            .unwrap_or_else(|| a.labels.to_string());
        match ev.kind {
            AlertEventKind::Pending => {}
            AlertEventKind::Firing => {
                let incident = self.incident_for(&labels, &a.rule);
                self.firing.insert(fp, (a.rule.clone(), incident.clone()));
                self.timeline(
                    &incident,
                    ev.at,
                    "alert_firing",
                    "firebreak",
                    &format!("{} firing: {summary}", a.rule),
                )
                .await;
                let sev = labels
                    .get("severity")
                    .map(|s| format!(" [{s}]"))
                    .unwrap_or_default();
                self.say(
                    Some(&incident),
                    Kind::Firing,
                    format!("*{}*{sev} firing: {summary}", a.rule),
                )
                .await;
                let ctx = AlertCtx {
                    name: a.rule.clone(),
                    labels,
                    annotations: a.annotations.clone(),
                    value: a.value,
                    fired_at: a.fired_at.unwrap_or(ev.at),
                };
                self.dispatch(&ctx, &incident).await;
            }
            AlertEventKind::Resolved => {
                let incident = match self.firing.remove(&fp) {
                    Some((_, inc)) => inc,
                    None => self.incident_for(&labels, &a.rule),
                };
                self.timeline(
                    &incident,
                    ev.at,
                    "alert_resolved",
                    "firebreak",
                    &format!("{} resolved", a.rule),
                )
                .await;
                self.say(
                    Some(&incident),
                    Kind::Resolved,
                    format!("*{}* resolved{}", a.rule, identifying(&labels)),
                )
                .await;
            }
        }
    }

    async fn dispatch(&mut self, alert: &AlertCtx, incident: &str) {
        let now = self.clock.now();
        for d in self.dispatcher.on_firing(alert, now) {
            match d {
                Decision::Start(plan) => {
                    self.run_seq += 1;
                    let run_id = format!(
                        "{}-{}-{:04x}{}",
                        plan.runbook.name,
                        now / 1000,
                        self.boot,
                        self.run_seq
                    );
                    self.dispatcher.started(
                        &plan.runbook.name,
                        &plan.concurrency_key,
                        &run_id,
                        now,
                    );
                    self.executor.start(RunRequest {
                        run_id,
                        runbook: plan.runbook,
                        incident: incident.to_owned(),
                        concurrency_key: plan.concurrency_key,
                        alert: Some(alert.clone()),
                        inputs: plan.inputs,
                        actor: "firebreak".into(),
                    });
                }
                Decision::Skip { runbook, reason } => {
                    tracing::info!(%runbook, %reason, "runbook not started");
                    self.timeline(
                        incident,
                        now,
                        "run_skipped",
                        "firebreak",
                        &format!("runbook {runbook} not started: {reason}"),
                    )
                    .await;
                    // People need to know when automation stood aside for
                    // a reason they control; duplicates are routine.
                    if self.dispatcher.paused().is_some() {
                        self.say(
                            Some(incident),
                            Kind::Note,
                            format!("not starting *{runbook}*: {reason}"),
                        )
                        .await;
                    }
                }
            }
        }
    }

    async fn on_finished(&mut self, f: RunFinished) {
        self.dispatcher.finished(&f.runbook, &f.concurrency_key);
        if f.outcome != Outcome::Succeeded {
            tracing::warn!(run = %f.run_id, outcome = f.outcome.as_str(), "run did not succeed");
        }
    }

    async fn on_command(&mut self, c: Command) {
        let now = self.clock.now();
        match c {
            Command::Status(reply) => {
                let _ = reply.send(Status {
                    paused: self.dispatcher.paused().cloned(),
                    running: self
                        .dispatcher
                        .active()
                        .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
                        .collect(),
                    firing: self.firing.values().map(|(n, _)| n.clone()).collect(),
                    waiting: self.executor.waiting(),
                });
            }
            Command::Pause { by, reason } => {
                self.dispatcher.pause(Pause {
                    by: by.clone(),
                    reason: reason.clone(),
                    since: now,
                });
                self.say(
                    None,
                    Kind::Note,
                    format!("automation paused by {by}: {reason}"),
                )
                .await;
            }
            Command::Resume { by } => {
                self.dispatcher.resume();
                self.say(None, Kind::Note, format!("automation resumed by {by}"))
                    .await;
            }
            Command::Answer {
                run,
                verdict,
                by,
                role,
                reply,
            } => {
                let r = self.executor.answer(&run, verdict, &by, role);
                if let Err(e) = &r {
                    // A refused command is recorded: who tried what.
                    tracing::info!(%run, %by, error = %e, "approval refused");
                    self.say(None, Kind::Note, format!("{by}: {e}")).await;
                }
                let _ = reply.send(r.map_err(|e| e.to_string()));
            }
            Command::Abort { run, by, reply } => {
                let r = self.executor.abort(&run, &by);
                if r.is_ok() {
                    self.say(None, Kind::Note, format!("run {run} aborted by {by}"))
                        .await;
                }
                let _ = reply.send(r.map_err(|e| e.to_string()));
            }
        }
    }
}

/// The labels that tell one alert of a rule from another, for one-line
/// chat messages: not the name, the routing labels or the scrape's own.
fn identifying(labels: &BTreeMap<String, String>) -> String {
    const NOISE: [&str; 5] = ["alertname", "severity", "job", "instance", "__name__"];
    let parts: Vec<String> = labels
        .iter()
        .filter(|(k, _)| !NOISE.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifying_labels_leave_out_noise() {
        let l: BTreeMap<String, String> = [
            ("alertname", "X"),
            ("job", "sim"),
            ("room", "main"),
            ("speaker", "host"),
            ("severity", "critical"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        assert_eq!(identifying(&l), " (room=main, speaker=host)");
        assert_eq!(identifying(&BTreeMap::new()), "");
    }
}
