//! `chat`: post a message in the incident's thread, or, with a `slot`,
//! update the message an earlier step of the incident posted to the same
//! slot (a progress line that changes instead of piling up).

use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::{Action, ActionError, ActionSpec, Done, StepCtx, check_shape};
use crate::chat::{BoxFut, ChatMessage, Kind};
use crate::runbook::CheckEnv;

pub struct Chat;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    text: String,
    /// Names the message so later steps can replace it.
    #[serde(default)]
    slot: Option<String>,
}

/// Step slots are kept apart from the bot's own (the incident card).
const SLOT_PREFIX: &str = "step:";

fn valid_slot(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl ActionSpec for Chat {
    fn name(&self) -> &'static str {
        "chat"
    }

    fn check(&self, with: &Json, _env: &CheckEnv) -> Vec<(String, String)> {
        match check_shape::<Params>(with) {
            Ok(p) => {
                let mut errs = Vec::new();
                if p.text.trim().is_empty() {
                    errs.push(("text".into(), "must not be empty".into()));
                }
                if let Some(slot) = &p.slot
                    && !slot.contains("{{")
                    && !valid_slot(slot)
                {
                    errs.push((
                        "slot".into(),
                        format!(
                            "{slot:?} is not a slot name; use 1 to 64 letters, digits, `_` or `-`"
                        ),
                    ));
                }
                errs
            }
            Err(e) => e,
        }
    }
}

impl Action for Chat {
    /// At worst a message shows twice after a crash; never a mitigation.
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
            if let Some(slot) = &p.slot
                && !valid_slot(slot)
            {
                return Err(ActionError::fatal(format!(
                    "slot {slot:?} is not a slot name; use 1 to 64 letters, digits, `_` or `-`"
                )));
            }
            let msg = ChatMessage {
                channel: ctx.env.channel.clone(),
                incident: Some(ctx.incident.to_owned()),
                kind: Kind::Note,
                text: p.text,
                at: ctx.env.clock.now(),
                slot: p.slot.as_ref().map(|s| format!("{SLOT_PREFIX}{s}")),
                card: None,
                reply_to: None,
                image: None,
                checklist: None,
            };
            ctx.env
                .outbox
                .post(&msg)
                .await
                .map_err(|e| ActionError::retryable(format!("cannot queue chat message: {e}")))?;
            Ok(Done {
                output: json!({"posted": true}),
                summary: "posted to chat".into(),
                answered: None,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_shape() {
        assert!(
            Chat.check(&json!({"text": "hi"}), &crate::load::check_env([]))
                .is_empty()
        );
        let e = Chat.check(&json!({"txt": "hi"}), &crate::load::check_env([]));
        assert!(e[0].1.contains("txt"), "{e:?}");
        assert!(
            !Chat
                .check(&json!({"text": " "}), &crate::load::check_env([]))
                .is_empty()
        );
        assert!(
            Chat.check(
                &json!({"text": "hi", "slot": "progress"}),
                &crate::load::check_env([])
            )
            .is_empty()
        );
        assert!(
            Chat.check(
                &json!({"text": "hi", "slot": "{{ inputs.room }}"}),
                &crate::load::check_env([])
            )
            .is_empty(),
            "a template is checked when it renders"
        );
        let e = Chat.check(
            &json!({"text": "hi", "slot": "two words"}),
            &crate::load::check_env([]),
        );
        assert_eq!(e[0].0, "slot");
        assert!(e[0].1.contains("letters, digits"), "{e:?}");
    }
}
