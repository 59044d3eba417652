//! A fake Slack Web API for tests: a real HTTP server on 127.0.0.1 that
//! checks requests as Slack does (bearer token, content type, required
//! fields, channel membership, thread and message existence, text and block
//! limits), answers with Slack's response shapes, records every accepted
//! message, and can be told to fail: 429 with `Retry-After`, 5xx, or a
//! request that hangs past the client's timeout.
//!
//! Used by test files as `mod fake_slack;`; not every file uses every part.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::{Map, Value as Json, json};
use tokio_util::sync::CancellationToken;

/// The token the fake accepts.
pub const TOKEN: &str = "xoxb-1111-2222-fakefakefake";
/// The app-level token `apps.connections.open` accepts (Socket Mode).
pub const APP_TOKEN: &str = "xapp-1-A0FIREBRK1-3333-fakefakefake";
/// The app's signing secret: the fake signs what it sends the bot with it.
pub const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
/// Slack's limit on message text.
pub const TEXT_MAX: usize = 40_000;
/// Slack's limit on blocks per message.
pub const BLOCKS_MAX: usize = 50;

/// A message as Slack holds it after accepting it.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub text: String,
    pub blocks: Option<Json>,
    /// Earlier versions (text) replaced by chat.update, oldest first.
    pub history: Vec<String>,
    /// What the poster attached as `metadata`.
    pub metadata: Option<Json>,
}

impl Message {
    /// The button labelled `label` in the message's blocks.
    pub fn button(&self, label: &str) -> Option<Json> {
        self.blocks
            .as_ref()?
            .as_array()?
            .iter()
            .filter(|b| b["type"] == "actions")
            .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
            .find(|e| e["text"]["text"] == label)
    }
}

/// A file shared by files.completeUploadExternal.
#[derive(Clone, Debug, PartialEq)]
pub struct SharedFile {
    pub id: String,
    pub channel: String,
    pub thread_ts: Option<String>,
    pub title: Option<String>,
    pub bytes: Vec<u8>,
}

/// One request the fake answered, for timing assertions.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub at: Instant,
    /// HTTP status and, for HTTP 200, Slack's `error` when `ok` was false.
    pub status: u16,
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// HTTP 429 with `Retry-After: secs`, as Slack rate-limits.
    RateLimited { retry_after_secs: u64 },
    /// An HTTP error status without a JSON body, as a load balancer gives.
    Status(u16),
    /// Answer only after this long (past the client's timeout), without
    /// acting on the request: Slack never got it.
    Hang(Duration),
    /// Act on the request, then answer only after this long: Slack took it
    /// but the client timed out first and cannot know.
    ActThenHang(Duration),
}

struct Channel {
    id: String,
    name: String,
    member: bool,
}

struct Upload {
    length: usize,
    bytes: Option<Vec<u8>>,
}

#[derive(Default)]
struct St {
    channels: Vec<Channel>,
    messages: Vec<Message>,
    files: HashMap<String, Upload>,
    shared: Vec<SharedFile>,
    /// Pending faults, each for one call of the named method (any when
    /// `None`), taken in order.
    faults: VecDeque<(Option<String>, Fault)>,
    calls: Vec<Call>,
    next: u64,
    /// User group id -> member user ids.
    groups: HashMap<String, Vec<String>>,
    /// What the bot posted to response URLs: (URL path, body).
    responses: Vec<(String, Json)>,
    /// Socket Mode: frames to send to the connected bot.
    socket_out: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    /// Socket Mode: what the bot sent back, in order.
    socket_in: Vec<Json>,
    socket_connections: usize,
}

#[derive(Clone)]
struct Shared {
    st: Arc<Mutex<St>>,
    base: String,
    /// The Socket Mode WebSocket listener.
    ws: SocketAddr,
}

pub struct FakeSlack {
    pub addr: SocketAddr,
    shared: Shared,
    stop: CancellationToken,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl FakeSlack {
    /// Starts with channels `#incidents` (C0INCIDENTS1) and `#ops`
    /// (C0OPS000001) that the bot is in, and `#quiet` (C0QUIET00001) that
    /// it is not.
    pub async fn start() -> FakeSlack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let st = St {
            channels: vec![
                chan("C0INCIDENTS1", "incidents", true),
                chan("C0OPS000001", "ops", true),
                chan("C0QUIET00001", "quiet", false),
            ],
            ..St::default()
        };
        let ws_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shared = Shared {
            st: Arc::new(Mutex::new(st)),
            base: format!("http://{addr}"),
            ws: ws_listener.local_addr().unwrap(),
        };
        let app = Router::new()
            .route("/api/{method}", any(api))
            .route("/upload/v1/{file}", post(upload))
            .route("/respond/{id}", post(respond))
            .with_state(shared.clone());
        let stop = CancellationToken::new();
        tokio::spawn(socket_server(ws_listener, shared.st.clone(), stop.clone()));
        let s = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
                .unwrap();
        });
        FakeSlack { addr, shared, stop }
    }

    /// The Web API base for `chat.slack.api_url`.
    pub fn api_url(&self) -> reqwest::Url {
        reqwest::Url::parse(&format!("http://{}/api/", self.addr)).unwrap()
    }

    fn st(&self) -> std::sync::MutexGuard<'_, St> {
        self.shared.st.lock().unwrap()
    }

    /// The next `n` Web API calls fail this way.
    pub fn fail_next(&self, n: usize, f: Fault) {
        let mut st = self.st();
        st.faults.extend(std::iter::repeat_n((None, f), n));
    }

    /// The next `n` calls of `method` fail this way.
    pub fn fail_next_of(&self, method: &str, n: usize, f: Fault) {
        let mut st = self.st();
        st.faults
            .extend(std::iter::repeat_n((Some(method.to_owned()), f), n));
    }

    /// Slack is healthy again.
    pub fn clear_faults(&self) {
        self.st().faults.clear();
    }

    pub fn messages(&self) -> Vec<Message> {
        self.st().messages.clone()
    }

    /// Top-level messages and replies of `channel` (an id), in post order.
    pub fn in_channel(&self, channel: &str) -> Vec<Message> {
        self.st()
            .messages
            .iter()
            .filter(|m| m.channel == channel)
            .cloned()
            .collect()
    }

    pub fn shared_files(&self) -> Vec<SharedFile> {
        self.st().shared.clone()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.st().calls.clone()
    }

    /// `usergroups.users.list` answers `members` for `group` from now on.
    /// A channel the bot is in, besides the ones it starts with.
    pub fn add_channel(&self, id: &str, name: &str) {
        self.st().channels.push(chan(id, name, true));
    }

    pub fn set_group(&self, group: &str, members: &[&str]) {
        self.st().groups.insert(
            group.to_owned(),
            members.iter().map(|m| (*m).to_owned()).collect(),
        );
    }

    /// A person's message in `channel` (an id), as a thread to answer
    /// under; returns its ts.
    pub fn user_says(&self, channel: &str, user: &str, text: &str) -> String {
        let mut st = self.st();
        let ts = next_ts(&mut st);
        st.messages.push(Message {
            channel: channel.to_owned(),
            ts: ts.clone(),
            thread_ts: None,
            text: format!("{user}: {text}"),
            blocks: None,
            history: Vec::new(),
            metadata: None,
        });
        ts
    }

    /// A response URL for one request, as Slack hands out.
    pub fn response_url(&self, id: &str) -> String {
        format!("{}/respond/{id}", self.shared.base)
    }

    /// What the bot posted to response URLs: (id, body), in order.
    pub fn responses(&self) -> Vec<(String, Json)> {
        self.st().responses.clone()
    }

    /// Waits up to `secs` for at least `n` response URL posts.
    pub async fn wait_responses(&self, n: usize, secs: u64) -> Vec<(String, Json)> {
        poll(secs, || Some(self.responses()).filter(|r| r.len() >= n))
            .await
            .unwrap_or_else(|| self.responses())
    }

    /// Waits up to `secs` for a message whose text contains `needle`.
    pub async fn wait_message(&self, needle: &str, secs: u64) -> Option<Message> {
        poll(secs, || {
            self.messages()
                .into_iter()
                .find(|m| m.text.contains(needle))
        })
        .await
    }

    /// How many Socket Mode URLs the bot has asked for.
    pub fn socket_connections(&self) -> usize {
        self.st().socket_connections
    }

    /// Sends a frame to the bot over the current Socket Mode connection;
    /// false when none is open.
    pub fn socket_send(&self, frame: &Json) -> bool {
        self.st()
            .socket_out
            .as_ref()
            .is_some_and(|tx| tx.send(frame.to_string()).is_ok())
    }

    /// Waits up to `secs` for a Socket Mode connection to be open.
    pub async fn wait_socket(&self, secs: u64) -> bool {
        poll(secs, || {
            self.st()
                .socket_out
                .as_ref()
                .is_some_and(|tx| !tx.is_closed())
                .then_some(())
        })
        .await
        .is_some()
    }

    /// Waits up to `secs` for the bot's acknowledgement of `envelope_id`.
    pub async fn socket_ack(&self, envelope_id: &str, secs: u64) -> Option<Json> {
        poll(secs, || {
            self.st()
                .socket_in
                .iter()
                .find(|a| a["envelope_id"] == envelope_id)
                .cloned()
        })
        .await
    }
}

/// `f` every 20ms until it gives something or `secs` pass.
pub async fn poll<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Slack calling the bot: requests signed as Slack signs them, with
/// `v0=hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))`, computed here
/// independently of the bot's own check.
pub mod to_bot {
    use hmac::{KeyInit, Mac};
    use serde_json::{Value as Json, json};

    pub fn now_s() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    pub fn sign(secret: &str, ts: i64, body: &str) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("v0:{ts}:{body}").as_bytes());
        let bytes = mac.finalize().into_bytes();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("v0={hex}")
    }

    /// A request as Slack sends it: `signature` `None` signs it properly
    /// with the fake's secret.
    pub async fn send(
        bot: std::net::SocketAddr,
        path: &str,
        content_type: &str,
        body: &str,
        ts: i64,
        signature: Option<String>,
    ) -> reqwest::Response {
        let sig = signature.unwrap_or_else(|| sign(super::SIGNING_SECRET, ts, body));
        reqwest::Client::new()
            .post(format!("http://{bot}{path}"))
            .header("content-type", content_type)
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", sig)
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    pub const FORM: &str = "application/x-www-form-urlencoded";

    /// `/firebreak TEXT` from `user`, as the slash command form.
    pub fn slash(user: &str, name: &str, text: &str, response_url: &str) -> String {
        serde_urlencoded::to_string([
            ("token", "deprecated-verification-token"),
            ("team_id", "T0FIREBRK1"),
            ("team_domain", "firebreak-test"),
            ("channel_id", "C0INCIDENTS1"),
            ("channel_name", "incidents"),
            ("user_id", user),
            ("user_name", name),
            ("command", "/firebreak"),
            ("text", text),
            ("api_app_id", "A0FIREBRK1"),
            ("response_url", response_url),
            ("trigger_id", "1234.5678.abcd"),
        ])
        .unwrap()
    }

    /// The `block_actions` payload of a click on a button of one of the
    /// bot's messages.
    pub fn click_payload(user: &str, name: &str, button: &Json, response_url: &str) -> Json {
        json!({
            "type": "block_actions",
            "user": {"id": user, "username": name, "name": name, "team_id": "T0FIREBRK1"},
            "api_app_id": "A0FIREBRK1",
            "token": "deprecated-verification-token",
            "container": {"type": "message", "channel_id": "C0INCIDENTS1", "is_ephemeral": false},
            "trigger_id": "1234.5678.abcd",
            "team": {"id": "T0FIREBRK1", "domain": "firebreak-test"},
            "channel": {"id": "C0INCIDENTS1", "name": "incidents"},
            "response_url": response_url,
            "actions": [{
                "action_id": button["action_id"],
                "block_id": "b1",
                "text": button["text"],
                "value": button["value"],
                "type": "button",
                "action_ts": "1700000000.000100",
            }],
        })
    }

    /// The interactivity form around a payload.
    pub fn click(payload: &Json) -> String {
        serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap()
    }

    /// An `app_mention` event callback.
    pub fn mention(event_id: &str, user: &str, channel: &str, ts: &str, text: &str) -> Json {
        json!({
            "token": "deprecated-verification-token",
            "team_id": "T0FIREBRK1",
            "api_app_id": "A0FIREBRK1",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": now_s(),
            "event": {
                "type": "app_mention", "user": user, "text": text, "ts": ts,
                "channel": channel, "event_ts": ts,
            },
        })
    }
}

/// The Socket Mode side: one connection at a time, as a test needs; a
/// new one replaces the old. Says hello, forwards frames the test sends,
/// records what the bot sends back.
async fn socket_server(
    listener: tokio::net::TcpListener,
    st: Arc<Mutex<St>>,
    stop: CancellationToken,
) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;
    loop {
        let (tcp, _) = tokio::select! {
            a = listener.accept() => match a { Ok(a) => a, Err(_) => return },
            () = stop.cancelled() => return,
        };
        let st = st.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
            st.lock().unwrap().socket_out = Some(tx);
            let hello = json!({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0FIREBRK1"}, "debug_info": {"host": "fake"}});
            if ws.send(Ws::Text(hello.to_string().into())).await.is_err() {
                return;
            }
            loop {
                tokio::select! {
                    out = rx.recv() => match out {
                        Some(t) => if ws.send(Ws::Text(t.into())).await.is_err() { return },
                        None => return,
                    },
                    got = ws.next() => match got {
                        Some(Ok(Ws::Text(t))) => {
                            if let Ok(v) = serde_json::from_str::<Json>(t.as_str()) {
                                st.lock().unwrap().socket_in.push(v);
                            }
                        }
                        Some(Ok(Ws::Close(_))) | None | Some(Err(_)) => return,
                        Some(Ok(_)) => {}
                    },
                    () = stop.cancelled() => return,
                }
            }
        });
    }
}

/// A response URL: records the answer; Slack answers `ok` in plain text.
async fn respond(
    State(sh): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let Ok(v) = serde_json::from_slice::<Json>(&body) else {
        return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
    };
    if !json_body || v.get("text").and_then(Json::as_str).is_none() {
        return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
    }
    sh.st.lock().unwrap().responses.push((id, v));
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], "ok").into_response()
}

fn chan(id: &str, name: &str, member: bool) -> Channel {
    Channel {
        id: id.into(),
        name: name.into(),
        member,
    }
}

fn slack_json(status: StatusCode, body: Json) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

fn err(code: &str) -> Result<Json, String> {
    Err(code.to_owned())
}

/// Every Web API method: faults first, then the token, then the method.
async fn api(
    State(sh): State<Shared>,
    Path(method): Path<String>,
    http_method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let fault = {
        let mut st = sh.st.lock().unwrap();
        let i = st
            .faults
            .iter()
            .position(|(m, _)| m.as_ref().is_none_or(|m| *m == method));
        i.and_then(|i| st.faults.remove(i)).map(|(_, f)| f)
    };
    let record = |status: u16, error: Option<String>| {
        sh.st.lock().unwrap().calls.push(Call {
            method: method.clone(),
            at: Instant::now(),
            status,
            error,
        });
    };
    match fault {
        Some(Fault::RateLimited { retry_after_secs }) => {
            record(429, Some("ratelimited".into()));
            let mut r = slack_json(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"ok": false, "error": "ratelimited"}),
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_str(&retry_after_secs.to_string()).unwrap(),
            );
            return r;
        }
        Some(Fault::Status(s)) => {
            record(s, None);
            let status = StatusCode::from_u16(s).unwrap();
            return (
                status,
                [(header::CONTENT_TYPE, "text/html")],
                format!("<html><body>{status}</body></html>"),
            )
                .into_response();
        }
        Some(Fault::Hang(d)) => {
            record(0, Some("hang".into()));
            tokio::time::sleep(d).await;
            return slack_json(
                StatusCode::GATEWAY_TIMEOUT,
                json!({"ok": false, "error": "request_timeout"}),
            );
        }
        Some(Fault::ActThenHang(_)) | None => {}
    }
    let late = match fault {
        Some(Fault::ActThenHang(d)) => Some(d),
        _ => None,
    };
    let mut warnings = Vec::new();
    let answer = (|| {
        check_token(&headers, &method)?;
        let args = args(
            &http_method,
            &headers,
            query.as_deref(),
            &body,
            &mut warnings,
        )?;
        let mut st = sh.st.lock().unwrap();
        match method.as_str() {
            "apps.connections.open" => {
                st.socket_connections += 1;
                Ok(json!({"url": format!("ws://{}/link/?ticket={}", sh.ws, st.socket_connections)}))
            }
            "usergroups.users.list" => {
                let g = str_arg(&args, "usergroup").ok_or("no_such_subteam")?;
                let members = st.groups.get(g).ok_or("no_such_subteam")?;
                Ok(json!({"users": members}))
            }
            "auth.test" => Ok(json!({
                "url": "https://firebreak-test.slack.com/",
                "team": "Firebreak Test",
                "user": "firebreak",
                "team_id": "T0FIREBRK1",
                "user_id": "U0FIREBRK1",
                "bot_id": "B0FIREBRK1",
                "is_enterprise_install": false,
            })),
            "chat.postMessage" => post_message(&mut st, &args),
            "chat.update" => update(&mut st, &args),
            "conversations.list" => list(&st, &args),
            "conversations.history" => history(&st, &args, None),
            "conversations.replies" => {
                let ts = str_arg(&args, "ts").ok_or("thread_not_found")?.to_owned();
                history(&st, &args, Some(&ts))
            }
            "files.getUploadURLExternal" => upload_url(&mut st, &sh.base, &args),
            "files.completeUploadExternal" => complete_upload(&mut st, &args),
            _ => err("unknown_method"),
        }
    })();
    let (body, error) = match answer {
        Ok(mut v) => {
            let o = v.as_object_mut().unwrap();
            let mut out = Map::new();
            out.insert("ok".into(), json!(true));
            out.append(o);
            (Json::Object(out), None)
        }
        Err(code) => (json!({"ok": false, "error": code}), Some(code)),
    };
    let mut body = body;
    if !warnings.is_empty() {
        body["warning"] = json!(warnings.join(","));
        body["response_metadata"] = json!({"warnings": warnings});
    }
    record(200, error);
    if let Some(d) = late {
        tokio::time::sleep(d).await;
    }
    slack_json(StatusCode::OK, body)
}

/// `conversations.history` (top-level messages) or, with `thread`,
/// `conversations.replies`: newest first, from `oldest` on; metadata only
/// when `include_all_metadata` is asked for, as Slack does.
fn history(st: &St, args: &Map<String, Json>, thread: Option<&str>) -> Result<Json, String> {
    let c = str_arg(args, "channel").ok_or("channel_not_found")?;
    if !st.channels.iter().any(|ch| ch.id == c) {
        return err("channel_not_found");
    }
    let oldest: f64 = str_arg(args, "oldest")
        .map(|o| o.parse().map_err(|_| "invalid_arguments".to_owned()))
        .transpose()?
        .unwrap_or(0.0);
    let with_metadata = str_arg(args, "include_all_metadata") == Some("true");
    let mut out: Vec<Json> = st
        .messages
        .iter()
        .filter(|m| m.channel == c)
        .filter(|m| match thread {
            None => m.thread_ts.is_none(),
            Some(t) => m.ts == t || m.thread_ts.as_deref() == Some(t),
        })
        .filter(|m| m.ts.parse::<f64>().unwrap_or(0.0) >= oldest)
        .map(|m| {
            let mut v = json!({"type": "message", "ts": m.ts, "text": m.text});
            if let (true, Some(md)) = (with_metadata, &m.metadata) {
                v["metadata"] = md.clone();
            }
            v
        })
        .collect();
    out.reverse();
    Ok(json!({"messages": out, "has_more": false}))
}

/// Socket Mode takes the app-level token; everything else the bot's.
fn check_token(headers: &HeaderMap, method: &str) -> Result<(), String> {
    let Some(auth) = headers.get(header::AUTHORIZATION) else {
        return Err("not_authed".into());
    };
    let want = if method == "apps.connections.open" {
        APP_TOKEN
    } else {
        TOKEN
    };
    match auth.to_str().ok().and_then(|a| a.strip_prefix("Bearer ")) {
        Some(t) if t == want => Ok(()),
        Some(_) => Err("invalid_auth".into()),
        None => Err("not_authed".into()),
    }
}

/// The call's arguments, from the query string and a JSON or form body.
fn args(
    method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &Bytes,
    warnings: &mut Vec<String>,
) -> Result<Map<String, Json>, String> {
    let mut args = Map::new();
    if let Some(q) = query {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(q).map_err(|_| "invalid_arguments".to_owned())?;
        for (k, v) in pairs {
            args.insert(k, Json::String(v));
        }
    }
    if *method == Method::GET {
        return Ok(args);
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mime = ctype.split(';').next().unwrap_or("").trim();
    match mime {
        "application/json" => {
            if !ctype.contains("charset") {
                warnings.push("missing_charset".into());
            }
            let v: Json = serde_json::from_slice(body).map_err(|_| "invalid_json".to_owned())?;
            let Json::Object(o) = v else {
                return Err("json_not_object".into());
            };
            args.extend(o);
        }
        "application/x-www-form-urlencoded" => {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(body).map_err(|_| "invalid_form_data".to_owned())?;
            for (k, v) in pairs {
                args.insert(k, Json::String(v));
            }
        }
        "" if body.is_empty() => {}
        _ => return Err("invalid_post_type".into()),
    }
    Ok(args)
}

fn str_arg<'a>(args: &'a Map<String, Json>, k: &str) -> Option<&'a str> {
    args.get(k).and_then(Json::as_str).filter(|s| !s.is_empty())
}

/// A channel by id or name (`#name` or `name`), as chat.postMessage takes.
fn find_channel<'a>(st: &'a St, c: &str) -> Option<&'a Channel> {
    let name = c.strip_prefix('#').unwrap_or(c);
    st.channels.iter().find(|ch| ch.id == c || ch.name == name)
}

fn next_ts(st: &mut St) -> String {
    st.next += 1;
    // Slack's shape: seconds, a dot, six digits; unique and increasing.
    format!(
        "{}.{:06}",
        1_700_000_000 + st.next / 10_000,
        st.next % 10_000 * 100
    )
}

/// Text and blocks as Slack checks them; form posts carry blocks as a JSON
/// string.
fn content(args: &Map<String, Json>) -> Result<(String, Option<Json>), String> {
    let text = args
        .get("text")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_owned();
    let blocks = match args.get("blocks") {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) => {
            Some(serde_json::from_str::<Json>(s).map_err(|_| "invalid_blocks_format".to_owned())?)
        }
        Some(v) => Some(v.clone()),
    };
    if let Some(b) = &blocks {
        let Some(arr) = b.as_array() else {
            return Err("invalid_blocks_format".into());
        };
        if arr.len() > BLOCKS_MAX
            || arr
                .iter()
                .any(|blk| blk.get("type").and_then(Json::as_str).is_none())
        {
            return Err("invalid_blocks".into());
        }
    }
    if text.is_empty()
        && blocks
            .as_ref()
            .is_none_or(|b| b.as_array().is_some_and(Vec::is_empty))
    {
        return Err("no_text".into());
    }
    if text.chars().count() > TEXT_MAX {
        return Err("msg_too_long".into());
    }
    Ok((text, blocks))
}

fn post_message(st: &mut St, args: &Map<String, Json>) -> Result<Json, String> {
    let c = str_arg(args, "channel").ok_or("channel_not_found")?;
    let ch = find_channel(st, c).ok_or("channel_not_found")?;
    if !ch.member {
        return err("not_in_channel");
    }
    let channel = ch.id.clone();
    let (text, blocks) = content(args)?;
    let thread_ts = str_arg(args, "thread_ts").map(str::to_owned);
    if let Some(t) = &thread_ts
        && !st
            .messages
            .iter()
            .any(|m| m.channel == channel && &m.ts == t)
    {
        return err("thread_not_found");
    }
    let ts = next_ts(st);
    let mut message = json!({
        "type": "message", "subtype": "bot_message", "text": text, "ts": ts,
        "user": "U0FIREBRK1", "bot_id": "B0FIREBRK1", "app_id": "A0FIREBRK1", "team": "T0FIREBRK1",
    });
    if let Some(b) = &blocks {
        message["blocks"] = b.clone();
    }
    if let Some(t) = &thread_ts {
        message["thread_ts"] = json!(t);
        message["parent_user_id"] = json!("U0FIREBRK1");
    }
    st.messages.push(Message {
        channel: channel.clone(),
        ts: ts.clone(),
        thread_ts,
        text,
        blocks,
        history: Vec::new(),
        metadata: args.get("metadata").cloned(),
    });
    Ok(json!({"channel": channel, "ts": ts, "message": message}))
}

fn update(st: &mut St, args: &Map<String, Json>) -> Result<Json, String> {
    // chat.update wants the id; a name is channel_not_found, as on Slack.
    let c = str_arg(args, "channel").ok_or("channel_not_found")?;
    if !st.channels.iter().any(|ch| ch.id == c) {
        return err("channel_not_found");
    }
    let ts = str_arg(args, "ts").ok_or("message_not_found")?.to_owned();
    let (text, blocks) = content(args)?;
    let m = st
        .messages
        .iter_mut()
        .find(|m| m.channel == c && m.ts == ts)
        .ok_or("message_not_found")?;
    let old = std::mem::replace(&mut m.text, text.clone());
    m.history.push(old);
    m.blocks = blocks.clone();
    let mut message = json!({"type": "message", "text": text, "user": "U0FIREBRK1", "bot_id": "B0FIREBRK1", "edited": {"user": "U0FIREBRK1", "ts": ts}});
    if let Some(b) = blocks {
        message["blocks"] = b;
    }
    Ok(json!({"channel": c, "ts": ts, "text": text, "message": message}))
}

fn list(st: &St, args: &Map<String, Json>) -> Result<Json, String> {
    let limit: usize = str_arg(args, "limit")
        .map_or(Ok(100), str::parse)
        .map_err(|_| "invalid_limit".to_owned())?
        .clamp(1, 1000);
    let from: usize = match str_arg(args, "cursor") {
        None => 0,
        Some(c) => c
            .strip_prefix("dGVhbTpD")
            .and_then(|n| n.parse().ok())
            .ok_or("invalid_cursor")?,
    };
    let page: Vec<Json> = st
        .channels
        .iter()
        .skip(from)
        .take(limit)
        .map(|c| json!({"id": c.id, "name": c.name, "is_channel": true, "is_private": false, "is_archived": false, "is_member": c.member}))
        .collect();
    let next = if from + limit < st.channels.len() {
        format!("dGVhbTpD{}", from + limit)
    } else {
        String::new()
    };
    Ok(json!({"channels": page, "response_metadata": {"next_cursor": next}}))
}

fn upload_url(st: &mut St, base: &str, args: &Map<String, Json>) -> Result<Json, String> {
    str_arg(args, "filename").ok_or("invalid_arguments")?;
    let length: usize = str_arg(args, "length")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .ok_or("invalid_arguments")?;
    st.next += 1;
    let id = format!("F0FAKE{:05}", st.next);
    st.files.insert(
        id.clone(),
        Upload {
            length,
            bytes: None,
        },
    );
    Ok(json!({"upload_url": format!("{base}/upload/v1/{id}"), "file_id": id}))
}

/// The upload URL: takes the bytes, answers in plain text as Slack's does.
async fn upload(State(sh): State<Shared>, Path(file): Path<String>, body: Bytes) -> Response {
    let mut st = sh.st.lock().unwrap();
    match st.files.get_mut(&file) {
        Some(u) if u.length == body.len() => {
            u.bytes = Some(body.to_vec());
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain")],
                format!("OK - {}", body.len()),
            )
                .into_response()
        }
        Some(_) => (StatusCode::BAD_REQUEST, "length mismatch").into_response(),
        None => (StatusCode::NOT_FOUND, "no such upload").into_response(),
    }
}

fn complete_upload(st: &mut St, args: &Map<String, Json>) -> Result<Json, String> {
    let files: Vec<Json> = match args.get("files") {
        Some(Json::Array(a)) => a.clone(),
        Some(Json::String(s)) => {
            serde_json::from_str(s).map_err(|_| "invalid_arguments".to_owned())?
        }
        _ => return err("invalid_arguments"),
    };
    let channel = match str_arg(args, "channel_id") {
        Some(c) => Some(
            st.channels
                .iter()
                .find(|ch| ch.id == c)
                .ok_or("channel_not_found")?
                .id
                .clone(),
        ),
        None => None,
    };
    let thread_ts = str_arg(args, "thread_ts").map(str::to_owned);
    if let Some(t) = &thread_ts {
        let c = channel.as_deref().ok_or("invalid_arguments")?;
        if !st.messages.iter().any(|m| m.channel == c && &m.ts == t) {
            return err("invalid_thread_ts");
        }
    }
    let mut out = Vec::new();
    for f in &files {
        let id = f
            .get("id")
            .and_then(Json::as_str)
            .ok_or("invalid_arguments")?;
        let bytes = st
            .files
            .get(id)
            .and_then(|u| u.bytes.clone())
            .ok_or("file_not_found")?;
        let title = f.get("title").and_then(Json::as_str).map(str::to_owned);
        if let Some(c) = &channel {
            st.shared.push(SharedFile {
                id: id.to_owned(),
                channel: c.clone(),
                thread_ts: thread_ts.clone(),
                title: title.clone(),
                bytes,
            });
        }
        out.push(json!({"id": id, "title": title.unwrap_or_default()}));
    }
    Ok(json!({"files": out}))
}
