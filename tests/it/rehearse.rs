//! `firebreak rehearse` through the real binary: the scenario suite under
//! `tests/scenarios/` passes as a whole, and a rehearsal that misses what
//! its scenario expects fails the set with the reason.
//!
//! `tests/scenarios/pending/` holds scenarios the bot does not yet pass
//! (see the table in docs/rehearsals.md); they are not played here.

use std::path::{Path, PathBuf};
use std::process::Command;

fn rehearse(files: &[PathBuf], speed: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .arg("rehearse")
        .args(files)
        .args(["--speed", speed, "--jobs", "2"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn suite() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_scenario_suite_passes() {
    let files = suite();
    assert!(files.len() >= 6, "{files:?}");
    let (code, out) = rehearse(&files, "60");
    assert_eq!(code, 0, "{out}");
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.ends_with(" PASS") || l.ends_with(" FAIL"))
        .collect();
    assert_eq!(rows.len(), files.len(), "{out}");
    assert!(rows.iter().all(|r| r.ends_with(" PASS")), "{out}");
    assert!(
        out.contains(&format!("{} passed, 0 failed", files.len())),
        "{out}"
    );
}

#[test]
fn a_missed_expectation_fails_the_set_and_says_why() {
    // Two minutes of the 2023 launch around its start: nothing saturates,
    // so a move wanted within a minute never comes.
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/2023-launch-short.yaml"),
    )
    .unwrap();
    let cut = text.find("\nexpect:").unwrap();
    let short = text[..cut]
        .replace("start: 2023-05-24T21:50:00Z", "start: 2023-05-24T21:59:00Z")
        .replace("duration: 50m", "duration: 2m")
        + "\nexpect:\n  moved: {within: 1m, to_account: cohost}\n  crashed: false\n";
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("too-soon.yaml");
    std::fs::write(&f, short).unwrap();
    let (code, out) = rehearse(&[f], "60");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("too-soon"), "{out}");
    assert!(out.contains(" FAIL"), "{out}");
    assert!(out.contains("    moved: never moved"), "{out}");
    assert!(out.contains("0 passed, 1 failed"), "{out}");
}

#[test]
fn a_broken_scenario_is_refused_before_anything_plays() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("broken.yaml");
    std::fs::write(&f, "name: x\nexpect: {moved: maybe}\n").unwrap();
    let (code, out) = rehearse(&[f], "60");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("broken.yaml"), "{out}");
}
