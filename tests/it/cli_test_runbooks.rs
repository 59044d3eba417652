//! `firebreak test runbooks` end to end: the shipped runbook tests pass,
//! and a test that expects the wrong thing fails with a diff that says
//! what differed.

use std::process::Command;

fn firebreak(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run firebreak");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_shipped_runbook_tests_pass() {
    let (ok, out) = firebreak(&["test", "runbooks"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Unit Testing:  runbooks/tests/move-to-secondary-room.test.yaml"),
        "{out}"
    );
    assert!(
        out.contains("  PASS a move that keeps failing stops the run and calls a person"),
        "{out}"
    );
    assert!(
        out.contains("  PASS mutes the speaker and tells the host"),
        "{out}"
    );
    // Hostile labels: encoded into the path, escaped into PromQL.
    for name in [
        "a speaker label cannot change which resource is muted",
        "a speaker label of `..` mutes nothing",
        "a room label that rewrites the query does not verify",
    ] {
        assert!(out.contains(&format!("  PASS {name}")), "{out}");
    }
    assert!(!out.contains("FAIL"), "{out}");
}

const WRONG: &str = r#"kind: runbook_test
runbook: RUNBOOK
tests:
  - name: expects the wrong things
    alert:
      labels: {alertname: SpeakerFeedback, room: main, speaker: host}
      value: 0.5
    stubs:
      - method: POST
        path: /api/v1/rooms/main/speakers/guest/mute
    expect:
      outcome: succeeded
      steps:
        - mute: done
        - tell_host: done
      calls:
        - {method: POST, path: /api/v1/rooms/main/speakers/host/mute, body: {muted: false}}
      chat: ["Muted nobody"]
"#;

#[test]
fn a_wrong_expectation_fails_with_a_diff() {
    let dir = tempfile::tempdir().unwrap();
    let runbook = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("runbooks/mute-feedback-speaker.yaml");
    let file = dir.path().join("wrong.test.yaml");
    std::fs::write(&file, WRONG.replace("RUNBOOK", runbook.to_str().unwrap())).unwrap();
    let (ok, out) = firebreak(&["test", "runbooks", file.to_str().unwrap()]);
    assert!(!ok, "{out}");
    for want in [
        "  FAIL expects the wrong things",
        // The stub is for another speaker: the real call is unanswered.
        "calls no stub answers (each got 404; add a stub or fix the path):\n      POST /api/v1/rooms/main/speakers/host/mute (target platform) {\"muted\":true}",
        "    outcome:\n        exp: succeeded\n        got: failed (step `mute` failed:",
        "    - exp tell_host: done",
        "    + got mute: failed  (POST platform/api/v1/rooms/main/speakers/host/mute returned 404 Not Found",
        "    - exp POST /api/v1/rooms/main/speakers/host/mute body ⊇ {\"muted\":false}",
        "    chat: no message contains \"Muted nobody\"",
        "0 passed, 1 failed",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[test]
fn an_invalid_test_file_is_reported_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let runbook = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("runbooks/mute-feedback-speaker.yaml");
    let file = dir.path().join("bad.test.yaml");
    let text = WRONG
        .replace("RUNBOOK", runbook.to_str().unwrap())
        .replace("- mute: done", "- mutee: done");
    std::fs::write(&file, text).unwrap();
    let (ok, out) = firebreak(&["test", "runbooks", file.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("bad.test.yaml:14:11: tests[0].expect.steps: runbook mute-feedback-speaker has no step `mutee` (did you mean `mute`?)"),
        "{out}"
    );
    // `firebreak validate` reads runbook tests too.
    let (ok, out) = firebreak(&["validate", file.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(out.contains("has no step `mutee`"), "{out}");
    // `step/called` names a step of a runbook that a `runbook` step calls
    // (the shipped join-failures tests use it); `mute` calls none.
    let text = WRONG
        .replace("RUNBOOK", runbook.to_str().unwrap())
        .replace("- mute: done", "- mute/room: done");
    std::fs::write(&file, text).unwrap();
    let (ok, out) = firebreak(&["validate", file.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(out.contains("has no step `mute/room`"), "{out}");
}

#[test]
fn plan_prints_the_steps_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let alert = dir.path().join("alert.json");
    std::fs::write(
        &alert,
        r#"{"labels": {"alertname": "SpeakerFeedback", "room": "main", "speaker": "host"}, "value": 0.9}"#,
    )
    .unwrap();
    let (ok, out) = firebreak(&[
        "plan",
        "mute-feedback-speaker",
        "--alert",
        alert.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains(
            "POST http://127.0.0.1:9100/api/v1/rooms/main/speakers/host/mute (target platform)"
        ),
        "{out}"
    );
    let (ok, out) = firebreak(&["plan", "mute-feedbak-speaker"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("did you mean \"mute-feedback-speaker\"?"),
        "{out}"
    );
    let (ok, out) = firebreak(&["plan", "mute-feedback-speaker", "room=main"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(
            "input `speaker` (string) has no value and no default: give it as `speaker=VALUE`"
        ),
        "{out}"
    );
}
