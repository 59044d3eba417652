//! `silence MATCHERS DURATION [COMMENT]`: keep alerts that match quiet for
//! a while, in the Alertmanager matcher syntax (`amtool silence add`
//! takes matchers the same way: one per word, or comma-separated).

use super::{Actor, Args, BoxFut, Ctx, Execute, Reply, Spec};
use crate::control::{Command, SilenceBy};
use crate::duration::PromDuration;
use crate::matchers::{Matcher, parse_matchers};
use crate::roles::Role;

pub const SPEC: Spec = Spec {
    name: "silence",
    args: "MATCHERS DURATION [COMMENT]",
    role: Role::Responder,
    about: "silence alerts matching MATCHERS for DURATION",
    example: "silence alertname=\"SpeakerFeedback\" room=\"main\" 30m \"host is on it\"",
    flags: &[],
    parse: |a| Ok(Box::new(parse(a)?)),
};

#[derive(Debug)]
pub struct Silence {
    pub matchers: Vec<Matcher>,
    pub duration: PromDuration,
    pub comment: String,
}

/// Matchers come first, up to the first word that is a duration (a
/// matcher always has an operator, a duration never does); the rest is
/// the comment.
pub fn parse(mut a: Args) -> Result<Silence, String> {
    let mut words = Vec::new();
    let duration = loop {
        let Some(t) = a.word() else {
            return Err(if words.is_empty() {
                "missing the matchers, e.g. alertname=\"SpeakerFeedback\"".to_owned()
            } else {
                "missing the duration after the matchers, e.g. 30m or 2h".to_owned()
            });
        };
        if !t.text.contains(['=', '~']) {
            match PromDuration::parse(&t.text) {
                Ok(d) if d.is_zero() => return Err("the duration must be longer than 0s".into()),
                Ok(d) if !words.is_empty() => break d,
                Ok(_) => {
                    return Err(format!(
                        "missing the matchers before the duration `{}`, e.g. alertname=\"SpeakerFeedback\"",
                        t.text
                    ));
                }
                Err(e) => {
                    return Err(format!(
                        "`{}` is neither a matcher (name=\"value\") nor a duration ({e})",
                        t.text
                    ));
                }
            }
        }
        words.push(t.text);
    };
    let matchers = parse_matchers(&words.join(",")).map_err(|e| format!("matchers: {e}"))?;
    Ok(Silence {
        matchers,
        duration,
        comment: a.rest(),
    })
}

impl Execute for Silence {
    fn execute<'a>(self: Box<Self>, ctx: &'a Ctx, actor: &'a Actor) -> BoxFut<'a, Reply> {
        Box::pin(async move {
            let r = ctx
                .ask(|reply| Command::Silence {
                    matchers: self.matchers,
                    duration_ms: self.duration.as_millis() as i64,
                    by: SilenceBy::Person(actor.who()),
                    comment: self.comment,
                    key: None,
                    reply,
                })
                .await;
            match r {
                Ok(Ok((id, ends_at))) => Reply::private(format!(
                    "silence {id} holds until {}; `unsilence {id}` ends it sooner",
                    ctx.time(ends_at)
                )),
                Ok(Err(e)) => Reply::private(format!("not silenced: {e}")),
                Err(e) => Reply::private(format!("not silenced: {e}")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::handle;
    use super::super::testing::*;
    use super::*;
    use crate::silence::matchers_text;

    fn ok(line: &str) -> (String, String, String) {
        let s = parse(Args::of(line)).unwrap();
        (
            matchers_text(&s.matchers),
            s.duration.to_string(),
            s.comment,
        )
    }

    #[test]
    fn matchers_then_duration_then_comment() {
        assert_eq!(
            ok(r#"alertname="SpeakerFeedback" room="main hall" 30m "host is on it""#),
            (
                r#"alertname="SpeakerFeedback", room="main hall""#.into(),
                "30m".into(),
                "host is on it".into()
            )
        );
        assert_eq!(
            ok("{alertname=Full,severity=~\"crit|page\"} 1h30m moving rooms now"),
            (
                r#"alertname="Full", severity=~"crit|page""#.into(),
                "1h30m".into(),
                "moving rooms now".into()
            )
        );
        assert_eq!(ok("alertname=Full 2h").2, "");
    }

    #[test]
    fn mistakes_say_what_is_missing() {
        let e = |l: &str| parse(Args::of(l)).unwrap_err();
        assert_eq!(
            e(""),
            "missing the matchers, e.g. alertname=\"SpeakerFeedback\""
        );
        assert_eq!(
            e("alertname=Full"),
            "missing the duration after the matchers, e.g. 30m or 2h"
        );
        assert!(
            e("2h alertname=Full").starts_with("missing the matchers before the duration `2h`")
        );
        assert!(e("alertname=Full two-hours").starts_with("`two-hours` is neither a matcher"));
        assert_eq!(
            e("alertname=Full 0s"),
            "the duration must be longer than 0s"
        );
        assert!(
            e("alertname=~\"(\" 1h").starts_with("matchers: "),
            "{}",
            e("alertname=~\"(\" 1h")
        );
    }

    #[tokio::test]
    async fn a_silence_goes_to_the_control_loop() {
        let (ctx, mut rx) = ctx().await;
        let loop_ = tokio::spawn(async move {
            match rx.recv().await.unwrap() {
                Command::Silence {
                    matchers,
                    duration_ms,
                    by,
                    comment,
                    key,
                    reply,
                } => {
                    assert_eq!(matchers_text(&matchers), "alertname=\"Full\"");
                    assert_eq!(
                        (duration_ms, by.label().as_str(), comment.as_str()),
                        (1_800_000, "alice (U1)", "moving")
                    );
                    assert_eq!(by, SilenceBy::Person(crate::roles::Who::new("U1", "alice")));
                    assert_eq!(key, None);
                    reply.send(Ok(("s1".into(), T0 + 1_800_000))).unwrap();
                }
                other => panic!("{other:?}"),
            }
        });
        let r = handle(
            &ctx,
            &actor(Role::Responder),
            "silence alertname=Full 30m moving",
        )
        .await;
        loop_.await.unwrap();
        assert_eq!(
            r.text,
            "silence s1 holds until 22:33:05 UTC; `unsilence s1` ends it sooner"
        );
        let r = handle(&ctx, &actor(Role::Responder), "silence alertname=Full").await;
        assert_eq!(
            r.text,
            "missing the duration after the matchers, e.g. 30m or 2h\nusage: silence MATCHERS DURATION [COMMENT]"
        );
    }
}
