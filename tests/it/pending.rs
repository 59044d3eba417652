//! Issue 22, item 8: an alert waiting out its `for` is visible, as on
//! Prometheus's alerts page: the daemon's API lists it as pending, with
//! when it fires if its condition holds.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::blindness::{source, watching};
use crate::common::{eventually, get_json, start_daemon_loaded};

const RULES: &str = "groups:
  - name: filling
    interval: 500ms
    rules:
      - alert: RoomFilling
        expr: room_listeners > 5
        for: 1h
        annotations: {summary: 'room {{ $labels.room }} is filling'}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_alert_is_listed_with_when_it_fires() {
    firebreak::net::install_crypto_provider();
    let config = watching(&source(Arc::new(AtomicBool::new(true))).await);
    let loaded =
        firebreak::load::load(config, &[("alerts/filling.yml".into(), RULES.into())], &[]).unwrap();
    let (daemon, stop) = start_daemon_loaded(loaded, Box::new(std::io::sink())).await;
    let base = format!("http://{}", daemon.http_addr.unwrap());
    let http = firebreak::net::client().unwrap();
    let pending = eventually(10, || async {
        let body = get_json(&http, &format!("{base}/api/v1/alerts")).await?;
        body["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["state"] == "pending")
            .cloned()
    })
    .await;
    stop.cancel();
    daemon.wait().await.unwrap();
    let p = pending.expect("no pending alert was listed");
    assert_eq!(p["name"], "RoomFilling");
    assert_eq!(p["labels"]["room"], "main");
    assert_eq!(p["summary"], "room main is filling");
    let at = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(p[k].as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    assert_eq!(at("firesAt") - at("activeAt"), 3_600_000, "{p}");
}
