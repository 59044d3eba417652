//! The simulator's world: accounts, rooms, speakers and the one event, and
//! how an audience of hundreds of thousands behaves against them.
//!
//! Pure model: no I/O, no clock. [`World::advance_to`] steps in fixed
//! one-simulated-second ticks, so a run depends only on the scenario, the
//! seed and *when* (in simulated time) admin operations were applied, never
//! on how often the caller asks to advance.
//!
//! # Dynamics, one tick (one simulated second)
//!
//! 1. **Arrivals.** The interested audience (`followers x reach` of the
//!    promoter) arrives along the scenario's profile curve, normalised so
//!    its integral is that audience, with Poisson noise. Arrivals stop after
//!    the scenario's end.
//! 2. **Joins.** Attempts are new arrivals plus clients retrying a failed
//!    join plus crash victims returning after a move; all go to the event's
//!    *current* room. A room's join service processes at most
//!    `admission_rate` joins per second (the excess fails: `overload`) and
//!    admits only while it has space (`capacity`, or an admin cap). Without
//!    a cap a full room rejects (`capacity`); with a cap the excess waits in
//!    the room's waiting room and is admitted as space frees. A crashed room
//!    rejects everything (`room_down`). With its waiting room *open*, a
//!    room queues every join at a cheap front door and lets clients in at
//!    a steady pace (90% of its admission rate) while it has space: the
//!    join service is never overrun and nobody retries, but everyone
//!    queued may give up waiting (`waiting_give_up_per_min`).
//! 3. **Retries.** Each failed client retries after a few seconds with
//!    `retry_probability` (apps retry automatically) or gives up (lost).
//!    This is the failure mode of 2023: once a room is full, every rejected
//!    client comes back about ten times, so the join load multiplies until
//!    it exceeds the admission rate — the room is killed by the retry
//!    storm, not by its listeners. A cap breaks the loop, because waiting
//!    clients do not retry; so does a bigger room.
//! 4. **Load.** Utilisation is the larger of `listeners / capacity` and
//!    `attempts / admission_rate`. Stream latency grows steeply with it
//!    (a queueing knee near 1). Every second with utilisation above 1 adds
//!    to the room's accumulated overload, healthy seconds drain it at
//!    `recovery_rate`; when it reaches `crash_after` the room crashes: the
//!    stream is cut, all listeners are dropped. Most of those would come
//!    back if the event restarted soon (`crash_return`), but they lose
//!    interest by the minute; the rest are gone.
//! 5. **Leaving.** A small base churn, plus quality churn while latency is
//!    above a second, plus feedback churn while an unmuted, connected
//!    speaker feeds back or loses packets.
//!
//! **Scaling** up a live room that serves anyone (capacity or admission
//! rate) takes `scale_up_after` to come online; an account's `limits` bound how big and
//! fast its rooms may be and how many it may create.
//!
//! A **move** takes the event's speakers and listeners to a ready room
//! (a few percent fail to follow), ends the old room, and tells the waiting
//! crash victims, who return over the next couple of minutes.
//!
//! An **overflow** room splits the event across rooms when no single room
//! can hold it: the event keeps its room (the stage, with the speakers) and
//! ready rooms are attached beside it, which relay the stage's audio. Joins
//! go to the stage room while it has space and its join service has
//! headroom, then to each overflow room in the order attached; the last
//! room takes whatever is left (and fails, queues or waits as any room
//! does). The relay costs something: an overflow room's listeners hear the
//! stage a little later (`RELAY_LATENCY_S`), and the stage's feedback
//! reaches them too. The router fills each room to 85% of its capacity
//! before sending arrivals on, then each up to its limit, the stage last,
//! so a small overflow room never leaves the stage emptier than it would
//! be alone.
//! The event's listeners are those of all its rooms.

mod admin;
mod metrics;
mod rng;
mod snapshot;

use metrics::{esc, state_name};
use rng::normal_cdf;
pub use rng::{Rng, erf};
use snapshot::speaker_snapshot;
pub use snapshot::{
    AccountSnapshot, EventSnapshot, JoinFailures, Left, Lost, NewRoom, RoomSnapshot,
    SpeakerSnapshot, StateSnapshot, rfc3339,
};

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::scenario::{Role, Scenario};
use crate::clock::Millis;

const TICK_MS: Millis = 1000;

/// Latency histogram buckets, seconds.
pub const LATENCY_BUCKETS: [f64; 8] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Spread of the log-normal latency distribution (sigma of its log).
const LATENCY_SIGMA: f64 = 0.5;
/// One latency observation per this many listeners per tick.
const LISTENERS_PER_SAMPLE: u64 = 1000;
/// Room capacities and caps the admin API accepts.
pub const MAX_CAPACITY: u64 = 100_000_000;
/// Overflow rooms one event may have at once.
pub const MAX_OVERFLOW_ROOMS: usize = 8;
/// Stream latency an overflow room adds by relaying the stage, seconds.
const RELAY_LATENCY_S: f64 = 0.4;
/// The share of its listener capacity the router fills a room to before it
/// sends arrivals on to the next room of a split event: a full room's
/// stream latency is past the knee.
const ROUTER_FILL: f64 = 0.85;

// ---------------------------------------------------------------- errors

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("unknown event {got:?}; valid events: {valid}")]
    UnknownEvent { got: String, valid: String },
    #[error("unknown room {got:?}; valid rooms: {valid}")]
    UnknownRoom { got: String, valid: String },
    #[error("unknown account {got:?}; valid accounts: {valid}")]
    UnknownAccount { got: String, valid: String },
    #[error("unknown speaker {got:?} in room {room:?}; speakers in that room: {valid}")]
    UnknownSpeaker {
        room: String,
        got: String,
        valid: String,
    },
    /// The request is well-formed but the world's state forbids it.
    #[error("{0}")]
    Conflict(String),
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

fn list(ids: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = ids.collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

// ----------------------------------------------------------------- state

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomState {
    /// Created, not hosting anything; a move target.
    Ready,
    /// Hosting the event.
    Live,
    Crashed,
    /// The event moved away.
    Ended,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailReason {
    Capacity = 0,
    Overload = 1,
    RoomDown = 2,
}
const FAIL_REASONS: [&str; 3] = ["capacity", "overload", "room_down"];
const LEFT_REASONS: [&str; 4] = ["churn", "quality", "crash", "moved_lost"];
const LEFT_CHURN: usize = 0;
const LEFT_QUALITY: usize = 1;
const LEFT_CRASH: usize = 2;
const LEFT_MOVED: usize = 3;

#[derive(Clone, Debug, Default)]
struct Histogram {
    /// Cumulative counts per [`LATENCY_BUCKETS`] bound.
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    /// Adds `n` observations drawn from a log-normal with mean `mean`;
    /// bucket increments are the expected counts, rounded, so they stay
    /// deterministic and cumulative counts stay monotonic.
    fn observe(&mut self, n: u64, mean: f64) {
        let mu = mean.ln() - LATENCY_SIGMA * LATENCY_SIGMA / 2.0;
        for (b, le) in self.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            let frac = normal_cdf((le.ln() - mu) / LATENCY_SIGMA);
            *b += (n as f64 * frac).round() as u64;
        }
        self.count += n;
        self.sum += n as f64 * mean;
    }
}

#[derive(Clone, Debug)]
struct Room {
    id: String,
    account: String,
    title: String,
    capacity: u64,
    admission_rate: u64,
    cap: Option<u64>,
    /// Joins queue at a front door and are let in at a steady pace; the
    /// join service never sees more than it can process.
    waiting_room: bool,
    /// A scale-up on its way: applied at `ready_at`.
    scaling: Option<Scaling>,
    state: RoomState,
    listeners: u64,
    waiting: u64,
    created_at: Millis,
    crashed_at: Option<Millis>,
    ended_at: Option<Millis>,
    overload_s: f64,
    utilisation: f64,
    latency_s: f64,
    join_requests: u64,
    failures: [u64; 3],
    left: [u64; 4],
    latency: Histogram,
}

impl Room {
    fn new(
        id: String,
        account: String,
        title: String,
        capacity: u64,
        admission_rate: u64,
        now: Millis,
        base_latency: f64,
    ) -> Room {
        Room {
            id,
            account,
            title,
            capacity,
            admission_rate,
            cap: None,
            waiting_room: false,
            scaling: None,
            state: RoomState::Ready,
            listeners: 0,
            waiting: 0,
            created_at: now,
            crashed_at: None,
            ended_at: None,
            overload_s: 0.0,
            utilisation: 0.0,
            latency_s: base_latency,
            join_requests: 0,
            failures: [0; 3],
            left: [0; 4],
            latency: Histogram::default(),
        }
    }

    /// Where admission stops: the admin cap if set, else the capacity.
    fn limit(&self) -> u64 {
        self.cap.unwrap_or(self.capacity)
    }
}

/// A room's scale-up, in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaling {
    pub capacity: Option<u64>,
    pub admission_rate: Option<u64>,
    pub ready_at: Millis,
}

/// The share of its admission rate a waiting room lets through, so the join
/// service keeps headroom for the clients already in the room.
pub const WAITING_ROOM_PACE: f64 = 0.9;

#[derive(Clone, Debug)]
struct Speaker {
    id: String,
    name: String,
    room: String,
    base_feedback: f64,
    base_packet_loss: f64,
    feedback: f64,
    packet_loss: f64,
    connected: bool,
    muted: bool,
    /// A sound check has been done with this speaker.
    audio_checked: bool,
    /// The sound check found feedback and it was fixed: the scenario's
    /// feedback faults no longer reach this speaker's input.
    feedback_fixed: bool,
}

/// What a sound check found and did, as the admin API returns it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SoundCheck {
    pub speaker: SpeakerSnapshot,
    /// The worst feedback the speaker's setup would put on air.
    pub found_feedback_level: f64,
    /// Feedback found above what an audience tolerates was fixed.
    pub fixed: bool,
}

/// Feedback a sound check lets through; above it the engineer fixes the
/// setup.
const SOUNDCHECK_TOLERANCE: f64 = 0.1;

/// One move of the event, as recorded and as returned by the admin API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MoveRecord {
    pub at: Millis,
    pub at_rfc3339: String,
    pub from_room: String,
    pub from_account: String,
    pub to_room: String,
    pub to_account: String,
    pub listeners_moved: u64,
    pub listeners_lost: u64,
    pub waiting_moved: u64,
    pub speakers_moved: Vec<String>,
    /// Crash victims told about the new room, who re-join over the next
    /// `return_window`.
    pub returning: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CrashRecord {
    pub room: String,
    pub at: Millis,
    pub at_rfc3339: String,
    pub listeners_dropped: u64,
}

/// A change an operator (or the bot) made to the platform, for the record
/// of what was done and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminAction {
    pub at: Millis,
    /// `create_room`, `move`, `cap`, `waiting_room`, `provision` or
    /// `mute`.
    pub action: String,
    pub room: String,
    pub detail: String,
}

#[derive(Clone, Debug)]
struct Event {
    id: String,
    title: String,
    room: String,
    /// Rooms relaying `room`'s stage, in the order attached.
    overflow: Vec<String>,
    secondary_account: String,
    actions: Vec<AdminAction>,
    moves: Vec<MoveRecord>,
    crashes: Vec<CrashRecord>,
    peak: u64,
    peak_at: Option<Millis>,
}

/// The whole simulated platform.
#[derive(Clone, Debug)]
pub struct World {
    scenario: Scenario,
    seed: u64,
    time: Millis,
    rng: Rng,
    rooms: Vec<Room>,
    speakers: Vec<Speaker>,
    event: Event,
    /// Retry rings, index 0 is due at the next tick. `fresh` clients never
    /// got in; `back` are crash victims who did, kept apart so unique
    /// listener counts stay honest.
    retry_fresh: VecDeque<u64>,
    retry_back: VecDeque<u64>,
    /// Crash victims waiting for news of a restart.
    stranded: u64,
    /// People per (ms x intensity) of the profile curve.
    arrival_scale: f64,
    arrivals: u64,
    unique: u64,
    gave_up: u64,
    crash_lost: u64,
    moved_lost: u64,
    room_seq: BTreeMap<String, u32>,
    /// Rooms created through the admin API, per account.
    created: BTreeMap<String, u32>,
}

impl World {
    /// A world at the scenario's start, the event live in its first room.
    pub fn new(scenario: &Scenario, seed: u64) -> World {
        let sc = scenario.clone();
        let base_latency = sc.dynamics.base_latency_s;
        let mut rooms: Vec<Room> = sc
            .rooms
            .iter()
            .map(|r| {
                Room::new(
                    r.id.clone(),
                    r.account.clone(),
                    r.title.clone(),
                    r.capacity,
                    r.admission_rate,
                    sc.start,
                    base_latency,
                )
            })
            .collect();
        for r in &mut rooms {
            if r.id == sc.event.room {
                r.state = RoomState::Live;
            }
        }
        let speakers = sc
            .speakers
            .iter()
            .map(|s| Speaker {
                id: s.id.clone(),
                name: s.name.clone(),
                room: s.room.clone(),
                base_feedback: s.feedback,
                base_packet_loss: s.packet_loss,
                feedback: s.feedback,
                packet_loss: s.packet_loss,
                connected: true,
                muted: false,
                audio_checked: false,
                feedback_fixed: false,
            })
            .collect();
        let integral: f64 = sc
            .audience
            .profile
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) as f64 * (w[0].1 + w[1].1) / 2.0)
            .sum();
        let arrival_scale = if integral > 0.0 {
            sc.interested_audience() / integral
        } else {
            0.0
        };
        let ring = sc
            .behaviour
            .retry_delay_max_s
            .max(sc.behaviour.return_window_s) as usize
            + 1;
        let event = Event {
            id: sc.event.id.clone(),
            title: sc.event.title.clone(),
            room: sc.event.room.clone(),
            overflow: Vec::new(),
            secondary_account: sc.event.secondary_account.clone(),
            actions: Vec::new(),
            moves: Vec::new(),
            crashes: Vec::new(),
            peak: 0,
            peak_at: None,
        };
        let mut w = World {
            time: sc.start,
            seed,
            rng: Rng::new(seed),
            rooms,
            speakers,
            event,
            retry_fresh: VecDeque::from(vec![0; ring]),
            retry_back: VecDeque::from(vec![0; ring]),
            stranded: 0,
            arrival_scale,
            arrivals: 0,
            unique: 0,
            gave_up: 0,
            crash_lost: 0,
            moved_lost: 0,
            room_seq: BTreeMap::new(),
            created: BTreeMap::new(),
            scenario: sc,
        };
        w.update_speakers(w.time);
        w
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// Simulated time of the last tick.
    pub fn time(&self) -> Millis {
        self.time
    }

    /// Runs whole ticks up to `now`; a partial second waits for the next
    /// call. Going backwards is a no-op.
    pub fn advance_to(&mut self, now: Millis) {
        while self.time + TICK_MS <= now {
            self.time += TICK_MS;
            self.tick(self.time);
        }
    }

    /// Jumps to `now` without simulating the gap (nobody arrives, nothing
    /// changes). Only for a clock that is wildly ahead of the world, where
    /// ticking through days would stall the caller.
    pub fn skip_to(&mut self, now: Millis) {
        if now > self.time {
            self.time += (now - self.time) / TICK_MS * TICK_MS;
        }
    }

    /// Arrival rate (people per second) at `t`.
    pub fn arrival_rate(&self, t: Millis) -> f64 {
        if t >= self.scenario.end {
            return 0.0;
        }
        let off = t - self.scenario.scheduled_start;
        let p = &self.scenario.audience.profile;
        let Some(i) = p.windows(2).position(|w| off >= w[0].0 && off < w[1].0) else {
            return 0.0;
        };
        let (t0, v0) = p[i];
        let (t1, v1) = p[i + 1];
        let f = (off - t0) as f64 / (t1 - t0) as f64;
        (v0 + (v1 - v0) * f) * self.arrival_scale * 1000.0
    }

    fn room_idx(&self, id: &str) -> Option<usize> {
        self.rooms.iter().position(|r| r.id == id)
    }

    /// The event's id and its listeners now, in all its rooms.
    pub fn event_listeners(&self) -> (&str, u64) {
        (&self.event.id, self.sum_event(|r| r.listeners))
    }

    /// The event's rooms: its own first, then its overflow rooms.
    fn event_rooms(&self) -> Vec<usize> {
        let mut v = vec![self.current_idx()];
        v.extend(
            self.event
                .overflow
                .iter()
                .filter_map(|id| self.room_idx(id)),
        );
        v
    }

    fn sum_event(&self, f: impl Fn(&Room) -> u64) -> u64 {
        self.event_rooms()
            .into_iter()
            .map(|i| f(&self.rooms[i]))
            .sum()
    }

    fn is_overflow(&self, room: &str) -> bool {
        self.event.overflow.iter().any(|o| o == room)
    }

    /// What doing nothing costs, as gauges: `untouched` is this world's
    /// twin (same scenario and seed) that no admin call ever reached.
    pub fn render_counterfactual(untouched: &World, out: &mut String) {
        let (event, listeners) = untouched.event_listeners();
        let _ = writeln!(
            out,
            "# HELP live_event_counterfactual_listeners Listeners the event would have now had nobody changed anything on the platform: the same audience and faults, no admin call.\n# TYPE live_event_counterfactual_listeners gauge\nlive_event_counterfactual_listeners{{event=\"{}\"}} {listeners}",
            esc(event)
        );
    }

    fn current_idx(&self) -> usize {
        // The event's room always exists: rooms are never deleted and moves
        // only target existing rooms.
        self.room_idx(&self.event.room).unwrap_or(0)
    }

    fn update_speakers(&mut self, t: Millis) {
        for s in &mut self.speakers {
            s.feedback = s.base_feedback;
            s.packet_loss = s.base_packet_loss;
            s.connected = true;
            for f in self.scenario.faults.iter().filter(|f| f.speaker == s.id) {
                if t < f.at || t >= f.until {
                    continue;
                }
                if let Some(v) = f.feedback
                    && !s.feedback_fixed
                {
                    s.feedback = v;
                }
                if let Some(v) = f.packet_loss {
                    s.packet_loss = v;
                }
                if let Some(every) = f.reconnect_every_ms {
                    let phase = (t - f.at) % every;
                    if phase >= every - f.reconnect_for_ms {
                        s.connected = false;
                    }
                }
            }
        }
    }

    /// Queues `n` clients to retry, spread evenly over the retry delays.
    fn schedule(&mut self, n: u64, back: bool, min_s: u32, max_s: u32) {
        let ring = if back {
            &mut self.retry_back
        } else {
            &mut self.retry_fresh
        };
        let (lo, hi) = (min_s.max(1) as usize, max_s.max(min_s).max(1) as usize);
        let hi = hi.min(ring.len());
        let lo = lo.min(hi);
        let k = (hi - lo + 1) as u64;
        for (j, slot) in (lo - 1..hi).enumerate() {
            ring[slot] += n / k + u64::from((j as u64) < n % k);
        }
    }

    /// Failed clients: most retry, the rest give up.
    fn fail(&mut self, room: usize, reason: FailReason, fresh: u64, back: u64) {
        self.rooms[room].failures[reason as usize] += fresh + back;
        let b = &self.scenario.behaviour;
        let (p, lo, hi) = (
            b.retry_probability,
            b.retry_delay_min_s,
            b.retry_delay_max_s,
        );
        for (n, is_back) in [(fresh, false), (back, true)] {
            let retry = self.rng.binomial(n, p);
            self.gave_up += n - retry;
            self.schedule(retry, is_back, lo, hi);
        }
    }

    fn tick(&mut self, t: Millis) {
        self.update_speakers(t);
        let lambda = self.arrival_rate(t - TICK_MS / 2);
        let arrivals = self.rng.poisson(lambda);
        self.arrivals += arrivals;
        let fresh = arrivals + self.retry_fresh.pop_front().unwrap_or(0);
        self.retry_fresh.push_back(0);
        let back = self.retry_back.pop_front().unwrap_or(0);
        self.retry_back.push_back(0);

        let b = self.scenario.behaviour.clone();
        let lost = self
            .rng
            .binomial(self.stranded, b.stranded_give_up_per_min / 60.0);
        self.stranded -= lost;
        self.crash_lost += lost;

        for r in &mut self.rooms {
            if let Some(sc) = r.scaling.filter(|sc| sc.ready_at <= t) {
                r.capacity = sc.capacity.unwrap_or(r.capacity);
                r.admission_rate = sc.admission_rate.unwrap_or(r.admission_rate);
                r.scaling = None;
            }
        }

        let cur = self.current_idx();
        let mut loads = vec![0u64; self.rooms.len()];
        let live: Vec<usize> = self
            .event_rooms()
            .into_iter()
            .filter(|&i| self.rooms[i].state == RoomState::Live)
            .collect();
        if live.is_empty() {
            self.rooms[cur].join_requests += fresh + back;
            self.fail(cur, FailReason::RoomDown, fresh, back);
        } else {
            for (i, (f, b)) in self.route(&live, fresh, back) {
                self.rooms[i].join_requests += f + b;
                loads[i] = self.admit(i, f, b);
            }
        }

        for (i, joins) in loads.into_iter().enumerate() {
            self.room_tick(i, joins, t);
        }

        let now = self.sum_event(|r| r.listeners);
        if now > self.event.peak {
            self.event.peak = now;
            self.event.peak_at = Some(t);
        }
    }

    /// Shares this tick's joins (`fresh`, `back`) among the event's `live`
    /// rooms, the stage first. The router sends a room no more than its
    /// join service takes. It first fills each room, in order, only to
    /// [`ROUTER_FILL`] of its capacity (a full room's latency is past the
    /// knee), then each up to its limit in reverse order, so the stage is
    /// the last to be filled to the brim and an overflow room too small
    /// for the excess never leaves the stage emptier than it would be
    /// alone. What no room has space for goes to the last room, to fail,
    /// queue or wait there; so a lone room gets every join, as without a
    /// router.
    fn route(&self, live: &[usize], fresh: u64, back: u64) -> Vec<(usize, (u64, u64))> {
        let all = fresh + back;
        let n = live.len();
        let mut alloc = vec![0u64; n];
        let mut left = all;
        let order: Vec<(usize, bool)> = (0..n)
            .map(|k| (k, true))
            .chain((0..n).rev().map(|k| (k, false)))
            .collect();
        for (k, soft) in order {
            let r = &self.rooms[live[k]];
            let rate = if r.waiting_room {
                (r.admission_rate as f64 * WAITING_ROOM_PACE).floor() as u64
            } else {
                r.admission_rate
            };
            let limit = if soft {
                r.limit().min((r.capacity as f64 * ROUTER_FILL) as u64)
            } else {
                r.limit()
            };
            let space = limit.saturating_sub(r.listeners + r.waiting + alloc[k]);
            let take = left.min(space).min(rate.saturating_sub(alloc[k]));
            alloc[k] += take;
            left -= take;
        }
        alloc[n - 1] += left;
        // Returning clients in proportion; the last room gets what is left
        // of each, so nobody is lost to rounding.
        let (mut f_left, mut b_left) = (fresh, back);
        let mut out = Vec::with_capacity(n);
        for (k, &i) in live[..n - 1].iter().enumerate() {
            let b = if all == 0 {
                0
            } else {
                (alloc[k] as u128 * back as u128 / all as u128) as u64
            }
            .min(b_left);
            let f = (alloc[k] - b).min(f_left);
            f_left -= f;
            b_left -= b;
            out.push((i, (f, b)));
        }
        out.push((live[n - 1], (f_left, b_left)));
        out
    }

    /// Admits what the room can take this tick; returns the load on its
    /// join service (requests it had to process).
    fn admit(&mut self, i: usize, fresh: u64, back: u64) -> u64 {
        let r = &mut self.rooms[i];
        if r.waiting_room {
            // Everyone is queued by the front door and told when to come
            // back, so nobody retries; the join service takes a steady
            // pace from the head of the queue, only into free space.
            r.waiting += fresh + back;
            let pace = (r.admission_rate as f64 * WAITING_ROOM_PACE).floor() as u64;
            let n = r
                .waiting
                .min(r.limit().saturating_sub(r.listeners))
                .min(pace.max(1));
            r.waiting -= n;
            r.listeners += n;
            self.unique += n;
            return n;
        }
        let mut budget = r.admission_rate;
        // The waiting room goes first: those clients queued earliest.
        let from_wait = r
            .waiting
            .min(r.limit().saturating_sub(r.listeners))
            .min(budget);
        r.waiting -= from_wait;
        r.listeners += from_wait;
        budget -= from_wait;
        self.unique += from_wait;

        let attempts = fresh + back;
        let served = attempts.min(budget);
        let space = r.limit().saturating_sub(r.listeners);
        let admitted = served.min(space);
        let excess = served - admitted;
        r.listeners += admitted;
        let capped = r.cap.is_some();
        if capped {
            r.waiting += excess;
        }
        // Split outcomes between fresh and returning clients in proportion.
        let share = |n: u64| {
            if attempts == 0 {
                0
            } else {
                (n as u128 * back as u128 / attempts as u128) as u64
            }
        };
        let admitted_back = share(admitted);
        self.unique += admitted - admitted_back;
        let overload = attempts - served;
        let ob = share(overload);
        self.fail(i, FailReason::Overload, overload - ob, ob);
        if !capped {
            let cb = share(excess);
            self.fail(i, FailReason::Capacity, excess - cb, cb);
        }
        attempts
    }

    fn room_tick(&mut self, i: usize, joins: u64, t: Millis) {
        let b = &self.scenario.behaviour;
        let d = &self.scenario.dynamics;
        let (base_churn, quality_churn, feedback_churn, waiting_give_up) = (
            b.base_churn_per_min / 60.0,
            b.quality_churn_per_min / 60.0,
            b.feedback_churn_per_min / 60.0,
            b.waiting_give_up_per_min / 60.0,
        );
        let (base_latency, crash_after, recovery) =
            (d.base_latency_s, d.crash_after_s as f64, d.recovery_rate);
        if self.rooms[i].state != RoomState::Live {
            let r = &mut self.rooms[i];
            r.utilisation = 0.0;
            r.overload_s = 0.0;
            return;
        }
        // Audio badness of the room's active speakers: what listeners hear.
        // An overflow room relays the stage, so it hears the stage's.
        let relay = self.is_overflow(&self.rooms[i].id);
        let stage = if relay {
            self.event.room.clone()
        } else {
            self.rooms[i].id.clone()
        };
        let base_latency = base_latency + if relay { RELAY_LATENCY_S } else { 0.0 };
        let (mut fb, mut pl) = (0.0f64, 0.0f64);
        for s in self
            .speakers
            .iter()
            .filter(|s| s.room == stage && s.connected && !s.muted)
        {
            fb = fb.max(s.feedback);
            pl = pl.max(s.packet_loss);
        }
        let audio = fb + pl / 2.0;

        let jitter = 1.0 + 0.03 * self.rng.normal();
        let r = &mut self.rooms[i];
        let u =
            (r.listeners as f64 / r.capacity as f64).max(joins as f64 / r.admission_rate as f64);
        r.utilisation = u;
        // A queueing knee: flat while lightly loaded, x8 at utilisation 1,
        // tens of seconds beyond it.
        r.latency_s = (base_latency * (1.0 + 3.0 * (u / 0.9).powi(8)) * jitter.max(0.5)).min(30.0);
        let quality = quality_churn * ((r.latency_s - 1.0) / 4.0).clamp(0.0, 1.0);

        let churn = self.rng.binomial(r.listeners, base_churn);
        r.listeners -= churn;
        let q = self
            .rng
            .binomial(r.listeners, quality + feedback_churn * audio);
        r.listeners -= q;
        r.left[LEFT_CHURN] += churn;
        r.left[LEFT_QUALITY] += q;
        let give_up = self.rng.binomial(r.waiting, waiting_give_up);
        r.waiting -= give_up;
        self.gave_up += give_up;

        if r.listeners > 0 {
            let n = (r.listeners / LISTENERS_PER_SAMPLE).max(1);
            r.latency.observe(n, r.latency_s);
        }

        if u > 1.0 {
            r.overload_s += 1.0;
        } else {
            r.overload_s = (r.overload_s - recovery).max(0.0);
        }
        if r.overload_s >= crash_after {
            self.crash(i, t);
        }
    }

    fn crash(&mut self, i: usize, t: Millis) {
        let crash_return = self.scenario.behaviour.crash_return;
        let r = &mut self.rooms[i];
        let dropped = r.listeners + r.waiting;
        r.left[LEFT_CRASH] += r.listeners;
        r.listeners = 0;
        r.waiting = 0;
        r.state = RoomState::Crashed;
        r.crashed_at = Some(t);
        r.latency_s = 0.0;
        r.utilisation = 0.0;
        let room = r.id.clone();
        let returning = self.rng.binomial(dropped, crash_return);
        self.stranded += returning;
        self.crash_lost += dropped - returning;
        self.event.crashes.push(CrashRecord {
            room,
            at: t,
            at_rfc3339: rfc3339(t),
            listeners_dropped: dropped,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Millis = 60_000;

    fn world() -> World {
        World::new(&Scenario::builtin(), 42)
    }

    /// `hh:mm` Eastern (UTC-4) on the day of the scenario.
    fn et(w: &World, h: i64, m: i64) -> Millis {
        w.scenario().scheduled_start + ((h - 18) * 60 + m) * MIN
    }

    fn mv(w: &mut World) {
        w.create_room("cohost", Some(1_500_000), None, None)
            .unwrap();
        w.move_event("launch", "cohost-1").unwrap();
    }

    fn first_time(
        w: &mut World,
        until: Millis,
        pred: impl Fn(&StateSnapshot) -> bool,
    ) -> Option<Millis> {
        let mut t = w.time();
        while t < until {
            t += 1000;
            w.advance_to(t);
            if pred(&w.snapshot()) {
                return Some(t);
            }
        }
        None
    }

    #[test]
    fn no_intervention_saturates_then_crashes_like_2023() {
        let mut w = world();
        let end = et(&w, 18, 45);
        let full =
            first_time(&mut w, end, |s| s.rooms[0].join_failures.capacity > 0).expect("saturates");
        assert!(
            (et(&w, 18, 10)..et(&w, 18, 22)).contains(&full),
            "saturated at {}",
            rfc3339(full)
        );
        let crash = first_time(&mut w, end, |s| s.event.crashed).expect("crashes");
        assert!(
            (et(&w, 18, 20)..et(&w, 18, 30)).contains(&crash),
            "crashed at {}",
            rfc3339(crash)
        );
        w.advance_to(end);
        let s = w.snapshot();
        assert!(
            s.event.peak_listeners > 450_000,
            "{}",
            s.event.peak_listeners
        );
        assert!(s.event.listeners <= s.event.peak_listeners / 2);
        assert_eq!(s.event.crashed_at, Some(crash));
        assert!(!s.rooms[0].up);
        assert!(s.rooms[0].join_failures.room_down > 0);
        assert!(
            s.rooms[0].join_failures.overload > 0,
            "the retry storm overloads the join service"
        );
        assert!(s.event.lost.total > s.event.peak_listeners / 2);
    }

    #[test]
    fn a_move_can_be_undone_by_moving_back_to_the_room_left() {
        let mut w = world();
        w.advance_to(et(&w, 18, 4));
        mv(&mut w);
        let back = w.move_event("launch", "main").unwrap();
        assert_eq!(back.from_room, "cohost-1");
        let s = w.snapshot();
        assert_eq!(s.event.room, "main");
        assert_eq!(s.rooms[0].state, RoomState::Live);
        assert_eq!(s.rooms[0].ended_at, None);
        assert_eq!(s.rooms[1].state, RoomState::Ended);
        assert_eq!(s.event.moves.len(), 2);
        assert_eq!(s.rooms[0].speakers.len(), 3);
        assert!(s.rooms[1].speakers.is_empty());
        // A room that crashed is no way back.
        w.rooms[0].state = RoomState::Crashed;
        let e = w.move_event("launch", "cohost-1").unwrap();
        assert_eq!(e.to_room, "cohost-1");
        let err = w.move_event("launch", "main").unwrap_err().to_string();
        assert!(err.contains("is crashed"), "{err}");
    }

    #[test]
    fn early_move_keeps_the_audience_and_serves_the_peak() {
        let mut w = world();
        w.advance_to(et(&w, 18, 4));
        let before = w.snapshot().event.listeners;
        mv(&mut w);
        let s = w.snapshot();
        assert_eq!(s.event.room, "cohost-1");
        assert_eq!(s.event.account, "cohost");
        assert_eq!(s.event.moves.len(), 1);
        assert_eq!(
            s.event.moves[0].speakers_moved,
            ["host", "owner", "moderator"]
        );
        let lost = s.event.moves[0].listeners_lost;
        assert!(lost > 0 && lost < before / 20, "{lost} of {before}");
        assert_eq!(s.rooms[0].state, RoomState::Ended);
        w.advance_to(et(&w, 18, 45));
        let s = w.snapshot();
        assert!(!s.event.crashed);
        let r = &s.rooms[1];
        assert_eq!(
            r.join_failures,
            JoinFailures {
                capacity: 0,
                overload: 0,
                room_down: 0
            }
        );
        assert!(
            s.event.listeners * 10 > s.event.peak_listeners * 9,
            "{:?}",
            s.event
        );
        assert!(
            s.event.listeners * 10 > s.event.unique_listeners * 9,
            "{:?}",
            s.event
        );
        assert!(
            s.event.peak_listeners > 520_000,
            "more than the old room could hold"
        );
    }

    #[test]
    fn restart_after_the_crash_keeps_about_half() {
        let mut w = world();
        w.advance_to(et(&w, 18, 33));
        assert!(w.snapshot().event.crashed);
        mv(&mut w);
        assert!(w.snapshot().event.moves[0].returning > 200_000);
        w.advance_to(et(&w, 18, 45));
        let s = w.snapshot();
        let ratio = s.event.listeners as f64 / s.event.peak_listeners as f64;
        assert!((0.35..0.7).contains(&ratio), "{ratio} {:?}", s.event);
        assert_eq!(
            s.rooms[1].state,
            RoomState::Live,
            "the restarted room survives"
        );
    }

    #[test]
    fn a_cap_holds_the_excess_and_prevents_the_crash() {
        let mut w = world();
        w.advance_to(et(&w, 18, 10));
        w.set_cap("main", Some(480_000)).unwrap();
        w.advance_to(et(&w, 18, 20));
        let s = w.snapshot();
        assert!(s.rooms[0].waiting > 0);
        assert!(s.rooms[0].listeners <= 480_000);
        assert_eq!(s.rooms[0].join_failures.capacity, 0);
        w.advance_to(et(&w, 18, 45));
        assert!(!w.snapshot().event.crashed);
        // Clearing the cap drains the waiting room into the free space.
        let waiting = w.snapshot().rooms[0].waiting;
        w.set_cap("main", None).unwrap();
        w.advance_to(et(&w, 18, 46));
        assert!(w.snapshot().rooms[0].waiting < waiting);
    }

    /// The 2023 surge into a big room whose join service admits 400/s.
    fn admission_bound() -> World {
        let mut sc = Scenario::builtin();
        sc.rooms[0].capacity = 2_000_000;
        sc.rooms[0].admission_rate = 400;
        World::new(&sc, 42)
    }

    #[test]
    fn an_open_waiting_room_paces_joins_and_stops_the_retry_storm() {
        let mut alone = admission_bound();
        alone.advance_to(et(&alone, 18, 20));
        assert!(alone.snapshot().event.crashed, "the retry storm kills it");

        let mut w = admission_bound();
        w.advance_to(et(&w, 18, 0));
        let r = w.set_waiting_room("main", true).unwrap();
        assert!(r.waiting_room);
        let overload = w.snapshot().rooms[0].join_failures.overload;
        let mut queued = 0;
        for m in 1..=45 {
            w.advance_to(et(&w, 18, m));
            let s = w.snapshot();
            let room = &s.rooms[0];
            queued = queued.max(room.waiting);
            assert!(room.utilisation <= 0.91, "{m}: {}", room.utilisation);
        }
        let s = w.snapshot();
        assert!(!s.event.crashed);
        assert_eq!(s.rooms[0].join_failures.overload, overload, "nobody failed");
        assert!(queued > 10_000, "the surge queued: {queued}");
        // It costs: some of those queued give up.
        assert!(s.event.lost.gave_up > 0);
        assert!(s.event.listeners as f64 > 0.7 * s.event.arrivals as f64);
        assert!(w.set_waiting_room("nowhere", true).is_err());
    }

    #[test]
    fn scaling_a_live_room_takes_time_within_the_accounts_limits() {
        let mut sc = Scenario::builtin();
        sc.accounts[0].max_admission_rate = 3000;
        let mut w = World::new(&sc, 42);
        // Empty ahead of the event: at once.
        assert_eq!(
            w.provision("main", None, Some(1100))
                .unwrap()
                .admission_rate,
            1100
        );
        w.advance_to(et(&w, 17, 58));
        let t = w.time();
        let r = w.provision("main", None, Some(2500)).unwrap();
        assert_eq!(r.admission_rate, 1100, "not yet");
        let sc_at = r.scaling.unwrap();
        assert_eq!(
            (sc_at.admission_rate, sc_at.ready_at),
            (Some(2500), t + 120_000)
        );
        w.advance_to(t + 119_000);
        assert_eq!(w.room("main").unwrap().admission_rate, 1100);
        w.advance_to(t + 120_000);
        let r = w.room("main").unwrap();
        assert_eq!((r.admission_rate, r.scaling), (2500, None));
        // Shrinking is immediate; beyond the account's limit is refused.
        assert!(w.room("main").unwrap().listeners > 0);
        assert_eq!(
            w.provision("main", None, Some(900)).unwrap().admission_rate,
            900
        );
        let e = w.provision("main", None, Some(3001)).unwrap_err();
        assert!(
            e.to_string().contains("allows (3000 joins per second)"),
            "{e}"
        );
        // A room nobody is in is sized at once.
        w.create_room("cohost", None, None, None).unwrap();
        assert_eq!(w.provision("cohost-1", Some(7), None).unwrap().capacity, 7);
    }

    #[test]
    fn account_limits_bound_the_rooms_it_can_create() {
        let mut sc = Scenario::builtin();
        let co = sc.accounts.iter_mut().find(|a| a.id == "cohost").unwrap();
        co.max_room_capacity = 300_000;
        co.max_new_rooms = Some(1);
        let mut w = World::new(&sc, 42);
        let a = w.account("cohost").unwrap();
        assert_eq!(
            (a.max_room_capacity, a.new_room.capacity, a.rooms_left),
            (300_000, 300_000, Some(1))
        );
        let e = w
            .create_room("cohost", Some(1_500_000), None, None)
            .unwrap_err();
        assert!(matches!(e, SimError::Invalid(_)), "{e}");
        assert_eq!(
            w.create_room("cohost", None, None, None).unwrap().capacity,
            300_000
        );
        assert_eq!(w.account("cohost").unwrap().rooms_left, Some(0));
        let e = w.create_room("cohost", None, None, None).unwrap_err();
        assert!(matches!(e, SimError::Conflict(_)), "{e}");
        assert_eq!(w.account("owner").unwrap().rooms_left, None);
    }

    /// The 2023 surge where no room on the co-host's account is bigger than
    /// the event's: an overflow room beside it carries the excess, the
    /// stage's speakers stay where they are, and nobody crashes.
    #[test]
    fn an_overflow_room_splits_the_event_and_carries_what_the_stage_cannot() {
        let mut sc = Scenario::builtin();
        let co = sc.accounts.iter_mut().find(|a| a.id == "cohost").unwrap();
        co.max_room_capacity = 300_000;
        let mut w = World::new(&sc, 42);
        w.advance_to(et(&w, 18, 3));
        let room = w.create_room("cohost", None, None, None).unwrap().id;
        let ev = w.add_overflow("launch", &room).unwrap();
        assert_eq!(ev.overflow_rooms, vec![room.clone()]);
        assert_eq!(ev.room, "main");
        // Attaching it twice, or the stage, or an unknown room, is refused.
        for r in [room.as_str(), "main"] {
            assert!(matches!(
                w.add_overflow("launch", r),
                Err(SimError::Conflict(_))
            ));
        }
        assert!(matches!(
            w.add_overflow("launch", "nope"),
            Err(SimError::UnknownRoom { .. })
        ));
        w.advance_to(et(&w, 18, 30));
        let s = w.snapshot();
        let (stage, over) = (&s.rooms[0], s.rooms.iter().find(|r| r.id == room).unwrap());
        assert!(!s.event.crashed, "{:?}", s.event.crashes);
        assert!(
            over.listeners > 20_000,
            "overflow carries the excess: {}",
            over.listeners
        );
        assert_eq!(over.overflow_of.as_deref(), Some("main"));
        assert_eq!(over.hosting_event.as_deref(), Some("launch"));
        assert!(over.speakers.is_empty(), "the speakers stay on the stage");
        assert!(stage.listeners <= stage.capacity);
        assert_eq!(s.event.listeners, stage.listeners + over.listeners);
        assert_eq!(s.event.capacity, stage.capacity + over.capacity);
        assert!(s.event.peak_listeners >= s.event.listeners);
        // The relay costs latency: a lightly loaded room would be at the
        // base latency.
        let base = sc.dynamics.base_latency_s;
        assert!(
            over.latency_seconds > base + 0.3,
            "{}",
            over.latency_seconds
        );
        // Without the overflow room the same night crashes the stage.
        let mut alone = World::new(&sc, 42);
        alone.advance_to(et(&alone, 18, 30));
        assert!(alone.snapshot().event.crashed);
        // Metrics: both rooms carry the event label, and the event's info
        // names both with their roles.
        let mut m = String::new();
        w.render_metrics(&mut m);
        assert!(m.contains(&format!(
            "live_event_info{{event=\"launch\",room=\"{room}\",account=\"cohost\",role=\"overflow\"}} 1"
        )), "{m}");
        assert!(m.contains(
            "live_event_info{event=\"launch\",room=\"main\",account=\"owner\",role=\"stage\"} 1"
        ));
        assert!(m.contains(&format!(
            "live_room_listeners{{room=\"{room}\",account=\"cohost\",event=\"launch\"}}"
        )));
        assert!(m.contains(&format!(
            "live_event_listeners{{event=\"launch\"}} {}",
            s.event.listeners
        )));
    }

    /// An overflow room too small for the excess must not leave the stage
    /// emptier than it would be alone: once the overflow room is full the
    /// stage fills past the router's 85% up to its own limit.
    #[test]
    fn a_small_overflow_room_never_holds_fewer_than_the_stage_alone() {
        let mut sc = Scenario::builtin();
        let co = sc.accounts.iter_mut().find(|a| a.id == "cohost").unwrap();
        co.max_room_capacity = 50_000;
        let mut split = World::new(&sc, 42);
        let mut alone = World::new(&sc, 42);
        for w in [&mut split, &mut alone] {
            w.advance_to(et(w, 18, 3));
            w.set_cap("main", Some(494_000)).unwrap();
        }
        let room = split.create_room("cohost", None, None, None).unwrap().id;
        split.add_overflow("launch", &room).unwrap();
        split.set_cap(&room, Some(47_500)).unwrap();
        for w in [&mut split, &mut alone] {
            w.advance_to(et(w, 18, 30));
        }
        let (s, a) = (split.snapshot(), alone.snapshot());
        assert!(!s.event.crashed && !a.event.crashed);
        assert!(
            s.rooms[0].listeners > 480_000,
            "stage {}",
            s.rooms[0].listeners
        );
        assert!(
            s.event.listeners > a.event.listeners,
            "split {} vs alone {}",
            s.event.listeners,
            a.event.listeners
        );
    }

    fn host(s: &StateSnapshot) -> SpeakerSnapshot {
        s.rooms
            .iter()
            .flat_map(|r| r.speakers.iter())
            .find(|s| s.id == "host")
            .unwrap()
            .clone()
    }

    #[test]
    fn feedback_fault_has_a_window_and_muting_removes_its_churn() {
        let mut w = world();
        w.advance_to(et(&w, 18, 0));
        assert!(host(&w.snapshot()).feedback_level < 0.1);
        w.advance_to(et(&w, 18, 1));
        let h = host(&w.snapshot());
        assert!((h.feedback_level - 0.85).abs() < 1e-9 && h.connected);
        // Reconnects: the last 15 s of every 4 minutes from 18:00:30.
        w.advance_to(et(&w, 18, 4) + 20_000);
        assert!(!host(&w.snapshot()).connected);
        w.advance_to(et(&w, 18, 21));
        assert!(host(&w.snapshot()).feedback_level < 0.1);

        let quality_by = |mute: bool| {
            let mut w = world();
            w.advance_to(et(&w, 18, 0) + 40_000);
            if mute {
                let s = w.mute("main", "host", true).unwrap();
                assert!(
                    s.muted && s.feedback_level > 0.8,
                    "the input still shows feedback"
                );
            }
            w.advance_to(et(&w, 18, 15));
            w.snapshot().rooms[0].left.quality
        };
        let (unmuted, muted) = (quality_by(false), quality_by(true));
        assert!(
            unmuted > 5_000 && unmuted > muted * 5,
            "unmuted {unmuted}, muted {muted}"
        );
    }

    #[test]
    fn same_seed_same_world_however_it_is_advanced() {
        let (mut a, mut b) = (world(), world());
        let t = et(&a, 18, 12);
        a.advance_to(t);
        let mut x = b.time();
        let mut step = 1;
        while x < t {
            x = (x + step * 337).min(t);
            b.advance_to(x);
            step = step % 7 + 1;
        }
        assert_eq!(a.snapshot(), b.snapshot());
        let (mut ma, mut mb) = (String::new(), String::new());
        a.render_metrics(&mut ma);
        b.render_metrics(&mut mb);
        assert_eq!(ma, mb);
        let mut c = World::new(&Scenario::builtin(), 43);
        c.advance_to(t);
        assert_ne!(a.snapshot().event.listeners, c.snapshot().event.listeners);
    }

    #[test]
    fn prng_is_pinned() {
        // A change here changes every recorded run: make it deliberately.
        let mut r = Rng::new(42);
        let v: Vec<u64> = (0..3).map(|_| r.next_u64() % 1_000_000).collect();
        assert_eq!(v, PINNED_PRNG);
        assert!((erf(1.0) - 0.842_700_79).abs() < 1e-6);
        assert!(erf(0.0).abs() < 1e-6 && (erf(-1.0) + erf(1.0)).abs() < 1e-12);
    }
    const PINNED_PRNG: [u64; 3] = [558_742, 543_102, 559_009];

    #[test]
    fn metrics_parse_and_keep_the_contract() {
        let mut w = world();
        w.advance_to(et(&w, 18, 3));
        w.create_room("cohost", None, None, Some("Backup".into()))
            .unwrap();
        w.set_cap("main", Some(400_000)).unwrap();
        w.advance_to(et(&w, 18, 4));
        let mut text = String::new();
        w.render_metrics(&mut text);
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
        let find = |name: &str, room: Option<&str>| {
            scrape
                .samples
                .iter()
                .filter(|s| {
                    s.metric == name && room.is_none_or(|r| s.labels.get("room") == Some(r))
                })
                .collect::<Vec<_>>()
        };
        use prometheus_parse::Value;
        let main = find("live_room_listeners", Some("main"));
        assert_eq!(main.len(), 1);
        assert_eq!(main[0].labels.get("event"), Some("launch"));
        assert_eq!(main[0].labels.get("account"), Some("owner"));
        let backup = find("live_room_listeners", Some("cohost-1"));
        assert_eq!(backup[0].labels.get("event"), None);
        assert!(matches!(main[0].value, Value::Gauge(v) if v > 100_000.0));
        assert_eq!(find("live_room_listener_cap", None).len(), 1);
        assert_eq!(find("live_join_failures_total", Some("cohost-1")).len(), 3);
        assert_eq!(find("live_listeners_left_total", Some("main")).len(), 4);
        for name in [
            "live_room_capacity",
            "live_room_waiting",
            "live_room_up",
            "live_join_requests_total",
            "live_speaker_feedback_level",
            "live_speaker_packet_loss_ratio",
            "live_speaker_muted",
            "live_speaker_connected",
            "live_speaker_audio_checked",
            "live_event_listeners",
            "live_event_info",
            "live_secondary_room_ready",
            "live_sim_time_seconds",
        ] {
            assert!(!find(name, None).is_empty(), "{name} missing");
            assert!(scrape.docs.contains_key(name), "{name} has no HELP");
        }
        assert!(
            matches!(find("live_secondary_room_ready", None)[0].value, Value::Gauge(v) if v == 1.0)
        );
        assert!(
            matches!(find("live_join_requests_total", Some("main"))[0].value, Value::Counter(v) if v > 0.0)
        );
        let hist = find("live_stream_latency_seconds", Some("main"));
        let Value::Histogram(buckets) = &hist[0].value else {
            panic!("{hist:?}")
        };
        assert_eq!(buckets.len(), LATENCY_BUCKETS.len() + 1);
        assert!(
            buckets.windows(2).all(|b| b[0].count <= b[1].count),
            "{buckets:?}"
        );
        assert!(buckets.last().unwrap().less_than.is_infinite());
        assert!(buckets.last().unwrap().count > 0.0);
        assert!(text.contains("# TYPE live_stream_latency_seconds histogram"));
    }

    #[test]
    fn admin_errors_say_what_is_valid() {
        let mut w = world();
        let e = w.move_event("launch", "main").unwrap_err();
        assert!(matches!(e, SimError::Conflict(_)), "{e}");
        let e = w.move_event("launch", "nope").unwrap_err().to_string();
        assert!(e.contains("main"), "{e}");
        let e = w.move_event("lunch", "main").unwrap_err().to_string();
        assert!(e.contains("launch"), "{e}");
        let e = w
            .create_room("bob", None, None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("cohost") && e.contains("owner"), "{e}");
        assert!(matches!(
            w.create_room("cohost", Some(0), None, None),
            Err(SimError::Invalid(_))
        ));
        let e = w.mute("main", "hots", true).unwrap_err().to_string();
        assert!(e.contains("host"), "{e}");
        assert!(!w.snapshot().event.secondary_ready);
        assert_eq!(
            w.create_room("cohost", None, None, None).unwrap().id,
            "cohost-1"
        );
        assert!(w.snapshot().event.secondary_ready);
        assert_eq!(
            w.create_room("cohost", None, None, None).unwrap().id,
            "cohost-2"
        );
        w.move_event("launch", "cohost-1").unwrap();
        w.rooms[0].state = RoomState::Crashed;
        let e = w.move_event("launch", "main").unwrap_err().to_string();
        assert!(e.contains("crashed") && e.contains("cohost-2"), "{e}");
    }

    /// The scenario's story holds for every seed, not just the default:
    /// without intervention the room crashes around 18:25 (as in 2023),
    /// and a move at 18:06 keeps most of the audience.
    #[test]
    fn the_story_holds_across_seeds() {
        for seed in 0..20 {
            let mut w = World::new(&Scenario::builtin(), seed);
            let end = et(&w, 18, 45);
            let crash = first_time(&mut w, end, |s| s.event.crashed)
                .unwrap_or_else(|| panic!("seed {seed}: never crashed"));
            assert!(
                (et(&w, 18, 20)..=et(&w, 18, 30)).contains(&crash),
                "seed {seed}: crashed at {}",
                rfc3339(crash)
            );
            let mut m = World::new(&Scenario::builtin(), seed);
            m.advance_to(et(&m, 18, 6));
            mv(&mut m);
            m.advance_to(end);
            let s = m.snapshot();
            let kept = s.event.listeners as f64 / s.event.peak_listeners as f64;
            assert!(
                kept > 0.9,
                "seed {seed}: a move at 18:06 kept only {kept:.3}"
            );
            assert!(!s.event.crashed, "seed {seed}");
        }
    }
}
