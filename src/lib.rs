//! firebreak: a site-reliability runbook and incident automation bot.
//!
//! # Map of the modules
//!
//! Data flows one way, left to right; the store sits beside the flow and
//! inbound commands enter through one control queue.
//!
//! ```text
//!  source ─samples─▶ watcher ─alert events─▶ control ─runs─▶ executor ─step events─▶ outbox ─▶ chat
//!  api (pushed ─────▶ (tsdb, rules,            (dispatch)  ▲          │
//!   alerts)           promql)                              └ run ends ┘
//!                                commands (chat, CLI, HTTP) ─▶ control ─▶ preflight (checklists) ─▶ outbox
//!                      store beside it all (SQLite by default, PostgreSQL for HA)
//! ```
//!
//! Shared vocabulary (no I/O):
//! - [`clock`]: real or scaled time; model code takes `now` instead.
//! - [`diag`]: located diagnostics (`file:line:col: field: message`).
//! - [`duration`]: Prometheus-style durations.
//! - [`labels`]: label sets, fingerprints and the crate's one stable hash
//!   (FNV-1a).
//! - [`human`]: numbers and durations as people read them.
//! - [`limits`]: bounds on outside data (pushed alerts, rendered PromQL).
//! - [`matchers`]: Alertmanager label matchers.
//! - [`roles`]: viewer, responder, commander: what a person may do.
//!
//! The flow, in order:
//! - [`source`] (I/O): scrape tasks; Prometheus exposition behind one
//!   parser interface; `source::alertmanager` reads alerts pushed by
//!   Alertmanager's webhook and Prometheus (model).
//! - [`watcher`] (task): owns the series store and the rule engine.
//! - [`tsdb`] (model): the in-memory window of samples the rules need.
//! - [`promql`] (model): evaluates PromQL over the series store.
//! - [`rules`] (model): Prometheus rule files, alert templates, alert state
//!   (`rules::pushed` for pushed alerts);
//!   `rules::unittest` runs promtool-format rule tests (`firebreak test rules`).
//! - [`command`] (model, I/O only through the control queue and store
//!   reads): the chat command grammar, one file per command; roles are
//!   checked here, refusals recorded; `command::console_input` reads
//!   commands typed at the terminal.
//! - [`control`] (task): the one owner of run state; alerts, run ends and commands meet here.
//! - [`audience`] (task): measures each open incident's audience (listening,
//!   at risk, had nobody acted) for its card and the review.
//! - [`dispatch`] (model): which runbook starts for which alert, and policy.
//! - [`silence`] (model): Alertmanager-style silences the control loop consults.
//! - [`checklist`] (model): pre-event checklists, their validation, what
//!   each check concludes (`checklist::judge`), a run as it unfolds with
//!   its sign-offs (`checklist::state`), the GO / NO-GO verdict and how a
//!   run reads (`checklist::report`).
//! - [`preflight`] (I/O): runs checklists: measures each check within its
//!   time limit (`firebreak check`), and in the daemon owns chat runs,
//!   sign-offs, schedules and their records (`preflight::task`).
//! - [`runbook`] (model): runbook files, validation, templates, runbooks
//!   that call runbooks (`runbook::calls`); `runbook::plan` says what a run
//!   would do (`firebreak plan`); `runbook::unittest` is the runbook test
//!   format and its comparison.
//! - [`executor`] (I/O): runs a runbook's steps through its actions.
//! - [`chat`] (I/O at the adapters): messages, the durable outbox (order
//!   per channel, pacing, retries, threads, storm coalescing), adapters:
//!   `chat::console` (the terminal) and `chat::slack` (Slack's Web API);
//!   `chat::card` is the incident card model and `chat::blocks` its Block
//!   Kit rendering (model); `chat::mrkdwn` encodes outside data for Slack
//!   and the terminal (model); `chat::signature` checks Slack's request
//!   signatures (model); `chat::slack_inbound` turns slash commands,
//!   button clicks and mentions into commands (over HTTP, or over Socket
//!   Mode with `chat::slack_socket`).
//! - [`store`] (I/O): runs, steps, alerts, the incident timeline, the outbox.
//! - [`rehearse`] (model): a scenario's expectations (`expect:`), what one
//!   rehearsal measured, and the PASS/FAIL verdict with its reasons.
//! - [`incident`] (model): one incident read from its timeline: time to
//!   detect, mitigate and resolve, who did what, the post-incident report
//!   (`firebreak timeline`).
//!
//! Putting it together:
//! - [`config`] (model): the config file and its defaults.
//! - [`load`]: reads and validates config, rules and runbooks together.
//! - [`embedded`]: the shipped rules and runbooks, compiled in.
//! - [`daemon`] (I/O): wires the flow; what `firebreak run` runs.
//! - [`reload`] (task): rules, runbooks and checklists reloaded on SIGHUP
//!   or when their files change; a bad version is refused, loudly.
//! - [`server`] (I/O): the bot's HTTP listener (`server.listen`).
//! - [`api`] (I/O, the edge): the HTTP API: pushed alerts into the
//!   watcher's queue, JSON reads, health, `/metrics`.
//! - [`metrics`]: the bot's own metrics, one registry per process.
//! - [`validate`]: `firebreak validate`, every error with its location.
//! - [`runbook_tests`] (I/O): `firebreak test runbooks`: runbook tests run by
//!   the real executor against stub targets, on a manual clock.
//! - [`demo`]: `firebreak demo`: the simulator plus the daemon, replaying 2023-05-24.
//! - [`net`]: the HTTP client and TLS provider setup.
//!
//! Beside the bot:
//! - [`sim`]: the live audio platform simulator, a real HTTP service that
//!   the bot watches and mitigates in the demo, the tests and the benchmarks.

pub mod api;
pub mod audience;
pub mod chat;
pub mod checklist;
pub mod clock;
pub mod command;
pub mod config;
pub mod control;
pub mod daemon;
pub mod demo;
pub mod diag;
pub mod dispatch;
pub mod duration;
pub mod embedded;
pub mod executor;
pub mod human;
pub mod incident;
pub mod labels;
pub mod limits;
pub mod load;
pub mod matchers;
pub mod metrics;
pub mod net;
pub mod preflight;
pub mod promql;
pub mod rehearse;
pub mod reload;
pub mod roles;
pub mod rules;
pub mod runbook;
pub mod runbook_tests;
pub mod server;
pub mod silence;
pub mod sim;
pub mod source;
pub mod store;
pub mod tsdb;
pub mod validate;
pub mod watcher;
