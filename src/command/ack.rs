//! `ack ALERT`: a person has an alert (or a whole incident) in hand. The
//! control loop records who and when, says it in the incident's thread,
//! and `status` and `alerts` show it.

use super::{Actor, Args, BoxFut, Ctx, Execute, Reply, Spec};
use crate::control::Command;
use crate::roles::Role;

pub const SPEC: Spec = Spec {
    name: "ack",
    args: "ALERT",
    role: Role::Responder,
    about: "acknowledge a firing alert (its id from `alerts`, its name, or an incident)",
    example: "ack SpeakerFeedback",
    flags: &[],
    parse: |a| Ok(Box::new(parse(a)?)),
};

#[derive(Debug, PartialEq)]
pub struct Ack {
    pub target: String,
}

pub fn parse(mut a: Args) -> Result<Ack, String> {
    let target = a.required("the alert: its id from `alerts`, its name, or an incident")?;
    a.finish()?;
    Ok(Ack { target })
}

impl Execute for Ack {
    fn execute<'a>(self: Box<Self>, ctx: &'a Ctx, actor: &'a Actor) -> BoxFut<'a, Reply> {
        Box::pin(async move {
            let r = ctx
                .ask(|reply| Command::Ack {
                    target: self.target,
                    by: actor.who(),
                    reply,
                })
                .await;
            // The thread hears of it from the control loop; this is the
            // asker's confirmation.
            match r {
                Ok(Ok(done)) => Reply::private(done),
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
    fn ack_takes_one_alert() {
        assert_eq!(
            parse(Args::of("SpeakerFeedback")).unwrap(),
            Ack {
                target: "SpeakerFeedback".into()
            }
        );
        assert!(
            parse(Args::of(""))
                .unwrap_err()
                .starts_with("missing the alert")
        );
        assert_eq!(parse(Args::of("a b")).unwrap_err(), "unexpected `b`");
    }

    #[tokio::test]
    async fn ack_goes_to_the_control_loop_as_the_asker() {
        let (ctx, mut rx) = ctx().await;
        let loop_ = tokio::spawn(async move {
            match rx.recv().await.unwrap() {
                Command::Ack { target, by, reply } => {
                    assert_eq!(
                        (target.as_str(), by.label().as_str()),
                        ("launch", "alice (U1)")
                    );
                    reply
                        .send(Ok("acknowledged: SpeakerFeedback".into()))
                        .unwrap();
                }
                other => panic!("{other:?}"),
            }
        });
        let r = handle(&ctx, &actor(Role::Responder), "ack launch").await;
        loop_.await.unwrap();
        assert_eq!(r, Reply::private("acknowledged: SpeakerFeedback"));
        let r = handle(&ctx, &actor(Role::Viewer), "ack launch").await;
        assert_eq!(r.text, "`ack` needs the responder role; you are a viewer");
        let r = handle(&ctx, &actor(Role::Responder), "ack").await;
        assert_eq!(
            r.text,
            "missing the alert: its id from `alerts`, its name, or an incident\nusage: ack ALERT"
        );
    }
}
