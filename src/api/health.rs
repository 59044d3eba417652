//! `/-/healthy` (the process serves), `/-/ready` (it can do its job: not
//! shutting down, not blind, the store answers; on a replica, also who
//! leads), and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Api;

pub async fn healthy() -> &'static str {
    "firebreak is healthy.\n"
}

pub async fn ready(State(api): State<Arc<Api>>) -> Response {
    if api.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "firebreak is shutting down.\n",
        )
            .into_response();
    }
    if let Some(r) = &api.replica
        && let crate::front::Role::Blind { .. } = r.role()
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("firebreak is not ready: {}.\n", r.describe()),
        )
            .into_response();
    }
    // Blind (a source down, rules failing, pushes stopped): alive, but not
    // doing its job; a probe or a balancer in front of replicas should know.
    let blind = api.sight.blind();
    if !blind.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("firebreak is not ready: blind: {}.\n", blind.join("; ")),
        )
            .into_response();
    }
    match tokio::time::timeout(Duration::from_secs(2), api.store.ping()).await {
        Ok(Ok(())) => match &api.replica {
            // A follower is ready too: it takes pushes and serves reads.
            Some(r) => format!("firebreak is ready: {}.\n", r.describe()).into_response(),
            None => "firebreak is ready.\n".into_response(),
        },
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "firebreak is not ready: the store does not answer (see the log).\n",
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "firebreak is not ready: the store did not answer within 2s.\n",
        )
            .into_response(),
    }
}

pub async fn metrics(State(api): State<Arc<Api>>) -> Response {
    let m = crate::metrics::get();
    // Read at scrape time: the store is the outbox, so its count is the
    // depth, whichever process wrote the rows.
    match tokio::time::timeout(Duration::from_secs(2), api.store.outbox_depth()).await {
        Ok(Ok(n)) => m.outbox_depth.with(&[]).set(n as f64),
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot count the outbox for /metrics"),
        Err(_) => tracing::warn!("the store did not count the outbox within 2s"),
    }
    match tokio::time::timeout(Duration::from_secs(2), api.store.outbox_oldest()).await {
        Ok(Ok(oldest)) => {
            let age = oldest.map_or(0, |at| (api.clock.now() - at).max(0));
            m.outbox_oldest_age.with(&[]).set(age as f64 / 1000.0);
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot age the outbox for /metrics"),
        Err(_) => tracing::warn!("the store did not age the outbox within 2s"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(),
    )
        .into_response()
}
