//! `unsilence ID`: end a silence now.

use super::{Actor, Args, BoxFut, Ctx, Execute, Reply, Spec, hint};
use crate::control::{Command, UnsilenceError};
use crate::roles::Role;

pub const SPEC: Spec = Spec {
    name: "unsilence",
    args: "ID",
    role: Role::Responder,
    about: "end silence ID now (ids are in `status`)",
    example: "unsilence s1684965785000",
    flags: &[],
    parse: |a| Ok(Box::new(parse(a)?)),
};

#[derive(Debug, PartialEq)]
pub struct Unsilence {
    pub id: String,
}

pub fn parse(mut a: Args) -> Result<Unsilence, String> {
    let id = a.required("the silence id (see `status`)")?;
    a.finish()?;
    Ok(Unsilence { id })
}

impl Execute for Unsilence {
    fn execute<'a>(self: Box<Self>, ctx: &'a Ctx, actor: &'a Actor) -> BoxFut<'a, Reply> {
        Box::pin(async move {
            let id = self.id;
            let r = ctx
                .ask(|reply| Command::Unsilence {
                    id: id.clone(),
                    by: actor.who(),
                    reply,
                })
                .await;
            match r {
                Ok(Ok(())) => Reply::private(format!("silence {id} ended")),
                Ok(Err(e @ UnsilenceError::Unknown(_))) => {
                    let active: Vec<String> = ctx
                        .status()
                        .await
                        .map(|s| s.silences.into_iter().map(|v| v.id).collect())
                        .unwrap_or_default();
                    let known = if active.is_empty() {
                        "no silence is active".to_owned()
                    } else {
                        format!("active: {}", active.join(", "))
                    };
                    Reply::private(format!("{e}{}; {known}", hint(&id, &active)))
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

    #[tokio::test]
    async fn an_unknown_id_gets_the_close_one() {
        let (ctx, mut rx) = ctx().await;
        let loop_ = tokio::spawn(async move {
            match rx.recv().await.unwrap() {
                Command::Unsilence { id, reply, .. } => {
                    reply
                        .send(Err(UnsilenceError::Unknown(
                            crate::silence::SilenceError::Unknown(id),
                        )))
                        .unwrap();
                }
                other => panic!("{other:?}"),
            }
            match rx.recv().await.unwrap() {
                Command::Status(tx) => {
                    let mut s = empty_status();
                    s.silences.push(crate::control::SilenceView {
                        id: "s1684965785000".into(),
                        matchers: "alertname=\"Full\"".into(),
                        ends_at: T0 + 60_000,
                        by: "bob".into(),
                        comment: String::new(),
                    });
                    tx.send(s).unwrap();
                }
                other => panic!("{other:?}"),
            }
        });
        let r = handle(&ctx, &actor(Role::Responder), "unsilence s1684965785001").await;
        loop_.await.unwrap();
        assert_eq!(
            r.text,
            "no silence with id s1684965785001 (did you mean `s1684965785000`?); active: s1684965785000"
        );
        assert_eq!(
            parse(Args::of("")).unwrap_err(),
            "missing the silence id (see `status`)"
        );
    }

    #[tokio::test]
    async fn a_silence_expired_but_not_saved_says_so_and_lists_nothing() {
        let (ctx, mut rx) = ctx().await;
        let loop_ = tokio::spawn(async move {
            match rx.recv().await.unwrap() {
                Command::Unsilence { reply, .. } => {
                    reply
                        .send(Err(UnsilenceError::NotSaved(
                            crate::store::StoreError::Corrupt {
                                what: "silences",
                                detail: "disk full".into(),
                            },
                        )))
                        .unwrap();
                }
                other => panic!("{other:?}"),
            }
            rx
        });
        let r = handle(&ctx, &actor(Role::Responder), "unsilence s1").await;
        // Not asked for the active silences: the id was right.
        assert!(loop_.await.unwrap().try_recv().is_err());
        assert_eq!(
            r.text,
            "expired until restart, but cannot save that: stored silences is corrupt: disk full"
        );
    }
}
