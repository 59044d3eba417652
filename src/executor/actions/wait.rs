//! `wait`: pause the run for a duration (on the bot's clock, so it is
//! scaled in replays), giving a mitigation time to take effect.

use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::{Action, ActionError, Done, StepCtx, check_shape};
use crate::chat::BoxFut;
use crate::duration::PromDuration;
use crate::runbook::CheckEnv;

pub struct Wait;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    duration: String,
}

impl Action for Wait {
    fn name(&self) -> &'static str {
        "wait"
    }

    fn check(&self, with: &Json, _env: &CheckEnv) -> Vec<(String, String)> {
        match check_shape::<Params>(with) {
            Ok(p) if !p.duration.contains("{{") => match PromDuration::parse(&p.duration) {
                Ok(_) => vec![],
                Err(e) => vec![("duration".into(), e.to_string())],
            },
            Ok(_) => vec![],
            Err(e) => e,
        }
    }

    /// A resumed wait waits only for what is left of it.
    fn repeatable(&self, _with: &Json, _env: &super::ActionEnv) -> bool {
        true
    }

    fn run<'a>(
        &'a self,
        ctx: &'a StepCtx<'a>,
        with: Json,
    ) -> BoxFut<'a, Result<Done, ActionError>> {
        Box::pin(async move {
            let p: Params = super::params(with)?;
            let d =
                PromDuration::parse(&p.duration).map_err(|e| ActionError::fatal(e.to_string()))?;
            let until = ctx.first_started_at + d.as_millis() as i64;
            tokio::select! {
                _ = ctx.env.clock.sleep_until(until) => {}
                _ = ctx.cancel.cancelled() => return Err(ActionError::fatal("cancelled")),
            }
            Ok(Done {
                output: json!({"waited": d.to_string()}),
                summary: format!("waited {d}"),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_duration() {
        assert!(
            Wait.check(&json!({"duration": "30s"}), &CheckEnv::default())
                .is_empty()
        );
        assert!(
            Wait.check(&json!({"duration": "{{ inputs.d }}"}), &CheckEnv::default())
                .is_empty()
        );
        let e = Wait.check(&json!({"duration": "30"}), &CheckEnv::default());
        assert_eq!(e[0].0, "duration");
    }
}
