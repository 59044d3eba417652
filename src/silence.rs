//! Silences, with Alertmanager's semantics: a set of label matchers and a
//! time window. A firing alert whose labels match every matcher of a
//! silence active at that moment is silenced: recorded, but nobody is
//! paged and no runbook starts. Expiring a silence ends its window now.
//!
//! Model only: no I/O, time comes in as `now`. The control loop owns the
//! one [`Silences`]; the store keeps them across restarts.

use std::collections::BTreeMap;

use crate::duration::Millis;
use crate::labels::Labels;
use crate::matchers::{Matcher, matches_all};

#[derive(Clone, Debug, PartialEq)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: Millis,
    pub ends_at: Millis,
    pub created_by: String,
    pub comment: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    #[error("matchers: a silence needs at least one matcher")]
    NoMatchers,
    /// Alertmanager refuses these too: they would silence every alert.
    #[error(
        "matchers: {0} would match every alert; at least one matcher must need a non-empty value, such as alertname=\"X\""
    )]
    MatchesEverything(String),
    #[error("duration: the silence must end after it starts")]
    Empty,
    #[error("a silence with id {0} already exists")]
    Duplicate(String),
    #[error("no silence with id {0}")]
    Unknown(String),
    #[error("silence {0} has already expired")]
    AlreadyExpired(String),
}

impl Silence {
    /// In effect at `now`: started, not yet ended.
    pub fn is_active(&self, now: Millis) -> bool {
        self.starts_at <= now && now < self.ends_at
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        matches_all(&self.matchers, labels)
    }

    /// The matchers in Alertmanager syntax: `alertname="X", room="main"`.
    pub fn matchers_text(&self) -> String {
        matchers_text(&self.matchers)
    }

    /// Why a silence may not be created, if it may not.
    pub fn validate(&self) -> Result<(), SilenceError> {
        if self.matchers.is_empty() {
            return Err(SilenceError::NoMatchers);
        }
        if self.matchers.iter().all(Matcher::matches_empty) {
            return Err(SilenceError::MatchesEverything(self.matchers_text()));
        }
        if self.ends_at <= self.starts_at {
            return Err(SilenceError::Empty);
        }
        Ok(())
    }
}

/// The id of the silence a runbook step makes, from the step's idempotency
/// key: the same step, repeated after a restart, names the same silence.
pub fn id_for_key(key: &str) -> String {
    format!("k{:016x}", crate::labels::fnv(key.as_bytes()))
}

pub fn matchers_text(matchers: &[Matcher]) -> String {
    matchers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every silence the bot knows, by id.
#[derive(Clone, Debug, Default)]
pub struct Silences {
    by_id: BTreeMap<String, Silence>,
}

impl Silences {
    pub fn new() -> Self {
        Silences::default()
    }

    /// Adds a silence after checking it could ever be valid.
    pub fn add(&mut self, s: Silence) -> Result<(), SilenceError> {
        s.validate()?;
        if self.by_id.contains_key(&s.id) {
            return Err(SilenceError::Duplicate(s.id));
        }
        self.by_id.insert(s.id.clone(), s);
        Ok(())
    }

    /// Adds a silence read back from the store as it was, even expired, so
    /// an expired id is still known.
    pub fn restore(&mut self, s: Silence) {
        self.by_id.insert(s.id.clone(), s);
    }

    /// Ends a silence at `now`. One that has not started yet ends before it
    /// starts, as in Alertmanager: both ends become `now`.
    pub fn expire(&mut self, id: &str, now: Millis) -> Result<&Silence, SilenceError> {
        let s = self
            .by_id
            .get_mut(id)
            .ok_or_else(|| SilenceError::Unknown(id.to_owned()))?;
        if s.ends_at <= now {
            return Err(SilenceError::AlreadyExpired(id.to_owned()));
        }
        if s.starts_at > now {
            s.starts_at = now;
        }
        s.ends_at = now;
        Ok(s)
    }

    pub fn get(&self, id: &str) -> Option<&Silence> {
        self.by_id.get(id)
    }

    /// Silences in effect at `now`, by id.
    pub fn active(&self, now: Millis) -> impl Iterator<Item = &Silence> {
        self.by_id.values().filter(move |s| s.is_active(now))
    }

    /// The first active silence (by id) that matches these labels.
    pub fn is_silenced(&self, labels: &Labels, now: Millis) -> Option<&Silence> {
        self.active(now).find(|s| s.matches(labels))
    }

    /// Forgets silences that ended before `before`; they can no longer
    /// affect anything and would only grow the map.
    pub fn prune(&mut self, before: Millis) {
        self.by_id.retain(|_, s| s.ends_at >= before);
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// A fresh id for a silence created at `now`: the time, and a counter
    /// when two are created in one millisecond. Ids sort by creation.
    pub fn next_id(&self, now: Millis) -> String {
        (0..)
            .map(|n| {
                if n == 0 {
                    format!("s{now:013}")
                } else {
                    format!("s{now:013}-{n}")
                }
            })
            .find(|id| !self.by_id.contains_key(id))
            .expect("an unused id exists")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matchers::parse_matchers;

    fn silence(id: &str, m: &str, starts_at: Millis, ends_at: Millis) -> Silence {
        Silence {
            id: id.into(),
            matchers: parse_matchers(m).unwrap(),
            starts_at,
            ends_at,
            created_by: "alice".into(),
            comment: "maintenance".into(),
        }
    }

    fn alert(name: &str, room: &str) -> Labels {
        Labels::new().with("alertname", name).with("room", room)
    }

    #[test]
    fn an_active_matching_silence_silences() {
        let mut s = Silences::new();
        s.add(silence(
            "a",
            r#"alertname="Full",room=~"main|backup""#,
            100,
            200,
        ))
        .unwrap();
        assert_eq!(
            s.is_silenced(&alert("Full", "main"), 150)
                .map(|s| &s.id[..]),
            Some("a")
        );
        assert!(s.is_silenced(&alert("Full", "green"), 150).is_none());
        assert!(s.is_silenced(&alert("Down", "main"), 150).is_none());
        // The window is [starts_at, ends_at).
        assert!(s.is_silenced(&alert("Full", "main"), 99).is_none());
        assert!(s.is_silenced(&alert("Full", "main"), 100).is_some());
        assert!(s.is_silenced(&alert("Full", "main"), 200).is_none());
        assert_eq!(s.active(150).count(), 1);
        assert_eq!(s.active(250).count(), 0);
    }

    #[test]
    fn expiring_ends_the_window_now() {
        let mut s = Silences::new();
        s.add(silence("a", "alertname=Full", 100, 1_000)).unwrap();
        s.add(silence("later", "alertname=Full", 500, 1_000))
            .unwrap();
        assert_eq!(s.expire("a", 300).unwrap().ends_at, 300);
        assert!(s.is_silenced(&alert("Full", "x"), 300).is_none());
        assert_eq!(
            s.expire("a", 400).unwrap_err(),
            SilenceError::AlreadyExpired("a".into())
        );
        assert_eq!(
            s.expire("nope", 400).unwrap_err(),
            SilenceError::Unknown("nope".into())
        );
        // Not yet started: it never will.
        let l = s.expire("later", 400).unwrap();
        assert_eq!((l.starts_at, l.ends_at), (400, 400));
        assert!(s.is_silenced(&alert("Full", "x"), 600).is_none());
    }

    #[test]
    fn invalid_silences_are_refused() {
        let mut s = Silences::new();
        assert_eq!(
            s.add(silence("a", "room=~\".*\"", 0, 10)).unwrap_err(),
            SilenceError::MatchesEverything("room=~\".*\"".into())
        );
        assert!(s.add(silence("a", "alertname=X", 0, 10)).is_ok());
        assert_eq!(
            s.add(silence("a", "alertname=X", 0, 10)).unwrap_err(),
            SilenceError::Duplicate("a".into())
        );
        assert_eq!(
            s.add(silence("b", "alertname=X", 10, 10)).unwrap_err(),
            SilenceError::Empty
        );
        let mut none = silence("c", "alertname=X", 0, 10);
        none.matchers.clear();
        assert_eq!(s.add(none).unwrap_err(), SilenceError::NoMatchers);
        assert!(
            SilenceError::MatchesEverything("x".into())
                .to_string()
                .starts_with("matchers:")
        );
    }

    #[test]
    fn ids_are_unique_and_pruning_forgets_old_ones() {
        let mut s = Silences::new();
        let a = s.next_id(5);
        s.add(silence(&a, "alertname=X", 5, 10)).unwrap();
        let b = s.next_id(5);
        assert_ne!(a, b);
        s.add(silence(&b, "alertname=X", 5, 100)).unwrap();
        assert!(a < b);
        s.prune(50);
        assert_eq!(s.len(), 1);
        assert!(s.get(&b).is_some());
        assert_eq!(s.get(&b).unwrap().matchers_text(), "alertname=\"X\"");
    }
}
