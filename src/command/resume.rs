//! `resume`: automatic runbook starts again, after `pause`.

use super::{Actor, Args, BoxFut, Ctx, Execute, Reply, Spec, age};
use crate::control::Command;
use crate::roles::Role;

pub const SPEC: Spec = Spec {
    name: "resume",
    args: "",
    role: Role::Commander,
    about: "start runbooks automatically again after `pause`",
    example: "resume",
    flags: &[],
    parse: |a| Ok(Box::new(parse(a)?)),
};

#[derive(Debug, PartialEq)]
pub struct Resume;

pub fn parse(a: Args) -> Result<Resume, String> {
    a.finish()?;
    Ok(Resume)
}

impl Execute for Resume {
    fn execute<'a>(self: Box<Self>, ctx: &'a Ctx, actor: &'a Actor) -> BoxFut<'a, Reply> {
        Box::pin(async move {
            let paused = match ctx.status().await {
                Ok(s) => s.paused,
                Err(e) => return Reply::private(e.to_string()),
            };
            let Some(p) = paused else {
                return Reply::private("automation is not paused; nothing to resume");
            };
            match ctx
                .ask(|reply| Command::Resume {
                    by: actor.who(),
                    reply,
                })
                .await
            {
                Ok(()) => Reply::private(format!(
                    "automation resumed; it was paused by {} for {} ({})",
                    p.by,
                    age(ctx.clock.now() - p.since),
                    p.reason
                )),
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

    #[tokio::test]
    async fn resume_says_when_there_is_nothing_to_resume() {
        let (ctx, mut rx) = ctx().await;
        let loop_ = tokio::spawn(async move {
            match rx.recv().await.unwrap() {
                Command::Status(tx) => tx.send(empty_status()).unwrap(),
                other => panic!("{other:?}"),
            }
            rx
        });
        let r = handle(&ctx, &actor(Role::Commander), "resume").await;
        let mut rx = loop_.await.unwrap();
        assert_eq!(r.text, "automation is not paused; nothing to resume");
        assert!(rx.try_recv().is_err(), "no resume was sent");
        assert_eq!(parse(Args::of("now")).unwrap_err(), "unexpected `now`");
    }
}
