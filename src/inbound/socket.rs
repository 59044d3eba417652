//! Slack Socket Mode: slash commands, buttons and events over a WebSocket
//! the bot opens itself, for a bot with no public URL.
//!
//! `apps.connections.open` (with the app-level token) gives a one-time
//! `wss://` URL. Slack sends envelopes over it: `hello`, `disconnect`
//! (when it is about to close the connection, so the bot reconnects
//! first), and `slash_commands`, `interactive` and `events_api`, each of
//! which must be acknowledged with its `envelope_id` within three seconds.
//! A slash command's acknowledgement may carry the answer, as over HTTP;
//! the payloads are the HTTP ones, parsed by the same
//! [`super::slack`] functions and answered by the same
//! [`Inbound::respond`].
//!
//! The connection is reopened after a `disconnect`, a close, an error, or
//! [`SILENCE`] without a frame (a connection can die without a close), with
//! a backoff from one second to a minute while Slack keeps failing.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::slack::{
    Inbound, Incoming, PayloadError, ack_body, parse_command_json, parse_event_json,
    parse_interaction_json,
};
use crate::chat::ChatError;
use crate::chat::slack::Slack;

/// How often the bot pings Slack; a pong or any frame proves the link.
const PING_EVERY: Duration = Duration::from_secs(30);
/// No frame at all for this long: the connection is dead, open another.
const SILENCE: Duration = Duration::from_secs(90);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Acknowledgements waiting for the socket: one per envelope in flight,
/// and Slack does not send many at once. Full, an envelope's task waits.
const ACKS: usize = 64;

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    envelope_id: Option<String>,
    #[serde(default)]
    payload: serde_json::Value,
    #[serde(default)]
    reason: Option<String>,
}

/// Why one connection ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Shutdown,
    /// Slack asked for a reconnect (`disconnect`), or closed.
    Reconnect(String),
    /// The link failed.
    Broken(String),
}

/// Keeps a Socket Mode connection open until `shutdown`.
pub async fn run(
    inbound: Arc<Inbound>,
    slack: Arc<Slack>,
    app_token: String,
    shutdown: CancellationToken,
) {
    crate::net::install_crypto_provider();
    let mut backoff = BACKOFF_MIN;
    while !shutdown.is_cancelled() {
        let url = tokio::select! {
            u = slack.connections_open(&app_token) => u,
            () = shutdown.cancelled() => return,
        };
        let url = match url {
            Ok(u) => u,
            Err(ChatError::Rejected(why) | ChatError::Refused(why)) => {
                tracing::error!(%why, "slack refused to open a Socket Mode connection; check chat.slack.app_token_secret (an xapp- token with connections:write) and that Socket Mode is on in the app's settings");
                // A person has to fix this; asking often changes nothing.
                if sleep_or_stop(BACKOFF_MAX, &shutdown).await {
                    return;
                }
                continue;
            }
            Err(ChatError::Retry { reason, .. }) => {
                tracing::warn!(%reason, retry_in = ?backoff, "cannot open a Socket Mode connection");
                if sleep_or_stop(backoff, &shutdown).await {
                    return;
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let opened = Instant::now();
        let ended = match tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(url.as_str()),
        )
        .await
        {
            Ok(Ok((ws, _))) => {
                tracing::info!("slack Socket Mode connected");
                session(ws, &inbound, &shutdown).await
            }
            Ok(Err(e)) => Ended::Broken(crate::net::error_chain(&e)),
            Err(_) => Ended::Broken("no WebSocket handshake within 10s".into()),
        };
        match ended {
            Ended::Shutdown => return,
            Ended::Reconnect(why) => {
                tracing::info!(%why, "slack Socket Mode reconnecting");
                backoff = BACKOFF_MIN;
            }
            Ended::Broken(why) => {
                // A connection that lived a while was healthy: start the
                // backoff over.
                if opened.elapsed() > BACKOFF_MAX {
                    backoff = BACKOFF_MIN;
                }
                tracing::warn!(%why, retry_in = ?backoff, "slack Socket Mode connection lost");
                if sleep_or_stop(backoff, &shutdown).await {
                    return;
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// True when shutdown came first.
async fn sleep_or_stop(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        () = shutdown.cancelled() => true,
    }
}

async fn session<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    inbound: &Arc<Inbound>,
    shutdown: &CancellationToken,
) -> Ended
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let (ack_tx, mut ack_rx) = mpsc::channel::<String>(ACKS);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.reset();
    let mut last_frame = Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                let _ = sink.send(Message::Close(None)).await;
                return Ended::Shutdown;
            }
            Some(ack) = ack_rx.recv() => {
                if let Err(e) = sink.send(Message::Text(ack.into())).await {
                    return Ended::Broken(format!("sending an acknowledgement: {e}"));
                }
            }
            _ = ping.tick() => {
                if last_frame.elapsed() > SILENCE {
                    return Ended::Broken(format!("nothing from Slack for {}s", SILENCE.as_secs()));
                }
                if let Err(e) = sink.send(Message::Ping(Vec::new().into())).await {
                    return Ended::Broken(format!("ping: {e}"));
                }
            }
            frame = stream.next() => {
                last_frame = Instant::now();
                match frame {
                    None => return Ended::Reconnect("connection closed".into()),
                    Some(Err(e)) => return Ended::Broken(e.to_string()),
                    Some(Ok(Message::Close(c))) => {
                        return Ended::Reconnect(c.map_or_else(|| "closed".into(), |c| format!("closed: {}", c.reason)));
                    }
                    Some(Ok(Message::Text(t))) => {
                        if let Some(end) = envelope(t.as_str(), inbound, &ack_tx) {
                            return end;
                        }
                    }
                    // tungstenite answers pings itself; pongs only prove
                    // the link, which `last_frame` records.
                    Some(Ok(_)) => {}
                }
            }
        }
    }
}

/// Handles one text frame; `Some` when the connection should end.
fn envelope(text: &str, inbound: &Arc<Inbound>, acks: &mpsc::Sender<String>) -> Option<Ended> {
    let env: Envelope = match serde_json::from_str(text) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable Socket Mode frame");
            return None;
        }
    };
    let parse: fn(&serde_json::Value) -> Result<Incoming, PayloadError> = match env.kind.as_str() {
        "hello" => {
            tracing::debug!("slack Socket Mode hello");
            return None;
        }
        "disconnect" => {
            let reason = env.reason.unwrap_or_default();
            if reason == "link_disabled" {
                tracing::error!(
                    "slack disabled Socket Mode for this app; turn it back on in the app's settings"
                );
            }
            return Some(Ended::Reconnect(format!("slack asked: {reason}")));
        }
        "slash_commands" => parse_command_json,
        "interactive" => parse_interaction_json,
        "events_api" => parse_event_json,
        other => {
            tracing::debug!(kind = other, "Socket Mode envelope left alone");
            |_| Ok(Incoming::Ignored("unknown envelope".into()))
        }
    };
    let Some(id) = env.envelope_id else {
        tracing::warn!(kind = %env.kind, "Socket Mode envelope without an envelope_id");
        return None;
    };
    let incoming = match parse(&env.payload) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, kind = %env.kind, "cannot read a Socket Mode payload; acknowledging it so Slack does not resend it");
            Incoming::Ignored(e.to_string())
        }
    };
    // Each envelope on its own task: a slow command must not hold up the
    // next envelope's acknowledgement.
    let inbound = inbound.clone();
    let acks = acks.clone();
    inbound.clone().tasks().spawn(async move {
        let ack = inbound.respond(incoming).await;
        let mut out = json!({ "envelope_id": id });
        if let Some(payload) = ack_body(&ack) {
            out["payload"] = payload;
        }
        // The session may have ended meanwhile; Slack then resends the
        // envelope on the next connection.
        let _ = acks.send(out.to_string()).await;
    });
    None
}
