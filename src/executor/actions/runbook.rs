//! `runbook`: run another runbook as one step of this one, for a
//! mitigation that is also worth running on its own (cap the room before
//! moving the event, say).
//!
//! ```yaml
//! - id: cap_first
//!   action: runbook
//!   with:
//!     runbook: cap-listeners            # a name, never a template
//!     inputs: {room: "{{ steps.before.room }}"}
//! ```
//!
//! The called runbook's steps run inside this step, under this run: they
//! are recorded as `cap_first/<step>`, carry idempotency keys of this run,
//! resume after a restart like any step, and an abort stops them. Its
//! approval policy and approval steps apply; its trigger, concurrency key,
//! cooldown and budget do not (this run's do). It succeeds when the called
//! runbook succeeds, with output `{outcome, steps}` (`steps` holds the
//! called runbook's step outputs); a called runbook that fails or rolls
//! back fails this step, and this step's `on_failure` decides what
//! follows. The name must be a loaded runbook, and the inputs must be its
//! inputs; calls may not form a cycle: `firebreak validate` checks all
//! three.

use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::{Action, ActionEnv, ActionError, ActionSpec, Done, StepCtx, check_shape, is_template};
use crate::chat::BoxFut;
use crate::runbook::CheckEnv;
use crate::runbook::spec::{Callee, Lasts};

pub struct RunbookCall;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub runbook: String,
    #[serde(default)]
    pub inputs: Map<String, Json>,
}

/// Runs a called runbook for a step; the executor provides it.
pub trait Calls: Send + Sync {
    fn call<'a>(
        &'a self,
        runbook: &'a str,
        inputs: Map<String, Json>,
    ) -> BoxFut<'a, Result<Done, ActionError>>;
}

impl ActionSpec for RunbookCall {
    fn name(&self) -> &'static str {
        "runbook"
    }

    fn check(&self, with: &Json, _env: &CheckEnv) -> Vec<(String, String)> {
        let p = match check_shape::<Params>(with) {
            Ok(p) => p,
            Err(e) => return e,
        };
        if is_template(&p.runbook) {
            // A fixed name is what lets the load check the inputs and
            // rule out a runbook that ends up calling itself.
            return vec![(
                "runbook".into(),
                format!(
                    "{:?} is a template; name the runbook to call (use `when` to choose between calls)",
                    p.runbook
                ),
            )];
        }
        vec![]
    }

    /// As long as the called runbook's steps, which keep their own
    /// timeouts.
    fn lasts(&self, _with: &Json) -> Lasts {
        Lasts::Unknown
    }

    fn callee(&self, with: &Json) -> Option<Callee> {
        serde_json::from_value::<Params>(with.clone())
            .ok()
            .filter(|p| !is_template(&p.runbook))
            .map(|p| Callee {
                runbook: p.runbook,
                inputs: p.inputs,
            })
    }
}

impl Action for RunbookCall {
    /// The called runbook's steps replay from their own records.
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
            let calls = ctx
                .calls
                .ok_or_else(|| ActionError::fatal("runbooks cannot be called here"))?;
            calls.call(&p.runbook, p.inputs).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_name_is_required_and_not_a_template() {
        let env = crate::load::check_env([]);
        assert!(
            RunbookCall
                .check(
                    &json!({"runbook": "cap-listeners", "inputs": {"room": "{{ inputs.room }}"}}),
                    &env
                )
                .is_empty()
        );
        let e = RunbookCall.check(&json!({"runbook": "{{ inputs.which }}"}), &env);
        assert_eq!(e[0].0, "runbook");
        assert!(e[0].1.contains("is a template"), "{e:?}");
        let e = RunbookCall.check(&json!({"inputs": {}}), &env);
        assert!(e[0].1.contains("missing field `runbook`"), "{e:?}");
        let e = RunbookCall.check(&json!({"runbook": "x", "input": {}}), &env);
        assert_eq!(
            e,
            [(
                "input".to_owned(),
                "unknown field `input` (did you mean `inputs`?)".to_owned()
            )]
        );
        // Every one at once, each named.
        let e = RunbookCall.check(&json!({"runbok": "x", "inpts": {}, "zz": 1}), &env);
        let mut fields: Vec<&str> = e.iter().map(|(f, _)| f.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["inpts", "runbok", "zz"], "{e:?}");
        assert!(RunbookCall.callee(&json!({"runbook": "x"})).is_some());
        assert!(RunbookCall.callee(&json!({"runbook": "{{ x }}"})).is_none());
    }
}
