//! `status`: pause state, firing alerts, running runbooks, approvals that
//! wait, active silences; compact, for a channel mid-incident.

use super::{Actor, Args, BoxFut, Ctx, Execute, Reply, Spec, age};
use crate::clock::Millis;
use crate::control::Status;
use crate::roles::Role;

pub const SPEC: Spec = Spec {
    name: "status",
    args: "",
    role: Role::Viewer,
    about: "pause state, firing alerts, running runbooks, waiting approvals",
    example: "status",
    flags: &[],
    parse: |a| Ok(Box::new(parse(a)?)),
};

#[derive(Debug, PartialEq)]
pub struct StatusCmd;

pub fn parse(a: Args) -> Result<StatusCmd, String> {
    a.finish()?;
    Ok(StatusCmd)
}

/// The status as chat shows it, at `now`.
pub fn render(s: &Status, now: Millis) -> String {
    let mut out = match &s.paused {
        None => "automation: on".to_owned(),
        Some(p) => format!(
            "automation: PAUSED by {} {} ago: {}",
            p.by,
            age(now - p.since),
            p.reason
        ),
    };
    if s.firing.is_empty() && s.running.is_empty() && s.waiting.is_empty() {
        out.push_str("; nothing firing, nothing running");
    }
    if !s.firing.is_empty() {
        out.push_str(&format!("\nfiring ({}):", s.firing.len()));
        for f in &s.firing {
            let mut line = format!(
                "\n  • {}{} for {}",
                f.name,
                crate::control::identifying(&f.labels),
                age(now - f.since)
            );
            if let Some(a) = &f.acked {
                line.push_str(&format!(", acked by {}", a.by));
            }
            if let Some(id) = &f.silenced_by {
                line.push_str(&format!(", silenced by {id}"));
            }
            out.push_str(&line);
        }
    }
    if !s.running.is_empty() {
        out.push_str(&format!("\nrunning ({}):", s.running.len()));
        for (rb, key, id) in &s.running {
            out.push_str(&format!("\n  • {rb} for {key}: run {id}"));
        }
    }
    if !s.waiting.is_empty() {
        out.push_str(&format!("\nwaiting for approval ({}):", s.waiting.len()));
        for w in &s.waiting {
            out.push_str(&format!(
                "\n  • run {} at `{}`: needs {}, {} left",
                w.run,
                w.what,
                w.who,
                age(w.deadline - now),
            ));
        }
    }
    if !s.silences.is_empty() {
        let list: Vec<String> = s
            .silences
            .iter()
            .map(|v| {
                format!(
                    "{} {{{}}} by {}, {} left",
                    v.id,
                    v.matchers,
                    v.by,
                    age(v.ends_at - now)
                )
            })
            .collect();
        out.push_str(&format!("\nsilences ({}): {}", list.len(), list.join("; ")));
    }
    out
}

impl Execute for StatusCmd {
    fn execute<'a>(self: Box<Self>, ctx: &'a Ctx, _actor: &'a Actor) -> BoxFut<'a, Reply> {
        Box::pin(async move {
            match ctx.status().await {
                // For the channel: whoever asks mid-incident asks for everyone.
                Ok(s) => Reply::channel(render(&s, ctx.clock.now())),
                Err(e) => Reply::private(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::control::{Acked, FiringAlert, SilenceView};
    use crate::dispatch::Pause;
    use crate::executor::Waiting;
    use std::collections::BTreeMap;

    pub fn busy_status() -> Status {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Status {
            paused: Some(Pause {
                by: "carol".into(),
                reason: "vendor maintenance".into(),
                since: T0 - 90_000,
            }),
            running: vec![(
                "move-to-secondary-room".into(),
                "event/launch".into(),
                "move-to-secondary-room-1684965-ab121".into(),
            )],
            firing: vec![
                FiringAlert {
                    fingerprint: "0123456789abcdef".into(),
                    name: "ListenerCapacityBreachPredicted".into(),
                    group: "g".into(),
                    incident: "launch".into(),
                    labels: labels(&[
                        ("alertname", "ListenerCapacityBreachPredicted"),
                        ("event", "launch"),
                        ("room", "main"),
                        ("severity", "critical"),
                    ]),
                    summary: "room main will overflow".into(),
                    value: 1_487_312.6,
                    since: T0 - 252_000,
                    acked: Some(Acked {
                        by: "bob".into(),
                        at: T0 - 60_000,
                    }),
                    silenced_by: None,
                },
                FiringAlert {
                    fingerprint: "fedcba9876543210".into(),
                    name: "SpeakerFeedback".into(),
                    group: "g".into(),
                    incident: "launch".into(),
                    labels: labels(&[
                        ("alertname", "SpeakerFeedback"),
                        ("room", "main"),
                        ("speaker", "host"),
                    ]),
                    summary: String::new(),
                    value: 0.93,
                    since: T0 - 30_000,
                    acked: None,
                    silenced_by: Some("s1684965".into()),
                },
            ],
            waiting: vec![Waiting {
                run: "move-to-secondary-room-1684965-ab121".into(),
                what: "create_room".into(),
                who: "a commander".into(),
                deadline: T0 + 540_000,
            }],
            silences: vec![SilenceView {
                id: "s1684965".into(),
                matchers: "speaker=\"host\"".into(),
                ends_at: T0 + 1_770_000,
                by: "alice".into(),
                comment: "host is on it".into(),
            }],
            incident: Some("launch".into()),
        }
    }

    #[test]
    fn a_busy_status_reads_at_a_glance() {
        insta::assert_snapshot!("status_busy", render(&busy_status(), T0));
        assert_eq!(
            render(&empty_status(), T0),
            "automation: on; nothing firing, nothing running"
        );
    }

    #[tokio::test]
    async fn status_asks_the_control_loop_and_answers_the_channel() {
        let (ctx, mut rx) = ctx().await;
        let answer = tokio::spawn(async move {
            match rx.recv().await.unwrap() {
                crate::control::Command::Status(tx) => tx.send(empty_status()).unwrap(),
                other => panic!("{other:?}"),
            }
        });
        let r = super::super::handle(&ctx, &actor(Role::Viewer), "status").await;
        answer.await.unwrap();
        assert_eq!(
            r,
            Reply::channel("automation: on; nothing firing, nothing running")
        );
        let r = super::super::handle(&ctx, &actor(Role::Viewer), "status now").await;
        assert_eq!(r.text, "unexpected `now`\nusage: status");
    }
}
