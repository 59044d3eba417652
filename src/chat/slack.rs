//! The Slack adapter: the Web API through slack-morphism's client.
//!
//! One [`ChatAdapter::send`] is one attempt: `chat.postMessage` for a new
//! message or a thread reply, `chat.update` to replace a message in place,
//! and, when the message carries an image, the files upload v2 flow into
//! the same thread. Whatever Slack answers is sorted into
//! [`ChatError::Retry`] (try again later, nothing is wrong with the message)
//! or [`ChatError::Rejected`] (this message will never be accepted as it
//! is). Pacing, `Retry-After` holds, backoff, ordering and threading are the
//! outbox's, so slack-morphism's own rate control and retries are left off:
//! a second layer of retries would hide failures from the outbox, reorder
//! messages behind its back and sleep inside a call the outbox believes is
//! one attempt.
//!
//! The bot token lives only in the client's session; it is never logged,
//! and error reasons carry Slack's error codes, never request headers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value as Json, json};
use slack_morphism::api::{
    SlackApiFilesComplete, SlackApiFilesCompleteUploadExternalRequest,
    SlackApiFilesGetUploadUrlExternalRequest, SlackApiFilesUploadViaUrlRequest,
};
use slack_morphism::errors::SlackClientError;
use slack_morphism::hyper_tokio::{SlackClientHyperConnector, SlackClientHyperHttpsConnector};
use slack_morphism::{SlackApiToken, SlackApiTokenValue, SlackChannelId, SlackClient, SlackTs};

use super::{BoxFut, ChatAdapter, ChatError, Image, Outgoing, Placement, RateLimit};
use crate::config::{SecretSource, SlackConfig};
use crate::secrets::secret_named;

/// Slack truncates message text past 40,000 characters and answers
/// `msg_too_long` for some methods; clipping first keeps a long message
/// (a big coalesced storm, a long log excerpt) readable instead of set
/// aside.
pub(crate) const TEXT_MAX: usize = 40_000;

/// The metadata event type that carries a message's outbox key.
const METADATA_EVENT: &str = "firebreak_message";

/// Slack documents chat.postMessage at about one message per second per
/// channel, "allowing bursts over that limit for short periods". A burst
/// of 3 lets an incident's opening messages (firing, run started, first
/// step) appear together; sustained traffic still settles at 1/s, and a
/// backlog beyond that is coalesced by the outbox rather than queued at
/// Slack's door.
pub const RATE_LIMIT: RateLimit = RateLimit {
    burst: 3,
    every: Duration::from_secs(1),
};

#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    #[error("chat.slack.bot_token_secret: {0}")]
    Token(String),
    #[error("chat.slack.bot_token_secret: the token is empty")]
    EmptyToken,
    #[error("cannot load the system's TLS root certificates for Slack: {0}")]
    Tls(std::io::Error),
}

/// Who the token belongs to, as `auth.test` tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub team: String,
    pub user: String,
    pub bot_id: Option<String>,
}

/// The Slack Web API adapter. Not `Debug`: it holds the bot token.
pub struct Slack {
    client: SlackClient<SlackClientHyperHttpsConnector>,
    token: SlackApiToken,
    timeout: Duration,
    /// Channel name (without `#`) to id. chat.postMessage takes either but
    /// chat.update and files.completeUploadExternal need the id; every
    /// post answers with it, so it is learnt for free.
    channel_ids: Mutex<HashMap<String, String>>,
}

impl Slack {
    /// A client for the Web API at `api_url` (`https://slack.com/api/`, or a
    /// local fake over plain http), each request given at most `timeout`.
    pub fn new(
        api_url: &reqwest::Url,
        token: String,
        timeout: Duration,
    ) -> Result<Self, SlackError> {
        if token.trim().is_empty() {
            return Err(SlackError::EmptyToken);
        }
        // slack-morphism's connector builds a rustls config; without a
        // process-wide provider rustls would panic here.
        crate::net::install_crypto_provider();
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = if api_url.scheme() == "https" {
            builder.with_native_roots().map_err(SlackError::Tls)?
        } else {
            // Plain http only reaches a local fake; no roots are needed, and
            // a machine without a CA bundle can still run the tests.
            builder.with_tls_config(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        };
        let connector = builder
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        // slack-morphism joins the base and the method with a '/'.
        let base = api_url.as_str().trim_end_matches('/');
        let client = SlackClient::new(
            SlackClientHyperConnector::with_connector(connector).with_slack_api_url(base),
        );
        Ok(Slack {
            client,
            token: SlackApiToken::new(SlackApiTokenValue::new(token)),
            timeout,
            channel_ids: Mutex::new(HashMap::new()),
        })
    }

    /// The adapter `chat.slack` describes, with its token read from the
    /// named secret.
    pub fn from_config(
        cfg: &SlackConfig,
        secrets: &BTreeMap<String, SecretSource>,
    ) -> Result<Self, SlackError> {
        let token = secret_named(secrets, &cfg.bot_token_secret).map_err(SlackError::Token)?;
        Slack::new(&cfg.api_url, token, cfg.timeout.to_std())
    }

    /// Checks the token once (`auth.test`). `Rejected` means Slack refused
    /// it (`invalid_auth`, `token_revoked`...); `Retry` means Slack could
    /// not be asked.
    pub async fn auth_test(&self) -> Result<Identity, ChatError> {
        let a = self.post("auth.test", &json!({})).await?;
        let s = |k: &str| a[k].as_str().unwrap_or_default().to_owned();
        Ok(Identity {
            team: s("team"),
            user: s("user"),
            bot_id: a["bot_id"].as_str().map(str::to_owned),
        })
    }

    /// The members of a user group (`usergroups.users.list`, scope
    /// `usergroups:read`), for roles granted to groups.
    pub async fn usergroup_members(&self, group: &str) -> Result<Vec<String>, ChatError> {
        let a = self
            .get("usergroups.users.list", &[("usergroup", group)])
            .await?;
        Ok(a["users"]
            .as_array()
            .map(|us| {
                us.iter()
                    .filter_map(|u| u.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// A fresh Socket Mode URL (`apps.connections.open`). It takes the
    /// app-level token (`xapp-...`), not the bot token.
    pub async fn connections_open(&self, app_token: &str) -> Result<String, ChatError> {
        let token = SlackApiToken::new(SlackApiTokenValue::new(app_token.to_owned()));
        let session = self.client.open_session(&token);
        let body = json!({});
        let call = session
            .http_session_api
            .http_post("apps.connections.open", &body, None);
        let a: Json = self.bounded("apps.connections.open", call).await?;
        a["url"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ChatError::retry("slack apps.connections.open: the answer has no url"))
    }

    /// One Web API call with a JSON body, bounded by the timeout.
    ///
    /// The body is JSON rather than slack-morphism's typed requests so the
    /// blocks go out exactly as `blocks::render` made them: a round trip
    /// through its Block Kit model would drop any field it does not model.
    async fn post(&self, method: &'static str, body: &Json) -> Result<Json, ChatError> {
        let session = self.client.open_session(&self.token);
        let call = session.http_session_api.http_post(method, body, None);
        self.bounded(method, call).await
    }

    async fn get(&self, method: &'static str, params: &[(&str, &str)]) -> Result<Json, ChatError> {
        let session = self.client.open_session(&self.token);
        let params: Vec<(&str, Option<&str>)> =
            params.iter().map(|(k, v)| (*k, Some(*v))).collect();
        let call = session.http_session_api.http_get(method, &params, None);
        self.bounded(method, call).await
    }

    async fn bounded<T>(
        &self,
        method: &'static str,
        call: impl Future<Output = Result<T, SlackClientError>>,
    ) -> Result<T, ChatError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r.map_err(|e| classify(method, e)),
            Err(_) => Err(ChatError::retry(format!(
                "slack {method}: no answer within {:?}",
                self.timeout
            ))),
        }
    }

    fn known_id(&self, channel: &str) -> Option<String> {
        if looks_like_id(channel) {
            return Some(channel.to_owned());
        }
        self.channel_ids
            .lock()
            .ok()?
            .get(channel.trim_start_matches('#'))
            .cloned()
    }

    fn learn_id(&self, channel: &str, id: &str) {
        if looks_like_id(channel) || id.is_empty() {
            return;
        }
        if let Ok(mut m) = self.channel_ids.lock() {
            m.insert(channel.trim_start_matches('#').to_owned(), id.to_owned());
        }
    }

    /// The id of a channel given by name. After a restart the first thing a
    /// channel sees may be an update, before any post has taught us the
    /// id, so the name is looked up with `conversations.list` (scope
    /// `channels:read`, `groups:read` for private channels). Naming
    /// channels by id in the config avoids this call.
    async fn channel_id(&self, channel: &str) -> Result<String, ChatError> {
        if let Some(id) = self.known_id(channel) {
            return Ok(id);
        }
        let name = channel.trim_start_matches('#');
        let mut cursor = String::new();
        loop {
            let mut params = vec![
                ("types", "public_channel,private_channel"),
                ("exclude_archived", "true"),
                ("limit", "1000"),
            ];
            if !cursor.is_empty() {
                params.push(("cursor", &cursor));
            }
            let page = self
                .get("conversations.list", &params)
                .await
                .map_err(|e| match e {
                    ChatError::Rejected(r) => ChatError::Rejected(format!(
                        "{r} (finding the id of {channel} to update a message there: give the bot the channels:read scope or name the channel by its id in the config)"
                    )),
                    retry => retry,
                })?;
            if let Some(found) = page["channels"].as_array().and_then(|cs| {
                cs.iter()
                    .find(|c| c["name"].as_str() == Some(name))
                    .and_then(|c| c["id"].as_str())
            }) {
                self.learn_id(channel, found);
                return Ok(found.to_owned());
            }
            cursor = page["response_metadata"]["next_cursor"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if cursor.is_empty() {
                return Err(ChatError::Rejected(format!(
                    "slack conversations.list: no channel named {name} is visible to the bot"
                )));
            }
        }
    }

    /// Posts or updates the message; returns the channel id and the `ts`
    /// later replies and updates refer to.
    async fn write(&self, o: &Outgoing<'_>) -> Result<(String, String), ChatError> {
        let msg = o.msg;
        if o.retried
            && let Some(key) = &o.key
            && let Some(found) = self.posted_before(o, key).await
        {
            return Ok(found);
        }
        // The text carries alert and platform data and none of the bot's
        // own Slack markup, so all of it is escaped.
        let text = super::mrkdwn::escape_clipped(&msg.text, TEXT_MAX);
        let blocks = super::blocks::render(msg);
        // The key rides along as message metadata, where a later attempt
        // can find it (see `posted_before`).
        let metadata = o
            .key
            .as_ref()
            .map(|k| json!({"event_type": METADATA_EVENT, "event_payload": {"key": k}}));
        let (method, mut body) = match &o.placement {
            Placement::TopLevel => (
                "chat.postMessage",
                json!({"channel": msg.channel, "text": text, "blocks": blocks}),
            ),
            Placement::Reply { parent } => (
                "chat.postMessage",
                json!({"channel": msg.channel, "thread_ts": parent, "text": text, "blocks": blocks}),
            ),
            Placement::Update { id } => {
                let channel = self.channel_id(&msg.channel).await?;
                (
                    "chat.update",
                    json!({"channel": channel, "ts": id, "text": text, "blocks": blocks}),
                )
            }
        };
        if let Some(m) = metadata
            && method == "chat.postMessage"
        {
            body["metadata"] = m;
        }
        let a = self.post(method, &body).await?;
        let (Some(channel), Some(ts)) = (a["channel"].as_str(), a["ts"].as_str()) else {
            // Slack's successes always carry both; one without them came
            // from something in between (a proxy's page), so the message
            // most likely did not arrive.
            return Err(ChatError::retry(format!(
                "slack {method}: a success without channel and ts"
            )));
        };
        self.learn_id(&msg.channel, channel);
        Ok((channel.to_owned(), ts.to_owned()))
    }

    /// After an attempt that may have posted (a timeout, a 5xx), the copy
    /// it left, found by its key in the channel's recent history (or the
    /// thread's replies): then the message is posted, and posting again
    /// would show it twice. `None` when there is none, or when Slack
    /// cannot be asked (the app lacks `channels:history`); then the post
    /// goes ahead, at least once rather than never.
    async fn posted_before(&self, o: &Outgoing<'_>, key: &str) -> Option<(String, String)> {
        let channel = self.channel_id(&o.msg.channel).await.ok()?;
        // Queued at `at`, so posted no earlier; a minute of slack for clocks.
        let oldest = format!("{}", (o.msg.at / 1000 - 60).max(0));
        let (method, params): (&'static str, Vec<(&str, &str)>) = match &o.placement {
            Placement::Reply { parent } => (
                "conversations.replies",
                vec![
                    ("channel", channel.as_str()),
                    ("ts", parent.as_str()),
                    ("oldest", oldest.as_str()),
                ],
            ),
            _ => (
                "conversations.history",
                vec![("channel", channel.as_str()), ("oldest", oldest.as_str())],
            ),
        };
        let mut params = params;
        params.extend([("include_all_metadata", "true"), ("limit", "200")]);
        let found = match self.get(method, &params).await {
            Ok(a) => a["messages"].as_array().and_then(|ms| {
                ms.iter().find_map(|m| {
                    let md = &m["metadata"];
                    (md["event_type"] == METADATA_EVENT && md["event_payload"]["key"] == key)
                        .then(|| m["ts"].as_str().map(str::to_owned))
                        .flatten()
                })
            }),
            Err(e) => {
                tracing::warn!(channel = %o.msg.channel, error = %e, "cannot look for a copy of a message whose post timed out; posting it again");
                None
            }
        };
        if let Some(ts) = &found {
            tracing::info!(channel = %o.msg.channel, %ts, key, "a post that timed out had arrived; not posting it again");
        }
        found.map(|ts| (channel, ts))
    }

    /// The files upload v2 flow: ask for an upload URL, send the bytes
    /// there, then share the file into the thread.
    async fn upload(
        &self,
        channel_id: &str,
        thread_ts: &str,
        img: &Image,
    ) -> Result<(), ChatError> {
        let filename = format!("{}.png", slug(&img.title));
        let session = self.client.open_session(&self.token);
        let url = self
            .bounded(
                "files.getUploadURLExternal",
                session.get_upload_url_external(
                    &SlackApiFilesGetUploadUrlExternalRequest::new(filename, img.png.len())
                        .with_alt_txt(img.title.clone()),
                ),
            )
            .await?;
        self.bounded(
            "files upload",
            session.files_upload_via_url(&SlackApiFilesUploadViaUrlRequest::new(
                url.upload_url,
                img.png.clone(),
                "image/png".into(),
            )),
        )
        .await?;
        self.bounded(
            "files.completeUploadExternal",
            session.files_complete_upload_external(
                &SlackApiFilesCompleteUploadExternalRequest::new(vec![
                    SlackApiFilesComplete::new(url.file_id).with_title(img.title.clone()),
                ])
                .with_channel_id(SlackChannelId::new(channel_id.to_owned()))
                .with_thread_ts(SlackTs::new(thread_ts.to_owned())),
            ),
        )
        .await?;
        Ok(())
    }
}

impl ChatAdapter for Slack {
    fn send<'a>(&'a self, o: Outgoing<'a>) -> BoxFut<'a, Result<String, ChatError>> {
        Box::pin(async move {
            let (channel_id, ts) = self.write(&o).await?;
            if let Some(img) = o.image {
                // The chart belongs in the message's thread: under the
                // parent for a reply, under the message itself otherwise.
                let thread = match &o.placement {
                    Placement::Reply { parent } => parent.as_str(),
                    Placement::TopLevel | Placement::Update { .. } => ts.as_str(),
                };
                // The message is posted by now. Failing the send would make
                // the outbox post it again, a duplicate for everyone to
                // read; the chart is an extra beside the text, so its loss
                // is logged and the send still counts.
                if let Err(e) = self.upload(&channel_id, thread, img).await {
                    tracing::warn!(
                        channel = %o.msg.channel, %ts, error = %e,
                        "chart upload to Slack failed; the message itself was posted"
                    );
                }
            }
            Ok(ts)
        })
    }

    fn rate_limit(&self) -> Option<RateLimit> {
        Some(RATE_LIMIT)
    }
}

/// Slack's answer sorted into try-again and never-as-is.
fn classify(method: &str, e: SlackClientError) -> ChatError {
    use SlackClientError as E;
    match e {
        E::RateLimitError(r) => ChatError::Retry {
            after: r.retry_after,
            reason: format!("slack {method}: rate limited (HTTP 429)"),
        },
        E::ApiError(a) => match a.code.as_str() {
            // Slack's own words for "not now".
            "ratelimited"
            | "rate_limited"
            | "internal_error"
            | "fatal_error"
            | "service_unavailable"
            | "request_timeout"
            | "team_added_to_org" => ChatError::retry(format!("slack {method}: {}", a.code)),
            // Slack's words for "not from you": the bot's token itself,
            // whatever it sends, wherever. A channel it cannot post to
            // (`channel_not_found`, `not_in_channel`) is one channel's
            // messages, possibly a runbook's typo: those are set aside.
            "invalid_auth"
            | "not_authed"
            | "account_inactive"
            | "token_revoked"
            | "token_expired"
            | "no_permission"
            | "missing_scope"
            | "not_allowed_token_type"
            | "ekm_access_denied"
            | "access_denied"
            | "team_access_not_granted"
            | "org_login_required" => ChatError::Refused(format!("slack {method}: {}", a.code)),
            code => ChatError::Rejected(format!("slack {method}: {code}")),
        },
        E::HttpError(h) => {
            let status = h.status_code;
            if status.is_server_error() || status.as_u16() == 408 {
                ChatError::retry(format!("slack {method}: HTTP {status}"))
            } else if matches!(status.as_u16(), 401 | 403) {
                ChatError::Refused(format!("slack {method}: HTTP {status}"))
            } else {
                ChatError::Rejected(format!("slack {method}: HTTP {status}"))
            }
        }
        // Connection refused or reset, TLS failures, a body cut short:
        // the network, not the message.
        E::HttpProtocolError(p) => ChatError::retry(format!(
            "slack {method}: connection failed: {}",
            p.cause
                .map_or_else(|| "unknown".to_owned(), |c| crate::net::error_chain(&*c))
        )),
        E::EndOfStream(_) => ChatError::retry(format!("slack {method}: connection closed")),
        // A 200 whose JSON does not parse is not Slack's doing; retrying
        // may duplicate the message if it did arrive, which the outbox's
        // contract allows, while giving up would lose it.
        E::ProtocolError(p) => ChatError::retry(format!(
            "slack {method}: unreadable answer: {}",
            p.json_error
        )),
        E::SystemError(s) => ChatError::Rejected(format!("slack {method}: {s}")),
        E::SocketModeProtocolError(s) => ChatError::Rejected(format!("slack {method}: {s}")),
    }
}

/// Conversation ids: C (channel), G (private, older), D (direct), then
/// upper-case letters and digits. Names are lower-case.
fn looks_like_id(s: &str) -> bool {
    s.len() >= 9
        && s.starts_with(['C', 'G', 'D'])
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// A file name from a chart title: letters, digits and dashes.
fn slug(title: &str) -> String {
    let s: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-');
    if s.is_empty() {
        "chart".into()
    } else {
        s.chars().take(60).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slack_morphism::errors::{SlackClientApiError, SlackClientHttpError, SlackRateLimitError};

    #[test]
    fn slack_answers_are_sorted_into_retry_and_rejected() {
        let api = |code: &str| {
            classify(
                "chat.postMessage",
                E::ApiError(SlackClientApiError::new(code.into())),
            )
        };
        use SlackClientError as E;
        for code in [
            "ratelimited",
            "internal_error",
            "fatal_error",
            "service_unavailable",
            "request_timeout",
        ] {
            assert!(
                matches!(api(code), ChatError::Retry { after: None, .. }),
                "{code}"
            );
        }
        // This message, never as it is (or this channel): set aside.
        for code in [
            "msg_too_long",
            "invalid_blocks",
            "channel_not_found",
            "not_in_channel",
        ] {
            match api(code) {
                ChatError::Rejected(r) => assert_eq!(r, format!("slack chat.postMessage: {code}")),
                other => panic!("{code}: {other:?}"),
            }
        }
        // The bot itself, whatever it sends: kept, and said.
        for code in [
            "invalid_auth",
            "token_revoked",
            "account_inactive",
            "missing_scope",
        ] {
            match api(code) {
                ChatError::Refused(r) => assert_eq!(r, format!("slack chat.postMessage: {code}")),
                other => panic!("{code}: {other:?}"),
            }
        }
        let limited =
            E::RateLimitError(SlackRateLimitError::new().with_retry_after(Duration::from_secs(7)));
        assert!(matches!(
            classify("chat.update", limited),
            ChatError::Retry { after: Some(d), .. } if d == Duration::from_secs(7)
        ));
        let http = |s: u16| {
            classify(
                "chat.update",
                E::HttpError(SlackClientHttpError::new(
                    reqwest::StatusCode::from_u16(s).unwrap(),
                )),
            )
        };
        assert!(matches!(http(503), ChatError::Retry { .. }));
        assert!(matches!(http(500), ChatError::Retry { .. }));
        assert!(matches!(http(404), ChatError::Rejected(_)));
        assert!(matches!(http(401), ChatError::Refused(_)));
        assert!(matches!(http(403), ChatError::Refused(_)));
    }

    #[test]
    fn ids_are_told_from_names_and_text_is_clipped() {
        assert!(looks_like_id("C0123ABCDE"));
        assert!(!looks_like_id("#incidents"));
        assert!(!looks_like_id("incidents"));
        assert!(!looks_like_id("Cafe"));
        use crate::chat::clip;
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "ab…");
        assert_eq!(
            clip(&"é".repeat(50_000), TEXT_MAX).chars().count(),
            TEXT_MAX
        );
        assert_eq!(slug("Listeners, room main"), "listeners--room-main");
        assert_eq!(slug("…"), "chart");
    }
}
