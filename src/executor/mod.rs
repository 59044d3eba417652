//! The executor: runs a runbook's steps through their actions.
//!
//! Each run is one task on the executor's tracker. A step is recorded in
//! the store before it acts and after; its parameters are rendered from the
//! alert, the inputs and earlier steps' outputs; it gets a timeout, retries
//! with backoff for retryable failures, and an idempotency key that is the
//! same on every attempt. Every step is posted to the incident's thread.
//! When the run ends, the control loop hears of it through a bounded queue.
//!
//! A run is a replay of its record: on a restart, [`Executor::resume`]
//! runs each unfinished run again from the top with what the store says
//! each step did, so finished steps are not repeated (their outputs are
//! reused), a step that was in flight is repeated only when its action
//! says that is harmless (same idempotency key), and anything else marks
//! the run interrupted for a human. Approval gates, rollbacks and
//! verification are steps too, so they replay the same way.
//!
//! Rollbacks run newest first. One with a guard first runs the guard's
//! reads (recorded as `guard:<step>:<read>`) and evaluates `holds`: only
//! `true` lets it act. Otherwise (false, a failed read, an expression
//! that cannot be evaluated) it is held: recorded as `held` on
//! `rollback:<step>`, said in chat as needing a person with the guard's
//! `otherwise`, put on the timeline and counted; the other rollbacks
//! still run, and the run ends failed, not rolled back.
//!
//! Each run keeps [`Effects`]: whether a step that changes something
//! (see [`actions::Action::changes`]) was done or may have been, and
//! whether the failure that ended it was a passing fault. A run that
//! failed on a passing fault having changed nothing is recorded as such,
//! so dispatch may try it again, even after a restart.

pub mod actions;
pub mod gates;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chat::{BoxFut, ChatMessage, Kind};
use crate::clock::Millis;
use crate::roles::Role;
use crate::run_state::{Going, RunState, StepState};
pub use crate::runbook::AlertCtx;
use crate::runbook::template::Templates;
use crate::runbook::{Approval, Guard, OnFailure, OnTimeout, Runbook, Step, VerifyFailure};
use crate::store::{RunRecord, StepEnd, StepRecord, Store};
use crate::timeline::{self as tl, About, By, TimelineEntry};
use actions::runbook::Calls;
use actions::{ActionEnv, ActionError, StepCtx};
pub use gates::{AnswerError, GateOutcome, Gates, Verdict, Waiting};

#[derive(Clone, Debug)]
pub struct RunRequest {
    pub run_id: String,
    pub runbook: Arc<Runbook>,
    pub incident: String,
    pub concurrency_key: String,
    pub alert: Option<AlertCtx>,
    pub inputs: BTreeMap<String, Json>,
    /// Who started it.
    pub by: By,
}

/// How a run ended (model: the timeline records it too).
pub use crate::timeline::Outcome;

/// Sent to the control loop when a run ends.
#[derive(Clone, Debug)]
pub struct RunFinished {
    pub run_id: String,
    pub runbook: String,
    pub concurrency_key: String,
    pub incident: String,
    /// The alert it was started for; `None` when a person started it.
    pub alert: Option<AlertCtx>,
    pub outcome: Outcome,
    /// A step that changes something was done, or may have been.
    pub changed: bool,
    /// The failure that ended it (if any) was a passing fault: a timeout,
    /// a refused connection, a 5xx or a 429.
    pub transient: bool,
    /// For a run that succeeded having changed something: how long from
    /// its start its steps took to take effect (verification not
    /// counted). `None` for a run resumed after a restart, whose time
    /// includes the bot's own downtime.
    pub took_effect_after: Option<Millis>,
    pub at: Millis,
}

impl RunFinished {
    /// Failed on a passing fault before changing anything: as if it had
    /// not run, and worth trying again.
    pub fn changed_nothing(&self) -> bool {
        self.outcome == Outcome::Failed && !self.changed && self.transient
    }
}

/// What a run has done to the world so far, shared with the runbooks it
/// calls (their steps are its steps).
#[derive(Debug, Default)]
struct Effects {
    changed: AtomicBool,
    transient: AtomicBool,
}

impl Effects {
    fn changed(&self) {
        self.changed.store(true, Ordering::Relaxed);
    }

    fn failure(&self, transient: bool) {
        self.transient.store(transient, Ordering::Relaxed);
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AbortError {
    #[error("no run {0} is in progress")]
    NotRunning(String),
}

/// Where a run has got to, for the incident card. Sent without waiting:
/// when the control loop is behind and the queue is full the report is
/// dropped, which only delays the card until the next report or the
/// run's end; the steps themselves are in the store and the thread.
#[derive(Clone, Debug, PartialEq)]
pub struct RunProgress {
    pub run_id: String,
    pub runbook: String,
    pub incident: String,
    pub state: RunState,
    /// The latest step to end and how: (id, state).
    pub last_step: Option<(String, StepState)>,
    /// The gate the run waits at, if it waits for a person.
    pub waiting: Option<String>,
}

#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Live {
    cancel: CancellationToken,
    aborted_by: Option<String>,
    stopping: Stopping,
}

/// The run an abort stops, for the record of who stopped it.
#[derive(Clone, Debug, PartialEq)]
pub struct Stopping {
    pub runbook: String,
    pub incident: String,
}

struct Inner {
    env: ActionEnv,
    store: Store,
    templates: Templates,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    finished: mpsc::Sender<RunFinished>,
    progress: Option<mpsc::Sender<RunProgress>>,
    gates: Gates,
    live: Mutex<HashMap<String, Live>>,
}

impl Inner {
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the store says a step did before a restart.
type Prior = HashMap<String, StepRecord>;

impl Executor {
    pub fn new(
        env: ActionEnv,
        store: Store,
        shutdown: CancellationToken,
        finished: mpsc::Sender<RunFinished>,
    ) -> Self {
        Executor {
            inner: Arc::new(Inner {
                env,
                store,
                templates: Templates::new(),
                tracker: TaskTracker::new(),
                shutdown,
                finished,
                progress: None,
                gates: Gates::default(),
                live: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Reports runs' progress on `tx` from now on (see [`RunProgress`]).
    /// Call before starting runs.
    pub fn with_progress(mut self, tx: mpsc::Sender<RunProgress>) -> Self {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.progress = Some(tx),
            None => tracing::error!("progress reporting set after runs started; not reporting"),
        }
        self
    }

    /// Starts a run in the background; its end is reported on the
    /// `finished` queue.
    pub fn start(&self, req: RunRequest) {
        self.spawn(req, None);
    }

    fn spawn(&self, req: RunRequest, prior: Option<Prior>) {
        let inner = self.inner.clone();
        let cancel = inner.shutdown.child_token();
        inner.live().insert(
            req.run_id.clone(),
            Live {
                cancel: cancel.clone(),
                aborted_by: None,
                stopping: Stopping {
                    runbook: req.runbook.name.clone(),
                    incident: req.incident.clone(),
                },
            },
        );
        self.inner.tracker.spawn(async move {
            let done = run(&inner, &req, prior, &cancel).await;
            inner.live().remove(&req.run_id);
            if let Some(done) = done {
                // The control loop may already have stopped at shutdown;
                // the run's outcome is in the store either way.
                let _ = inner.finished.send(done).await;
            }
        });
    }

    /// Picks up the runs a previous process left unfinished. Returns the
    /// ones resumed, so the control loop counts them as in progress; the
    /// others are ended as interrupted, with the reason in chat.
    pub async fn resume(&self, runbooks: &[Arc<Runbook>]) -> Vec<RunRequest> {
        let inner = &self.inner;
        let runs = match inner.store.unfinished_runs().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot list unfinished runs; none resumed");
                return Vec::new();
            }
        };
        let mut resumed = Vec::new();
        for (rec, trigger) in runs {
            match self.resumable(&rec, &trigger, runbooks).await {
                Ok((req, prior)) => {
                    tracing::info!(run = %req.run_id, "resuming run");
                    resumed.push(req.clone());
                    self.spawn(req, Some(prior));
                }
                Err(why) => {
                    let at = inner.env.clock.now();
                    tracing::warn!(run = %rec.id, reason = %why, "cannot resume run");
                    if let Err(e) = inner
                        .store
                        .finish_run(&rec.id, Outcome::Interrupted, at, Some(&why))
                        .await
                    {
                        tracing::error!(error = %e, run = %rec.id, "cannot record run end");
                    }
                    post(
                        inner,
                        &rec.incident,
                        Kind::RunFailed,
                        format!(
                            "run {} of *{}* was interrupted by {} and cannot resume: {why}. A human needs to check what it did.",
                            rec.id, rec.runbook, restart(inner)
                        ),
                    )
                    .await;
                }
            }
        }
        resumed
    }

    async fn resumable(
        &self,
        rec: &RunRecord,
        trigger: &str,
        runbooks: &[Arc<Runbook>],
    ) -> Result<(RunRequest, Prior), String> {
        #[derive(serde::Deserialize)]
        struct Trigger {
            alert: Option<AlertCtx>,
            inputs: BTreeMap<String, Json>,
            /// Written since store schema 2.
            by: Option<By>,
            /// All a previous release wrote of who started it.
            actor: Option<String>,
            digest: Option<String>,
        }
        let t: Trigger =
            serde_json::from_str(trigger).map_err(|e| format!("its record is unreadable ({e})"))?;
        let rb = runbooks
            .iter()
            .find(|r| r.name == rec.runbook)
            .ok_or_else(|| format!("runbook {} is no longer loaded", rec.runbook))?;
        if t.digest.as_deref() != Some(rb.digest.as_str()) {
            return Err(format!(
                "runbook {} changed since the run started",
                rec.runbook
            ));
        }
        let steps = self
            .inner
            .store
            .steps(&rec.id)
            .await
            .map_err(|e| format!("its steps cannot be read ({e})"))?;
        let prior = steps.into_iter().map(|s| (s.step_id.clone(), s)).collect();
        Ok((
            RunRequest {
                run_id: rec.id.clone(),
                runbook: rb.clone(),
                incident: rec.incident.clone(),
                concurrency_key: rec.concurrency_key.clone(),
                alert: t.alert,
                inputs: t.inputs,
                by: t
                    .by
                    .or_else(|| t.actor.as_deref().map(crate::timeline::legacy::by))
                    .unwrap_or(By::Bot),
            },
            prior,
        ))
    }

    /// Approves or denies the gate run `run` waits at.
    pub fn answer(
        &self,
        run: &str,
        verdict: Verdict,
        by: &crate::roles::Who,
        role: Role,
    ) -> Result<String, AnswerError> {
        self.inner.gates.answer(run, verdict, by, role)
    }

    /// Gates waiting for a person.
    pub fn waiting(&self) -> Vec<Waiting> {
        self.inner.gates.waiting()
    }

    /// Stops a run at once: its current step is cancelled and nothing
    /// after it runs (no rollback: the person who aborts decides).
    pub fn abort(&self, run: &str, by: &str) -> Result<Stopping, AbortError> {
        let mut live = self.inner.live();
        let l = live
            .get_mut(run)
            .ok_or_else(|| AbortError::NotRunning(run.to_owned()))?;
        l.aborted_by = Some(by.to_owned());
        l.cancel.cancel();
        Ok(l.stopping.clone())
    }

    /// Waits for every run to end (they stop at their next step after
    /// shutdown is signalled).
    pub async fn drain(&self) {
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}

async fn post(inner: &Inner, incident: &str, kind: Kind, text: String) {
    let msg = ChatMessage {
        channel: inner.env.channel.clone(),
        incident: Some(incident.to_owned()),
        kind,
        text,
        at: inner.env.clock.now(),
        slot: None,
        card: None,
        reply_to: None,
        image: None,
        checklist: None,
    };
    if let Err(e) = inner.env.outbox.post(&msg).await {
        tracing::error!(error = %e, "cannot queue chat message");
    }
}

impl actions::Asks for Run<'_> {
    fn asking<'a>(&'a self, what: Option<&'a str>) -> BoxFut<'a, ()> {
        Box::pin(async move {
            match what {
                Some(w) => self.set_state_at(Going::AwaitingApproval, Some(w)).await,
                None => self.set_state(Going::Running).await,
            }
        })
    }
}

/// The timeline kind of a gate's answer: nobody answering is a time-out
/// even where the gate then lets the run go on.
fn answer_kind(state: StepState, by: &By) -> tl::Kind {
    match (state, by) {
        (StepState::Denied, _) => tl::Kind::Denied,
        (StepState::Approved, By::Person(_)) => tl::Kind::Approved,
        _ => tl::Kind::ApprovalTimedOut,
    }
}

/// How a step (or gate) ended.
enum StepResult {
    Done(Json),
    Skipped,
    Failed(String),
    /// Aborted by a person: the message says by whom.
    Aborted(String),
    /// Shutdown: the run stays unfinished in the store and resumes on the
    /// next start.
    Suspended,
    /// Cannot go on safely.
    Interrupted(String),
}

/// One run in progress.
struct Run<'a> {
    inner: &'a Inner,
    req: &'a RunRequest,
    prior: Prior,
    outputs: serde_json::Map<String, Json>,
    cancel: &'a CancellationToken,
    seq: i64,
    /// Empty for a run; `step/` for the steps of a runbook that step calls,
    /// so their records, keys and messages are distinct from the caller's.
    prefix: String,
    /// The run's state and latest step, for progress reports.
    progress: std::sync::Mutex<(RunState, Option<(String, StepState)>)>,
    effects: Arc<Effects>,
    /// When its steps (not the verification) were all done.
    steps_done_at: Option<Millis>,
}

impl Run<'_> {
    /// A step's id as recorded and shown.
    fn sid(&self, id: &str) -> String {
        format!("{}{id}", self.prefix)
    }

    async fn say(&self, kind: Kind, text: String) {
        post(self.inner, &self.req.incident, kind, text).await;
    }

    /// Records on the incident's timeline, about this run (and `step`).
    async fn timeline(&self, kind: tl::Kind, by: Option<&By>, step: Option<&str>, text: &str) {
        let mut about = About::run(&self.req.runbook.name, &self.req.run_id)
            .with_alert(self.req.alert.as_ref().map(|a| a.name.as_str()));
        about.step = step.map(str::to_owned);
        let entry = TimelineEntry::new(
            &self.req.incident,
            self.inner.env.clock.now(),
            kind,
            by.unwrap_or(&self.req.by).clone(),
            about,
            text,
        );
        if let Err(e) = self.inner.store.append_timeline(&entry).await {
            tracing::error!(error = %e, run = %self.req.run_id, "cannot write timeline");
        }
    }

    /// A step's end on the timeline; a person's answer is theirs (or the
    /// bot's, when the deadline answered), recorded as what it was.
    async fn step_timeline(
        &self,
        kind: tl::Kind,
        answered: Option<&actions::Answered>,
        sid: &str,
        text: &str,
    ) {
        match answered {
            None => self.timeline(kind, None, Some(sid), text).await,
            Some(a) => {
                let by = a.by.clone().map_or(By::Bot, By::Person);
                self.timeline(answer_kind(a.state, &by), Some(&by), Some(sid), text)
                    .await;
            }
        }
    }

    fn ctx(&self) -> Json {
        json!({
            "alert": self.req.alert,
            "inputs": self.req.inputs,
            "steps": self.outputs,
            "run": {"id": self.req.run_id, "runbook": self.req.runbook.name, "incident": self.req.incident},
        })
    }

    /// Status only (the steps' rows are what a resume reads), so a
    /// failure is logged and the run goes on.
    fn report(&self, waiting: Option<&str>) {
        let Some(tx) = &self.inner.progress else {
            return;
        };
        let (state, last_step) = self
            .progress
            .lock()
            .map(|p| p.clone())
            .unwrap_or_else(|e| e.into_inner().clone());
        let _ = tx.try_send(RunProgress {
            run_id: self.req.run_id.clone(),
            runbook: self.req.runbook.name.clone(),
            incident: self.req.incident.clone(),
            state,
            last_step,
            waiting: waiting.map(str::to_owned),
        });
    }

    async fn set_state(&self, state: Going) {
        self.set_state_at(state, None).await;
    }

    async fn set_state_at(&self, state: Going, waiting: Option<&str>) {
        if let Ok(mut p) = self.progress.lock() {
            p.0 = RunState::Going(state);
        }
        self.report(waiting);
        if let Err(e) = self
            .inner
            .store
            .set_run_state(&self.req.run_id, state)
            .await
        {
            tracing::error!(error = %e, run = %self.req.run_id, %state, "cannot record run state");
        }
    }

    /// Whether this process may act: always, unless it is a replica
    /// whose lease is lost or may be (see [`crate::store::Fence::holds`]).
    fn leads(&self) -> bool {
        self.inner.store.fence().is_none_or(|f| f.holds())
    }

    /// Why the run's token fired: a person's abort, or shutdown.
    fn stopped(&self) -> StepResult {
        let by = self
            .inner
            .live()
            .get(&self.req.run_id)
            .and_then(|l| l.aborted_by.clone());
        match by {
            Some(by) => StepResult::Aborted(format!("aborted by {by}")),
            None => StepResult::Suspended,
        }
    }

    /// Records how a step ended, says `line` in the thread, then tells
    /// the card: in that order, so the card never names a step before
    /// the step's own line is queued.
    async fn record_end(
        &self,
        id: &str,
        state: StepState,
        attempts: i64,
        output: Option<&Json>,
        error: Option<&str>,
        line: Option<(Kind, String)>,
    ) {
        if let Ok(mut p) = self.progress.lock() {
            p.1 = Some((id.to_owned(), state));
        }
        let out = output.map(Json::to_string);
        if let Err(e) = self
            .inner
            .store
            .step_finished(
                &self.req.run_id,
                id,
                &StepEnd {
                    state,
                    attempts,
                    at: self.inner.env.clock.now(),
                    output_json: out.as_deref(),
                    error,
                },
            )
            .await
        {
            tracing::error!(error = %e, run = %self.req.run_id, step = id, "cannot record step end");
        }
        if let Some((kind, text)) = line {
            self.say(kind, text).await;
        }
        self.report(None);
    }

    /// A gate in front of the run or of a step: `approval:<what>` in the
    /// store.
    async fn gate(&mut self, what: &str, approval: &Approval) -> StepResult {
        let id = format!("approval:{what}");
        self.seq += 1;
        let clock = &self.inner.env.clock;
        let resumed = self.prior.contains_key(&id);
        let started = match self.prior.get(&id) {
            Some(p) if p.state == StepState::Approved => return StepResult::Done(Json::Null),
            Some(p) if matches!(p.state, StepState::Denied | StepState::TimedOut) => {
                return StepResult::Aborted(p.error.clone().unwrap_or_default());
            }
            Some(p) => p.started_at,
            None => {
                let now = clock.now();
                if let Err(e) = self
                    .inner
                    .store
                    .step_entered(
                        &self.req.run_id,
                        &id,
                        self.seq,
                        StepState::AwaitingApproval,
                        1,
                        now,
                    )
                    .await
                {
                    return StepResult::Interrupted(format!(
                        "cannot record the approval gate: {e}"
                    ));
                }
                now
            }
        };
        let deadline = started + approval.timeout.as_millis() as i64;
        let run_id = &self.req.run_id;
        // Open before anyone is told, so that an answer given the moment
        // the card or the message shows the gate finds it.
        let gate = self.inner.gates.open(run_id, what, approval, deadline);
        self.set_state_at(Going::AwaitingApproval, Some(what)).await;
        // A gate opened now has all of its timeout, as written; one
        // picked up after a restart has what is left of it.
        let left = if resumed {
            crate::human::duration(deadline - clock.now())
        } else {
            approval.timeout.to_string()
        };
        let then = match approval.on_timeout {
            OnTimeout::Abort => "the run stops",
            OnTimeout::Proceed => "the run goes on",
        };
        self.say(
            Kind::Note,
            format!(
                "run {run_id} of *{}* waits for approval of `{what}` by {}. Answer with `approve {run_id}` or `deny {run_id}`; without an answer within {}, {then}.",
                self.req.runbook.name,
                approval.who(),
                left,
            ),
        )
        .await;
        let out = gate.outcome(clock, deadline, self.cancel).await;
        self.set_state(Going::Running).await;
        // Who answered, for the timeline; nobody when time ran out.
        let mut answered = None;
        let (state, result, note) = match out {
            GateOutcome::Approved { by } => {
                let r = (
                    StepState::Approved,
                    StepResult::Done(json!({"by": by.label()})),
                    format!("`{what}` approved by {by}"),
                );
                answered = Some(By::Person(by));
                r
            }
            GateOutcome::Denied { by } => {
                let why = format!("`{what}` denied by {by}");
                answered = Some(By::Person(by));
                (StepState::Denied, StepResult::Aborted(why.clone()), why)
            }
            GateOutcome::TimedOut if approval.on_timeout == OnTimeout::Proceed => (
                StepState::Approved,
                StepResult::Done(json!({"by": null})),
                format!(
                    "nobody objected to `{what}` within {}; going on",
                    approval.timeout
                ),
            ),
            GateOutcome::TimedOut => {
                let why = format!("nobody approved `{what}` within {}", approval.timeout);
                (StepState::TimedOut, StepResult::Aborted(why.clone()), why)
            }
            GateOutcome::Cancelled => return self.stopped(),
        };
        let (out, err) = match &result {
            StepResult::Done(o) => (Some(o), None),
            _ => (None, Some(note.as_str())),
        };
        // A gate that stops the run is no tick in chat.
        let shown = match result {
            StepResult::Done(_) => Kind::Step,
            _ => Kind::StepFailed,
        };
        self.record_end(&id, state, 1, out, err, Some((shown, note.clone())))
            .await;
        let by = answered.unwrap_or(By::Bot);
        self.timeline(answer_kind(state, &by), Some(&by), Some(&id), &note)
            .await;
        result
    }

    /// Records a step that ended without acting (skipped, failed before
    /// it could, a rollback held): entered and ended at once, so the
    /// record shows where the run went.
    async fn record_unacted(
        &self,
        sid: &str,
        state: StepState,
        error: Option<&str>,
        line: Option<(Kind, String)>,
    ) {
        let now = self.inner.env.clock.now();
        if let Err(e) = self
            .inner
            .store
            .step_entered(&self.req.run_id, sid, self.seq, StepState::Running, 0, now)
            .await
        {
            tracing::error!(error = %e, run = %self.req.run_id, step = %sid, %state, "cannot record step");
        }
        self.record_end(sid, state, 0, None, error, line).await;
    }

    /// A step that failed before it could act (its `when` or parameters
    /// could not be rendered) is recorded and said like any failed step,
    /// so the record shows where the run stopped.
    async fn failed_before_acting(&self, sid: &str, why: String) -> StepResult {
        self.effects.failure(false);
        let line = (
            Kind::StepFailed,
            format!("`{sid}` failed before acting: {why}"),
        );
        self.record_unacted(sid, StepState::Failed, Some(&why), Some(line))
            .await;
        let text = format!("{sid} failed: {why}");
        self.timeline(tl::Kind::StepFailed, None, Some(sid), &text)
            .await;
        StepResult::Failed(why)
    }

    /// Runs one step: replayed from the record when it already ran.
    async fn step(&mut self, step: &Step) -> StepResult {
        self.seq += 1;
        let inner = self.inner;
        let clock = &inner.env.clock;
        let sid = self.sid(&step.id);
        let prior = self.prior.get(&sid).cloned();
        match prior.as_ref().map(|p| p.state) {
            // An `approval` step a person answered is recorded `approved`.
            Some(StepState::Succeeded | StepState::Approved) => {
                let out = prior
                    .and_then(|p| p.output_json)
                    .and_then(|o| serde_json::from_str(&o).ok())
                    .unwrap_or(Json::Null);
                return StepResult::Done(out);
            }
            Some(StepState::Skipped) => return StepResult::Skipped,
            Some(StepState::Failed | StepState::Denied | StepState::TimedOut) => {
                return StepResult::Failed(prior.and_then(|p| p.error).unwrap_or_default());
            }
            _ => {}
        }
        let ctx = self.ctx();
        if let Some(cond) = &step.when {
            match inner.templates.eval_bool(cond, &ctx) {
                Ok(true) => {}
                Ok(false) => {
                    let line = (Kind::Step, format!("`{sid}` skipped: `{cond}` is false"));
                    self.record_unacted(&sid, StepState::Skipped, None, Some(line))
                        .await;
                    return StepResult::Skipped;
                }
                Err(e) => {
                    return self
                        .failed_before_acting(&sid, format!("when: {}", e.message))
                        .await;
                }
            }
        }
        if let Some(a) = &step.approval {
            match self.gate(&sid, a).await {
                StepResult::Done(_) => {}
                other => return other,
            }
        }
        let Some(action) = actions::find(&step.action) else {
            self.effects.failure(false);
            return StepResult::Failed(format!("unknown action {}", step.action));
        };
        let params = match inner
            .templates
            .render_params(&step.with, action.langs(), &ctx)
        {
            Ok(p) => p,
            Err(e) => {
                return self
                    .failed_before_acting(&sid, format!("rendering parameters: {}", e.message))
                    .await;
            }
        };
        let changes = action.changes(&params);
        // In flight when the bot stopped: repeat only what is harmless.
        let mut attempt: u32 = 0;
        let mut first_started_at = clock.now();
        if let Some(p) = &prior {
            if changes {
                self.effects.changed();
            }
            if !action.repeatable(&params, &inner.env) {
                let why = format!(
                    "step `{sid}` ({}) was in flight when the bot stopped, and repeating it is not known to be safe",
                    step.action
                );
                self.record_end(
                    &sid,
                    StepState::Interrupted,
                    p.attempts,
                    None,
                    Some(&why),
                    None,
                )
                .await;
                return StepResult::Interrupted(why);
            }
            attempt = p.attempts.max(0) as u32;
            first_started_at = p.started_at;
            self.say(
                Kind::Step,
                format!(
                    "`{sid}` was in flight at the restart; repeating it with the same idempotency key"
                ),
            )
            .await;
        }
        // A step that calls a runbook runs its steps inside itself.
        let caller = action.callee(&params).is_some().then(|| Caller {
            inner,
            req: self.req,
            prior: self.prior.clone(),
            cancel: self.cancel,
            prefix: format!("{sid}/"),
            seq: self.seq * 1000,
            effects: self.effects.clone(),
        });
        let step_ctx = StepCtx {
            env: &inner.env,
            run_id: &self.req.run_id,
            step_id: &sid,
            incident: &self.req.incident,
            idempotency_key: format!("firebreak/{}/{sid}", self.req.run_id),
            cancel: self.cancel,
            first_started_at,
            gates: &inner.gates,
            calls: caller.as_ref().map(|c| c as &dyn Calls),
            asks: &*self,
        };
        let step_started = clock.now();
        let first_attempt = attempt + 1;
        let result = loop {
            attempt += 1;
            // A resumed step keeps its first start time, so a wait resumes
            // with what was left of it.
            let at = if attempt == first_attempt {
                first_started_at
            } else {
                clock.now()
            };
            // A replica that may have lost the lease does not act: the
            // next leader picks the run up where the store says it is.
            if !self.leads() {
                return StepResult::Suspended;
            }
            if let Err(e) = inner
                .store
                .step_entered(
                    &self.req.run_id,
                    &sid,
                    self.seq,
                    StepState::Running,
                    i64::from(attempt),
                    at,
                )
                .await
            {
                break Err(ActionError::fatal(format!("cannot record step start: {e}")));
            }
            if !self.leads() {
                return StepResult::Suspended;
            }
            let res = tokio::select! {
                r = tokio::time::timeout(clock.real(step.timeout.to_std()), action.run(&step_ctx, params.clone())) => {
                    r.unwrap_or_else(|_| Err(ActionError::retryable(format!("timed out after {}", step.timeout))))
                }
                _ = self.cancel.cancelled() => return self.stopped(),
            };
            // Anything but a certain "nothing was done" may have acted.
            if changes && res.as_ref().is_err_and(|e| !e.not_applied) {
                self.effects.changed();
            }
            match res {
                Err(e)
                    if e.retryable
                        && attempt < first_attempt + step.retries
                        && !self.cancel.is_cancelled() =>
                {
                    let n = attempt - first_attempt;
                    let wait = step.backoff.to_std() * 2u32.saturating_pow(n);
                    self.say(
                        Kind::StepFailed,
                        format!(
                            "`{sid}` attempt {attempt} failed: {}; retrying in {}",
                            e.message,
                            crate::duration::PromDuration::from_millis(wait.as_millis() as u64)
                        ),
                    )
                    .await;
                    tokio::select! {
                        _ = clock.sleep(wait.min(Duration::from_secs(300))) => {}
                        _ = self.cancel.cancelled() => return self.stopped(),
                    }
                }
                other => break other,
            }
        };
        if self.cancel.is_cancelled() {
            return self.stopped();
        }
        let took = clock.now() - step_started;
        let m = crate::metrics::get();
        let action = step.action.to_string();
        m.step_seconds
            .with(&[&action])
            .observe(took as f64 / 1000.0);
        let outcome = if result.is_ok() {
            "succeeded"
        } else {
            "failed"
        };
        m.steps.with(&[&action, outcome]).inc();
        match &result {
            Ok(_) if changes => self.effects.changed(),
            Ok(_) => {}
            // A called runbook's own steps said how it failed.
            Err(_) if caller.is_some() => {}
            Err(e) => self.effects.failure(e.retryable),
        }
        match result {
            Ok(done) => {
                let state = done
                    .answered
                    .as_ref()
                    .map_or(StepState::Succeeded, |a| a.state);
                let line = (
                    Kind::Step,
                    format!(
                        "`{sid}` ({}) {} in {}",
                        step.action,
                        done.summary,
                        human_ms(took)
                    ),
                );
                self.record_end(
                    &sid,
                    state,
                    i64::from(attempt),
                    Some(&done.output),
                    None,
                    Some(line),
                )
                .await;
                let text = format!("{sid}: {} ({})", done.summary, step.action);
                self.step_timeline(tl::Kind::Step, done.answered.as_ref(), &sid, &text)
                    .await;
                StepResult::Done(done.output)
            }
            Err(e) => {
                let state = e.answered.as_ref().map_or(StepState::Failed, |a| a.state);
                let line = (
                    Kind::StepFailed,
                    format!(
                        "`{sid}` ({}) failed after {attempt} attempt(s): {}",
                        step.action, e.message
                    ),
                );
                self.record_end(
                    &sid,
                    state,
                    i64::from(attempt),
                    None,
                    Some(&e.message),
                    Some(line),
                )
                .await;
                let text = format!("{sid} failed: {}", e.message);
                self.step_timeline(tl::Kind::StepFailed, e.answered.as_ref(), &sid, &text)
                    .await;
                StepResult::Failed(e.message)
            }
        }
    }

    /// Whether a guarded rollback may act: `Ok(None)` when its guard
    /// holds, `Ok(Some(why))` when it is held (with what people are told),
    /// `Err` when the run was stopped meanwhile. A held rollback is
    /// recorded as such, so a restart does not judge it again.
    async fn guard(
        &mut self,
        step: &Step,
        undo: &Step,
        g: &Guard,
    ) -> Result<Option<String>, StepResult> {
        let rsid = self.sid(&undo.id);
        let began = match self.prior.get(&rsid) {
            Some(p) if p.state == StepState::Held => {
                return Ok(Some(p.error.clone().unwrap_or_default()));
            }
            other => other.is_some(),
        };
        // Recorded reads replay from the record, so a restart judges from
        // the same numbers it judged from before.
        let mut cause = None;
        for r in &g.read {
            match self.step(&r.step).await {
                StepResult::Done(out) => {
                    self.outputs.insert(r.name.clone(), out);
                }
                StepResult::Skipped => {}
                StepResult::Failed(e) | StepResult::Interrupted(e) => {
                    cause = Some(format!("read `{}` failed: {e}", r.name));
                    break;
                }
                stop @ (StepResult::Aborted(_) | StepResult::Suspended) => return Err(stop),
            }
        }
        // The guard held before a restart and the rollback began: judging
        // again could stop it half done. Its reads are in place for its
        // parameters.
        if began {
            return Ok(None);
        }
        let templates = &self.inner.templates;
        let ctx = self.ctx();
        if cause.is_none() {
            match templates.eval(&g.holds, &ctx) {
                Ok(Json::Bool(true)) => return Ok(None),
                Ok(Json::Bool(false)) => {}
                Ok(other) => {
                    cause = Some(format!("`holds` gave {other}, not true or false"));
                }
                Err(e) => cause = Some(format!("`holds` could not be evaluated: {}", e.message)),
            }
        }
        let said = match templates.render_str(&g.otherwise, &ctx) {
            Ok(t) => t,
            Err(e) => format!("(`otherwise` could not be rendered: {})", e.message),
        };
        // When the guard could not judge, that comes first: the numbers in
        // `otherwise` may be missing or stale.
        let why = match cause {
            None => said,
            Some(c) => format!("{c}; {said}"),
        };
        let what = format!("rollback of `{}`", self.sid(&step.id));
        // Said before it is recorded: a restart in between says it twice
        // rather than never.
        self.say(
            Kind::RunFailed,
            format!(":rotating_light: needs a person: {what} held, not done. {why}"),
        )
        .await;
        let sid = self.sid(&step.id);
        self.timeline(
            tl::Kind::RollbackHeld,
            None,
            Some(&sid),
            &format!("{what} held: {why}"),
        )
        .await;
        crate::metrics::get()
            .rollbacks_held
            .with(&[&self.req.runbook.name])
            .inc();
        // Its own place in the record, after the reads (steps are listed
        // in this order).
        self.seq += 1;
        // Said above, before the record.
        self.record_unacted(&rsid, StepState::Held, Some(&why), None)
            .await;
        Ok(Some(why))
    }

    /// Undoes the steps that acted, newest first. Returns the rollbacks
    /// that failed and those held by their guards (a human must see to
    /// both), or `Err` when the run was stopped meanwhile.
    async fn roll_back(&mut self, done: &[&Step]) -> Result<Undone, StepResult> {
        self.set_state(Going::RollingBack).await;
        let with_undo: Vec<&&Step> = done.iter().filter(|s| s.rollback.is_some()).collect();
        if with_undo.is_empty() {
            self.say(
                Kind::Note,
                "nothing to roll back: no completed step has a rollback".into(),
            )
            .await;
            return Ok(Undone {
                nothing: true,
                ..Undone::default()
            });
        }
        self.say(
            Kind::Note,
            format!(
                "rolling back: {}",
                with_undo
                    .iter()
                    .rev()
                    .map(|s| {
                        let guarded = s.rollback.as_ref().is_some_and(|r| r.guard.is_some());
                        let cond = if guarded { " (if its guard holds)" } else { "" };
                        format!("`{}`{cond}", s.id)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .await;
        let mut undone = Undone::default();
        for s in with_undo.into_iter().rev() {
            let undo = s.rollback.as_deref().expect("filtered above");
            if let Some(g) = &undo.guard
                && let Some(why) = self.guard(s, undo, g).await?
            {
                undone
                    .held
                    .push(format!("rollback of `{}` held: {why}", self.sid(&s.id)));
                continue;
            }
            match self.step(undo).await {
                StepResult::Done(out) => {
                    self.outputs.insert(undo.id.clone(), out);
                }
                StepResult::Skipped => {}
                StepResult::Failed(e) | StepResult::Interrupted(e) => {
                    undone.failed.push(format!("`{}`: {e}", s.id));
                }
                stop @ (StepResult::Aborted(_) | StepResult::Suspended) => return Err(stop),
            }
        }
        Ok(undone)
    }

    /// The run's steps, verification and rollback. Returns how it ended
    /// and why, or `None` when suspended by shutdown.
    async fn body(&mut self) -> Option<(Outcome, Option<String>)> {
        let rb = self.req.runbook.clone();
        if let Some(a) = &rb.approval {
            match self.gate(&self.sid("run"), a).await {
                StepResult::Done(_) => {}
                StepResult::Suspended => return None,
                StepResult::Aborted(e) => return Some((Outcome::Aborted, Some(e))),
                other => return Some((Outcome::Interrupted, Some(reason(other)))),
            }
        }
        let mut done: Vec<&Step> = Vec::new();
        for step in &rb.steps {
            match self.step(step).await {
                StepResult::Done(out) => {
                    self.outputs.insert(step.id.clone(), out);
                    done.push(step);
                }
                StepResult::Skipped => {
                    self.outputs
                        .insert(step.id.clone(), json!({"skipped": true}));
                }
                StepResult::Failed(e) => {
                    let why = format!("step `{}` failed: {e}", self.sid(&step.id));
                    match step.on_failure {
                        OnFailure::Continue => {
                            self.outputs
                                .insert(step.id.clone(), json!({"failed": true, "error": e}));
                        }
                        OnFailure::Abort => return Some((Outcome::Failed, Some(why))),
                        OnFailure::Rollback => return self.rolled_back(&done, why).await,
                    }
                }
                StepResult::Aborted(e) => return Some((Outcome::Aborted, Some(e))),
                StepResult::Suspended => return None,
                StepResult::Interrupted(e) => return Some((Outcome::Interrupted, Some(e))),
            }
        }
        self.steps_done_at = Some(self.inner.env.clock.now());
        if let Some(v) = &rb.verify {
            for step in &v.steps {
                match self.step(step).await {
                    StepResult::Done(out) => {
                        self.outputs.insert(step.id.clone(), out);
                    }
                    StepResult::Skipped => {
                        self.outputs
                            .insert(step.id.clone(), json!({"skipped": true}));
                    }
                    StepResult::Failed(e) => {
                        let why = format!("verification `{}` failed: {e}", self.sid(&step.id));
                        return match v.on_failure {
                            VerifyFailure::Rollback => self.rolled_back(&done, why).await,
                            VerifyFailure::Escalate => Some((
                                Outcome::Failed,
                                Some(format!("{why}; escalated, the mitigation is left in place")),
                            )),
                        };
                    }
                    StepResult::Aborted(e) => return Some((Outcome::Aborted, Some(e))),
                    StepResult::Suspended => return None,
                    StepResult::Interrupted(e) => return Some((Outcome::Interrupted, Some(e))),
                }
            }
        }
        Some((Outcome::Succeeded, None))
    }

    async fn rolled_back(
        &mut self,
        done: &[&Step],
        why: String,
    ) -> Option<(Outcome, Option<String>)> {
        match self.roll_back(done).await {
            // Nothing was undone, so nothing is as it was: the failure
            // stands, and "rolled back" would tell people it was mended.
            Ok(u) if u.nothing => Some((
                Outcome::Failed,
                Some(format!("{why}; nothing to roll back, escalated")),
            )),
            Ok(u) if u.failed.is_empty() && u.held.is_empty() => {
                Some((Outcome::RolledBack, Some(why)))
            }
            // Not rolled back: what was held or failed is still in place.
            Ok(u) => {
                let mut why = why;
                for h in &u.held {
                    why.push_str(&format!("; {h}"));
                }
                if !u.failed.is_empty() {
                    why.push_str(&format!("; rollback incomplete: {}", u.failed.join("; ")));
                }
                Some((Outcome::Failed, Some(why)))
            }
            Err(StepResult::Suspended) => None,
            Err(other) => Some((Outcome::Aborted, Some(reason(other)))),
        }
    }
}

/// What a rollback left for people.
#[derive(Default)]
struct Undone {
    /// Rollbacks that failed: `` `step`: error ``.
    failed: Vec<String>,
    /// Rollbacks their guards held: `` rollback of `step` held: why ``.
    held: Vec<String>,
    /// No completed step had a rollback.
    nothing: bool,
}

/// Runs the runbook a `runbook` step calls, inside the calling run.
struct Caller<'a> {
    inner: &'a Inner,
    req: &'a RunRequest,
    prior: Prior,
    cancel: &'a CancellationToken,
    prefix: String,
    seq: i64,
    effects: Arc<Effects>,
}

impl Calls for Caller<'_> {
    fn call<'b>(
        &'b self,
        runbook: &'b str,
        inputs: serde_json::Map<String, Json>,
    ) -> BoxFut<'b, Result<actions::Done, ActionError>> {
        Box::pin(async move {
            let callee = self.req.runbook.callees.get(runbook).ok_or_else(|| {
                ActionError::fatal(format!(
                    "runbook {runbook} is not linked to {}; load them together",
                    self.req.runbook.name
                ))
            })?;
            let inputs =
                crate::runbook::calls::call_inputs(callee, inputs).map_err(ActionError::fatal)?;
            let req = RunRequest {
                run_id: self.req.run_id.clone(),
                runbook: callee.clone(),
                incident: self.req.incident.clone(),
                concurrency_key: self.req.concurrency_key.clone(),
                alert: self.req.alert.clone(),
                inputs,
                by: self.req.by.clone(),
            };
            let mut r = Run {
                inner: self.inner,
                req: &req,
                prior: self.prior.clone(),
                outputs: serde_json::Map::new(),
                cancel: self.cancel,
                seq: self.seq,
                prefix: self.prefix.clone(),
                progress: std::sync::Mutex::new((RunState::RUNNING, None)),
                effects: self.effects.clone(),
                steps_done_at: None,
            };
            match r.body().await {
                Some((Outcome::Succeeded, _)) => Ok(actions::Done {
                    output: json!({"outcome": "succeeded", "steps": r.outputs}),
                    summary: format!("runbook *{runbook}* succeeded"),
                    answered: None,
                }),
                Some((outcome, why)) => Err(ActionError::fatal(format!(
                    "runbook {runbook} {}: {}",
                    outcome.as_str(),
                    why.unwrap_or_default()
                ))),
                None => Err(ActionError::fatal("stopped by shutdown")),
            }
        })
    }
}

fn reason(r: StepResult) -> String {
    match r {
        StepResult::Failed(e) | StepResult::Aborted(e) | StepResult::Interrupted(e) => e,
        StepResult::Done(_) | StepResult::Skipped => String::new(),
        StepResult::Suspended => "suspended by shutdown".into(),
    }
}

/// What picked runs up where they were: a restart, or, on a replica,
/// another replica taking over (people reading chat should know which).
fn restart(inner: &Inner) -> String {
    match inner.store.fence() {
        Some(f) if f.epoch > 1 => format!(
            "a takeover (replica {} leads now, lease epoch {})",
            f.holder, f.epoch
        ),
        _ => "a restart".to_owned(),
    }
}

/// Runs (or resumes, with `prior`) one run. `None` when shutdown suspended
/// it: it stays unfinished in the store and resumes on the next start.
async fn run(
    inner: &Inner,
    req: &RunRequest,
    prior: Option<Prior>,
    cancel: &CancellationToken,
) -> Option<RunFinished> {
    let clock = &inner.env.clock;
    let rb = &req.runbook;
    let started = clock.now();
    let resumed = prior.is_some();
    let why = req
        .alert
        .as_ref()
        .map_or_else(|| format!("by {}", req.by), |a| format!("for {}", a.name));
    if !resumed {
        let record = RunRecord {
            id: req.run_id.clone(),
            runbook: rb.name.clone(),
            incident: req.incident.clone(),
            concurrency_key: req.concurrency_key.clone(),
            state: RunState::RUNNING,
            started_at: started,
            finished_at: None,
            error: None,
        };
        let trigger =
            json!({"alert": req.alert, "inputs": req.inputs, "by": req.by, "digest": rb.digest});
        if let Err(e) = inner.store.insert_run(&record, &trigger.to_string()).await {
            tracing::error!(error = %e, run = %req.run_id, "cannot record run; not starting it");
            return Some(finished(
                req,
                Outcome::Failed,
                &Effects::default(),
                clock.now(),
            ));
        }
    }
    let effects = Arc::new(Effects::default());
    // What a run did before a restart is not known here: assume it acted.
    if resumed {
        effects.changed();
    }
    let mut r = Run {
        inner,
        req,
        prior: prior.unwrap_or_default(),
        outputs: serde_json::Map::new(),
        cancel,
        seq: 0,
        prefix: String::new(),
        progress: std::sync::Mutex::new((RunState::RUNNING, None)),
        effects: effects.clone(),
        steps_done_at: None,
    };
    if resumed {
        r.say(
            Kind::RunStarted,
            format!(
                "runbook *{}* resumed after {} (run {})",
                rb.name,
                restart(inner),
                req.run_id
            ),
        )
        .await;
        r.timeline(
            tl::Kind::RunResumed,
            None,
            None,
            &format!("runbook {} resumed after {}", rb.name, restart(inner)),
        )
        .await;
    } else {
        r.say(
            Kind::RunStarted,
            format!("runbook *{}* started {why} (run {})", rb.name, req.run_id),
        )
        .await;
        r.timeline(
            tl::Kind::RunStarted,
            None,
            None,
            &format!("runbook {} started {why}", rb.name),
        )
        .await;
    }
    let Some((outcome, failure)) = r.body().await else {
        r.say(
            Kind::Note,
            format!(
                "runbook *{}* (run {}) paused by shutdown; it resumes when the bot starts again",
                rb.name, req.run_id
            ),
        )
        .await;
        return None;
    };
    let at = clock.now();
    let took = human_ms(at - started);
    if let Err(e) = inner
        .store
        .finish_run(&req.run_id, outcome, at, failure.as_deref())
        .await
    {
        tracing::error!(error = %e, run = %req.run_id, "cannot record run end");
    }
    let mut end = finished(req, outcome, &effects, at);
    if outcome == Outcome::Succeeded && end.changed && !resumed {
        end.took_effect_after = r.steps_done_at.map(|t| t - started);
    }
    if let Some(ms) = end.took_effect_after
        && let Err(e) = inner
            .store
            .record_effect_time(&req.run_id, &rb.name, ms, at)
            .await
    {
        tracing::error!(error = %e, run = %req.run_id, "cannot record how long the run took to take effect");
    }
    // Written after the end, so a crash between the two leaves a run that
    // counts as having acted: never tried again by mistake.
    if end.changed_nothing()
        && let Err(e) = inner.store.mark_changed_nothing(&req.run_id, at).await
    {
        tracing::error!(error = %e, run = %req.run_id, "cannot record that the run changed nothing");
    }
    let f = failure.as_deref().unwrap_or_default();
    let (kind, text, line) = match outcome {
        Outcome::Succeeded => (
            Kind::RunFinished,
            format!("runbook *{}* succeeded in {took}", rb.name),
            format!("runbook {} succeeded in {took}", rb.name),
        ),
        Outcome::RolledBack => (
            Kind::RunFailed,
            format!(
                "runbook *{}* rolled back after {took}: {f}. The mitigation was undone; a human needs to look.",
                rb.name
            ),
            format!("runbook {} rolled back: {f}", rb.name),
        ),
        Outcome::Aborted => (
            Kind::RunFailed,
            format!("runbook *{}* stopped after {took}: {f}", rb.name),
            format!("runbook {} stopped: {f}", rb.name),
        ),
        Outcome::Failed | Outcome::Interrupted => (
            Kind::RunFailed,
            format!(
                "runbook *{}* {} after {took}: {f}. A human needs to look.",
                rb.name,
                if outcome == Outcome::Failed {
                    "failed"
                } else {
                    "was interrupted"
                }
            ),
            format!("runbook {} {}: {f}", rb.name, outcome.as_str()),
        ),
    };
    r.say(kind, text).await;
    r.timeline(tl::Kind::RunEnded(outcome), None, None, &line)
        .await;
    Some(end)
}

fn finished(req: &RunRequest, outcome: Outcome, effects: &Effects, at: Millis) -> RunFinished {
    RunFinished {
        run_id: req.run_id.clone(),
        runbook: req.runbook.name.clone(),
        concurrency_key: req.concurrency_key.clone(),
        incident: req.incident.clone(),
        alert: req.alert.clone(),
        outcome,
        changed: effects.changed.load(Ordering::Relaxed),
        transient: outcome != Outcome::Succeeded && effects.transient.load(Ordering::Relaxed),
        took_effect_after: None,
        at,
    }
}

/// `850ms`, `3.2s`, `2m05s`.
pub fn human_ms(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gates_answer_is_recorded_as_what_it_was() {
        let ana = By::Person(crate::roles::Who::new("U1", "ana"));
        assert_eq!(answer_kind(StepState::Approved, &ana), tl::Kind::Approved);
        assert_eq!(answer_kind(StepState::Denied, &ana), tl::Kind::Denied);
        assert_eq!(
            answer_kind(StepState::TimedOut, &By::Bot),
            tl::Kind::ApprovalTimedOut
        );
        // `on_timeout: proceed` lets the run go on, but nobody approved.
        assert_eq!(
            answer_kind(StepState::Approved, &By::Bot),
            tl::Kind::ApprovalTimedOut
        );
    }
}
