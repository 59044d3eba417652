//! Chat: what people see. Messages are written to the durable outbox in
//! the store and delivered by one sender task through an adapter (the
//! console, or Slack's Web API), which renders them for its platform. The
//! outbox owns everything about delivery that must survive a restart or
//! outlive one attempt: order per channel, pacing, retries, threads and
//! in-place updates (the platform ids it keeps in the store), and
//! coalescing storms.

pub mod blocks;
pub mod card;
pub mod chart;
pub mod charts;
pub mod console;
mod message;
pub mod mrkdwn;
mod outbox;
pub mod slack;

pub use message::{
    BoxFut, ChatAdapter, ChatError, ChatMessage, Image, Kind, Outgoing, Placement, RateLimit, clip,
    tally,
};
#[cfg(test)]
pub(crate) use outbox::pending_texts;
pub use outbox::{KEEP_SENT_MS, Outbox};
