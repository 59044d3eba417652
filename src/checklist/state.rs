//! One run of a checklist as it unfolds: which checks have finished and
//! how, who has signed off, and the verdict so far. The runner records
//! into it; the chat card, the terminal table and the store read it. Pure:
//! times are arguments.
//!
//! A run is over when every measured check has finished and every
//! sign-off is given or past its deadline, or as soon as the measured
//! checks alone make it NO-GO: nobody should wait fifteen minutes to be
//! told a room is too small.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{CheckKind, CheckResult, Checklist, Outcome, Severity, Verdict};
use crate::duration::Millis;
use crate::roles::Role;
use crate::timeline::By;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub id: String,
    pub checklist: String,
    pub description: String,
    /// The event's parameters this run used.
    pub event: BTreeMap<String, Json>,
    /// Who or what started it, as people read it: "alice (U1)",
    /// "schedule T-10m".
    pub started_by: String,
    /// Who or what started it, by id. Missing from runs saved before it
    /// was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starter: Option<By>,
    pub started_at: Millis,
    pub finished_at: Option<Millis>,
    pub checks: Vec<CheckState>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckState {
    pub name: String,
    pub kind: String,
    pub severity: Severity,
    /// `None` while it runs; a sign-off is `Waiting` until given.
    pub outcome: Option<Outcome>,
    pub evidence: String,
    pub took_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signoff: Option<SignOff>,
    /// What to do when it does not pass, rendered for this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl CheckState {
    /// The fix to show: only for a check that finished without passing.
    pub fn fix_to_show(&self) -> Option<&str> {
        match &self.outcome {
            Some(Outcome::Fail | Outcome::Error(_)) => self.fix.as_deref(),
            _ => None,
        }
    }
}

/// A sign-off check: people with these roles confirm before the deadline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignOff {
    /// Each role needs its own person; highest first.
    pub roles: Vec<Role>,
    pub deadline_at: Millis,
    pub given: Vec<Given>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Given {
    /// The role this sign-off stands for (the signer's own may be higher).
    pub role: Role,
    pub by: String,
    pub by_id: String,
    pub at: Millis,
}

impl SignOff {
    fn missing(&self) -> Vec<Role> {
        let mut left: Vec<Role> = self.roles.clone();
        for g in &self.given {
            if let Some(i) = left.iter().position(|r| *r == g.role) {
                left.remove(i);
            }
        }
        left
    }

    fn evidence(&self) -> String {
        let given: Vec<String> = self
            .given
            .iter()
            .map(|g| format!("{} ({})", g.by, g.role))
            .collect();
        let missing: Vec<&str> = self.missing().iter().map(|r| r.as_str()).collect();
        match (given.is_empty(), missing.is_empty()) {
            (_, true) => format!("signed off by {}", given.join(", ")),
            (true, false) => format!("waiting for {}", missing.join(" and ")),
            (false, false) => format!(
                "signed off by {}; waiting for {}",
                given.join(", "),
                missing.join(" and ")
            ),
        }
    }
}

/// Where a run stands, for headers and for deciding what to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Measured checks still running.
    Checking,
    /// Everything measured passed; people have yet to sign off.
    AwaitingSignOff,
    Done(Verdict),
}

/// Why a sign-off was refused; each says what would be valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("run {run} has no check {check:?}; its sign-offs: {valid}")]
    NoSuchCheck {
        run: String,
        check: String,
        valid: String,
    },
    #[error("check {0:?} is not a sign-off; nobody signs for it")]
    NotASignOff(String),
    #[error("run {0} is over; start a new one with `checklist {1}`")]
    Over(String, String),
    #[error("{check} is already signed off as {role} by you")]
    Already { check: String, role: Role },
    #[error("{check} needs {needs}; you are a {you}")]
    Role {
        check: String,
        needs: String,
        you: Role,
    },
    #[error("{0} has every sign-off it needs")]
    Complete(String),
}

impl RunState {
    pub fn new(
        id: &str,
        list: &Checklist,
        event: BTreeMap<String, Json>,
        started_by: &By,
        now: Millis,
    ) -> RunState {
        let templates = crate::runbook::template::Templates::new();
        let ctx = serde_json::json!({ "event": event });
        let checks = list
            .checks
            .iter()
            .map(|c| {
                let fix = c
                    .fix
                    .as_ref()
                    .map(|f| templates.render_str(f, &ctx).unwrap_or_else(|_| f.clone()));
                let signoff = match &c.kind {
                    CheckKind::Signoff { roles, deadline } => {
                        let mut roles = roles.clone();
                        roles.sort_by(|a, b| b.cmp(a));
                        Some(SignOff {
                            roles,
                            deadline_at: now + deadline.as_millis() as Millis,
                            given: Vec::new(),
                        })
                    }
                    _ => None,
                };
                CheckState {
                    name: c.name.clone(),
                    kind: c.kind.name().to_owned(),
                    severity: c.severity,
                    outcome: signoff.as_ref().map(|_| Outcome::Waiting),
                    evidence: signoff.as_ref().map(SignOff::evidence).unwrap_or_default(),
                    took_ms: 0,
                    signoff,
                    fix,
                }
            })
            .collect();
        RunState {
            id: id.to_owned(),
            checklist: list.name.clone(),
            description: list.description.clone(),
            event,
            started_by: started_by.label(),
            starter: Some(started_by.clone()),
            started_at: now,
            finished_at: None,
            checks,
        }
    }

    /// A measured check finished. A result for a check that is not
    /// running (unknown, a sign-off, or already finished) is ignored.
    pub fn record(&mut self, r: CheckResult) {
        if let Some(c) = self
            .checks
            .iter_mut()
            .find(|c| c.name == r.name && c.signoff.is_none() && c.outcome.is_none())
        {
            c.outcome = Some(r.outcome);
            c.evidence = r.evidence;
            c.took_ms = r.took_ms;
        }
    }

    /// Someone signs off `check`. Their sign-off stands for the highest
    /// role still needed that their own role reaches; one person signs a
    /// check once. Returns what was recorded, for the reply.
    pub fn sign(
        &mut self,
        check: &str,
        by_id: &str,
        by: &str,
        role: Role,
        now: Millis,
    ) -> Result<String, SignError> {
        self.expire(now);
        let over = self.finished_at.is_some();
        let valid = self
            .checks
            .iter()
            .filter(|c| c.signoff.is_some())
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let (id, list) = (self.id.clone(), self.checklist.clone());
        let Some(c) = self.checks.iter_mut().find(|c| c.name == check) else {
            return Err(SignError::NoSuchCheck {
                run: id,
                check: check.to_owned(),
                valid: if valid.is_empty() {
                    "none".into()
                } else {
                    valid
                },
            });
        };
        let Some(s) = c.signoff.as_mut() else {
            return Err(SignError::NotASignOff(check.to_owned()));
        };
        if over || c.outcome != Some(Outcome::Waiting) && c.outcome != Some(Outcome::Pass) {
            return Err(SignError::Over(id, list));
        }
        if let Some(g) = s.given.iter().find(|g| g.by_id == by_id) {
            return Err(SignError::Already {
                check: check.to_owned(),
                role: g.role,
            });
        }
        let missing = s.missing();
        if missing.is_empty() {
            return Err(SignError::Complete(check.to_owned()));
        }
        let Some(fills) = missing.iter().copied().find(|r| *r <= role) else {
            return Err(SignError::Role {
                check: check.to_owned(),
                needs: missing
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(" and "),
                you: role,
            });
        };
        s.given.push(Given {
            role: fills,
            by: by.to_owned(),
            by_id: by_id.to_owned(),
            at: now,
        });
        c.evidence = s.evidence();
        if s.missing().is_empty() {
            c.outcome = Some(Outcome::Pass);
        }
        Ok(format!("{check}: signed off by {by} as {fills}"))
    }

    /// Sign-offs whose deadline has passed without every role fail.
    pub fn expire(&mut self, now: Millis) {
        if self.finished_at.is_some() {
            return;
        }
        for c in &mut self.checks {
            if let Some(s) = &c.signoff
                && c.outcome == Some(Outcome::Waiting)
                && now >= s.deadline_at
            {
                c.outcome = Some(Outcome::Fail);
                let missing: Vec<&str> = s.missing().iter().map(|r| r.as_str()).collect();
                c.evidence = format!(
                    "no sign-off from {} before the deadline ({})",
                    missing.join(" and "),
                    s.evidence()
                );
            }
        }
    }

    /// The earliest sign-off deadline still ahead, for the runner's timer.
    pub fn next_deadline(&self) -> Option<Millis> {
        if self.finished_at.is_some() {
            return None;
        }
        self.checks
            .iter()
            .filter(|c| c.outcome == Some(Outcome::Waiting))
            .filter_map(|c| c.signoff.as_ref().map(|s| s.deadline_at))
            .min()
    }

    fn measured_done(&self) -> bool {
        self.checks
            .iter()
            .all(|c| c.signoff.is_some() || c.outcome.is_some())
    }

    /// A blocker that finished without passing; a sign-off still waiting
    /// does not count here.
    fn blocked(&self) -> bool {
        self.checks.iter().any(|c| {
            c.severity == Severity::Blocker
                && matches!(&c.outcome, Some(o) if *o != Outcome::Pass && *o != Outcome::Waiting)
        })
    }

    pub fn phase(&self) -> Phase {
        if self.finished_at.is_some() {
            return Phase::Done(self.verdict());
        }
        if !self.measured_done() {
            Phase::Checking
        } else if self.blocked() {
            Phase::Done(Verdict::NoGo)
        } else if self
            .checks
            .iter()
            .any(|c| c.outcome == Some(Outcome::Waiting))
        {
            Phase::AwaitingSignOff
        } else {
            Phase::Done(self.verdict())
        }
    }

    /// Marks the run over when [`RunState::phase`] says it is; true when
    /// it is over (now or before).
    pub fn settle(&mut self, now: Millis) -> bool {
        self.expire(now);
        if self.finished_at.is_none() && matches!(self.phase(), Phase::Done(_)) {
            self.finished_at = Some(now);
        }
        self.finished_at.is_some()
    }

    /// Ends the run now whatever is still open (the terminal run ends
    /// when its checks do; the daemon is shutting down): sign-offs not
    /// given stay waiting, which is NO-GO.
    pub fn close(&mut self, now: Millis) {
        self.expire(now);
        self.finished_at.get_or_insert(now);
    }

    /// Every check as a result; one still running counts as unable to run.
    pub fn results(&self) -> Vec<CheckResult> {
        self.checks
            .iter()
            .map(|c| CheckResult {
                name: c.name.clone(),
                kind: c.kind.clone(),
                severity: c.severity,
                outcome: c
                    .outcome
                    .clone()
                    .unwrap_or_else(|| Outcome::Error("did not finish".into())),
                evidence: c.evidence.clone(),
                took_ms: c.took_ms,
            })
            .collect()
    }

    pub fn verdict(&self) -> Verdict {
        super::verdict(&self.results())
    }

    /// How many checks have an answer (a waiting sign-off has none).
    pub fn answered(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.outcome.as_ref().is_some_and(|o| *o != Outcome::Waiting))
            .count()
    }

    /// The sign-off checks still waiting, with the roles they need.
    pub fn waiting_signoffs(&self) -> Vec<(&str, Vec<Role>)> {
        self.checks
            .iter()
            .filter(|c| c.outcome == Some(Outcome::Waiting))
            .filter_map(|c| c.signoff.as_ref().map(|s| (c.name.as_str(), s.missing())))
            .collect()
    }

    /// The blockers that keep it from GO, for the headline: names only.
    pub fn reasons(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| {
                c.severity == Severity::Blocker
                    && c.outcome.as_ref().is_some_and(|o| *o != Outcome::Pass)
            })
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// One-word state of a check, for tables and cards.
pub fn mark(o: Option<&Outcome>) -> &'static str {
    match o {
        None => "…",
        Some(Outcome::Pass) => "PASS",
        Some(Outcome::Fail) => "FAIL",
        Some(Outcome::Error(_)) => "ERROR",
        Some(Outcome::Waiting) => "WAITING",
    }
}

pub fn icon(o: Option<&Outcome>) -> &'static str {
    match o {
        None => "⏳",
        Some(Outcome::Pass) => "✅",
        Some(Outcome::Fail) => "❌",
        Some(Outcome::Error(_)) => "⚠️",
        Some(Outcome::Waiting) => "✋",
    }
}

impl Phase {
    pub fn headline(self) -> &'static str {
        match self {
            Phase::Checking => "CHECKING",
            Phase::AwaitingSignOff => "WAITING FOR SIGN-OFF",
            Phase::Done(Verdict::Go) => "GO",
            Phase::Done(Verdict::NoGo) => "NO-GO",
        }
    }

    pub fn icon(self) -> &'static str {
        match self {
            Phase::Checking => "⏳",
            Phase::AwaitingSignOff => "✋",
            Phase::Done(Verdict::Go) => "🟢",
            Phase::Done(Verdict::NoGo) => "🔴",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> By {
        By::Person(crate::roles::Who::new("alice", "alice"))
    }
    use crate::checklist::{CheckDef, Cmp};
    use crate::duration::PromDuration;

    fn list() -> Checklist {
        let def = |name: &str, severity, kind| CheckDef {
            name: name.into(),
            severity,
            timeout: PromDuration::from_secs(10),
            kind,
            fix: None,
        };
        let q = CheckKind::Query {
            expr: "up".into(),
            op: Cmp::Eq,
            threshold: "1".into(),
        };
        Checklist {
            name: "launch-readiness".into(),
            file: "x.yaml".into(),
            description: String::new(),
            event: BTreeMap::new(),
            schedule: vec![],
            warnings: Default::default(),
            checks: vec![
                def("capacity", Severity::Blocker, q.clone()),
                def("audio", Severity::Warning, q),
                def(
                    "sign",
                    Severity::Blocker,
                    CheckKind::Signoff {
                        roles: vec![Role::Responder, Role::Commander],
                        deadline: PromDuration::from_secs(900),
                    },
                ),
            ],
        }
    }

    fn done(name: &str, outcome: Outcome) -> CheckResult {
        CheckResult {
            name: name.into(),
            kind: "query".into(),
            severity: Severity::Blocker,
            outcome,
            evidence: format!("{name} measured"),
            took_ms: 5,
        }
    }

    #[test]
    fn a_run_goes_from_checking_to_sign_off_to_go() {
        let mut r = RunState::new("c1", &list(), BTreeMap::new(), &alice(), 0);
        assert_eq!(r.phase(), Phase::Checking);
        assert_eq!(r.checks[2].evidence, "waiting for commander and responder");
        r.record(done("capacity", Outcome::Pass));
        assert_eq!(r.phase(), Phase::Checking);
        r.record(done("audio", Outcome::Fail));
        // A failed warning does not block; the sign-off is what is left.
        assert_eq!(r.phase(), Phase::AwaitingSignOff);
        assert!(!r.settle(1000));
        assert_eq!(r.next_deadline(), Some(900_000));

        // A responder fills the responder role, not the commander one.
        assert_eq!(
            r.sign("sign", "U2", "bob", Role::Responder, 2000),
            Ok("sign: signed off by bob as responder".into())
        );
        assert_eq!(
            r.sign("sign", "U2", "bob", Role::Responder, 2001),
            Err(SignError::Already {
                check: "sign".into(),
                role: Role::Responder
            })
        );
        assert_eq!(
            r.sign("sign", "U3", "carol", Role::Responder, 2002)
                .unwrap_err()
                .to_string(),
            "sign needs commander; you are a responder"
        );
        assert_eq!(r.phase(), Phase::AwaitingSignOff);
        r.sign("sign", "U1", "alice", Role::Commander, 3000)
            .unwrap();
        assert_eq!(
            r.checks[2].evidence,
            "signed off by bob (responder), alice (commander)"
        );
        assert!(r.settle(3000));
        assert_eq!(r.phase(), Phase::Done(Verdict::Go));
        assert_eq!(r.finished_at, Some(3000));
        assert!(matches!(
            r.sign("sign", "U4", "dan", Role::Commander, 4000),
            Err(SignError::Over(..))
        ));
    }

    #[test]
    fn a_commander_first_takes_the_commander_role() {
        let mut r = RunState::new("c1", &list(), BTreeMap::new(), &alice(), 0);
        r.sign("sign", "U1", "alice", Role::Commander, 1).unwrap();
        assert_eq!(
            r.checks[2].evidence,
            "signed off by alice (commander); waiting for responder"
        );
        // A second commander may stand in for the responder.
        assert_eq!(
            r.sign("sign", "U9", "zed", Role::Commander, 2),
            Ok("sign: signed off by zed as responder".into())
        );
        assert_eq!(r.checks[2].outcome, Some(Outcome::Pass));
    }

    #[test]
    fn a_measured_blocker_failing_ends_the_run_without_waiting_for_people() {
        let mut r = RunState::new("c1", &list(), BTreeMap::new(), &alice(), 0);
        r.record(done("capacity", Outcome::Fail));
        assert_eq!(r.phase(), Phase::Checking, "audio still runs");
        r.record(done("audio", Outcome::Pass));
        assert_eq!(r.phase(), Phase::Done(Verdict::NoGo));
        assert!(r.settle(10));
        assert_eq!(r.reasons(), ["capacity", "sign"]);
        assert_eq!(r.results()[2].outcome, Outcome::Waiting);
    }

    #[test]
    fn a_missed_deadline_fails_the_sign_off_with_who_was_missing() {
        let mut r = RunState::new("c1", &list(), BTreeMap::new(), &alice(), 0);
        r.record(done("capacity", Outcome::Pass));
        r.record(done("audio", Outcome::Pass));
        r.sign("sign", "U2", "bob", Role::Responder, 5).unwrap();
        assert!(!r.settle(899_999));
        assert!(r.settle(900_000));
        assert_eq!(r.checks[2].outcome, Some(Outcome::Fail));
        assert_eq!(
            r.checks[2].evidence,
            "no sign-off from commander before the deadline (signed off by bob (responder); waiting for commander)"
        );
        assert_eq!(r.verdict(), Verdict::NoGo);
    }

    #[test]
    fn sign_offs_are_refused_with_what_would_be_valid() {
        let mut r = RunState::new("c1", &list(), BTreeMap::new(), &alice(), 0);
        assert_eq!(
            r.sign("nope", "U1", "a", Role::Commander, 1)
                .unwrap_err()
                .to_string(),
            "run c1 has no check \"nope\"; its sign-offs: sign"
        );
        assert_eq!(
            r.sign("capacity", "U1", "a", Role::Commander, 1)
                .unwrap_err()
                .to_string(),
            "check \"capacity\" is not a sign-off; nobody signs for it"
        );
        // A result for a sign-off or an unknown check changes nothing.
        let before = r.clone();
        r.record(done("sign", Outcome::Pass));
        r.record(done("nope", Outcome::Pass));
        assert_eq!(r, before);
    }

    #[test]
    fn a_check_still_running_at_the_end_is_an_error_never_a_pass() {
        let r = RunState::new("c1", &list(), BTreeMap::new(), &alice(), 0);
        assert_eq!(
            r.results()[0].outcome,
            Outcome::Error("did not finish".into())
        );
        assert_eq!(r.verdict(), Verdict::NoGo);
    }
}
