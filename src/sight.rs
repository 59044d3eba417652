//! What the bot can and cannot see: its metrics sources, its rules' evaluations,
//! the alerts pushed to it (a dead-man's switch) and chat. A bot that has gone
//! blind must say so, once, and say again when it sees; otherwise a quiet
//! channel reads as "all is well" on the night it is not.
//!
//! [`Sight`] is the model: it is told of each success and failure, with
//! `now`, and answers with the [`Change`] to announce, if any. A failure is
//! announced only once it repeats ([`REPEATS`]): one slow scrape is not
//! blindness. [`Board`] is what the HTTP API (`/-/ready`) and `/metrics` read:
//! what is lost now, written by the tasks that own each sense.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::duration::Millis;

/// Failures in a row before a sense counts as lost.
pub const REPEATS: u32 = 2;

/// One way the bot sees.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sense {
    /// A scrape target, by its configured name.
    Scrape { target: String },
    /// The Prometheus-compatible API rules are evaluated against.
    Remote,
    /// One alerting or recording rule that fails to evaluate.
    Rule { group: String, rule: String },
    /// Alerts pushed to the bot (Alertmanager's webhook, Prometheus's
    /// alerts API): none arrived within `server.deadman`.
    Pushes,
    /// The chat platform refuses the bot itself (a revoked token, a
    /// channel it was removed from).
    Chat,
}

impl Sense {
    /// Whether losing it leaves the bot unable to see alerts (chat is
    /// being mute, not blind).
    pub fn blinds(&self) -> bool {
        !matches!(self, Sense::Chat)
    }

    /// The `kind` label of `firebreak_blind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Sense::Scrape { .. } | Sense::Remote => "source",
            Sense::Rule { .. } => "rule",
            Sense::Pushes => "pushes",
            Sense::Chat => "chat",
        }
    }
}

impl fmt::Display for Sense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sense::Scrape { target } => write!(f, "scrape target `{target}`"),
            Sense::Remote => f.write_str("the metrics source (remote API)"),
            Sense::Rule { group, rule } => write!(f, "rule `{rule}` (group `{group}`)"),
            Sense::Pushes => f.write_str("pushed alerts"),
            Sense::Chat => f.write_str("chat"),
        }
    }
}

/// A sense lost: since when, and the latest reason.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Lost {
    pub since: Millis,
    pub why: String,
}

/// What to announce.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Lost {
        sense: Sense,
        lost: Lost,
    },
    /// Seen again at `at`, after being lost since `since`.
    Back {
        sense: Sense,
        since: Millis,
        at: Millis,
    },
}

impl Change {
    pub fn sense(&self) -> &Sense {
        match self {
            Change::Lost { sense, .. } | Change::Back { sense, .. } => sense,
        }
    }

    /// One line for chat, with `when` formatting instants as people read
    /// them there. Reasons come from the world (an error body, a label):
    /// clipped here, escaped by the chat adapter.
    pub fn say(&self, when: impl Fn(Millis) -> String) -> String {
        match self {
            Change::Lost { sense, lost } => {
                let (what, effect) = match sense {
                    Sense::Scrape { target } => (
                        format!("scrape target `{target}` has not answered"),
                        "rules that read it can neither fire nor resolve",
                    ),
                    Sense::Remote => (
                        "the metrics source (remote API) has not answered".to_owned(),
                        "no rule can fire or resolve",
                    ),
                    Sense::Rule { group, rule } => (
                        format!("rule `{rule}` (group `{group}`) has failed to evaluate"),
                        "it can neither fire nor resolve",
                    ),
                    Sense::Pushes => (
                        "no alert has been pushed to me".to_owned(),
                        "alerts from Prometheus or Alertmanager may not be reaching me",
                    ),
                    Sense::Chat => (
                        "the chat platform has refused my messages".to_owned(),
                        "they wait in the outbox",
                    ),
                };
                format!(
                    "⚠ I am blind: {what} since {} ({}); {effect}. Watch it by hand until I say it is back.",
                    when(lost.since),
                    crate::human::clip(&lost.why, 300)
                )
            }
            Change::Back { sense, since, at } => format!(
                "✅ I see again: {sense} is back (blind from {} for {}).",
                when(*since),
                for_people(at - since)
            ),
        }
    }
}

/// A stretch of time to the second, as people write it (`5m`, `3m20s`).
pub fn for_people(ms: Millis) -> String {
    let s = (ms.max(0) + 500) / 1000;
    crate::duration::PromDuration::from_secs(s as u64).to_string()
}

#[derive(Clone, Debug)]
struct Failing {
    since: Millis,
    why: String,
    repeats: u32,
    said: bool,
}

/// Pushed alerts expected at least every `every` (a dead-man's switch).
#[derive(Clone, Copy, Debug)]
struct Deadman {
    every: Millis,
    last: Millis,
}

/// The model: every sense's failures and which were announced.
#[derive(Debug, Default)]
pub struct Sight {
    failing: BTreeMap<Sense, Failing>,
    deadman: Option<Deadman>,
}

impl Sight {
    pub fn new() -> Sight {
        Sight::default()
    }

    /// Expects a push at least every `every` from `now` on (the bot just
    /// started: the first window counts from here).
    pub fn expect_pushes(&mut self, every: Millis, now: Millis) {
        self.deadman = Some(Deadman { every, last: now });
    }

    /// `sense` worked at `now`.
    pub fn saw(&mut self, sense: &Sense, now: Millis) -> Option<Change> {
        let f = self.failing.remove(sense)?;
        f.said.then(|| Change::Back {
            sense: sense.clone(),
            since: f.since,
            at: now,
        })
    }

    /// `sense` failed at `now`, for `why`.
    pub fn failed(&mut self, sense: &Sense, why: &str, now: Millis) -> Option<Change> {
        let f = self.failing.entry(sense.clone()).or_insert(Failing {
            since: now,
            why: String::new(),
            repeats: 0,
            said: false,
        });
        f.repeats = f.repeats.saturating_add(1);
        f.why = why.to_owned();
        if f.said || f.repeats < REPEATS {
            return None;
        }
        f.said = true;
        Some(Change::Lost {
            sense: sense.clone(),
            lost: Lost {
                since: f.since,
                why: f.why.clone(),
            },
        })
    }

    /// A push arrived at `now`.
    pub fn heard(&mut self, now: Millis) -> Option<Change> {
        let d = self.deadman.as_mut()?;
        d.last = now;
        self.saw(&Sense::Pushes, now)
    }

    /// When the dead-man's switch next needs looking at.
    pub fn next_check(&self) -> Option<Millis> {
        let d = self.deadman?;
        if self.failing.get(&Sense::Pushes).is_some_and(|f| f.said) {
            return None;
        }
        Some(d.last + d.every)
    }

    /// Trips the dead-man's switch when no push came within its window.
    pub fn tick(&mut self, now: Millis) -> Option<Change> {
        let d = self.deadman?;
        if now < d.last + d.every || self.failing.contains_key(&Sense::Pushes) {
            return None;
        }
        // Blind since the last push: anything after it may be missing.
        let why = format!("expected at least every {}", for_people(d.every));
        self.failing.insert(
            Sense::Pushes,
            Failing {
                since: d.last,
                why: why.clone(),
                repeats: REPEATS,
                said: true,
            },
        );
        Some(Change::Lost {
            sense: Sense::Pushes,
            lost: Lost { since: d.last, why },
        })
    }

    /// Forgets rules no longer loaded: a rule that is gone neither fails
    /// nor comes back.
    pub fn keep_rules(&mut self, loaded: impl Fn(&str, &str) -> bool) {
        self.failing.retain(|s, _| match s {
            Sense::Rule { group, rule } => loaded(group, rule),
            _ => true,
        });
    }

    /// What is lost now (announced only).
    pub fn lost(&self) -> Vec<(Sense, Lost)> {
        self.failing
            .iter()
            .filter(|(_, f)| f.said)
            .map(|(s, f)| {
                (
                    s.clone(),
                    Lost {
                        since: f.since,
                        why: f.why.clone(),
                    },
                )
            })
            .collect()
    }
}

/// What is lost now, as the HTTP API and `/metrics` read it. Each sense is
/// written only by the task that owns it.
#[derive(Clone, Debug, Default)]
pub struct Board(Arc<Mutex<BTreeMap<Sense, Lost>>>);

impl Board {
    pub fn new() -> Board {
        Board::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Sense, Lost>> {
        // Single inserts and removes cannot leave the map half changed.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies an announced change.
    pub fn apply(&self, change: &Change) {
        let mut b = self.lock();
        match change {
            Change::Lost { sense, lost } => {
                b.insert(sense.clone(), lost.clone());
            }
            Change::Back { sense, .. } => {
                b.remove(sense);
            }
        }
    }

    /// How many senses of each kind are lost, for `firebreak_blind`.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let b = self.lock();
        ["source", "rule", "pushes", "chat"]
            .into_iter()
            .map(|k| (k, b.keys().filter(|s| s.kind() == k).count()))
            .collect()
    }

    pub fn lost(&self) -> Vec<(Sense, Lost)> {
        self.lock()
            .iter()
            .map(|(s, l)| (s.clone(), l.clone()))
            .collect()
    }

    /// What leaves the bot blind, one line each, for `/-/ready`.
    pub fn blind(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(s, _)| s.blinds())
            .map(|(s, l)| format!("{s}: {}", crate::human::clip(&l.why, 200)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Sense {
        Sense::Scrape {
            target: "sim".into(),
        }
    }

    #[test]
    fn a_sense_is_lost_once_after_repeated_failures_and_back_once() {
        let mut s = Sight::new();
        assert_eq!(s.failed(&target(), "connection refused", 0), None);
        let lost = s.failed(&target(), "connection refused", 15_000).unwrap();
        assert_eq!(
            lost,
            Change::Lost {
                sense: target(),
                lost: Lost {
                    since: 0,
                    why: "connection refused".into()
                }
            }
        );
        // Said once, however long it lasts.
        for t in 2..10 {
            assert_eq!(s.failed(&target(), "timeout", t * 15_000), None);
        }
        assert_eq!(s.lost()[0].1.why, "timeout");
        let back = s.saw(&target(), 200_000).unwrap();
        assert_eq!(
            back,
            Change::Back {
                sense: target(),
                since: 0,
                at: 200_000
            }
        );
        assert!(s.lost().is_empty());
        assert_eq!(s.saw(&target(), 215_000), None, "back once");
    }

    #[test]
    fn one_failure_between_successes_is_not_blindness() {
        let mut s = Sight::new();
        for t in 0..10 {
            assert_eq!(s.failed(&target(), "slow", t * 2), None);
            assert_eq!(s.saw(&target(), t * 2 + 1), None);
        }
    }

    #[test]
    fn the_deadmans_switch_trips_when_pushes_stop_and_resets_on_the_next() {
        let mut s = Sight::new();
        assert_eq!(s.tick(1_000), None, "not expecting pushes: never trips");
        s.expect_pushes(300_000, 0);
        assert_eq!(s.next_check(), Some(300_000));
        assert_eq!(s.heard(100_000), None);
        assert_eq!(s.next_check(), Some(400_000));
        assert_eq!(s.tick(399_999), None);
        let Some(Change::Lost { sense, lost }) = s.tick(400_000) else {
            panic!("did not trip")
        };
        assert_eq!(sense, Sense::Pushes);
        assert_eq!(lost.since, 100_000, "blind since the last push");
        assert_eq!(lost.why, "expected at least every 5m");
        assert_eq!(s.tick(500_000), None, "said once");
        assert_eq!(s.next_check(), None);
        assert!(matches!(s.heard(520_000), Some(Change::Back { .. })));
        assert_eq!(s.next_check(), Some(820_000));
    }

    #[test]
    fn rules_no_longer_loaded_are_forgotten() {
        let mut s = Sight::new();
        let r = Sense::Rule {
            group: "g".into(),
            rule: "Gone".into(),
        };
        s.failed(&r, "bad", 0);
        s.failed(&r, "bad", 1);
        s.failed(&target(), "down", 0);
        s.failed(&target(), "down", 1);
        s.keep_rules(|_, rule| rule != "Gone");
        assert_eq!(s.lost().len(), 1);
        assert_eq!(s.lost()[0].0, target());
    }

    #[test]
    fn what_is_said_names_the_sense_when_and_why() {
        let lost = Change::Lost {
            sense: target(),
            lost: Lost {
                since: 0,
                why: "connection refused".into(),
            },
        };
        let when = |t: Millis| format!("T+{}s", t / 1000);
        assert_eq!(
            lost.say(when),
            "⚠ I am blind: scrape target `sim` has not answered since T+0s (connection refused); rules that read it can neither fire nor resolve. Watch it by hand until I say it is back."
        );
        let back = Change::Back {
            sense: Sense::Remote,
            since: 0,
            at: 200_000,
        };
        assert_eq!(
            back.say(when),
            "✅ I see again: the metrics source (remote API) is back (blind from T+0s for 3m20s)."
        );
    }
}
