//! `signoff RUN CHECK`: confirm a sign-off check of a checklist run, as
//! the card's button does. Who may sign is the check's to say (its
//! `roles`), so anyone may ask and the runner refuses, with the reason,
//! a person whose role does not reach.

use super::{Actor, Args, BoxFut, Ctx, Execute, Reply, Spec};
use crate::control::Command;
use crate::preflight::task::Request;
use crate::roles::Role;

pub const SPEC: Spec = Spec {
    name: "signoff",
    args: "RUN CHECK",
    role: Role::Viewer,
    about: "sign off check CHECK of checklist run RUN (as the card's button does)",
    example: "signoff launch-readiness-1684965000-ab121 commander-sign-off",
    flags: &[],
    parse: |a| Ok(Box::new(parse(a)?)),
};

#[derive(Debug, PartialEq)]
pub struct SignOff {
    pub run: String,
    pub check: String,
}

pub fn parse(mut a: Args) -> Result<SignOff, String> {
    let run = a.required("the checklist run id")?;
    let check = a.required("the name of the sign-off check")?;
    a.finish()?;
    Ok(SignOff { run, check })
}

impl Execute for SignOff {
    fn execute<'a>(self: Box<Self>, ctx: &'a Ctx, actor: &'a Actor) -> BoxFut<'a, Reply> {
        Box::pin(async move {
            let r = ctx
                .ask(|reply| {
                    Command::Checklist(Request::SignOff {
                        run: self.run,
                        check: self.check,
                        by: actor.who(),
                        role: actor.role,
                        reply,
                    })
                })
                .await;
            match r {
                // The card shows it to everyone; this confirms.
                Ok(Ok(said)) => Reply::private(said),
                Ok(Err(e)) => Reply::private(format!("not signed off: {e}")),
                Err(e) => Reply::private(format!("not signed off: {e}")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::handle;
    use super::super::testing::*;
    use super::*;
    use crate::checklist::state::SignError;
    use crate::preflight::task::ChecklistRefused;

    #[test]
    fn a_run_and_a_check() {
        assert_eq!(
            parse(Args::of("r1 commander-sign-off")).unwrap(),
            SignOff {
                run: "r1".into(),
                check: "commander-sign-off".into()
            }
        );
        assert_eq!(
            parse(Args::of("r1")).unwrap_err(),
            "missing the name of the sign-off check"
        );
        assert_eq!(parse(Args::of("r1 c x")).unwrap_err(), "unexpected `x`");
    }

    #[tokio::test]
    async fn the_signer_and_their_role_go_to_the_runner() {
        let (ctx, mut rx) = ctx().await;
        let answer = tokio::spawn(async move {
            match rx.recv().await {
                Some(Command::Checklist(Request::SignOff {
                    run,
                    check,
                    by,
                    role,
                    reply,
                })) => {
                    assert_eq!(
                        (
                            run.as_str(),
                            check.as_str(),
                            by.id.as_str(),
                            by.label().as_str(),
                            role
                        ),
                        ("r1", "sign", "U1", "alice (U1)", Role::Viewer)
                    );
                    let _ = reply.send(Err(ChecklistRefused::Sign(SignError::Role {
                        check: "sign".into(),
                        needs: "commander".into(),
                        you: Role::Viewer,
                    })));
                }
                other => panic!("unexpected {other:?}"),
            }
        });
        let r = handle(&ctx, &actor(Role::Viewer), "signoff r1 sign").await;
        answer.await.unwrap();
        assert_eq!(
            r.text,
            "not signed off: sign needs commander; you are a viewer"
        );
    }
}
