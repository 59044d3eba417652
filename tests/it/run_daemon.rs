//! `firebreak run` as a process, against a standalone `firebreak sim`:
//! it loads a config file, watches, mitigates, and drains on SIGTERM;
//! then `firebreak timeline` reads the incident back from its store. And
//! the same two processes on one accelerated clock, as a rehearsal.

use std::process::Command;

use crate::common::{
    eventually, get_json, host_muted, run_ended, start_bot, start_bot_with, start_sim, stop_bot,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_mutes_the_feedback_and_drains_on_sigterm() {
    // The bot runs on the real clock, so the simulator does too, starting
    // 25s after the scheduled start: the host feeds back from 18:00:30.
    let (_sim, sim_addr) = start_sim(&["--speed", "1", "--from", "25s"]);
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let config = format!(
        "sources:\n  scrape:\n    - name: sim\n      url: http://{sim_addr}/metrics\n      interval: 1s\n      timeout: 1s\nrules:\n  paths: ['{root}/alerts']\nrunbooks:\n  paths: ['{root}/runbooks']\ntargets:\n  platform: {{url: 'http://{sim_addr}'}}\nstore:\n  url: sqlite://{}\nchat:\n  channel: '#test'\n",
        dir.path().join("fb.db").display()
    );
    let bot = start_bot(dir.path(), &config);
    // Feedback from ~5s; the group evaluates every 15s and the rule needs
    // `for: 15s`, so it fires within ~35s.
    let muted = host_muted(&sim_addr, 60).await;
    let ended = run_ended(&dir.path().join("fb.db"), "mute-feedback-speaker", 20).await;
    let (status, out, err) = stop_bot(bot);
    assert!(
        muted,
        "the host was never muted\nstdout:\n{out}\nstderr:\n{err}"
    );
    let status = status.unwrap_or_else(|| {
        panic!("firebreak run did not exit within 10s of SIGTERM\nstderr:\n{err}")
    });
    assert!(status.success(), "exit {status:?}\nstderr:\n{err}");
    assert!(out.contains("• SpeakerFeedback [critical]"), "{out}");
    assert_eq!(ended.as_deref(), Some("succeeded"), "{out}");
    assert!(
        out.contains("runbook *mute-feedback-speaker* succeeded"),
        "chat was flushed before exit:\n{out}"
    );
    assert!(err.contains("shutting down"), "{err}");

    // The post-incident report, from the store the run left.
    let cfg = dir.path().join("timeline.yaml");
    std::fs::write(&cfg, &config).unwrap();
    let timeline = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_firebreak"))
            .arg("timeline")
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, list, _) = timeline(&[]);
    assert_eq!(code, Some(0));
    // The bot ran on the real clock; it stopped before the alert resolved.
    assert!(list.starts_with("launch\t"), "{list}");
    assert!(
        list.contains(" UTC\tongoing: still firing SpeakerFeedback; 1 runbook run(s) succeeded"),
        "{list}"
    );
    let (code, md, err) = timeline(&["launch", "--markdown"]);
    assert_eq!(code, Some(0), "{err}");
    for needle in [
        "# Incident `launch`: post-incident report",
        "| Detected (first alert fired) | ",
        "| Mitigated (runbook mute-feedback-speaker succeeded) |",
        " UTC | still firing |",
        "| mute-feedback-speaker | ",
        " | automatically | succeeded | ",
        "| alert began | automatically | SpeakerFeedback condition began (",
    ] {
        assert!(md.contains(needle), "missing {needle:?} in\n{md}");
    }
    // The rule holds 15s before firing: detection is measured from there.
    assert!(
        md.contains("Time to detect **15s**") || md.contains("Time to detect **16s**"),
        "{md}"
    );
    let (code, text, _) = timeline(&["launch"]);
    assert_eq!(code, Some(0));
    assert!(
        text.contains("  detected    20") && text.contains("resolved    not yet"),
        "{text}"
    );
    let (code, _, err) = timeline(&["lunch"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no incident \"lunch\"") && err.contains("known: launch"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_follows_a_fast_simulators_clock() {
    // The simulator replays the launch at 60x from T-10m; the bot follows
    // its clock, so a rule's `for: 30s` takes half a real second and the
    // whole first ten minutes of the night play in ten seconds.
    let (_sim, sim_addr) = start_sim(&["--speed", "60", "--from", "-10m"]);
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let config = format!(
        "sources:\n  scrape:\n    - name: sim\n      url: http://{sim_addr}/metrics\n      interval: 15s\n      timeout: 5s\nrules:\n  paths: ['{root}/alerts']\nrunbooks:\n  paths: ['{root}/runbooks']\ntargets:\n  platform: {{url: 'http://{sim_addr}'}}\nstore:\n  url: sqlite://{}\nchat:\n  channel: '#test'\n",
        dir.path().join("fb.db").display()
    );
    let url = format!("http://{sim_addr}");
    let bot = start_bot_with(dir.path(), &config, &["--clock-from", &url]);
    let http = firebreak::net::client().unwrap();
    // On the wall clock the feedback alone would take 10.5 minutes to
    // begin; at 60x the host is muted and the event moved within seconds.
    let moved = eventually(60, || async {
        let s = get_json(&http, &format!("{url}/api/v1/state")).await?;
        let muted = s["rooms"]
            .as_array()?
            .iter()
            .flat_map(|r| r["speakers"].as_array().cloned().unwrap_or_default())
            .any(|sp| sp["id"] == "host" && sp["muted"] == true);
        let moves = s["event"]["moves"].as_array()?.len();
        (muted && moves > 0).then_some(s["time_rfc3339"].clone())
    })
    .await;
    let (_, out, err) = stop_bot(bot);
    let at = moved.unwrap_or_else(|| {
        panic!("not muted and moved within 60s\nstdout:\n{out}\nstderr:\n{err}")
    });
    assert!(err.contains("following the simulator's clock"), "{err}");
    // Before the room would have saturated (about 18:10 ET, 22:10 UTC).
    assert!(at.as_str().unwrap() < "2023-05-24T22:08:00Z", "{at}");
}

#[test]
fn run_refuses_a_clock_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::common::free_port();
    let root = env!("CARGO_MANIFEST_DIR");
    let config = format!(
        "rules:\n  paths: ['{root}/alerts']\nrunbooks:\n  paths: ['{root}/runbooks']\ntargets:\n  platform: {{url: 'http://127.0.0.1:{port}'}}\nstore:\n  url: sqlite://{}\nchat:\n  channel: '#test'\n",
        dir.path().join("fb.db").display()
    );
    let url = format!("http://127.0.0.1:{port}");
    let bot = start_bot_with(dir.path(), &config, &["--clock-from", &url]);
    // Nothing listens there: it must stop at once, saying why.
    let out = bot.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("asking http://127.0.0.1:") && err.contains("for the time"),
        "{err}"
    );
}

#[test]
fn a_second_run_on_one_sqlite_store_refuses_to_start_and_names_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::common::free_port();
    let root = env!("CARGO_MANIFEST_DIR");
    // No listener: only the store stands between the two.
    let config = format!(
        "rules:\n  paths: ['{root}/alerts']\nrunbooks:\n  paths: ['{root}/runbooks']\ntargets:\n  platform: {{url: 'http://127.0.0.1:{port}'}}\nstore:\n  url: sqlite://{}\nchat:\n  channel: '#test'\n",
        dir.path().join("fb.db").display()
    );
    let first = start_bot(dir.path(), &config);
    let lock = dir.path().join("fb.db.lock");
    let held = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::fs::read_to_string(&lock).is_ok_and(|s| s.starts_with("pid "))
    });
    let first_pid = first.id();
    let out = start_bot(dir.path(), &config).wait_with_output().unwrap();
    let (_, _, first_err) = stop_bot(first);
    assert!(held, "the first never took the store\n{first_err}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "is in use by another firebreak (pid {first_pid}, since "
        )) && err.contains("a SQLite store serves one process"),
        "{err}"
    );
}

/// Issue 22, item 7: a store whose directory does not exist is said
/// once, plainly, before anything else fails on it.
#[test]
fn a_store_in_a_missing_directory_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let missing = dir.path().join("state");
    let config = format!(
        "rules:\n  paths: ['{root}/alerts']\nrunbooks:\n  paths: ['{root}/runbooks']\ntargets:\n  platform: {{url: 'http://127.0.0.1:9'}}\nstore:\n  url: sqlite://{}\nchat:\n  channel: '#test'\n",
        missing.join("fb.db").display()
    );
    let out = start_bot(dir.path(), &config).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    let said = format!("its directory {} does not exist", missing.display());
    assert_eq!(err.matches(&said).count(), 1, "{err}");
    assert_eq!(err.matches("does not exist").count(), 1, "said once: {err}");
    assert!(!err.contains("unable to open database file"), "{err}");
}
