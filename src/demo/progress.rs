//! The demo's line for its quiet stretches (an hour of the replay passes
//! before the event starts): where the replay stands and what it waits
//! for, so a person watching knows it has not hung. Model: no I/O; the
//! caller gathers the figures and prints the line.

use crate::checklist::Checklist;
use crate::duration::Millis;

/// Something the replay is known to wait for, and when it comes.
#[derive(Clone, Debug, PartialEq)]
pub struct Milestone {
    pub at: Millis,
    pub what: String,
}

/// What the replay waits for, soonest first: each scheduled checklist
/// run (its slots before its event's `start`), the event's scheduled
/// start and the end of the replay.
pub fn milestones(
    checklists: &[std::sync::Arc<Checklist>],
    scheduled_start: Millis,
    end: Millis,
) -> Vec<Milestone> {
    let mut out = Vec::new();
    for list in checklists {
        let Some(start) = list
            .event
            .get("start")
            .and_then(|v| v.as_str())
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.timestamp_millis())
        else {
            continue;
        };
        for d in &list.schedule {
            out.push(Milestone {
                at: start - d.as_millis() as Millis,
                what: format!("checklist {} (T-{d})", list.name),
            });
        }
    }
    out.push(Milestone {
        at: scheduled_start,
        what: "the event's scheduled start".into(),
    });
    out.push(Milestone {
        at: end,
        what: "the end of the replay".into(),
    });
    out.sort_by_key(|m| m.at);
    out
}

/// Where the replay stands at `now`.
#[derive(Clone, Debug, PartialEq)]
pub struct Standing {
    pub now: Millis,
    /// Listening to the event, as the platform counts them.
    pub listening: u64,
    pub firing: usize,
    pub running: usize,
    /// Runs waiting for a person's approval.
    pub waiting: usize,
}

/// Milestones named after the first; the end is always named.
const NEXT: usize = 2;

/// One line: `17:10:00 ET  · replaying: 0 listening; nothing firing, no
/// run going; next: checklist launch-readiness (T-10m) at 17:50:00 ET,
/// the event's scheduled start at 18:00:00 ET; the replay ends at
/// 18:40:00 ET`.
pub fn line(s: &Standing, ahead: &[Milestone], time: &dyn Fn(Millis) -> String) -> String {
    let n = |v: u64| crate::human::value(v as f64);
    let mut doing = Vec::new();
    if s.firing == 0 {
        doing.push("nothing firing".to_owned());
    } else {
        doing.push(format!("{} alert(s) firing", s.firing));
    }
    if s.running == 0 {
        doing.push("no run going".to_owned());
    } else {
        doing.push(format!("{} run(s) going", s.running));
    }
    if s.waiting > 0 {
        doing.push(format!(
            "{} waiting for approval (`approve` answers)",
            s.waiting
        ));
    }
    let mut out = format!(
        "{}  · replaying: {} listening; {}",
        time(s.now),
        n(s.listening),
        doing.join(", ")
    );
    let next: Vec<String> = ahead
        .iter()
        .filter(|m| m.at > s.now)
        .take(NEXT)
        .filter(|m| m.what != "the end of the replay")
        .map(|m| format!("{} at {}", m.what, time(m.at)))
        .collect();
    if !next.is_empty() {
        out.push_str(&format!("; next: {}", next.join(", ")));
    }
    if let Some(end) = ahead.iter().rfind(|m| m.what == "the end of the replay") {
        out.push_str(&format!("; the replay ends at {}", time(end.at)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: Millis = 1_684_965_600_000;

    fn at(m: i64) -> String {
        format!("{:+}m", (m - START) / 60_000)
    }

    fn ahead() -> Vec<Milestone> {
        let list = crate::load::load_embedded(crate::config::Config::for_simulator("x:1"))
            .unwrap()
            .checklists;
        milestones(&list, START, START + 40 * 60_000)
    }

    #[test]
    fn the_embedded_night_waits_for_its_checklists_the_start_and_the_end() {
        let whats: Vec<(String, String)> =
            ahead().into_iter().map(|m| (at(m.at), m.what)).collect();
        assert_eq!(
            whats,
            [
                ("-60m".into(), "checklist launch-readiness (T-1h)".into()),
                ("-10m".into(), "checklist launch-readiness (T-10m)".into()),
                ("+0m".into(), "the event's scheduled start".into()),
                ("+40m".into(), "the end of the replay".into()),
            ]
        );
    }

    #[test]
    fn a_quiet_stretch_says_where_the_replay_stands_and_what_comes_next() {
        let quiet = Standing {
            now: START - 50 * 60_000,
            listening: 0,
            firing: 0,
            running: 0,
            waiting: 0,
        };
        assert_eq!(
            line(&quiet, &ahead(), &at),
            "-50m  · replaying: 0 listening; nothing firing, no run going; next: checklist launch-readiness (T-10m) at -10m, the event's scheduled start at +0m; the replay ends at +40m"
        );
        let busy = Standing {
            now: START + 20 * 60_000,
            listening: 588_000,
            firing: 1,
            running: 1,
            waiting: 1,
        };
        assert_eq!(
            line(&busy, &ahead(), &at),
            "+20m  · replaying: 588,000 listening; 1 alert(s) firing, 1 run(s) going, 1 waiting for approval (`approve` answers); the replay ends at +40m"
        );
    }
}
