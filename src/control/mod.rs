//! The control loop: the one owner of run state.
//!
//! Alert transitions from the watcher, run ends from the executor and
//! commands from people (chat, CLI, HTTP; parsed and authorised at the
//! edge) all arrive here through bounded queues. The loop records alerts
//! and the incident timeline, posts to chat, asks dispatch what to start,
//! and starts runs on the executor. It also owns the silences: a firing
//! alert that one of them matches is recorded and nothing more.
//!
//! It keeps the tries again that dispatch asks for (rule 5: a run that
//! failed on a passing fault having changed nothing) and, when one is due,
//! starts it only if its alert still fires and is not silenced; each is
//! said in the incident's thread, and so is the last.

mod alerts;
mod audience;
mod command;
mod runs;
mod sight;
mod silences;

use audience::AudienceLink;
pub use command::{
    AckError, Acked, Command, FiringAlert, SilenceBy, SilenceRefused, SilenceView, Status,
    UnsilenceError,
};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::chat::card::{self, Card, CardAlert, CardRun, Status as CardStatus};
use crate::chat::{BoxFut, ChatMessage, Kind, Outbox};
use crate::clock::{Clock, Millis};
use crate::dispatch::{AfterRun, AlertCtx, Decision, Dispatcher, Pause, Plan, StartRefused};
use crate::executor::actions::silence::{Ask, Granted, SilenceError, Silencer};
use crate::executor::{
    AbortError, AnswerError, Executor, Outcome, RunFinished, RunProgress, RunRequest, Verdict,
    Waiting,
};
use crate::matchers::Matcher;
use crate::roles::{Role, Who};
use crate::rules::{AlertEvent, AlertEventKind};
use crate::run_state::RunState;
use crate::silence::{Silence, Silences};
use crate::store::Store;
use crate::timeline::{self as tl, About, By, TimelineEntry};
use serde_json::Value as Json;

/// The timeline that records what people do while no incident is open
/// (refused commands, pauses, silences), so that none goes unrecorded.
pub const OUTSIDE_INCIDENTS: &str = "outside-incidents";

pub struct Control {
    pub dispatcher: Dispatcher,
    pub executor: Executor,
    pub store: Store,
    pub outbox: Outbox,
    pub clock: Clock,
    pub channel: String,
    pub incident_group_by: Vec<String>,
    /// Alerts now firing, by fingerprint. Shared, so that a status (asked
    /// for every `status`, `alerts` and API read) copies pointers, not
    /// ten thousand label sets, while the loop waits.
    firing: BTreeMap<u64, Arc<FiringAlert>>,
    last_incident: Option<String>,
    run_seq: u64,
    /// Differs between processes, so run ids (and the idempotency keys
    /// made from them) never repeat across restarts.
    boot: u16,
    silences: Silences,
    /// Fingerprints of alerts that fired while silenced, so their
    /// resolution is as quiet as their firing was.
    silenced: BTreeSet<u64>,
    /// Each open incident's card; forgotten once it is resolved.
    cards: HashMap<String, Card>,
    /// Incidents whose card changed while handling the current input;
    /// posted once when it is done, so one input makes one update.
    dirty_cards: BTreeSet<String>,
    progress: Option<mpsc::Receiver<RunProgress>>,
    /// Where charts are asked for; `try_send`, never waited on.
    charts: Option<mpsc::Sender<crate::chat::charts::ChartRequest>>,
    /// The checklist runner's queue; `try_send`, never waited on.
    checklists: Option<mpsc::Sender<crate::preflight::task::Request>>,
    /// Tries again that dispatch asked for. One per (runbook, alert) at
    /// most, since each follows the end of the one run its key may have.
    retries: Vec<PendingRetry>,
    /// Where each open incident's audience is asked for, when configured.
    audience: Option<AudienceLink>,
    /// Each incident's `group_by` labels, as its first alert had them:
    /// what its audience queries are rendered with.
    incident_labels: HashMap<String, BTreeMap<String, String>>,
    /// What the watcher reports it cannot see, and what it cannot see now.
    sight_rx: Option<mpsc::Receiver<crate::sight::Change>>,
    /// What the watcher last said is pending, for `status` and `alerts`.
    pending: Option<tokio::sync::watch::Receiver<Arc<Vec<crate::rules::PendingAlert>>>>,
    blind: BTreeMap<crate::sight::Sense, crate::sight::Lost>,
}

/// A run to try again (dispatch rule 5).
#[derive(Clone, Debug)]
struct PendingRetry {
    due: Millis,
    runbook: String,
    alert: AlertCtx,
    incident: String,
    attempt: u32,
    of: u32,
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
            silences: Silences::new(),
            silenced: BTreeSet::new(),
            cards: HashMap::new(),
            dirty_cards: BTreeSet::new(),
            progress: None,
            charts: None,
            checklists: None,
            retries: Vec::new(),
            audience: None,
            incident_labels: HashMap::new(),
            sight_rx: None,
            blind: BTreeMap::new(),
            pending: None,
        }
    }

    /// Takes runs' progress reports (see [`Executor::with_progress`]) to
    /// keep incident cards current.
    pub fn with_progress(mut self, rx: mpsc::Receiver<RunProgress>) -> Self {
        self.progress = Some(rx);
        self
    }

    /// Reads the alerts the watcher says are pending (see
    /// [`crate::watcher::Watcher::pending`]).
    pub fn with_pending(
        mut self,
        rx: tokio::sync::watch::Receiver<Arc<Vec<crate::rules::PendingAlert>>>,
    ) -> Self {
        self.pending = Some(rx);
        self
    }

    /// Asks for a chart when an alert first fires in an incident.
    pub fn with_charts(mut self, tx: mpsc::Sender<crate::chat::charts::ChartRequest>) -> Self {
        self.charts = Some(tx);
        self
    }

    /// Asks the audience sampler behind `requests` every `every` for each
    /// open incident, and puts its `samples` on the cards.
    pub fn with_audience(
        mut self,
        requests: mpsc::Sender<crate::audience::Request>,
        samples: mpsc::Receiver<crate::audience::Sample>,
        every: crate::duration::PromDuration,
        follow_for: crate::duration::PromDuration,
    ) -> Self {
        let every = (every.as_millis() as Millis).max(1);
        self.audience = Some(AudienceLink {
            requests,
            samples: Some(samples),
            every,
            next_at: self.clock.now() + every,
            follow_for: follow_for.as_millis() as Millis,
            following: HashMap::new(),
            turn: 0,
        });
        self
    }

    /// Passes checklist requests to the runner behind `tx`.
    pub fn with_checklists(mut self, tx: mpsc::Sender<crate::preflight::task::Request>) -> Self {
        self.checklists = Some(tx);
        self
    }

    /// Runs until shutdown or until every input queue is closed.
    pub async fn run(
        mut self,
        mut alerts: mpsc::Receiver<AlertEvent>,
        mut finished: mpsc::Receiver<RunFinished>,
        mut commands: mpsc::Receiver<Command>,
        shutdown: CancellationToken,
    ) {
        let mut progress = self.progress.take();
        let mut sight = self.sight_rx.take();
        let mut samples = self.audience.as_mut().and_then(|a| a.samples.take());
        loop {
            let next_sample = async {
                match samples.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let clock = self.clock.clone();
            let next_tick = self.audience.as_ref().map(|a| a.next_at);
            let audience_due = async move {
                match next_tick {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let next_progress = async {
                match progress.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let next_sight = async {
                match sight.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let clock = self.clock.clone();
            let next_retry = self.retries.iter().map(|r| r.due).min();
            let retry_due = async move {
                match next_retry {
                    Some(at) => clock.sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(ev) = alerts.recv() => self.on_alert(ev).await,
                Some(f) = finished.recv() => self.on_finished(f).await,
                Some(c) = commands.recv() => self.on_command(c).await,
                Some(p) = next_progress => self.on_progress(p),
                Some(c) = next_sight => self.on_sight(c).await,
                () = retry_due => self.on_retries_due().await,
                () = audience_due => self.on_audience_tick(),
                Some(s) = next_sample => self.on_audience(s).await,
                else => break,
            }
            self.post_cards().await;
        }
    }

    /// The card of `incident`, made if it has none yet.
    fn card(&mut self, incident: &str) -> &mut Card {
        let now = self.clock.now();
        self.dirty_cards.insert(incident.to_owned());
        if !self.cards.contains_key(incident) {
            // A new incident while blind says so from its first card.
            let mut c = Card::new(incident, now);
            c.blind = self.blind_lines();
            self.cards.insert(incident.to_owned(), c);
        }
        self.cards.get_mut(incident).expect("inserted above")
    }

    /// Posts every card that changed to its slot. A resolved card is
    /// posted and then forgotten: if the incident comes back, a new card
    /// replaces the old message.
    async fn post_cards(&mut self) {
        for incident in std::mem::take(&mut self.dirty_cards) {
            let Some(c) = self.cards.get(&incident) else {
                continue;
            };
            let kind = match c.status {
                CardStatus::Firing => Kind::Firing,
                CardStatus::Resolved => Kind::Resolved,
                CardStatus::Failed => Kind::RunFailed,
                CardStatus::Recovered => Kind::RunFinished,
                CardStatus::Mitigating | CardStatus::AwaitingApproval => Kind::RunStarted,
            };
            let msg = ChatMessage {
                channel: self.channel.clone(),
                incident: Some(incident.clone()),
                kind,
                text: c.text(),
                at: self.clock.now(),
                slot: Some(card::SLOT.to_owned()),
                card: Some(c.posted()),
                reply_to: None,
                image: None,
                checklist: None,
            };
            if let Err(e) = self.outbox.post(&msg).await {
                tracing::error!(error = %e, %incident, "cannot queue the incident card");
            }
            if c.status == CardStatus::Resolved {
                self.cards.remove(&incident);
                let labels = self.incident_labels.remove(&incident).unwrap_or_default();
                if let Some(a) = self.audience.as_mut()
                    && a.follow_for > 0
                {
                    let until = self.clock.now() + a.follow_for;
                    a.following.insert(incident.clone(), (until, labels));
                }
            }
        }
    }

    fn on_progress(&mut self, p: RunProgress) {
        let now = self.clock.now();
        let card = self.card(&p.incident);
        // A report can arrive after the run's end; the end stands.
        if let Some(r) = &card.run
            && r.id == p.run_id
            && r.state.is_over()
        {
            return;
        }
        card.run_progress(
            CardRun {
                id: p.run_id,
                runbook: p.runbook,
                state: p.state,
                last_step: p.last_step,
                waiting: p.waiting,
            },
            now,
        );
    }

    /// Runbooks a person may start by hand for this alert: manual ones
    /// whose trigger names it.
    fn runnable_for(&self, alertname: &str) -> Vec<String> {
        self.dispatcher
            .runbooks()
            .iter()
            .filter(|rb| rb.manual && rb.triggers.iter().any(|t| t.alertname == alertname))
            .map(|rb| rb.name.clone())
            .collect()
    }

    /// Matchers for the Silence button, as the `silence` command takes
    /// them: the incident's grouping labels, or failing those the alert's
    /// own name and identifying labels.
    fn silence_matchers(&self, alertname: &str, labels: &BTreeMap<String, String>) -> String {
        let mut parts: Vec<String> = self
            .incident_group_by
            .iter()
            .filter_map(|k| labels.get(k).map(|v| format!("{k}={v:?}")))
            .collect();
        if parts.is_empty() {
            parts.push(format!("alertname={alertname:?}"));
            parts.extend(
                card_labels(labels)
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v:?}")),
            );
        }
        parts.join(" ")
    }

    /// Alerts for one event form one incident: the values of the
    /// `group_by` labels name it. An alert without them joins the newest
    /// open incident, since in practice it is about the same trouble.
    fn incident_for(&mut self, labels: &crate::labels::Labels, alertname: &str) -> String {
        let parts: Vec<&str> = self
            .incident_group_by
            .iter()
            .filter_map(|k| labels.get(k))
            .collect();
        // Without any of the grouping labels an alert is its own incident,
        // never the newest open one: a node alert must not land on a live
        // event's card.
        let id = if !parts.is_empty() {
            parts.join("-")
        } else {
            crate::incident::ungrouped_name(alertname, labels.iter(), labels.fingerprint())
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
            slot: None,
            card: None,
            reply_to: None,
            image: None,
            checklist: None,
        };
        if let Err(e) = self.outbox.post(&msg).await {
            tracing::error!(error = %e, "cannot queue chat message");
        }
    }

    async fn timeline(
        &self,
        incident: &str,
        at: Millis,
        kind: tl::Kind,
        by: By,
        about: About,
        text: &str,
    ) {
        let entry = TimelineEntry::new(incident, at, kind, by, about, text);
        if let Err(e) = self.store.append_timeline(&entry).await {
            tracing::error!(error = %e, "cannot write timeline");
        }
    }

    /// Where a refusal is recorded: the incident of the run it was about,
    /// else the one a person's action belongs to, else
    /// [`OUTSIDE_INCIDENTS`]: every refusal is on some timeline.
    fn refusal_incident(&self, run: Option<&str>) -> String {
        run.and_then(|run| {
            self.cards
                .values()
                .find(|c| c.run.as_ref().is_some_and(|r| r.id == run))
                .map(|c| c.incident.clone())
        })
        .unwrap_or_else(|| self.action_incident())
    }

    /// Where a person's action that concerns no incident in particular
    /// (a pause) is recorded: the incident it belongs to, else
    /// [`OUTSIDE_INCIDENTS`], so that every action is on some timeline.
    fn action_incident(&self) -> String {
        self.current_incident()
            .unwrap_or_else(|| OUTSIDE_INCIDENTS.to_owned())
    }

    /// The incident a person's action belongs to: the newest one with an
    /// alert still firing, else the newest at all.
    fn current_incident(&self) -> Option<String> {
        self.firing
            .values()
            .filter(|f| f.silenced_by.is_none())
            .max_by_key(|f| f.since)
            .map(|f| f.incident.clone())
            .or_else(|| self.last_incident.clone())
    }
}

/// The labels a card shows for an alert: those that tell it from others
/// of its rule.
fn card_labels(labels: &BTreeMap<String, String>) -> Vec<(String, String)> {
    const NOISE: [&str; 5] = ["alertname", "severity", "job", "instance", "__name__"];
    labels
        .iter()
        .filter(|(k, _)| !NOISE.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn firing_alert(
    a: &crate::rules::Alert,
    incident: &str,
    summary: &str,
    at: Millis,
    silenced_by: Option<String>,
) -> FiringAlert {
    FiringAlert {
        fingerprint: format!("{:016x}", a.labels.fingerprint()),
        name: a.rule.clone(),
        group: a.group.clone(),
        incident: incident.to_owned(),
        labels: a.labels.to_map(),
        summary: summary.to_owned(),
        value: a.value,
        since: a.fired_at.unwrap_or(at),
        acked: None,
        silenced_by,
    }
}

/// The labels that tell one alert of a rule from another, for one-line
/// chat messages: not the name, the routing labels or the scrape's own.
pub fn identifying(labels: &BTreeMap<String, String>) -> String {
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

#[cfg(test)]
mod card_tests;
#[cfg(test)]
mod silence_tests;
#[cfg(test)]
mod timer_tests;
