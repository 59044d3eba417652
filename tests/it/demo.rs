//! The main job end to end: `firebreak demo`'s loop (simulator, scrape,
//! rules, dispatch, runbooks, chat, store) replays 2023-05-24 and beats
//! 2023's outcome.

use crate::common::Buf;
use firebreak::demo::{DemoOptions, run};
use firebreak::incident::Review;
use firebreak::timeline::TimelineEntry;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_moves_the_event_before_saturation_and_keeps_the_audience() {
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("demo.db");
    let buf = Buf::default();
    let opts = DemoOptions {
        speed: 120.0,
        seed: 42,
        console_input: false,
        store: Some(kept.clone()),
        // At 120x the hour before the start is half a minute of quiet.
        quiet_after: Some(std::time::Duration::from_secs(4)),
    };
    let report = run(
        opts.clone(),
        Box::new(buf.clone()),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();

    // Detected and mitigated within minutes of the start, not half an hour.
    let mitigate = report.time_to_mitigate_ms.expect(&out);
    assert!(
        mitigate < 10 * 60_000,
        "mitigated after {mitigate}ms\n{out}"
    );
    assert!(report.time_to_detect_ms.expect(&out) <= mitigate);
    assert!(report.time_to_move_ms.expect(&out) < 10 * 60_000, "{out}");
    assert!(report.time_to_mute_ms.expect(&out) < 5 * 60_000, "{out}");
    // The event lives in the secondary account's room and kept its audience.
    let ev = &report.sim.event;
    assert_eq!(ev.account, "cohost", "{out}");
    assert!(!ev.crashed, "{out}");
    assert!(
        report.kept_ratio() > 0.85,
        "kept {:.2}\n{out}",
        report.kept_ratio()
    );
    // Exactly one move: the concurrency key held across repeated alerts.
    assert_eq!(ev.moves.len(), 1, "{out}");

    // Both runbooks ran to the end, including the move's verification.
    let runs: Vec<&str> = report
        .incidents
        .iter()
        .flat_map(|r| r.entries.iter())
        .filter(|e| {
            e.kind == firebreak::timeline::Kind::RunEnded(firebreak::timeline::Outcome::Succeeded)
        })
        .filter_map(|e| e.about.runbook.as_deref())
        .collect();
    assert!(runs.contains(&"move-to-secondary-room"), "{out}");
    assert!(runs.contains(&"mute-feedback-speaker"), "{out}");
    assert!(!out.contains("failed"), "nothing failed:\n{out}");
    // One incident for the event: the speaker's alert joined it.
    assert_eq!(report.incidents.len(), 1, "{out}");
    let review = &report.incidents[0];
    // From T-60m: the checklist said NO-GO at T-1h and again at T-10m,
    // on time, and nobody acted on it, as in 2023.
    let checklists: Vec<(String, bool)> = review
        .entries
        .iter()
        .filter(|e| e.kind == firebreak::timeline::Kind::Checklist)
        .map(|e| (e.by.label(), e.text.contains("NO-GO")))
        .collect();
    assert_eq!(
        checklists,
        [
            ("schedule T-1h".to_owned(), true),
            ("schedule T-10m".to_owned(), true)
        ],
        "{out}"
    );
    // The review reads the incident the way `firebreak timeline` does:
    // detected, mitigated and resolved, the move before the room filled.
    assert!(review.time_to_detect().is_some(), "{out}");
    assert!(review.time_to_mitigate().is_some(), "{out}");
    assert!(review.resolved.is_some(), "{out}");
    assert!(review.still_firing().is_empty(), "{out}");
    // The review reads the entries' fields, never their text: every
    // message reworded, it concludes the same.
    assert_eq!(&reworded(review), review);
    assert_eq!(
        reworded(review).markdown(&|t| t.to_string()),
        review.markdown(&|t| t.to_string())
    );

    // What people saw.
    let look_up = format!("firebreak timeline launch --store {}", kept.display());
    for needle in [
        "• ListenerCapacityBreachPredicted [critical]",
        "runbook *move-to-secondary-room* started",
        "`move_event` (http) POST platform/api/v1/events/launch/move → 200",
        "`recovered` (wait) `sum(live_room_listeners{room=\"cohost-1\"}) >=",
        "runbook *mute-feedback-speaker* started",
        &format!("--- timeline: `{look_up}` (it prints times in UTC) ---"),
        "listeners kept",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }

    // Issue 22, item 10. The outcome's time to mitigate is the review's
    // `mitigated`: the same moment, printed in both.
    let (at, rb) = review.mitigated.clone().expect(&out);
    assert_eq!(
        report.time_to_mitigate_ms,
        Some(at - report.sim.scheduled_start)
    );
    assert_eq!(report.mitigated_by.as_deref(), Some(rb.as_str()));
    let clock = |line: &str| line.split('(').nth(1).map(|t| t[..8].to_owned());
    let line_of = |start: &str| {
        out.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no {start:?} line in:\n{out}"))
    };
    let review_at = line_of("  mitigated   ")["  mitigated   ".len()..][..8].to_owned();
    assert_eq!(clock(line_of("time to mitigate")), Some(review_at), "{out}");

    // Nothing of a run is said after the run's end: a card that names a
    // run's last step (RECOVERED, RESOLVED) comes after that step's line.
    let chat = &out[..out.find("--- timeline").unwrap()];
    let mut cards = 0;
    for (at, _) in chat.match_indices(", last step `") {
        let rest = &chat[at + ", last step `".len()..];
        let step = &rest[..rest.find('`').unwrap()];
        let said = [format!("└ ✓ `{step}`"), format!("└ ✗ `{step}`")];
        assert!(
            said.iter().any(|l| chat[..at].contains(l.as_str())),
            "a card names `{step}` before its line:\n{chat}"
        );
        cards += 1;
    }
    assert!(cards > 0, "{chat}");

    // The quiet hour before the start says where the replay stands.
    let first_no_go = chat.find("*NO-GO*").unwrap();
    let second_check = chat.find("started by schedule T-10m").unwrap();
    let quiet = &chat[first_no_go..second_check];
    assert!(
        quiet.contains(" ET  · replaying: 0 listening; nothing firing, no run going; next: checklist launch-readiness (T-10m) at 17:50:00 ET"),
        "no word during the quiet hour:\n{quiet}"
    );

    // The timeline printed can be looked up afterwards, from the store the
    // demo named.
    assert_eq!(report.store.as_deref(), Some(kept.as_path()));
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(["timeline", "launch", "--store"])
        .arg(&kept)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{again:?}");
    assert!(
        printed.starts_with(&format!(
            "incident launch ({} timeline entries)",
            review.entries.len()
        )),
        "{printed}"
    );
    // The same, as JSON: the list, then the review with every entry.
    let json = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"))
            .args(args)
            .arg("--store")
            .arg(&kept)
            .arg("--json")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let list = json(&["timeline"]);
    assert_eq!(list["incidents"][0]["incident"], "launch", "{list}");
    assert!(list["incidents"][0]["outcome"].is_string(), "{list}");
    let one = json(&["timeline", "launch"]);
    assert_eq!(
        one["entries"].as_array().map(Vec::len),
        Some(review.entries.len()),
        "{one}"
    );
    assert_eq!(
        one["mitigated"]["runbook"], "mute-feedback-speaker",
        "{one}"
    );
    assert!(
        one["detected"]
            .as_str()
            .is_some_and(|t| t.starts_with("2023-05-24T22:")),
        "{one}"
    );
    assert!(
        one["audience"]["peak"]["count"].as_u64().unwrap_or(0) > 500_000,
        "{one}"
    );
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(["timeline", "--store"])
        .arg(dir.path().join("nope.db"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("the file does not exist"),
        "{missing:?}"
    );
    // A file that holds a store already is not the demo's to take.
    let refused = run(opts, Box::new(std::io::sink()), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("already exists"), "{refused}");
}

/// `r` read again from its entries with every message reworded (reversed,
/// so no word is where it was), then given its words back to compare.
fn reworded(r: &Review) -> Review {
    let entries = r
        .entries
        .iter()
        .map(|e| TimelineEntry {
            text: format!("reworded: {}", e.text.chars().rev().collect::<String>()),
            ..e.clone()
        })
        .collect();
    let mut again = Review::new(&r.incident, entries);
    again.audience = r.audience.clone();
    again.entries = r.entries.clone();
    if let Some(f) = &mut again.first_response {
        f.text = r
            .entries
            .iter()
            .find(|e| e.seq == f.seq)
            .unwrap()
            .text
            .clone();
    }
    again
}
