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
    let kept = body.clone();
    let read = off_the_runtime(move || read_webhook(&body)).await?;
    take(&api, read, "webhook", &kept).await
}

pub async fn postable(
    State(api): State<Arc<Api>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| too_big_or_unreadable(r, api.max_body_bytes))?;
    let kept = body.clone();
    let read = off_the_runtime(move || read_postable(&body)).await?;
    take(&api, read, "api_v2", &kept).await
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

/// On a follower: keeps a push that read well in the store for the
/// leader, which reads it again and queues it ([`take_forwarded`]).
async fn keep_for_leader(api: &Api, endpoint: &str, body: &[u8]) -> Result<(), ApiError> {
    let me = api.replica.as_ref().map_or("", |r| r.me.as_str());
    // The readers took it, so it is UTF-8 JSON.
    let text = String::from_utf8_lossy(body);
    let kept = tokio::time::timeout(
        api.push_wait,
        api.store.forward_push(me, endpoint, &text, api.clock.now()),
    )
    .await;
    let why = match kept {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, endpoint, "cannot keep a push for the leader");
            "this replica follows and cannot reach the store to hand the alerts to the leader"
        }
        Err(_) => "the store did not take the alerts in time",
    };
    Err(ApiError {
        retry_after: Some(5),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{why}; nothing was taken, send them again"),
        )
    })
}

/// How often a leader looks for pushes its followers kept.
pub const FORWARD_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Hands what followers kept under `endpoints` to `take`, oldest first,
/// deleting each row once taken, every [`FORWARD_POLL`] until `shutdown`
/// (or until `take` says to stop). A store that does not answer is said
/// once, and again when it answers. The leader runs one per kind of row:
/// pushes here, Slack's requests in `inbound::slack`.
pub async fn drain_forwarded<F, Fut>(
    store: crate::store::Store,
    endpoints: &[&str],
    what: &str,
    shutdown: tokio_util::sync::CancellationToken,
    mut take: F,
) where
    F: FnMut(crate::store::ForwardedPush) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut failing = false;
    loop {
        match store.forwarded_pushes(endpoints, 64).await {
            Ok(batch) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("reading {what} kept by followers again");
                }
                for row in batch {
                    let id = row.id.clone();
                    if !take(row).await {
                        return;
                    }
                    if let Err(e) = store.took_forwarded(&id).await {
                        tracing::warn!(error = %e, "cannot mark {what} kept by a follower taken");
                        break;
                    }
                }
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot read {what} kept by followers; trying again");
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(FORWARD_POLL) => {}
        }
    }
}

/// The leader's side of [`keep_for_leader`]: reads what followers kept
/// and queues it for the watcher like its own pushes. A body that no
/// longer reads (a follower of another release) is dropped, loudly.
pub async fn take_forwarded(
    store: crate::store::Store,
    pushed: tokio::sync::mpsc::Sender<Vec<crate::source::alertmanager::Incoming>>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let stop = shutdown.clone();
    drain_forwarded(store, &["webhook", "api_v2"], "pushes", shutdown, |p| {
        let (pushed, stop) = (pushed.clone(), stop.clone());
        async move {
            let read = match p.endpoint.as_str() {
                "webhook" => read_webhook(p.body.as_bytes()),
                _ => read_postable(p.body.as_bytes()),
            };
            match read {
                Ok(r) if !r.alerts.is_empty() => tokio::select! {
                    sent = pushed.send(r.alerts) => sent.is_ok(),
                    _ = stop.cancelled() => false,
                },
                Ok(_) => true,
                Err(e) => {
                    tracing::error!(
                        id = %p.id, problems = ?e.problems,
                        "a push a follower kept no longer reads; dropped"
                    );
                    true
                }
            }
        }
    })
    .await
}

/// Names of ignored fields already warned about: once each per process,
/// since a sender repeats them in every request. Bounded: a sender that
/// invents new names in every request gets no more warnings past it.
const MAX_WARNED: usize = 256;
static WARNED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

/// Takes a push that read well: queued for the watcher, or on a follower
/// kept in the store for the leader. A 200 means it is in one or the
/// other.
async fn take(api: &Api, read: Read, endpoint: &str, body: &[u8]) -> Result<Response, ApiError> {
    let follows = api.follows();
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
    if n > 0 && follows {
        keep_for_leader(api, endpoint, body).await?;
    } else if n > 0 {
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
    }
    if n > 0 {
        crate::metrics::get()
            .pushed_alerts
            .with(&[endpoint])
            .add(n as u64);
    }
    let mut out = serde_json::json!({"status": "success", "accepted": n});
    if follows {
        out["forwarded_to_leader"] = serde_json::json!(true);
    }
    if !read.ignored.is_empty() {
        out["ignored_fields"] = serde_json::json!(read.ignored);
    }
    Ok(axum::Json(out).into_response())
}
