//! `approval`: a step that holds the run until a person with the role
//! approves, or its deadline passes. A denial, or a deadline with
//! `on_timeout: abort`, fails the step, so the step's `on_failure` decides
//! what follows (for example `rollback`). For a gate in front of one
//! acting step, the step's own `approval:` field does the same.
//!
//! ```yaml
//! - id: ok_to_cap
//!   action: approval
//!   with: {role: commander, timeout: 5m, on_timeout: abort, text: "Cap the room at 400k?"}
//! ```

use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::{Action, ActionEnv, ActionError, ActionSpec, Answered, Done, StepCtx, check_shape};
use crate::chat::{BoxFut, ChatMessage, Kind};
use crate::duration::PromDuration;
use crate::executor::gates::GateOutcome;
use crate::roles::Role;
use crate::run_state::StepState;
use crate::runbook::spec::Lasts;
use crate::runbook::{Approval, CheckEnv, OnTimeout};

pub struct ApprovalStep;

/// Used when `timeout` is not given.
pub const DEFAULT_TIMEOUT: PromDuration = PromDuration::from_secs(10 * 60);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    role: Option<String>,
    #[serde(default)]
    users: Vec<String>,
    timeout: Option<String>,
    on_timeout: Option<OnTimeout>,
    /// What the approver is asked, shown in chat.
    text: Option<String>,
}

/// The approval a step's parameters describe.
fn approval(p: &Params) -> Result<Approval, (String, String)> {
    let role = match &p.role {
        None => Role::Commander,
        Some(r) => Role::parse(r).ok_or_else(|| {
            (
                "role".to_owned(),
                format!("unknown role {r:?}; expected one of: commander, responder, viewer"),
            )
        })?,
    };
    let timeout = match &p.timeout {
        None => DEFAULT_TIMEOUT,
        Some(t) => PromDuration::parse(t).map_err(|e| ("timeout".to_owned(), e.to_string()))?,
    };
    if timeout.is_zero() {
        return Err(("timeout".into(), "must be greater than 0s".into()));
    }
    // By id only (see `crate::roles::is_user_id`). A template is checked
    // once rendered, when the step runs.
    if let Some(u) = p
        .users
        .iter()
        .find(|u| !u.contains("{{") && !crate::roles::is_user_id(u))
    {
        return Err((
            "users".into(),
            format!(
                "{u:?} is not a Slack user id; approvers are listed by member id (`U...`), never by name, since anyone can change their name"
            ),
        ));
    }
    Ok(Approval {
        role,
        users: p.users.clone(),
        timeout,
        on_timeout: p.on_timeout.unwrap_or(OnTimeout::Abort),
    })
}

/// How long an approval step may take: its deadline, from its parameters
/// as written (the loader sizes the step timeout from it).
pub fn timeout_of(with: &Json) -> Option<PromDuration> {
    let p: Params = serde_json::from_value(with.clone()).ok()?;
    approval(&p).ok().map(|a| a.timeout)
}

impl ActionSpec for ApprovalStep {
    fn name(&self) -> &'static str {
        "approval"
    }

    fn check(&self, with: &Json, _env: &CheckEnv) -> Vec<(String, String)> {
        match check_shape::<Params>(with) {
            Ok(p) => approval(&p).err().into_iter().collect(),
            Err(e) => e,
        }
    }

    fn lasts(&self, with: &Json) -> Lasts {
        timeout_of(with).map_or(Lasts::Unknown, Lasts::For)
    }
}

impl Action for ApprovalStep {
    /// Waiting again after a restart is what a gate is for.
    fn repeatable(&self, _with: &Json, _env: &ActionEnv) -> bool {
        true
    }

    fn run<'a>(
        &'a self,
        ctx: &'a StepCtx<'a>,
        with: Json,
    ) -> BoxFut<'a, Result<Done, ActionError>> {
        Box::pin(async move {
            let p: Params = super::params(with)?;
            let a = approval(&p).map_err(|(f, m)| ActionError::fatal(format!("{f}: {m}")))?;
            let deadline = ctx.first_started_at + a.timeout.as_millis() as i64;
            let ask = p.text.as_deref().unwrap_or("Go on?");
            // Open before anyone is told (the card's buttons included), so
            // an answer given at once finds the gate.
            let gate = ctx.gates.open(ctx.run_id, ctx.step_id, &a, deadline);
            ctx.asks.asking(Some(ctx.step_id)).await;
            let msg = ChatMessage {
                channel: ctx.env.channel.clone(),
                incident: Some(ctx.incident.to_owned()),
                kind: Kind::Note,
                text: format!(
                    "run {} waits at `{}` for {}: {ask} Answer with `approve {}` or `deny {}` within {}.",
                    ctx.run_id,
                    ctx.step_id,
                    a.who(),
                    ctx.run_id,
                    ctx.run_id,
                    a.timeout
                ),
                at: ctx.env.clock.now(),
                slot: None,
                card: None,
                reply_to: None,
                image: None,
                checklist: None,
            };
            if let Err(e) = ctx.env.outbox.post(&msg).await {
                tracing::error!(error = %e, run = ctx.run_id, "cannot queue approval request");
            }
            let out = gate.outcome(&ctx.env.clock, deadline, ctx.cancel).await;
            ctx.asks.asking(None).await;
            let answered = |state, by: Option<&crate::roles::Who>| Answered {
                state,
                by: by.cloned(),
            };
            match out {
                GateOutcome::Approved { by } => Ok(Done {
                    summary: format!("approved by {by}"),
                    output: json!({"approved": true, "by": by.label()}),
                    answered: Some(answered(StepState::Approved, Some(&by))),
                }),
                GateOutcome::Denied { by } => Err(ActionError::fatal(format!("denied by {by}"))
                    .answered(answered(StepState::Denied, Some(&by)))),
                GateOutcome::TimedOut => match a.on_timeout {
                    OnTimeout::Proceed => Ok(Done {
                        summary: format!("nobody objected within {}; going on", a.timeout),
                        output: json!({"approved": true, "by": null, "timed_out": true}),
                        answered: Some(answered(StepState::Approved, None)),
                    }),
                    OnTimeout::Abort => Err(ActionError::fatal(format!(
                        "nobody approved within {}",
                        a.timeout
                    ))
                    .answered(answered(StepState::TimedOut, None))),
                },
                GateOutcome::Cancelled => Err(ActionError::fatal("cancelled")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_role_and_timeout() {
        let env = crate::load::check_env([]);
        assert!(ApprovalStep.check(&json!({}), &env).is_empty());
        assert!(
            ApprovalStep
                .check(
                    &json!({"role": "responder", "timeout": "5m", "on_timeout": "proceed"}),
                    &env
                )
                .is_empty()
        );
        let e = ApprovalStep.check(&json!({"role": "boss"}), &env);
        assert_eq!(e[0].0, "role");
        let e = ApprovalStep.check(&json!({"timeout": "5"}), &env);
        assert_eq!(e[0].0, "timeout");
        let e = ApprovalStep.check(&json!({"on_timeout": "maybe"}), &env);
        assert!(!e.is_empty());
        assert_eq!(
            timeout_of(&json!({"timeout": "5m"})),
            Some(PromDuration::from_secs(300))
        );
        assert_eq!(timeout_of(&json!({})), Some(DEFAULT_TIMEOUT));
    }
}
