//! `approve [RUN]` and `deny [RUN]`: answer the approval gate a run waits
//! at; without RUN, the one run that waits (with several, they are listed
//! and nothing is answered). One file: the same gate, the same grammar,
//! opposite answers.
//!
//! Who may approve is the gate's to say (its `approval:` names a role and
//! may name people whatever their role), so `approve` is open to every
//! role here and the executor's gate decides. Denying stops a mitigation,
//! which a responder may always do, as with `abort`.

use super::{Actor, Args, BoxFut, Ctx, Execute, Reply, Spec, hint};
use crate::control::Command;
use crate::executor::{AnswerError, Verdict};
use crate::roles::Role;

pub const APPROVE: Spec = Spec {
    name: "approve",
    args: "[RUN]",
    role: Role::Viewer,
    about: "let run RUN (or the one run waiting) go past its approval gate (the runbook says who may)",
    example: "approve move-to-secondary-room-1684965-ab121",
    flags: &[],
    parse: |a| Ok(Box::new(parse(a, Verdict::Approve)?)),
};

pub const DENY: Spec = Spec {
    name: "deny",
    args: "[RUN]",
    role: Role::Responder,
    about: "refuse run RUN (or the one run waiting) at its approval gate; the run stops",
    example: "deny move-to-secondary-room-1684965-ab121",
    flags: &[],
    parse: |a| Ok(Box::new(parse(a, Verdict::Deny)?)),
};

#[derive(Debug, PartialEq)]
pub struct Answer {
    /// `None`: the one run that waits.
    pub run: Option<String>,
    pub verdict: Verdict,
}

pub fn parse(mut a: Args, verdict: Verdict) -> Result<Answer, String> {
    let run = a.word().map(|t| t.text);
    a.finish()?;
    Ok(Answer { run, verdict })
}

/// The runs waiting at a gate, as `status` has them.
async fn waiting(ctx: &Ctx) -> Vec<String> {
    ctx.status()
        .await
        .map(|s| s.waiting.into_iter().map(|w| w.run).collect())
        .unwrap_or_default()
}

impl Execute for Answer {
    fn execute<'a>(self: Box<Self>, ctx: &'a Ctx, actor: &'a Actor) -> BoxFut<'a, Reply> {
        Box::pin(async move {
            let word = match self.verdict {
                Verdict::Approve => "approve",
                Verdict::Deny => "deny",
            };
            let run = match self.run {
                Some(run) => run,
                None => {
                    let mut runs = waiting(ctx).await;
                    match runs.len() {
                        0 => return Reply::private("no run is waiting for approval"),
                        1 => runs.remove(0),
                        n => {
                            return Reply::private(format!(
                                "{n} runs wait for approval: {}; say which: `{word} RUN`",
                                runs.join(", ")
                            ));
                        }
                    }
                }
            };
            let r = ctx
                .ask(|reply| Command::Answer {
                    run: run.clone(),
                    verdict: self.verdict,
                    by: actor.who(),
                    role: actor.role,
                    reply,
                })
                .await;
            let word = match self.verdict {
                Verdict::Approve => "approved",
                Verdict::Deny => "denied",
            };
            match r {
                Ok(Ok(what)) => Reply::private(format!("{word} `{what}` of run {run}")),
                Ok(Err(e @ AnswerError::NotWaiting(_))) => {
                    let waiting = waiting(ctx).await;
                    let known = if waiting.is_empty() {
                        "no run is waiting for approval".to_owned()
                    } else {
                        format!("waiting: {}", waiting.join(", "))
                    };
                    Reply::private(format!("{e}{}; {known}", hint(&run, &waiting)))
                }
                Ok(Err(e)) => Reply::private(e.to_string()),
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
    fn a_run_id_or_none() {
        assert_eq!(
            parse(Args::of("r-1"), Verdict::Deny).unwrap(),
            Answer {
                run: Some("r-1".into()),
                verdict: Verdict::Deny
            }
        );
        assert_eq!(
            parse(Args::of(""), Verdict::Approve).unwrap(),
            Answer {
                run: None,
                verdict: Verdict::Approve
            }
        );
        assert_eq!(
            parse(Args::of("r-1 r-2"), Verdict::Approve).unwrap_err(),
            "unexpected `r-2`"
        );
    }

    /// A status with `runs` waiting at gates.
    fn waiting_status(runs: &[&str]) -> crate::control::Status {
        let mut s = empty_status();
        for r in runs {
            s.waiting.push(crate::executor::Waiting {
                run: (*r).into(),
                what: "create_room".into(),
                who: "a commander".into(),
                deadline: T0,
            });
        }
        s
    }

    /// Issue 22, item 3: `approve` without a run id answers the one run
    /// waiting, and lists them when there are several.
    #[tokio::test]
    async fn without_a_run_id_the_one_waiting_run_is_answered() {
        let (ctx, mut rx) = ctx().await;
        let loop_ = tokio::spawn(async move {
            match rx.recv().await.unwrap() {
                Command::Status(tx) => tx.send(waiting_status(&["move-1"])).unwrap(),
                other => panic!("{other:?}"),
            }
            match rx.recv().await.unwrap() {
                Command::Answer {
                    run,
                    verdict,
                    reply,
                    ..
                } => {
                    assert_eq!((run.as_str(), verdict), ("move-1", Verdict::Approve));
                    reply.send(Ok("create_room".into())).unwrap();
                }
                other => panic!("{other:?}"),
            }
            for runs in [&["move-1", "cap-2"][..], &[][..]] {
                match rx.recv().await.unwrap() {
                    Command::Status(tx) => tx.send(waiting_status(runs)).unwrap(),
                    other => panic!("{other:?}"),
                }
            }
        });
        let me = actor(Role::Commander);
        let r = handle(&ctx, &me, "approve").await;
        assert_eq!(r.text, "approved `create_room` of run move-1");
        let r = handle(&ctx, &me, "deny").await;
        assert_eq!(
            r.text,
            "2 runs wait for approval: move-1, cap-2; say which: `deny RUN`"
        );
        let r = handle(&ctx, &me, "approve").await;
        assert_eq!(r.text, "no run is waiting for approval");
        loop_.await.unwrap();
    }

    #[tokio::test]
    async fn the_gate_decides_and_a_typo_gets_the_waiting_run() {
        let (ctx, mut rx) = ctx().await;
        let loop_ = tokio::spawn(async move {
            match rx.recv().await.unwrap() {
                Command::Answer {
                    run,
                    verdict,
                    role,
                    reply,
                    ..
                } => {
                    assert_eq!((verdict, role), (Verdict::Approve, Role::Viewer));
                    reply.send(Err(AnswerError::NotWaiting(run))).unwrap();
                }
                other => panic!("{other:?}"),
            }
            match rx.recv().await.unwrap() {
                Command::Status(tx) => {
                    let mut s = empty_status();
                    s.waiting.push(crate::executor::Waiting {
                        run: "move-1684965-ab121".into(),
                        what: "create_room".into(),
                        who: "a commander".into(),
                        deadline: T0,
                    });
                    tx.send(s).unwrap();
                }
                other => panic!("{other:?}"),
            }
        });
        let r = handle(&ctx, &actor(Role::Viewer), "approve move-1684965-ab12").await;
        loop_.await.unwrap();
        assert_eq!(
            r.text,
            "run move-1684965-ab12 is not waiting for an approval (did you mean `move-1684965-ab121`?); waiting: move-1684965-ab121"
        );
        let r = handle(&ctx, &actor(Role::Viewer), "deny move-1684965-ab121").await;
        assert_eq!(r.text, "`deny` needs the responder role; you are a viewer");
    }
}
