//! Reloading alert rules, runbooks and checklists while the bot runs: on
//! SIGHUP, and when the files under the config's rule and runbook paths
//! change (checked every [`POLL`]).
//!
//! A new version is read and validated whole, exactly as at start. With
//! any error it is refused: every error is logged and posted to chat, and
//! the running version stays. A good version goes to its owners through
//! their queues: rule groups to the watcher (which keeps the state of the
//! rules that stay), runbooks to the control loop's dispatcher, checklists
//! with the runbooks they test to the checklist runner, and both to what
//! chat commands read. Runs in flight finish on the version they started
//! with. The config file itself is not reloaded: its changes (sources,
//! targets, secrets, chat) need a restart, and say so.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::chat::{ChatMessage, Kind, Outbox};
use crate::clock::Clock;
use crate::config::Config;
use crate::diag::Diagnostics;
use crate::rules::RuleGroup;

/// How often the files are checked for changes.
pub const POLL: Duration = Duration::from_secs(2);

/// Errors shown in chat for a refused version; the log has them all.
const CHAT_ERRORS: usize = 10;

use crate::load::{Files, check};

/// Where a good version goes.
pub struct Owners {
    pub rules: mpsc::Sender<Vec<RuleGroup>>,
    pub control: mpsc::Sender<crate::control::Command>,
    pub checklists: mpsc::Sender<crate::preflight::task::Request>,
    pub ctx: Arc<crate::command::Ctx>,
}

/// Asks for a reload; see [`Reloader::run`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Trigger(mpsc::Sender<String>);

impl Trigger {
    /// Asks for a reload, saying why (for the log and chat). When one is
    /// already waiting this one joins it: the reload reads the files as
    /// they are when it runs.
    pub fn reload(&self, why: &str) {
        let _ = self.0.try_send(why.to_owned());
    }
}

/// The reload task: waits for a trigger or a change on disk, then reads,
/// validates and hands a good version to its owners.
pub struct Reloader {
    pub config: Config,
    pub owners: Owners,
    pub outbox: Outbox,
    pub clock: Clock,
    /// How often files are checked; `None` reloads on triggers only.
    pub poll: Option<Duration>,
    /// The files the running version was loaded from.
    pub running: u64,
}

/// One trigger waits; more join it (see [`Trigger::reload`]).
pub fn trigger() -> (Trigger, mpsc::Receiver<String>) {
    let (tx, rx) = mpsc::channel(1);
    (Trigger(tx), rx)
}

/// What one reload attempt came to.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// The files are what is running; nothing to do.
    Unchanged,
    Applied {
        rule_groups: usize,
        runbooks: usize,
        checklists: usize,
    },
    /// Refused with this many errors; the running version stays.
    Refused(usize),
}

impl Reloader {
    pub async fn run(mut self, mut triggers: mpsc::Receiver<String>, shutdown: CancellationToken) {
        // A refused version is said once, not at every poll until fixed.
        let mut refused: Option<u64> = None;
        loop {
            let why = tokio::select! {
                _ = shutdown.cancelled() => return,
                t = triggers.recv() => match t {
                    Some(why) => Some(why),
                    None => return,
                },
                _ = poll(self.poll) => None,
            };
            let config = self.config.clone();
            let Ok((files, read_errors)) =
                tokio::task::spawn_blocking(move || Files::read(&config)).await
            else {
                continue;
            };
            let fp = files.fingerprint();
            let asked = why.is_some();
            if !asked && (fp == self.running || refused == Some(fp)) {
                continue;
            }
            let why = why.unwrap_or_else(|| "files changed".to_owned());
            match self.apply(&files, read_errors, &why).await {
                Outcome::Refused(_) => refused = Some(fp),
                _ => {
                    refused = None;
                    self.running = fp;
                }
            }
        }
    }

    /// Validates `files` and, if good, hands them to the owners.
    pub async fn apply(&mut self, files: &Files, read_errors: Diagnostics, why: &str) -> Outcome {
        // Reading and checking a version is file I/O and parsing of text
        // anyone with write access to the rule paths controls: off the
        // runtime's workers.
        let (config, version) = (self.config.clone(), files.clone());
        let checked = tokio::task::spawn_blocking(move || check(&config, &version, read_errors))
            .await
            .unwrap_or_else(|e| {
                let mut d = Diagnostics::new();
                d.push(crate::diag::Diagnostic::new(
                    "(reload)",
                    None,
                    "",
                    format!("checking the new version failed: {e}"),
                ));
                Err(d)
            });
        let loaded = match checked {
            Ok(l) => l,
            Err(errs) => {
                for d in errs.iter() {
                    tracing::error!(error = %d, "reload refused");
                }
                tracing::error!(errors = errs.len(), %why, "reload refused; still running the previous rules, runbooks and checklists");
                crate::metrics::get().reload_successful.with(&[]).set(0.0);
                self.say(refusal_text(why, &errs)).await;
                return Outcome::Refused(errs.len());
            }
        };
        let warnings = loaded.log_warnings(why);
        let out = Outcome::Applied {
            rule_groups: loaded.rule_groups.len(),
            runbooks: loaded.runbooks.len(),
            checklists: loaded.checklists.len(),
        };
        let o = &self.owners;
        // Each owner's queue is waited on rather than a version missed: a
        // reload is rare and the queues drain quickly. Runbooks are in
        // place before the rules change, so an alert of a new rule finds
        // the runbook that came with it.
        let (reply, placed) = tokio::sync::oneshot::channel();
        let sent = o
            .control
            .send(crate::control::Command::Reload {
                runbooks: loaded.runbooks.clone(),
                reply,
            })
            .await
            .is_ok()
            && placed.await.is_ok()
            && o.rules.send(loaded.rule_groups).await.is_ok()
            && o.checklists
                .send(crate::preflight::task::Request::Reload {
                    lists: loaded.checklists.clone(),
                    runbooks: loaded.runbooks.clone(),
                    runbook_tests: loaded.runbook_tests,
                })
                .await
                .is_ok();
        if !sent {
            // Only at shutdown are the owners gone.
            tracing::warn!("reload not applied: the bot is shutting down");
            return Outcome::Unchanged;
        }
        o.ctx.runbooks.set(loaded.runbooks);
        o.ctx.checklists.set(loaded.checklists);
        loaded_now(self.clock.now());
        if let Outcome::Applied {
            rule_groups,
            runbooks,
            checklists,
        } = &out
        {
            tracing::info!(%why, rule_groups, runbooks, checklists, warnings, "reloaded");
            let warned = if warnings > 0 {
                format!("; {warnings} warning(s), listed by `firebreak validate` and in the log")
            } else {
                String::new()
            };
            self.say(format!(
                "🔄 reloaded ({why}): {rule_groups} rule group(s), {runbooks} runbook(s), {checklists} checklist(s){warned}"
            ))
            .await;
        }
        out
    }

    async fn say(&self, text: String) {
        let msg = ChatMessage {
            channel: self.config.chat.channel.clone(),
            kind: Kind::Note,
            text,
            at: self.clock.now(),
            ..Default::default()
        };
        if let Err(e) = self.outbox.post(&msg).await {
            tracing::error!(error = %e, "cannot queue the reload message");
        }
    }
}

/// Rules, runbooks and checklists were (re)loaded at `now`:
/// `firebreak_config_last_reload_successful` and its timestamp.
pub fn loaded_now(now: crate::clock::Millis) {
    let m = crate::metrics::get();
    m.reload_successful.with(&[]).set(1.0);
    m.reload_success_at.with(&[]).set(now as f64 / 1000.0);
}

/// What chat hears about a refused version.
pub fn refusal_text(why: &str, errs: &Diagnostics) -> String {
    let mut s = format!(
        "⚠️ reload refused ({why}): {} error(s); still running the previous rules, runbooks and checklists. Fix them (`firebreak validate` shows them all):",
        errs.len()
    );
    for d in errs.iter().take(CHAT_ERRORS) {
        s.push_str(&format!("\n• {d}"));
    }
    if errs.len() > CHAT_ERRORS {
        s.push_str(&format!(
            "\n… and {} more in the log",
            errs.len() - CHAT_ERRORS
        ));
    }
    s
}

async fn poll(every: Option<Duration>) {
    match every {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Command;
    use crate::diag::Diagnostic;
    use crate::load::Shared;
    use crate::preflight::task::Request;
    use crate::store::Store;

    const RULES: &str =
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: vector(1)\n";
    const RUNBOOK: &str = "kind: runbook\nname: r\ntrigger:\n  alerts: [{alertname: A}]\nsteps:\n  - {id: say, action: chat, with: {text: hi}}\n";

    struct Rig {
        reloader: Reloader,
        store: Store,
        rules: mpsc::Receiver<Vec<RuleGroup>>,
        control: mpsc::Receiver<Command>,
        checklists: mpsc::Receiver<Request>,
        ctx: Arc<crate::command::Ctx>,
    }

    async fn rig() -> Rig {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let clock = Clock::manual(1_000);
        let (rules_tx, rules) = mpsc::channel(1);
        let (control_tx, control) = mpsc::channel(4);
        let (checklists_tx, checklists) = mpsc::channel(4);
        let ctx = Arc::new(crate::command::Ctx {
            control: control_tx.clone(),
            runbooks: Default::default(),
            checklists: Default::default(),
            targets: Default::default(),
            store: store.clone(),
            clock: clock.clone(),
            offset: chrono::FixedOffset::east_opt(0).unwrap(),
            zone: "UTC".into(),
        });
        let reloader = Reloader {
            config: Config::for_simulator("127.0.0.1:9100"),
            owners: Owners {
                rules: rules_tx,
                control: control_tx,
                checklists: checklists_tx,
                ctx: ctx.clone(),
            },
            outbox: Outbox::new(store.clone()),
            clock,
            poll: None,
            running: 0,
        };
        Rig {
            reloader,
            store,
            rules,
            control,
            checklists,
            ctx,
        }
    }

    fn files(rules: &str) -> Files {
        Files {
            alerts: vec![("alerts/a.yml".into(), rules.into())],
            runbooks: vec![("runbooks/r.yaml".into(), RUNBOOK.into())],
            absent: Vec::new(),
        }
    }

    async fn said(store: &Store) -> Vec<String> {
        crate::chat::pending_texts(store, 10).await
    }

    #[tokio::test]
    async fn a_bad_version_is_refused_whole_and_said_with_its_locations() {
        let mut r = rig().await;
        let bad = RULES.replace("vector(1)", "vector(1");
        let out = r
            .reloader
            .apply(&files(&bad), Diagnostics::new(), "SIGHUP")
            .await;
        assert_eq!(out, Outcome::Refused(1));
        // Nothing reached an owner: not even the good runbook.
        assert!(r.rules.try_recv().is_err());
        assert!(r.control.try_recv().is_err());
        assert!(r.checklists.try_recv().is_err());
        assert!(r.ctx.runbooks.get().is_empty());
        let said = said(&r.store).await;
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].starts_with("⚠️ reload refused (SIGHUP): 1 error(s); still running the previous rules, runbooks and checklists."),
            "{}",
            said[0]
        );
        assert!(said[0].contains("\n• alerts/a.yml:5:21: groups[0].rules[0].expr: invalid PromQL: unclosed left parenthesis"), "{}", said[0]);
    }

    /// Regression: a rule nested thousands of levels deep aborted the whole
    /// bot in a reload. It is refused like any other bad version.
    #[tokio::test]
    async fn a_rule_nested_too_deep_is_refused_and_the_bot_goes_on() {
        let mut r = rig().await;
        let deep = format!("{}vector(1){}", "(".repeat(4000), ")".repeat(4000));
        let out = r
            .reloader
            .apply(
                &files(&RULES.replace("vector(1)", &deep)),
                Diagnostics::new(),
                "files changed",
            )
            .await;
        assert_eq!(out, Outcome::Refused(1));
        assert!(r.rules.try_recv().is_err());
        let said = said(&r.store).await;
        assert!(
            said[0].contains("groups[0].rules[0].expr: invalid PromQL: expression nests too deep"),
            "{}",
            said[0]
        );
    }

    /// A version with warnings runs, and says how many, so they are not
    /// seen only by whoever runs `firebreak validate`.
    #[tokio::test]
    async fn a_version_with_warnings_is_applied_and_says_so() {
        let mut r = rig().await;
        let mut control = r.control;
        tokio::spawn(async move {
            if let Some(Command::Reload { reply, .. }) = control.recv().await {
                let _ = reply.send(());
            }
        });
        let mut f = files(RULES);
        f.runbooks[0].1 = RUNBOOK.replace(
            "- {id: say, action: chat, with: {text: hi}}",
            "- {id: q, action: query, with: {expr: 'up{job=\"{{ alert.labels.job }}\"}'}}",
        );
        let out = r.reloader.apply(&f, Diagnostics::new(), "SIGHUP").await;
        assert!(matches!(out, Outcome::Applied { .. }), "{out:?}");
        let said = said(&r.store).await;
        assert!(
            said[0].ends_with("; 1 warning(s), listed by `firebreak validate` and in the log"),
            "{said:?}"
        );
        drop(r.rules.try_recv());
    }

    #[tokio::test]
    async fn a_good_version_reaches_every_owner_runbooks_first() {
        let mut r = rig().await;
        // The control loop answers once the runbooks are in place; only
        // then may the rules go to the watcher.
        let mut control = r.control;
        let answered = tokio::spawn(async move {
            match control.recv().await {
                Some(Command::Reload { runbooks, reply }) => {
                    let names: Vec<String> = runbooks.iter().map(|r| r.name.clone()).collect();
                    reply.send(()).unwrap();
                    names
                }
                _ => panic!("expected a reload"),
            }
        });
        let out = r
            .reloader
            .apply(&files(RULES), Diagnostics::new(), "files changed")
            .await;
        assert_eq!(
            out,
            Outcome::Applied {
                rule_groups: 1,
                runbooks: 1,
                checklists: 0
            }
        );
        assert_eq!(answered.await.unwrap(), ["r"]);
        assert_eq!(r.rules.try_recv().unwrap()[0].name, "g");
        assert!(matches!(
            r.checklists.try_recv().unwrap(),
            Request::Reload { lists, runbooks, .. } if lists.is_empty() && runbooks.len() == 1
        ));
        assert_eq!(r.ctx.runbooks.get()[0].name, "r");
        assert_eq!(
            said(&r.store).await,
            ["🔄 reloaded (files changed): 1 rule group(s), 1 runbook(s), 0 checklist(s)"]
        );
    }

    #[test]
    fn a_read_error_refuses_the_version_and_long_lists_are_cut_in_chat() {
        let config = Config::for_simulator("127.0.0.1:9100");
        let mut read = Diagnostics::new();
        read.push(Diagnostic::new(
            "alerts",
            None,
            "",
            "cannot read directory: denied",
        ));
        assert!(check(&config, &files(RULES), read).is_err());

        let mut many = Diagnostics::new();
        for i in 0..12 {
            many.push(Diagnostic::new(format!("f{i}.yml"), None, "x", "bad"));
        }
        let text = refusal_text("SIGHUP", &many);
        assert_eq!(text.lines().count(), 1 + CHAT_ERRORS + 1, "{text}");
        assert!(text.ends_with("… and 2 more in the log"), "{text}");
    }

    #[test]
    fn the_fingerprint_follows_names_and_texts() {
        let a = files(RULES);
        let mut b = a.clone();
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.alerts[0].1.push('\n');
        assert_ne!(a.fingerprint(), b.fingerprint());
        let mut c = a.clone();
        c.alerts[0].0 = "alerts/b.yml".into();
        assert_ne!(a.fingerprint(), c.fingerprint());
    }

    #[test]
    fn readers_keep_the_version_they_took() {
        let s = Shared::new(vec![1]);
        let taken = s.get();
        s.set(vec![2]);
        assert_eq!(*taken, [1]);
        assert_eq!(*s.get(), [2]);
        assert_eq!(*s.clone().get(), [2]);
    }
}
