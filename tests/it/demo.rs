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
    let buf = Buf::default();
    let report = run(
        DemoOptions {
            speed: 120.0,
            seed: 42,
            console_input: false,
        },
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
    for needle in [
        "• ListenerCapacityBreachPredicted [critical]",
        "runbook *move-to-secondary-room* started",
        "`move_event` (http) POST sim/api/v1/events/launch/move → 200",
        "`recovered` (wait) `sum(live_room_listeners{room=\"cohost-1\"}) >=",
        "runbook *mute-feedback-speaker* started",
        "--- timeline: `firebreak timeline launch` ---",
        "listeners kept",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
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
