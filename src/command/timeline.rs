//! `timeline [INCIDENT]`: what happened, in order, from the store: alerts,
//! runs and their steps, acks, refusals. Default: the newest incident.

use super::{Actor, Args, BoxFut, Ctx, Execute, Reply, Spec, hint};
use crate::roles::Role;
use crate::store::TimelineEntry;

pub const SPEC: Spec = Spec {
    name: "timeline",
    args: "[INCIDENT]",
    role: Role::Viewer,
    about: "the incident's timeline (default: the newest incident)",
    example: "timeline launch",
    flags: &[],
    parse: |a| Ok(Box::new(parse(a)?)),
};

/// Chat messages have limits, and the start of a long incident is what
/// the store is for: show the newest entries.
const MAX_ENTRIES: usize = 40;
/// One entry's text in chat; an entry written in a storm can name
/// thousands of alerts (`firebreak timeline` prints it whole).
const ENTRY_CHARS: usize = 300;

#[derive(Debug, PartialEq)]
pub struct Timeline {
    pub incident: Option<String>,
}

pub fn parse(mut a: Args) -> Result<Timeline, String> {
    let incident = a.word().map(|t| t.text);
    a.finish()?;
    Ok(Timeline { incident })
}

/// `newest` are the incident's last entries, oldest first, of `total`.
pub fn render(
    incident: &str,
    total: usize,
    newest: &[TimelineEntry],
    time: impl Fn(i64) -> String,
) -> String {
    let mut out = format!("timeline of {incident} ({total} entries)");
    let newest = &newest[newest.len().saturating_sub(MAX_ENTRIES)..];
    let skip = total.saturating_sub(newest.len());
    if skip > 0 {
        out.push_str(&format!(
            "\n… {skip} earlier entries not shown; `firebreak timeline {incident}` prints them all"
        ));
    }
    for e in newest {
        out.push_str(&format!(
            "\n{} {} [{}] {}",
            time(e.at),
            e.by.label(),
            e.kind,
            crate::chat::clip(&e.text, ENTRY_CHARS)
        ));
    }
    out
}

impl Execute for Timeline {
    fn execute<'a>(self: Box<Self>, ctx: &'a Ctx, _actor: &'a Actor) -> BoxFut<'a, Reply> {
        Box::pin(async move {
            let incidents = match ctx.store.incidents().await {
                Ok(i) => i,
                Err(e) => return Reply::private(format!("cannot read the incidents: {e}")),
            };
            // Listed oldest first.
            let incident = match self.incident {
                Some(i) if incidents.contains(&i) => i,
                Some(i) => {
                    let known = if incidents.is_empty() {
                        "there are none yet".to_owned()
                    } else {
                        format!("incidents: {}", incidents.join(", "))
                    };
                    return Reply::private(format!(
                        "no incident {i:?}{}; {known}",
                        hint(&i, &incidents)
                    ));
                }
                // The newest incident; refusals made outside any are
                // asked for by name.
                None => match incidents
                    .iter()
                    .rev()
                    .find(|i| *i != crate::control::OUTSIDE_INCIDENTS)
                    .or(incidents.last())
                {
                    Some(i) => i.clone(),
                    None => return Reply::private("no incidents yet: nothing has fired"),
                },
            };
            match ctx.store.timeline_tail(&incident, MAX_ENTRIES as i64).await {
                Ok((total, newest)) => Reply::private(render(
                    &incident,
                    usize::try_from(total).unwrap_or(0),
                    &newest,
                    |t| ctx.time(t),
                )),
                Err(e) => Reply::private(format!("cannot read the timeline: {e}")),
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
    async fn the_newest_incident_by_default_and_a_hint_for_typos() {
        let (ctx, _rx) = ctx().await;
        let me = actor(Role::Viewer);
        assert_eq!(
            handle(&ctx, &me, "timeline").await.text,
            "no incidents yet: nothing has fired"
        );
        ctx.store
            .append_timeline(&TimelineEntry::new(
                "rehearsal",
                T0 - 10_000,
                crate::timeline::Kind::AlertFiring,
                crate::timeline::By::Bot,
                Default::default(),
                "Full firing",
            ))
            .await
            .unwrap();
        ctx.store
            .append_timeline(&TimelineEntry::new(
                "launch",
                T0,
                crate::timeline::Kind::AlertFiring,
                crate::timeline::By::Bot,
                Default::default(),
                "SpeakerFeedback firing",
            ))
            .await
            .unwrap();
        ctx.store
            .append_timeline(&TimelineEntry::new(
                "launch",
                T0 + 5_000,
                crate::timeline::Kind::Ack,
                crate::timeline::By::Person(crate::roles::Who::new("bob", "bob")),
                Default::default(),
                "SpeakerFeedback acknowledged by bob",
            ))
            .await
            .unwrap();
        assert_eq!(
            handle(&ctx, &me, "timeline").await.text,
            "timeline of launch (2 entries)\n22:03:05 UTC firebreak [alert_firing] SpeakerFeedback firing\n22:03:10 UTC bob [ack] SpeakerFeedback acknowledged by bob"
        );
        assert!(
            handle(&ctx, &me, "timeline rehearsal")
                .await
                .text
                .contains("Full firing")
        );
        assert_eq!(
            handle(&ctx, &me, "timeline lanch").await.text,
            "no incident \"lanch\" (did you mean `launch`?); incidents: rehearsal, launch"
        );
    }

    #[test]
    fn long_timelines_show_the_newest() {
        let entries: Vec<TimelineEntry> = (0..45)
            .map(|i| TimelineEntry {
                seq: i,
                ..TimelineEntry::new(
                    "x",
                    i,
                    crate::timeline::Kind::Step,
                    crate::timeline::By::Bot,
                    Default::default(),
                    format!("e{i}"),
                )
            })
            .collect();
        let text = render("x", 45, &entries, |t| t.to_string());
        assert!(
            text.contains("… 5 earlier entries not shown; `firebreak timeline x` prints them all\n5 firebreak [step] e5"),
            "{text}"
        );
        assert!(!text.contains("e4\n"), "{text}");
        // What the store gives: the tail only, counted in all.
        let text = render("x", 1000, &entries[5..], |t| t.to_string());
        assert!(
            text.starts_with("timeline of x (1000 entries)\n… 960 earlier"),
            "{text}"
        );
        let mut long = entries[44].clone();
        long.text = "y".repeat(5000);
        let text = render("x", 1, &[long], |t| t.to_string());
        assert!(text.len() < 400 && text.ends_with('…'), "{text}");
    }
}
