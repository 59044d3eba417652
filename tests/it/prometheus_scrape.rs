//! A real Prometheus (Debian's 2.42, installed by `.ci/run`) scrapes a
//! standalone `firebreak sim`: the simulator runs on its own, and its
//! exposition is valid for the real thing, not just for our parser.

use crate::common::{eventually, start_prometheus, start_sim};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_standalone_simulator() {
    let (_sim, sim_addr) = start_sim(&["--speed", "60"]);
    let dir = tempfile::tempdir().unwrap();
    let Some((_prom, port)) = start_prometheus(dir.path(), &sim_addr) else {
        return;
    };

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
    let up = eventually(30, || async {
        query("up{job=\"sim\"}")
            .await
            .filter(|r| r.first().is_some_and(|s| s["value"][1] == "1"))
    })
    .await;
    assert!(
        up.is_some(),
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
    let feedback = query("live_speaker_feedback_level").await.unwrap();
    assert!(
        feedback.iter().any(|s| s["metric"]["speaker"] == "host"),
        "{feedback:?}"
    );
    // Every sample exposed was ingested: none dropped for bad names or values.
    let dropped = query(
        "scrape_samples_post_metric_relabeling{job=\"sim\"} - scrape_samples_scraped{job=\"sim\"}",
    )
    .await
    .unwrap();
    assert_eq!(
        dropped[0]["value"][1], "0",
        "Prometheus dropped samples: {dropped:?}"
    );
}
