//! The simulator's scenario file (YAML): accounts, rooms, the event, the
//! audience curve, listener behaviour, room dynamics and speaker faults.
//!
//! Loading is two-phase, like every config in firebreak: serde reads raw
//! types (`deny_unknown_fields`, so a typo is a located error), then
//! [`Scenario::load`] validates into real types and collects *every*
//! problem as a [`Diagnostic`] with `file:line:col`, the field path and
//! what would be valid. Times in the file are RFC 3339; offsets relative to
//! the scheduled start are signed Prometheus durations (`-5m`, `30s`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::diag::{self, Diagnostic, Diagnostics, Pos, Sp};
use crate::duration::PromDuration;

/// File name used in diagnostics for the embedded scenario.
pub const BUILTIN_NAME: &str = "2023-05-24-launch.yaml";
const BUILTIN_TEXT: &str = include_str!("scenarios/2023-05-24-launch.yaml");

/// Capacity of rooms created through the admin API when the request does
/// not say, unless the scenario's `room_defaults` overrides it.
pub const DEFAULT_ROOM_CAPACITY: u64 = 1_000_000;
/// Admission rate (joins/s) of rooms created through the admin API.
pub const DEFAULT_ADMISSION_RATE: u64 = 2_500;

// ---------------------------------------------------------------- raw types

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    description: Option<String>,
    start: Sp<String>,
    duration: Sp<String>,
    accounts: Vec<RawAccount>,
    rooms: Vec<RawRoom>,
    #[serde(default)]
    room_defaults: Option<RawRoomDefaults>,
    event: RawEvent,
    #[serde(default)]
    speakers: Vec<RawSpeaker>,
    audience: RawAudience,
    #[serde(default)]
    behaviour: Option<RawBehaviour>,
    #[serde(default)]
    dynamics: Option<RawDynamics>,
    #[serde(default)]
    faults: Vec<RawFault>,
    #[serde(default)]
    admin_api: Vec<RawApiFault>,
    #[serde(default)]
    reference: Option<Reference>,
    /// What a rehearsal of this scenario must show (see
    /// [`crate::rehearse`]); the simulator itself ignores it.
    #[serde(default)]
    expect: Option<crate::rehearse::RawExpect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    id: Sp<String>,
    name: String,
    followers: u64,
    role: Sp<String>,
    #[serde(default)]
    limits: Option<RawLimits>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    room_capacity: Option<Sp<u64>>,
    admission_rate: Option<Sp<u64>>,
    rooms: Option<Sp<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoom {
    id: Sp<String>,
    account: Sp<String>,
    #[serde(default)]
    title: Option<String>,
    capacity: Sp<u64>,
    admission_rate: Sp<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoomDefaults {
    #[serde(default)]
    capacity: Option<Sp<u64>>,
    #[serde(default)]
    admission_rate: Option<Sp<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    id: Sp<String>,
    title: String,
    scheduled_start: Sp<String>,
    room: Sp<String>,
    secondary_account: Sp<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpeaker {
    id: Sp<String>,
    #[serde(default)]
    name: Option<String>,
    room: Sp<String>,
    #[serde(default)]
    feedback: Option<Sp<f64>>,
    #[serde(default)]
    packet_loss: Option<Sp<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudience {
    account: Sp<String>,
    reach: Sp<f64>,
    profile: Vec<RawPoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPoint {
    at: Sp<String>,
    intensity: Sp<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBehaviour {
    base_churn_per_min: Option<Sp<f64>>,
    quality_churn_per_min: Option<Sp<f64>>,
    feedback_churn_per_min: Option<Sp<f64>>,
    retry_probability: Option<Sp<f64>>,
    retry_delay_min: Option<Sp<String>>,
    retry_delay_max: Option<Sp<String>>,
    waiting_give_up_per_min: Option<Sp<f64>>,
    move_loss: Option<Sp<f64>>,
    crash_return: Option<Sp<f64>>,
    stranded_give_up_per_min: Option<Sp<f64>>,
    return_window: Option<Sp<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDynamics {
    base_latency: Option<Sp<f64>>,
    crash_after: Option<Sp<String>>,
    recovery_rate: Option<Sp<f64>>,
    scale_up_after: Option<Sp<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiFault {
    at: Sp<String>,
    until: Sp<String>,
    #[serde(default)]
    fails: Option<Sp<u16>>,
    #[serde(default)]
    latency: Option<Sp<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    speaker: Sp<String>,
    at: Sp<String>,
    until: Sp<String>,
    #[serde(default)]
    feedback: Option<Sp<f64>>,
    #[serde(default)]
    packet_loss: Option<Sp<f64>>,
    #[serde(default)]
    reconnect_every: Option<Sp<String>>,
    #[serde(default)]
    reconnect_for: Option<Sp<String>>,
}

// --------------------------------------------------------------- real types

/// A validated scenario. All times are absolute epoch milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Simulated time at which the world (and the shared clock) starts.
    pub start: Millis,
    /// Scheduled start of the event.
    pub scheduled_start: Millis,
    /// `start + duration`; time keeps going after it with no new arrivals.
    pub end: Millis,
    pub accounts: Vec<Account>,
    pub rooms: Vec<RoomSpec>,
    pub room_defaults: RoomDefaults,
    pub event: EventSpec,
    pub speakers: Vec<SpeakerSpec>,
    pub audience: Audience,
    pub behaviour: Behaviour,
    pub dynamics: Dynamics,
    pub faults: Vec<Fault>,
    /// Windows in which the admin API answers slowly or not at all.
    pub admin_api: Vec<ApiFault>,
    pub reference: Reference,
    /// The scenario's expectations, for `firebreak rehearse`.
    #[serde(skip)]
    pub expect: Option<crate::rehearse::Expect>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Secondary,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub followers: u64,
    pub role: Role,
    /// The largest room (concurrent listeners) the account may have.
    pub max_room_capacity: u64,
    /// The fastest join service (joins per second) a room of the account
    /// may have.
    pub max_admission_rate: u64,
    /// How many rooms may still be created on the account (none given:
    /// no limit). Zero is an account that cannot host a moved event.
    pub max_new_rooms: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoomSpec {
    pub id: String,
    pub account: String,
    pub title: String,
    pub capacity: u64,
    pub admission_rate: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RoomDefaults {
    pub capacity: u64,
    pub admission_rate: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EventSpec {
    pub id: String,
    pub title: String,
    pub room: String,
    pub secondary_account: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpeakerSpec {
    pub id: String,
    pub name: String,
    pub room: String,
    /// Feedback level of a healthy microphone (0..1).
    pub feedback: f64,
    pub packet_loss: f64,
}

/// Who comes to the event and when.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Audience {
    /// The account whose followers are notified (the promoter).
    pub account: String,
    /// Fraction of the followers who try to join: `followers * reach` is the
    /// interested audience, the integral of the arrival curve.
    pub reach: f64,
    /// `(offset from scheduled start in ms, relative intensity)`, sorted.
    pub profile: Vec<(i64, f64)>,
}

/// How listeners behave. Rates are fractions per simulated minute.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Behaviour {
    /// Listeners leaving for ordinary reasons.
    pub base_churn_per_min: f64,
    /// Extra churn at the worst stream latency (scaled between 1 s and 5 s).
    pub quality_churn_per_min: f64,
    /// Extra churn per unit of feedback from an unmuted, connected speaker.
    pub feedback_churn_per_min: f64,
    /// Probability a client retries after a failed join (apps auto-retry).
    pub retry_probability: f64,
    pub retry_delay_min_s: u32,
    pub retry_delay_max_s: u32,
    /// Listeners in a waiting room who give up, per minute.
    pub waiting_give_up_per_min: f64,
    /// Fraction of listeners who do not follow a move.
    pub move_loss: f64,
    /// Fraction of listeners dropped by a crash who would come back if the
    /// event restarts somewhere (they wait for news); the rest are gone.
    pub crash_return: f64,
    /// How fast the waiting crash victims lose interest, per minute.
    pub stranded_give_up_per_min: f64,
    /// Over how many seconds returning crash victims re-join after a move.
    pub return_window_s: u32,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            base_churn_per_min: 0.0005,
            quality_churn_per_min: 0.04,
            feedback_churn_per_min: 0.003,
            retry_probability: 0.97,
            retry_delay_min_s: 5,
            retry_delay_max_s: 20,
            waiting_give_up_per_min: 0.02,
            move_loss: 0.02,
            crash_return: 0.8,
            stranded_give_up_per_min: 0.05,
            return_window_s: 180,
        }
    }
}

/// How rooms respond to load.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Dynamics {
    /// Mean stream latency of an unloaded room, seconds.
    pub base_latency_s: f64,
    /// Seconds of hard overload (utilisation > 1) a room survives.
    pub crash_after_s: u32,
    /// How fast accumulated overload drains while utilisation <= 1, per s.
    pub recovery_rate: f64,
    /// How long scaling a live room up (capacity or admission rate) takes
    /// to come online: new servers start and join the pool. Scaling down,
    /// and scaling a room nobody is in, is immediate.
    pub scale_up_after_s: u32,
}

impl Default for Dynamics {
    fn default() -> Self {
        Dynamics {
            base_latency_s: 0.15,
            crash_after_s: 150,
            recovery_rate: 0.5,
            scale_up_after_s: 120,
        }
    }
}

/// A speaker's audio fault, active in `[at, until)` (absolute ms).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fault {
    pub speaker: String,
    pub at: Millis,
    pub until: Millis,
    pub feedback: Option<f64>,
    pub packet_loss: Option<f64>,
    /// The speaker drops out for `reconnect_for_ms` at the end of every
    /// `reconnect_every_ms` of the fault window.
    pub reconnect_every_ms: Option<i64>,
    pub reconnect_for_ms: i64,
}

/// The admin API misbehaving in `[at, until)` (absolute ms): every call
/// waits `latency_ms` of simulated time, then fails with `fails` if set.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApiFault {
    pub at: Millis,
    pub until: Millis,
    pub fails: Option<u16>,
    pub latency_ms: Millis,
}

/// The 2023 figures the demo compares itself with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    #[serde(default)]
    pub listeners_before: u64,
    #[serde(default)]
    pub listeners_after: u64,
    #[serde(default)]
    pub mitigation_minutes: u64,
    #[serde(default)]
    pub source: String,
}

// --------------------------------------------------------------- validation

struct Ctx<'a> {
    file: &'a str,
    diags: Diagnostics,
}

impl Ctx<'_> {
    fn err<T>(&mut self, at: &Sp<T>, field: impl Into<String>, msg: impl Into<String>) {
        self.diags
            .push(Diagnostic::new(self.file, Pos::of(at), field, msg));
    }

    fn err_nopos(&mut self, field: impl Into<String>, msg: impl Into<String>) {
        self.diags
            .push(Diagnostic::new(self.file, None, field, msg));
    }

    fn time(&mut self, v: &Sp<String>, field: &str) -> Option<Millis> {
        match chrono::DateTime::parse_from_rfc3339(v.value.trim()) {
            Ok(t) => Some(t.timestamp_millis()),
            Err(e) => {
                self.err(
                    v,
                    field,
                    format!(
                        "invalid time {:?} ({e}); expected RFC 3339 such as 2023-05-24T22:00:00Z",
                        v.value
                    ),
                );
                None
            }
        }
    }

    fn duration(&mut self, v: &Sp<String>, field: &str) -> Option<i64> {
        match PromDuration::parse(v.value.trim()) {
            Ok(d) => Some(d.as_millis() as i64),
            Err(e) => {
                self.err(v, field, e.to_string());
                None
            }
        }
    }

    /// A duration that may be negative (`-5m`), relative to the scheduled
    /// start.
    fn offset(&mut self, v: &Sp<String>, field: &str) -> Option<i64> {
        let s = v.value.trim();
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        match PromDuration::parse(body) {
            Ok(d) => {
                let ms = d.as_millis() as i64;
                Some(if neg { -ms } else { ms })
            }
            Err(e) => {
                self.err(
                    v,
                    field,
                    format!(
                        "{e}; offsets may be negative, like -5m, to mean before the scheduled start"
                    ),
                );
                None
            }
        }
    }

    fn fraction(&mut self, v: &Sp<f64>, field: &str) -> f64 {
        if !(0.0..=1.0).contains(&v.value) {
            self.err(
                v,
                field,
                format!(
                    "{} is out of range; expected a fraction between 0 and 1",
                    v.value
                ),
            );
        }
        v.value
    }

    fn positive(&mut self, v: &Sp<u64>, field: &str) -> u64 {
        if v.value == 0 {
            self.err(v, field, "must be a positive whole number, got 0");
        }
        v.value
    }

    fn reference(&mut self, v: &Sp<String>, field: &str, valid: &[String], what: &str) -> bool {
        if valid.contains(&v.value) {
            return true;
        }
        let hint = diag::did_you_mean(&v.value, valid)
            .map(|s| format!(" (did you mean {s:?}?)"))
            .unwrap_or_default();
        self.err(
            v,
            field,
            format!(
                "unknown {what} {:?}{hint}; expected one of: {}",
                v.value,
                diag::one_of(valid)
            ),
        );
        false
    }

    fn unique(&mut self, seen: &mut BTreeSet<String>, v: &Sp<String>, field: &str, what: &str) {
        if v.value.is_empty() || !v.value.chars().all(is_id_char) {
            self.err(
                v,
                field,
                format!(
                    "invalid {what} id {:?}; use letters, digits, '-', '_' or '.'",
                    v.value
                ),
            );
        }
        if !seen.insert(v.value.clone()) {
            self.err(v, field, format!("duplicate {what} id {:?}", v.value));
        }
    }
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn opt_fraction(cx: &mut Ctx<'_>, v: &Option<Sp<f64>>, field: &str, default: f64) -> f64 {
    v.as_ref().map_or(default, |v| cx.fraction(v, field))
}

fn opt_secs(cx: &mut Ctx<'_>, v: &Option<Sp<String>>, field: &str, default: u32) -> u32 {
    match v {
        None => default,
        Some(v) => match cx.duration(v, field) {
            Some(ms) if ms % 1000 != 0 || ms <= 0 => {
                cx.err(
                    v,
                    field,
                    format!(
                        "{:?} must be a positive whole number of seconds, like 10s",
                        v.value
                    ),
                );
                default
            }
            Some(ms) => u32::try_from(ms / 1000).unwrap_or(u32::MAX),
            None => default,
        },
    }
}

impl Scenario {
    /// The shipped replay of the 2023-05-24 launch.
    pub fn builtin() -> Scenario {
        // The embedded file is covered by tests; failing here is a build bug.
        Scenario::load(BUILTIN_NAME, BUILTIN_TEXT)
            .unwrap_or_else(|d| panic!("built-in scenario is invalid:\n{d}"))
    }

    /// Every id the scenario defines, with what it names there ("a
    /// room"): what a runbook written against it must not hard-code.
    pub fn ids(&self) -> Vec<(String, &'static str)> {
        let mut ids: Vec<(String, &'static str)> = Vec::new();
        ids.extend(self.accounts.iter().map(|a| (a.id.clone(), "an account")));
        ids.extend(self.rooms.iter().map(|r| (r.id.clone(), "a room")));
        ids.extend(self.speakers.iter().map(|p| (p.id.clone(), "a speaker")));
        ids.push((self.event.id.clone(), "the event"));
        ids
    }

    /// The embedded scenario's YAML text, for `--dump`-style commands.
    pub fn builtin_text() -> &'static str {
        BUILTIN_TEXT
    }

    /// Parses and validates a scenario, reporting every problem found.
    pub fn load(file_name: &str, text: &str) -> Result<Scenario, Diagnostics> {
        let raw: RawScenario = diag::from_yaml(file_name, text)?;
        let mut cx = Ctx {
            file: file_name,
            diags: Diagnostics::new(),
        };
        let start = cx.time(&raw.start, "start");
        let duration = cx.duration(&raw.duration, "duration");
        if duration == Some(0) {
            cx.err(&raw.duration, "duration", "must be longer than 0s");
        }

        // Accounts.
        let mut seen = BTreeSet::new();
        let mut accounts = Vec::new();
        for (i, a) in raw.accounts.iter().enumerate() {
            let f = format!("accounts[{i}]");
            cx.unique(&mut seen, &a.id, &format!("{f}.id"), "account");
            let role = match a.role.value.as_str() {
                "owner" => Role::Owner,
                "secondary" => Role::Secondary,
                other => {
                    cx.err(
                        &a.role,
                        format!("{f}.role"),
                        format!("unknown role {other:?}; expected one of: owner, secondary"),
                    );
                    Role::Secondary
                }
            };
            let limits = a.limits.as_ref();
            let limit = |cx: &mut Ctx<'_>, v: Option<&Sp<u64>>, what: &str| match v {
                None => super::model::MAX_CAPACITY,
                Some(v) if v.value > super::model::MAX_CAPACITY => {
                    cx.err(
                        v,
                        format!("{f}.limits.{what}"),
                        format!(
                            "{} is out of range; expected 0..={}",
                            v.value,
                            super::model::MAX_CAPACITY
                        ),
                    );
                    super::model::MAX_CAPACITY
                }
                Some(v) => v.value,
            };
            let max_room_capacity = limit(
                &mut cx,
                limits.and_then(|l| l.room_capacity.as_ref()),
                "room_capacity",
            );
            let max_admission_rate = limit(
                &mut cx,
                limits.and_then(|l| l.admission_rate.as_ref()),
                "admission_rate",
            );
            accounts.push(Account {
                id: a.id.value.clone(),
                name: a.name.clone(),
                followers: a.followers,
                role,
                max_room_capacity,
                max_admission_rate,
                max_new_rooms: limits.and_then(|l| l.rooms.as_ref()).map(|r| r.value),
            });
        }
        if accounts.is_empty() {
            cx.err_nopos("accounts", "at least one account is required");
        }
        let account_ids: Vec<String> = accounts.iter().map(|a| a.id.clone()).collect();

        // Rooms.
        let mut seen = BTreeSet::new();
        let mut rooms = Vec::new();
        for (i, r) in raw.rooms.iter().enumerate() {
            let f = format!("rooms[{i}]");
            cx.unique(&mut seen, &r.id, &format!("{f}.id"), "room");
            cx.reference(&r.account, &format!("{f}.account"), &account_ids, "account");
            let capacity = cx.positive(&r.capacity, &format!("{f}.capacity"));
            let admission_rate = cx.positive(&r.admission_rate, &format!("{f}.admission_rate"));
            rooms.push(RoomSpec {
                id: r.id.value.clone(),
                account: r.account.value.clone(),
                title: r.title.clone().unwrap_or_else(|| r.id.value.clone()),
                capacity,
                admission_rate,
            });
        }
        let room_ids: Vec<String> = rooms.iter().map(|r| r.id.clone()).collect();
        let mut room_defaults = RoomDefaults {
            capacity: DEFAULT_ROOM_CAPACITY,
            admission_rate: DEFAULT_ADMISSION_RATE,
        };
        if let Some(d) = &raw.room_defaults {
            if let Some(c) = &d.capacity {
                room_defaults.capacity = cx.positive(c, "room_defaults.capacity");
            }
            if let Some(a) = &d.admission_rate {
                room_defaults.admission_rate = cx.positive(a, "room_defaults.admission_rate");
            }
        }

        // Event.
        let e = &raw.event;
        if e.id.value.is_empty() || !e.id.value.chars().all(is_id_char) {
            cx.err(
                &e.id,
                "event.id",
                format!(
                    "invalid event id {:?}; use letters, digits, '-', '_' or '.'",
                    e.id.value
                ),
            );
        }
        let scheduled_start = cx.time(&e.scheduled_start, "event.scheduled_start");
        if let (Some(s), Some(ss)) = (start, scheduled_start)
            && ss < s
        {
            cx.err(
                &e.scheduled_start,
                "event.scheduled_start",
                "must not be before the scenario's start",
            );
        }
        cx.reference(&e.room, "event.room", &room_ids, "room");
        if cx.reference(
            &e.secondary_account,
            "event.secondary_account",
            &account_ids,
            "account",
        ) {
            let host_account = rooms
                .iter()
                .find(|r| r.id == e.room.value)
                .map(|r| r.account.as_str());
            if host_account == Some(e.secondary_account.value.as_str()) {
                cx.err(
                    &e.secondary_account,
                    "event.secondary_account",
                    "must differ from the account of the event's room",
                );
            }
        }
        let event = EventSpec {
            id: e.id.value.clone(),
            title: e.title.clone(),
            room: e.room.value.clone(),
            secondary_account: e.secondary_account.value.clone(),
        };

        // Speakers.
        let mut seen = BTreeSet::new();
        let mut speakers = Vec::new();
        for (i, s) in raw.speakers.iter().enumerate() {
            let f = format!("speakers[{i}]");
            cx.unique(&mut seen, &s.id, &format!("{f}.id"), "speaker");
            cx.reference(&s.room, &format!("{f}.room"), &room_ids, "room");
            let feedback = opt_fraction(&mut cx, &s.feedback, &format!("{f}.feedback"), 0.02);
            let packet_loss =
                opt_fraction(&mut cx, &s.packet_loss, &format!("{f}.packet_loss"), 0.005);
            speakers.push(SpeakerSpec {
                id: s.id.value.clone(),
                name: s.name.clone().unwrap_or_else(|| s.id.value.clone()),
                room: s.room.value.clone(),
                feedback,
                packet_loss,
            });
        }
        let speaker_ids: Vec<String> = speakers.iter().map(|s| s.id.clone()).collect();

        // Audience.
        let au = &raw.audience;
        cx.reference(&au.account, "audience.account", &account_ids, "account");
        let reach = cx.fraction(&au.reach, "audience.reach");
        let mut profile = Vec::new();
        let mut last: Option<i64> = None;
        for (i, p) in au.profile.iter().enumerate() {
            let f = format!("audience.profile[{i}]");
            let at = cx.offset(&p.at, &format!("{f}.at"));
            if !(p.intensity.value >= 0.0 && p.intensity.value.is_finite()) {
                cx.err(
                    &p.intensity,
                    format!("{f}.intensity"),
                    format!(
                        "{} is invalid; expected a finite number >= 0",
                        p.intensity.value
                    ),
                );
            }
            if let Some(at) = at {
                if last.is_some_and(|l| at <= l) {
                    cx.err(
                        &p.at,
                        format!("{f}.at"),
                        "profile points must be in increasing time order",
                    );
                }
                last = Some(at);
                profile.push((at, p.intensity.value.max(0.0)));
            }
        }
        if au.profile.len() < 2 {
            cx.err_nopos(
                "audience.profile",
                "at least two points are needed to draw an arrival curve",
            );
        } else if profile.iter().all(|(_, v)| *v <= 0.0) {
            cx.err_nopos(
                "audience.profile",
                "every intensity is 0, so nobody would arrive",
            );
        }

        // Behaviour and dynamics.
        let d = Behaviour::default();
        let behaviour = match &raw.behaviour {
            None => d,
            Some(b) => {
                let f = |n: &str| format!("behaviour.{n}");
                let retry_delay_min_s = opt_secs(
                    &mut cx,
                    &b.retry_delay_min,
                    &f("retry_delay_min"),
                    d.retry_delay_min_s,
                );
                let retry_delay_max_s = opt_secs(
                    &mut cx,
                    &b.retry_delay_max,
                    &f("retry_delay_max"),
                    d.retry_delay_max_s,
                );
                if retry_delay_max_s < retry_delay_min_s
                    && let Some(v) = &b.retry_delay_max
                {
                    cx.err(
                        v,
                        f("retry_delay_max"),
                        "must not be shorter than retry_delay_min",
                    );
                }
                if retry_delay_max_s > 3600
                    && let Some(v) = &b.retry_delay_max
                {
                    cx.err(v, f("retry_delay_max"), "must be at most 1h");
                }
                let return_window_s = opt_secs(
                    &mut cx,
                    &b.return_window,
                    &f("return_window"),
                    d.return_window_s,
                )
                .min(3600);
                Behaviour {
                    base_churn_per_min: opt_fraction(
                        &mut cx,
                        &b.base_churn_per_min,
                        &f("base_churn_per_min"),
                        d.base_churn_per_min,
                    ),
                    quality_churn_per_min: opt_fraction(
                        &mut cx,
                        &b.quality_churn_per_min,
                        &f("quality_churn_per_min"),
                        d.quality_churn_per_min,
                    ),
                    feedback_churn_per_min: opt_fraction(
                        &mut cx,
                        &b.feedback_churn_per_min,
                        &f("feedback_churn_per_min"),
                        d.feedback_churn_per_min,
                    ),
                    retry_probability: opt_fraction(
                        &mut cx,
                        &b.retry_probability,
                        &f("retry_probability"),
                        d.retry_probability,
                    ),
                    retry_delay_min_s,
                    retry_delay_max_s,
                    waiting_give_up_per_min: opt_fraction(
                        &mut cx,
                        &b.waiting_give_up_per_min,
                        &f("waiting_give_up_per_min"),
                        d.waiting_give_up_per_min,
                    ),
                    move_loss: opt_fraction(&mut cx, &b.move_loss, &f("move_loss"), d.move_loss),
                    crash_return: opt_fraction(
                        &mut cx,
                        &b.crash_return,
                        &f("crash_return"),
                        d.crash_return,
                    ),
                    stranded_give_up_per_min: opt_fraction(
                        &mut cx,
                        &b.stranded_give_up_per_min,
                        &f("stranded_give_up_per_min"),
                        d.stranded_give_up_per_min,
                    ),
                    return_window_s,
                }
            }
        };
        let dd = Dynamics::default();
        let dynamics = match &raw.dynamics {
            None => dd,
            Some(x) => {
                let base_latency_s = match &x.base_latency {
                    None => dd.base_latency_s,
                    Some(v) if v.value > 0.0 && v.value <= 60.0 => v.value,
                    Some(v) => {
                        cx.err(
                            v,
                            "dynamics.base_latency",
                            format!("{} is out of range; expected seconds in (0, 60]", v.value),
                        );
                        dd.base_latency_s
                    }
                };
                Dynamics {
                    base_latency_s,
                    crash_after_s: opt_secs(
                        &mut cx,
                        &x.crash_after,
                        "dynamics.crash_after",
                        dd.crash_after_s,
                    ),
                    recovery_rate: match &x.recovery_rate {
                        None => dd.recovery_rate,
                        Some(v) if v.value >= 0.0 && v.value.is_finite() => v.value,
                        Some(v) => {
                            cx.err(v, "dynamics.recovery_rate", "expected a finite number >= 0");
                            dd.recovery_rate
                        }
                    },
                    scale_up_after_s: opt_secs(
                        &mut cx,
                        &x.scale_up_after,
                        "dynamics.scale_up_after",
                        dd.scale_up_after_s,
                    ),
                }
            }
        };

        // Faults.
        let mut faults = Vec::new();
        for (i, fr) in raw.faults.iter().enumerate() {
            let f = format!("faults[{i}]");
            cx.reference(
                &fr.speaker,
                &format!("{f}.speaker"),
                &speaker_ids,
                "speaker",
            );
            let at = cx.offset(&fr.at, &format!("{f}.at"));
            let until = cx.offset(&fr.until, &format!("{f}.until"));
            if let (Some(a), Some(u)) = (at, until)
                && u <= a
            {
                cx.err(&fr.until, format!("{f}.until"), "must be later than `at`");
            }
            let feedback = fr
                .feedback
                .as_ref()
                .map(|v| cx.fraction(v, &format!("{f}.feedback")));
            let packet_loss = fr
                .packet_loss
                .as_ref()
                .map(|v| cx.fraction(v, &format!("{f}.packet_loss")));
            let reconnect_every_ms = fr
                .reconnect_every
                .as_ref()
                .and_then(|v| cx.duration(v, &format!("{f}.reconnect_every")));
            let reconnect_for_ms = fr
                .reconnect_for
                .as_ref()
                .and_then(|v| cx.duration(v, &format!("{f}.reconnect_for")))
                .unwrap_or(10_000);
            if let (Some(every), Some(v)) = (reconnect_every_ms, &fr.reconnect_every)
                && every <= reconnect_for_ms
            {
                cx.err(
                    v,
                    format!("{f}.reconnect_every"),
                    format!("must be longer than reconnect_for ({reconnect_for_ms} ms)"),
                );
            }
            if let (Some(ss), Some(a), Some(u)) = (scheduled_start, at, until) {
                faults.push(Fault {
                    speaker: fr.speaker.value.clone(),
                    at: ss + a,
                    until: ss + u,
                    feedback,
                    packet_loss,
                    reconnect_every_ms,
                    reconnect_for_ms,
                });
            }
        }

        let mut admin_api = Vec::new();
        for (i, r) in raw.admin_api.iter().enumerate() {
            let f = format!("admin_api[{i}]");
            let at = cx.offset(&r.at, &format!("{f}.at"));
            let until = cx.offset(&r.until, &format!("{f}.until"));
            if let (Some(a), Some(u)) = (at, until)
                && u <= a
            {
                cx.err(&r.until, format!("{f}.until"), "must be later than `at`");
            }
            if let Some(st) = &r.fails
                && !(400..=599).contains(&st.value)
            {
                cx.err(
                    st,
                    format!("{f}.fails"),
                    format!("{} is not an error status; expected 400 to 599", st.value),
                );
            }
            let latency_ms = r
                .latency
                .as_ref()
                .and_then(|v| cx.duration(v, &format!("{f}.latency")))
                .unwrap_or(0);
            if r.fails.is_none() && r.latency.is_none() {
                cx.err(
                    &r.at,
                    f.clone(),
                    "give `fails` (a status), `latency`, or both",
                );
            }
            if let (Some(ss), Some(a), Some(u)) = (scheduled_start, at, until) {
                admin_api.push(ApiFault {
                    at: ss + a,
                    until: ss + u,
                    fails: r.fails.as_ref().map(|s| s.value),
                    latency_ms,
                });
            }
        }

        let expect = raw.expect.as_ref().map(|e| {
            let accounts: Vec<String> = accounts.iter().map(|a| a.id.clone()).collect();
            let speakers: Vec<String> = speakers.iter().map(|s| s.id.clone()).collect();
            let names = crate::rehearse::Names {
                accounts: &accounts,
                speakers: &speakers,
            };
            let mut errs = Vec::new();
            let checked = e.check(file_name, &names, &mut errs);
            for d in errs {
                cx.diags.push(d);
            }
            checked
        });
        let scenario = match (start, duration, scheduled_start) {
            (Some(start), Some(duration), Some(scheduled_start)) => Some(Scenario {
                name: raw.name.clone(),
                description: raw.description.clone().unwrap_or_default(),
                start,
                scheduled_start,
                end: start + duration,
                accounts,
                rooms,
                room_defaults,
                event,
                speakers,
                audience: Audience {
                    account: au.account.value.clone(),
                    reach,
                    profile,
                },
                behaviour,
                dynamics,
                faults,
                admin_api,
                reference: raw.reference.clone().unwrap_or_default(),
                expect,
            }),
            _ => None,
        };
        match scenario {
            Some(s) if cx.diags.is_empty() => Ok(s),
            _ => Err(cx.diags.sorted()),
        }
    }

    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    /// The interested audience: followers of the promoter times reach.
    pub fn interested_audience(&self) -> f64 {
        self.account(&self.audience.account)
            .map_or(0.0, |a| a.followers as f64 * self.audience.reach)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_loads() {
        let s = Scenario::builtin();
        assert_eq!(s.event.id, "launch");
        assert_eq!(s.scheduled_start - s.start, 60 * 60_000);
        let aud = s.interested_audience();
        assert!((550_000.0..700_000.0).contains(&aud), "{aud}");
    }

    fn with(from: &str, to: &str) -> String {
        let text = Scenario::builtin_text();
        assert!(text.contains(from), "fixture lost {from:?}");
        text.replacen(from, to, 1)
    }

    #[test]
    fn every_error_is_collected_and_located() {
        let text = with("    capacity: 520000", "    capacity: 0");
        let text = text.replacen("  reach: 0.0043", "  reach: 4.3", 1);
        let err = Scenario::load("s.yaml", &text).unwrap_err();
        assert_eq!(err.len(), 2, "{err}");
        let s = err.to_string();
        assert!(s.contains("rooms[0].capacity"), "{s}");
        assert!(s.contains("audience.reach"), "{s}");
        for d in err.iter() {
            let p = d.pos.expect("located");
            let line = text.lines().nth(p.line as usize - 1).unwrap();
            assert!(
                line.contains("capacity: 0") || line.contains("reach: 4.3"),
                "{d} -> {line}"
            );
        }
    }

    #[test]
    fn unknown_reference_suggests() {
        let text = with("  room: main", "  room: mian");
        let err = Scenario::load("s.yaml", &text).unwrap_err();
        let s = err.to_string();
        assert!(s.contains("event.room"), "{s}");
        assert!(s.contains("did you mean \"main\""), "{s}");
        assert!(err.iter().all(|d| d.pos.is_some()), "{s}");
    }

    #[test]
    fn unknown_field_is_located() {
        let text = with("  reach: 0.0043", "  reach: 0.0043\n  raech: 1");
        let err = Scenario::load("s.yaml", &text).unwrap_err();
        assert_eq!(err.len(), 1);
        let d = &err.0[0];
        assert!(d.message.contains("raech"), "{d}");
        assert!(d.pos.is_some(), "{d}");
    }

    #[test]
    fn bad_durations_and_times() {
        let text = with("start: 2023-05-24T21:00:00Z", "start: yesterday");
        let text = text.replacen("    at: 30s", "    at: 30x", 1);
        let err = Scenario::load("s.yaml", &text).unwrap_err();
        let s = err.to_string();
        assert_eq!(err.len(), 2, "{s}");
        assert!(s.contains("RFC 3339"), "{s}");
        assert!(s.contains("faults[0].at"), "{s}");
    }
}
