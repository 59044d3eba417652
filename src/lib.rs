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
//! The modules come in three layers, and imports only go down them:
//! edges and tasks import the model, the wiring imports both, and nothing
//! imports the wiring. No two top-level modules import each other, even
//! through others, and a module marked `(model)` below names no I/O crate
//! and imports only the model: `cargo test --test it layering` checks both
//! (`-- --nocapture` prints the import graph).
//!
//! ## Model: no I/O, no clock (`now` is an argument)
//! - [`duration`] (model): Prometheus-style durations, and [`duration::Millis`],
//!   the crate's instant.
//! - [`diag`] (model): located diagnostics (`file:line:col: field: message`).
//! - [`labels`] (model): label sets, fingerprints and the crate's one
//!   stable hash (FNV-1a).
//! - [`human`] (model): numbers, durations and long names as people read them.
//! - [`limits`] (model): bounds on outside data (pushed alerts, rendered PromQL).
//! - [`matchers`] (model): Alertmanager label matchers.
//! - [`roles`] (model): viewer, responder, commander: what a person may do.
//! - [`tsdb`] (model): the in-memory window of samples the rules need.
//! - [`promql`] (model): evaluates PromQL over the series store.
//! - [`rules`] (model): Prometheus rule files, alert templates, alert state;
//!   `rules::pushed` turns pushed alerts into the same transitions;
//!   `rules::unittest` runs promtool-format rule tests (`firebreak test rules`).
//! - [`runbook`] (model): runbook files and their validation, templates,
//!   runbooks that call runbooks (`runbook::calls`); `runbook::spec` is
//!   what the model knows of an action (the executor's actions implement
//!   it); `runbook::plan` says what a run would do (`firebreak plan`);
//!   `runbook::testfile` is the runbook test format and its comparison.
//! - [`dispatch`] (model): which runbook starts for which alert, and policy.
//! - [`silence`] (model): Alertmanager-style silences the control loop consults.
//! - [`checklist`] (model): pre-event checklists, their validation, what
//!   each check concludes (`checklist::judge`), a run as it unfolds with
//!   its sign-offs (`checklist::state`), the GO / NO-GO verdict and how a
//!   run reads (`checklist::report`).
//! - [`sight`] (model): what the bot can and cannot see (sources, rules,
//!   pushed alerts, chat), when a loss is said and when its recovery.
//! - [`run_state`] (model): the states of a run and of its steps, as the
//!   store keeps them and the API and chat show them.
//! - [`timeline`] (model): an incident's timeline as data: each entry's
//!   kind, who did it (by user id), what it is about (alert, runbook, run,
//!   step, outcome); its text is for people and never read back.
//! - [`incident`] (model): one incident read from its timeline's fields:
//!   time to detect, mitigate and resolve, who did what, the
//!   post-incident report (`firebreak timeline`).
//! - [`rehearse`] (model): a scenario's expectations (`expect:`), what one
//!   rehearsal measured, and the PASS/FAIL verdict with its reasons.
//! - [`config`] (model): the config file, its defaults and its checks
//!   (secrets are named here and read by [`secrets`]).
//!
//! ## Edges and tasks: the flow, in order
//! - [`clock`] (I/O): real, scaled or manual time, for the tasks.
//! - [`source`] (I/O): scrape tasks; Prometheus exposition behind one
//!   parser interface; `source::alertmanager` reads alerts pushed by
//!   Alertmanager's webhook and Prometheus.
//! - [`watcher`] (task): owns the series store and the rule engine.
//! - [`api`] (I/O): the HTTP API: pushed alerts into the watcher's queue,
//!   JSON reads, health, `/metrics`; `api::console` is the web console
//!   (HTML pages, sign-in with per-person tokens, commands sent as the
//!   signed-in person through [`command`]).
//! - [`server`] (I/O): the bot's HTTP listener (`server.listen`).
//! - [`inbound`] (I/O): what people send from Slack (slash commands,
//!   buttons, mentions; over HTTP with signatures checked, or Socket
//!   Mode), turned into commands.
//! - [`command`] (edge): the chat and CLI command grammar, one file per
//!   command; roles are checked here and refusals recorded; commands go
//!   to the control queue; `command::console_input` reads the terminal.
//! - [`control`] (task): the one owner of run state; alerts, run ends and
//!   commands meet here. It owns silences, which a `silence` step asks
//!   for through a narrow trait.
//! - [`audience`] (task): measures each open incident's audience (listening,
//!   at risk, had nobody acted) for its card and the review.
//! - [`preflight`] (I/O): runs checklists: measures each check within its
//!   time limit (`firebreak check`), and in the daemon owns chat runs,
//!   sign-offs, schedules and their records (`preflight::task`).
//! - [`executor`] (I/O): runs a runbook's steps through its actions
//!   (`executor::actions`, one file each, one registry line).
//! - [`chat`] (I/O at the adapters): messages, the durable outbox (order
//!   per channel, pacing, retries, threads, storm coalescing), adapters:
//!   `chat::console` (the terminal) and `chat::slack` (Slack's Web API);
//!   `chat::card` is the incident card and `chat::blocks` its Block Kit
//!   rendering; `chat::mrkdwn` encodes outside data for Slack and the
//!   terminal.
//! - [`store`] (I/O): runs, steps, alerts, the incident timeline, the
//!   outbox; its schema is versioned and upgraded in place at open; on
//!   PostgreSQL, the leader lease and the fence on a leader's writes.
//! - [`secrets`] (I/O): reads a secret when something needs it.
//! - [`net`] (I/O): the HTTP client and TLS provider setup.
//! - [`metrics`] (I/O): the bot's own metrics, one registry per process.
//!
//! ## Wiring and the CLI's verbs
//! The command line itself is the binary: `main.rs` holds the grammar,
//! and `src/cli/` has one file per verb, each calling into these.
//! - [`load`] (I/O): reads and validates config, rules, runbooks and
//!   checklists together, exactly as a reload does; the one place the
//!   executor's actions and the embedded scenario's ids are handed to the
//!   runbook checks.
//! - [`embedded`]: the shipped rules and runbooks, compiled in.
//! - [`reload`] (task): rules, runbooks and checklists reloaded on SIGHUP
//!   or when their files change; a bad version is refused, loudly.
//! - [`daemon`] (I/O): wires the flow; what `firebreak run` runs.
//! - [`replica`] (task): `firebreak run` on PostgreSQL: follows until it
//!   takes the leader lease (`store::Fence`), then leads with the whole
//!   daemon on a fenced store, and demotes itself before the lease can
//!   expire; [`front`] is what its one listener serves meanwhile and
//!   whether it leads.
//! - [`validate`]: `firebreak validate`, every error with its location.
//! - [`stub_runs`] (I/O): `firebreak test runbooks`: runbook tests run by
//!   the real executor against stub targets, on a manual clock.
//! - [`demo`]: `firebreak demo`: the simulator plus the daemon, replaying
//!   2023-05-24; `demo::play` plays any scenario for `firebreak rehearse`.
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
pub mod front;
pub mod human;
pub mod inbound;
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
pub mod replica;
pub mod roles;
pub mod rules;
pub mod run_state;
pub mod runbook;
pub mod secrets;
pub mod server;
pub mod sight;
pub mod silence;
pub mod sim;
pub mod source;
pub mod store;
pub mod stub_runs;
pub mod timeline;
pub mod tsdb;
pub mod validate;
pub mod watcher;
