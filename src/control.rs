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

/// The timeline that records what happens while no incident is open
/// (refused commands), so that none goes unrecorded.
pub const OUTSIDE_INCIDENTS: &str = "outside-incidents";

/// Expired silences are forgotten in memory this long after they end (they
/// stay in the store).
const SILENCE_MEMORY_MS: Millis = 24 * 3600 * 1000;

/// The control loop owns silences; a `silence` step asks it through its
/// queue, as a person's command would.
impl Silencer for mpsc::Sender<Command> {
    fn silence(&self, ask: Ask) -> BoxFut<'_, Result<Granted, SilenceError>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let cmd = Command::Silence {
                matchers: ask.matchers,
                duration_ms: ask.duration_ms,
                by: ask.by,
                comment: ask.comment,
                key: Some(ask.key),
                reply,
            };
            self.send(cmd).await.map_err(|_| SilenceError::Stopped)?;
            let (id, ends_at) = answer
                .await
                .map_err(|_| SilenceError::Stopped)?
                .map_err(|e| SilenceError::Refused(e.to_string()))?;
            Ok(Granted { id, ends_at })
        })
    }
}

/// A command from a person, already parsed and authorised. `by` is who
/// asked: their user id decides, and records show the name beside it
/// ([`crate::roles::Who::label`]). A silence's `by` is a label because a
/// runbook step asks for silences too.
#[derive(Debug)]
pub enum Command {
    Status(oneshot::Sender<Status>),
    /// Answers once automation is paused, so "paused" is only said of a
    /// pause in force.
    Pause {
        by: Who,
        reason: String,
        reply: oneshot::Sender<()>,
    },
    Resume {
        by: Who,
        reply: oneshot::Sender<()>,
    },
    /// Approve or deny the gate a run waits at. The reply is what was
    /// decided, or why the person may not.
    Answer {
        run: String,
        verdict: Verdict,
        by: Who,
        role: Role,
        reply: oneshot::Sender<Result<String, AnswerError>>,
    },
    /// Stop a run now.
    Abort {
        run: String,
        by: Who,
        reply: oneshot::Sender<Result<(), AbortError>>,
    },
    /// Silences matching alerts from now for `duration_ms`; replies with
    /// the silence's id and end, or why it was refused. With a `key` (a
    /// runbook step's idempotency key) asking twice makes one silence: a
    /// step repeated after a restart gets the first one back.
    Silence {
        matchers: Vec<Matcher>,
        duration_ms: Millis,
        by: String,
        comment: String,
        key: Option<String>,
        reply: oneshot::Sender<Result<(String, Millis), SilenceRefused>>,
    },
    /// Expires a silence now.
    Unsilence {
        id: String,
        by: String,
        reply: oneshot::Sender<Result<(), UnsilenceError>>,
    },
    /// Acknowledges firing alerts: `target` is an alert's fingerprint (or
    /// a unique prefix of it), an alert name, or an incident. Replies with
    /// what was acknowledged.
    Ack {
        target: String,
        by: Who,
        reply: oneshot::Sender<Result<String, AckError>>,
    },
    /// Starts a runbook by hand with the inputs given (values as typed,
    /// checked against the runbook's inputs). Replies with the run id.
    Run {
        runbook: String,
        inputs: BTreeMap<String, Json>,
        by: Who,
        reply: oneshot::Sender<Result<String, StartRefused>>,
    },
    /// For the checklist runner ([`crate::preflight::task`]): start a run,
    /// or sign one off. Passed on without waiting; the runner replies.
    Checklist(crate::preflight::task::Request),
    /// Reloaded runbooks ([`crate::reload`]): alerts from now on match
    /// these. Runs in flight finish on the version they started with;
    /// concurrency, cooldowns and budgets carry over by runbook name.
    /// Answers once they are in place.
    Reload {
        runbooks: Vec<std::sync::Arc<crate::runbook::Runbook>>,
        reply: oneshot::Sender<()>,
    },
    /// A command the edge refused (the person's role was too low, or they
    /// have none at all), to be recorded where the rest of the incident's
    /// story is.
    Refused {
        by: Who,
        command: String,
        reason: String,
    },
}

/// Why a silence was not made.
#[derive(Debug, thiserror::Error)]
pub enum SilenceRefused {
    #[error(transparent)]
    Invalid(#[from] crate::silence::SilenceError),
    /// A silence that would vanish on restart is refused.
    #[error("cannot save the silence: {0}")]
    NotSaved(#[source] crate::store::StoreError),
}

/// Why a silence was not expired, or not for good.
#[derive(Debug, thiserror::Error)]
pub enum UnsilenceError {
    #[error(transparent)]
    Unknown(#[from] crate::silence::SilenceError),
    /// In force until restart only; said rather than pretended.
    #[error("expired until restart, but cannot save that: {0}")]
    NotSaved(#[source] crate::store::StoreError),
}

/// Why nothing was acknowledged.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum AckError {
    #[error("no alert is firing, so there is nothing to acknowledge as {target:?}")]
    NothingFiring { target: String },
    #[error(
        "nothing firing is called {target:?}{}; firing: {firing}",
        hint.as_ref().map(|h| format!(" (did you mean `{h}`?)")).unwrap_or_default()
    )]
    NoMatch {
        target: String,
        hint: Option<String>,
        /// The names and incidents that do fire, counted past a few.
        firing: String,
    },
}

/// An alert now firing, as `status` and `alerts` show it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FiringAlert {
    /// The label set's fingerprint, 16 hex digits, as the store keys it.
    pub fingerprint: String,
    pub name: String,
    /// Where it came from: its rule group for firebreak's own rules, or
    /// `alertmanager` / `api` for pushed alerts.
    pub group: String,
    pub incident: String,
    pub labels: BTreeMap<String, String>,
    pub summary: String,
    /// The alert expression's value when it fired.
    pub value: f64,
    pub since: Millis,
    pub acked: Option<Acked>,
    /// The silence that keeps it quiet, if one does.
    pub silenced_by: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Acked {
    pub by: String,
    pub at: Millis,
}

/// An active silence, as `status` shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SilenceView {
    pub id: String,
    pub matchers: String,
    pub ends_at: Millis,
    pub by: String,
    pub comment: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    pub paused: Option<Pause>,
    /// (runbook, concurrency key, run id), by run id.
    pub running: Vec<(String, String, String)>,
    /// Oldest first; silenced ones included, marked.
    pub firing: Vec<Arc<FiringAlert>>,
    /// Runs waiting for a person's approval.
    pub waiting: Vec<Waiting>,
    pub silences: Vec<SilenceView>,
    /// The incident that alerts without `group_by` labels join, and that
    /// manual runs and refusals are recorded under.
    pub incident: Option<String>,
}

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
}

/// The audience sampler's two queues and the control loop's tick for it.
struct AudienceLink {
    requests: mpsc::Sender<crate::audience::Request>,
    samples: Option<mpsc::Receiver<crate::audience::Sample>>,
    every: Millis,
    next_at: Millis,
    follow_for: Millis,
    /// Resolved incidents still measured for their review, until when,
    /// with their labels.
    following: HashMap<String, (Millis, BTreeMap<String, String>)>,
    /// Where the next tick starts in the sorted list of incidents.
    turn: usize,
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
        }
    }

    /// Takes runs' progress reports (see [`Executor::with_progress`]) to
    /// keep incident cards current.
    pub fn with_progress(mut self, rx: mpsc::Receiver<RunProgress>) -> Self {
        self.progress = Some(rx);
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

    /// Loads the saved silences; call before [`Control::run`]. A store
    /// failure is logged and the bot starts with none, which can only make
    /// it page more, never less.
    pub async fn restore_silences(&mut self) {
        match self.store.silences().await {
            Ok(all) => {
                for s in all {
                    self.silences.restore(s);
                }
                self.silences.prune(self.clock.now() - SILENCE_MEMORY_MS);
                tracing::info!(
                    active = self.silences.active(self.clock.now()).count(),
                    "silences restored"
                );
            }
            Err(e) => tracing::error!(error = %e, "cannot load silences; starting with none"),
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
        let mut progress = self.progress.take();
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
        self.cards
            .entry(incident.to_owned())
            .or_insert_with(|| Card::new(incident, now))
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

    async fn on_alert(&mut self, ev: AlertEvent) {
        let a = &ev.alert;
        let labels: BTreeMap<String, String> = a.labels.to_map();
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
        if self.quiet_if_silenced(&ev).await {
            return;
        }
        let summary = a
            .annotations
            .get("summary")
            .cloned()
            .unwrap_or_else(|| a.labels.to_string());
        match ev.kind {
            AlertEventKind::Pending => {}
            AlertEventKind::Firing => {
                let incident = self.incident_for(&a.labels, &a.rule);
                if !self.incident_labels.contains_key(&incident) {
                    let group: BTreeMap<String, String> = self
                        .incident_group_by
                        .iter()
                        .filter_map(|k| a.labels.get(k).map(|v| (k.clone(), v.to_owned())))
                        .collect();
                    self.incident_labels.insert(incident.clone(), group);
                }
                self.firing.insert(
                    fp,
                    Arc::new(firing_alert(a, &incident, &summary, ev.at, None)),
                );
                // The condition held before the alert fired here (the
                // rule's `for`, or a pusher's delay): dated when it began,
                // so a review measures detection from there.
                if a.active_at < ev.at {
                    self.timeline(
                        &incident,
                        a.active_at,
                        tl::Kind::AlertBegan,
                        By::Bot,
                        About::alert(&a.rule),
                        &crate::incident::began_text(&a.rule, ev.at - a.active_at),
                    )
                    .await;
                }
                self.timeline(
                    &incident,
                    ev.at,
                    tl::Kind::AlertFiring,
                    By::Bot,
                    About::alert(&a.rule),
                    &crate::incident::firing_text(&a.rule, &summary),
                )
                .await;
                let now = self.clock.now();
                let runnable = self.runnable_for(&a.rule);
                let silence = self.silence_matchers(&a.rule, &labels);
                let alert = CardAlert {
                    name: a.rule.clone(),
                    severity: labels.get("severity").cloned(),
                    labels: card_labels(&labels),
                    value: a.value,
                    since: a.fired_at.unwrap_or(ev.at),
                    summary: a.annotations.get("summary").cloned(),
                    firing: true,
                };
                let card = self.card(&incident);
                let new_rule = !card.alerts.iter().any(|x| x.name == a.rule);
                card.firing(alert, now);
                card.silence.get_or_insert(silence);
                for r in runnable {
                    if !card.runnable.contains(&r) {
                        card.runnable.push(r);
                    }
                }
                if new_rule && let Some(charts) = &self.charts {
                    let req = crate::chat::charts::ChartRequest {
                        incident: incident.clone(),
                        channel: self.channel.clone(),
                        group: a.group.clone(),
                        rule: a.rule.clone(),
                        labels: a.labels.clone(),
                        at: ev.at,
                    };
                    if charts.try_send(req).is_err() {
                        tracing::debug!(rule = %a.rule, "chart queue full; no chart for this alert");
                    }
                }
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
                    Some(f) => Arc::unwrap_or_clone(f).incident,
                    None => self.incident_for(&a.labels, &a.rule),
                };
                self.timeline(
                    &incident,
                    ev.at,
                    tl::Kind::AlertResolved,
                    By::Bot,
                    About::alert(&a.rule),
                    &crate::incident::resolved_text(&a.rule, false),
                )
                .await;
                if self.cards.contains_key(&incident) {
                    let now = self.clock.now();
                    let key = card_labels(&labels);
                    self.card(&incident).resolved(&a.rule, &key, now);
                }
                self.say(
                    Some(&incident),
                    Kind::Resolved,
                    format!("*{}* resolved{}", a.rule, identifying(&labels)),
                )
                .await;
            }
        }
    }

    /// A firing alert that a silence matches goes on the timeline as
    /// silenced and no further: no chat, no runbook. Its resolution is
    /// quiet too. Returns whether the event was handled here.
    async fn quiet_if_silenced(&mut self, ev: &AlertEvent) -> bool {
        let a = &ev.alert;
        let fp = a.labels.fingerprint();
        let (kind, text, silence) = match ev.kind {
            AlertEventKind::Firing => match self.silences.is_silenced(&a.labels, ev.at) {
                Some(s) => {
                    self.silenced.insert(fp);
                    (
                        tl::Kind::AlertSilenced,
                        format!(
                            "{} firing, silenced by {} ({}, by {})",
                            a.rule,
                            s.id,
                            s.matchers_text(),
                            s.created_by
                        ),
                        Some(s.id.clone()),
                    )
                }
                None => return false,
            },
            AlertEventKind::Resolved if self.silenced.remove(&fp) => {
                self.firing.remove(&fp);
                (
                    tl::Kind::AlertResolved,
                    crate::incident::resolved_text(&a.rule, true),
                    None,
                )
            }
            _ => return false,
        };
        // A silenced alert must not become the incident later alerts
        // without group_by labels join.
        let newest = self.last_incident.clone();
        let incident = self.incident_for(&a.labels, &a.rule);
        self.last_incident = newest;
        if silence.is_some() {
            // Still listed by `alerts`, marked silenced: people asking
            // what fires should see it, and why nobody was paged.
            let summary = a.annotations.get("summary").cloned().unwrap_or_default();
            self.firing.insert(
                fp,
                Arc::new(firing_alert(a, &incident, &summary, ev.at, silence)),
            );
        }
        self.timeline(
            &incident,
            ev.at,
            kind,
            By::Bot,
            About::alert(&a.rule),
            &text,
        )
        .await;
        true
    }

    async fn add_silence(
        &mut self,
        matchers: Vec<Matcher>,
        duration_ms: Millis,
        by: String,
        comment: String,
        key: Option<String>,
    ) -> Result<(String, Millis), SilenceRefused> {
        let now = self.clock.now();
        self.silences.prune(now - SILENCE_MEMORY_MS);
        let id = match &key {
            Some(k) => {
                let id = crate::silence::id_for_key(k);
                if let Some(s) = self.silences.get(&id) {
                    tracing::info!(%id, "silence already made for this step; not making another");
                    return Ok((id, s.ends_at));
                }
                id
            }
            None => self.silences.next_id(now),
        };
        let s = Silence {
            id,
            matchers,
            starts_at: now,
            ends_at: now.saturating_add(duration_ms),
            created_by: by,
            comment,
        };
        s.validate()?;
        // Saved first: a silence that would vanish on restart is refused.
        self.store
            .save_silence(&s)
            .await
            .map_err(SilenceRefused::NotSaved)?;
        let (id, ends_at, note) = (
            s.id.clone(),
            s.ends_at,
            format!(
                "silenced {} for {} by {} (id {}){}",
                s.matchers_text(),
                crate::duration::PromDuration::from_millis(duration_ms.max(0) as u64),
                s.created_by,
                s.id,
                if s.comment.is_empty() {
                    String::new()
                } else {
                    format!(": {}", s.comment)
                }
            ),
        );
        self.silences.add(s)?;
        self.say(None, Kind::Note, note).await;
        Ok((id, ends_at))
    }

    async fn expire_silence(&mut self, id: &str, by: &str) -> Result<(), UnsilenceError> {
        let now = self.clock.now();
        let text = {
            let s = self.silences.expire(id, now)?;
            format!("silence {id} ({}) expired by {by}", s.matchers_text())
        };
        if let Err(e) = self.store.expire_silence(id, now).await {
            // In force until restart only; say so rather than pretend.
            tracing::error!(error = %e, silence = id, "cannot save silence expiry");
            return Err(UnsilenceError::NotSaved(e));
        }
        self.say(None, Kind::Note, text).await;
        Ok(())
    }

    fn start_run(&mut self, plan: Plan, alert: &AlertCtx, incident: &str, now: Millis) {
        self.start_run_as(plan, Some(alert), incident, By::Bot, now);
    }

    /// Starts `plan` and returns its run id.
    fn start_run_as(
        &mut self,
        plan: Plan,
        alert: Option<&AlertCtx>,
        incident: &str,
        by: By,
        now: Millis,
    ) -> String {
        self.spawn_run(plan, alert, incident, by, false, now)
    }

    /// Starts `plan`, afresh or as a try again (which keeps the streak of
    /// dispatch rule 5 going), and returns its run id.
    fn spawn_run(
        &mut self,
        plan: Plan,
        alert: Option<&AlertCtx>,
        incident: &str,
        by: By,
        retry: bool,
        now: Millis,
    ) -> String {
        self.run_seq += 1;
        let run_id = format!(
            "{}-{}-{:04x}{}",
            plan.runbook.name,
            now / 1000,
            self.boot,
            self.run_seq
        );
        let (rb, key) = (&plan.runbook.name, &plan.concurrency_key);
        if retry {
            self.dispatcher.retried(rb, key, &run_id, now);
        } else {
            self.dispatcher.started(rb, key, &run_id, now);
        }
        let card_run = CardRun {
            id: run_id.clone(),
            runbook: plan.runbook.name.clone(),
            state: RunState::RUNNING,
            last_step: None,
            waiting: None,
        };
        self.card(incident).run_progress(card_run, now);
        self.executor.start(RunRequest {
            run_id: run_id.clone(),
            runbook: plan.runbook,
            incident: incident.to_owned(),
            concurrency_key: plan.concurrency_key,
            alert: alert.cloned(),
            inputs: plan.inputs,
            by,
        });
        run_id
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
        .or_else(|| self.current_incident())
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

    fn status(&self) -> Status {
        let now = self.clock.now();
        let mut running: Vec<(String, String, String)> = self
            .dispatcher
            .active()
            .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
            .collect();
        running.sort_by(|a, b| a.2.cmp(&b.2));
        let mut firing: Vec<Arc<FiringAlert>> = self.firing.values().cloned().collect();
        firing.sort_by(|a, b| (a.since, &a.name).cmp(&(b.since, &b.name)));
        Status {
            paused: self.dispatcher.paused().cloned(),
            running,
            firing,
            waiting: self.executor.waiting(),
            silences: self
                .silences
                .active(now)
                .map(|s| SilenceView {
                    id: s.id.clone(),
                    matchers: s.matchers_text(),
                    ends_at: s.ends_at,
                    by: s.created_by.clone(),
                    comment: s.comment.clone(),
                })
                .collect(),
            incident: self.current_incident(),
        }
    }

    /// Acknowledges every firing alert `target` names (see
    /// [`Command::Ack`]): says so in each incident's thread and timeline.
    async fn ack(&mut self, target: &str, who: &Who) -> Result<String, AckError> {
        let by = who.label();
        let by = by.as_str();
        let now = self.clock.now();
        let target = target.trim();
        let by_fp: Vec<u64> = self
            .firing
            .iter()
            .filter(|(_, f)| target.len() >= 4 && f.fingerprint.starts_with(target))
            .map(|(fp, _)| *fp)
            .collect();
        let mut chosen: Vec<u64> = if !by_fp.is_empty() {
            by_fp
        } else {
            self.firing
                .iter()
                .filter(|(_, f)| f.name == target || f.incident == target)
                .map(|(fp, _)| *fp)
                .collect()
        };
        // Named in a stable order, by alert name and labels.
        chosen.sort_by(|a, b| {
            let (a, b) = (&self.firing[a], &self.firing[b]);
            (&a.name, &a.labels).cmp(&(&b.name, &b.labels))
        });
        if chosen.is_empty() {
            let mut names: Vec<String> = self
                .firing
                .values()
                .flat_map(|f| [f.name.clone(), f.incident.clone()])
                .collect();
            names.sort();
            names.dedup();
            if names.is_empty() {
                return Err(AckError::NothingFiring {
                    target: target.to_owned(),
                });
            }
            return Err(AckError::NoMatch {
                target: target.to_owned(),
                hint: crate::diag::did_you_mean(target, &names).map(str::to_owned),
                firing: crate::chat::tally(names, 2 * ACK_LISTED),
            });
        }
        let mut done = Vec::new();
        // Per incident: what was acknowledged, and the alert names.
        let mut per_incident: BTreeMap<String, (Vec<String>, BTreeSet<String>)> = BTreeMap::new();
        for fp in chosen {
            let f = Arc::make_mut(self.firing.get_mut(&fp).expect("chosen from firing"));
            if let Some(a) = &f.acked {
                done.push(format!("{} (already acknowledged by {})", f.name, a.by));
                continue;
            }
            f.acked = Some(Acked {
                by: by.to_owned(),
                at: now,
            });
            let text = format!("{}{}", f.name, identifying(&f.labels));
            done.push(text.clone());
            let e = per_incident.entry(f.incident.clone()).or_default();
            e.0.push(text);
            e.1.insert(f.name.clone());
        }
        // In a storm one ack can take thousands of alerts, most alike:
        // counted, not listed.
        for (incident, (alerts, names)) in per_incident {
            if self.cards.contains_key(&incident) {
                self.card(&incident).ack(by, now);
            }
            let text = format!(
                "{} acknowledged by {by}",
                crate::chat::tally(alerts, ACK_LISTED)
            );
            let about = match names.len() {
                1 => names
                    .into_iter()
                    .next()
                    .map(About::alert)
                    .unwrap_or_default(),
                _ => About::default(),
            };
            self.timeline(&incident, now, tl::Kind::Ack, By::person(who), about, &text)
                .await;
            self.say(Some(&incident), Kind::Note, text).await;
        }
        Ok(format!(
            "acknowledged: {}",
            crate::chat::tally(done, ACK_LISTED)
        ))
    }

    /// Starts a runbook by hand for `by` (see
    /// [`Dispatcher::manual_start`] for what is checked).
    async fn run_by_hand(
        &mut self,
        runbook: &str,
        inputs: &BTreeMap<String, Json>,
        by: &Who,
    ) -> Result<String, StartRefused> {
        let now = self.clock.now();
        let plan = self.dispatcher.manual_start(runbook, inputs, now)?;
        // A run started during an incident is part of it; otherwise it is
        // its own, named after what it works on.
        let incident = self
            .current_incident()
            .unwrap_or_else(|| plan.concurrency_key.replace('/', "-"));
        let name = plan.runbook.name.clone();
        let run_id = self.start_run_as(plan, None, &incident, By::person(by), now);
        tracing::info!(run = %run_id, %by, "runbook started by hand");
        Ok(format!(
            "started *{name}* (run {run_id}) in incident {incident}"
        ))
    }

    /// Alerts restored as firing do not fire again, so that a restart never
    /// starts a second mitigation. But the previous process saved the
    /// alert as firing before the control loop had recorded a run for it,
    /// and may have died in between: the alert would then stay firing with
    /// nothing done. So each restored firing alert is dispatched once more,
    /// and a runbook starts only if no run in the store was started by this
    /// firing of this alert (same name, labels and firing time), whatever
    /// the cooldown says. Call before [`Control::run`].
    pub async fn dispatch_restored(&mut self, alerts: Vec<crate::rules::Alert>) {
        if alerts.is_empty() {
            return;
        }
        #[derive(serde::Deserialize)]
        struct Trigger {
            alert: Option<AlertCtx>,
        }
        let started: Vec<(String, AlertCtx)> = match self.store.run_triggers().await {
            Ok(t) => t
                .into_iter()
                .filter_map(|(rb, json)| {
                    let t: Trigger = serde_json::from_str(&json).ok()?;
                    Some((rb, t.alert?))
                })
                .collect(),
            Err(e) => {
                // Starting without knowing could run a mitigation twice.
                tracing::error!(error = %e, "cannot read earlier runs; alerts restored as firing are not dispatched again");
                return;
            }
        };
        let now = self.clock.now();
        for a in alerts {
            let labels: BTreeMap<String, String> = a.labels.to_map();
            let fired_at = a.fired_at.unwrap_or(a.active_at);
            let incident = self.incident_for(&a.labels, &a.rule);
            let silenced_by = self
                .silences
                .is_silenced(&a.labels, now)
                .map(|s| s.id.clone());
            let summary = a.annotations.get("summary").cloned().unwrap_or_default();
            self.firing.insert(
                a.labels.fingerprint(),
                Arc::new(firing_alert(
                    &a,
                    &incident,
                    &summary,
                    fired_at,
                    silenced_by.clone(),
                )),
            );
            if silenced_by.is_some() {
                self.silenced.insert(a.labels.fingerprint());
                continue;
            }
            let ctx = AlertCtx {
                name: a.rule.clone(),
                labels,
                annotations: a.annotations.clone(),
                value: a.value,
                fired_at,
            };
            for d in self.dispatcher.on_firing(&ctx, now) {
                let Decision::Start(plan) = d else { continue };
                let done = started.iter().any(|(rb, t)| {
                    *rb == plan.runbook.name
                        && t.name == ctx.name
                        && t.labels == ctx.labels
                        && t.fired_at == ctx.fired_at
                });
                if done {
                    continue;
                }
                let (rb, key) = (plan.runbook.name.clone(), plan.concurrency_key.clone());
                // Earlier runs for it changed nothing (dispatch rule 5):
                // this is one more try again, if any are left.
                let streak = self.dispatcher.streak(&rb, &key);
                if streak > 0 && self.dispatcher.tries_spent(&rb, &key) {
                    self.say(
                        Some(&incident),
                        Kind::Note,
                        format!(
                            "*{}* was firing when the bot stopped; *{rb}* already failed {streak} times in a row without changing anything, so it is not tried again",
                            ctx.name
                        ),
                    )
                    .await;
                    continue;
                }
                tracing::warn!(alert = %ctx.name, runbook = %rb, "alert was firing at the restart with no run started for it; starting it now");
                let text = if streak > 0 {
                    format!(
                        "*{}* was firing when the bot stopped, and *{rb}* had not changed anything for it yet; trying it again now",
                        ctx.name
                    )
                } else {
                    format!(
                        "*{}* was firing when the bot stopped, before *{rb}* had started for it; starting it now",
                        ctx.name
                    )
                };
                self.say(Some(&incident), Kind::Note, text).await;
                self.spawn_run(plan, Some(&ctx), &incident, By::Bot, streak > 0, now);
            }
        }
    }

    async fn dispatch(&mut self, alert: &AlertCtx, incident: &str) {
        let now = self.clock.now();
        let decisions = self.dispatcher.on_firing(alert, now);
        if decisions.iter().any(|d| matches!(d, Decision::Start(_))) {
            // The card first, so it heads the incident's thread: a run
            // says it started as soon as it is spawned.
            self.post_cards().await;
        }
        self.page_if_late(alert, incident, &decisions, now).await;
        for d in decisions {
            let too_slow = matches!(d, Decision::TooSlow { .. });
            match d {
                Decision::Start(plan) => {
                    if let Some(o) = &plan.cooldown_overridden {
                        self.said_cooldown_override(&plan, o, incident, now).await;
                    }
                    self.start_run(plan, alert, incident, now)
                }
                Decision::Skip { runbook, reason } | Decision::TooSlow { runbook, reason } => {
                    tracing::info!(%runbook, %reason, "runbook not started");
                    self.timeline(
                        incident,
                        now,
                        tl::Kind::RunSkipped,
                        By::Bot,
                        About::runbook(&runbook).with_alert(Some(&alert.name)),
                        &format!("runbook {runbook} not started: {reason}"),
                    )
                    .await;
                    // People need to know when automation stood aside for
                    // a reason they control, or chose a faster mitigation;
                    // duplicates are routine.
                    if self.dispatcher.paused().is_some() || too_slow {
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

    /// Dispatch rule 7: a start that overrode a cooldown is a choice people
    /// should see, with the numbers.
    async fn said_cooldown_override(
        &mut self,
        plan: &Plan,
        o: &crate::dispatch::CooldownOverride,
        incident: &str,
        now: Millis,
    ) {
        crate::metrics::get()
            .cooldown_overrides
            .with(&[&plan.runbook.name])
            .inc();
        let text = format!(
            "starting *{}* again for {} within its cooldown: {}. It reads the platform afresh and does what fits now.",
            plan.runbook.name,
            plan.concurrency_key,
            o.text()
        );
        self.timeline(
            incident,
            now,
            tl::Kind::CooldownOverridden,
            By::Bot,
            About::runbook(&plan.runbook.name),
            &text,
        )
        .await;
        self.say(Some(incident), Kind::Note, text).await;
    }

    /// Dispatch rule 6: when no runbook for the alert can take effect
    /// before its predicted breach, people are called at once, with the
    /// numbers; the runbooks start anyway, as nothing faster exists.
    async fn page_if_late(
        &mut self,
        alert: &AlertCtx,
        incident: &str,
        decisions: &[Decision],
        now: Millis,
    ) {
        let late: Vec<(&str, &crate::dispatch::Late)> = decisions
            .iter()
            .filter_map(|d| match d {
                Decision::Start(p) => p.late.as_ref().map(|l| (p.runbook.name.as_str(), l)),
                _ => None,
            })
            .collect();
        let Some((_, first)) = late.first() else {
            return;
        };
        for (runbook, _) in &late {
            crate::metrics::get()
                .late_mitigations
                .with(&[runbook])
                .inc();
        }
        let left = crate::duration::PromDuration::from_millis(first.breach_in.max(0) as u64);
        let which: Vec<String> = late
            .iter()
            .map(|(rb, l)| format!("*{rb}* takes {}", l.takes_text()))
            .collect();
        let text = format!(
            ":rotating_light: needs a person now: *{}* predicts its breach in {left}, and no runbook for it can take effect sooner: {}. Starting {} anyway; decide what else can be done before then.",
            alert.name,
            which.join("; "),
            if late.len() == 1 { "it" } else { "them" }
        );
        self.timeline(
            incident,
            now,
            tl::Kind::PagedLate,
            By::Bot,
            About::alert(&alert.name),
            &text,
        )
        .await;
        self.say(Some(incident), Kind::RunFailed, text).await;
    }

    async fn on_finished(&mut self, f: RunFinished) {
        crate::metrics::get()
            .runs
            .with(&[&f.runbook, f.outcome.as_str()])
            .inc();
        let now = self.clock.now();
        if let Some(ms) = f.took_effect_after {
            self.dispatcher.took_effect(&f.runbook, ms);
        }
        let after =
            self.dispatcher
                .finished(&f.runbook, &f.concurrency_key, f.changed_nothing(), now);
        // A person who started a run by hand sees it fail and decides.
        if let Some(alert) = &f.alert {
            self.after_run(&f, alert, after, now).await;
        }
        let card = self.card(&f.incident);
        let last_step = card
            .run
            .as_ref()
            .filter(|r| r.id == f.run_id)
            .and_then(|r| r.last_step.clone());
        card.run_progress(
            CardRun {
                id: f.run_id.clone(),
                runbook: f.runbook.clone(),
                state: RunState::Ended(f.outcome),
                last_step,
                waiting: None,
            },
            now,
        );
        if f.outcome != Outcome::Succeeded {
            tracing::warn!(run = %f.run_id, outcome = f.outcome.as_str(), "run did not succeed");
        }
    }

    /// Says and schedules what dispatch decided after a run (rule 5).
    async fn after_run(&mut self, f: &RunFinished, alert: &AlertCtx, after: AfterRun, now: Millis) {
        let counted = |outcome: &str| {
            crate::metrics::get()
                .run_retries
                .with(&[&f.runbook, outcome])
                .inc();
        };
        match after {
            AfterRun::Nothing => {}
            AfterRun::Retry { at, attempt, of } => {
                counted("scheduled");
                let wait = crate::duration::PromDuration::from_millis((at - now).max(0) as u64);
                let text = format!(
                    "*{}* failed before changing anything, so it counts for neither cooldown nor budget; trying it again in {wait} if *{}* still fires (try {attempt} of {of})",
                    f.runbook, alert.name
                );
                self.timeline(
                    &f.incident,
                    now,
                    tl::Kind::RetryScheduled,
                    By::Bot,
                    About::run(&f.runbook, &f.run_id).with_alert(Some(&alert.name)),
                    &text,
                )
                .await;
                self.say(Some(&f.incident), Kind::Note, text).await;
                self.retries
                    .retain(|r| !(r.runbook == f.runbook && r.alert.labels == alert.labels));
                self.retries.push(PendingRetry {
                    due: at,
                    runbook: f.runbook.clone(),
                    alert: alert.clone(),
                    incident: f.incident.clone(),
                    attempt,
                    of,
                });
            }
            AfterRun::GaveUp { attempts } => {
                counted("spent");
                let text = format!(
                    ":rotating_light: needs a person: *{}* failed {} times in a row without changing anything while *{}* fires; not trying it again",
                    f.runbook,
                    attempts + 1,
                    alert.name
                );
                self.timeline(
                    &f.incident,
                    now,
                    tl::Kind::RetriesSpent,
                    By::Bot,
                    About::run(&f.runbook, &f.run_id).with_alert(Some(&alert.name)),
                    &text,
                )
                .await;
                self.say(Some(&f.incident), Kind::RunFailed, text).await;
            }
        }
    }

    /// Asks for the audience of every open incident. A full queue drops
    /// the rest: the sampler is behind, and the next tick asks again.
    fn on_audience_tick(&mut self) {
        let Some(link) = self.audience.as_mut() else {
            return;
        };
        let now = self.clock.now();
        link.next_at = (link.next_at + link.every).max(now + 1);
        link.following
            .retain(|i, (until, _)| *until > now && !self.cards.contains_key(i));
        // Open incidents first, each list in a stable order; where the
        // queue cannot take them all, the next tick starts after the last
        // one asked for, so none is left out tick after tick.
        let mut wanted: Vec<(bool, &String, &BTreeMap<String, String>)> = Vec::new();
        let none = BTreeMap::new();
        for i in self.cards.keys() {
            wanted.push((false, i, self.incident_labels.get(i).unwrap_or(&none)));
        }
        for (i, (_, labels)) in &link.following {
            wanted.push((true, i, labels));
        }
        wanted.sort();
        let n = wanted.len();
        for k in 0..n {
            let (_, incident, labels) = wanted[(link.turn + k) % n];
            let req = crate::audience::Request {
                incident: incident.clone(),
                labels: labels.clone(),
            };
            if link.requests.try_send(req).is_err() {
                tracing::debug!("audience sampler busy; asking again next time");
                link.turn = (link.turn + k) % n;
                return;
            }
        }
    }

    /// Puts a measurement on its incident's card (posted again only when
    /// what it says changed) and in the store for the review.
    async fn on_audience(&mut self, s: crate::audience::Sample) {
        let followed = self
            .audience
            .as_ref()
            .is_some_and(|a| a.following.contains_key(&s.incident));
        if let Some(card) = self.cards.get_mut(&s.incident) {
            let before = card.audience.as_ref().map(card::Audience::line);
            let a = card::Audience::measured(
                card.audience.as_ref(),
                s.listening,
                s.at_risk,
                s.without_us,
                s.at,
            );
            let changed = before.as_deref() != Some(a.line().as_str());
            card.audience = Some(a);
            if changed {
                self.dirty_cards.insert(s.incident.clone());
            }
        } else if !followed {
            return;
        }
        if let Err(e) = self
            .store
            .record_audience(&s.incident, s.at, s.listening, s.at_risk, s.without_us)
            .await
        {
            tracing::error!(error = %e, "cannot record the audience");
        }
    }

    /// Starts the tries again that are due, for alerts that still fire.
    async fn on_retries_due(&mut self) {
        let now = self.clock.now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|r| r.due <= now);
        self.retries = later;
        for r in due {
            let labels: crate::labels::Labels = r.alert.labels.clone().into();
            let fp = labels.fingerprint();
            let still = self.firing.contains_key(&fp)
                && !self.silenced.contains(&fp)
                && self.silences.is_silenced(&labels, now).is_none();
            let decision = if still {
                self.dispatcher.retry(&r.runbook, &r.alert, now)
            } else {
                Some(Decision::Skip {
                    runbook: r.runbook.clone(),
                    reason: format!("*{}* no longer fires or is silenced", r.alert.name),
                })
            };
            match decision {
                Some(Decision::Start(plan)) => {
                    crate::metrics::get()
                        .run_retries
                        .with(&[&r.runbook, "started"])
                        .inc();
                    let text = format!(
                        "trying *{}* again (try {} of {}): *{}* still fires",
                        r.runbook, r.attempt, r.of, r.alert.name
                    );
                    self.timeline(
                        &r.incident,
                        now,
                        tl::Kind::RetryStarted,
                        By::Bot,
                        About::runbook(&r.runbook).with_alert(Some(&r.alert.name)),
                        &text,
                    )
                    .await;
                    self.say(Some(&r.incident), Kind::Note, text).await;
                    self.post_cards().await;
                    self.spawn_run(plan, Some(&r.alert), &r.incident, By::Bot, true, now);
                }
                Some(
                    Decision::Skip { runbook, reason } | Decision::TooSlow { runbook, reason },
                ) => {
                    crate::metrics::get()
                        .run_retries
                        .with(&[&runbook, "dropped"])
                        .inc();
                    let text = format!("not trying *{runbook}* again: {reason}");
                    self.timeline(
                        &r.incident,
                        now,
                        tl::Kind::RetryDropped,
                        By::Bot,
                        About::runbook(&runbook).with_alert(Some(&r.alert.name)),
                        &text,
                    )
                    .await;
                    self.say(Some(&r.incident), Kind::Note, text).await;
                }
                // Its runbook was unloaded by a reload meanwhile.
                None => {}
            }
        }
    }

    async fn on_command(&mut self, c: Command) {
        let now = self.clock.now();
        match c {
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Pause {
                by: who,
                reason,
                reply,
            } => {
                let by = who.label();
                self.dispatcher.pause(Pause {
                    by: by.clone(),
                    reason: reason.clone(),
                    since: now,
                });
                let _ = reply.send(());
                let text = format!("automation paused by {by}: {reason}");
                // Runbooks that do not start during an incident are part
                // of its story.
                if let Some(incident) = self.current_incident() {
                    self.timeline(
                        &incident,
                        now,
                        tl::Kind::Paused,
                        By::person(&who),
                        About::default(),
                        &text,
                    )
                    .await;
                }
                self.say(None, Kind::Note, text).await;
            }
            Command::Resume { by: who, reply } => {
                let by = who.label();
                self.dispatcher.resume();
                let _ = reply.send(());
                let text = format!("automation resumed by {by}");
                if let Some(incident) = self.current_incident() {
                    self.timeline(
                        &incident,
                        now,
                        tl::Kind::Resumed,
                        By::person(&who),
                        About::default(),
                        &text,
                    )
                    .await;
                }
                self.say(None, Kind::Note, text).await;
            }
            Command::Answer {
                run,
                verdict,
                by,
                role,
                reply,
            } => {
                let r = self.executor.answer(&run, verdict, &by, role);
                let who = by;
                let by = who.label();
                if let Err(e) = &r {
                    // A refused command is recorded: who tried what.
                    tracing::info!(%run, %by, error = %e, "approval refused");
                    self.say(None, Kind::Note, format!("{by}: {e}")).await;
                    if let crate::executor::AnswerError::NotAllowed { .. } = e {
                        let incident = self.refusal_incident(Some(&run));
                        self.timeline(
                            &incident,
                            now,
                            tl::Kind::CommandRefused,
                            By::person(&who),
                            About {
                                run: Some(run.clone()),
                                ..About::default()
                            },
                            &format!("approval of run {run} refused: {e}"),
                        )
                        .await;
                    }
                }
                let _ = reply.send(r);
            }
            Command::Abort { run, by, reply } => {
                let by = by.label();
                let r = self.executor.abort(&run, &by);
                if r.is_ok() {
                    self.say(None, Kind::Note, format!("run {run} aborted by {by}"))
                        .await;
                }
                let _ = reply.send(r);
            }
            Command::Silence {
                matchers,
                duration_ms,
                by,
                comment,
                key,
                reply,
            } => {
                let r = self
                    .add_silence(matchers, duration_ms, by, comment, key)
                    .await;
                let _ = reply.send(r);
            }
            Command::Unsilence { id, by, reply } => {
                let r = self.expire_silence(&id, &by).await;
                let _ = reply.send(r);
            }
            Command::Ack { target, by, reply } => {
                let r = self.ack(&target, &by).await;
                let _ = reply.send(r);
            }
            Command::Run {
                runbook,
                inputs,
                by,
                reply,
            } => {
                let r = self.run_by_hand(&runbook, &inputs, &by).await;
                if let Err(e) = &r {
                    tracing::info!(%runbook, by = %by.label(), error = %e, "manual start refused");
                }
                let _ = reply.send(r);
            }
            Command::Reload { runbooks, reply } => {
                tracing::info!(runbooks = runbooks.len(), "runbooks reloaded");
                self.dispatcher.replace_runbooks(runbooks);
                let _ = reply.send(());
            }
            Command::Checklist(req) => {
                use tokio::sync::mpsc::error::TrySendError;
                match &self.checklists {
                    None => req.refuse("this bot runs no checklists"),
                    Some(tx) => match tx.try_send(req) {
                        Ok(()) => {}
                        Err(TrySendError::Full(req)) => req.refuse(
                            "the checklist runner is busy with other requests; try again in a moment",
                        ),
                        Err(TrySendError::Closed(req)) => {
                            req.refuse("the checklist runner has stopped (the bot is shutting down)")
                        }
                    },
                }
            }
            Command::Refused {
                by,
                command,
                reason,
            } => {
                tracing::info!(by = %by.label(), %command, %reason, "command refused");
                // The timeline, because that is what the post-incident
                // review reads: who tried what, when, and why it did not
                // happen.
                let incident = self.refusal_incident(None);
                self.timeline(
                    &incident,
                    now,
                    tl::Kind::CommandRefused,
                    By::person(&by),
                    About::default(),
                    &format!("`{command}` refused: {reason}"),
                )
                .await;
            }
        }
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

/// Distinct alerts an ack names before counting the rest.
const ACK_LISTED: usize = 10;

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
mod silence_tests {
    use super::*;
    use crate::executor::actions::ActionEnv;
    use crate::labels::Labels;
    use crate::rules::{Alert, AlertState};

    const RUNBOOK: &str = "kind: runbook\nname: on-full\ntrigger:\n  alerts: [{alertname: Full}]\nsteps:\n  - id: say\n    action: chat\n    with: {text: hi}\n";

    /// A store in a file that lives as long as the returned directory.
    async fn file_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = Store::open(&url).await.unwrap();
        (dir, store)
    }

    /// Actions that talk to chat only, on channel `#c`.
    pub(super) fn env(outbox: &Outbox, clock: &Clock) -> ActionEnv {
        ActionEnv {
            http: crate::net::target_client().unwrap(),
            targets: BTreeMap::new(),
            secrets: BTreeMap::new(),
            outbox: outbox.clone(),
            clock: clock.clone(),
            channel: "#c".into(),
            queries: None,
            silencer: None,
        }
    }

    fn control(store: &Store, clock: &Clock) -> Control {
        let outbox = Outbox::new(store.clone());
        let env = silence_tests::env(&outbox, clock);
        // Runs are not awaited here; their ends queue up unread.
        let (finished, _) = mpsc::channel(16);
        let executor = Executor::new(env, store.clone(), CancellationToken::new(), finished);
        let rb =
            crate::runbook::parse_runbook("r.yaml", RUNBOOK, &crate::load::check_env([])).unwrap();
        Control::new(
            Dispatcher::new(vec![std::sync::Arc::new(rb)], None),
            executor,
            store.clone(),
            outbox,
            clock.clone(),
            "#c".into(),
            vec!["event".into()],
        )
    }

    fn event(kind: AlertEventKind, name: &str, at: Millis) -> AlertEvent {
        let labels = Labels::new()
            .with("alertname", name)
            .with("event", "launch");
        AlertEvent {
            kind,
            at,
            alert: Alert {
                rule: name.into(),
                group: "g".into(),
                labels,
                annotations: BTreeMap::new(),
                state: AlertState::Firing,
                active_at: at,
                fired_at: Some(at),
                resolved_at: None,
                keep_firing_since: None,
                last_eval: at,
                value: 1.0,
            },
        }
    }

    async fn chat(store: &Store) -> Vec<String> {
        store
            .pending_outbox(100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(&r.payload_json).unwrap()["text"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    async fn silence(
        c: &mut Control,
        m: &str,
        duration_ms: Millis,
    ) -> Result<String, SilenceRefused> {
        silence_keyed(c, m, duration_ms, None)
            .await
            .map(|(id, _)| id)
    }

    async fn silence_keyed(
        c: &mut Control,
        m: &str,
        duration_ms: Millis,
        key: Option<&str>,
    ) -> Result<(String, Millis), SilenceRefused> {
        let (reply, answer) = oneshot::channel();
        c.on_command(Command::Silence {
            matchers: crate::matchers::parse_matchers(m).unwrap(),
            duration_ms,
            by: "alice".into(),
            comment: "moving rooms".into(),
            key: key.map(str::to_owned),
            reply,
        })
        .await;
        answer.await.unwrap()
    }

    #[tokio::test]
    async fn a_chart_is_asked_for_once_per_alert_rule_of_an_incident() {
        let (_dir, store) = file_store().await;
        let clock = Clock::system();
        let (tx, mut rx) = crate::chat::charts::queue();
        let mut c = control(&store, &clock).with_charts(tx);
        let t = clock.now();
        c.on_alert(event(AlertEventKind::Firing, "Full", t)).await;
        c.on_alert(event(AlertEventKind::Firing, "Other", t + 1))
            .await;
        let mut again = event(AlertEventKind::Firing, "Full", t + 2);
        again.alert.labels = again.alert.labels.with("room", "side");
        c.on_alert(again).await;
        let mut asked = Vec::new();
        while let Ok(r) = rx.try_recv() {
            asked.push((
                r.incident,
                r.group,
                r.rule,
                r.labels.get("event").map(str::to_owned),
            ));
        }
        let launch = Some("launch".to_owned());
        assert_eq!(
            asked,
            [
                ("launch".into(), "g".into(), "Full".into(), launch.clone()),
                ("launch".into(), "g".into(), "Other".into(), launch),
            ]
        );
    }

    // Real time: paused time would time out the store's connection pool.
    #[tokio::test]
    async fn a_silenced_alert_is_recorded_and_nothing_more_even_after_a_restart() {
        let (_dir, store) = file_store().await;
        let clock = Clock::system();
        let mut c = control(&store, &clock);

        let e = silence(&mut c, "event=~\".*\"", 60_000).await.unwrap_err();
        assert!(e.to_string().contains("would match every alert"), "{e}");
        let id = silence(&mut c, "alertname=\"Full\"", 60_000).await.unwrap();

        c.on_alert(event(AlertEventKind::Firing, "Full", clock.now()))
            .await;
        c.on_alert(event(AlertEventKind::Resolved, "Full", clock.now()))
            .await;
        assert!(store.runs().await.unwrap().is_empty(), "no runbook started");
        let said = chat(&store).await;
        assert_eq!(said.len(), 1, "only the silence itself: {said:?}");
        assert!(
            said[0].starts_with("silenced alertname=\"Full\" for 1m by alice"),
            "{said:?}"
        );
        let kinds: Vec<(String, String)> = store
            .timeline("launch")
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.kind.to_string(), e.text))
            .collect();
        assert_eq!(kinds.len(), 2, "{kinds:?}");
        assert_eq!(kinds[0].0, "alert_silenced");
        assert!(kinds[0].1.contains(&id), "{kinds:?}");
        assert_eq!(kinds[1].1, "Full resolved (was silenced)");

        // A restart: the silence is read back and still holds.
        let mut c = control(&store, &clock);
        c.restore_silences().await;
        c.on_alert(event(AlertEventKind::Firing, "Full", clock.now()))
            .await;
        assert!(store.runs().await.unwrap().is_empty());

        // Expired: the next firing pages and starts the runbook.
        let (reply, answer) = oneshot::channel();
        c.on_command(Command::Unsilence {
            id: id.clone(),
            by: "bob".into(),
            reply,
        })
        .await;
        answer.await.unwrap().unwrap();
        let (reply, answer) = oneshot::channel();
        c.on_command(Command::Unsilence {
            id,
            by: "bob".into(),
            reply,
        })
        .await;
        assert!(
            answer
                .await
                .unwrap()
                .unwrap_err()
                .to_string()
                .contains("already expired")
        );
        c.on_alert(event(AlertEventKind::Firing, "Other", clock.now()))
            .await;
        c.on_alert(event(AlertEventKind::Firing, "Full", clock.now() + 1))
            .await;
        c.post_cards().await;
        c.executor.drain().await;
        let said = chat(&store).await;
        assert!(
            said.iter()
                .any(|t| t.contains("\n• Full") && t.contains("firing")),
            "the incident card names it: {said:?}"
        );
        assert!(
            said.iter().any(|t| t.contains("expired by bob")),
            "{said:?}"
        );
        assert_eq!(store.runs().await.unwrap().len(), 1);
    }

    /// Regression: the watcher saves an alert as firing before the control
    /// loop has recorded a run for it. A bot killed in between came back
    /// with the alert restored as firing, which never fires again, and
    /// the mitigation was forgotten (found by `tests/kill_restart.rs`).
    #[tokio::test]
    async fn an_alert_restored_as_firing_with_no_run_starts_its_runbook_once() {
        let (_dir, store) = file_store().await;
        let clock = Clock::system();
        let firing = event(AlertEventKind::Firing, "Full", clock.now() - 5_000).alert;

        let mut c = control(&store, &clock);
        c.dispatch_restored(vec![firing.clone()]).await;
        c.executor.drain().await;
        let runs = store.runs().await.unwrap();
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(runs[0].state, RunState::Ended(Outcome::Succeeded));
        let said = chat(&store).await;
        assert!(
            said.iter()
                .any(|t| t.contains("*Full* was firing when the bot stopped")),
            "{said:?}"
        );

        // Another restart, with no cooldown remembered: the run that this
        // firing started is in the store, so nothing starts again.
        let mut c = control(&store, &clock);
        c.dispatch_restored(vec![firing]).await;
        c.executor.drain().await;
        assert_eq!(store.runs().await.unwrap().len(), 1);
    }

    async fn status(c: &mut Control) -> Status {
        let (tx, rx) = oneshot::channel();
        c.on_command(Command::Status(tx)).await;
        rx.await.unwrap()
    }

    async fn ack(c: &mut Control, target: &str) -> Result<String, AckError> {
        let (reply, answer) = oneshot::channel();
        c.on_command(Command::Ack {
            target: target.into(),
            by: Who::new("U2", "bob"),
            reply,
        })
        .await;
        answer.await.unwrap()
    }

    #[tokio::test]
    async fn silenced_alerts_are_listed_as_such_and_acks_find_alerts_by_id_name_or_incident() {
        let (_dir, store) = file_store().await;
        let clock = Clock::system();
        let mut c = control(&store, &clock);
        let id = silence(&mut c, "alertname=\"Quiet\"", 60_000)
            .await
            .unwrap();
        c.on_alert(event(AlertEventKind::Firing, "Quiet", clock.now()))
            .await;
        let s = status(&mut c).await;
        assert_eq!(s.firing.len(), 1);
        assert_eq!(s.firing[0].silenced_by.as_deref(), Some(id.as_str()));
        assert_eq!(s.incident, None, "a silenced alert opens no incident");
        assert!(
            ack(&mut c, "Quiett")
                .await
                .unwrap_err()
                .to_string()
                .contains("did you mean `Quiet`?")
        );

        c.on_alert(event(AlertEventKind::Firing, "Full", clock.now()))
            .await;
        let s = status(&mut c).await;
        assert_eq!(s.incident.as_deref(), Some("launch"));
        let full = s.firing.iter().find(|f| f.name == "Full").unwrap().clone();
        assert_eq!(
            ack(&mut c, &full.fingerprint[..6]).await.unwrap(),
            "acknowledged: Full (event=launch)"
        );
        assert_eq!(
            ack(&mut c, "launch").await.unwrap(),
            "acknowledged: Full (already acknowledged by bob (U2)), Quiet (event=launch)"
        );
        let s = status(&mut c).await;
        assert!(
            s.firing
                .iter()
                .all(|f| f.acked.as_ref().is_some_and(|a| a.by == "bob (U2)"))
        );

        c.on_alert(event(AlertEventKind::Resolved, "Quiet", clock.now()))
            .await;
        c.on_alert(event(AlertEventKind::Resolved, "Full", clock.now()))
            .await;
        assert!(status(&mut c).await.firing.is_empty());
        assert_eq!(
            ack(&mut c, "Full").await.unwrap_err().to_string(),
            "no alert is firing, so there is nothing to acknowledge as \"Full\""
        );
        c.executor.drain().await;
    }

    /// Found by the load benchmark: acking an incident of 10,000 alerts
    /// answered with every name, a reply of hundreds of kilobytes.
    #[tokio::test]
    async fn an_ack_of_a_storm_counts_alike_alerts_instead_of_listing_them() {
        let (_dir, store) = file_store().await;
        let clock = Clock::system();
        let mut c = control(&store, &clock);
        for i in 0..300 {
            let mut e = event(AlertEventKind::Firing, "Surge", clock.now());
            e.alert.labels = e.alert.labels.with("instance", format!("edge-{i}"));
            c.on_alert(e).await;
        }
        for room in 0..15 {
            let mut e = event(AlertEventKind::Firing, "Full", clock.now());
            e.alert.labels = e.alert.labels.with("room", format!("r{room:02}"));
            c.on_alert(e).await;
        }
        let reply = ack(&mut c, "launch").await.unwrap();
        assert_eq!(
            reply,
            "acknowledged: Full (event=launch, room=r00), Full (event=launch, room=r01), \
             Full (event=launch, room=r02), Full (event=launch, room=r03), \
             Full (event=launch, room=r04), Full (event=launch, room=r05), \
             Full (event=launch, room=r06), Full (event=launch, room=r07), \
             Full (event=launch, room=r08), Full (event=launch, room=r09), … and 305 more"
        );
        let said = store.pending_outbox(10_000).await.unwrap();
        let note = said
            .iter()
            .map(|r| r.payload_json.as_str())
            .find(|t| t.contains("acknowledged by"))
            .unwrap();
        assert!(note.len() < 1000, "{note}");
        let again = ack(&mut c, "launch").await.unwrap();
        assert!(
            again.contains("Surge (already acknowledged by bob (U2)) ×300"),
            "{again}"
        );
        let miss = ack(&mut c, "nope").await.unwrap_err();
        assert_eq!(
            miss.to_string(),
            "nothing firing is called \"nope\"; firing: Full, Surge, launch"
        );
        c.executor.drain().await;
    }

    #[tokio::test]
    async fn a_keyed_silence_asked_for_again_after_a_restart_is_the_same_silence() {
        let (_dir, store) = file_store().await;
        let clock = Clock::system();
        let mut c = control(&store, &clock);
        let key = Some("move-1-00001:quiet");
        let first = silence_keyed(&mut c, "alertname=\"Full\"", 60_000, key)
            .await
            .unwrap();
        let again = silence_keyed(&mut c, "alertname=\"Full\"", 60_000, key)
            .await
            .unwrap();
        assert_eq!(first, again);

        let mut c = control(&store, &clock);
        c.restore_silences().await;
        let after_restart = silence_keyed(&mut c, "alertname=\"Full\"", 60_000, key)
            .await
            .unwrap();
        assert_eq!(first, after_restart);
        assert_eq!(store.silences().await.unwrap().len(), 1);
        let other = silence_keyed(&mut c, "alertname=\"Full\"", 60_000, Some("other:quiet"))
            .await
            .unwrap();
        assert_ne!(first.0, other.0);
        let said = chat(&store).await;
        assert_eq!(
            said.iter().filter(|t| t.starts_with("silenced")).count(),
            2,
            "{said:?}"
        );
    }
}

#[cfg(test)]
mod card_tests {
    use super::*;
    use crate::labels::Labels;
    use crate::rules::{Alert, AlertState};

    /// Says something, then waits for a commander before saying more.
    const RUNBOOK: &str = r#"kind: runbook
name: on-full
trigger:
  alerts: [{alertname: Full}]
  manual: true
steps:
  - id: look
    action: chat
    with: {text: looking}
  - id: act
    action: chat
    approval: {role: commander, timeout: 1m}
    with: {text: acting}
"#;

    pub(super) fn event(kind: AlertEventKind, at: Millis) -> AlertEvent {
        AlertEvent {
            kind,
            at,
            alert: Alert {
                rule: "Full".into(),
                group: "g".into(),
                labels: Labels::new()
                    .with("alertname", "Full")
                    .with("event", "launch")
                    .with("room", "main")
                    .with("severity", "page"),
                annotations: [("summary".to_owned(), "room main is full".to_owned())].into(),
                state: AlertState::Firing,
                active_at: at,
                fired_at: Some(at),
                resolved_at: None,
                keep_firing_since: None,
                last_eval: at,
                value: 1000.0,
            },
        }
    }

    /// The card versions in the outbox, in order: (status, run state).
    async fn cards(store: &Store) -> Vec<(card::Status, Option<String>)> {
        store
            .pending_outbox(1000)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|r| {
                serde_json::from_str::<ChatMessage>(&r.payload_json)
                    .ok()?
                    .card
            })
            .map(|c| (c.status, c.run.map(|r| r.state.to_string())))
            .collect()
    }

    async fn until<F: Fn(&[(card::Status, Option<String>)]) -> bool>(store: &Store, f: F) {
        for _ in 0..400 {
            if f(&cards(store).await) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("cards never got there: {:?}", cards(store).await);
    }

    // Real time: paused time would time out the store's connection pool.
    #[tokio::test]
    async fn one_card_follows_the_incident_from_firing_to_resolved() {
        // The registry is the process's; other tests only add to it.
        let m = crate::metrics::get();
        let runs_before = m.runs.with(&["on-full", "succeeded"]).get();
        let steps_before = m.steps.with(&["chat", "succeeded"]).get();
        let store = Store::open("sqlite::memory:").await.unwrap();
        let clock = Clock::system();
        let outbox = Outbox::new(store.clone());
        let env = silence_tests::env(&outbox, &clock);
        let (finished_tx, finished_rx) = mpsc::channel(16);
        let (progress_tx, progress_rx) = mpsc::channel(16);
        let executor = Executor::new(env, store.clone(), CancellationToken::new(), finished_tx)
            .with_progress(progress_tx);
        let rb =
            crate::runbook::parse_runbook("r.yaml", RUNBOOK, &crate::load::check_env([])).unwrap();
        let control = Control::new(
            Dispatcher::new(vec![std::sync::Arc::new(rb)], None),
            executor.clone(),
            store.clone(),
            outbox,
            clock.clone(),
            "#c".into(),
            vec!["event".into()],
        )
        .with_progress(progress_rx);
        let (alert_tx, alert_rx) = mpsc::channel(16);
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let task = tokio::spawn(control.run(alert_rx, finished_rx, cmd_rx, stop.clone()));

        alert_tx
            .send(event(AlertEventKind::Firing, clock.now()))
            .await
            .unwrap();
        until(&store, |c| {
            c.last()
                .is_some_and(|l| l.0 == card::Status::AwaitingApproval)
        })
        .await;
        // Regression (found by the load benchmark): the run's first
        // message could be queued before the card, and head the thread.
        let first = &store.pending_outbox(1).await.unwrap()[0];
        let first: ChatMessage = serde_json::from_str(&first.payload_json).unwrap();
        assert_eq!(
            first.card.map(|c| c.status),
            Some(card::Status::Firing),
            "{}",
            first.text
        );
        // Regression: the card showed the gate before it was open, so an
        // answer given at once could find nothing to answer.
        let waiting = executor.waiting();
        assert_eq!(waiting.len(), 1, "the gate is open once the card shows it");
        let run = waiting[0].run.clone();
        let (reply, answer) = oneshot::channel();
        cmd_tx
            .send(Command::Answer {
                run,
                verdict: Verdict::Approve,
                by: Who::new("U1", "alice"),
                role: Role::Commander,
                reply,
            })
            .await
            .unwrap();
        answer.await.unwrap().unwrap();
        until(&store, |c| {
            c.last().is_some_and(|l| l.0 == card::Status::Recovered)
        })
        .await;
        alert_tx
            .send(event(AlertEventKind::Resolved, clock.now()))
            .await
            .unwrap();
        until(&store, |c| {
            c.last().is_some_and(|l| l.0 == card::Status::Resolved)
        })
        .await;
        stop.cancel();
        task.await.unwrap();
        assert!(m.runs.with(&["on-full", "succeeded"]).get() > runs_before);
        assert!(m.steps.with(&["chat", "succeeded"]).get() >= steps_before + 2);
        assert!(m.step_seconds.with(&["chat"]).count() >= 2);

        let all = cards(&store).await;
        // Every version is queued; the outbox sends only the newest of
        // those still waiting. Progress reports can be merged, so check
        // the order of the statuses, not their number.
        let mut statuses: Vec<card::Status> = all.iter().map(|c| c.0).collect();
        statuses.dedup();
        assert_eq!(
            statuses,
            [
                card::Status::Firing,
                card::Status::Mitigating,
                card::Status::AwaitingApproval,
                card::Status::Mitigating,
                card::Status::Recovered,
                card::Status::Resolved,
            ],
            "{all:?}"
        );
        let last: ChatMessage = serde_json::from_str(
            &store
                .pending_outbox(1000)
                .await
                .unwrap()
                .last()
                .unwrap()
                .payload_json,
        )
        .unwrap();
        assert_eq!(last.slot.as_deref(), Some(card::SLOT));
        let c = last.card.unwrap();
        assert_eq!(
            c.alerts[0].labels,
            [
                ("event".into(), "launch".into()),
                ("room".into(), "main".into())
            ]
        );
        assert_eq!(c.alerts[0].summary.as_deref(), Some("room main is full"));
        assert_eq!(c.silence.as_deref(), Some("event=\"launch\""));
        assert_eq!(c.runnable, ["on-full"]);
        assert_eq!(c.run.unwrap().state, RunState::Ended(Outcome::Succeeded));
    }
}

#[cfg(test)]
mod timer_tests {
    //! The control loop's timers on a manual clock: tries again (dispatch
    //! rule 5) and the audience tick.
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::card_tests::event;
    use super::*;

    /// Cuts the room's cap on a target that may be unavailable.
    const RUNBOOK: &str = r#"kind: runbook
name: NAME
trigger:
  alerts: [{alertname: Full}]
policy:
  concurrency_key: "{{ alert.labels.event }}"
  cooldown: 15m
  budget: {runs: 1, per: 1h}
  retry: {attempts: 2, backoff: 10s, max_backoff: 1m}
  expected_duration: 1m
steps:
  - id: set
    action: http
    with: {target: api, method: PUT, path: /cap}
"#;

    /// A target that answers 503 to its first `fail` calls, then 200.
    async fn target(fail: u32) -> (String, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        let app = axum::Router::new().fallback(move || {
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) < fail {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::OK
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}/"), calls)
    }

    struct Bot {
        store: Store,
        clock: Clock,
        alerts: mpsc::Sender<AlertEvent>,
        stop: CancellationToken,
        task: tokio::task::JoinHandle<()>,
    }

    /// A control loop with runbook `name` (named per test: the metrics
    /// are the process's).
    async fn bot(url: &str, name: &str) -> Bot {
        bot_with(url, &RUNBOOK.replace("NAME", name)).await
    }

    /// A control loop with the runbook `text`.
    async fn bot_with(url: &str, text: &str) -> Bot {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let clock = Clock::manual(1_000_000);
        let outbox = Outbox::new(store.clone());
        let mut env = silence_tests::env(&outbox, &clock);
        env.targets.insert(
            "api".into(),
            crate::config::Target {
                name: "api".into(),
                url: reqwest::Url::parse(url).unwrap(),
                timeout: crate::duration::PromDuration::from_secs(5),
                bearer_secret: None,
                idempotency_keys: true,
            },
        );
        let (finished_tx, finished_rx) = mpsc::channel(16);
        let executor = Executor::new(env, store.clone(), CancellationToken::new(), finished_tx);
        let check = crate::load::check_env(["api".to_owned()]);
        let rb = crate::runbook::parse_runbook("r.yaml", text, &check).unwrap();
        let control = Control::new(
            Dispatcher::new(vec![Arc::new(rb)], None),
            executor,
            store.clone(),
            outbox,
            clock.clone(),
            "#c".into(),
            vec!["event".into()],
        );
        let (alerts, alert_rx) = mpsc::channel(16);
        let (_cmd_tx, cmd_rx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let task = tokio::spawn(control.run(alert_rx, finished_rx, cmd_rx, stop.clone()));
        Bot {
            store,
            clock,
            alerts,
            stop,
            task,
        }
    }

    impl Bot {
        async fn chat(&self) -> Vec<String> {
            self.store
                .pending_outbox(1000)
                .await
                .unwrap()
                .into_iter()
                .filter_map(|r| serde_json::from_str::<ChatMessage>(&r.payload_json).ok())
                .filter(|m| m.card.is_none())
                .map(|m| m.text)
                .collect()
        }

        /// Waits (real time) until chat says `needle`.
        async fn said(&self, needle: &str) {
            for _ in 0..500 {
                if self.chat().await.iter().any(|t| t.contains(needle)) {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!("chat never said {needle:?}: {:#?}", self.chat().await);
        }

        /// The kinds of the incident's timeline entries, in order.
        async fn timeline_kinds(&self) -> Vec<String> {
            self.store
                .timeline("launch")
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.kind.to_string())
                .collect()
        }

        async fn outcomes(&self) -> Vec<String> {
            self.store
                .runs()
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.state.to_string())
                .collect()
        }

        async fn stop(self) {
            self.stop.cancel();
            self.task.await.unwrap();
        }
    }

    // Real time for the store and the target; the bot's clock is manual,
    // so every wait between tries is stepped by the test.
    #[tokio::test]
    async fn a_mitigation_the_target_refused_is_tried_again_until_it_takes() {
        let m = crate::metrics::get();
        let started_before = m.run_retries.with(&["cap", "started"]).get();
        let (url, calls) = target(2).await;
        let b = bot(&url, "cap").await;
        let t0 = b.clock.now();
        b.alerts
            .send(event(AlertEventKind::Firing, t0))
            .await
            .unwrap();
        b.said("trying it again in 10s if *Full* still fires (try 1 of 2)")
            .await;
        // Not before it is due.
        b.clock.advance_to(t0 + 9_000);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        b.clock.advance_to(t0 + 10_000);
        b.said("trying *cap* again (try 1 of 2): *Full* still fires")
            .await;
        // The wait doubles.
        b.said("trying it again in 20s if *Full* still fires (try 2 of 2)")
            .await;
        b.clock.advance_to(t0 + 30_000);
        b.said("runbook *cap* succeeded").await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(b.outcomes().await, ["failed", "failed", "succeeded"]);
        // The two that changed nothing used none of the budget of one.
        assert_eq!(b.store.runs_changed_nothing().await.unwrap().len(), 2);
        assert_eq!(
            m.run_retries.with(&["cap", "started"]).get() - started_before,
            2
        );
        let timeline = b.timeline_kinds().await;
        for kind in ["retry_scheduled", "retry_started"] {
            assert!(timeline.iter().any(|k| k == kind), "{timeline:?}");
        }
        b.stop().await;
    }

    /// Dispatch rule 7, end to end: a second alert within the cooldown
    /// starts the runbook again only when its breach comes first, and
    /// chat, the timeline and the metric say so.
    #[tokio::test]
    async fn a_cooldown_gives_way_to_a_nearer_breach_and_says_so() {
        let (url, calls) = target(0).await;
        let text = RUNBOOK
            .replace("NAME", "cap-again")
            .replace("budget: {runs: 1, per: 1h}", "budget: {runs: 3, per: 1h}");
        let b = bot_with(&url, &text).await;
        let m = crate::metrics::get();
        let before = m.cooldown_overrides.with(&["cap-again"]).get();
        let t0 = b.clock.now();
        let firing = |at: Millis, breach: Option<&str>| {
            let mut e = event(AlertEventKind::Firing, at);
            if let Some(v) = breach {
                e.alert
                    .annotations
                    .insert(crate::dispatch::TIME_TO_BREACH.into(), v.into());
            }
            e
        };
        let resolved = |at: Millis| event(AlertEventKind::Resolved, at);
        b.alerts.send(firing(t0, None)).await.unwrap();
        b.said("runbook *cap-again* succeeded").await;
        // Fires again 2 minutes later with its breach beyond the 13
        // minutes of cooldown left: held.
        b.alerts.send(resolved(t0 + 60_000)).await.unwrap();
        b.clock.advance_to(t0 + 120_000);
        b.alerts
            .send(firing(t0 + 120_000, Some("900")))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // And once more, the breach 2 minutes away: started, and said.
        b.alerts.send(resolved(t0 + 150_000)).await.unwrap();
        b.clock.advance_to(t0 + 180_000);
        b.alerts
            .send(firing(t0 + 180_000, Some("120")))
            .await
            .unwrap();
        b.said("starting *cap-again* again for launch within its cooldown: the breach is predicted in 2m, before the 12m of cooldown left are over")
            .await;
        b.said("runbook *cap-again* succeeded").await;
        for _ in 0..100 {
            if calls.load(Ordering::SeqCst) == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(m.cooldown_overrides.with(&["cap-again"]).get() - before, 1);
        let timeline = b.timeline_kinds().await;
        assert!(
            timeline.iter().any(|k| k == "cooldown_overridden"),
            "{timeline:?}"
        );
        b.stop().await;
    }

    #[tokio::test]
    async fn tries_stop_when_spent_and_a_person_is_called() {
        let (url, calls) = target(u32::MAX).await;
        let b = bot(&url, "cap-spent").await;
        let t0 = b.clock.now();
        b.alerts
            .send(event(AlertEventKind::Firing, t0))
            .await
            .unwrap();
        b.said("(try 1 of 2)").await;
        b.clock.advance_to(t0 + 10_000);
        b.said("(try 2 of 2)").await;
        b.clock.advance_to(t0 + 30_000);
        b.said(":rotating_light: needs a person: *cap-spent* failed 3 times in a row without changing anything while *Full* fires; not trying it again").await;
        b.clock.advance_to(t0 + 600_000);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        b.stop().await;
    }

    /// A control loop with no runbooks that measures the audience every
    /// 15s (and 60s after an incident resolves), with the ends of the
    /// sampler's queues and of the run-end queue.
    struct Measured {
        control: Control,
        requests: mpsc::Receiver<crate::audience::Request>,
        samples: mpsc::Sender<crate::audience::Sample>,
        finished: mpsc::Receiver<RunFinished>,
    }

    fn measured(store: &Store, clock: &Clock) -> Measured {
        let outbox = Outbox::new(store.clone());
        let env = silence_tests::env(&outbox, clock);
        let (finished_tx, finished) = mpsc::channel(16);
        let executor = Executor::new(env, store.clone(), CancellationToken::new(), finished_tx);
        let (req_tx, requests) = crate::audience::queue();
        let (samples, sample_rx) = mpsc::channel(16);
        let control = Control::new(
            Dispatcher::new(vec![], None),
            executor,
            store.clone(),
            outbox,
            clock.clone(),
            "#c".into(),
            vec!["event".into()],
        )
        .with_audience(
            req_tx,
            sample_rx,
            crate::duration::PromDuration::from_secs(15),
            crate::duration::PromDuration::from_secs(60),
        );
        Measured {
            control,
            requests,
            samples,
            finished,
        }
    }

    #[tokio::test]
    async fn each_open_incident_is_measured_and_its_card_shows_the_audience() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let clock = Clock::manual(1_000_000);
        let Measured {
            control,
            requests: mut req_rx,
            samples: sample_tx,
            finished: finished_rx,
        } = measured(&store, &clock);
        let (alerts, alert_rx) = mpsc::channel(16);
        let (_cmd_tx, cmd_rx) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let task = tokio::spawn(control.run(alert_rx, finished_rx, cmd_rx, stop.clone()));
        let t0 = clock.now();
        alerts
            .send(event(AlertEventKind::Firing, t0))
            .await
            .unwrap();
        let b = Bot {
            store: store.clone(),
            clock: clock.clone(),
            alerts,
            stop,
            task,
        };
        let card_says = |want: &'static str| {
            let store = store.clone();
            async move {
                for _ in 0..500 {
                    let cards: Vec<String> = store
                        .pending_outbox(1000)
                        .await
                        .unwrap()
                        .into_iter()
                        .filter_map(|r| serde_json::from_str::<ChatMessage>(&r.payload_json).ok())
                        .filter_map(|m| m.card.map(|_| m.text))
                        .collect();
                    if cards.last().is_some_and(|t| t.contains(want)) {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                panic!("no card says {want:?}");
            }
        };
        card_says("Full").await;
        clock.advance_to(t0 + 15_000);
        let req = tokio::time::timeout(std::time::Duration::from_secs(5), req_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(req.incident, "launch");
        assert_eq!(
            req.labels,
            [("event".to_owned(), "launch".to_owned())].into()
        );
        for (at, listening) in [(15_000, 560_000), (30_000, 540_000)] {
            sample_tx
                .send(crate::audience::Sample {
                    incident: "launch".into(),
                    listening: Some(listening),
                    at_risk: Some(500_000),
                    without_us: Some(0),
                    at: t0 + at,
                })
                .await
                .unwrap();
        }
        card_says("👥 540,000 listening (peak 560,000: 20,000 lost) · 500,000 at risk · doing nothing: 0 listening").await;
        let rows = store.audience("launch").await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].listening, Some(540_000));

        // Resolved, it is still measured for a while, for the review.
        b.alerts
            .send(event(AlertEventKind::Resolved, t0 + 31_000))
            .await
            .unwrap();
        card_says("RESOLVED").await;
        let mut asked = Vec::new();
        for at in [45_000, 60_000, 75_000, 90_000, 105_000, 120_000] {
            clock.advance_to(t0 + at);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            while let Ok(r) = req_rx.try_recv() {
                assert_eq!(r.incident, "launch");
                asked.push(at);
            }
            if at == 45_000 {
                sample_tx
                    .send(crate::audience::Sample {
                        incident: "launch".into(),
                        listening: Some(530_000),
                        at_risk: Some(0),
                        without_us: Some(0),
                        at: t0 + at,
                    })
                    .await
                    .unwrap();
                for _ in 0..500 {
                    if store.audience("launch").await.unwrap().len() == 3 {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                assert_eq!(store.audience("launch").await.unwrap().len(), 3);
            }
        }
        // Resolved at 15s on the bot's clock, follow_for 60s: asked until
        // 75s, then no more.
        assert!(asked.len() >= 2, "{asked:?}");
        assert!(asked.iter().all(|at| *at <= 75_000), "{asked:?}");
        b.stop().await;
    }

    #[tokio::test]
    async fn with_more_incidents_than_the_queue_holds_each_is_measured_in_turn() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let clock = Clock::manual(1_000_000);
        let Measured {
            mut control,
            requests: mut req_rx,
            ..
        } = measured(&store, &clock);
        let t0 = clock.now();
        for n in 0..20 {
            let mut ev = event(AlertEventKind::Firing, t0);
            ev.alert.labels = ev.alert.labels.with("event", format!("e{n:02}"));
            control.on_alert(ev).await;
        }
        assert_eq!(control.cards.len(), 20);
        let drain = |rx: &mut mpsc::Receiver<crate::audience::Request>| {
            let mut got = Vec::new();
            while let Ok(r) = rx.try_recv() {
                assert_eq!(r.labels["event"], r.incident);
                got.push(r.incident);
            }
            got
        };
        control.on_audience_tick();
        let first = drain(&mut req_rx);
        assert_eq!(first.len(), crate::audience::QUEUE);
        control.on_audience_tick();
        let second = drain(&mut req_rx);
        // The four left out come first, then the rest again.
        assert_eq!(second[..4], ["e16", "e17", "e18", "e19"]);
        let all: std::collections::BTreeSet<&String> = first.iter().chain(&second).collect();
        assert_eq!(all.len(), 20);
    }

    #[tokio::test]
    async fn nothing_that_can_act_before_the_breach_pages_people_at_once() {
        let (url, calls) = target(0).await;
        let b = bot(&url, "slow-cap").await;
        // The bot knows only the runbook's own estimate: 1m.
        let t0 = b.clock.now();
        let mut ev = event(AlertEventKind::Firing, t0);
        ev.alert
            .annotations
            .insert(crate::dispatch::TIME_TO_BREACH.into(), "30".into());
        b.alerts.send(ev).await.unwrap();
        b.said(":rotating_light: needs a person now: *Full* predicts its breach in 30s, and no runbook for it can take effect sooner: *slow-cap* takes about 1m (its expected_duration; not measured yet). Starting it anyway").await;
        // Started anyway: nothing faster exists.
        b.said("runbook *slow-cap* succeeded").await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let timeline = b.store.timeline("launch").await.unwrap();
        assert!(timeline.iter().any(|e| e.kind == tl::Kind::PagedLate));
        b.stop().await;
    }

    #[tokio::test]
    async fn no_try_again_once_the_alert_has_stopped() {
        let (url, calls) = target(1).await;
        let b = bot(&url, "cap-stopped").await;
        let t0 = b.clock.now();
        b.alerts
            .send(event(AlertEventKind::Firing, t0))
            .await
            .unwrap();
        b.said("(try 1 of 2)").await;
        b.alerts
            .send(event(AlertEventKind::Resolved, t0 + 5_000))
            .await
            .unwrap();
        b.said("*Full* resolved").await;
        b.clock.advance_to(t0 + 10_000);
        b.said("not trying *cap-stopped* again: *Full* no longer fires or is silenced")
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        b.stop().await;
    }
}
