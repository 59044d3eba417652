//! The console chat adapter: the same messages on a terminal, for
//! `firebreak demo`, local runs and tests. Each incident reads as a thread:
//! its first message is the head, later ones are indented under it.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Mutex;

use chrono::{FixedOffset, TimeZone};

use super::{BoxFut, ChatAdapter, ChatError, ChatMessage, Kind, Outgoing, Placement};

pub struct Console {
    out: Mutex<Box<dyn Write + Send>>,
    offset: FixedOffset,
    zone: String,
    seen_incidents: Mutex<HashSet<String>>,
    next_id: std::sync::atomic::AtomicU64,
    /// The status each printed card was last shown in, by id.
    card_status: Mutex<std::collections::HashMap<String, CardSeen>>,
    /// Where each printed checklist card stood, by id.
    checklist_phase: Mutex<std::collections::HashMap<String, crate::checklist::state::Phase>>,
}

impl Console {
    /// Writes to `out`, printing times in `offset` labelled `zone`.
    pub fn new(out: Box<dyn Write + Send>, offset: FixedOffset, zone: impl Into<String>) -> Self {
        Console {
            out: Mutex::new(out),
            offset,
            zone: zone.into(),
            seen_incidents: Mutex::new(HashSet::new()),
            next_id: std::sync::atomic::AtomicU64::new(1),
            card_status: Mutex::new(std::collections::HashMap::new()),
            checklist_phase: Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub fn stdout(offset: FixedOffset, zone: impl Into<String>) -> Self {
        Self::new(Box::new(std::io::stdout()), offset, zone)
    }

    /// The text as it appears on the terminal, without a trailing newline.
    pub fn render(&self, msg: &ChatMessage) -> String {
        let time = self
            .offset
            .timestamp_millis_opt(msg.at)
            .single()
            .map_or_else(
                || "??:??:??".to_owned(),
                |t| t.format("%H:%M:%S").to_string(),
            );
        let icon = match msg.kind {
            Kind::Firing => "🔥",
            Kind::Resolved => "✅",
            Kind::RunStarted => "▶",
            Kind::Step => "✓",
            Kind::StepFailed => "✗",
            Kind::RunFinished => "🏁",
            Kind::RunFailed => "❌",
            Kind::Note => "💬",
        };
        let head = match &msg.incident {
            Some(inc) => {
                let first = self
                    .seen_incidents
                    .lock()
                    .map(|mut s| s.insert(inc.clone()))
                    .unwrap_or(false);
                if first {
                    format!("{} [{inc}] ", msg.channel)
                } else {
                    "    └ ".to_owned()
                }
            }
            None => format!("{} ", msg.channel),
        };
        let mut lines = msg.text.lines();
        // A card's text starts with its own status icon.
        let icon = if msg.card.is_some() || msg.checklist.is_some() {
            String::new()
        } else {
            format!("{icon} ")
        };
        let mut out = format!(
            "{time} {} {head}{icon}{}",
            self.zone,
            lines.next().unwrap_or_default()
        );
        for l in lines {
            out.push_str("\n                ");
            out.push_str(l);
        }
        out
    }
}

impl Console {
    /// Prints a message at once, outside the outbox: replies to commands
    /// typed at this terminal, which are for the person typing and are
    /// not chat history.
    pub fn print(&self, msg: &ChatMessage) -> std::io::Result<()> {
        let line = self.render(msg);
        let mut out = self
            .out
            .lock()
            .map_err(|_| std::io::Error::other("console writer poisoned"))?;
        writeln!(out, "{}", super::mrkdwn::for_terminal(&line))?;
        out.flush()
    }
}

/// What a printed card showed: its status and the alerts firing on it,
/// those it does not show counted, and what the bot could not see (news
/// as much as a new alert).
type CardSeen = (super::card::Status, Vec<String>);

fn seen(card: &super::card::Card) -> CardSeen {
    let mut firing: Vec<String> = card
        .shown()
        .iter()
        .filter(|a| a.firing)
        .map(|a| format!("{}{:?}", a.name, a.labels))
        .collect();
    if card.more_firing() > 0 {
        firing.push(format!("+{}", card.more_firing()));
    }
    firing.extend(card.blind.iter().map(|b| format!("blind: {}", b.what)));
    (card.status, firing)
}

impl ChatAdapter for Console {
    /// A terminal cannot change what it printed. An update of a card is
    /// printed in full under the incident when new alerts fire on it
    /// (they are news), as one status line when only its status changed,
    /// and not at all otherwise; other updates print the new version,
    /// marked as one.
    fn send<'a>(&'a self, o: Outgoing<'a>) -> BoxFut<'a, Result<String, ChatError>> {
        Box::pin(async move {
            let mut line = self.render(o.msg);
            if let Placement::Update { id } = &o.placement {
                if let Some(run) = &o.msg.checklist {
                    // A checklist card is printed again only when it
                    // moves on (checking, waiting for sign-off, the
                    // verdict), not for every check that finishes.
                    let phase = run.phase();
                    let before = self
                        .checklist_phase
                        .lock()
                        .map_err(|_| ChatError::Rejected("console state poisoned".into()))?
                        .insert(id.clone(), phase);
                    if before == Some(phase) {
                        return Ok(id.clone());
                    }
                } else if let Some(card) = &o.msg.card {
                    let mut seen_map = self
                        .card_status
                        .lock()
                        .map_err(|_| ChatError::Rejected("console state poisoned".into()))?;
                    let now = seen(card);
                    let before = seen_map.insert(id.clone(), now.clone());
                    // Alerts that stop firing show in the status line.
                    let alerts_changed = before
                        .as_ref()
                        .is_none_or(|b| now.1.iter().any(|a| !b.1.contains(a)));
                    if !alerts_changed && before.is_some_and(|b| b.0 == now.0) {
                        return Ok(id.clone());
                    }
                    if !alerts_changed {
                        line = self.render(&ChatMessage {
                            text: status_line(card),
                            card: None,
                            ..o.msg.clone()
                        });
                    }
                } else {
                    line = format!("{line}  (updates #{id})");
                }
            }
            if let Some(img) = o.image {
                // A terminal cannot show it; say it exists and how big.
                line = format!(
                    "{line}\n    [chart: {}, {} KB PNG]",
                    img.title,
                    img.png.len().div_ceil(1024)
                );
            }
            let mut out = self
                .out
                .lock()
                .map_err(|_| ChatError::Rejected("console writer poisoned".into()))?;
            writeln!(out, "{}", super::mrkdwn::for_terminal(&line))
                .and_then(|()| out.flush())
                .map_err(|e| ChatError::retry(format!("console write failed: {e}")))?;
            let id = self
                .next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .to_string();
            if let (Some(card), Placement::TopLevel | Placement::Reply { .. }) =
                (&o.msg.card, &o.placement)
                && let Ok(mut map) = self.card_status.lock()
            {
                map.insert(id.clone(), seen(card));
            }
            if let (Some(run), Placement::TopLevel | Placement::Reply { .. }) =
                (&o.msg.checklist, &o.placement)
                && let Ok(mut map) = self.checklist_phase.lock()
            {
                map.insert(id.clone(), run.phase());
            }
            Ok(id)
        })
    }
}

/// One line for a card whose status changed: the status, and what the
/// run is doing when there is one.
fn status_line(c: &super::card::Card) -> String {
    let mut out = format!("*{}* incident {}", c.status.word(), c.incident);
    let firing: Vec<&str> = c
        .shown()
        .iter()
        .filter(|a| a.firing)
        .map(|a| a.name.as_str())
        .collect();
    if !firing.is_empty() {
        let more = match c.more_firing() {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        out.push_str(&format!(": {}{more} firing", firing.join(", ")));
    }
    if let Some(r) = &c.run {
        out.push_str(&format!("; {}", super::card::run_line(r)));
    }
    if let Some(a) = &c.audience {
        out.push_str(&format!("; {}", a.line()));
    }
    out
}

/// What tests print the console into.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// Writes into a shared buffer the test can read.
    #[derive(Clone, Default)]
    pub(crate) struct Buf(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_render_as_threads_in_local_time() {
        let c = Console::new(
            Box::new(std::io::sink()),
            FixedOffset::west_opt(4 * 3600).unwrap(),
            "ET",
        );
        // 2023-05-24T22:03:05Z is 18:03:05 ET.
        let at = 1_684_965_785_000;
        let m = |kind, text: &str| ChatMessage {
            channel: "#live".into(),
            incident: Some("launch".into()),
            kind,
            text: text.into(),
            at,
            slot: None,
            card: None,
            reply_to: None,
            image: None,
            checklist: None,
        };
        assert_eq!(
            c.render(&m(Kind::Firing, "room main filling")),
            "18:03:05 ET #live [launch] 🔥 room main filling"
        );
        assert_eq!(
            c.render(&m(Kind::Step, "moved\nsecond line")),
            "18:03:05 ET     └ ✓ moved\n                second line"
        );
    }

    use super::testing::Buf;

    #[tokio::test]
    async fn card_updates_print_only_when_the_status_changes() {
        use crate::chat::card::{Card, CardAlert, CardRun};
        let buf = Buf::default();
        let c = Console::new(
            Box::new(buf.clone()),
            FixedOffset::east_opt(0).unwrap(),
            "UTC",
        );
        let mut card = Card::new("launch", 0);
        card.firing(
            CardAlert {
                name: "Breach".into(),
                severity: None,
                labels: vec![("room".into(), "main".into())],
                value: 1.0,
                since: 0,
                summary: None,
                firing: true,
            },
            0,
        );
        let msg = |card: &Card| ChatMessage {
            channel: "#live".into(),
            incident: Some("launch".into()),
            kind: Kind::Firing,
            text: card.text(),
            at: 0,
            slot: Some("card".into()),
            card: Some(card.clone()),
            reply_to: None,
            image: None,
            checklist: None,
        };
        let send = |m: ChatMessage, placement: Placement| {
            let c = &c;
            async move {
                c.send(Outgoing {
                    key: None,
                    retried: false,
                    msg: &m,
                    placement,
                    image: None,
                })
                .await
                .unwrap()
            }
        };
        let id = send(msg(&card), Placement::TopLevel).await;
        let run = |state: &str, step: &str| CardRun {
            id: "r1".into(),
            runbook: "move".into(),
            state: crate::run_state::RunState::parse(state).unwrap(),
            last_step: Some((step.into(), crate::run_state::StepState::Succeeded)),
            waiting: None,
        };
        card.run_progress(run("running", "a"), 1);
        send(msg(&card), Placement::Update { id: id.clone() }).await;
        card.run_progress(run("running", "b"), 2);
        send(msg(&card), Placement::Update { id: id.clone() }).await;
        card.run_progress(run("succeeded", "b"), 3);
        send(msg(&card), Placement::Update { id }).await;
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        insta::assert_snapshot!(out, @r"
        00:00:00 UTC #live [launch] 🔥 *FIRING* incident launch
                        • Breach {room=main} firing, value 1
        00:00:00 UTC     └ 🔥 *MITIGATING* incident launch: Breach firing; runbook move (run r1): running, last step `a` succeeded
        00:00:00 UTC     └ 🔥 *RECOVERED* incident launch: Breach firing; runbook move (run r1): succeeded, last step `b` succeeded
        ");
    }
}
