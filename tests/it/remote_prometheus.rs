//! Rules evaluated through a real Prometheus's HTTP API: Debian's
//! Prometheus 2.42 scrapes `firebreak sim`, and `firebreak run` (with
//! `sources.prometheus`) queries it, decides and mitigates.

use crate::common::{host_muted, run_ended, start_bot, start_prometheus, start_sim, stop_bot};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_read_through_the_prometheus_api_and_mitigate() {
    let (_sim, sim_addr) = start_sim(&["--speed", "1", "--from", "25s"]);
    let dir = tempfile::tempdir().unwrap();
    let Some((_prom, prom_port)) = start_prometheus(dir.path(), &sim_addr) else {
        return;
    };
    let root = env!("CARGO_MANIFEST_DIR");
    let bot = start_bot(
        dir.path(),
        &format!(
            "sources:\n  prometheus:\n    url: http://127.0.0.1:{prom_port}\n    timeout: 5s\nrules:\n  paths: ['{root}/alerts']\nrunbooks:\n  paths: ['{root}/runbooks']\ntargets:\n  platform: {{url: 'http://{sim_addr}'}}\nstore:\n  url: sqlite://{}\nchat:\n  channel: '#test'\n",
            dir.path().join("fb.db").display()
        ),
    );
    let muted = host_muted(&sim_addr, 75).await;
    let ended = run_ended(&dir.path().join("fb.db"), "mute-feedback-speaker", 20).await;
    let (status, out, err) = stop_bot(bot);
    assert!(
        muted,
        "the host was never muted\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{err}");
    assert!(out.contains("• SpeakerFeedback [critical]"), "{out}");
    assert_eq!(ended.as_deref(), Some("succeeded"), "{out}");
    assert!(
        out.contains("runbook *mute-feedback-speaker* succeeded"),
        "{out}"
    );
    // Nothing was read locally: no scrape happened in the bot.
    assert!(!err.contains("scrape failed"), "{err}");
}
