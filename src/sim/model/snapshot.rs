//! What the world shows of itself: the snapshots the admin API and the
//! rehearsals read.

use super::*;

impl World {
    pub fn room(&self, room: &str) -> Result<RoomSnapshot, SimError> {
        Ok(self.room_snapshot(self.room_or_404(room)?))
    }

    pub fn event(&self, event: &str) -> Result<EventSnapshot, SimError> {
        self.check_event(event)?;
        Ok(self.event_snapshot())
    }

    pub fn account(&self, account: &str) -> Result<AccountSnapshot, SimError> {
        self.scenario
            .account(account)
            .map(|a| self.account_snapshot(a))
            .ok_or_else(|| SimError::UnknownAccount {
                got: account.into(),
                valid: list(self.scenario.accounts.iter().map(|a| a.id.clone())),
            })
    }

    pub(super) fn account_snapshot(&self, a: &crate::sim::scenario::Account) -> AccountSnapshot {
        AccountSnapshot {
            id: a.id.clone(),
            name: a.name.clone(),
            followers: a.followers,
            role: a.role,
            new_room: self.new_room_defaults(a),
            max_room_capacity: a.max_room_capacity,
            max_admission_rate: a.max_admission_rate,
            rooms_left: self.rooms_left(&a.id),
        }
    }

    /// What a room created on `a` gets when the request leaves sizes out:
    /// the platform's defaults, within the account's limits.
    pub(super) fn new_room_defaults(&self, a: &crate::sim::scenario::Account) -> NewRoom {
        let d = self.scenario.room_defaults;
        NewRoom {
            capacity: d.capacity.min(a.max_room_capacity).max(1),
            admission_rate: d.admission_rate.min(a.max_admission_rate).max(1),
        }
    }

    pub(super) fn rooms_left(&self, account: &str) -> Option<u32> {
        let max = self.scenario.account(account)?.max_new_rooms?;
        Some(max.saturating_sub(self.created.get(account).copied().unwrap_or(0)))
    }

    pub(super) fn secondary_ready(&self) -> bool {
        self.rooms.iter().any(|r| {
            r.account == self.event.secondary_account
                && r.state == RoomState::Ready
                && r.id != self.event.room
        })
    }

    pub(super) fn room_snapshot(&self, i: usize) -> RoomSnapshot {
        let r = &self.rooms[i];
        RoomSnapshot {
            id: r.id.clone(),
            account: r.account.clone(),
            title: r.title.clone(),
            state: r.state,
            up: r.state != RoomState::Crashed,
            hosting_event: (r.id == self.event.room || self.is_overflow(&r.id))
                .then(|| self.event.id.clone()),
            overflow_of: self.is_overflow(&r.id).then(|| self.event.room.clone()),
            capacity: r.capacity,
            admission_rate: r.admission_rate,
            listener_cap: r.cap,
            waiting_room: r.waiting_room,
            scaling: r.scaling,
            listeners: r.listeners,
            waiting: r.waiting,
            utilisation: r.utilisation,
            latency_seconds: r.latency_s,
            overload_seconds: r.overload_s,
            created_at: r.created_at,
            crashed_at: r.crashed_at,
            ended_at: r.ended_at,
            join_requests: r.join_requests,
            join_failures: JoinFailures {
                capacity: r.failures[0],
                overload: r.failures[1],
                room_down: r.failures[2],
            },
            left: Left {
                churn: r.left[LEFT_CHURN],
                quality: r.left[LEFT_QUALITY],
                crash: r.left[LEFT_CRASH],
                moved_lost: r.left[LEFT_MOVED],
            },
            speakers: self
                .speakers
                .iter()
                .filter(|s| s.room == r.id)
                .map(speaker_snapshot)
                .collect(),
        }
    }

    pub(super) fn event_snapshot(&self) -> EventSnapshot {
        let cur = &self.rooms[self.current_idx()];
        let e = &self.event;
        let crash = self.crash_lost + self.stranded;
        EventSnapshot {
            id: e.id.clone(),
            title: e.title.clone(),
            scheduled_start: self.scenario.scheduled_start,
            room: cur.id.clone(),
            account: cur.account.clone(),
            room_state: cur.state,
            overflow_rooms: e.overflow.clone(),
            listeners: self.sum_event(|r| r.listeners),
            waiting: self.sum_event(|r| r.waiting),
            capacity: self.sum_event(|r| {
                if r.state == RoomState::Live {
                    r.capacity
                } else {
                    0
                }
            }),
            peak_listeners: e.peak,
            peak_at: e.peak_at,
            arrivals: self.arrivals,
            unique_listeners: self.unique,
            lost: Lost {
                gave_up: self.gave_up,
                crash,
                moved: self.moved_lost,
                total: self.gave_up + crash + self.moved_lost,
            },
            crashed: !e.crashes.is_empty(),
            crashed_at: e.crashes.first().map(|c| c.at),
            crashes: e.crashes.clone(),
            moves: e.moves.clone(),
            actions: e.actions.clone(),
            secondary_account: e.secondary_account.clone(),
            secondary_ready: self.secondary_ready(),
        }
    }

    /// The full state, serde-serializable.
    pub fn snapshot(&self) -> StateSnapshot {
        StateSnapshot {
            time: self.time,
            time_rfc3339: rfc3339(self.time),
            scenario: self.scenario.name.clone(),
            seed: self.seed,
            start: self.scenario.start,
            scheduled_start: self.scenario.scheduled_start,
            end: self.scenario.end,
            arrivals_over: self.time >= self.scenario.end,
            event: self.event_snapshot(),
            rooms: (0..self.rooms.len())
                .map(|i| self.room_snapshot(i))
                .collect(),
            accounts: self
                .scenario
                .accounts
                .iter()
                .map(|a| self.account_snapshot(a))
                .collect(),
            reference: self.scenario.reference.clone(),
        }
    }
}

pub fn rfc3339(t: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(t)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

pub(super) fn speaker_snapshot(s: &Speaker) -> SpeakerSnapshot {
    SpeakerSnapshot {
        id: s.id.clone(),
        name: s.name.clone(),
        room: s.room.clone(),
        feedback_level: s.feedback,
        packet_loss_ratio: s.packet_loss,
        connected: s.connected,
        muted: s.muted,
        audio_checked: s.audio_checked,
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateSnapshot {
    pub time: Millis,
    pub time_rfc3339: String,
    pub scenario: String,
    pub seed: u64,
    pub start: Millis,
    pub scheduled_start: Millis,
    pub end: Millis,
    /// True once the scenario's arrivals have stopped.
    pub arrivals_over: bool,
    pub event: EventSnapshot,
    pub rooms: Vec<RoomSnapshot>,
    pub accounts: Vec<AccountSnapshot>,
    /// The 2023 figures to compare with.
    pub reference: crate::sim::scenario::Reference,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventSnapshot {
    pub id: String,
    pub title: String,
    pub scheduled_start: Millis,
    /// The current room and its account.
    pub room: String,
    pub account: String,
    pub room_state: RoomState,
    /// Rooms relaying the event's room, when it is split.
    #[serde(default)]
    pub overflow_rooms: Vec<String>,
    /// Listeners now, in all the event's rooms.
    pub listeners: u64,
    pub waiting: u64,
    /// Listener capacity of the event's rooms that are up.
    #[serde(default)]
    pub capacity: u64,
    pub peak_listeners: u64,
    pub peak_at: Option<Millis>,
    /// People who ever tried to join (first attempts only).
    pub arrivals: u64,
    /// People who ever got in.
    pub unique_listeners: u64,
    pub lost: Lost,
    pub crashed: bool,
    /// The first crash of a room hosting the event.
    pub crashed_at: Option<Millis>,
    pub crashes: Vec<CrashRecord>,
    pub moves: Vec<MoveRecord>,
    /// Every change made through the admin API, in order.
    pub actions: Vec<AdminAction>,
    pub secondary_account: String,
    pub secondary_ready: bool,
}

/// Listeners lost to the event, by cause.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lost {
    /// Gave up joining (retries exhausted, or left a waiting room).
    pub gave_up: u64,
    /// Dropped by a crash and not (yet) back.
    pub crash: u64,
    /// Did not follow a move.
    pub moved: u64,
    pub total: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoomSnapshot {
    pub id: String,
    pub account: String,
    pub title: String,
    pub state: RoomState,
    pub up: bool,
    pub hosting_event: Option<String>,
    /// The room whose stage this overflow room relays.
    #[serde(default)]
    pub overflow_of: Option<String>,
    pub capacity: u64,
    pub admission_rate: u64,
    pub listener_cap: Option<u64>,
    /// Joins queue and are let in at a steady pace.
    pub waiting_room: bool,
    /// A scale-up on its way.
    pub scaling: Option<Scaling>,
    pub listeners: u64,
    pub waiting: u64,
    pub utilisation: f64,
    pub latency_seconds: f64,
    /// Accumulated hard overload; the room crashes at `crash_after`.
    pub overload_seconds: f64,
    pub created_at: Millis,
    pub crashed_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    pub join_requests: u64,
    pub join_failures: JoinFailures,
    pub left: Left,
    pub speakers: Vec<SpeakerSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinFailures {
    pub capacity: u64,
    pub overload: u64,
    pub room_down: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Left {
    pub churn: u64,
    pub quality: u64,
    pub crash: u64,
    pub moved_lost: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpeakerSnapshot {
    pub id: String,
    pub name: String,
    pub room: String,
    pub feedback_level: f64,
    pub packet_loss_ratio: f64,
    pub connected: bool,
    pub muted: bool,
    #[serde(default)]
    pub audio_checked: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountSnapshot {
    pub id: String,
    pub name: String,
    pub followers: u64,
    pub role: Role,
    /// What a room created on this account gets when the request leaves
    /// its size out.
    pub new_room: NewRoom,
    /// The largest listener capacity a room on this account can be
    /// created or provisioned with.
    pub max_room_capacity: u64,
    /// The fastest join service (joins per second) a room on this account
    /// can be created or provisioned with.
    pub max_admission_rate: u64,
    /// Rooms that may still be created on the account; `null` when
    /// unlimited, 0 when the account cannot take a moved event.
    pub rooms_left: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewRoom {
    pub capacity: u64,
    /// Joins per second.
    pub admission_rate: u64,
}
