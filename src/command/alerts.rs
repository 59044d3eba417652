//! `alerts`: every firing alert with its labels, value, age, who
//! acknowledged it and whether a silence holds it; then the pending ones,
//! with what is left of their `for`.

use super::{Actor, Args, BoxFut, Ctx, Execute, Reply, Spec, age};
use crate::clock::Millis;
use crate::control::FiringAlert;
use crate::roles::Role;
use std::sync::Arc;

pub const SPEC: Spec = Spec {
    name: "alerts",
    args: "",
    role: Role::Viewer,
    about: "firing alerts: labels, value, since, acked by, silenced",
    example: "alerts",
    flags: &[],
    parse: |a| Ok(Box::new(parse(a)?)),
};

#[derive(Debug, PartialEq)]
pub struct Alerts;

pub fn parse(a: Args) -> Result<Alerts, String> {
    a.finish()?;
    Ok(Alerts)
}

/// Alerts listed one by one; in a storm the rest are counted by rule.
const LISTED: usize = 20;
/// Rules named in a storm's count.
const RULES_NAMED: usize = 10;
/// An alert's summary in the list.
const SUMMARY_CHARS: usize = 200;

/// `firing` oldest first; `time` shows a clock time (see [`Ctx::time`]).
pub fn render(firing: &[Arc<FiringAlert>], now: Millis, time: impl Fn(Millis) -> String) -> String {
    if firing.is_empty() {
        return "no alerts firing".to_owned();
    }
    let mut out = format!("{} alert(s) firing:", firing.len());
    if firing.len() > LISTED {
        out.push_str(&format!(
            " {}; the oldest {LISTED}:",
            crate::chat::tally(firing.iter().map(|f| f.name.clone()), RULES_NAMED)
        ));
    }
    for f in &firing[..firing.len().min(LISTED)] {
        let labels: Vec<String> = f
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        // Pushed alerts carry no value.
        let value = if f.value.is_nan() {
            String::new()
        } else {
            format!(" value {}", f.value)
        };
        out.push_str(&format!(
            "\n• {} {{{}}}{value} for {} (since {}), incident {}, id {}",
            f.name,
            labels.join(", "),
            age(now - f.since),
            time(f.since),
            f.incident,
            &f.fingerprint[..8.min(f.fingerprint.len())]
        ));
        match &f.acked {
            Some(a) => out.push_str(&format!("; acked by {} {} ago", a.by, age(now - a.at))),
            None => out.push_str("; not acked"),
        }
        if let Some(id) = &f.silenced_by {
            out.push_str(&format!("; silenced by {id}"));
        }
        if !f.summary.is_empty() {
            out.push_str(&format!(
                "\n  {}",
                crate::chat::clip(&f.summary, SUMMARY_CHARS)
            ));
        }
    }
    if firing.len() > LISTED {
        out.push_str(&format!(
            "\n… and {} more; the API's /api/v1/alerts lists them all",
            firing.len() - LISTED
        ));
    }
    out
}

impl Execute for Alerts {
    fn execute<'a>(self: Box<Self>, ctx: &'a Ctx, _actor: &'a Actor) -> BoxFut<'a, Reply> {
        Box::pin(async move {
            match ctx.status().await {
                Ok(s) => {
                    let now = ctx.clock.now();
                    let mut text = render(&s.firing, now, |t| ctx.time(t));
                    super::status::pending_lines(&mut text, &s.pending, now);
                    Reply::channel(text)
                }
                Err(e) => Reply::private(e.to_string()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;

    #[tokio::test]
    async fn alerts_list_what_fires_with_ack_and_silence() {
        let (ctx, mut rx) = ctx().await;
        let answer = tokio::spawn(async move {
            match rx.recv().await.unwrap() {
                crate::control::Command::Status(tx) => {
                    let mut s = empty_status();
                    s.firing = vec![Arc::new(FiringAlert {
                        fingerprint: "0123456789abcdef".into(),
                        name: "SpeakerFeedback".into(),
                        group: "g".into(),
                        incident: "launch".into(),
                        labels: [("alertname", "SpeakerFeedback"), ("room", "main")]
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                        summary: "host feeds back".into(),
                        value: 0.93,
                        since: T0 - 65_000,
                        acked: Some(crate::control::Acked {
                            by: "bob".into(),
                            at: T0 - 5_000,
                        }),
                        silenced_by: Some("s1".into()),
                    })];
                    tx.send(s).unwrap()
                }
                other => panic!("{other:?}"),
            }
        });
        let r = super::super::handle(&ctx, &actor(Role::Viewer), "alerts").await;
        answer.await.unwrap();
        assert_eq!(
            r.text,
            "1 alert(s) firing:\n• SpeakerFeedback {room=\"main\"} value 0.93 for 1m05s (since 22:02:00 UTC), incident launch, id 01234567; acked by bob 5s ago; silenced by s1\n  host feeds back"
        );
        assert_eq!(render(&[], T0, |t| t.to_string()), "no alerts firing");
    }

    /// Found by the load benchmark: 10,000 alerts made a reply of two
    /// million characters.
    #[test]
    fn a_storm_is_counted_by_rule_and_the_oldest_listed() {
        let firing: Vec<Arc<FiringAlert>> = (0..1000)
            .map(|i| {
                Arc::new(FiringAlert {
                    fingerprint: format!("{i:016x}"),
                    name: if i % 10 == 0 { "Full" } else { "Surge" }.into(),
                    group: "g".into(),
                    incident: "launch".into(),
                    labels: [("instance".to_owned(), format!("edge-{i}"))].into(),
                    summary: "s".repeat(1000),
                    value: f64::NAN,
                    since: T0 - 1000 + i,
                    acked: None,
                    silenced_by: None,
                })
            })
            .collect();
        let text = render(&firing, T0, |t| t.to_string());
        assert!(
            text.starts_with("1000 alert(s) firing: Full ×100, Surge ×900; the oldest 20:\n• Full {instance=\"edge-0\"} for 1s"),
            "{text}"
        );
        assert!(text.contains("edge-19\""), "{text}");
        assert!(!text.contains("edge-20\""), "{text}");
        assert!(
            text.ends_with("\n… and 980 more; the API's /api/v1/alerts lists them all"),
            "{text}"
        );
        assert!(text.len() < 8000, "{} chars", text.len());
        assert_eq!(parse(Args::of("x")).unwrap_err(), "unexpected `x`");
    }
}
