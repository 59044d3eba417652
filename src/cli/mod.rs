//! The command-line verbs, one file each (`main.rs` has the grammar and
//! hands each verb its arguments). The work itself is in the library:
//! [`firebreak::demo`], [`firebreak::daemon`], [`firebreak::validate`],
//! [`firebreak::preflight`], [`firebreak::stub_runs`], ...

mod check;
mod console_token;
mod files;
mod init;
mod plan;
mod process;
mod rehearse;
mod replica;
mod test;
mod timeline;

pub(crate) use check::{CheckOpts, check};
pub(crate) use console_token::{Action as ConsoleTokenAction, console_token};
pub(crate) use init::init;
pub(crate) use plan::plan;
pub(crate) use process::{cancel_on_signal, init_logging, quiet_on_broken_pipe, reload_on_sighup};
pub(crate) use rehearse::rehearse;
pub(crate) use replica::run_replica;
pub(crate) use test::{test_rules, test_runbooks};
pub(crate) use timeline::{Format as TimelineFormat, timeline};
