//! What people send the bot from Slack, at the edge: slash commands,
//! button clicks and mentions, over HTTP ([`slack`], each request's
//! signature checked by [`signature`] first) or over Socket Mode
//! ([`socket`]). Each becomes a [`crate::command`] run with the sender's
//! immutable user id, and its answer goes back through Slack. Apart from
//! [`crate::chat`], which only speaks, so that the outbound side never
//! depends on the command grammar.

pub mod signature;
pub mod slack;
pub mod socket;
