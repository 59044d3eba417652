//! The executor: runs a runbook's steps through their actions.
//!
//! Each run is one task on the executor's tracker. A step is recorded in
//! the store before it acts and after; its parameters are rendered from the
//! alert, the inputs and earlier steps' outputs; it gets a timeout, retries
//! with backoff for retryable failures, and an idempotency key that is the
//! same on every attempt. Every step is posted to the incident's thread.
//! When the run ends, the control loop hears of it through a bounded queue.

pub mod actions;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value as Json, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chat::{ChatMessage, Kind};
use crate::clock::Millis;
pub use crate::dispatch::AlertCtx;
use crate::runbook::template::Templates;
use crate::runbook::{OnFailure, Runbook};
use crate::store::{RunRecord, StepEnd, Store};
use actions::{ActionEnv, ActionError, StepCtx};

#[derive(Clone, Debug)]
pub struct RunRequest {
    pub run_id: String,
    pub runbook: Arc<Runbook>,
    pub incident: String,
    pub concurrency_key: String,
    pub alert: Option<AlertCtx>,
    pub inputs: BTreeMap<String, Json>,
    /// Who started it: `firebreak` for automation.
    pub actor: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    /// Stopped by shutdown or abort before it finished.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// Sent to the control loop when a run ends.
#[derive(Clone, Debug)]
pub struct RunFinished {
    pub run_id: String,
    pub runbook: String,
    pub concurrency_key: String,
    pub incident: String,
    pub outcome: Outcome,
    pub at: Millis,
}

#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    env: ActionEnv,
    store: Store,
    templates: Templates,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    finished: mpsc::Sender<RunFinished>,
}

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
            }),
        }
    }

    /// Starts a run in the background; its end is reported on the
    /// `finished` queue.
    pub fn start(&self, req: RunRequest) {
        let inner = self.inner.clone();
        self.inner.tracker.spawn(async move {
            let done = run(&inner, &req).await;
            // The control loop may already have stopped at shutdown; the
            // run's outcome is in the store either way.
            let _ = inner.finished.send(done).await;
        });
    }

    /// Waits for every run to end (they stop at their next step after
    /// shutdown is signalled).
    pub async fn drain(&self) {
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}

async fn say(inner: &Inner, req: &RunRequest, kind: Kind, text: String) {
    let msg = ChatMessage {
        channel: inner.env.channel.clone(),
        incident: Some(req.incident.clone()),
        kind,
        text,
        at: inner.env.clock.now(),
    };
    if let Err(e) = inner.env.outbox.post(&msg).await {
        tracing::error!(error = %e, run = %req.run_id, "cannot queue chat message");
    }
}

async fn timeline(inner: &Inner, req: &RunRequest, kind: &str, text: &str) {
    if let Err(e) = inner
        .store
        .append_timeline(&req.incident, inner.env.clock.now(), kind, &req.actor, text)
        .await
    {
        tracing::error!(error = %e, run = %req.run_id, "cannot write timeline");
    }
}

/// Records how a run ended; a store failure is logged, since the run has
/// already ended either way.
async fn record_end(inner: &Inner, req: &RunRequest, state: &str, at: Millis, error: Option<&str>) {
    if let Err(e) = inner.store.finish_run(&req.run_id, state, at, error).await {
        tracing::error!(error = %e, run = %req.run_id, state, "cannot record run end");
    }
}

async fn run(inner: &Inner, req: &RunRequest) -> RunFinished {
    let clock = &inner.env.clock;
    let rb = &req.runbook;
    let started = clock.now();
    let record = RunRecord {
        id: req.run_id.clone(),
        runbook: rb.name.clone(),
        incident: req.incident.clone(),
        concurrency_key: req.concurrency_key.clone(),
        state: "running".into(),
        started_at: started,
        finished_at: None,
        error: None,
    };
    let trigger = json!({"alert": req.alert, "inputs": req.inputs, "actor": req.actor});
    if let Err(e) = inner.store.insert_run(&record, &trigger.to_string()).await {
        tracing::error!(error = %e, run = %req.run_id, "cannot record run; not starting it");
        return finished(req, Outcome::Failed, clock.now());
    }
    let why = req.alert.as_ref().map_or_else(
        || format!("started by {}", req.actor),
        |a| format!("for {}", a.name),
    );
    say(
        inner,
        req,
        Kind::RunStarted,
        format!("runbook *{}* started {why} (run {})", rb.name, req.run_id),
    )
    .await;
    timeline(
        inner,
        req,
        "run_started",
        &format!("runbook {} started {why}", rb.name),
    )
    .await;

    let mut steps_out = serde_json::Map::new();
    let mut failure: Option<String> = None;
    let cancel = inner.shutdown.child_token();
    for (seq, step) in rb.steps.iter().enumerate() {
        if inner.shutdown.is_cancelled() {
            let at = clock.now();
            record_end(inner, req, "interrupted", at, Some("shutdown before step")).await;
            say(
                inner,
                req,
                Kind::RunFailed,
                format!(
                    "runbook *{}* interrupted by shutdown before step `{}`",
                    rb.name, step.id
                ),
            )
            .await;
            return finished(req, Outcome::Interrupted, at);
        }
        let ctx = json!({
            "alert": req.alert,
            "inputs": req.inputs,
            "steps": steps_out,
            "run": {"id": req.run_id, "runbook": rb.name, "incident": req.incident},
        });
        if let Some(cond) = &step.when {
            match inner.templates.eval_bool(cond, &ctx) {
                Ok(true) => {}
                Ok(false) => {
                    steps_out.insert(step.id.clone(), json!({"skipped": true}));
                    say(
                        inner,
                        req,
                        Kind::Step,
                        format!("`{}` skipped: `{cond}` is false", step.id),
                    )
                    .await;
                    continue;
                }
                Err(e) => {
                    failure = Some(format!("step `{}`: when: {}", step.id, e.message));
                    break;
                }
            }
        }
        let params = match inner.templates.render_value(&step.with, &ctx) {
            Ok(p) => p,
            Err(e) => {
                failure = Some(format!(
                    "step `{}`: rendering parameters: {}",
                    step.id, e.message
                ));
                break;
            }
        };
        let Some(action) = actions::find(&step.action) else {
            failure = Some(format!(
                "step `{}`: unknown action {}",
                step.id, step.action
            ));
            break;
        };
        let step_ctx = StepCtx {
            env: &inner.env,
            run_id: &req.run_id,
            step_id: &step.id,
            incident: &req.incident,
            idempotency_key: format!("firebreak/{}/{}", req.run_id, step.id),
            cancel: &cancel,
        };
        let step_started = clock.now();
        let mut attempt: u32 = 0;
        let result = loop {
            attempt += 1;
            if let Err(e) = inner
                .store
                .step_started(
                    &req.run_id,
                    &step.id,
                    seq as i64,
                    i64::from(attempt),
                    clock.now(),
                )
                .await
            {
                break Err(ActionError::fatal(format!("cannot record step start: {e}")));
            }
            let res = tokio::select! {
                r = tokio::time::timeout(clock.real(step.timeout.to_std()), action.run(&step_ctx, params.clone())) => {
                    r.unwrap_or_else(|_| Err(ActionError::retryable(format!("timed out after {}", step.timeout))))
                }
                _ = cancel.cancelled() => Err(ActionError::fatal("cancelled by shutdown")),
            };
            match res {
                Err(e) if e.retryable && attempt <= step.retries && !cancel.is_cancelled() => {
                    let wait = step.backoff.to_std() * 2u32.saturating_pow(attempt - 1);
                    say(
                        inner,
                        req,
                        Kind::StepFailed,
                        format!(
                            "`{}` attempt {attempt} failed: {}; retrying in {}",
                            step.id,
                            e.message,
                            crate::duration::PromDuration::from_millis(wait.as_millis() as u64)
                        ),
                    )
                    .await;
                    clock.sleep(wait.min(Duration::from_secs(300))).await;
                }
                other => break other,
            }
        };
        let took = clock.now() - step_started;
        match result {
            Ok(done) => {
                let out = done.output.to_string();
                if let Err(e) = inner
                    .store
                    .step_finished(
                        &req.run_id,
                        &step.id,
                        &StepEnd {
                            state: "succeeded",
                            attempts: i64::from(attempt),
                            at: clock.now(),
                            output_json: Some(&out),
                            error: None,
                        },
                    )
                    .await
                {
                    tracing::error!(error = %e, "cannot record step end");
                }
                say(
                    inner,
                    req,
                    Kind::Step,
                    format!(
                        "`{}` ({}) {} in {}",
                        step.id,
                        step.action,
                        done.summary,
                        human_ms(took)
                    ),
                )
                .await;
                timeline(
                    inner,
                    req,
                    "step",
                    &format!("{}: {} ({})", step.id, done.summary, step.action),
                )
                .await;
                steps_out.insert(step.id.clone(), done.output);
            }
            Err(e) => {
                if let Err(se) = inner
                    .store
                    .step_finished(
                        &req.run_id,
                        &step.id,
                        &StepEnd {
                            state: "failed",
                            attempts: i64::from(attempt),
                            at: clock.now(),
                            output_json: None,
                            error: Some(&e.message),
                        },
                    )
                    .await
                {
                    tracing::error!(error = %se, "cannot record step failure");
                }
                say(
                    inner,
                    req,
                    Kind::StepFailed,
                    format!(
                        "`{}` ({}) failed after {attempt} attempt(s): {}",
                        step.id, step.action, e.message
                    ),
                )
                .await;
                timeline(
                    inner,
                    req,
                    "step_failed",
                    &format!("{} failed: {}", step.id, e.message),
                )
                .await;
                if cancel.is_cancelled() {
                    let at = clock.now();
                    record_end(inner, req, "interrupted", at, Some(&e.message)).await;
                    return finished(req, Outcome::Interrupted, at);
                }
                if step.on_failure == OnFailure::Abort {
                    failure = Some(format!("step `{}` failed: {}", step.id, e.message));
                    break;
                }
                steps_out.insert(step.id.clone(), json!({"failed": true, "error": e.message}));
            }
        }
    }

    let at = clock.now();
    let took = human_ms(at - started);
    let (outcome, state) = match &failure {
        None => (Outcome::Succeeded, "succeeded"),
        Some(_) => (Outcome::Failed, "failed"),
    };
    record_end(inner, req, state, at, failure.as_deref()).await;
    match &failure {
        None => {
            say(
                inner,
                req,
                Kind::RunFinished,
                format!("runbook *{}* succeeded in {took}", rb.name),
            )
            .await;
            timeline(
                inner,
                req,
                "run_succeeded",
                &format!("runbook {} succeeded in {took}", rb.name),
            )
            .await;
        }
        Some(f) => {
            say(
                inner,
                req,
                Kind::RunFailed,
                format!(
                    "runbook *{}* failed after {took}: {f}. A human needs to look.",
                    rb.name
                ),
            )
            .await;
            timeline(
                inner,
                req,
                "run_failed",
                &format!("runbook {} failed: {f}", rb.name),
            )
            .await;
        }
    }
    finished(req, outcome, at)
}

fn finished(req: &RunRequest, outcome: Outcome, at: Millis) -> RunFinished {
    RunFinished {
        run_id: req.run_id.clone(),
        runbook: req.runbook.name.clone(),
        concurrency_key: req.concurrency_key.clone(),
        incident: req.incident.clone(),
        outcome,
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
