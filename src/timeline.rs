//! An incident's timeline as data: what kind of thing happened, who did
//! it (by immutable id), and what it was about (alert, runbook, run,
//! step, how a run ended). The text beside them is for people only:
//! nothing reads it back, so rewording a message cannot change a review
//! ([`crate::incident`] reads the fields).
//!
//! Model code. [`legacy`] is the one exception to "never read the text",
//! and it is frozen: it reads what releases before store schema 2 wrote,
//! once, when the store upgrades.

use serde::Serialize;
use serde::ser::SerializeStruct;

use crate::duration::Millis;
use crate::roles::Who;

pub use crate::run_state::Outcome;

macro_rules! kinds {
    ($($(#[$doc:meta])* $v:ident = $s:literal,)*) => {
        /// What a timeline entry records. Stored and shown by its
        /// snake_case name; a name this release does not know (written by
        /// a newer one) is kept as [`Kind::Other`], shown and not counted.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum Kind {
            $($(#[$doc])* $v,)*
            /// A run ended, and how.
            RunEnded(Outcome),
            Other(String),
        }

        impl Kind {
            /// Every kind this release knows by name, in no particular
            /// order.
            pub fn all() -> Vec<Kind> {
                let mut v = vec![$(Kind::$v,)*];
                v.extend(Outcome::ALL.iter().map(|o| Kind::RunEnded(*o)));
                v
            }

            pub fn as_str(&self) -> &str {
                match self {
                    $(Kind::$v => $s,)*
                    Kind::RunEnded(o) => match o {
                        Outcome::Succeeded => "run_succeeded",
                        Outcome::Failed => "run_failed",
                        Outcome::RolledBack => "run_rolled_back",
                        Outcome::Aborted => "run_aborted",
                        Outcome::Interrupted => "run_interrupted",
                    },
                    Kind::Other(s) => s,
                }
            }

            pub fn parse(s: &str) -> Kind {
                match s {
                    $($s => Kind::$v,)*
                    _ => s
                        .strip_prefix("run_")
                        .and_then(Outcome::parse)
                        .map_or_else(|| Kind::Other(s.to_owned()), Kind::RunEnded),
                }
            }
        }
    };
}

kinds! {
    /// An alert's condition began to hold (dated then), before it fired.
    AlertBegan = "alert_began",
    AlertFiring = "alert_firing",
    /// An alert fired while a silence matched it.
    AlertSilenced = "alert_silenced",
    AlertResolved = "alert_resolved",
    RunStarted = "run_started",
    /// A run picked up again after the bot restarted.
    RunResumed = "run_resumed",
    /// Dispatch chose not to start a runbook (and why).
    RunSkipped = "run_skipped",
    Step = "step",
    StepFailed = "step_failed",
    /// A gate (or an `approval` step) let through by a person.
    Approved = "approved",
    /// A gate refused by a person: the run stops there.
    Denied = "denied",
    /// Nobody answered a gate in time (the bot's entry; the run stops or
    /// goes on, as the gate's `on_timeout` says).
    ApprovalTimedOut = "approval_timed_out",
    /// A gate's answer as releases before the answer was a field wrote
    /// it: approved, denied or timed out, which only its text says.
    Approval = "approval",
    /// A rollback was not done because the platform had moved on.
    RollbackHeld = "rollback_held",
    Ack = "ack",
    /// A person silenced alerts (a runbook's `silence` step is its step).
    Silence = "silence",
    /// A person ended a silence early.
    Unsilence = "unsilence",
    /// A person stopped a run.
    Abort = "abort",
    Paused = "paused",
    Resumed = "resumed",
    /// A checklist check signed off by a person.
    Signoff = "signoff",
    /// A checklist run and its verdict.
    Checklist = "checklist",
    CommandRefused = "command_refused",
    CooldownOverridden = "cooldown_overridden",
    /// People were called because no runbook could act in time.
    PagedLate = "paged_late",
    RetryScheduled = "retry_scheduled",
    RetriesSpent = "retries_spent",
    RetryStarted = "retry_started",
    RetryDropped = "retry_dropped",
    /// Another replica took the leader lease while this incident had runs
    /// going; it resumes them.
    Takeover = "takeover",
}

impl Kind {
    /// Entries that record something done, rather than something seen or
    /// how a run ended: what "first response" and "who did what" count.
    pub fn is_action(&self) -> bool {
        (self.is_chat_action() && *self != Kind::CommandRefused)
            || matches!(
                self,
                Kind::RunResumed | Kind::Step | Kind::StepFailed | Kind::ApprovalTimedOut
            )
    }

    /// What a person does in chat or at the console, or tries to (a
    /// refusal): what a review lists as theirs. The steps of a run a
    /// person started are the run's, not theirs.
    pub fn is_chat_action(&self) -> bool {
        matches!(
            self,
            Kind::RunStarted
                | Kind::Approved
                | Kind::Denied
                | Kind::Approval
                | Kind::Ack
                | Kind::Silence
                | Kind::Unsilence
                | Kind::Abort
                | Kind::Paused
                | Kind::Resumed
                | Kind::Signoff
                | Kind::Checklist
                | Kind::CommandRefused
        )
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The actor the bot's own entries carry, by id and by name.
pub const BOT: &str = "firebreak";

/// Who did what an entry records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum By {
    /// The bot on its own: an alert, a dispatch decision, a retry.
    Bot,
    /// The bot on a schedule, named as the schedule is (`T-1h`).
    Schedule(String),
    /// A person. The id decides who they are; the name is what they
    /// called themselves then, shown beside it.
    Person(Who),
}

impl By {
    pub fn person(who: &Who) -> By {
        By::Person(who.clone())
    }

    /// `bot`, `schedule` or `person`, as stored.
    pub fn kind(&self) -> &'static str {
        match self {
            By::Bot => "bot",
            By::Schedule(_) => "schedule",
            By::Person(_) => "person",
        }
    }

    /// The stable part: the person's user id, the schedule, or `firebreak`.
    pub fn id(&self) -> &str {
        match self {
            By::Bot => BOT,
            By::Schedule(s) => s,
            By::Person(w) => &w.id,
        }
    }

    /// The name shown beside the id (a person's own; the bot's name).
    pub fn name(&self) -> &str {
        match self {
            By::Bot | By::Schedule(_) => BOT,
            By::Person(w) => &w.name,
        }
    }

    /// How the timeline shows them: `firebreak`, `schedule T-1h`,
    /// `ana (U024BE7LH)`.
    pub fn label(&self) -> String {
        match self {
            By::Bot => BOT.to_owned(),
            By::Schedule(s) => format!("schedule {s}"),
            By::Person(w) => w.label(),
        }
    }

    /// Back from the three stored fields; `None` when they do not make
    /// one (an unknown kind, a person without an id).
    pub fn from_parts(kind: &str, id: &str, name: &str) -> Option<By> {
        match kind {
            "bot" => Some(By::Bot),
            "schedule" if !id.is_empty() => Some(By::Schedule(id.to_owned())),
            "person" if !id.is_empty() => Some(By::Person(Who::new(id, name))),
            _ => None,
        }
    }
}

/// In a record (a run's trigger): the three stored fields.
impl Serialize for By {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("By", 3)?;
        m.serialize_field("kind", self.kind())?;
        m.serialize_field("id", self.id())?;
        m.serialize_field("name", self.name())?;
        m.end()
    }
}

impl<'de> serde::Deserialize<'de> for By {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<By, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            kind: String,
            id: String,
            name: String,
        }
        let r = Raw::deserialize(d)?;
        By::from_parts(&r.kind, &r.id, &r.name).ok_or_else(|| {
            serde::de::Error::custom(format!("not an actor: kind {:?} id {:?}", r.kind, r.id))
        })
    }
}

impl std::fmt::Display for By {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

/// What an entry is about, where that applies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct About {
    /// The alert (rule) name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
    /// The run id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// The step id within the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

impl About {
    pub fn alert(name: impl Into<String>) -> About {
        About {
            alert: Some(name.into()),
            ..About::default()
        }
    }

    pub fn runbook(name: impl Into<String>) -> About {
        About {
            runbook: Some(name.into()),
            ..About::default()
        }
    }

    pub fn run(runbook: impl Into<String>, run: impl Into<String>) -> About {
        About {
            runbook: Some(runbook.into()),
            run: Some(run.into()),
            ..About::default()
        }
    }

    pub fn with_alert(mut self, alert: Option<&str>) -> About {
        self.alert = alert.map(str::to_owned);
        self
    }

    pub fn with_step(mut self, step: impl Into<String>) -> About {
        self.step = Some(step.into());
        self
    }
}

/// One line of an incident's timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelineEntry {
    pub incident: String,
    /// Orders entries that share a millisecond; the store numbers an entry
    /// when it appends it (what a writer puts here is ignored).
    pub seq: i64,
    pub at: Millis,
    pub kind: Kind,
    pub by: By,
    pub about: About,
    /// For people; never read back.
    pub text: String,
}

impl TimelineEntry {
    /// An entry to append (the store numbers it).
    pub fn new(
        incident: impl Into<String>,
        at: Millis,
        kind: Kind,
        by: By,
        about: About,
        text: impl Into<String>,
    ) -> TimelineEntry {
        TimelineEntry {
            incident: incident.into(),
            seq: 0,
            at,
            kind,
            by,
            about,
            text: text.into(),
        }
    }

    /// How the run ended, for a run's last entry.
    pub fn outcome(&self) -> Option<Outcome> {
        match self.kind {
            Kind::RunEnded(o) => Some(o),
            _ => None,
        }
    }
}

/// The text of timelines written before the fields existed (store schema
/// 1 and the releases before versioned schemas), and the actor of runs
/// they left unfinished. Those records can no longer change, so this
/// reading of them is fixed too: it is not kept in step with today's
/// wording, and nothing but the store's upgrade and the resumption of
/// such a run uses it.
pub mod legacy {
    use super::{About, By, Kind, Who};

    /// What an old entry was about: its alert's rule in the first word of
    /// alert entries, its runbook in the second of run entries
    /// (`runbook NAME ...`); rule and runbook names never held spaces.
    pub fn about(kind: &Kind, text: &str) -> About {
        let first = || text.split(' ').next().filter(|w| !w.is_empty());
        match kind {
            Kind::AlertBegan | Kind::AlertFiring | Kind::AlertSilenced | Kind::AlertResolved => {
                first().map(About::alert).unwrap_or_default()
            }
            Kind::RunStarted | Kind::RunResumed | Kind::RunSkipped | Kind::RunEnded(_) => text
                .strip_prefix("runbook ")
                .and_then(|t| t.split(' ').next())
                .filter(|w| !w.is_empty())
                .map(About::runbook)
                .unwrap_or_default(),
            _ => About::default(),
        }
    }

    /// Who an old `actor` column named: `firebreak`, `schedule T-1h`,
    /// `name (UID)`, or (older still) a bare name or id, taken as both.
    pub fn by(actor: &str) -> By {
        if actor == super::BOT {
            return By::Bot;
        }
        if let Some(s) = actor.strip_prefix("schedule ") {
            return By::Schedule(s.to_owned());
        }
        if let Some(open) = actor.rfind(" (")
            && let Some(id) = actor[open + 2..].strip_suffix(')')
            && !id.is_empty()
            && !id.contains([' ', '('])
        {
            return By::Person(Who::new(id, &actor[..open]));
        }
        By::Person(Who::new(actor, actor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_as_itself_and_unknown_ones_are_kept() {
        for k in Kind::all() {
            assert_eq!(Kind::parse(k.as_str()), k, "{k}");
            assert!(!matches!(k, Kind::Other(_)));
        }
        assert_eq!(
            Kind::parse("run_exploded"),
            Kind::Other("run_exploded".into())
        );
        assert_eq!(Kind::parse("run_exploded").as_str(), "run_exploded");
    }

    #[test]
    fn who_did_it_round_trips_through_its_stored_parts() {
        for by in [
            By::Bot,
            By::Schedule("T-1h".into()),
            By::Person(Who::new("U024", "ana")),
            By::Person(Who::new("U024", "")),
        ] {
            assert_eq!(
                By::from_parts(by.kind(), by.id(), by.name()),
                Some(by.clone())
            );
            let json = serde_json::to_string(&by).unwrap();
            assert_eq!(serde_json::from_str::<By>(&json).unwrap(), by, "{json}");
        }
        assert_eq!(By::from_parts("person", "", "ana"), None);
        assert_eq!(By::from_parts("robot", "x", "y"), None);
        assert!(serde_json::from_str::<By>(r#"{"kind":"person","id":"","name":"ana"}"#).is_err());
    }

    #[test]
    fn a_name_that_looks_like_someone_else_is_still_its_own_id() {
        // The label shows the id; the id decides.
        let mallory = By::Person(Who::new("U666", "ana (U024)"));
        assert_eq!(mallory.id(), "U666");
        assert_eq!(mallory.label(), "ana (U024) (U666)");
        assert_eq!(legacy::by(&mallory.label()), mallory);
    }

    #[test]
    fn old_rows_are_read_as_the_old_releases_wrote_them() {
        assert_eq!(
            legacy::about(
                &Kind::AlertFiring,
                "SpeakerFeedback firing: host feeds back"
            ),
            About::alert("SpeakerFeedback")
        );
        assert_eq!(
            legacy::about(
                &Kind::RunEnded(Outcome::RolledBack),
                "runbook move rolled back: busy"
            ),
            About::runbook("move")
        );
        assert_eq!(
            legacy::about(&Kind::Ack, "SpeakerFeedback ..."),
            About::default()
        );
        assert_eq!(legacy::by("firebreak"), By::Bot);
        assert_eq!(legacy::by("schedule T-10m"), By::Schedule("T-10m".into()));
        assert_eq!(
            legacy::by("ana (U024BE7LH)"),
            By::Person(Who::new("U024BE7LH", "ana"))
        );
        assert_eq!(legacy::by("alice"), By::Person(Who::new("alice", "alice")));
    }
}
