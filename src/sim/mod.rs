//! The live audio platform simulator: a real HTTP service that firebreak
//! watches and mitigates in the demo, the tests and the benchmarks.
//!
//! - [`scenario`]: the YAML scenario format and the built-in 2023-05-24
//!   launch replay.
//! - [`model`]: the pure world model (no I/O, no clock).

pub mod model;
pub mod scenario;

pub use model::{
    CrashRecord, EventSnapshot, Lost, MoveRecord, RoomSnapshot, RoomState, SimError,
    SpeakerSnapshot, StateSnapshot, World,
};
pub use scenario::{Reference, Scenario};
