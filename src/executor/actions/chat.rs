//! `chat`: post a message in the incident's thread.

use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::{Action, ActionError, Done, StepCtx, check_shape};
use crate::chat::{BoxFut, ChatMessage, Kind};
use crate::runbook::CheckEnv;

pub struct Chat;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    text: String,
}

impl Action for Chat {
    fn name(&self) -> &'static str {
        "chat"
    }

    fn check(&self, with: &Json, _env: &CheckEnv) -> Vec<(String, String)> {
        match check_shape::<Params>(with) {
            Ok(p) if p.text.trim().is_empty() => vec![("text".into(), "must not be empty".into())],
            Ok(_) => vec![],
            Err(e) => e,
        }
    }

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
            let msg = ChatMessage {
                channel: ctx.env.channel.clone(),
                incident: Some(ctx.incident.to_owned()),
                kind: Kind::Note,
                text: p.text,
                at: ctx.env.clock.now(),
                slot: None,
                card: None,
            };
            ctx.env
                .outbox
                .post(&msg)
                .await
                .map_err(|e| ActionError::retryable(format!("cannot queue chat message: {e}")))?;
            Ok(Done {
                output: json!({"posted": true}),
                summary: "posted to chat".into(),
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
            Chat.check(&json!({"text": "hi"}), &CheckEnv::default())
                .is_empty()
        );
        let e = Chat.check(&json!({"txt": "hi"}), &CheckEnv::default());
        assert!(e[0].1.contains("txt"), "{e:?}");
        assert!(
            !Chat
                .check(&json!({"text": " "}), &CheckEnv::default())
                .is_empty()
        );
    }
}
