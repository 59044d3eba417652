//! A real Prometheus (Debian's 2.42, installed by `.ci/run`) scrapes
//! `firebreak sim`: the exposition is valid for the real thing, not just
//! for our parser.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use firebreak::clock::Clock;
use firebreak::sim::{Scenario, Sim, SimOptions};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_simulator() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install Debian's prometheus package (see .ci/run)"
        );
        eprintln!("SKIPPED: `prometheus` is not installed (apt-get install prometheus)");
        return;
    }
    let scenario = Scenario::builtin();
    // Start at the scheduled start so listeners are already arriving.
    let clock = Clock::scaled(scenario.scheduled_start, 60.0);
    let sim = Sim::new(
        SimOptions {
            scenario: scenario.clone(),
            seed: 7,
        },
        clock,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(sim.clone().serve(listener, stop.clone()));

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: sim\n    static_configs:\n      - targets: ['{sim_addr}']\n"),
    )
    .unwrap();
    let port = free_port();
    let _prom = KillOnDrop(
        Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );

    let http = firebreak::net::client().unwrap();
    let query = |q: &'static str| {
        let http = http.clone();
        async move {
            let r = http
                .get(format!("http://127.0.0.1:{port}/api/v1/query"))
                .query(&[("query", q)])
                .send()
                .await
                .ok()?;
            let v: Value = r.json().await.ok()?;
            v["data"]["result"].as_array().cloned()
        }
    };
    // Up to 30s for Prometheus to start and scrape twice.
    let mut up = None;
    for _ in 0..150 {
        if let Some(r) = query("up{job=\"sim\"}").await
            && let Some(s) = r.first()
        {
            up = s["value"][1].as_str().map(str::to_owned);
            if up.as_deref() == Some("1") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        up.as_deref(),
        Some("1"),
        "Prometheus never scraped the simulator successfully"
    );

    let listeners = query("live_room_listeners").await.unwrap();
    assert!(
        listeners
            .iter()
            .any(|s| s["metric"]["room"] == "main" && s["metric"]["event"] == "launch"),
        "{listeners:?}"
    );
    let buckets = query("live_stream_latency_seconds_bucket{le=\"+Inf\"}")
        .await
        .unwrap();
    assert!(!buckets.is_empty(), "histogram buckets missing");
    let dropped = query(
        "scrape_samples_post_metric_relabeling{job=\"sim\"} - scrape_samples_scraped{job=\"sim\"}",
    )
    .await
    .unwrap();
    assert_eq!(
        dropped[0]["value"][1], "0",
        "Prometheus dropped samples: {dropped:?}"
    );

    stop.cancel();
    server.await.unwrap().unwrap();
}
