//! `pause [REASON]`: stop automatic runbook starts until `resume`. Runs in
//! progress go on (abort them one by one), and people may still start
//! runbooks by hand. A commander's call: it switches off the bot's
//! mitigations for everyone.

use super::{Actor, Args, BoxFut, Ctx, Execute, Reply, Spec};
use crate::control::Command;
use crate::roles::Role;

pub const SPEC: Spec = Spec {
    name: "pause",
    args: "[REASON]",
    role: Role::Commander,
    about: "stop automatic runbook starts (runs in progress go on)",
    example: "pause \"vendor maintenance until 19:00\"",
    flags: &[],
    parse: |a| Ok(Box::new(parse(a)?)),
};

#[derive(Debug, PartialEq)]
pub struct Pause {
    pub reason: String,
}

pub fn parse(mut a: Args) -> Result<Pause, String> {
    let reason = a.rest();
    Ok(Pause {
        reason: if reason.is_empty() {
            "no reason given".into()
        } else {
            reason
        },
    })
}

impl Execute for Pause {
    fn execute<'a>(self: Box<Self>, ctx: &'a Ctx, actor: &'a Actor) -> BoxFut<'a, Reply> {
        Box::pin(async move {
            let r = ctx
                .ask(|reply| Command::Pause {
                    by: actor.who(),
                    reason: self.reason,
                    reply,
                })
                .await;
            match r {
                Ok(()) => Reply::private(
                    "automation paused: alerts still post, no runbook starts by itself; `resume` to undo",
                ),
                Err(e) => Reply::private(e.to_string()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::handle;
    use super::super::testing::*;
    use super::*;

    #[test]
    fn the_reason_is_every_word() {
        assert_eq!(
            parse(Args::of("deploy  freeze")).unwrap().reason,
            "deploy freeze"
        );
        assert_eq!(parse(Args::of("\"a  b\"")).unwrap().reason, "a  b");
        assert_eq!(parse(Args::of("")).unwrap().reason, "no reason given");
    }

    #[tokio::test]
    async fn only_a_commander_pauses_and_paused_is_said_once_in_force() {
        let (ctx, mut rx) = ctx().await;
        let ctx = std::sync::Arc::new(ctx);
        let c = ctx.clone();
        let asked =
            tokio::spawn(async move { handle(&c, &actor(Role::Commander), "pause drill").await });
        let Some(Command::Pause { by, reason, reply }) = rx.recv().await else {
            panic!("no pause sent")
        };
        assert_eq!(
            (by.label().as_str(), reason.as_str()),
            ("alice (U1)", "drill")
        );
        // Until the control loop has paused, nobody is told it is paused
        // (an alert could still start a runbook).
        tokio::task::yield_now().await;
        assert!(
            !asked.is_finished(),
            "answered before the pause was in force"
        );
        reply.send(()).unwrap();
        let r = asked.await.unwrap();
        assert!(r.text.starts_with("automation paused"), "{}", r.text);
        let r = handle(&ctx, &actor(Role::Responder), "pause drill").await;
        assert_eq!(
            r.text,
            "`pause` needs the commander role; you are a responder"
        );
        assert!(matches!(rx.try_recv().unwrap(), Command::Refused { .. }));
    }
}
