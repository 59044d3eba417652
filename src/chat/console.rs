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
        let mut out = format!(
            "{time} {} {head}{icon} {}",
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
        writeln!(out, "{line}")?;
        out.flush()
    }
}

impl ChatAdapter for Console {
    /// A terminal cannot change what it printed: an update prints the new
    /// version, marked as one.
    fn send<'a>(&'a self, o: Outgoing<'a>) -> BoxFut<'a, Result<String, ChatError>> {
        Box::pin(async move {
            let mut line = self.render(o.msg);
            if let Placement::Update { id } = &o.placement {
                line = format!("{line}  (updates #{id})");
            }
            let mut out = self
                .out
                .lock()
                .map_err(|_| ChatError::Rejected("console writer poisoned".into()))?;
            writeln!(out, "{line}")
                .and_then(|()| out.flush())
                .map_err(|e| ChatError::retry(format!("console write failed: {e}")))?;
            let id = self
                .next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(id.to_string())
        })
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
}
