//! Pushed alerts: Alertmanager's webhook at `POST /api/v1/alertmanager`
//! and Alertmanager's API v2 at `POST /api/v2/alerts`, which Prometheus
//! sends to. Read, then queued for the watcher; a 200 means queued.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{Api, ApiError};
use crate::source::alertmanager::{Read, Refused, read_postable, read_webhook};

pub async fn webhook(
    State(api): State<Arc<Api>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| too_big_or_unreadable(r, api.max_body_bytes))?;
    let read = off_the_runtime(move || read_webhook(&body)).await?;
    queue(&api, read, "webhook").await
}

pub async fn postable(
    State(api): State<Arc<Api>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| too_big_or_unreadable(r, api.max_body_bytes))?;
    let read = off_the_runtime(move || read_postable(&body)).await?;
    queue(&api, read, "api_v2").await
}

/// Alertmanager's API v1 is gone (Alertmanager 0.27 removed it); say
/// where the alerts should go instead of pretending to take them.
pub async fn v1_refused() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "firebreak takes alerts at POST /api/v2/alerts (Prometheus: `api_version: v2`, the default) and Alertmanager webhooks at POST /api/v1/alertmanager; GET /api/v1/alerts lists what fires",
    )
}

/// Reads a body on the blocking pool: a body of `server.max_body_bytes`
/// full of labels takes a while to check, and on the runtime's workers
/// that would hold up scrapes, commands and health checks meanwhile.
async fn off_the_runtime(
    read: impl FnOnce() -> Result<Read, Refused> + Send + 'static,
) -> Result<Read, ApiError> {
    match tokio::task::spawn_blocking(read).await {
        Ok(r) => r.map_err(refused),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the body failed: {e}"),
        )),
    }
}

fn refused(e: Refused) -> ApiError {
    ApiError {
        problems: e.problems,
        ..ApiError::new(
            StatusCode::BAD_REQUEST,
            "the request was not read: nothing in it was taken; fix the problems listed and send it again",
        )
    }
}

fn too_big_or_unreadable(r: BytesRejection, limit: usize) -> ApiError {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than server.max_body_bytes ({limit} bytes); send fewer alerts per request or raise the limit"
            ),
        )
    } else {
        ApiError::new(
            r.status(),
            format!("cannot read the body: {}", r.body_text()),
        )
    }
}

/// Names of ignored fields already warned about: once each per process,
/// since a sender repeats them in every request. Bounded: a sender that
/// invents new names in every request gets no more warnings past it.
const MAX_WARNED: usize = 256;
static WARNED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

async fn queue(api: &Api, read: Read, endpoint: &str) -> Result<Response, ApiError> {
    let n = read.alerts.len();
    if !read.ignored.is_empty() {
        let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
        for f in &read.ignored {
            // `alerts[3].x` and `alerts[4].x` are one field.
            let name = f.rsplit('.').next().unwrap_or(f);
            let key = format!("{endpoint}:{}", crate::limits::head(name, 128));
            if warned.len() < MAX_WARNED && warned.insert(key) {
                tracing::warn!(endpoint, field = %crate::limits::head(f, 200), "pushed alerts carry a field firebreak does not read; ignored");
            }
        }
    }
    if n > 0 {
        match tokio::time::timeout(api.push_wait, api.pushed.send(read.alerts)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                return Err(ApiError {
                    retry_after: Some(5),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "firebreak is shutting down; send the alerts again to the next one",
                    )
                });
            }
            Err(_) => {
                tracing::warn!(
                    endpoint,
                    alerts = n,
                    "pushed alerts queue stayed full; told the sender to retry"
                );
                return Err(ApiError {
                    retry_after: Some(5),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "firebreak is busy taking alerts (its queue stayed full for {}ms); nothing in this request was taken, send it again",
                            api.push_wait.as_millis()
                        ),
                    )
                });
            }
        }
        crate::metrics::get()
            .pushed_alerts
            .with(&[endpoint])
            .add(n as u64);
    }
    let mut body = serde_json::json!({"status": "success", "accepted": n});
    if !read.ignored.is_empty() {
        body["ignored_fields"] = serde_json::json!(read.ignored);
    }
    Ok(axum::Json(body).into_response())
}
