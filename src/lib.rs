//! firebreak: a site-reliability runbook and incident automation bot.
//!
//! # Map of the modules
//!
//! Data flows one way, left to right; the store sits beside the flow and
//! inbound commands enter through one control queue.
//!
//! ```text
//!  source ─samples─▶ tsdb ─▶ rules ─alert events─▶ dispatch ─runs─▶ executor ─step events─▶ outbox ─▶ chat
//!                            (promql)                 ▲                 │
//!                                                     └── control ◀─────┘ (commands: chat, CLI, HTTP)
//!                                       store (SQLite by default, PostgreSQL for HA)
//! ```
//!
//! Shared vocabulary (no I/O):
//! - [`clock`]: real or scaled time; model code takes `now` instead.
//! - [`diag`]: located diagnostics (`file:line:col: field: message`).
//! - [`duration`]: Prometheus-style durations.
//! - [`labels`]: label sets and fingerprints.
//! - [`matchers`]: Alertmanager label matchers.
//!
//! The flow:
//! - [`source`] (I/O): scrapes Prometheus exposition into the series store.
//! - [`tsdb`] (model): the in-memory window of samples the rules need.
//! - [`promql`] (model): evaluates PromQL over the series store.
//! - [`rules`] (model): Prometheus rule files, templates, alert state.
//! - [`runbook`] (model): runbook files, validation, templating.
//! - [`dispatch`] (model): which runbook runs for which alert, and policy.
//! - [`executor`] (I/O): runs a runbook's steps through its actions.
//! - [`chat`] (I/O at the adapters): rendered messages, the outbox, adapters.
//! - [`store`] (I/O): durable record of alerts, runs, steps, timeline, outbox.
//! - [`control`]: the one queue for commands and the loop that owns run state.
//! - [`config`] (model): the daemon's config file and its embedded defaults.
//! - [`daemon`] (I/O): wires the flow together; what `firebreak run` runs.
//! - [`validate`]: `firebreak validate`, every error with its location.
//! - [`demo`]: `firebreak demo`: the simulator plus the daemon, replaying 2023-05-24.
//!
//! Beside the bot:
//! - [`sim`]: the live audio platform simulator, a real HTTP service that
//!   the bot watches and mitigates in the demo, the tests and the benchmarks.

pub mod chat;
pub mod clock;
pub mod config;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod diag;
pub mod dispatch;
pub mod duration;
pub mod embedded;
pub mod executor;
pub mod labels;
pub mod load;
pub mod matchers;
pub mod net;
pub mod promql;
pub mod rules;
pub mod runbook;
pub mod sim;
pub mod source;
pub mod store;
pub mod tsdb;
pub mod validate;
pub mod watcher;
