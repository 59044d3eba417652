//! Plays scenarios for `firebreak rehearse`: each one through the same
//! path as `firebreak demo` (the simulator and the daemon on one scaled
//! clock, the embedded rules and runbooks), then once more with no bot at
//! all, in the simulator's model alone, for what doing nothing costs.
//! Measures what [`crate::rehearse::judge`] needs. I/O: files, loopback,
//! the clock.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::{DemoOptions, DemoReport};
use crate::rehearse::{Measured, MoveSeen, Row, judge};
use crate::sim::{Scenario, StateSnapshot};

/// How one set is played.
#[derive(Clone, Copy, Debug)]
pub struct PlayOptions {
    /// Simulated seconds per real second.
    pub speed: f64,
    pub seed: u64,
}

/// Reads a scenario file; every problem in it, located.
pub fn load(path: &Path) -> anyhow::Result<Scenario> {
    let name = path.display().to_string();
    let text = crate::load::read_text_file(path)
        .map_err(|e| anyhow::anyhow!("{name}: cannot read file: {e}"))?;
    Scenario::load(&name, &text).map_err(|d| anyhow::anyhow!("{d}"))
}

/// Plays `scenario` against the bot and alone, and judges the rehearsal
/// against the scenario's `expect:` (none stated: nothing is judged).
pub async fn play(
    label: &str,
    scenario: Scenario,
    opts: PlayOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<Row> {
    let peak = ideal_peak(&scenario, opts.seed);
    let kept_without = alone(&scenario, opts.seed, peak);
    let expect = scenario.expect.clone().unwrap_or_default();
    let report = crate::demo::run_scenario(
        scenario,
        DemoOptions {
            speed: opts.speed,
            seed: opts.seed,
            console_input: false,
            store: None,
            quiet_after: None,
        },
        Box::new(std::io::sink()),
        shutdown,
    )
    .await
    .with_context(|| format!("rehearsing {label}"))?;
    let measured = measure(&report, Some(kept_without), peak);
    Ok(Row {
        scenario: label.to_owned(),
        verdict: judge(&expect, &measured),
        measured,
    })
}

/// [`play`] with owned arguments, for a stream of rehearsals.
pub async fn play_owned(
    label: String,
    scenario: Scenario,
    opts: PlayOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<Row> {
    play(&label, scenario, opts, shutdown).await
}

/// The share of `peak` the event keeps with nobody acting: the
/// simulator's model stepped to the scenario's end with no admin call.
pub fn alone(scenario: &Scenario, seed: u64, peak: u64) -> f64 {
    let mut world = crate::sim::model::World::new(scenario, seed);
    world.advance_to(scenario.end);
    kept(&world.snapshot(), peak)
}

/// The peak the same audience reaches on a platform that never fails:
/// every room unbounded in listeners and joins, no speaker fault. What
/// `kept` is a share of, so that holding people out of a room (a cap, a
/// waiting room) cannot flatter a rehearsal by lowering its own peak.
pub fn ideal_peak(scenario: &Scenario, seed: u64) -> u64 {
    let mut sc = scenario.clone();
    for r in &mut sc.rooms {
        r.capacity = crate::sim::model::MAX_CAPACITY;
        r.admission_rate = crate::sim::model::MAX_CAPACITY;
    }
    sc.faults.clear();
    let mut world = crate::sim::model::World::new(&sc, seed);
    world.advance_to(sc.end);
    world.snapshot().event.peak_listeners
}

fn kept(s: &StateSnapshot, peak: u64) -> f64 {
    if peak == 0 {
        0.0
    } else {
        (s.event.listeners as f64 / peak as f64).min(1.0)
    }
}

/// Admin actions that change how a room serves its audience.
const MITIGATIONS: [&str; 5] = ["move", "overflow", "cap", "waiting_room", "provision"];

/// What the judge reads, from a replay's report; `peak` is
/// [`ideal_peak`].
pub fn measure(r: &DemoReport, kept_without: Option<f64>, peak: u64) -> Measured {
    let start = r.sim.scheduled_start;
    let muted: BTreeSet<String> = r
        .sim
        .rooms
        .iter()
        .flat_map(|room| room.speakers.iter())
        .filter(|s| s.muted)
        .map(|s| s.id.clone())
        .collect();
    Measured {
        moves: r
            .sim
            .event
            .moves
            .iter()
            .map(|m| MoveSeen {
                after_ms: m.at - start,
                to_account: m.to_account.clone(),
            })
            .collect(),
        splits: r
            .sim
            .event
            .actions
            .iter()
            .filter(|a| a.action == "overflow")
            .map(|a| MoveSeen {
                after_ms: a.at - start,
                to_account: r
                    .sim
                    .rooms
                    .iter()
                    .find(|room| room.id == a.room)
                    .map(|room| room.account.clone())
                    .unwrap_or_default(),
            })
            .collect(),
        muted,
        // From the platform's record: a mute before the start counts too.
        first_mute_ms: r
            .sim
            .event
            .actions
            .iter()
            .find(|a| a.action == "mute" && a.detail.ends_with(" muted"))
            .map(|a| a.at - start),
        mitigated_ms: r
            .sim
            .event
            .actions
            .iter()
            .find(|a| MITIGATIONS.contains(&a.action.as_str()) && a.at >= start)
            .map(|a| a.at - start),
        kept: kept(&r.sim, peak),
        crashed: r.sim.event.crashed,
        detected_ms: r.time_to_detect_ms,
        kept_without,
    }
}
