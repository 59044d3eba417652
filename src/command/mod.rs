//! Chat commands: one grammar for Slack and the console.
//!
//! A line of text becomes a [`Reply`] in four steps, all in [`handle`]:
//! 1. split into words ([`tokenize`]): `"..."` keeps spaces together;
//! 2. the first word names a command in [`COMMANDS`] (did-you-mean if not);
//! 3. the person's role must reach the command's; a refusal says why and
//!    is recorded through the control loop ([`control::Command::Refused`]);
//! 4. the command's own file parses the rest (pure, no I/O) into a request
//!    that executes against a [`Ctx`]: changes go through the control
//!    queue, reads come from the store and the loaded runbooks.
//!
//! The edges (Slack, the console) resolve who is asking into an [`Actor`]
//! first ([`actor_for`]); nothing here knows where the text came from.
//!
//! One command is one file here, with its grammar, minimum role, execution
//! and tests, and one line in [`COMMANDS`].

pub mod abort;
pub mod ack;
pub mod alerts;
pub mod approve;
pub mod checklist;
pub mod console_input;
pub mod help;
pub mod pause;
pub mod plan;
pub mod resume;
pub mod run;
pub mod signoff;
pub mod silence;
pub mod status;
pub mod timeline;
pub mod unsilence;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{FixedOffset, TimeZone};
use tokio::sync::{mpsc, oneshot};

use crate::clock::{Clock, Millis};
use crate::control::{self, Command};
use crate::diag::did_you_mean;
use crate::roles::{Role, RoleMap};
use crate::runbook::Runbook;
use crate::store::Store;

/// The registry: every command, in the order `help` lists them.
pub const COMMANDS: &[&Spec] = &[
    &help::SPEC,
    &status::SPEC,
    &alerts::SPEC,
    &ack::SPEC,
    &silence::SPEC,
    &unsilence::SPEC,
    &run::SPEC,
    &plan::SPEC,
    &approve::APPROVE,
    &approve::DENY,
    &abort::SPEC,
    &pause::SPEC,
    &resume::SPEC,
    &checklist::SPEC,
    &signoff::SPEC,
    &timeline::SPEC,
];

/// How long a command waits for the control loop to take it and to
/// answer. The loop answers in milliseconds unless it is stuck behind a
/// store that does not answer; then the person hears so instead of
/// waiting forever.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// Who is asking, resolved at the edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The chat user id (Slack `U...`), or [`crate::roles::CONSOLE_USER`].
    pub id: String,
    /// How the bot names them in chat and the timeline.
    pub name: String,
    pub role: Role,
}

impl Actor {
    /// The person, for whatever compares ids (a gate's `users`).
    pub fn who(&self) -> crate::roles::Who {
        crate::roles::Who::new(self.id.clone(), self.name.clone())
    }

    /// How records and chat name them: `ana (U024BE7LH)`.
    pub fn label(&self) -> String {
        self.who().label()
    }

    /// The person at the terminal: a commander (see
    /// [`crate::roles::CONSOLE_USER`]), named after the login.
    pub fn console() -> Actor {
        let name = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| crate::roles::CONSOLE_USER.to_owned());
        Actor {
            id: crate::roles::CONSOLE_USER.to_owned(),
            name,
            role: Role::Commander,
        }
    }
}

/// What someone with no role at all is told, and what their refusal
/// records.
pub const NO_ROLE: &str = "you have no firebreak role here, so it cannot take commands from you; ask whoever runs it to add you under `chat.roles` in its config (by your Slack member id)";

/// The actor for a chat user in `groups`, or the reply for someone the
/// config gives no role at all. `id` decides; `name` is only shown.
pub fn actor_for(roles: &RoleMap, id: &str, name: &str, groups: &[String]) -> Result<Actor, Reply> {
    match roles.resolve(id, groups) {
        Some(role) => Ok(Actor {
            id: id.to_owned(),
            name: name.to_owned(),
            role,
        }),
        None => Err(Reply::private(NO_ROLE)),
    }
}

/// Who sees a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Only the person who asked (Slack ephemeral message).
    Ephemeral,
    /// Everyone in the channel.
    Channel,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    pub visibility: Visibility,
}

impl Reply {
    pub fn private(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            visibility: Visibility::Ephemeral,
        }
    }

    pub fn channel(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            visibility: Visibility::Channel,
        }
    }
}

/// What commands run against: the control queue for changes, read-only
/// data for the rest.
#[derive(Clone)]
pub struct Ctx {
    pub control: mpsc::Sender<Command>,
    /// The loaded runbooks, for plans; a reload replaces them.
    pub runbooks: crate::load::Shared<Vec<Arc<Runbook>>>,
    /// The loaded checklists, for `checklist` to list; a reload replaces
    /// them.
    pub checklists: crate::load::Shared<Vec<Arc<crate::checklist::Checklist>>>,
    /// Target name -> base URL, for plans.
    pub targets: BTreeMap<String, String>,
    pub store: Store,
    pub clock: Clock,
    /// Where clock times are shown (the demo shows US Eastern).
    pub offset: FixedOffset,
    pub zone: String,
}

/// Why the control loop gave no answer (the command may not have been
/// taken at all).
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Unanswered {
    #[error("the bot is shutting down; try again when it is back")]
    ShuttingDown,
    #[error("the bot's command queue stayed full for {}s; try again", .0.as_secs())]
    QueueFull(std::time::Duration),
    #[error("the bot did not answer within {}s; it may be overloaded. Try again", .0.as_secs())]
    NoAnswer(std::time::Duration),
}

impl Ctx {
    /// Sends a command that answers on a oneshot, and waits for the
    /// answer.
    pub async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Unanswered> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await?;
        match tokio::time::timeout(CONTROL_TIMEOUT, rx).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(_)) => Err(Unanswered::ShuttingDown),
            Err(_) => Err(Unanswered::NoAnswer(CONTROL_TIMEOUT)),
        }
    }

    /// Puts a command on the control queue (bounded: when it is full this
    /// waits, up to [`CONTROL_TIMEOUT`]).
    pub async fn send(&self, c: Command) -> Result<(), Unanswered> {
        match tokio::time::timeout(CONTROL_TIMEOUT, self.control.send(c)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Unanswered::ShuttingDown),
            Err(_) => Err(Unanswered::QueueFull(CONTROL_TIMEOUT)),
        }
    }

    pub async fn status(&self) -> Result<control::Status, Unanswered> {
        self.ask(Command::Status).await
    }

    /// A clock time as people read it: `18:03:05 ET`.
    pub fn time(&self, at: Millis) -> String {
        self.offset.timestamp_millis_opt(at).single().map_or_else(
            || "??:??:??".to_owned(),
            |t| format!("{} {}", t.format("%H:%M:%S"), self.zone),
        )
    }
}

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A parsed request, ready to run.
pub trait Execute: Send + std::fmt::Debug {
    fn execute<'a>(self: Box<Self>, ctx: &'a Ctx, actor: &'a Actor) -> BoxFut<'a, Reply>;
}

/// One command of the grammar.
pub struct Spec {
    pub name: &'static str,
    /// The arguments, as the usage line shows them.
    pub args: &'static str,
    /// The lowest role that may use it.
    pub role: Role,
    pub about: &'static str,
    pub example: &'static str,
    /// The `--flags` it takes.
    pub flags: &'static [&'static str],
    pub parse: fn(Args) -> Result<Box<dyn Execute>, String>,
}

impl Spec {
    pub fn usage(&self) -> String {
        if self.args.is_empty() {
            format!("usage: {}", self.name)
        } else {
            format!("usage: {} {}", self.name, self.args)
        }
    }
}

/// The command called `name` (any case).
pub fn find(name: &str) -> Option<&'static Spec> {
    COMMANDS
        .iter()
        .copied()
        .find(|s| s.name.eq_ignore_ascii_case(name))
}

fn names() -> Vec<&'static str> {
    COMMANDS.iter().map(|s| s.name).collect()
}

/// One word of a command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    /// The whole word was in quotes: it is never a flag.
    pub quoted: bool,
}

/// Splits a line into words. A word wholly in double quotes loses them
/// and keeps its spaces (`"moving rooms"`); quotes inside a word group
/// spaces too but stay, since matchers need them (`room="main hall"`).
/// Slack turns typed quotes into curly ones, so those count as quotes.
pub fn tokenize(line: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = line
        .chars()
        .map(|c| match c {
            '\u{201c}' | '\u{201d}' => '"',
            c => c,
        })
        .peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return Ok(out);
        };
        if first == '"' {
            chars.next();
            let mut text = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("unclosed quote in `\"{text}`; close it with \"")),
                    Some('\\') => match chars.next() {
                        Some(c) => text.push(c),
                        None => return Err("a \\ at the end of the line escapes nothing".into()),
                    },
                    Some('"') => break,
                    Some(c) => text.push(c),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err(format!("put a space after the closing quote of \"{text}\""));
            }
            out.push(Token { text, quoted: true });
            continue;
        }
        let mut text = String::new();
        let mut in_quote = false;
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() && !in_quote {
                break;
            }
            chars.next();
            text.push(c);
            match c {
                '"' => in_quote = !in_quote,
                '\\' if in_quote => {
                    if let Some(n) = chars.next() {
                        text.push(n);
                    }
                }
                _ => {}
            }
        }
        if in_quote {
            return Err(format!("unclosed quote in `{text}`; close it with \""));
        }
        out.push(Token {
            text,
            quoted: false,
        });
    }
}

/// A command's arguments, after the command word and its flags.
#[derive(Debug)]
pub struct Args {
    words: std::collections::VecDeque<Token>,
    flags: Vec<String>,
}

impl Args {
    /// Splits flags (`--x`, unquoted) from the other words.
    pub fn new(tokens: Vec<Token>) -> Args {
        let (flags, words): (Vec<Token>, Vec<Token>) = tokens
            .into_iter()
            .partition(|t| !t.quoted && t.text.starts_with("--"));
        Args {
            words: words.into(),
            flags: flags.into_iter().map(|t| t.text).collect(),
        }
    }

    /// For tests: the words of `line`.
    pub fn of(line: &str) -> Args {
        Args::new(tokenize(line).expect("test line tokenizes"))
    }

    pub fn word(&mut self) -> Option<Token> {
        self.words.pop_front()
    }

    /// The next word, or an error naming what was expected.
    pub fn required(&mut self, what: &str) -> Result<String, String> {
        self.word()
            .map(|t| t.text)
            .ok_or_else(|| format!("missing {what}"))
    }

    /// Every word left, joined by spaces (a reason, a comment).
    pub fn rest(&mut self) -> String {
        let words: Vec<String> = self.words.drain(..).map(|t| t.text).collect();
        words.join(" ")
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    /// Fails on words left over.
    pub fn finish(self) -> Result<(), String> {
        match self.words.front() {
            None => Ok(()),
            Some(t) => Err(format!("unexpected `{}`", t.text)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

/// ` (did you mean `x`?)` when one of `choices` is close to `got`.
pub fn hint<S: AsRef<str>>(got: &str, choices: &[S]) -> String {
    did_you_mean(got, choices)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// Parses and runs one command line for `actor`. This is the one entry
/// point for every edge (Slack, console); the reply says what happened,
/// or what was wrong with the line.
pub async fn handle(ctx: &Ctx, actor: &Actor, line: &str) -> Reply {
    let tokens = match tokenize(line) {
        Ok(t) => t,
        Err(e) => return Reply::private(e),
    };
    let mut tokens = tokens.into_iter();
    let Some(first) = tokens.next() else {
        return Reply::private("type a command, or `help` for the list");
    };
    let Some(spec) = find(&first.text) else {
        count_command("unknown", "error");
        return Reply::private(format!(
            "unknown command `{}`{}; `help` lists them",
            first.text,
            hint(&first.text.to_lowercase(), &names())
        ));
    };
    if actor.role < spec.role {
        count_command(spec.name, "refused");
        let reason = format!(
            "`{}` needs the {} role; you are a {}",
            spec.name, spec.role, actor.role
        );
        record_refusal(ctx, &actor.who(), line, &reason).await;
        return Reply::private(reason);
    }
    let args = Args::new(tokens.collect());
    if let Some(bad) = args
        .flags
        .iter()
        .find(|f| !spec.flags.contains(&f.as_str()))
    {
        let takes = if spec.flags.is_empty() {
            format!("`{}` takes no flags", spec.name)
        } else {
            format!("`{}` takes {}", spec.name, spec.flags.join(", "))
        };
        count_command(spec.name, "error");
        return Reply::private(format!(
            "unknown flag `{bad}`{}; {takes}\n{}",
            hint(bad, spec.flags),
            spec.usage()
        ));
    }
    match (spec.parse)(args) {
        Ok(req) => {
            count_command(spec.name, "ok");
            req.execute(ctx, actor).await
        }
        Err(e) => {
            count_command(spec.name, "error");
            Reply::private(format!("{e}\n{}", spec.usage()))
        }
    }
}

/// Puts a refusal on the control queue, to be recorded on the incident's
/// timeline with who (name and id), what they typed and why. Every edge
/// calls this for every refusal, whether the person's role was too low or
/// they have none: the review needs to see both.
pub async fn record_refusal(ctx: &Ctx, who: &crate::roles::Who, line: &str, reason: &str) {
    // Recorded whether or not the queue takes it: the log has it too.
    if let Err(e) = ctx
        .send(Command::Refused {
            by: who.clone(),
            command: line.trim().to_owned(),
            reason: reason.to_owned(),
        })
        .await
    {
        tracing::warn!(by = %who, command = %line.trim(), %reason, error = %e, "command refused; not recorded on the timeline");
    }
}

/// "ok" is a command that parsed and ran (its reply may still say no,
/// like an unknown run id); "error" did not parse; "refused" was above
/// the person's role.
fn count_command(name: &str, outcome: &str) {
    crate::metrics::get().commands.with(&[name, outcome]).inc();
}

pub use crate::human::span as age;

#[cfg(test)]
pub(crate) mod testing {
    //! A context whose control loop is a recorder: commands are parsed
    //! and executed for real, and the test answers what the loop would.

    use super::*;

    pub const T0: Millis = 1_684_965_785_000;

    pub async fn ctx() -> (Ctx, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(8);
        let store = Store::open("sqlite::memory:").await.unwrap();
        let rb = crate::runbook::parse_runbook(
            "cap.yaml",
            "kind: runbook\nname: cap-listeners\ntrigger:\n  alerts: [{alertname: RoomSaturating}]\n  manual: true\ninputs:\n  room: {type: string, from: alert.labels.room}\n  headroom: {type: number, default: 0.95}\nsteps:\n  - {id: say, action: chat, with: {text: 'capping {{ inputs.room }} at {{ inputs.headroom }}'}}\n",
            &crate::load::check_env([]),
        )
        .unwrap();
        (
            Ctx {
                control: tx,
                runbooks: vec![Arc::new(rb)].into(),
                checklists: Default::default(),
                targets: BTreeMap::new(),
                store,
                clock: Clock::manual(T0),
                offset: FixedOffset::east_opt(0).unwrap(),
                zone: "UTC".into(),
            },
            rx,
        )
    }

    pub fn actor(role: Role) -> Actor {
        Actor {
            id: "U1".into(),
            name: "alice".into(),
            role,
        }
    }

    pub fn empty_status() -> control::Status {
        control::Status::default()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn words_quotes_and_key_values() {
        let t = |s: &str| -> Vec<(String, bool)> {
            tokenize(s)
                .unwrap()
                .into_iter()
                .map(|t| (t.text, t.quoted))
                .collect()
        };
        assert_eq!(
            t(r#"silence room="main hall" 2h "moving rooms""#),
            vec![
                ("silence".into(), false),
                ("room=\"main hall\"".into(), false),
                ("2h".into(), false),
                ("moving rooms".into(), true),
            ]
        );
        assert_eq!(t("  pause   "), vec![("pause".into(), false)]);
        assert_eq!(t("pause \u{201c}a b\u{201d}"), t("pause \"a b\""));
        assert_eq!(t(r#"x "say \"hi\"""#)[1].0, "say \"hi\"");
        assert!(
            tokenize("pause \"oops")
                .unwrap_err()
                .contains("unclosed quote")
        );
        assert!(
            tokenize("run x room=\"a")
                .unwrap_err()
                .contains("unclosed quote")
        );
        assert!(tokenize("\"a\"b").unwrap_err().contains("space after"));
    }

    #[test]
    fn every_command_is_registered_once_with_a_usage() {
        let mut seen = std::collections::BTreeSet::new();
        for s in COMMANDS {
            assert!(seen.insert(s.name), "{} twice", s.name);
            assert!(s.usage().starts_with(&format!("usage: {}", s.name)));
            assert!(s.example.starts_with(s.name), "{}: {}", s.name, s.example);
        }
        assert_eq!(COMMANDS.len(), 16);
    }

    #[tokio::test]
    async fn unknown_commands_and_flags_get_a_did_you_mean() {
        let counted = |c: &str, o: &str| crate::metrics::get().commands.with(&[c, o]).get();
        let (unknown, bad_flag) = (counted("unknown", "error"), counted("pause", "error"));
        let (ctx, _rx) = ctx().await;
        let me = actor(Role::Commander);
        let r = handle(&ctx, &me, "stauts").await;
        assert_eq!(r.visibility, Visibility::Ephemeral);
        assert_eq!(
            r.text,
            "unknown command `stauts` (did you mean `status`?); `help` lists them"
        );
        let r = handle(&ctx, &me, "frobnicate").await;
        assert_eq!(r.text, "unknown command `frobnicate`; `help` lists them");
        let r = handle(&ctx, &me, "run cap-listeners room=main --dryrun").await;
        assert_eq!(
            r.text,
            "unknown flag `--dryrun` (did you mean `--dry-run`?); `run` takes --dry-run\nusage: run RUNBOOK [NAME=VALUE...] [--dry-run]"
        );
        let r = handle(&ctx, &me, "pause --now").await;
        assert!(
            r.text
                .starts_with("unknown flag `--now`; `pause` takes no flags"),
            "{}",
            r.text
        );
        assert_eq!(
            handle(&ctx, &me, "   ").await.text,
            "type a command, or `help` for the list"
        );
        // Any case: phones capitalise the first word.
        assert!(handle(&ctx, &me, "Help").await.text.contains("status"));
        assert!(counted("unknown", "error") >= unknown + 2);
        assert!(counted("pause", "error") > bad_flag);
    }

    #[tokio::test]
    async fn a_refusal_says_why_and_is_recorded() {
        let refused = crate::metrics::get()
            .commands
            .with(&["pause", "refused"])
            .get();
        let (ctx, mut rx) = ctx().await;
        let r = handle(&ctx, &actor(Role::Responder), "pause deploy freeze").await;
        assert_eq!(
            r.text,
            "`pause` needs the commander role; you are a responder"
        );
        assert_eq!(r.visibility, Visibility::Ephemeral);
        assert!(
            crate::metrics::get()
                .commands
                .with(&["pause", "refused"])
                .get()
                > refused
        );
        match rx.try_recv().unwrap() {
            Command::Refused {
                by,
                command,
                reason,
            } => {
                assert_eq!(
                    (by.label().as_str(), command.as_str()),
                    ("alice (U1)", "pause deploy freeze")
                );
                assert_eq!(reason, r.text);
            }
            other => panic!("{other:?}"),
        }
        // The role is checked before the arguments: no usage lecture for
        // a command they may not use anyway.
        let r = handle(&ctx, &actor(Role::Viewer), "silence").await;
        assert_eq!(
            r.text,
            "`silence` needs the responder role; you are a viewer"
        );
    }

    #[test]
    fn actors_come_from_the_role_map() {
        let roles = RoleMap::default();
        assert_eq!(
            actor_for(&roles, "U1", "alice", &[]).unwrap().role,
            Role::Viewer
        );
        let closed = RoleMap {
            viewer: crate::roles::Grant::default(),
            ..RoleMap::default()
        };
        let r = actor_for(&closed, "U1", "alice", &[]).unwrap_err();
        assert!(r.text.contains("no firebreak role"), "{}", r.text);
        assert_eq!(Actor::console().role, Role::Commander);
    }
}
