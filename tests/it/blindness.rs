//! Issue 22, item 2: a bot that goes blind says so. Its only metrics
//! source stops answering and pushed alerts stop arriving (a dead-man's
//! switch): each is said in chat once, on the live incident's card, in
//! `/metrics` and by `/-/ready`; and each recovery is said once too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use firebreak::config::{Config, ScrapeTarget};
use firebreak::duration::PromDuration;

use crate::common::{Buf, eventually, start_daemon};

/// A metrics source that answers while `up` is set, and 503 otherwise.
pub(crate) async fn source(up: Arc<AtomicBool>) -> String {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let up = up.clone();
            async move {
                if up.load(Ordering::SeqCst) {
                    (StatusCode::OK, "room_listeners{room=\"main\"} 10\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance\n")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/metrics")
}

/// A config that scrapes `url` as target `src` every 300ms and listens on
/// a free port.
pub(crate) fn watching(url: &str) -> Config {
    let mut config = Config::for_simulator("127.0.0.1:9");
    config.scrape = vec![ScrapeTarget {
        name: "src".into(),
        url: url.parse().unwrap(),
        interval: PromDuration::from_millis(300),
        timeout: PromDuration::from_millis(300),
        labels: Default::default(),
    }];
    config.server.listen = Some("127.0.0.1:0".parse().unwrap());
    config
}

fn printed(buf: &Buf) -> String {
    String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blind_bot_says_so_once_on_the_card_in_metrics_and_readiness_and_when_it_sees_again() {
    firebreak::net::install_crypto_provider();
    let up = Arc::new(AtomicBool::new(true));
    let mut config = watching(&source(up.clone()).await);
    config.server.deadman = Some(PromDuration::from_secs(2));
    let out = Buf::default();
    let (daemon, stop) = start_daemon(config, Box::new(out.clone())).await;
    let base = format!("http://{}", daemon.http_addr.unwrap());
    let http = firebreak::net::client().unwrap();
    let ready = || async {
        let r = http.get(format!("{base}/-/ready")).send().await.ok()?;
        Some((r.status().as_u16(), r.text().await.ok()?))
    };
    let metrics = || async {
        let r = http.get(format!("{base}/metrics")).send().await.ok()?;
        r.text().await.ok()
    };
    let push = || async {
        let alert = r#"[{"labels":{"alertname":"Drill","event":"launch","severity":"page"}}]"#;
        let r = http
            .post(format!("{base}/api/v2/alerts"))
            .header("content-type", "application/json")
            .body(alert)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    };
    assert_eq!(ready().await.map(|r| r.0), Some(200));
    // A live incident, so there is a card to say it on.
    push().await;

    up.store(false, Ordering::SeqCst);
    let unready = eventually(10, || async {
        ready()
            .await
            .filter(|(code, body)| *code == 503 && body.contains("`src`"))
    })
    .await;
    assert!(unready.is_some(), "{:?}\n{}", ready().await, printed(&out));
    // `firebreak_blind` is the process's, and other tests' daemons share
    // this one: it is looked for, not pinned.
    for line in [
        "firebreak_source_up{source=\"src\"} 0",
        "firebreak_blind{kind=\"source\"} 1",
    ] {
        let seen = eventually(5, || async { metrics().await.filter(|m| m.contains(line)) }).await;
        assert!(seen.is_some(), "no {line} in\n{:?}", metrics().await);
    }
    // No push for 2s: the dead-man's switch trips.
    let tripped = eventually(10, || async {
        metrics()
            .await
            .filter(|m| m.contains("firebreak_blind{kind=\"pushes\"} 1"))
    })
    .await;
    assert!(tripped.is_some(), "{}", printed(&out));
    // Still blind a while later: nothing is said again.
    tokio::time::sleep(Duration::from_secs(1)).await;

    up.store(true, Ordering::SeqCst);
    push().await;
    let seeing = eventually(10, || async {
        ready().await.filter(|(code, _)| *code == 200)
    })
    .await;
    assert!(seeing.is_some(), "{:?}", ready().await);
    let m = metrics().await.unwrap();
    assert!(m.contains("firebreak_source_up{source=\"src\"} 1"), "{m}");
    for family in [
        "firebreak_pushed_alerts_last_received_timestamp_seconds ",
        "firebreak_config_last_reload_successful 1",
        "firebreak_config_last_reload_success_timestamp_seconds ",
        "firebreak_rule_evaluations_total{rule_group=",
    ] {
        assert!(m.contains(family), "no {family} in\n{m}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    daemon.wait().await.unwrap();

    let text = printed(&out);
    let count = |needle: &str| text.matches(needle).count();
    assert_eq!(
        count("I am blind: scrape target `src` has not answered since"),
        1,
        "{text}"
    );
    assert_eq!(
        count("I see again: scrape target `src` is back"),
        1,
        "{text}"
    );
    assert_eq!(
        count("I am blind: no alert has been pushed to me since"),
        1,
        "{text}"
    );
    assert_eq!(count("I see again: pushed alerts is back"), 1, "{text}");
    assert!(
        text.contains("⚠ blind: scrape target `src`"),
        "the live incident's card says it:\n{text}"
    );
}
