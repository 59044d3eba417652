//! The bot's HTTP API, served at `server.listen` beside Slack's request
//! URLs: alerts pushed by Alertmanager (webhook) or Prometheus
//! (`POST /api/v2/alerts`), JSON reads of alerts, runs and incident
//! timelines, and `/-/healthy`, `/-/ready`, `/metrics`.
//!
//! The edge only: requests are authorised and read here, pushed alerts go
//! to the watcher's queue and questions to the control loop or the store.
//! Every refusal is a 4xx (or 503 when busy) with a JSON body that says
//! what is wrong: `{"status": "error", "error": "...", "problems": [...]}`.

mod health;
mod push;
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
        .route("/-/healthy", axum::routing::get(health::healthy))
        .route("/-/ready", axum::routing::get(health::ready))
        .route("/metrics", axum::routing::get(health::metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(api)
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
    let Some(token) = &api.token else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if same(g.trim().as_bytes(), token.as_bytes()) => next.run(req).await,
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the bearer token is not the one in server.token_secret",
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this API needs `Authorization: Bearer <token>`, the value of server.token_secret",
        )
        .into_response(),
    }
}

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

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route {} {}; the API has POST /api/v1/alertmanager, POST /api/v2/alerts, GET /api/v1/alerts, /api/v1/runs, /api/v1/runs/ID, /api/v1/incidents, /api/v1/incidents/ID/timeline, /-/healthy, /-/ready, /metrics",
            req.method(),
            req.uri().path()
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
