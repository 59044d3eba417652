//! `status`: pause state, firing alerts, running runbooks, approvals that
//! wait, active silences; compact, for a channel mid-incident.

use super::{Actor, Args, BoxFut, Ctx, Execute, Reply, Spec, age};
use crate::clock::Millis;
use std::collections::HashMap;
use std::sync::Arc;

use crate::control::{FiringAlert, Status};
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
    // First: a quiet status from a blind bot would be a lie.
    for b in &s.blind {
        out.push_str(&format!(
            "\n⚠ BLIND: {} for {} ({}); alerts that depend on it cannot fire",
            b.what,
            age(now - b.since),
            b.why
        ));
    }
    if !s.firing.is_empty() {
        out.push_str(&format!("\nfiring ({}):", s.firing.len()));
        let groups = alike(&s.firing);
        for g in groups.iter().take(LINES) {
            let f = g.oldest;
            let mut line = format!("\n  • {}{}", f.name, crate::control::identifying(&f.labels));
            if g.n > 1 {
                line.push_str(&format!(" ×{}", g.n));
            }
            line.push_str(&format!(" for {}", age(now - f.since)));
            match (g.n, &f.acked, &f.silenced_by) {
                (1, acked, silenced) => {
                    if let Some(a) = acked {
                        line.push_str(&format!(", acked by {}", a.by));
                    }
                    if let Some(id) = silenced {
                        line.push_str(&format!(", silenced by {id}"));
                    }
                }
                _ => {
                    if g.acked > 0 {
                        line.push_str(&format!(", {} acked", g.acked));
                    }
                    if g.silenced > 0 {
                        line.push_str(&format!(", {} silenced", g.silenced));
                    }
                }
            }
            out.push_str(&line);
        }
        let more: usize = groups.iter().skip(LINES).map(|g| g.n).sum();
        if more > 0 {
            out.push_str(&format!(
                "\n  … and {more} more; `alerts` counts them by rule"
            ));
        }
    }
    pending_lines(&mut out, &s.pending, now);
    if !s.running.is_empty() {
        out.push_str(&format!("\nrunning ({}):", s.running.len()));
        for (rb, key, id) in s.running.iter().take(LINES) {
            out.push_str(&format!("\n  • {rb} for {key}: run {id}"));
        }
        more_lines(&mut out, s.running.len());
    }
    if !s.waiting.is_empty() {
        out.push_str(&format!("\nwaiting for approval ({}):", s.waiting.len()));
        for w in s.waiting.iter().take(LINES) {
            out.push_str(&format!(
                "\n  • run {} at `{}`: needs {}, {} left",
                w.run,
                w.what,
                w.who,
                crate::human::duration(w.deadline - now),
            ));
        }
        more_lines(&mut out, s.waiting.len());
    }
    if !s.silences.is_empty() {
        let mut list: Vec<String> = s
            .silences
            .iter()
            .take(LINES)
            .map(|v| {
                format!(
                    "{} {{{}}} by {}, {} left",
                    v.id,
                    v.matchers,
                    v.by,
                    crate::human::duration(v.ends_at - now)
                )
            })
            .collect();
        if s.silences.len() > LINES {
            list.push(format!("… and {} more", s.silences.len() - LINES));
        }
        out.push_str(&format!(
            "\nsilences ({}): {}",
            s.silences.len(),
            list.join("; ")
        ));
    }
    out
}

/// Alerts waiting out their `for`, each with what is left of it, as
/// Prometheus's alerts page shows them: what is about to fire is news.
pub fn pending_lines(out: &mut String, pending: &[crate::rules::PendingAlert], now: Millis) {
    if pending.is_empty() {
        return;
    }
    out.push_str(&format!("\npending ({}):", pending.len()));
    for p in pending.iter().take(LINES) {
        let labels: std::collections::BTreeMap<String, String> = p
            .labels
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let when = if p.fires_at > now {
            format!("fires in {} if it holds", age(p.fires_at - now))
        } else {
            "fires at the next evaluation if it holds".to_owned()
        };
        out.push_str(&format!(
            "\n  • {}{} for {}; {when}",
            p.name,
            crate::control::identifying(&labels),
            age(now - p.active_at),
        ));
    }
    more_lines(out, pending.len());
}

/// Lines per section: a storm is counted, not listed, so the answer
/// stays readable and within what chat accepts.
const LINES: usize = 10;

fn more_lines(out: &mut String, n: usize) {
    if n > LINES {
        out.push_str(&format!("\n  … and {} more", n - LINES));
    }
}

/// Firing alerts that read the same on a status line: one rule, the same
/// identifying labels (a storm's alerts differ by instance).
struct Alike<'a> {
    /// The first in `firing`'s order, which is oldest first.
    oldest: &'a FiringAlert,
    n: usize,
    acked: usize,
    silenced: usize,
}

fn alike(firing: &[Arc<FiringAlert>]) -> Vec<Alike<'_>> {
    let mut groups: Vec<Alike> = Vec::new();
    let mut index: HashMap<(&str, String), usize> = HashMap::new();
    for f in firing {
        let key = (f.name.as_str(), crate::control::identifying(&f.labels));
        let i = *index.entry(key).or_insert_with(|| {
            groups.push(Alike {
                oldest: f,
                n: 0,
                acked: 0,
                silenced: 0,
            });
            groups.len() - 1
        });
        let g = &mut groups[i];
        g.n += 1;
        g.acked += usize::from(f.acked.is_some());
        g.silenced += usize::from(f.silenced_by.is_some());
    }
    groups
}

impl Execute for StatusCmd {
    fn execute<'a>(self: Box<Self>, ctx: &'a Ctx, _actor: &'a Actor) -> BoxFut<'a, Reply> {
        Box::pin(async move {
            match ctx.status().await {
                // For the channel: whoever asks mid-incident asks for everyone.
                Ok(s) => Reply::channel(render(&s, ctx.clock.now())),
                Err(e) => Reply::private(e.to_string()),
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
            ]
            .into_iter()
            .map(Arc::new)
            .collect(),
            blind: vec![crate::chat::card::Blind {
                what: "scrape target `sim`".into(),
                since: T0 - 95_000,
                why: "HTTP 503 Service Unavailable".into(),
            }],
            pending: Arc::new(vec![crate::rules::PendingAlert {
                name: "RoomFilling".into(),
                group: "g".into(),
                labels: crate::labels::Labels::new()
                    .with("alertname", "RoomFilling")
                    .with("event", "launch")
                    .with("room", "overflow"),
                summary: "room overflow is filling".into(),
                value: 0.91,
                active_at: T0 - 20_000,
                fires_at: T0 + 40_000,
            }]),
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

    /// Found by the load benchmark: a status in a storm listed every
    /// alert, hundreds of kilobytes for a "compact" answer.
    #[test]
    fn a_storm_reads_as_counted_groups() {
        let mut s = busy_status();
        let template = FiringAlert::clone(&s.firing[0]);
        s.firing = (0..5000)
            .map(|i| {
                let mut f = template.clone();
                f.fingerprint = format!("{i:016x}");
                f.labels.insert("instance".into(), format!("edge-{i}"));
                if i % 1000 == 0 {
                    f.labels.insert("room".into(), format!("room-{i}"));
                }
                f.acked = (i % 2 == 0).then(|| Acked {
                    by: "bob".into(),
                    at: T0,
                });
                f.since = T0 - 300_000 + i;
                Arc::new(f)
            })
            .collect();
        s.silences = (0..12)
            .map(|i| SilenceView {
                id: format!("s{i}"),
                matchers: "a=\"b\"".into(),
                ends_at: T0 + 60_000,
                by: "alice".into(),
                comment: String::new(),
            })
            .collect();
        let text = render(&s, T0);
        assert!(
            text.contains("\nfiring (5000):\n  • ListenerCapacityBreachPredicted (event=launch, room=room-0) for 5m00s, acked by bob\n  • ListenerCapacityBreachPredicted (event=launch, room=main) ×4995 for 5m00s, 2495 acked\n"),
            "{text}"
        );
        assert!(text.contains("room=room-4000) for 4m56s"), "{text}");
        assert!(
            text.contains("; s9 {a=\"b\"} by alice, 1m left; … and 2 more"),
            "{text}"
        );
        assert!(text.len() < 3000, "{} chars", text.len());
        // More distinct groups than lines: the rest counted.
        for (i, f) in s.firing.iter_mut().enumerate() {
            Arc::make_mut(f)
                .labels
                .insert("room".into(), format!("r{}", i % 50));
        }
        let text = render(&s, T0);
        assert!(
            text.contains("\n  … and 4000 more; `alerts` counts them by rule"),
            "{text}"
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
