//! Rehearsals: what a scenario says the right behaviour is (its `expect:`
//! block), what one rehearsal of it measured, and the verdict.
//!
//! Model only: no I/O, no clock. The scenario file carries the
//! expectations beside the world it describes, so a scenario and the
//! behaviour it demands are reviewed together; the runner plays the
//! scenario against the bot on a scaled clock and hands the measurements
//! here.
//!
//! ```yaml
//! expect:
//!   moved: {within: 8m, to_account: backup}   # or `moved: false`
//!   split: {within: 8m, to_account: backup}   # an overflow room attached;
//!                                             # or `split: false`
//!   muted: [host]          # exactly these speakers muted at the end
//!   mute_within: 3m        # the first mute, after the scheduled start
//!   mitigated_within: 2m   # the first change to a room (move, cap, waiting
//!                          # room, scaling), after the scheduled start
//!   kept: 0.95             # at least this share of peak listeners at the end
//!   crashed: false         # whether a room hosting the event may crash
//! ```
//!
//! `kept` is measured against the peak the same audience would have had on
//! a platform that never fails (the scenario with unbounded rooms and no
//! faults, same seed), not against the peak the rehearsal reached: a
//! mitigation that holds people out of the room must not raise its own
//! score by lowering the peak.
//!
//! Every field is optional; a field left out is not judged. Times are
//! Prometheus durations after the event's scheduled start.

use std::collections::BTreeSet;
use std::fmt;

use serde::Deserialize;

use crate::diag::{Diagnostic, Pos, Sp};
use crate::duration::Millis;
use crate::duration::PromDuration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
    #[serde(default)]
    moved: Option<Sp<RawMoved>>,
    #[serde(default)]
    split: Option<Sp<RawMoved>>,
    #[serde(default)]
    muted: Option<Vec<Sp<String>>>,
    #[serde(default)]
    mute_within: Option<Sp<String>>,
    #[serde(default)]
    mitigated_within: Option<Sp<String>>,
    #[serde(default)]
    kept: Option<Sp<f64>>,
    #[serde(default)]
    crashed: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawMoved {
    Flag(bool),
    How(RawMove),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMove {
    #[serde(default)]
    within: Option<Sp<String>>,
    #[serde(default)]
    to_account: Option<Sp<String>>,
}

/// Whether the event must move, and how.
#[derive(Clone, Debug, PartialEq)]
pub enum Moved {
    /// No move is wanted: one is a wrong action.
    No,
    /// At least one move, the first within `within` of the scheduled start
    /// and to `to_account`, where stated.
    Yes {
        within: Option<Millis>,
        to_account: Option<String>,
    },
}

/// A scenario's expectations, checked against its own accounts and
/// speakers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expect {
    pub moved: Option<Moved>,
    /// Whether the event must be split across rooms (an overflow room
    /// attached), judged like `moved`.
    pub split: Option<Moved>,
    pub muted: Option<BTreeSet<String>>,
    pub mute_within: Option<Millis>,
    pub mitigated_within: Option<Millis>,
    pub kept: Option<f64>,
    pub crashed: Option<bool>,
}

/// What the scenario defines that expectations may name.
pub struct Names<'a> {
    pub accounts: &'a [String],
    pub speakers: &'a [String],
}

impl RawExpect {
    /// Validates into [`Expect`], every problem located in `file` under
    /// `expect.`.
    pub fn check(&self, file: &str, names: &Names<'_>, errs: &mut Vec<Diagnostic>) -> Expect {
        let mut err = |pos: Option<Pos>, field: &str, msg: String| {
            errs.push(Diagnostic::new(file, pos, format!("expect.{field}"), msg));
        };
        let duration = |v: &str,
                        pos: Option<Pos>,
                        field: &str,
                        err: &mut dyn FnMut(Option<Pos>, &str, String)| {
            match PromDuration::parse(v) {
                Ok(d) => Some(d.as_millis() as Millis),
                Err(e) => {
                    err(pos, field, e.to_string());
                    None
                }
            }
        };
        let mut how = |sp: &Sp<RawMoved>, field: &str| match &sp.value {
            RawMoved::Flag(false) => Moved::No,
            RawMoved::Flag(true) => Moved::Yes {
                within: None,
                to_account: None,
            },
            RawMoved::How(m) => {
                // Inside a `bool`-or-mapping field the parser keeps no
                // positions of its own: point at `moved`.
                let at = |inner: &Sp<String>| Pos::of(inner).or(Pos::of(sp));
                let within = m
                    .within
                    .as_ref()
                    .and_then(|w| duration(&w.value, at(w), &format!("{field}.within"), &mut err));
                if let Some(a) = &m.to_account
                    && !names.accounts.contains(&a.value)
                {
                    err(
                        at(a),
                        &format!("{field}.to_account"),
                        format!(
                            "{:?} is not an account of this scenario; its accounts: {}",
                            a.value,
                            names.accounts.join(", ")
                        ),
                    );
                }
                Moved::Yes {
                    within,
                    to_account: m.to_account.as_ref().map(|a| a.value.clone()),
                }
            }
        };
        let moved = self.moved.as_ref().map(|sp| how(sp, "moved"));
        let split = self.split.as_ref().map(|sp| how(sp, "split"));
        let muted = self.muted.as_ref().map(|list| {
            let mut out = BTreeSet::new();
            for (i, s) in list.iter().enumerate() {
                if !names.speakers.contains(&s.value) {
                    err(
                        Pos::of(s),
                        &format!("muted[{i}]"),
                        format!(
                            "{:?} is not a speaker of this scenario; its speakers: {}",
                            s.value,
                            names.speakers.join(", ")
                        ),
                    );
                }
                out.insert(s.value.clone());
            }
            out
        });
        let mute_within = self
            .mute_within
            .as_ref()
            .and_then(|w| duration(&w.value, Pos::of(w), "mute_within", &mut err));
        let mitigated_within = self
            .mitigated_within
            .as_ref()
            .and_then(|w| duration(&w.value, Pos::of(w), "mitigated_within", &mut err));
        let kept = self.kept.as_ref().map(|k| {
            if !(0.0..=1.0).contains(&k.value) {
                err(
                    Pos::of(k),
                    "kept",
                    format!("{} is not a share; expected 0 to 1, like 0.95", k.value),
                );
            }
            k.value
        });
        Expect {
            moved,
            split,
            muted,
            mute_within,
            mitigated_within,
            kept,
            crashed: self.crashed,
        }
    }
}

/// One move of the event, as the platform recorded it.
#[derive(Clone, Debug, PartialEq)]
pub struct MoveSeen {
    /// After the scheduled start.
    pub after_ms: Millis,
    pub to_account: String,
}

/// What one rehearsal measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    pub moves: Vec<MoveSeen>,
    /// Overflow rooms attached to the event, in order.
    pub splits: Vec<MoveSeen>,
    /// Speakers muted at the end.
    pub muted: BTreeSet<String>,
    /// The first mute, from the scheduled start (negative: before it).
    pub first_mute_ms: Option<Millis>,
    /// The first change to a room after the scheduled start (move, cap,
    /// waiting room, scaling).
    pub mitigated_ms: Option<Millis>,
    /// Listeners at the end over the peak of a platform that never fails.
    pub kept: f64,
    /// A room hosting the event crashed.
    pub crashed: bool,
    /// The first alert firing after the scheduled start.
    pub detected_ms: Option<Millis>,
    /// The same scenario with no bot, where it was played.
    pub kept_without: Option<f64>,
}

/// One expectation, judged.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub what: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// A rehearsal's verdict: every stated expectation, judged, and the
/// actions that nothing asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub checks: Vec<Check>,
    pub wrong_actions: usize,
}

impl Verdict {
    pub fn pass(&self) -> bool {
        self.checks.iter().all(|c| c.ok) && self.wrong_actions == 0
    }

    /// The failed checks, one per line, for a report.
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.what, c.detail))
            .collect()
    }
}

/// `T+2m30s` (or `T-1m05s`) from the start, as a person reads it.
pub fn after(ms: Millis) -> String {
    let sign = if ms < 0 { '-' } else { '+' };
    let s = ms.abs() / 1000;
    format!("T{sign}{}m{:02}s", s / 60, s % 60)
}

/// Judges `m` against `e`. Pure: the same measurements always get the
/// same verdict.
pub fn judge(e: &Expect, m: &Measured) -> Verdict {
    let mut checks = Vec::new();
    let mut wrong = 0;
    let mut check = |what: &'static str, ok: bool, detail: String| {
        checks.push(Check { what, ok, detail });
    };
    for (what, verb, want, seen) in [
        ("moved", "moved", &e.moved, &m.moves),
        ("split", "split", &e.split, &m.splits),
    ] {
        match want {
            None => {}
            Some(Moved::No) => {
                wrong += seen.len();
                let detail = match seen.first() {
                    None => format!("not {verb}"),
                    Some(mv) => format!(
                        "{verb} {} time(s), first at {} to {}; none was wanted",
                        seen.len(),
                        after(mv.after_ms),
                        mv.to_account
                    ),
                };
                check(what, seen.is_empty(), detail);
            }
            Some(Moved::Yes { within, to_account }) => match seen.first() {
                None => check(what, false, format!("never {verb}")),
                Some(mv) => {
                    let in_time = within.is_none_or(|w| mv.after_ms <= w);
                    let right = to_account.as_ref().is_none_or(|a| *a == mv.to_account);
                    let mut detail =
                        format!("{verb} at {} to {}", after(mv.after_ms), mv.to_account);
                    if let (false, Some(w)) = (in_time, within) {
                        detail.push_str(&format!("; wanted by {}", after(*w)));
                    }
                    if let (false, Some(a)) = (right, to_account) {
                        detail.push_str(&format!("; wanted on {a}"));
                    }
                    check(what, in_time && right, detail);
                }
            },
        }
    }
    if let Some(want) = &e.muted {
        let extra: Vec<&String> = m.muted.difference(want).collect();
        let missing: Vec<&String> = want.difference(&m.muted).collect();
        wrong += extra.len();
        let mut detail = format!("muted {}", list(m.muted.iter()));
        if !missing.is_empty() {
            detail.push_str(&format!("; not muted: {}", list(missing.iter().copied())));
        }
        if !extra.is_empty() {
            detail.push_str(&format!(
                "; muted without cause: {}",
                list(extra.iter().copied())
            ));
        }
        check("muted", extra.is_empty() && missing.is_empty(), detail);
    }
    if let Some(w) = e.mute_within {
        let ok = m.first_mute_ms.is_some_and(|t| t <= w);
        let detail = match m.first_mute_ms {
            Some(t) => format!("first mute at {}; wanted by {}", after(t), after(w)),
            None => format!("no mute; wanted by {}", after(w)),
        };
        check("mute_within", ok, detail);
    }
    if let Some(w) = e.mitigated_within {
        let ok = m.mitigated_ms.is_some_and(|t| t <= w);
        let detail = match m.mitigated_ms {
            Some(t) => format!("first mitigation at {}; wanted by {}", after(t), after(w)),
            None => format!("no mitigation; wanted by {}", after(w)),
        };
        check("mitigated_within", ok, detail);
    }
    if let Some(k) = e.kept {
        check(
            "kept",
            m.kept >= k,
            format!(
                "kept {:.1}% of peak; wanted at least {:.1}%",
                m.kept * 100.0,
                k * 100.0
            ),
        );
    }
    if let Some(c) = e.crashed {
        let detail = match (c, m.crashed) {
            (_, true) => "a room hosting the event crashed".to_owned(),
            (_, false) => "no room hosting the event crashed".to_owned(),
        };
        check("crashed", c == m.crashed, detail);
    }
    Verdict {
        checks,
        wrong_actions: wrong,
    }
}

fn list<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = items.map(String::as_str).collect();
    if v.is_empty() {
        "nobody".into()
    } else {
        v.join(", ")
    }
}

/// One row of `firebreak rehearse`'s table.
#[derive(Clone, Debug)]
pub struct Row {
    pub scenario: String,
    pub measured: Measured,
    pub verdict: Verdict,
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.measured;
        let or_dash = |v: Option<Millis>| v.map_or_else(|| "-".to_owned(), after);
        write!(
            f,
            "{:<28} {:>10} {:>10} {:>6.1}% {:>8} {:>7} {:>5} {}",
            crate::human::clip(&self.scenario, 28),
            or_dash(m.detected_ms),
            or_dash(m.mitigated_ms),
            m.kept * 100.0,
            m.kept_without
                .map_or_else(|| "-".to_owned(), |k| format!("{:.1}%", k * 100.0)),
            if m.crashed { "yes" } else { "no" },
            self.verdict.wrong_actions,
            if self.verdict.pass() { "PASS" } else { "FAIL" },
        )
    }
}

/// The header of the table [`Row`]s print under.
pub const TABLE_HEADER: &str =
    "scenario                       detected  mitigated   kept  without crashed wrong verdict";

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> (Vec<String>, Vec<String>) {
        (
            vec!["owner".into(), "backup".into()],
            vec!["host".into(), "guest".into()],
        )
    }

    fn expect(yaml: &str) -> Result<Expect, Vec<Diagnostic>> {
        let raw: RawExpect = crate::diag::from_yaml("s.yaml", yaml).map_err(|d| d.0)?;
        let (accounts, speakers) = names();
        let mut errs = Vec::new();
        let e = raw.check(
            "s.yaml",
            &Names {
                accounts: &accounts,
                speakers: &speakers,
            },
            &mut errs,
        );
        if errs.is_empty() { Ok(e) } else { Err(errs) }
    }

    fn measured() -> Measured {
        Measured {
            moves: vec![MoveSeen {
                after_ms: 5 * 60_000,
                to_account: "backup".into(),
            }],
            splits: vec![],
            muted: ["host".to_owned()].into(),
            first_mute_ms: Some(60_000),
            mitigated_ms: Some(5 * 60_000),
            kept: 0.97,
            crashed: false,
            detected_ms: Some(30_000),
            kept_without: Some(0.4),
        }
    }

    #[test]
    fn a_rehearsal_that_does_what_was_asked_passes() {
        let e = expect(
            "moved: {within: 8m, to_account: backup}\nmuted: [host]\nmute_within: 2m\nmitigated_within: 5m\nkept: 0.95\ncrashed: false\n",
        )
        .unwrap();
        let v = judge(&e, &measured());
        assert!(v.pass(), "{v:?}");
        assert_eq!(v.checks.len(), 6);
    }

    #[test]
    fn each_expectation_fails_on_its_own_and_says_why() {
        let e = expect(
            "moved: {within: 4m, to_account: owner}\nmuted: [guest]\nmute_within: 30s\nmitigated_within: 4m59s\nkept: 0.99\ncrashed: true\n",
        )
        .unwrap();
        let v = judge(&e, &measured());
        assert!(!v.pass());
        assert_eq!(
            v.failures(),
            [
                "moved: moved at T+5m00s to backup; wanted by T+4m00s; wanted on owner",
                "muted: muted host; not muted: guest; muted without cause: host",
                "mute_within: first mute at T+1m00s; wanted by T+0m30s",
                "mitigated_within: first mitigation at T+5m00s; wanted by T+4m59s",
                "kept: kept 97.0% of peak; wanted at least 99.0%",
                "crashed: no room hosting the event crashed",
            ]
        );
        // Muting someone who was not feeding back is a wrong action.
        assert_eq!(v.wrong_actions, 1);
    }

    #[test]
    fn a_move_nobody_wanted_is_a_wrong_action() {
        let e = expect("moved: false\n").unwrap();
        let v = judge(&e, &measured());
        assert!(!v.pass());
        assert_eq!(v.wrong_actions, 1);
        assert_eq!(
            v.failures(),
            ["moved: moved 1 time(s), first at T+5m00s to backup; none was wanted"]
        );
        let mut still = measured();
        still.moves.clear();
        assert!(judge(&e, &still).pass());
    }

    #[test]
    fn a_split_is_judged_like_a_move_and_an_unwanted_one_is_wrong() {
        let want = expect("split: {within: 4m, to_account: backup}\n").unwrap();
        let v = judge(&want, &measured());
        assert_eq!(v.failures(), ["split: never split"]);
        let mut m = measured();
        m.splits.push(MoveSeen {
            after_ms: 3 * 60_000,
            to_account: "backup".into(),
        });
        assert!(judge(&want, &m).pass());
        let unwanted = judge(&expect("split: false\n").unwrap(), &m);
        assert_eq!(unwanted.wrong_actions, 1);
        assert_eq!(
            unwanted.failures(),
            ["split: split 1 time(s), first at T+3m00s to backup; none was wanted"]
        );
        let errs = expect("split: {to_account: nowhere}\n").unwrap_err();
        assert!(
            errs[0].to_string().contains("expect.split.to_account"),
            "{errs:?}"
        );
    }

    #[test]
    fn unstated_expectations_are_not_judged() {
        let v = judge(&Expect::default(), &measured());
        assert!(v.pass());
        assert!(v.checks.is_empty());
    }

    #[test]
    fn expectations_name_only_what_the_scenario_defines() {
        let errs =
            expect("moved: {within: soon, to_account: cohost}\nmuted: [host, mc]\nkept: 95\n")
                .unwrap_err();
        let shown: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 4, "{shown:#?}");
        assert!(
            shown[0].starts_with("s.yaml:1:8: expect.moved.within:"),
            "{shown:#?}"
        );
        assert!(
            shown[1].starts_with("s.yaml:1:8: expect.moved.to_account:"),
            "{shown:#?}"
        );
        assert!(shown[1].contains("expect.moved.to_account: \"cohost\" is not an account of this scenario; its accounts: owner, backup"), "{shown:#?}");
        assert!(
            shown[2].contains("expect.muted[1]: \"mc\" is not a speaker"),
            "{shown:#?}"
        );
        assert!(
            shown[3].contains("expect.kept: 95 is not a share"),
            "{shown:#?}"
        );
        let unknown = expect("moved: {by: 5m}\n").unwrap_err();
        assert!(!unknown.is_empty());
    }

    /// The suite's scenarios load, each with the expectations its header
    /// states in words.
    #[test]
    fn every_scenario_of_the_suite_loads_with_its_expectations() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
        let mut n = 0;
        // `pending/` (nights not yet handled) exists only while it has any.
        let files = std::fs::read_dir(&dir)
            .unwrap()
            .chain(std::fs::read_dir(dir.join("pending")).into_iter().flatten())
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"));
        for p in files {
            let name = p.display().to_string();
            let text = std::fs::read_to_string(&p).unwrap();
            let s = crate::sim::Scenario::load(&name, &text).unwrap_or_else(|d| panic!("{d}"));
            let e = s
                .expect
                .unwrap_or_else(|| panic!("{name} states no expectations"));
            assert!(e.kept.is_some() && e.crashed.is_some(), "{name}: {e:?}");
            n += 1;
        }
        assert!(n >= 10, "{n} scenarios");
    }

    #[test]
    fn a_row_reads_as_the_table_does() {
        let row = Row {
            scenario: "other-names".into(),
            measured: measured(),
            verdict: judge(&Expect::default(), &measured()),
        };
        let text = row.to_string();
        assert!(text.starts_with("other-names"), "{text}");
        assert!(
            text.contains("T+0m30s") && text.contains("T+5m00s"),
            "{text}"
        );
        assert!(text.contains("97.0%") && text.contains("40.0%"), "{text}");
        assert!(text.ends_with("PASS"), "{text}");
    }
}
