//! The message model: what a message to people is (its kind, text,
//! thread, slot, card, image), what an adapter is handed and may answer,
//! and how long lists are told in a storm ([`tally`]).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::card;
use crate::clock::Millis;

/// What a message is about, so adapters can style it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Firing,
    Resolved,
    RunStarted,
    Step,
    StepFailed,
    RunFinished,
    RunFailed,
    #[default]
    Note,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub channel: String,
    /// Messages of one incident form one thread: the first one delivered
    /// is its head, the rest are replies under it.
    pub incident: Option<String>,
    pub kind: Kind,
    /// Plain text, always present: what the console prints and what Slack
    /// shows in notifications and where blocks cannot be rendered.
    pub text: String,
    pub at: Millis,
    /// A named message that later messages with the same slot (in the same
    /// incident, or the channel when there is none) replace in place
    /// instead of posting anew, such as the incident's card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// The incident card this message carries, for adapters that can
    /// render it richly; `text` is its plain rendering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<card::Card>,
    /// A platform thread to answer in (the message id that heads it),
    /// for replies to someone who spoke to the bot in a thread of their
    /// own rather than an incident's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// A chart to upload into the message's thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    /// The checklist run this message is the card of, for adapters that
    /// render it richly (sign-off buttons); `text` is its plain rendering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checklist: Option<Box<crate::checklist::state::RunState>>,
}

/// Where a message lands on the chat platform. The outbox decides this
/// from the ids earlier deliveries returned; adapters only carry it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// A new message in the channel.
    TopLevel,
    /// A reply in the thread whose first message has this platform id.
    Reply { parent: String },
    /// Replace the message with this platform id.
    Update { id: String },
}

/// A rendered chart to upload beside the message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// Stored as base64 in the outbox row's JSON.
    #[serde(with = "base64_bytes")]
    pub png: Vec<u8>,
    pub title: String,
}

mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// One delivery attempt, as the outbox hands it to an adapter.
#[derive(Clone, Debug)]
pub struct Outgoing<'a> {
    pub msg: &'a ChatMessage,
    pub placement: Placement,
    pub image: Option<&'a Image>,
    /// Names this message across attempts (and restarts): an adapter whose
    /// platform may have taken an attempt that timed out can look for a
    /// copy by it before posting again. `None` where there is nothing to
    /// look for (an update in place).
    pub key: Option<String>,
    /// An earlier attempt failed with [`ChatError::Retry`]: it may have
    /// arrived all the same.
    pub retried: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// Worth trying again: after `after` when the platform said so (a 429's
    /// `Retry-After`), else after the outbox's own backoff. Timeouts,
    /// connection failures and 5xx answers are this.
    #[error("{reason}")]
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// This message will never be accepted as it is (unknown channel,
    /// revoked token, malformed blocks). The outbox sets it aside, says so
    /// in the log, and goes on with the next one.
    #[error("{0}")]
    Rejected(String),
    /// The platform refuses the bot itself, whatever it sends (a revoked or
    /// invalid token, a missing scope): nothing
    /// goes until a person fixes it. The outbox keeps the message, tries
    /// again slowly, and says so (`firebreak_chat_up`, `/-/ready`, and in
    /// chat once it is taken back).
    #[error("{0}")]
    Refused(String),
}

impl ChatError {
    pub fn retry(reason: impl Into<String>) -> Self {
        ChatError::Retry {
            after: None,
            reason: reason.into(),
        }
    }
}

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How fast an adapter's platform lets one channel be written to: a token
/// bucket of `burst` messages refilled at one per `every`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub burst: u32,
    pub every: Duration,
}

/// One chat system. An adapter makes one attempt per call and reports
/// what happened; pacing, retries, ordering and threading are the
/// outbox's. `send` returns the platform's id for the message (Slack's
/// `ts`), which later replies and updates refer to. A message may be sent
/// twice if the bot dies between the platform accepting it and the
/// outbox recording that; it is never lost.
pub trait ChatAdapter: Send + Sync {
    fn send<'a>(&'a self, out: Outgoing<'a>) -> BoxFut<'a, Result<String, ChatError>>;

    /// The platform's per-channel write limit; `None` for none (console).
    fn rate_limit(&self) -> Option<RateLimit> {
        None
    }
}

pub use crate::human::clip;

/// Lists people read in a storm: distinct items in first-seen order, a
/// repeated one once with `×N`, at most `max` of them, then how many
/// more (counting repeats). Empty for no items.
pub fn tally<I: IntoIterator<Item = String>>(items: I, max: usize) -> String {
    let mut order: Vec<(String, usize)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for item in items {
        match index.get(&item) {
            Some(&i) => order[i].1 += 1,
            None => {
                index.insert(item.clone(), order.len());
                order.push((item, 1));
            }
        }
    }
    let mut parts: Vec<String> = order
        .iter()
        .take(max)
        .map(|(s, n)| {
            if *n > 1 {
                format!("{s} ×{n}")
            } else {
                s.clone()
            }
        })
        .collect();
    let more: usize = order.iter().skip(max).map(|(_, n)| n).sum();
    if more > 0 {
        parts.push(format!("… and {more} more"));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_repeats_and_caps_the_list() {
        let items = ["a", "b", "a", "c", "a", "d", "d"].map(String::from);
        assert_eq!(tally(items.clone(), 10), "a ×3, b, c, d ×2");
        assert_eq!(tally(items, 2), "a ×3, b, … and 3 more");
        assert_eq!(tally(Vec::new(), 2), "");
    }
}
