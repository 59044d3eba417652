//! The main job end to end: `firebreak demo`'s loop (simulator, scrape,
//! rules, dispatch, runbooks, chat, store) replays 2023-05-24 and beats
//! 2023's outcome.

mod common;

use common::Buf;
use firebreak::demo::{DemoOptions, run};
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
        .filter(|e| e.kind == "run_succeeded")
        .map(|e| e.text.as_str())
        .collect();
    assert!(
        runs.iter()
            .any(|t| t.starts_with("runbook move-to-secondary-room succeeded")),
        "{out}"
    );
    assert!(
        runs.iter()
            .any(|t| t.starts_with("runbook mute-feedback-speaker succeeded")),
        "{out}"
    );
    assert!(!out.contains("failed"), "nothing failed:\n{out}");
    // One incident for the event: the speaker's alert joined it.
    assert_eq!(report.incidents.len(), 1, "{out}");
    let review = &report.incidents[0];
    // From T-60m: the checklist said NO-GO at T-1h and again at T-10m,
    // on time, and nobody acted on it, as in 2023.
    let checklists: Vec<(&str, bool)> = review
        .entries
        .iter()
        .filter(|e| e.kind == "checklist")
        .map(|e| (e.actor.as_str(), e.text.contains("NO-GO")))
        .collect();
    assert_eq!(
        checklists,
        [("schedule T-1h", true), ("schedule T-10m", true)],
        "{out}"
    );
    // The review reads the incident the way `firebreak timeline` does:
    // detected, mitigated and resolved, the move before the room filled.
    assert!(review.time_to_detect().is_some(), "{out}");
    assert!(review.time_to_mitigate().is_some(), "{out}");
    assert!(review.resolved.is_some(), "{out}");
    assert!(review.still_firing().is_empty(), "{out}");

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
