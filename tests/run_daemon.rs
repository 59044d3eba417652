//! `firebreak run` as a process, against a standalone `firebreak sim`:
//! it loads a config file, watches, mitigates, and drains on SIGTERM.

mod common;

use common::{host_muted, run_ended, start_bot, start_sim, stop_bot};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_mutes_the_feedback_and_drains_on_sigterm() {
    // The bot runs on the real clock, so the simulator does too, starting
    // 25s after the scheduled start: the host feeds back from 18:00:30.
    let (_sim, sim_addr) = start_sim(&["--speed", "1", "--from", "25s"]);
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let bot = start_bot(
        dir.path(),
        &format!(
            "sources:\n  scrape:\n    - name: sim\n      url: http://{sim_addr}/metrics\n      interval: 1s\n      timeout: 1s\nrules:\n  paths: ['{root}/alerts']\nrunbooks:\n  paths: ['{root}/runbooks']\ntargets:\n  sim: {{url: 'http://{sim_addr}'}}\nstore:\n  url: sqlite://{}\nchat:\n  channel: '#test'\n",
            dir.path().join("fb.db").display()
        ),
    );
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
}
