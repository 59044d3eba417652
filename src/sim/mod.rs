//! The live audio platform simulator: a real HTTP service that firebreak
//! watches (`/metrics`) and mitigates (the admin API) in the demo, the tests
//! and the benchmarks.
//!
//! - [`scenario`]: the YAML scenario format and the built-in 2023-05-24
//!   launch replay.
//! - [`model`]: the pure world model (no I/O, no clock): rooms, listeners,
//!   speakers, the event, metrics rendering.
//! - [`server`]: the axum service, the admin API, idempotency and the
//!   ticker that keeps the world in step with a [`Clock`].
//!
//! The simulator and the bot share one clock, started at the scenario's
//! `start`:
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use firebreak::clock::Clock;
//! use firebreak::sim::{Scenario, Sim, SimOptions};
//! let scenario = Scenario::builtin();
//! let clock = Clock::scaled(scenario.start, 60.0);
//! let sim = Sim::new(SimOptions { scenario, seed: 1 }, clock.clone());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! tokio::spawn(sim.clone().serve(listener, shutdown.clone()));
//! # Ok(()) }
//! ```

use std::net::SocketAddr;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;

pub mod model;
pub mod scenario;
pub mod server;

pub use model::{
    AdminAction, CrashRecord, EventSnapshot, Lost, MoveRecord, RoomSnapshot, RoomState, Scaling,
    SimError, SpeakerSnapshot, StateSnapshot, World,
};
pub use scenario::{Reference, Scenario};
pub use server::Sim;

/// What a simulator run needs besides its clock.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub scenario: Scenario,
    /// Seeds the simulator's own PRNG; the same seed (and the same admin
    /// calls at the same simulated times) reproduces a run exactly.
    pub seed: u64,
}

/// Binds `addr` and serves the simulator until `shutdown` is cancelled.
pub async fn serve(
    opts: SimOptions,
    clock: Clock,
    addr: SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the simulator to {addr}"))?;
    Sim::new(opts, clock).serve(listener, shutdown).await
}
