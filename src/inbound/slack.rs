//! Slack's inbound side: slash commands, button clicks and mentions of the
//! bot, whether they arrive over HTTP (the app's request URLs, see
//! [`routes`]) or over Socket Mode ([`super::socket`]).
//!
//! Each arrives as a Slack payload and becomes an [`Incoming`] (pure
//! parsing, below); [`Inbound::respond`] then works out who is asking
//! (their user groups come from the Web API, cached), runs the text
//! through the same [`command::handle`] as the console, and answers within
//! Slack's three seconds:
//! - a slash command is answered in its acknowledgement when the command
//!   is quick, else with "working on it" at once and the answer through
//!   the request's `response_url` when it is ready;
//! - a button click is acknowledged at once and answered through
//!   `response_url`, only to the person who clicked (the card itself is
//!   updated by the outbox, for everyone);
//! - a mention (`@firebreak status`) or a direct message is acknowledged at
//!   once and answered in its thread through the outbox, like every
//!   other message the bot posts.
//!
//! Over HTTP, every request's signature is checked ([`super::signature`])
//! before a byte of its body is parsed, and the signatures taken are kept
//! in the store so that no copy is taken again, after a restart or by
//! another replica; a request that fails is refused with 401 and logged,
//! and never reaches a command. Socket Mode needs no signature: the
//! connection itself was opened with the app's token. Event ids are kept
//! the same way, to answer an event Slack redelivers once.
//!
//! Everything in a request is the sender's to choose except what Slack
//! vouches for, so: the person is their user id (their name is only shown,
//! see [`crate::roles::Who`]), and a `response_url` is called only on
//! Slack's hosts ([`ResponseHosts`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chat::slack::TEXT_MAX;

use crate::chat::slack::Slack;
use crate::chat::{ChatMessage, Kind, Outbox};
use crate::clock::Millis;
use crate::command::{self, Ctx, Reply, Visibility};
use crate::roles::RoleMap;

/// Slack waits three seconds for an acknowledgement; this leaves room for
/// the network both ways.
pub const ACK_BUDGET: Duration = Duration::from_secs(2);

/// Slack's payloads are a few kilobytes; anything far bigger is not Slack.
const BODY_MAX: usize = 64 * 1024;

/// How long user group members are trusted before asking Slack again: a
/// person added to the on-call group can act within this long.
const GROUPS_TTL: Duration = Duration::from_secs(300);
/// How soon a failed read of the user groups is tried again.
const GROUPS_RETRY: Duration = Duration::from_secs(10);

/// How long an event id is remembered to drop Slack's redeliveries of one
/// event (Slack retries for up to about an hour).
const EVENT_MEMORY_MS: Millis = 2 * 3600 * 1000;

/// How long a signature is remembered to refuse a request received twice.
/// Slack signs every request afresh (a redelivered event too), so the same
/// signature twice is a copy. A request's timestamp may be up to the
/// replay window either side of now, so after twice the window the
/// timestamp check refuses the copy anyway.
const SIGNATURE_MEMORY_MS: Millis = 2 * super::signature::REPLAY_WINDOW_S * 1000;

/// How often sightings past their time are deleted from the store.
const PRUNE_EVERY_MS: Millis = 60 * 1000;

/// Requests being worked on at once. Past this, a slash command is told
/// the bot is busy and a click or mention is dropped with a warning in the
/// log: the control queue behind them holds 64, and a person retrying in
/// a few seconds beats a pile of answers arriving late.
pub const IN_FLIGHT: usize = 64;

const BUSY: &str = "the bot is answering many requests already; try again in a few seconds";

/// How many times an answer is offered to a `response_url` (Slack allows
/// five uses in thirty minutes).
const RESPONSE_ATTEMPTS: u32 = 3;

/// Someone on Slack.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct User {
    /// Their user id: what roles, gates and sign-offs go by.
    pub id: String,
    /// What the bot calls them, beside the id; the id when the payload has
    /// no name.
    pub name: String,
}

/// The longest name shown for a person; the id beside it says who they
/// are, the name is only a courtesy.
const NAME_MAX: usize = 80;

impl User {
    /// A user from a payload's fields. The id must have Slack's shape
    /// (`U...`): it is the identity everything else trusts, and the
    /// console's own id (`console`) must not be claimable from Slack.
    /// The name is whatever the person set, so it is kept to printable
    /// text without Slack's markup characters (`<!channel>` in a name
    /// would page the channel each time the bot names them).
    fn of(id: String, name: Option<String>) -> Result<User, PayloadError> {
        if !crate::roles::is_user_id(&id) {
            return Err(PayloadError::BadUser(id));
        }
        let name: String = name
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control() && !matches!(c, '<' | '>' | '&'))
            .take(NAME_MAX)
            .collect();
        let name = name.trim();
        Ok(User {
            name: if name.is_empty() {
                id.clone()
            } else {
                name.to_owned()
            },
            id,
        })
    }
}

/// One thing Slack sent, parsed. Serialized only to hand it from a
/// follower to the leader through the store.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
pub enum Incoming {
    /// `/firebreak status`.
    Command {
        user: User,
        text: String,
        response_url: Option<String>,
    },
    /// A button on a card; its value is the command it stands for.
    Button {
        user: User,
        value: String,
        response_url: Option<String>,
    },
    /// `@firebreak status` in a channel, or a direct message to the bot.
    Mention {
        user: User,
        text: String,
        channel: String,
        /// The message to answer under: its thread, or itself.
        thread: String,
        event_id: String,
    },
    /// The Events API checking the request URL.
    UrlVerification { challenge: String },
    /// Understood and deliberately left alone (why, for the log).
    Ignored(String),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("form body: {0}")]
    Form(String),
    #[error("JSON payload: {0}")]
    Json(String),
    #[error("{0}")]
    Missing(&'static str),
    #[error("{0:?} is not a Slack user id")]
    BadUser(String),
}

// Slack adds fields to its payloads over time, so unknown fields are
// ignored here: our own config is strict, another party's payload is not.

#[derive(Deserialize)]
struct RawCommand {
    user_id: String,
    #[serde(default)]
    user_name: Option<String>,
    #[serde(default)]
    text: String,
    #[serde(default)]
    response_url: Option<String>,
}

#[derive(Deserialize)]
struct RawInteraction {
    #[serde(rename = "type")]
    kind: String,
    user: Option<RawUser>,
    #[serde(default)]
    actions: Vec<RawAction>,
    #[serde(default)]
    response_url: Option<String>,
}

#[derive(Deserialize)]
struct RawUser {
    id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawAction {
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    action_id: Option<String>,
}

#[derive(Deserialize)]
struct RawEnvelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    challenge: Option<String>,
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    event: Option<RawEvent>,
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    channel_type: Option<String>,
    #[serde(default)]
    ts: Option<String>,
    #[serde(default)]
    thread_ts: Option<String>,
    #[serde(default)]
    bot_id: Option<String>,
    #[serde(default)]
    subtype: Option<String>,
}

/// A slash command as the HTTP request URL receives it (a form).
pub fn parse_command_form(body: &[u8]) -> Result<Incoming, PayloadError> {
    let raw: RawCommand =
        serde_urlencoded::from_bytes(body).map_err(|e| PayloadError::Form(e.to_string()))?;
    command_of(raw)
}

/// A slash command as Socket Mode delivers it (the same fields, as JSON).
pub fn parse_command_json(payload: &serde_json::Value) -> Result<Incoming, PayloadError> {
    let raw = RawCommand::deserialize(payload).map_err(|e| PayloadError::Json(e.to_string()))?;
    command_of(raw)
}

fn command_of(raw: RawCommand) -> Result<Incoming, PayloadError> {
    Ok(Incoming::Command {
        user: User::of(raw.user_id, raw.user_name)?,
        text: plain_text(&raw.text),
        response_url: raw.response_url,
    })
}

/// An interaction as the HTTP request URL receives it: a form whose
/// `payload` field is the JSON.
pub fn parse_interaction_form(body: &[u8]) -> Result<Incoming, PayloadError> {
    #[derive(Deserialize)]
    struct Form {
        payload: Option<String>,
    }
    let form: Form =
        serde_urlencoded::from_bytes(body).map_err(|e| PayloadError::Form(e.to_string()))?;
    let payload = form
        .payload
        .ok_or(PayloadError::Missing("no `payload` field in the form"))?;
    let v: serde_json::Value =
        serde_json::from_str(&payload).map_err(|e| PayloadError::Json(e.to_string()))?;
    parse_interaction_json(&v)
}

/// An interaction's JSON (Socket Mode delivers it as is).
pub fn parse_interaction_json(payload: &serde_json::Value) -> Result<Incoming, PayloadError> {
    let raw =
        RawInteraction::deserialize(payload).map_err(|e| PayloadError::Json(e.to_string()))?;
    if raw.kind != "block_actions" {
        return Ok(Incoming::Ignored(format!(
            "interaction type {:?} is not a button",
            raw.kind
        )));
    }
    let user = raw
        .user
        .ok_or(PayloadError::Missing("no `user` in the interaction"))?;
    // Only our buttons: their action ids say so, and their values are
    // commands. A click is one action.
    let Some(action) = raw.actions.into_iter().find(|a| {
        a.action_id
            .as_deref()
            .is_some_and(|id| id.starts_with(crate::chat::blocks::ACTION_PREFIX))
    }) else {
        return Ok(Incoming::Ignored(
            "no firebreak button in the actions".into(),
        ));
    };
    let value = action
        .value
        .ok_or(PayloadError::Missing("the button has no value"))?;
    Ok(Incoming::Button {
        user: User::of(user.id, user.username.or(user.name))?,
        value,
        response_url: raw.response_url,
    })
}

/// An Events API body (HTTP) or payload (Socket Mode).
pub fn parse_event_json(payload: &serde_json::Value) -> Result<Incoming, PayloadError> {
    let raw = RawEnvelope::deserialize(payload).map_err(|e| PayloadError::Json(e.to_string()))?;
    match raw.kind.as_str() {
        "url_verification" => Ok(Incoming::UrlVerification {
            challenge: raw.challenge.ok_or(PayloadError::Missing(
                "url_verification without a challenge",
            ))?,
        }),
        "event_callback" => {
            let ev = raw
                .event
                .ok_or(PayloadError::Missing("event_callback without an event"))?;
            mention_of(ev, raw.event_id.unwrap_or_default())
        }
        other => Ok(Incoming::Ignored(format!("event envelope {other:?}"))),
    }
}

fn mention_of(ev: RawEvent, event_id: String) -> Result<Incoming, PayloadError> {
    let direct = ev.kind == "message" && ev.channel_type.as_deref() == Some("im");
    if ev.kind != "app_mention" && !direct {
        return Ok(Incoming::Ignored(format!("event {:?}", ev.kind)));
    }
    // Edits, joins and other bots' (and our own) messages are not commands;
    // answering them could loop.
    if ev.bot_id.is_some() || ev.subtype.is_some() {
        return Ok(Incoming::Ignored(
            "a bot's message or a message change".into(),
        ));
    }
    let user = ev
        .user
        .ok_or(PayloadError::Missing("the event has no user"))?;
    let channel = ev
        .channel
        .ok_or(PayloadError::Missing("the event has no channel"))?;
    let ts = ev.ts.ok_or(PayloadError::Missing("the event has no ts"))?;
    let text = strip_leading_mentions(&ev.text.unwrap_or_default());
    Ok(Incoming::Mention {
        user: User::of(user, None)?,
        text: plain_text(&text),
        channel,
        thread: ev.thread_ts.unwrap_or(ts),
        event_id,
    })
}

/// `<@U0BOT> status` is the command `status`.
fn strip_leading_mentions(text: &str) -> String {
    let mut rest = text.trim_start();
    while let Some(after) = rest.strip_prefix("<@")
        && let Some(end) = after.find('>')
    {
        rest = after[end + 1..].trim_start();
    }
    rest.to_owned()
}

/// Text as the person typed it. Slack escapes `&`, `<` and `>`, and turns
/// what looks like a link or a channel into `<...>` markup: a matcher such
/// as `host=feed.example.com` arrives as
/// `host=<http://feed.example.com|feed.example.com>`.
pub fn plain_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('>') else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let inner = &rest[start + 1..start + len];
        rest = &rest[start + len + 1..];
        let (target, label) = match inner.split_once('|') {
            Some((t, l)) => (t, Some(l)),
            None => (inner, None),
        };
        match target.as_bytes().first() {
            // People and special mentions keep their markup: ids are what
            // roles and commands would compare.
            Some(b'@' | b'!') => {
                out.push('<');
                out.push_str(inner);
                out.push('>');
            }
            Some(b'#') => {
                out.push('#');
                out.push_str(label.unwrap_or(&target[1..]));
            }
            _ => out.push_str(label.unwrap_or(target)),
        }
    }
    out.push_str(rest);
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub use crate::config::{BadResponseUrl, ResponseHosts, SLACK_RESPONSE_HOSTS};

/// What to put in the acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ack {
    /// Nothing; any answer follows separately.
    Empty,
    /// Slack shows this as the answer (slash commands).
    Reply(Reply),
    /// The Events API handshake.
    Challenge(String),
}

/// The members of the user groups roles are granted to, asked of Slack at
/// most every [`GROUPS_TTL`]. When Slack cannot be asked, the last answer
/// stands; with none, group grants count for nobody until it can, and
/// each refusal says why in the log.
pub struct Groups {
    slack: Arc<Slack>,
    ids: Vec<String>,
    cache: tokio::sync::Mutex<GroupCache>,
}

impl Groups {
    /// `None` when no role is granted to a group: nothing to look up.
    pub fn for_roles(slack: Arc<Slack>, roles: &RoleMap) -> Option<Groups> {
        let mut ids: Vec<String> = [&roles.commander, &roles.responder, &roles.viewer]
            .into_iter()
            .flat_map(|g| g.groups.iter().cloned())
            .collect();
        ids.sort();
        ids.dedup();
        (!ids.is_empty()).then(|| Groups {
            slack,
            ids,
            cache: tokio::sync::Mutex::new(GroupCache::default()),
        })
    }

    /// The groups, among those roles name, that `user` belongs to.
    pub async fn of(&self, user: &str) -> Vec<String> {
        let mut cache = self.cache.lock().await;
        // Stale, and not tried in the last few seconds: while Slack is
        // down, each ask does not wait on it again.
        if cache.fresh_at.is_none_or(|at| at.elapsed() >= GROUPS_TTL)
            && cache.tried_at.is_none_or(|at| at.elapsed() >= GROUPS_RETRY)
        {
            cache.tried_at = Some(Instant::now());
            let mut fresh = HashMap::new();
            let mut failed = false;
            for g in &self.ids {
                match self.slack.usergroup_members(g).await {
                    Ok(members) => {
                        fresh.insert(g.clone(), members);
                    }
                    Err(e) => {
                        tracing::warn!(group = %g, error = %e, "cannot list the user group's members; using the last known list");
                        failed = true;
                        if let Some(old) = cache.members.get(g) {
                            fresh.insert(g.clone(), old.clone());
                        }
                    }
                }
            }
            cache.members = fresh;
            // A failed refresh is retried within seconds, not in five
            // minutes: roles should not lag an outage's end.
            cache.fresh_at = (!failed).then(Instant::now);
        }
        cache
            .members
            .iter()
            .filter(|(_, members)| members.iter().any(|m| m == user))
            .map(|(g, _)| g.clone())
            .collect()
    }
}

impl crate::roles::GroupLookup for Groups {
    fn groups_of<'a>(
        &'a self,
        user: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<String>> + Send + 'a>> {
        Box::pin(self.of(user))
    }
}

#[derive(Default)]
struct GroupCache {
    /// When every group was last read; `None` until a full read works.
    fresh_at: Option<Instant>,
    /// When a read was last tried, whether or not it worked.
    tried_at: Option<Instant>,
    /// Group id -> member user ids.
    members: HashMap<String, Vec<String>>,
}

/// Why an HTTP request was not taken.
#[derive(Debug, thiserror::Error)]
pub enum Unverified {
    #[error("no signing secret is configured")]
    NoSecret,
    #[error(transparent)]
    Signature(#[from] super::signature::SignatureError),
    #[error("this exact request was already received; a copy is refused as a replay")]
    Replay,
    /// Whether it is a copy cannot be told; refused, since taking a
    /// replayed command is worse than asking Slack to try again.
    #[error("cannot check the request against those already received: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Checks what Slack sends over HTTP and remembers it in the store: the
/// leader's [`Inbound`] and a follower's [`Forwarder`] check alike, so a
/// request replayed to any replica is refused.
pub struct Verifier {
    /// For HTTP; Socket Mode has none.
    signing_secret: Option<Vec<u8>>,
    store: crate::store::Store,
    clock: crate::clock::Clock,
    /// When sightings past their time were last deleted from the store.
    pruned_at: Mutex<Millis>,
}

impl Verifier {
    pub fn new(
        signing_secret: Option<Vec<u8>>,
        store: crate::store::Store,
        clock: crate::clock::Clock,
    ) -> Verifier {
        Verifier {
            signing_secret,
            store,
            clock,
            pruned_at: Mutex::new(0),
        }
    }

    /// Event ids are unique per event; Slack resends one it thinks went
    /// unacknowledged, over HTTP and Socket Mode alike. Remembered in the
    /// store, so a redelivery after a restart (or to another replica) is
    /// dropped too. When the store cannot say, the event is answered: a
    /// mention answered twice is better than one never answered.
    async fn first_sighting(&self, event_id: &str) -> bool {
        if event_id.is_empty() {
            return true;
        }
        let now = self.clock.now();
        match self
            .seen(
                &format!("slack-event:{event_id}"),
                now,
                now + EVENT_MEMORY_MS,
            )
            .await
        {
            Ok(first) => first,
            Err(e) => {
                tracing::warn!(error = %e, %event_id, "cannot check whether slack sent this event before; answering it");
                true
            }
        }
    }

    /// Records `key` in the store, pruning old sightings now and then.
    async fn seen(
        &self,
        key: &str,
        now: Millis,
        forget_at: Millis,
    ) -> Result<bool, crate::store::StoreError> {
        let prune = {
            let mut at = self.pruned_at.lock().unwrap_or_else(|e| e.into_inner());
            let due = now - *at >= PRUNE_EVERY_MS;
            if due {
                *at = now;
            }
            due
        };
        if prune && let Err(e) = self.store.prune_seen(now).await {
            tracing::warn!(error = %e, "cannot prune the requests seen");
        }
        self.store.first_sighting(key, now, forget_at).await
    }

    /// Checks an HTTP request's signature, and that it was not taken
    /// before: the signatures taken are kept in the store, so a captured
    /// request replayed after a restart, or to another replica on the same
    /// store, is refused as well.
    pub async fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), Unverified> {
        let Some(secret) = &self.signing_secret else {
            return Err(Unverified::NoSecret);
        };
        let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let now = self.clock.now();
        let signature = h("x-slack-signature");
        super::signature::verify(secret, h("x-slack-request-timestamp"), signature, body, now)?;
        // Verified, so `v0=` and 64 hex digits; either case is the same
        // signature.
        let signature = signature.unwrap_or_default().to_ascii_lowercase();
        let key = format!("slack-signature:{signature}");
        if !self.seen(&key, now, now + SIGNATURE_MEMORY_MS).await? {
            crate::metrics::get().slack_refused.with(&["replay"]).inc();
            return Err(Unverified::Replay);
        }
        Ok(())
    }
}

/// The inbound side's state, shared by the HTTP routes and Socket Mode.
pub struct Inbound {
    ctx: Arc<Ctx>,
    roles: RoleMap,
    groups: Option<Groups>,
    /// For `response_url`s.
    http: reqwest::Client,
    response_hosts: ResponseHosts,
    outbox: Outbox,
    verifier: Verifier,
    ack_budget: Duration,
    tasks: TaskTracker,
    in_flight: Arc<tokio::sync::Semaphore>,
    shutdown: CancellationToken,
}

impl Inbound {
    pub fn new(
        ctx: Arc<Ctx>,
        roles: RoleMap,
        groups: Option<Groups>,
        http: reqwest::Client,
        outbox: Outbox,
        signing_secret: Option<Vec<u8>>,
        shutdown: CancellationToken,
    ) -> Inbound {
        Inbound {
            verifier: Verifier::new(signing_secret, ctx.store.clone(), ctx.clock.clone()),
            ctx,
            roles,
            groups,
            http,
            outbox,
            ack_budget: ACK_BUDGET,
            response_hosts: ResponseHosts::default(),
            tasks: TaskTracker::new(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT)),
            shutdown,
        }
    }

    /// How long a slash command may take before it is answered later
    /// (tests shorten it).
    pub fn with_ack_budget(mut self, d: Duration) -> Self {
        self.ack_budget = d;
        self
    }

    /// Where `response_url`s may point (tests add their fake Slack).
    pub fn with_response_hosts(mut self, hosts: ResponseHosts) -> Self {
        self.response_hosts = hosts;
        self
    }

    /// Answers still being worked on after their acknowledgement; waited
    /// for at shutdown, which also cuts them short.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Handles one thing Slack sent and says what to acknowledge it with.
    pub async fn respond(self: &Arc<Self>, incoming: Incoming) -> Ack {
        let needs_work = matches!(
            incoming,
            Incoming::Command { .. } | Incoming::Button { .. } | Incoming::Mention { .. }
        );
        let permit = if needs_work {
            match self.in_flight.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    tracing::warn!(
                        limit = IN_FLIGHT,
                        "slack: too many requests in flight; refusing one"
                    );
                    return match incoming {
                        Incoming::Command { .. } => Ack::Reply(Reply::private(BUSY)),
                        _ => Ack::Empty,
                    };
                }
            }
        } else {
            None
        };
        match incoming {
            Incoming::UrlVerification { challenge } => Ack::Challenge(challenge),
            Incoming::Ignored(why) => {
                tracing::debug!(%why, "slack: nothing to do");
                Ack::Empty
            }
            Incoming::Command {
                user,
                text,
                response_url,
            } => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let me = self.clone();
                let line = text.clone();
                self.spawn(permit, async move {
                    let reply = me.run(&user, &line).await;
                    // Too late for the acknowledgement: answer through the
                    // response URL instead.
                    if let Err(reply) = tx.send(reply) {
                        me.answer_later(response_url.as_deref(), &reply).await;
                    }
                });
                match tokio::time::timeout(self.ack_budget, rx).await {
                    Ok(Ok(reply)) => Ack::Reply(reply),
                    Ok(Err(_)) => Ack::Reply(Reply::private(
                        "the bot is shutting down; try again when it is back",
                    )),
                    Err(_) => Ack::Reply(Reply::private(format!("working on `{}`…", text.trim()))),
                }
            }
            Incoming::Button {
                user,
                value,
                response_url,
            } => {
                let me = self.clone();
                self.spawn(permit, async move {
                    let mut reply = me.run(&user, &value).await;
                    // Everyone sees the card change; the words are for the
                    // person who clicked.
                    reply.visibility = Visibility::Ephemeral;
                    me.answer_later(response_url.as_deref(), &reply).await;
                });
                Ack::Empty
            }
            Incoming::Mention {
                user,
                text,
                channel,
                thread,
                event_id,
            } => {
                if !self.first_sighting(&event_id).await {
                    tracing::debug!(%event_id, "slack redelivered an event already handled");
                    return Ack::Empty;
                }
                let me = self.clone();
                self.spawn(permit, async move {
                    me.answer_mention(&user, &text, channel, thread).await
                });
                Ack::Empty
            }
        }
    }

    /// Does what a follower verified and kept ([`take_forwarded`]). The
    /// work runs on this inbound's tasks, like its own requests.
    async fn respond_forwarded(self: &Arc<Self>, incoming: Incoming) {
        // Waits for room: what is not taken yet stays in the store.
        let permit = match incoming {
            Incoming::Command { .. } | Incoming::Mention { .. } => {
                self.in_flight.clone().acquire_owned().await.ok()
            }
            _ => None,
        };
        match incoming {
            Incoming::Command {
                user,
                text,
                response_url,
            } => {
                let me = self.clone();
                self.spawn(permit, async move {
                    let reply = me.run(&user, &text).await;
                    me.answer_later(response_url.as_deref(), &reply).await;
                });
            }
            Incoming::Mention {
                user,
                text,
                channel,
                thread,
                ..
            } => {
                let me = self.clone();
                self.spawn(permit, async move {
                    me.answer_mention(&user, &text, channel, thread).await
                });
            }
            other => {
                self.respond(other).await;
            }
        }
    }

    /// Answers a mention in its thread.
    async fn answer_mention(&self, user: &User, text: &str, channel: String, thread: String) {
        let reply = self.run(user, text).await;
        let msg = ChatMessage {
            channel,
            kind: Kind::Note,
            text: reply.text,
            at: self.ctx.clock.now(),
            reply_to: Some(thread),
            ..ChatMessage::default()
        };
        if let Err(e) = self.outbox.post(&msg).await {
            tracing::error!(error = %e, "cannot queue the answer to a mention");
        }
    }

    /// Runs one command line as `user`.
    async fn run(&self, user: &User, text: &str) -> Reply {
        let groups = match &self.groups {
            Some(g) => g.of(&user.id).await,
            None => Vec::new(),
        };
        match command::actor_for(&self.roles, &user.id, &user.name, &groups) {
            Ok(actor) => command::handle(&self.ctx, &actor, text).await,
            Err(refusal) => {
                let who = crate::roles::Who::new(user.id.clone(), user.name.clone());
                tracing::info!(user = %who, %text, "slack: refused a command from someone with no role");
                command::record_refusal(&self.ctx, &who, text, &refusal.text).await;
                refusal
            }
        }
    }

    /// Work after the acknowledgement, cut short at shutdown; it holds
    /// its place among [`IN_FLIGHT`] until done.
    fn spawn(
        &self,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
        work: impl Future<Output = ()> + Send + 'static,
    ) {
        let stop = self.shutdown.clone();
        self.tasks.spawn(async move {
            let _permit = permit;
            tokio::select! {
                () = work => {}
                () = stop.cancelled() => {}
            }
        });
    }

    async fn first_sighting(&self, event_id: &str) -> bool {
        self.verifier.first_sighting(event_id).await
    }

    /// Posts an answer to a `response_url`, retrying a failure twice. A
    /// URL that is not at one of [`ResponseHosts`] is not called: the
    /// answer is logged and counted, and goes nowhere else (it may be
    /// meant for the asker alone, so the channel is no place for it).
    async fn answer_later(&self, url: Option<&str>, reply: &Reply) {
        let Some(url) = url else {
            tracing::warn!(text = %reply.text, "slack gave no response_url; the answer is only logged");
            return;
        };
        let url = match self.response_hosts.check(url) {
            Ok(u) => u,
            Err(why) => {
                crate::metrics::get()
                    .slack_refused
                    .with(&["response_url"])
                    .inc();
                tracing::warn!(%url, %why, text = %reply.text, "refused to post an answer to a response_url outside Slack; the answer is only logged");
                return;
            }
        };
        let body = later_body(reply);
        let mut wait = Duration::from_millis(500);
        for attempt in 1..=RESPONSE_ATTEMPTS {
            let sent = self
                .http
                .post(url.clone())
                .timeout(Duration::from_secs(10))
                .json(&body)
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => return,
                Ok(r) if r.status().is_client_error() => {
                    tracing::error!(status = %r.status(), "slack refused an answer at its response_url (expired, or used five times)");
                    return;
                }
                Ok(r) => tracing::warn!(status = %r.status(), attempt, "slack response_url failed"),
                Err(e) => {
                    tracing::warn!(error = %crate::net::error_chain(&e), attempt, "slack response_url failed")
                }
            }
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
        tracing::error!(text = %reply.text, "gave up answering at a slack response_url");
    }

    /// See [`Verifier::verify`].
    pub async fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), Unverified> {
        self.verifier.verify(headers, body).await
    }
}

fn response_type(v: Visibility) -> &'static str {
    match v {
        Visibility::Ephemeral => "ephemeral",
        Visibility::Channel => "in_channel",
    }
}

/// The JSON an acknowledgement carries, over HTTP and over Socket Mode
/// alike; `None` for an empty one.
/// A late answer, at the command's `response_url`: added below, never in
/// place of, what the user typed.
fn later_body(reply: &Reply) -> serde_json::Value {
    json!({
        "response_type": response_type(reply.visibility),
        "replace_original": false,
        "text": crate::chat::mrkdwn::escape_clipped(&reply.text, TEXT_MAX),
    })
}

pub fn ack_body(ack: &Ack) -> Option<serde_json::Value> {
    match ack {
        Ack::Empty => None,
        Ack::Reply(r) => Some(json!({
            "response_type": response_type(r.visibility),
            "text": crate::chat::mrkdwn::escape_clipped(&r.text, TEXT_MAX),
        })),
        Ack::Challenge(c) => Some(json!({ "challenge": c })),
    }
}

/// What takes Slack's HTTP requests: the leader's [`Inbound`], which
/// does them, or a follower's [`Forwarder`], which hands them on.
pub trait Takes: Send + Sync + 'static {
    fn verifier(&self) -> &Verifier;
    fn take(self: Arc<Self>, incoming: Incoming) -> impl Future<Output = Ack> + Send;
}

impl Takes for Inbound {
    fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    async fn take(self: Arc<Self>, incoming: Incoming) -> Ack {
        self.respond(incoming).await
    }
}

impl Takes for Forwarder {
    fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    async fn take(self: Arc<Self>, incoming: Incoming) -> Ack {
        self.respond(incoming).await
    }
}

/// The request URLs to give Slack: `/slack/commands` (slash commands),
/// `/slack/interactions` (interactivity) and `/slack/events` (event
/// subscriptions).
pub fn routes(inbound: Arc<Inbound>) -> Router {
    routes_for(inbound)
}

/// A follower's Slack request URLs (the same paths as [`routes`]).
pub fn forwarding_routes(f: Arc<Forwarder>) -> Router {
    routes_for(f)
}

fn routes_for<T: Takes>(t: Arc<T>) -> Router {
    Router::new()
        .route("/slack/commands", post(commands::<T>))
        .route("/slack/interactions", post(interactions::<T>))
        .route("/slack/events", post(events::<T>))
        .layer(DefaultBodyLimit::max(BODY_MAX))
        .with_state(t)
}

async fn commands<T: Takes>(State(t): State<Arc<T>>, headers: HeaderMap, body: Bytes) -> Response {
    answer(t, &headers, &body, "slash command", parse_command_form).await
}

async fn interactions<T: Takes>(
    State(t): State<Arc<T>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(t, &headers, &body, "interaction", parse_interaction_form).await
}

async fn events<T: Takes>(State(t): State<Arc<T>>, headers: HeaderMap, body: Bytes) -> Response {
    answer(t, &headers, &body, "event", parse_event_body).await
}

fn parse_event_body(b: &[u8]) -> Result<Incoming, PayloadError> {
    let v: serde_json::Value =
        serde_json::from_slice(b).map_err(|e| PayloadError::Json(e.to_string()))?;
    parse_event_json(&v)
}

async fn answer<T: Takes>(
    t: Arc<T>,
    headers: &HeaderMap,
    body: &[u8],
    what: &str,
    parse: impl FnOnce(&[u8]) -> Result<Incoming, PayloadError>,
) -> Response {
    match t.verifier().verify(headers, body).await {
        Ok(()) => {}
        Err(why @ Unverified::Store(_)) => {
            tracing::error!(%why, "refused a {what} request: cannot tell whether it is a replay");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot take requests now: {why}\n"),
            )
                .into_response();
        }
        Err(why) => {
            tracing::warn!(%why, "refused a {what} request: it is not signed by Slack");
            return (
                StatusCode::UNAUTHORIZED,
                format!("not signed by Slack: {why}\n"),
            )
                .into_response();
        }
    }
    let incoming = match parse(body) {
        Ok(inc) => inc,
        Err(e) => {
            tracing::warn!(error = %e, "a signed {what} request cannot be read");
            return (
                StatusCode::BAD_REQUEST,
                format!("cannot read this {what}: {e}\n"),
            )
                .into_response();
        }
    };
    match ack_body(&t.take(incoming).await) {
        None => StatusCode::OK.into_response(),
        Some(v) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response(),
    }
}

/// A follower's side of Slack's request URLs (behind a load balancer,
/// a follower gets its share): it checks each request as the leader would
/// and keeps what needs doing in the store for the leader, which answers
/// through the `response_url` or in the thread ([`take_forwarded`]).
pub struct Forwarder {
    pub verifier: Verifier,
    /// This replica, in the rows it keeps.
    pub me: String,
}

impl Forwarder {
    async fn respond(&self, incoming: Incoming) -> Ack {
        let text = match &incoming {
            Incoming::UrlVerification { challenge } => return Ack::Challenge(challenge.clone()),
            Incoming::Ignored(why) => {
                tracing::debug!(%why, "slack: nothing to do");
                return Ack::Empty;
            }
            Incoming::Mention { event_id, .. } => {
                // Checked here, once: the leader takes it as new.
                if !self.verifier.first_sighting(event_id).await {
                    return Ack::Empty;
                }
                None
            }
            Incoming::Command { text, .. } => Some(text.trim().to_owned()),
            Incoming::Button { .. } => None,
        };
        let kept = match serde_json::to_string(&incoming) {
            Ok(json) => {
                self.verifier
                    .store
                    .forward_push(&self.me, FORWARDED_SLACK, &json, self.verifier.clock.now())
                    .await
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot write down a slack request for the leader");
                return Ack::Empty;
            }
        };
        match (kept, text) {
            (Ok(()), Some(text)) => Ack::Reply(Reply::private(format!(
                "working on `{}`…",
                crate::human::clip(&text, 200)
            ))),
            (Ok(()), None) => Ack::Empty,
            (Err(e), text) => {
                tracing::error!(error = %e, "cannot hand a slack request to the leader");
                match text {
                    Some(_) => Ack::Reply(Reply::private(
                        "the bot cannot reach its store to hand this to its leader; try again in a moment",
                    )),
                    None => Ack::Empty,
                }
            }
        }
    }
}

/// The store's name for Slack requests a follower kept for the leader.
pub const FORWARDED_SLACK: &str = "slack";

/// The leader's side of [`Forwarder`]: does what followers kept, as if it
/// had been sent here, answering at the `response_url` (a command's first
/// answer was the follower's "working on it") or in the thread, until
/// `shutdown`.
pub async fn take_forwarded(inbound: Arc<Inbound>, shutdown: CancellationToken) {
    let store = inbound.ctx.store.clone();
    crate::api::drain_forwarded(
        store,
        &[FORWARDED_SLACK],
        "slack requests",
        shutdown,
        |row| {
            let inbound = inbound.clone();
            async move {
                match serde_json::from_str::<Incoming>(&row.body) {
                    Ok(incoming) => inbound.respond_forwarded(incoming).await,
                    Err(e) => tracing::error!(
                        error = %e, id = %row.id,
                        "a slack request a follower kept does not read; dropped"
                    ),
                }
                true
            }
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, name: &str) -> User {
        User {
            id: id.into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_slash_command_form_becomes_a_command() {
        let body = "token=x&team_id=T1&channel_id=C1&user_id=U1&user_name=ana&command=%2Ffirebreak&text=silence+event%3D%22launch%22+1h&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1&trigger_id=t";
        assert_eq!(
            parse_command_form(body.as_bytes()).unwrap(),
            Incoming::Command {
                user: user("U1", "ana"),
                text: "silence event=\"launch\" 1h".into(),
                response_url: Some("https://hooks.slack.com/commands/1".into()),
            }
        );
        let e = parse_command_form(b"text=status").unwrap_err();
        assert!(e.to_string().contains("user_id"), "{e}");
    }

    #[test]
    fn socket_mode_commands_read_the_same_fields() {
        let v = json!({"user_id": "U2", "text": "status", "command": "/firebreak", "extra": 1});
        assert_eq!(
            parse_command_json(&v).unwrap(),
            Incoming::Command {
                user: user("U2", "U2"),
                text: "status".into(),
                response_url: None,
            }
        );
    }

    #[test]
    fn a_click_on_a_card_button_is_its_command() {
        let payload = json!({
            "type": "block_actions",
            "user": {"id": "U3", "username": "bo", "name": "bo"},
            "response_url": "https://hooks.slack.com/actions/1",
            "actions": [{"action_id": "firebreak:approve r-1", "value": "approve r-1", "type": "button"}],
        });
        let form = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        assert_eq!(
            parse_interaction_form(form.as_bytes()).unwrap(),
            Incoming::Button {
                user: user("U3", "bo"),
                value: "approve r-1".into(),
                response_url: Some("https://hooks.slack.com/actions/1".into()),
            }
        );
        let other = json!({"type": "block_actions", "user": {"id": "U3"}, "actions": [{"action_id": "someone-else", "value": "x"}]});
        assert!(matches!(
            parse_interaction_json(&other).unwrap(),
            Incoming::Ignored(_)
        ));
        let modal = json!({"type": "view_submission", "user": {"id": "U3"}});
        assert!(matches!(
            parse_interaction_json(&modal).unwrap(),
            Incoming::Ignored(_)
        ));
        assert_eq!(
            parse_interaction_form(b"nothing=here").unwrap_err(),
            PayloadError::Missing("no `payload` field in the form")
        );
    }

    #[test]
    fn mentions_and_direct_messages_are_commands_answered_in_thread() {
        let ev = |event: serde_json::Value| {
            parse_event_json(&json!({"type": "event_callback", "event_id": "Ev1", "event": event}))
                .unwrap()
        };
        assert_eq!(
            ev(
                json!({"type": "app_mention", "user": "U4", "text": "<@U0BOT> ack INC-1", "channel": "C1", "ts": "1.2"})
            ),
            Incoming::Mention {
                user: user("U4", "U4"),
                text: "ack INC-1".into(),
                channel: "C1".into(),
                thread: "1.2".into(),
                event_id: "Ev1".into(),
            }
        );
        let Incoming::Mention { thread, text, .. } = ev(
            json!({"type": "message", "channel_type": "im", "user": "U4", "text": "status", "channel": "D1", "ts": "3.4", "thread_ts": "1.0"}),
        ) else {
            panic!()
        };
        assert_eq!((thread.as_str(), text.as_str()), ("1.0", "status"));
        for ignored in [
            json!({"type": "message", "channel_type": "channel", "user": "U4", "text": "hi", "channel": "C1", "ts": "1"}),
            json!({"type": "message", "channel_type": "im", "bot_id": "B1", "text": "hi", "channel": "D1", "ts": "1"}),
            json!({"type": "message", "channel_type": "im", "subtype": "message_changed", "channel": "D1", "ts": "1"}),
            json!({"type": "reaction_added", "user": "U4"}),
        ] {
            assert!(matches!(ev(ignored), Incoming::Ignored(_)));
        }
        assert_eq!(
            parse_event_json(
                &json!({"type": "url_verification", "challenge": "abc", "token": "t"})
            )
            .unwrap(),
            Incoming::UrlVerification {
                challenge: "abc".into()
            }
        );
    }

    #[test]
    fn slack_markup_becomes_what_was_typed() {
        assert_eq!(
            plain_text(
                "silence host=<http://feed.example.com|feed.example.com> 1h &lt;fix&gt; &amp;co"
            ),
            "silence host=feed.example.com 1h <fix> &co"
        );
        assert_eq!(plain_text("in <#C123|live> by <@U9>"), "in #live by <@U9>");
        assert_eq!(plain_text("<https://x.example>"), "https://x.example");
        assert_eq!(plain_text("a < b"), "a < b");
        assert_eq!(plain_text("&amp;lt;"), "&lt;");
        assert_eq!(strip_leading_mentions("<@U1> <@U2>  run x"), "run x");
    }

    /// An inbound side whose control loop takes commands and never
    /// answers: every command stays in flight.
    async fn stuck() -> (
        Arc<Inbound>,
        tokio::sync::mpsc::Receiver<crate::control::Command>,
    ) {
        let store = crate::store::Store::open("sqlite::memory:").await.unwrap();
        let mut roles = RoleMap::default();
        roles.viewer.everyone = true;
        on_store(store, roles, None).await
    }

    /// An inbound side on `store`, its control queue left to the test.
    async fn on_store(
        store: crate::store::Store,
        roles: RoleMap,
        signing_secret: Option<&str>,
    ) -> (
        Arc<Inbound>,
        tokio::sync::mpsc::Receiver<crate::control::Command>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(IN_FLIGHT * 2);
        let ctx = Arc::new(Ctx {
            control: tx,
            runbooks: Default::default(),
            checklists: Default::default(),
            targets: Default::default(),
            store: store.clone(),
            clock: crate::clock::Clock::system(),
            offset: chrono::FixedOffset::east_opt(0).unwrap(),
            zone: "UTC".into(),
        });
        let inbound = Inbound::new(
            ctx,
            roles,
            None,
            crate::net::client().unwrap(),
            Outbox::new(store),
            signing_secret.map(|s| s.as_bytes().to_vec()),
            CancellationToken::new(),
        )
        .with_ack_budget(Duration::from_millis(1));
        (Arc::new(inbound), rx)
    }

    fn signed(secret: &str, body: &str) -> HeaderMap {
        use hmac::{KeyInit, Mac};
        let ts = chrono::Utc::now().timestamp();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("v0:{ts}:{body}").as_bytes());
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut h = HeaderMap::new();
        h.insert("x-slack-request-timestamp", ts.to_string().parse().unwrap());
        h.insert("x-slack-signature", format!("v0={hex}").parse().unwrap());
        h
    }

    /// Regression: replay protection lived in memory, so a captured
    /// request was taken again by the next process within its five
    /// minutes. A new instance on the same store (a restart, a replica)
    /// refuses it, and redelivered events are dropped the same way.
    #[tokio::test]
    async fn a_request_replayed_to_a_new_instance_on_the_same_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("fb.db").display());
        let secret = "s3cret";
        let body = "user_id=U0COMMAND1&text=pause";
        let headers = signed(secret, body);
        let replays = crate::metrics::get().slack_refused.with(&["replay"]).get();

        let store = crate::store::Store::open(&url).await.unwrap();
        let (first, _rx) = on_store(store.clone(), RoleMap::default(), Some(secret)).await;
        first.verify(&headers, body.as_bytes()).await.unwrap();
        assert!(matches!(
            first.verify(&headers, body.as_bytes()).await,
            Err(Unverified::Replay)
        ));
        assert!(first.first_sighting("Ev0ONE").await);
        drop(first);
        store.close().await;

        let store = crate::store::Store::open(&url).await.unwrap();
        let (restarted, _rx) = on_store(store, RoleMap::default(), Some(secret)).await;
        let e = restarted
            .verify(&headers, body.as_bytes())
            .await
            .unwrap_err();
        assert!(matches!(e, Unverified::Replay), "{e}");
        assert!(e.to_string().contains("already received"), "{e}");
        assert!(
            !restarted.first_sighting("Ev0ONE").await,
            "a redelivered event"
        );
        assert!(restarted.first_sighting("Ev0TWO").await);
        // A fresh request (signed anew) is still taken.
        let again = signed(secret, "user_id=U0COMMAND1&text=resume");
        restarted
            .verify(&again, b"user_id=U0COMMAND1&text=resume")
            .await
            .unwrap();
        assert!(crate::metrics::get().slack_refused.with(&["replay"]).get() >= replays + 2);
    }

    /// Regression: someone with no role at all was told so, and nothing
    /// more; a viewer's refusal was on the timeline. Both are now.
    #[tokio::test]
    async fn someone_with_no_role_is_refused_on_the_record() {
        let store = crate::store::Store::open("sqlite::memory:").await.unwrap();
        let closed = RoleMap {
            viewer: crate::roles::Grant::default(),
            ..RoleMap::default()
        };
        let (inbound, mut rx) = on_store(store, closed, None).await;
        let reply = inbound
            .run(&user("U0STRANGE1", "mallory"), "pause now")
            .await;
        assert_eq!(reply.text, command::NO_ROLE);
        match rx.try_recv() {
            Ok(crate::control::Command::Refused {
                by,
                command,
                reason,
            }) => {
                assert_eq!(by.label(), "mallory (U0STRANGE1)");
                assert_eq!(command, "pause now");
                assert_eq!(reason, command::NO_ROLE);
            }
            other => panic!("no refusal recorded: {other:?}"),
        }
    }

    #[test]
    fn a_response_url_must_be_at_slack() {
        let slack = ResponseHosts::default();
        for ok in [
            "https://hooks.slack.com/commands/T1/2/abc",
            "https://HOOKS.slack.com/actions/T1/2/abc",
            "https://files.slack.com/x",
        ] {
            assert!(slack.check(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("http://hooks.slack.com/commands/1", "scheme \"http\""),
            (
                "https://evil.example/hooks.slack.com",
                "host \"evil.example\"",
            ),
            ("https://hooks.slack.com.evil.example/x", "is not one of"),
            ("https://evilslack.com/x", "is not one of"),
            ("https://slack.com@evil.example/x", "user name or password"),
            (
                "https://hooks.slack.com:443@169.254.169.254/",
                "user name or password",
            ),
            ("https://169.254.169.254/latest/meta-data", "is not one of"),
            ("file:///etc/passwd", "scheme"),
            ("hooks.slack.com/commands/1", "not a URL"),
            ("http://127.0.0.1:8080/respond/1", "is not one of"),
        ] {
            let e = slack.check(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        // A fake Slack on loopback, where tests listen, may be plain http;
        // nothing else may.
        let local = ResponseHosts::new(["127.0.0.1".to_owned(), "*.example.org".to_owned()]);
        assert!(local.check("http://127.0.0.1:8080/respond/1").is_ok());
        assert!(local.check("http://a.example.org/x").is_err());
        assert!(local.check("https://a.example.org/x").is_ok());
        assert!(
            local.check("https://example.org/x").is_err(),
            "only under it"
        );
        assert!(ResponseHosts::is_pattern("*.slack.com"));
        for bad in ["https://x", "x/y", "*", "*.", "a b", "h:80", ""] {
            assert!(!ResponseHosts::is_pattern(bad), "{bad}");
        }
    }

    /// The id is the identity and must look like one (the console's
    /// `console` cannot be claimed from Slack); the name is shown, so it
    /// is cleaned of Slack markup and cut short.
    #[test]
    fn user_ids_are_checked_and_names_cleaned() {
        let cmd = |user_id: &str, user_name: &str| {
            let body = serde_urlencoded::to_string([
                ("user_id", user_id),
                ("user_name", user_name),
                ("text", "status"),
            ])
            .unwrap();
            parse_command_form(body.as_bytes())
        };
        for bad in ["console", "ana", "", "U0 X"] {
            assert_eq!(
                cmd(bad, "x").unwrap_err(),
                PayloadError::BadUser(bad.into())
            );
        }
        let Incoming::Command { user: u, .. } = cmd("U0ANA", "<!channel> ana\n").unwrap() else {
            panic!()
        };
        assert_eq!(u, user("U0ANA", "!channel ana"));
        let Incoming::Command { user: u, .. } = cmd("U0ANA", &"a".repeat(500)).unwrap() else {
            panic!()
        };
        assert_eq!(u.name.len(), NAME_MAX);
        let Incoming::Command { user: u, .. } = cmd("U0ANA", " <> ").unwrap() else {
            panic!()
        };
        assert_eq!(u.name, "U0ANA", "nothing left: the id stands in");
        let click = json!({"type": "block_actions", "user": {"id": "console", "username": "root"}, "actions": [{"action_id": "firebreak:approve r", "value": "approve r"}]});
        assert!(matches!(
            parse_interaction_json(&click),
            Err(PayloadError::BadUser(_))
        ));
    }

    #[tokio::test]
    async fn past_the_in_flight_limit_a_command_is_told_the_bot_is_busy() {
        let (inbound, _rx) = stuck().await;
        let status = || Incoming::Command {
            user: user("U1", "ana"),
            text: "status".into(),
            response_url: None,
        };
        for _ in 0..IN_FLIGHT {
            assert_eq!(
                inbound.respond(status()).await,
                Ack::Reply(Reply::private("working on `status`…"))
            );
        }
        assert_eq!(
            inbound.respond(status()).await,
            Ack::Reply(Reply::private(BUSY))
        );
        // The Events API handshake needs no room.
        assert_eq!(
            inbound
                .respond(Incoming::UrlVerification {
                    challenge: "c".into()
                })
                .await,
            Ack::Challenge("c".into())
        );
        inbound.shutdown.cancel();
        inbound.tasks.close();
        inbound.tasks.wait().await;
        assert_eq!(
            inbound.in_flight.available_permits(),
            IN_FLIGHT,
            "room again"
        );
    }

    #[test]
    fn acknowledgements_carry_slacks_shapes() {
        assert_eq!(ack_body(&Ack::Empty), None);
        assert_eq!(
            ack_body(&Ack::Reply(Reply::private("hi"))),
            Some(json!({"response_type": "ephemeral", "text": "hi"}))
        );
        assert_eq!(
            ack_body(&Ack::Reply(Reply::channel("all"))),
            Some(json!({"response_type": "in_channel", "text": "all"}))
        );
        assert_eq!(
            ack_body(&Ack::Challenge("c".into())),
            Some(json!({"challenge": "c"}))
        );
        // Slack cuts a message past 40,000 characters; we cut first, and
        // say so with the ellipsis.
        let long = ack_body(&Ack::Reply(Reply::channel("x".repeat(100_000)))).unwrap();
        let text = long["text"].as_str().unwrap();
        assert_eq!(text.chars().count(), TEXT_MAX);
        assert!(text.ends_with('…'));
        let late = later_body(&Reply::private("y".repeat(100_000)));
        assert_eq!(late["text"].as_str().unwrap().chars().count(), TEXT_MAX);
        assert_eq!(late["response_type"], "ephemeral");
        assert_eq!(late["replace_original"], false);
    }
}
