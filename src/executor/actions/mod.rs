//! The actions a runbook step can take. One action, one file; adding one is
//! a file here and one line in [`REGISTRY`].

pub mod approval;
pub mod chat;
pub mod http;
pub mod wait;

use std::collections::BTreeMap;

use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

use crate::chat::{BoxFut, Outbox};
use crate::clock::Clock;
use crate::config::{SecretSource, Target};
use crate::runbook::CheckEnv;

/// What every action may use. Built once by the daemon.
#[derive(Clone)]
pub struct ActionEnv {
    pub http: reqwest::Client,
    pub targets: BTreeMap<String, Target>,
    pub secrets: BTreeMap<String, SecretSource>,
    pub outbox: Outbox,
    pub clock: Clock,
    pub channel: String,
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
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ActionError {
    pub message: String,
    /// Worth trying again (timeouts, 5xx, 429); a 4xx or a bad parameter
    /// is not.
    pub retryable: bool,
}

impl ActionError {
    pub fn fatal(message: impl Into<String>) -> Self {
        ActionError {
            message: message.into(),
            retryable: false,
        }
    }

    pub fn retryable(message: impl Into<String>) -> Self {
        ActionError {
            message: message.into(),
            retryable: true,
        }
    }
}

/// The outcome of a step: its output (readable by later steps as
/// `steps.<id>.<field>`) and a one-line summary for chat.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    pub output: Json,
    pub summary: String,
}

pub trait Action: Send + Sync {
    fn name(&self) -> &'static str;
    /// Load-time check of the parameters as written (templates not yet
    /// rendered): `(field under with, problem)` pairs.
    fn check(&self, with: &Json, env: &CheckEnv) -> Vec<(String, String)>;
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
}

pub static REGISTRY: &[&dyn Action] = &[
    &approval::ApprovalStep,
    &chat::Chat,
    &http::Http,
    &wait::Wait,
];

pub fn find(name: &str) -> Option<&'static dyn Action> {
    REGISTRY.iter().copied().find(|a| a.name() == name)
}

pub fn names() -> Vec<&'static str> {
    REGISTRY.iter().map(|a| a.name()).collect()
}

/// Decodes rendered parameters for `run`. They passed `check` at load, so a
/// failure here means a template rendered into the wrong shape.
pub fn params<T: serde::de::DeserializeOwned>(with: Json) -> Result<T, ActionError> {
    serde_json::from_value::<T>(with)
        .map_err(|e| ActionError::fatal(format!("bad parameters after rendering: {e}")))
}

/// Deserializes parameters into an action's typed shape, reporting unknown
/// or missing fields as check problems.
pub fn check_shape<T: serde::de::DeserializeOwned>(
    with: &Json,
) -> Result<T, Vec<(String, String)>> {
    serde_json::from_value::<T>(with.clone()).map_err(|e| vec![(String::new(), e.to_string())])
}
