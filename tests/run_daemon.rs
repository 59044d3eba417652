//! `firebreak run` as a process, against a standalone `firebreak sim`:
//! it loads a config file, watches, mitigates, and drains on SIGTERM;
//! then `firebreak timeline` reads the incident back from its store.

mod common;

use std::process::Command;

use common::{host_muted, run_ended, start_bot, start_sim, stop_bot};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_mutes_the_feedback_and_drains_on_sigterm() {
    // The bot runs on the real clock, so the simulator does too, starting
    // 25s after the scheduled start: the host feeds back from 18:00:30.
    let (_sim, sim_addr) = start_sim(&["--speed", "1", "--from", "25s"]);
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let config = format!(
        "sources:\n  scrape:\n    - name: sim\n      url: http://{sim_addr}/metrics\n      interval: 1s\n      timeout: 1s\nrules:\n  paths: ['{root}/alerts']\nrunbooks:\n  paths: ['{root}/runbooks']\ntargets:\n  sim: {{url: 'http://{sim_addr}'}}\nstore:\n  url: sqlite://{}\nchat:\n  channel: '#test'\n",
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
