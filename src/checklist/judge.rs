//! What each kind of check concludes from what was measured, and the
//! evidence it shows for it. Pure: the runner measures (queries, HTTP
//! calls, runbook tests) and asks here; every number compared appears in
//! the evidence, so a NO-GO can be argued with.

use super::{Cmp, Outcome};
use crate::human::value as human_value;

/// Every value a `query` check measured, by the labels of its series.
pub fn query(values: &[(String, f64)], op: Cmp, threshold: f64) -> (Outcome, String) {
    let want = format!("{} {}", op.symbol(), human_value(threshold));
    if values.is_empty() {
        return (
            Outcome::Fail,
            format!("no series: nothing was measured (wanted {want})"),
        );
    }
    let bad: Vec<&(String, f64)> = values
        .iter()
        .filter(|(_, v)| !op.holds(*v, threshold))
        .collect();
    let shown = |vs: &[&(String, f64)]| {
        vs.iter()
            .take(3)
            .map(|(l, v)| {
                if l.is_empty() || l == "{}" {
                    human_value(*v)
                } else {
                    format!("{} {l}", human_value(*v))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if bad.is_empty() {
        let all: Vec<&(String, f64)> = values.iter().collect();
        (Outcome::Pass, format!("{} (wanted {want})", shown(&all)))
    } else {
        let more = if bad.len() > 3 {
            format!(" and {} more", bad.len() - 3)
        } else {
            String::new()
        };
        (
            Outcome::Fail,
            format!("{}{more} (wanted {want})", shown(&bad)),
        )
    }
}

/// The room against the projection: it must serve `audience` and admit
/// `join_rate` per minute, each with `headroom` to spare.
pub fn capacity(
    audience: f64,
    join_rate_per_min: f64,
    capacity: f64,
    admission_per_min: f64,
    headroom: f64,
) -> (Outcome, String) {
    let need_cap = audience * (1.0 + headroom);
    let need_rate = join_rate_per_min * (1.0 + headroom);
    let pct = format!("{}%", human_value(headroom * 100.0));
    let cap_ok = capacity >= need_cap;
    let rate_ok = admission_per_min >= need_rate;
    let line = |what: &str, have: f64, need: f64, base: f64, ok: bool| {
        format!(
            "{what} {} {} needed {} ({} + {pct})",
            human_value(have),
            if ok { ">=" } else { "<" },
            human_value(need),
            human_value(base)
        )
    };
    let evidence = format!(
        "{}; {}",
        line("capacity", capacity, need_cap, audience, cap_ok),
        line(
            "admission/min",
            admission_per_min,
            need_rate,
            join_rate_per_min,
            rate_ok
        ),
    );
    let outcome = if cap_ok && rate_ok {
        Outcome::Pass
    } else {
        Outcome::Fail
    };
    (outcome, evidence)
}

/// A target's answer against what was expected of it.
pub fn http(
    call: &str,
    status: u16,
    body: &str,
    want_status: &[u16],
    body_contains: Option<&str>,
) -> (Outcome, String) {
    if !want_status.contains(&status) {
        let want: Vec<String> = want_status.iter().map(u16::to_string).collect();
        return (
            Outcome::Fail,
            format!("{call} → {status} (wanted {})", want.join(" or ")),
        );
    }
    match body_contains {
        Some(needle) if !body.contains(needle) => (
            Outcome::Fail,
            format!("{call} → {status}, but the body does not contain {needle:?}"),
        ),
        Some(needle) => (
            Outcome::Pass,
            format!("{call} → {status}, body contains {needle:?}"),
        ),
        None => (Outcome::Pass, format!("{call} → {status}")),
    }
}

/// How one target answered a runbook's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// It answered, and did not refuse the credentials.
    Answered(u16),
    /// 401 or 403: it refuses what the bot would send.
    Refused(u16),
    /// Its secret cannot be read (unset variable, missing file); why.
    NoSecret(String),
    /// No answer, or a 5xx; why.
    Down(String),
}

/// Every target must answer without refusing its credentials; each one
/// that does not is named with why, the rest counted.
pub fn credentials(probes: &[(String, Probe)]) -> (Outcome, String) {
    if probes.is_empty() {
        return (
            Outcome::Fail,
            "the runbooks call no target: nothing was proven".into(),
        );
    }
    let bad: Vec<String> = probes
        .iter()
        .filter_map(|(t, p)| match p {
            Probe::Answered(_) => None,
            Probe::Refused(code) => Some(format!("{t} refused the credentials ({code})")),
            Probe::NoSecret(why) => Some(format!("{t}: {why}")),
            Probe::Down(why) => Some(format!("{t} did not answer ({why})")),
        })
        .collect();
    if bad.is_empty() {
        let shown: Vec<String> = probes
            .iter()
            .map(|(t, p)| match p {
                Probe::Answered(code) => format!("{t} → {code}"),
                _ => t.clone(),
            })
            .collect();
        return (
            Outcome::Pass,
            format!(
                "{} target(s) answer with their credentials: {}",
                probes.len(),
                shown.join(", ")
            ),
        );
    }
    (
        Outcome::Fail,
        format!(
            "{} of {} target(s) would fail a mitigation: {}",
            bad.len(),
            probes.len(),
            bad.join("; ")
        ),
    )
}

/// A runbook's readiness: loaded (validated) and its tests' results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunbookState {
    Missing,
    /// Loaded; `(passed, failed)` test cases.
    Tested {
        passed: usize,
        failed: usize,
    },
    /// A test file about it is broken; why.
    BadTests(String),
}

pub fn runbooks(states: &[(String, RunbookState)]) -> (Outcome, String) {
    let mut ok = true;
    let parts: Vec<String> = states
        .iter()
        .map(|(name, s)| match s {
            RunbookState::Missing => {
                ok = false;
                format!("{name}: not loaded")
            }
            RunbookState::BadTests(why) => {
                ok = false;
                format!("{name}: tests broken ({why})")
            }
            RunbookState::Tested {
                passed: 0,
                failed: 0,
            } => {
                ok = false;
                format!("{name}: no tests")
            }
            RunbookState::Tested { passed, failed: 0 } => {
                format!("{name}: {passed} test(s) pass")
            }
            RunbookState::Tested { passed, failed } => {
                ok = false;
                format!("{name}: {failed} of {} test(s) fail", passed + failed)
            }
        })
        .collect();
    let outcome = if ok { Outcome::Pass } else { Outcome::Fail };
    (outcome, parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(l: &str, x: f64) -> (String, f64) {
        (l.into(), x)
    }

    #[test]
    fn a_query_passes_only_when_every_series_holds() {
        assert_eq!(
            query(&[v("{speaker=\"host\"}", 0.1)], Cmp::Lt, 0.3),
            (
                Outcome::Pass,
                "0.10 {speaker=\"host\"} (wanted < 0.30)".into()
            )
        );
        let (o, e) = query(
            &[
                v("{a=\"1\"}", 0.9),
                v("{a=\"2\"}", 0.1),
                v("{a=\"3\"}", 0.5),
            ],
            Cmp::Lt,
            0.3,
        );
        assert_eq!(o, Outcome::Fail);
        assert_eq!(e, "0.90 {a=\"1\"}, 0.50 {a=\"3\"} (wanted < 0.30)");
        assert_eq!(
            query(&[], Cmp::Eq, 1.0),
            (
                Outcome::Fail,
                "no series: nothing was measured (wanted == 1)".into()
            )
        );
        let many: Vec<(String, f64)> = (0..5).map(|i| v(&format!("{{i=\"{i}\"}}"), 2.0)).collect();
        assert!(query(&many, Cmp::Lt, 1.0).1.contains(" and 2 more"));
        assert_eq!(query(&[v("{}", 1.0)], Cmp::Eq, 1.0).1, "1 (wanted == 1)");
    }

    #[test]
    fn capacity_shows_both_comparisons_with_the_headroom() {
        // 2023: a 500,000 room and 20,000 admissions a minute against
        // 600,000 listeners arriving at 50,000 a minute.
        let (o, e) = capacity(600_000.0, 50_000.0, 500_000.0, 20_000.0, 0.2);
        assert_eq!(o, Outcome::Fail);
        assert_eq!(
            e,
            "capacity 500,000 < needed 720,000 (600,000 + 20%); admission/min 20,000 < needed 60,000 (50,000 + 20%)"
        );
        let (o, e) = capacity(600_000.0, 50_000.0, 1_000_000.0, 60_000.0, 0.2);
        assert_eq!(o, Outcome::Pass, "{e}");
        assert!(e.starts_with("capacity 1,000,000 >= needed 720,000"), "{e}");
        // Enough room but too slow a door still fails.
        assert_eq!(
            capacity(600_000.0, 50_000.0, 1_000_000.0, 59_999.0, 0.2).0,
            Outcome::Fail
        );
    }

    #[test]
    fn http_checks_status_then_body() {
        let call = "GET platform/healthz";
        assert_eq!(
            http(call, 200, "ok\n", &[200], Some("ok")),
            (
                Outcome::Pass,
                "GET platform/healthz → 200, body contains \"ok\"".into()
            )
        );
        assert_eq!(
            http(call, 503, "", &[200, 204], None),
            (
                Outcome::Fail,
                "GET platform/healthz → 503 (wanted 200 or 204)".into()
            )
        );
        assert_eq!(http(call, 200, "down", &[200], Some("ok")).0, Outcome::Fail);
    }

    #[test]
    fn runbooks_are_ready_only_when_loaded_and_tested_green() {
        use RunbookState::*;
        let ok = (
            "a".to_owned(),
            Tested {
                passed: 2,
                failed: 0,
            },
        );
        assert_eq!(
            runbooks(std::slice::from_ref(&ok)),
            (Outcome::Pass, "a: 2 test(s) pass".into())
        );
        for (bad, said) in [
            (Missing, "b: not loaded"),
            (
                Tested {
                    passed: 0,
                    failed: 0,
                },
                "b: no tests",
            ),
            (
                Tested {
                    passed: 1,
                    failed: 1,
                },
                "b: 1 of 2 test(s) fail",
            ),
        ] {
            let (o, e) = runbooks(&[ok.clone(), ("b".into(), bad)]);
            assert_eq!(o, Outcome::Fail);
            assert_eq!(e, format!("a: 2 test(s) pass; {said}"));
        }
    }
}
