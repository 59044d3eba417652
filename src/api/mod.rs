//! The bot's HTTP API, served at `server.listen` beside Slack's request
//! URLs: alerts pushed by Alertmanager (webhook) or Prometheus
//! (`POST /api/v2/alerts`), JSON reads of alerts, runs and incident
//! timelines, `/-/healthy`, `/-/ready`, `/metrics`, and the web console
//! ([`console`]) at `/`.
//!
//! The edge only: requests are authorised and read here, pushed alerts go
//! to the watcher's queue and questions to the control loop or the store.
//! Every refusal is a 4xx (or 503 when busy) with a JSON body that says
//! what is wrong: `{"status": "error", "error": "...", "problems": [...]}`;
//! the console's pages say theirs in HTML.

pub mod console;
mod health;
mod push;

pub use push::{FORWARD_POLL, drain_forwarded, take_forwarded};
mod read;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, Millis};
use crate::control::Command;
use crate::source::alertmanager::Incoming;
use crate::store::Store;

/// What the API's handlers reach.
pub struct Api {
    /// The watcher's queue of pushed alerts.
    pub pushed: mpsc::Sender<Vec<Incoming>>,
    pub control: mpsc::Sender<Command>,
    pub store: Store,
    pub clock: Clock,
    /// The bearer token `/api/` requests must carry, when one is set.
    pub token: Option<String>,
    pub max_body_bytes: usize,
    /// Cancelled at shutdown: `/-/ready` then says not ready.
    pub shutdown: CancellationToken,
    /// How long a push waits for room in the watcher's queue before the
    /// sender is told to try again ([`PUSH_WAIT`]).
    pub push_wait: Duration,
    /// Set on a replica: who it is and whether it leads. A follower keeps
    /// pushed alerts in the store for the leader instead of queueing them,
    /// and sends questions only the leader can answer to it.
    pub replica: Option<Arc<crate::front::Status>>,
    /// What the bot cannot see now: `/-/ready` is 503 while it is blind.
    pub sight: crate::sight::Board,
    /// Who may read the web console and act from it.
    pub console: console::Settings,
}

impl Api {
    /// Whether this process acts on what it is sent: a replica only while
    /// it leads.
    fn follows(&self) -> bool {
        self.replica
            .as_ref()
            .is_some_and(|r| !matches!(r.role(), crate::front::Role::Leading { .. }))
    }
}

/// Long enough to ride out a burst, short enough that Alertmanager's own
/// timeout (10s by default) does not fire first and count a failure.
pub const PUSH_WAIT: Duration = Duration::from_secs(8);

/// How long a read waits for the control loop or the store.
const READ_WAIT: Duration = Duration::from_secs(10);

/// The API's routes, served on their own.
pub fn routes(api: Arc<Api>) -> Router {
    routes_with(api, Router::new())
}

/// The API's routes and `more` (Slack's request URLs) as one router,
/// every request counted and timed in `/metrics`.
pub fn routes_with(api: Arc<Api>, more: Router) -> Router {
    api_routes(api)
        .merge(more)
        .layer(axum::middleware::from_fn(count))
}

fn api_routes(api: Arc<Api>) -> Router {
    let limit = api.max_body_bytes;
    let protected = Router::new()
        .route(
            "/api/v1/alerts",
            axum::routing::get(read::alerts).post(push::v1_refused),
        )
        .route("/api/v2/alerts", axum::routing::post(push::postable))
        .route("/api/v1/alertmanager", axum::routing::post(push::webhook))
        .route("/api/v1/runs", axum::routing::get(read::runs))
        .route("/api/v1/runs/{id}", axum::routing::get(read::run))
        .route("/api/v1/incidents", axum::routing::get(read::incidents))
        .route(
            "/api/v1/incidents/{id}/timeline",
            axum::routing::get(read::timeline),
        )
        .route_layer(axum::middleware::from_fn_with_state(api.clone(), authorise));
    Router::new()
        .merge(protected)
        .merge(console::routes())
        .route("/-/healthy", axum::routing::get(health::healthy))
        .route("/-/ready", axum::routing::get(health::ready))
        .route("/metrics", axum::routing::get(health::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(json_refusals))
        .with_state(api)
}

/// Longest request target (path and query) the API reads. Its longest
/// real one is a run id or an incident name; hyper's own limit is far
/// higher and answers without a body.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Keeps the README's promise that every refusal is JSON: a request
/// target too long is refused here, and a 4xx that axum's extractors or
/// router wrote as plain text (a path that is not UTF-8, a bad query, an
/// unsupported body) is rewritten as `{"status": "error", ...}` with the
/// same status and what it said.
async fn json_refusals(req: Request, next: Next) -> Response {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!("the request target is {target} bytes; the API reads at most {MAX_URI_BYTES}"),
        )
        .into_response();
    }
    let resp = next.run(req).await;
    let status = resp.status();
    // The console's pages answer in HTML, refusals included.
    let written = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if !status.is_client_error() || written {
        return resp;
    }
    let said = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let error = if said.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("refused")
            .to_lowercase()
    } else {
        crate::chat::clip(&said, 500)
    };
    ApiError::new(status, error).into_response()
}

/// A refusal, as JSON.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: String,
    pub problems: Vec<String>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            problems: Vec::new(),
            retry_after: None,
        }
    }

    /// The store or the control loop failed us: logged with its cause,
    /// and the caller told to try again.
    fn internal(what: &str, e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "HTTP API: {what}");
        ApiError {
            retry_after: Some(5),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{what}; try again (the cause is in firebreak's log)"),
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({"status": "error", "error": self.error});
        if !self.problems.is_empty() {
            body["problems"] = serde_json::json!(self.problems);
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// A success, as JSON: `{"status": "success", "data": ...}`.
fn ok(data: serde_json::Value) -> Response {
    axum::Json(serde_json::json!({"status": "success", "data": data})).into_response()
}

/// Checks the bearer token on `/api/` routes, in constant time so the
/// token cannot be guessed a byte at a time.
async fn authorise(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    match check_token(&api, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(refused) => refused.into_response(),
    }
}

fn check_token(api: &Api, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &api.token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if same(g.trim().as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the bearer token is not the one in server.token_secret",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this API needs `Authorization: Bearer <token>`, the value of server.token_secret",
        )),
    }
}

/// Compares in constant time (tokens, CSRF tokens).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Counts requests by route and status, and times them.
async fn count(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let start = Instant::now();
    let resp = next.run(req).await;
    let m = crate::metrics::get();
    m.http_requests
        .with(&[&route, resp.status().as_str()])
        .inc();
    m.http_seconds
        .with(&[&route])
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// An unknown path under `/api/` is answered only to a caller with the
/// token, when one is set: the routes an anonymous caller can map are the
/// open ones.
async fn not_found(State(api): State<Arc<Api>>, req: Request) -> Response {
    if req.uri().path().starts_with("/api/")
        && let Err(refused) = check_token(&api, req.headers())
    {
        return refused.into_response();
    }
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route {} {}; the API has POST /api/v1/alertmanager, POST /api/v2/alerts, GET /api/v1/alerts, /api/v1/runs, /api/v1/runs/ID, /api/v1/incidents, /api/v1/incidents/ID/timeline, /-/healthy, /-/ready, /metrics",
            req.method(),
            crate::chat::clip(req.uri().path(), 200)
        ),
    )
    .into_response()
}

async fn wrong_method(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not a method {} takes",
            req.method(),
            crate::chat::clip(req.uri().path(), 200)
        ),
    )
}

/// Milliseconds as RFC 3339 in UTC, as Prometheus's API writes times.
fn time(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests;
