//! `--json` on `validate`, `plan`, `test rules` and `test runbooks`
//! through the real binary: stdout is one JSON document in the shape
//! docs/json.md gives, whether the command passes or fails, and the exit
//! code is the one the text output has. (`timeline --json` is checked on
//! the demo's store in `demo.rs`.)

use std::path::Path;

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn json_of(dir: &Path, args: &[&str]) -> (i32, Value) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(args)
        .current_dir(dir)
        .env_remove("FIREBREAK_CONFIG")
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn validate_json_places_every_error_and_counts_the_rest() {
    let (code, v) = json_of(
        Path::new(ROOT),
        &["validate", "alerts", "runbooks", "--json"],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["runbooks"], 5, "{v}");
    assert_eq!(v["diagnostics"], Value::Array(vec![]));

    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("bad.yaml"),
        "kind: runbook\nname: bad\ntrigger: {manual: true}\nsteps:\n  - id: a\n    acton: chat\n",
    )
    .unwrap();
    let (code, v) = json_of(tmp.path(), &["validate", "bad.yaml", "--json"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["ok"], false);
    let d = v["diagnostics"].as_array().unwrap();
    let typo = d
        .iter()
        .find(|d| d["field"] == "steps[0].acton")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(typo["file"], "bad.yaml");
    assert_eq!(typo["line"], 6);
    assert_eq!(typo["column"], 5);
    assert_eq!(typo["severity"], "error");
    assert!(
        typo["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `action`"),
        "{typo}"
    );
}

#[test]
fn plan_json_gives_each_step_its_rendered_call() {
    let (code, v) = json_of(
        Path::new(ROOT),
        &[
            "plan",
            "mute-feedback-speaker",
            "room=main",
            "speaker=a/b",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["runbook"], "mute-feedback-speaker");
    assert_eq!(v["inputs"][0]["name"], "room");
    assert_eq!(v["inputs"][0]["source"], "given");
    let mute = &v["steps"][0];
    assert_eq!(mute["id"], "mute");
    assert_eq!(mute["action"], "http");
    assert_eq!(
        mute["url"], "http://127.0.0.1:9100/api/v1/rooms/main/speakers/a%2Fb/mute",
        "a label is one encoded path segment: {mute}"
    );
    assert_eq!(mute["with"]["target"], "platform");
    assert_eq!(v["policy"]["cooldown"], "5m");
}

#[test]
fn test_rules_json_reports_each_failure_with_its_kind() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(
        d.join("r.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: Up\n        expr: up == 1\n",
    )
    .unwrap();
    std::fs::write(
        d.join("r.test.yml"),
        "rule_files: [r.yml]\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'up{job=\"a\"}'\n        values: '1x5'\n    alert_rule_test:\n      - eval_time: 2m\n        alertname: Up\n",
    )
    .unwrap();
    let (code, v) = json_of(d, &["test", "rules", "r.test.yml", "--json"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["ok"], false);
    let f = &v["files"][0]["groups"][0]["failures"][0];
    assert_eq!(f["kind"], "alert", "{v}");
    assert!(
        f["message"].as_str().unwrap().contains("alertname: Up"),
        "{f}"
    );

    let (code, v) = json_of(
        Path::new(ROOT),
        &[
            "test",
            "rules",
            "alerts/live-event.rules.test.yml",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["files"][0]["ok"], true);
}

#[test]
fn test_runbooks_json_counts_cases_and_keeps_a_bad_file_apart() {
    let (code, v) = json_of(Path::new(ROOT), &["test", "runbooks", "--json"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true);
    assert!(v["passed"].as_u64().unwrap() >= 20, "{v}");
    assert_eq!(v["failed"], 0);

    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("t.test.yaml"),
        "kind: runbook_test\nrunbook: nowhere.yaml\ntests:\n  - name: x\n    expect: {outcome: succeeded}\n",
    )
    .unwrap();
    let (code, v) = json_of(tmp.path(), &["test", "runbooks", ".", "--json"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["ok"], false);
    let errors = v["files"][0]["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e.as_str().unwrap().contains("nowhere.yaml")),
        "{v}"
    );
}
