//! The bot's HTTP server (`server.listen`): one listener for every route
//! the daemon exposes: the API ([`crate::api::routes`]) and Slack's
//! request URLs ([`crate::inbound::slack::routes`]). It stops taking connections at
//! shutdown and lets requests in flight finish.

use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Binds `addr` now, so a port in use stops the start with a clear error
/// instead of failing later in a task nobody watches.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on server.listen {addr}"))
}

/// Serves `app` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken) {
    let addr = listener.local_addr().ok();
    tracing::info!(addr = ?addr, "HTTP server listening");
    // The peer's address reaches handlers that need it: the console
    // believes a sign-in header only from its trusted proxy.
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "HTTP server failed");
    }
}
