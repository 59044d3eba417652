//! `abort RUN`: stop a run now. Its current step is cancelled and nothing
//! after it runs, not even rollbacks: whoever aborts has decided.

use super::{Actor, Args, BoxFut, Ctx, Execute, Reply, Spec, hint};
use crate::control::Command;
use crate::roles::Role;

pub const SPEC: Spec = Spec {
    name: "abort",
    args: "RUN",
    role: Role::Responder,
    about: "stop run RUN now, without rollback",
    example: "abort cap-listeners-1684965-ab122",
    flags: &[],
    parse: |a| Ok(Box::new(parse(a)?)),
};

#[derive(Debug, PartialEq)]
pub struct Abort {
    pub run: String,
}

pub fn parse(mut a: Args) -> Result<Abort, String> {
    let run = a.required("the run id (see `status`)")?;
    a.finish()?;
    Ok(Abort { run })
}

impl Execute for Abort {
    fn execute<'a>(self: Box<Self>, ctx: &'a Ctx, actor: &'a Actor) -> BoxFut<'a, Reply> {
        Box::pin(async move {
            let run = self.run;
            let r = ctx
                .ask(|reply| Command::Abort {
                    run: run.clone(),
                    by: actor.who(),
                    reply,
                })
                .await;
            match r {
                Ok(Ok(())) => Reply::private(format!("run {run} is stopping")),
                Ok(Err(e)) => {
                    let running: Vec<String> = ctx
                        .status()
                        .await
                        .map(|s| s.running.into_iter().map(|(_, _, id)| id).collect())
                        .unwrap_or_default();
                    let known = if running.is_empty() {
                        "nothing is running now".to_owned()
                    } else {
                        format!("running: {}", running.join(", "))
                    };
                    Reply::private(format!("{e}{}; {known}", hint(&run, &running)))
                }
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
    async fn abort_a_run_or_hear_which_ones_run() {
        let (ctx, mut rx) = ctx().await;
        let loop_ = tokio::spawn(async move {
            match rx.recv().await.unwrap() {
                Command::Abort { run, by, reply } => {
                    assert_eq!(by.label(), "alice (U1)");
                    reply
                        .send(Err(crate::executor::AbortError::NotRunning(run)))
                        .unwrap();
                }
                other => panic!("{other:?}"),
            }
            match rx.recv().await.unwrap() {
                Command::Status(tx) => tx.send(empty_status()).unwrap(),
                other => panic!("{other:?}"),
            }
        });
        let r = handle(&ctx, &actor(Role::Responder), "abort cap-9").await;
        loop_.await.unwrap();
        assert_eq!(
            r.text,
            "no run cap-9 is in progress; nothing is running now"
        );
        assert_eq!(parse(Args::of("a b")).unwrap_err(), "unexpected `b`");
        let r = handle(&ctx, &actor(Role::Viewer), "abort cap-9").await;
        assert_eq!(r.text, "`abort` needs the responder role; you are a viewer");
    }
}
