//! The states a run and its steps pass through, as the store keeps them,
//! the HTTP API shows them and an incident's card reads them: one enum
//! each, stored and shown by their snake_case names.
//!
//! Model code.

use serde::{Deserialize, Serialize};

/// Writes `as_str`, `parse`, `ALL`, `Display` and string serde for a
/// field-less enum of stored names.
macro_rules! named {
    ($(#[$m:meta])* $vis:vis enum $t:ident { $($(#[$d:meta])* $v:ident = $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $t { $($(#[$d])* $v,)* }

        impl $t {
            pub const ALL: &'static [$t] = &[$($t::$v,)*];

            pub fn as_str(self) -> &'static str {
                match self { $($t::$v => $s,)* }
            }

            pub fn parse(s: &str) -> Option<$t> {
                match s { $($s => Some($t::$v),)* _ => None }
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                let s = String::deserialize(d)?;
                $t::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!(concat!("not a ", stringify!($t), ": {:?}"), s))
                })
            }
        }
    };
}

named! {
    /// How a run ended.
    pub enum Outcome {
        Succeeded = "succeeded",
        Failed = "failed",
        /// A step failed or verification did not recover, and the steps
        /// that had acted were undone.
        RolledBack = "rolled_back",
        /// Stopped by a person (abort, a denied approval) or an approval
        /// that nobody gave in time.
        Aborted = "aborted",
        /// Could not finish safely (for example a step that was in flight
        /// when the bot died and is not safe to repeat); a human must look.
        Interrupted = "interrupted",
    }
}

named! {
    /// Where a run that has not ended is.
    pub enum Going {
        Running = "running",
        /// At a gate, waiting for a person.
        AwaitingApproval = "awaiting_approval",
        /// Undoing the steps that acted, after a failure.
        RollingBack = "rolling_back",
    }
}

/// A run's state: going, or ended and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RunState {
    Going(Going),
    Ended(Outcome),
}

impl RunState {
    pub const RUNNING: RunState = RunState::Going(Going::Running);

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Going(g) => g.as_str(),
            RunState::Ended(o) => o.as_str(),
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        Going::parse(s)
            .map(RunState::Going)
            .or_else(|| Outcome::parse(s).map(RunState::Ended))
    }

    /// Every state, for listings of what a filter accepts.
    pub fn all() -> impl Iterator<Item = RunState> {
        Going::ALL
            .iter()
            .map(|g| RunState::Going(*g))
            .chain(Outcome::ALL.iter().map(|o| RunState::Ended(*o)))
    }

    pub fn is_over(self) -> bool {
        matches!(self, RunState::Ended(_))
    }
}

impl From<Outcome> for RunState {
    fn from(o: Outcome) -> RunState {
        RunState::Ended(o)
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RunState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RunState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<RunState, D::Error> {
        let s = String::deserialize(d)?;
        RunState::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not a run state: {s:?}")))
    }
}

named! {
    /// A step's state in the record. Gates (`approval:...`) end approved,
    /// denied or timed out; a rollback its guard did not let act is held.
    pub enum StepState {
        Running = "running",
        AwaitingApproval = "awaiting_approval",
        Succeeded = "succeeded",
        Failed = "failed",
        /// Its `when` was false.
        Skipped = "skipped",
        /// In flight when the bot stopped, and not safe to repeat.
        Interrupted = "interrupted",
        Held = "held",
        Approved = "approved",
        Denied = "denied",
        TimedOut = "timed_out",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_as_itself_by_its_stored_name() {
        for s in RunState::all() {
            assert_eq!(RunState::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<RunState>(&json).unwrap(), s);
        }
        for s in StepState::ALL {
            assert_eq!(StepState::parse(s.as_str()), Some(*s));
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(serde_json::from_str::<StepState>(&json).unwrap(), *s);
        }
        assert_eq!(RunState::parse("verifying"), None);
        assert!(serde_json::from_str::<StepState>("\"done\"").is_err());
    }
}
