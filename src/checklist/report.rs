//! How a checklist run reads to people: the chat card's plain text (what
//! the console prints and Slack shows in notifications), the terminal
//! table of `firebreak check`, and the one line the timeline keeps. Pure.

use super::state::{Phase, RunState, icon, mark};
use super::{Outcome, Severity};

/// The headline: verdict or phase, checklist, and what blocks it.
pub fn headline(r: &RunState) -> String {
    let phase = r.phase();
    let mut out = format!(
        "{} *{}* · checklist {} · run {}",
        phase.icon(),
        phase.headline(),
        r.checklist,
        r.id
    );
    match phase {
        Phase::Checking => out.push_str(&format!(
            " · {} of {} checks answered",
            r.answered(),
            r.checks.len()
        )),
        Phase::Done(_) | Phase::AwaitingSignOff => {}
    }
    out
}

/// Why not GO, in one line; empty when nothing blocks.
pub fn blocking_line(r: &RunState) -> String {
    let reasons = r.reasons();
    if reasons.is_empty() {
        return String::new();
    }
    format!(
        "Blocking GO: {} ({} of {} blockers)",
        reasons.join(", "),
        reasons.len(),
        blockers(r)
    )
}

fn blockers(r: &RunState) -> usize {
    r.checks
        .iter()
        .filter(|c| c.severity == Severity::Blocker)
        .count()
}

/// The card as text: the headline, one line per check with its evidence,
/// and what blocks GO.
/// Times are left out: the message carries its own, and a chat shows it
/// in each reader's zone.
pub fn card_text(r: &RunState) -> String {
    let mut out = headline(r);
    out.push('\n');
    out.push_str(&format!("started by {}", r.started_by));
    for c in &r.checks {
        out.push('\n');
        let warn = if c.severity == Severity::Warning {
            " (warning)"
        } else {
            ""
        };
        let mut evidence = c.evidence.clone();
        let mut icon = icon(c.outcome.as_ref());
        if c.outcome.is_none() {
            if r.finished_at.is_some() {
                (icon, evidence) = ("⚠️", "did not finish".into());
            } else {
                evidence = "checking…".into();
            }
        }
        if let (Some(s), Some(Outcome::Waiting), None) = (&c.signoff, &c.outcome, r.finished_at) {
            evidence.push_str(&format!(
                "; sign off with `signoff {} {}` within {} of the run's start",
                r.id,
                c.name,
                crate::duration::PromDuration::from_millis(
                    (s.deadline_at - r.started_at).max(0) as u64
                )
            ));
        }
        out.push_str(&format!("{icon} {}{warn}: {evidence}", c.name));
        if let Some(fix) = c.fix_to_show() {
            out.push_str(&format!("\n    → {fix}"));
        }
    }
    let blocking = blocking_line(r);
    if !blocking.is_empty() && r.finished_at.is_some() {
        out.push('\n');
        out.push_str(&blocking);
    }
    out
}

/// The terminal table: a row per check with its evidence, then the
/// verdict and why.
pub fn table(r: &RunState) -> String {
    let name_w = r
        .checks
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "{:<name_w$}  {:<9}  {:<8}  {:<7}  {:>7}  EVIDENCE\n",
        "CHECK", "KIND", "SEVERITY", "RESULT", "TOOK"
    );
    for c in &r.checks {
        let took = if c.signoff.is_some() {
            "-".to_owned()
        } else {
            format!("{}ms", c.took_ms)
        };
        out.push_str(&format!(
            "{:<name_w$}  {:<9}  {:<8}  {:<7}  {:>7}  {}\n",
            c.name,
            c.kind,
            match c.severity {
                Severity::Blocker => "blocker",
                Severity::Warning => "warning",
            },
            mark(c.outcome.as_ref()),
            took,
            c.evidence
        ));
    }
    let fixes: Vec<(&str, &str)> = r
        .checks
        .iter()
        .filter_map(|c| c.fix_to_show().map(|f| (c.name.as_str(), f)))
        .collect();
    if !fixes.is_empty() {
        out.push_str("\nTo fix:\n");
        for (name, fix) in fixes {
            out.push_str(&format!("  {name}: {fix}\n"));
        }
    }
    out.push('\n');
    out.push_str(&verdict_line(r));
    out.push('\n');
    out
}

/// `GO: every blocker passed (5 of 5)` or `NO-GO: blocked by ...`.
pub fn verdict_line(r: &RunState) -> String {
    let blockers = blockers(r);
    let reasons = r.reasons();
    if r.phase() == Phase::AwaitingSignOff {
        let waiting: Vec<&str> = r.waiting_signoffs().iter().map(|(c, _)| *c).collect();
        return format!(
            "WAITING FOR SIGN-OFF: every measured blocker passed; {} still to be signed",
            waiting.join(", ")
        );
    }
    if reasons.is_empty() && r.verdict() == super::Verdict::Go {
        format!("GO: every blocker passed ({blockers} of {blockers})")
    } else {
        format!(
            "NO-GO: {} of {blockers} blockers did not pass: {}",
            reasons.len(),
            reasons.join(", ")
        )
    }
}

/// What the timeline keeps of a finished run: the verdict and, for each
/// check that did not pass, its evidence.
pub fn timeline_text(r: &RunState) -> String {
    let mut out = format!(
        "checklist {} (run {}): {}",
        r.checklist,
        r.id,
        verdict_line(r)
    );
    for c in r
        .checks
        .iter()
        .filter(|c| c.outcome.as_ref() != Some(&Outcome::Pass))
    {
        out.push_str(&format!(
            "; {} {}: {}",
            c.name,
            mark(c.outcome.as_ref()),
            c.evidence
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checklist::{CheckResult, parse_checklist};
    use std::collections::BTreeMap;

    /// 2023-05-24T21:50:00Z, 17:50 in New York.
    const AT: i64 = 1_684_965_000_000;

    fn run() -> RunState {
        let env = crate::checklist::Env {
            targets: vec!["platform".into()],
            runbooks: vec!["move-to-secondary-room".into()],
        };
        let list = parse_checklist(
            "x.yaml",
            r#"kind: checklist
name: launch-readiness
checks:
  - name: room-capacity
    query: {expr: 'max(live_room_capacity)', expect: ">= 720000"}
  - name: platform-reachable
    severity: warning
    http: {target: platform, path: /healthz}
  - name: commander-sign-off
    signoff: {roles: [commander], deadline: 15m}
"#,
            &env,
        )
        .unwrap();
        RunState::new(
            "launch-readiness-1684965000-ab121",
            &list,
            BTreeMap::new(),
            &crate::timeline::By::Person(crate::roles::Who::new("alice", "alice")),
            AT,
        )
    }

    fn result(name: &str, outcome: Outcome, evidence: &str) -> CheckResult {
        CheckResult {
            name: name.into(),
            kind: String::new(),
            severity: Severity::Blocker,
            outcome,
            evidence: evidence.into(),
            took_ms: 12,
        }
    }

    #[test]
    fn the_card_grows_from_checking_to_a_verdict() {
        let mut r = run();
        insta::assert_snapshot!("card_checking", card_text(&r));
        r.record(result(
            "room-capacity",
            Outcome::Fail,
            "520,000 (wanted >= 720,000)",
        ));
        r.record(result(
            "platform-reachable",
            Outcome::Error("GET platform/healthz: connection failed".into()),
            "GET platform/healthz: connection failed",
        ));
        assert!(r.settle(AT + 2000));
        insta::assert_snapshot!("card_no_go", card_text(&r));
        insta::assert_snapshot!("table_no_go", table(&r));
        assert_eq!(
            timeline_text(&r),
            "checklist launch-readiness (run launch-readiness-1684965000-ab121): NO-GO: 2 of 2 blockers did not pass: room-capacity, commander-sign-off; room-capacity FAIL: 520,000 (wanted >= 720,000); platform-reachable ERROR: GET platform/healthz: connection failed; commander-sign-off WAITING: waiting for commander"
        );
    }

    #[test]
    fn a_go_says_every_blocker_passed() {
        let mut r = run();
        r.record(result(
            "room-capacity",
            Outcome::Pass,
            "1,000,000 (wanted >= 720,000)",
        ));
        r.record(result(
            "platform-reachable",
            Outcome::Pass,
            "GET platform/healthz → 200",
        ));
        insta::assert_snapshot!("card_awaiting", card_text(&r));
        r.sign(
            "commander-sign-off",
            "U1",
            "alice",
            crate::roles::Role::Commander,
            AT + 5000,
        )
        .unwrap();
        assert!(r.settle(AT + 5000));
        assert_eq!(verdict_line(&r), "GO: every blocker passed (2 of 2)");
        insta::assert_snapshot!("table_go", table(&r));
    }
}
