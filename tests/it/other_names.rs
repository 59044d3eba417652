//! A night nobody rehearsed: the embedded launch with every account, room,
//! event and speaker renamed, replayed with the shipped rules and runbooks.
//! The bot has to find the event's secondary account and its speakers on
//! the platform; a runbook that names the 2023 scenario's ids fails here.

use crate::common::Buf;
use firebreak::demo::{DemoOptions, run_scenario};
use firebreak::sim::Scenario;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_move_goes_to_the_secondary_account_the_event_names() {
    let scenario = Scenario::load(
        "other-names.yaml",
        include_str!("../scenarios/other-names.yaml"),
    )
    .unwrap();
    // Nothing of the embedded scenario's names is left to match by luck.
    let builtin = Scenario::builtin();
    for a in &builtin.accounts {
        assert!(scenario.account(&a.id).is_none(), "{} is left", a.id);
    }
    assert_ne!(scenario.event.id, builtin.event.id);
    assert_ne!(scenario.event.room, builtin.event.room);
    // Two accounts could take the event; the event names one.
    assert_eq!(scenario.event.secondary_account, "harbour-radio");
    assert!(scenario.account("relay-fm").is_some());

    let buf = Buf::default();
    let report = run_scenario(
        scenario,
        DemoOptions {
            speed: 120.0,
            seed: 42,
            console_input: false,
            store: None,
            quiet_after: None,
        },
        Box::new(buf.clone()),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();

    assert!(!out.contains("unknown account"), "{out}");
    let ev = &report.sim.event;
    assert_eq!(ev.moves.len(), 1, "{out}");
    assert_eq!(ev.account, "harbour-radio", "{out}");
    assert_eq!(ev.room, "harbour-radio-1", "{out}");
    assert!(!ev.crashed, "{out}");
    assert!(
        report.kept_ratio() > 0.85,
        "kept {:.2}\n{out}",
        report.kept_ratio()
    );
    let runs: Vec<&str> = report
        .incidents
        .iter()
        .flat_map(|r| r.entries.iter())
        .filter(|e| {
            e.kind == firebreak::timeline::Kind::RunEnded(firebreak::timeline::Outcome::Succeeded)
        })
        .filter_map(|e| e.about.runbook.as_deref())
        .collect();
    for runbook in ["move-to-secondary-room", "mute-feedback-speaker"] {
        assert!(runs.contains(&runbook), "{runbook} did not succeed:\n{out}");
    }
    // The speaker who fed back is this night's host, named by the alert.
    let host = report
        .sim
        .rooms
        .iter()
        .flat_map(|r| r.speakers.iter())
        .find(|s| s.id == "dj-ola")
        .expect("the host is on stage");
    assert!(host.muted, "{out}");
    for needle in [
        "Moving event premiere from room stage-1 (capacity 520000) to a new room of ",
        " on harbour-radio.",
        "Event premiere is now live in room harbour-radio-1 on harbour-radio",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}
