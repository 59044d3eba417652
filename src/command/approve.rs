//! `approve RUN` and `deny RUN`: answer the approval gate a run waits at.
//! One file: the same gate, the same grammar, opposite answers.
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
    args: "RUN",
    role: Role::Viewer,
    about: "let run RUN go past its approval gate (the runbook says who may)",
    example: "approve move-to-secondary-room-1684965-ab121",
    flags: &[],
    parse: |a| Ok(Box::new(parse(a, Verdict::Approve)?)),
};

pub const DENY: Spec = Spec {
    name: "deny",
    args: "RUN",
    role: Role::Responder,
    about: "refuse run RUN at its approval gate; the run stops",
    example: "deny move-to-secondary-room-1684965-ab121",
    flags: &[],
    parse: |a| Ok(Box::new(parse(a, Verdict::Deny)?)),
};

#[derive(Debug, PartialEq)]
pub struct Answer {
    pub run: String,
    pub verdict: Verdict,
}

pub fn parse(mut a: Args, verdict: Verdict) -> Result<Answer, String> {
    let run = a.required("the run id (see `status`)")?;
    a.finish()?;
    Ok(Answer { run, verdict })
}

impl Execute for Answer {
    fn execute<'a>(self: Box<Self>, ctx: &'a Ctx, actor: &'a Actor) -> BoxFut<'a, Reply> {
        Box::pin(async move {
            let run = self.run;
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
                    let waiting: Vec<String> = ctx
                        .status()
                        .await
                        .map(|s| s.waiting.into_iter().map(|w| w.run).collect())
                        .unwrap_or_default();
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
    fn one_run_id() {
        assert_eq!(
            parse(Args::of("r-1"), Verdict::Deny).unwrap(),
            Answer {
                run: "r-1".into(),
                verdict: Verdict::Deny
            }
        );
        assert_eq!(
            parse(Args::of(""), Verdict::Approve).unwrap_err(),
            "missing the run id (see `status`)"
        );
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
