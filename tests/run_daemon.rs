//! `firebreak run` as a process, against a standalone `firebreak sim`:
//! it loads a config file, watches, mitigates, and drains on SIGTERM.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{eventually, start_sim};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_mutes_the_feedback_and_drains_on_sigterm() {
    // The bot runs on the real clock, so the simulator does too, starting
    // 25s after the scheduled start: the host feeds back from 18:00:30.
    let (_sim, sim_addr) = start_sim(&["--speed", "1", "--from", "25s"]);
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let cfg = dir.path().join("firebreak.yaml");
    std::fs::write(
        &cfg,
        format!(
            "sources:\n  scrape:\n    - name: sim\n      url: http://{sim_addr}/metrics\n      interval: 1s\n      timeout: 1s\nrules:\n  paths: ['{root}/alerts']\n  evaluation_interval: 1s\nrunbooks:\n  paths: ['{root}/runbooks']\ntargets:\n  sim: {{url: 'http://{sim_addr}'}}\nstore:\n  url: sqlite://{}\nchat:\n  channel: '#test'\n",
            dir.path().join("fb.db").display()
        ),
    )
    .unwrap();
    let mut bot = Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start firebreak run");

    // Feedback from ~5s; the group evaluates every 15s and the rule
    // needs `for: 15s`, so it fires within ~35s.
    let http = firebreak::net::client().unwrap();
    let muted = eventually(60, || async {
        let v: Value = http
            .get(format!("http://{sim_addr}/api/v1/rooms/main"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let speakers = v["room"]["speakers"].as_array()?.clone();
        speakers
            .iter()
            .any(|s| s["id"] == "host" && s["muted"] == true)
            .then_some(())
    })
    .await;

    // SIGTERM: the bot stops taking work, flushes chat and exits 0.
    let pid = bot.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = bot.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut out = String::new();
    let mut err = String::new();
    bot.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    bot.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(
        muted.is_some(),
        "the host was never muted\nstdout:\n{out}\nstderr:\n{err}"
    );
    let status = status.unwrap_or_else(|| {
        let _ = bot.kill();
        panic!("firebreak run did not exit within 10s of SIGTERM\nstderr:\n{err}")
    });
    assert!(status.success(), "exit {status:?}\nstderr:\n{err}");
    assert!(out.contains("*SpeakerFeedback* [critical] firing"), "{out}");
    assert!(
        out.contains("runbook *mute-feedback-speaker* succeeded"),
        "chat was flushed before exit:\n{out}"
    );
    assert!(err.contains("shutting down"), "{err}");
}
