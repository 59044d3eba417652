//! The simulator as an HTTP service: `/metrics` for scraping, the admin API
//! the bot's runbooks call, the idempotency layer, and the background
//! ticker that keeps the world in step with the clock.
//!
//! Every request first advances the world to `clock.now()`, so what a
//! client sees is never staler than the clock, even between ticks.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::SimOptions;
use super::model::{SimError, StateSnapshot, World};
use crate::clock::{Clock, Millis};

/// How many idempotency keys are remembered; the oldest is forgotten first.
/// 10,000 keys of a fingerprint and a small JSON body each stay well under
/// a few megabytes, and runbook retries come within minutes, not days.
pub const IDEMPOTENCY_KEYS: usize = 10_000;
/// Longest accepted `Idempotency-Key`.
const MAX_KEY_LEN: usize = 255;
/// A clock more than this far ahead of the world is not caught up tick by
/// tick (that could take minutes under the lock); the world skips ahead.
const MAX_CATCH_UP_MS: Millis = 24 * 3600 * 1000;
/// Header on a replayed response.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Shared handle: the world behind a mutex plus the clock.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Mutex<Inner>>,
    clock: Clock,
    origin: Millis,
}

struct Inner {
    world: World,
    /// The same world that no admin call reaches, stepped in lockstep:
    /// what doing nothing would have cost, as it happens.
    untouched: World,
    idem: IdemStore,
}

impl Sim {
    pub fn new(opts: SimOptions, clock: Clock) -> Sim {
        let origin = opts.scenario.start;
        Sim {
            inner: Arc::new(Mutex::new(Inner {
                world: World::new(&opts.scenario, opts.seed),
                untouched: World::new(&opts.scenario, opts.seed),
                idem: IdemStore::default(),
            })),
            clock,
            origin,
        }
    }

    /// Simulated epoch ms at which the shared clock should start: the
    /// scenario's `start`.
    pub fn scenario_origin(&self) -> Millis {
        self.origin
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Locks the world and brings it up to the clock.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the world half-ticked
        // in a way that matters more than stopping the demo would, so keep
        // serving from a poisoned mutex.
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now();
        if now - g.world.time() > MAX_CATCH_UP_MS {
            tracing::warn!(
                world = g.world.time(),
                now,
                "clock far ahead of the simulation; skipping ahead without simulating (start the clock at Sim::scenario_origin)"
            );
            g.world.skip_to(now);
            g.untouched.skip_to(now);
        }
        g.world.advance_to(now);
        g.untouched.advance_to(now);
        g
    }

    /// Advances to now, then runs `f` on the world (for tests and the demo).
    pub fn with_world<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.lock().world)
    }

    /// Advances to now, then returns the full state.
    pub fn snapshot(&self) -> StateSnapshot {
        self.lock().world.snapshot()
    }

    /// The Prometheus exposition as of now.
    pub fn metrics_text(&self) -> String {
        let mut s = String::with_capacity(16 * 1024);
        let g = self.lock();
        g.world.render_metrics(&mut s);
        World::render_counterfactual(&g.untouched, &mut s);
        s
    }

    /// All routes: `/metrics`, `/healthz` and the admin API under `/api/v1`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/v1/state", get(state))
            .route("/api/v1/events/{event}", get(get_event))
            .route("/api/v1/events/{event}/move", post(move_event))
            .route("/api/v1/events/{event}/overflow", post(add_overflow))
            .route("/api/v1/accounts/{account}", get(get_account))
            .route("/api/v1/rooms", get(list_rooms).post(create_room))
            .route("/api/v1/rooms/{room}", get(get_room).patch(provision_room))
            .route("/api/v1/rooms/{room}/cap", put(set_cap))
            .route("/api/v1/rooms/{room}/waiting_room", put(set_waiting_room))
            .route(
                "/api/v1/rooms/{room}/speakers/{speaker}/mute",
                post(mute_speaker),
            )
            .route(
                "/api/v1/rooms/{room}/speakers/{speaker}/soundcheck",
                post(soundcheck),
            )
            // Only the admin API has outages; metrics keep flowing.
            .route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                admin_api_faults,
            ))
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            // Outside the admin API's outages: a bot started during one
            // must still find the time.
            .route("/api/v1/clock", get(clock))
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(self.clone())
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight requests.
    /// Also runs the ticker that advances the world between requests.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let addr = listener.local_addr().context("listener address")?;
        tracing::info!(%addr, "simulator listening");
        let ticker_stop = shutdown.child_token();
        let ticker = tokio::spawn(self.clone().ticker(ticker_stop.clone()));
        let result = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .context("simulator HTTP server");
        ticker_stop.cancel();
        ticker.await.context("simulator ticker task")?;
        result
    }

    /// Advances the world every simulated second, or every 50 ms of real
    /// time if that is sooner, so counters move smoothly for scrapers even
    /// when nobody calls the API.
    async fn ticker(self, stop: CancellationToken) {
        let period = self
            .clock
            .real(Duration::from_secs(1))
            .clamp(Duration::from_millis(5), Duration::from_millis(50));
        let mut iv = tokio::time::interval(period);
        iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = iv.tick() => {
                    drop(self.lock());
                }
            }
        }
    }
}

// ------------------------------------------------------------- responses

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn error(status: StatusCode, msg: impl Into<String>) -> (StatusCode, Value) {
    (status, json!({ "error": msg.into() }))
}

fn sim_error(e: &SimError) -> (StatusCode, Value) {
    let status = match e {
        SimError::UnknownEvent { .. }
        | SimError::UnknownRoom { .. }
        | SimError::UnknownAccount { .. }
        | SimError::UnknownSpeaker { .. } => StatusCode::NOT_FOUND,
        SimError::Conflict(_) => StatusCode::CONFLICT,
        SimError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    error(status, e.to_string())
}

/// Parses a JSON body into a request type; the messages say which field is
/// wrong (serde_json names unknown and missing fields).
fn parse<T: serde::de::DeserializeOwned>(
    body: &Bytes,
    empty: &str,
) -> Result<T, (StatusCode, Value)> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        empty.as_bytes()
    } else {
        body
    };
    serde_json::from_slice(text)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

async fn not_found(uri: Uri) -> Response {
    let (s, v) = error(
        StatusCode::NOT_FOUND,
        format!(
            "no route {}; routes: GET /metrics, GET /api/v1/state, GET /api/v1/events/{{event}}, \
             POST /api/v1/events/{{event}}/move, POST /api/v1/events/{{event}}/overflow, GET /api/v1/accounts/{{account}}, GET|POST /api/v1/rooms, GET|PATCH /api/v1/rooms/{{room}}, \
             PUT /api/v1/rooms/{{room}}/cap, POST /api/v1/rooms/{{room}}/speakers/{{speaker}}/mute, \
             POST /api/v1/rooms/{{room}}/speakers/{{speaker}}/soundcheck",
            uri.path()
        ),
    );
    json_response(s, &v)
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let (s, v) = error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method {method} is not allowed on {}", uri.path()),
    );
    json_response(s, &v)
}

// -------------------------------------------------------------- handlers

async fn metrics(State(sim): State<Sim>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        sim.metrics_text(),
    )
        .into_response()
}

async fn state(State(sim): State<Sim>) -> Response {
    axum::Json(sim.snapshot()).into_response()
}

async fn get_event(State(sim): State<Sim>, Path(event): Path<String>) -> Response {
    let (s, v) = match sim.lock().world.event(&event) {
        Ok(e) => (StatusCode::OK, json!({ "event": e })),
        Err(e) => sim_error(&e),
    };
    json_response(s, &v)
}

async fn get_account(State(sim): State<Sim>, Path(account): Path<String>) -> Response {
    let (s, v) = match sim.lock().world.account(&account) {
        Ok(a) => (StatusCode::OK, json!({ "account": a })),
        Err(e) => sim_error(&e),
    };
    json_response(s, &v)
}

async fn get_room(State(sim): State<Sim>, Path(room): Path<String>) -> Response {
    let (s, v) = match sim.lock().world.room(&room) {
        Ok(r) => (StatusCode::OK, json!({ "room": r })),
        Err(e) => sim_error(&e),
    };
    json_response(s, &v)
}

async fn list_rooms(State(sim): State<Sim>) -> Response {
    let snap = sim.snapshot();
    json_response(StatusCode::OK, &json!({ "rooms": snap.rooms }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRoom {
    account: String,
    /// Default: the scenario's `room_defaults.capacity` (1,000,000 unless
    /// the scenario says otherwise).
    #[serde(default)]
    capacity: Option<i64>,
    #[serde(default)]
    admission_rate: Option<i64>,
    #[serde(default)]
    title: Option<String>,
}

fn positive(field: &str, v: Option<i64>) -> Result<Option<u64>, (StatusCode, Value)> {
    match v {
        None => Ok(None),
        Some(n) if n > 0 => Ok(Some(n as u64)),
        Some(n) => Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{field} must be a positive number, got {n}"),
        )),
    }
}

async fn create_room(
    State(sim): State<Sim>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.mutate(&method, &uri, &headers, &body, |w| {
        let req: CreateRoom = parse(&body, "")?;
        let capacity = positive("capacity", req.capacity)?;
        let admission_rate = positive("admission_rate", req.admission_rate)?;
        if req.title.as_ref().is_some_and(|t| t.len() > 200) {
            return Err(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "title is too long; at most 200 bytes",
            ));
        }
        let room = w
            .create_room(&req.account, capacity, admission_rate, req.title)
            .map_err(|e| sim_error(&e))?;
        tracing::info!(room = %room.id, account = %room.account, capacity = room.capacity, "room created");
        Ok((StatusCode::CREATED, json!({ "room": room })))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvisionReq {
    #[serde(default)]
    capacity: Option<i64>,
    #[serde(default)]
    admission_rate: Option<i64>,
}

/// Scales a room before an event: `{capacity, admission_rate}`, either
/// or both.
async fn provision_room(
    State(sim): State<Sim>,
    Path(room): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.mutate(&method, &uri, &headers, &body, |w| {
        let req: ProvisionReq = parse(&body, "")?;
        let capacity = positive("capacity", req.capacity)?;
        let admission_rate = positive("admission_rate", req.admission_rate)?;
        if capacity.is_none() && admission_rate.is_none() {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "give capacity (listeners), admission_rate (joins per second), or both",
            ));
        }
        let r = w
            .provision(&room, capacity, admission_rate)
            .map_err(|e| sim_error(&e))?;
        tracing::info!(room = %room, capacity = r.capacity, admission_rate = r.admission_rate, "room provisioned");
        Ok((StatusCode::OK, json!({ "room": r })))
    })
}

/// A sound check with a speaker; the body is empty.
async fn soundcheck(
    State(sim): State<Sim>,
    Path((room, speaker)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.mutate(&method, &uri, &headers, &body, |w| {
        let c = w.soundcheck(&room, &speaker).map_err(|e| sim_error(&e))?;
        tracing::info!(room = %room, speaker = %speaker, found = c.found_feedback_level, fixed = c.fixed, "sound check");
        Ok((StatusCode::OK, json!({ "soundcheck": c })))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveReq {
    room: String,
}

async fn move_event(
    State(sim): State<Sim>,
    Path(event): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.mutate(&method, &uri, &headers, &body, |w| {
        let req: MoveReq = parse(&body, "")?;
        let rec = w.move_event(&event, &req.room).map_err(|e| sim_error(&e))?;
        tracing::info!(event = %event, from = %rec.from_room, to = %rec.to_room, moved = rec.listeners_moved, "event moved");
        let ev = w.event(&event).map_err(|e| sim_error(&e))?;
        Ok((StatusCode::OK, json!({ "moved": rec, "event": ev })))
    })
}

async fn add_overflow(
    State(sim): State<Sim>,
    Path(event): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.mutate(&method, &uri, &headers, &body, |w| {
        let req: MoveReq = parse(&body, "")?;
        let ev = w
            .add_overflow(&event, &req.room)
            .map_err(|e| sim_error(&e))?;
        tracing::info!(event = %event, room = %req.room, "overflow room attached");
        Ok((StatusCode::OK, json!({ "event": ev })))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CapReq {
    /// Required; `null` clears the cap. `Some(None)` is an explicit null.
    #[serde(default, deserialize_with = "present")]
    max_listeners: Option<Option<i64>>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

async fn set_cap(
    State(sim): State<Sim>,
    Path(room): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.mutate(&method, &uri, &headers, &body, |w| {
        let req: CapReq = parse(&body, "")?;
        let Some(cap) = req.max_listeners else {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "missing field `max_listeners`; give a number, or null to clear the cap",
            ));
        };
        let cap = match cap {
            Some(n) if n <= 0 => {
                return Err(error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("max_listeners must be positive, got {n}; use null to clear the cap"),
                ));
            }
            c => c.map(|n| n as u64),
        };
        let r = w.set_cap(&room, cap).map_err(|e| sim_error(&e))?;
        tracing::info!(room = %room, cap = ?cap, "listener cap set");
        Ok((StatusCode::OK, json!({ "room": r })))
    })
}

/// The simulator's clock, for another process to follow
/// (`firebreak run --clock-from`): simulated now and how fast it runs.
async fn clock(State(sim): State<Sim>) -> Response {
    let now = sim.clock.now();
    axum::Json(json!({
        "now": now,
        "now_rfc3339": super::model::rfc3339(now),
        "speed": sim.clock.speed(),
    }))
    .into_response()
}

/// The scenario's `admin_api` windows: a call in one waits its latency
/// (simulated time), then fails with its status if it has one, before the
/// world is touched.
async fn admin_api_faults(
    State(sim): State<Sim>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let now = sim.clock.now();
    let fault = sim.with_world(|w| {
        w.scenario()
            .admin_api
            .iter()
            .find(|f| f.at <= now && now < f.until)
            .cloned()
    });
    let Some(f) = fault else {
        return next.run(req).await;
    };
    if f.latency_ms > 0 {
        sim.clock
            .sleep(Duration::from_millis(f.latency_ms as u64))
            .await;
    }
    match f.fails.and_then(|s| StatusCode::from_u16(s).ok()) {
        Some(status) => {
            let (status, body) = error(status, "the admin API is unavailable; try again shortly");
            (
                status,
                [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
                axum::Json(body),
            )
                .into_response()
        }
        None => next.run(req).await,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitingRoomReq {
    open: Option<bool>,
}

/// Opens or closes a room's waiting room: `{"open": true}`.
async fn set_waiting_room(
    State(sim): State<Sim>,
    Path(room): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.mutate(&method, &uri, &headers, &body, |w| {
        let req: WaitingRoomReq = parse(&body, "")?;
        let Some(open) = req.open else {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "missing field `open`; give true to queue and pace joins, false to stop",
            ));
        };
        let r = w.set_waiting_room(&room, open).map_err(|e| sim_error(&e))?;
        tracing::info!(room = %room, open, "waiting room set");
        Ok((StatusCode::OK, json!({ "room": r })))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MuteReq {
    #[serde(default = "yes")]
    muted: bool,
}

fn yes() -> bool {
    true
}

async fn mute_speaker(
    State(sim): State<Sim>,
    Path((room, speaker)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    sim.mutate(&method, &uri, &headers, &body, |w| {
        // An empty body means mute: the common runbook call.
        let req: MuteReq = parse(&body, "{}")?;
        let s = w
            .mute(&room, &speaker, req.muted)
            .map_err(|e| sim_error(&e))?;
        tracing::info!(room = %room, speaker = %speaker, muted = req.muted, "speaker mute set");
        Ok((StatusCode::OK, json!({ "speaker": s })))
    })
}

// ----------------------------------------------------------- idempotency

type Reply = (StatusCode, Value);

/// Remembered responses by `Idempotency-Key`, bounded FIFO.
#[derive(Default)]
struct IdemStore {
    map: HashMap<String, Remembered>,
    order: VecDeque<String>,
}

struct Remembered {
    fingerprint: u64,
    request: String,
    status: StatusCode,
    body: Value,
}

impl IdemStore {
    fn insert(&mut self, key: String, r: Remembered) {
        if self.map.insert(key.clone(), r).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > IDEMPOTENCY_KEYS {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

/// FNV-1a over method, path and body: what "the same request" means.
fn fingerprint(method: &Method, uri: &Uri, body: &[u8]) -> u64 {
    let mut h = crate::labels::Fnv::new();
    for part in [
        method.as_str().as_bytes(),
        &[0],
        uri.path().as_bytes(),
        &[0],
        body,
    ] {
        h.eat(part);
    }
    h.finish()
}

impl Sim {
    /// Applies a mutation at most once per `Idempotency-Key`. Checking,
    /// applying and remembering happen under one lock, so two concurrent
    /// requests with the same key cannot both apply.
    fn mutate(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
        f: impl FnOnce(&mut World) -> Result<Reply, Reply>,
    ) -> Response {
        let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
            None => None,
            Some(Ok(k)) if !k.trim().is_empty() && k.len() <= MAX_KEY_LEN => {
                Some(k.trim().to_owned())
            }
            Some(_) => {
                let (s, v) = error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "invalid Idempotency-Key header; expected 1 to {MAX_KEY_LEN} visible ASCII characters"
                    ),
                );
                return json_response(s, &v);
            }
        };
        let fp = fingerprint(method, uri, body);
        let mut g = self.lock();
        if let Some(k) = &key
            && let Some(r) = g.idem.map.get(k)
        {
            if r.fingerprint == fp {
                let mut resp = json_response(r.status, &r.body);
                resp.headers_mut()
                    .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
                return resp;
            }
            let (s, v) = error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "Idempotency-Key {k:?} was already used for a different request ({}); use a new key for a new request",
                    r.request
                ),
            );
            return json_response(s, &v);
        }
        let (status, value) = match f(&mut g.world) {
            Ok(r) | Err(r) => r,
        };
        if let Some(k) = key
            && !status.is_server_error()
        {
            g.idem.insert(
                k,
                Remembered {
                    fingerprint: fp,
                    request: format!("{method} {}", uri.path()),
                    status,
                    body: value.clone(),
                },
            );
        }
        json_response(status, &value)
    }
}
