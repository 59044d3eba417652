//! `firebreak run` on a PostgreSQL store: one replica of possibly many
//! (see `firebreak::replica`). The listener is bound once; the daemon is
//! started each time this replica takes the lease, the first time with
//! the files read at start and later with the files as they are then.

use std::path::PathBuf;
use std::sync::Arc;

use firebreak::chat::ChatAdapter;
use firebreak::clock::Clock;
use firebreak::front::{Front, Status};
use firebreak::load::Loaded;
use firebreak::replica::{Replica, Timing};
use firebreak::store::Store;
use tokio_util::sync::CancellationToken;

pub(crate) async fn run_replica(
    config_path: Option<PathBuf>,
    loaded: Loaded,
    store: Store,
    clock: Clock,
    chat: Arc<dyn ChatAdapter>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let config = loaded.config.clone();
    let status = Arc::new(Status::new(firebreak::replica::default_name()));
    let front = Front::new(status.clone());
    tracing::info!(
        replica = %status.me, lease = %config.store_lease,
        "running as a replica on a PostgreSQL store: acting only while holding the leader lease"
    );
    let follower_routes = firebreak::replica::follower_api(
        &config,
        store.clone(),
        clock.clone(),
        status,
        shutdown.clone(),
    )?;
    let server = match config.server.listen {
        Some(addr) => {
            let listener = firebreak::server::bind(addr).await?;
            Some(tokio::spawn(firebreak::server::serve(
                listener,
                front.router(),
                shutdown.clone(),
            )))
        }
        None => None,
    };
    let mut first = Some(loaded);
    let lead = {
        let (front, clock, chat) = (front.clone(), clock.clone(), chat.clone());
        move |store: Store, stop: CancellationToken| {
            let loaded = first.take();
            let (front, clock, chat) = (front.clone(), clock.clone(), chat.clone());
            let path = config_path.clone();
            async move {
                let loaded = match loaded {
                    Some(l) => l,
                    None => firebreak::load::load_from_disk(path.as_deref()).map_err(|d| {
                        anyhow::anyhow!(
                            "{d}\nthe files do not load ({} error(s)); fix them",
                            d.len()
                        )
                    })?,
                };
                let daemon = firebreak::daemon::Daemon::lead(
                    loaded,
                    store,
                    clock,
                    chat,
                    stop.clone(),
                    &front,
                )
                .await?;
                super::reload_on_sighup(daemon.reload.clone(), stop);
                Ok(daemon)
            }
        }
    };
    Replica {
        store: store.clone(),
        front,
        follower_routes,
        timing: Timing::new(config.store_lease.to_std()),
        clock,
        chat,
        channel: config.chat.channel.clone(),
        lead,
    }
    .run(shutdown)
    .await;
    if let Some(server) = server {
        let _ = server.await;
    }
    store.close().await;
    Ok(())
}
