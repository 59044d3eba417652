//! The live audio platform simulator: a real HTTP service that firebreak
//! watches and mitigates in the demo, the tests and the benchmarks.
//!
//! - [`scenario`]: the YAML scenario format and the built-in 2023-05-24
//!   launch replay.

pub mod scenario;

pub use scenario::{Reference, Scenario};
