//! The actions a runbook step can take. One action, one file; adding one is
//! a file here and one line in [`REGISTRY`].

pub mod approval;
pub mod chat;
pub mod http;
pub mod query;
pub mod runbook;
pub mod silence;
pub mod wait;

use std::collections::BTreeMap;

use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

use crate::chat::{BoxFut, Outbox};
use crate::clock::Clock;
use crate::config::{SecretSource, Target};
use crate::runbook::spec::{ActionSpec, Catalog};

/// What every action may use. Built once by the daemon.
#[derive(Clone)]
pub struct ActionEnv {
    pub http: crate::net::TargetClient,
    pub targets: BTreeMap<String, Target>,
    pub secrets: BTreeMap<String, SecretSource>,
    pub outbox: Outbox,
    pub clock: Clock,
    pub channel: String,
    /// Instant queries at the bot's `now`; `None` where no watcher runs.
    pub queries: Option<crate::watcher::Queries>,
    /// Whoever owns silences (the control loop), for `silence` steps;
    /// `None` where no control loop runs.
    pub silencer: Option<std::sync::Arc<dyn silence::Silencer>>,
}

/// One step being run.
pub struct StepCtx<'a> {
    pub env: &'a ActionEnv,
    pub run_id: &'a str,
    pub step_id: &'a str,
    pub incident: &'a str,
    /// Same for every attempt of the step, so a retried mutating call
    /// applies once at the target.
    pub idempotency_key: String,
    pub cancel: &'a CancellationToken,
    /// When the step first started, before any restart: a resumed wait
    /// waits only for what is left.
    pub first_started_at: crate::clock::Millis,
    /// Where an `approval` step waits for a person.
    pub gates: &'a crate::executor::Gates,
    /// Runs the runbook a `runbook` step calls; `None` where none can be.
    pub calls: Option<&'a dyn runbook::Calls>,
    /// Where a step that waits for a person says so, so the run's card
    /// shows WAITING FOR APPROVAL with its buttons, as a gate's does.
    pub asks: &'a dyn Asks,
}

/// The run a step belongs to, as a step that waits for a person sees it.
pub trait Asks: Sync {
    /// The step now waits for a person's answer about `what` (`Some`,
    /// said only once its gate is open, so an answer at once finds it),
    /// or no longer does (`None`).
    fn asking<'a>(&'a self, what: Option<&'a str>) -> BoxFut<'a, ()>;
}

/// Nobody watches the run (tests of one action).
pub struct NobodyWatches;

impl Asks for NobodyWatches {
    fn asking<'a>(&'a self, _what: Option<&'a str>) -> BoxFut<'a, ()> {
        Box::pin(async {})
    }
}

/// A person's answer ended the step (an `approval` step): the record says
/// `approved`, `denied` or `timed_out` rather than done or failed, and the
/// timeline names who answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    pub state: crate::run_state::StepState,
    /// Nobody when the deadline answered.
    pub by: Option<crate::roles::Who>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ActionError {
    pub message: String,
    /// Worth trying again (timeouts, 5xx, 429); a 4xx or a bad parameter
    /// is not.
    pub retryable: bool,
    /// Certainly nothing was done: the call never left (a refused
    /// connection, a bad parameter) or the target said it did nothing (a
    /// 4xx, a 503). A timeout or a 500 may have done something, so it is
    /// not this.
    pub not_applied: bool,
    /// A person's "no" (or a deadline) rather than a failure.
    pub answered: Option<Answered>,
}

impl ActionError {
    pub fn fatal(message: impl Into<String>) -> Self {
        ActionError {
            message: message.into(),
            retryable: false,
            not_applied: false,
            answered: None,
        }
    }

    pub fn retryable(message: impl Into<String>) -> Self {
        ActionError {
            message: message.into(),
            retryable: true,
            not_applied: false,
            answered: None,
        }
    }

    /// Marks the error as a person's answer (or a deadline's).
    pub fn answered(mut self, a: Answered) -> Self {
        self.answered = Some(a);
        self
    }

    /// Marks the error as one after which nothing was done.
    pub fn not_applied(mut self) -> Self {
        self.not_applied = true;
        self
    }
}

/// The outcome of a step: its output (readable by later steps as
/// `steps.<id>.<field>`) and a one-line summary for chat.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    pub output: Json,
    pub summary: String,
    /// Set when a person's answer (or a deadline's) ended the step.
    pub answered: Option<Answered>,
}

/// An action as the executor runs it; what it is to the runbook model
/// (its parameters and how they check) is its [`ActionSpec`].
pub trait Action: ActionSpec {
    /// Runs with rendered parameters.
    fn run<'a>(&'a self, ctx: &'a StepCtx<'a>, with: Json)
    -> BoxFut<'a, Result<Done, ActionError>>;
    /// Whether doing this again, with the same idempotency key, is
    /// harmless. A step that was in flight when the bot died is repeated
    /// on restart only if so; otherwise the run is marked interrupted for
    /// a human, since it may or may not have happened.
    fn repeatable(&self, _with: &Json, _env: &ActionEnv) -> bool {
        false
    }
    /// Whether the step, done, changes something outside the run: the
    /// platform, or what the bot alerts on. A run that failed before any
    /// such step was done changed nothing, which dispatch may try again
    /// (see [`crate::dispatch`]). Reading, waiting and talking do not.
    fn changes(&self, _with: &Json) -> bool {
        false
    }
}

pub static REGISTRY: &[&dyn Action] = &[
    &approval::ApprovalStep,
    &chat::Chat,
    &http::Http,
    &query::Query,
    &runbook::RunbookCall,
    &silence::Silence,
    &wait::Wait,
];

pub fn find(name: &str) -> Option<&'static dyn Action> {
    REGISTRY.iter().copied().find(|a| a.name() == name)
}

pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|a| a.name()).collect()
}

/// The registry as the runbook loader sees it.
pub struct Registry;

impl Catalog for Registry {
    fn find(&self, name: &str) -> Option<&'static dyn ActionSpec> {
        find(name).map(|a| a as &'static dyn ActionSpec)
    }
    fn names(&self) -> Vec<&'static str> {
        names()
    }
}

/// Decodes rendered parameters for `run`. They passed `check` at load, so a
/// failure here means a template rendered into the wrong shape.
pub fn params<T: serde::de::DeserializeOwned>(with: Json) -> Result<T, ActionError> {
    serde_json::from_value::<T>(with)
        .map_err(|e| ActionError::fatal(format!("bad parameters after rendering: {e}")))
}

pub use crate::runbook::template::is_template;

/// The metrics query handle, or an error saying why there is none.
pub fn queries(env: &ActionEnv) -> Result<&crate::watcher::Queries, ActionError> {
    env.queries
        .as_ref()
        .ok_or_else(|| ActionError::fatal("no metrics source: this bot runs without a watcher"))
}

/// Runs one query for a step: a source outage may be retried, a bad or
/// failing expression may not. Shutdown cancels the wait for an answer.
pub async fn run_query(
    ctx: &StepCtx<'_>,
    field: &str,
    expr: &str,
) -> Result<crate::promql::Value, ActionError> {
    let q = queries(ctx.env)?;
    let r = tokio::select! {
        r = q.query(expr) => r,
        _ = ctx.cancel.cancelled() => return Err(ActionError::fatal("cancelled")),
    };
    r.map_err(|e| {
        let msg = format!("{field}: {e}");
        if e.retryable() {
            ActionError::retryable(msg)
        } else {
            ActionError::fatal(msg)
        }
    })
}

/// Load-time check of a PromQL parameter that is not a template: it must
/// parse, and give an instant vector or a scalar (what a step can read).
pub fn check_expr(field: &str, expr: &str) -> Vec<(String, String)> {
    if is_template(expr) {
        return vec![];
    }
    match crate::promql::parse(expr) {
        Err(e) => vec![(field.into(), format!("invalid PromQL: {e}"))],
        Ok(e) => match e.value_type() {
            promql_parser::parser::value::ValueType::Vector
            | promql_parser::parser::value::ValueType::Scalar => vec![],
            other => vec![(
                field.into(),
                format!(
                    "gives a {other}; a step needs an instant vector or a scalar (e.g. `max_over_time(x[5m])` rather than `x[5m]`)"
                ),
            )],
        },
    }
}

/// Deserializes parameters into an action's typed shape, reporting every
/// unknown field (with a did-you-mean) and a missing or mistyped one as
/// check problems.
pub fn check_shape<T: serde::de::DeserializeOwned>(
    with: &Json,
) -> Result<T, Vec<(String, String)>> {
    let (read, unknown) = crate::diag::unknown::deserialize::<T, _>(with.clone());
    let mut problems: Vec<(String, String)> = unknown
        .iter()
        .map(|u| (u.path.clone(), u.message()))
        .collect();
    match read {
        Ok(p) if problems.is_empty() => Ok(p),
        Ok(_) => Err(problems),
        Err(e) => {
            problems.push((String::new(), e.to_string()));
            Err(problems)
        }
    }
}
