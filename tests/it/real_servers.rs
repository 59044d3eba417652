//! firebreak against the servers an SRE team already runs: Debian's
//! Prometheus 2.42 and Alertmanager 0.25, started on loopback with
//! generated configs, watching `firebreak sim` through the launch surge.
//! Three ways in, one ending each time: the event moved to a room on the
//! secondary account in the simulator, and the incident in (fake) Slack.
//!
//! 1. Prometheus scrapes; firebreak evaluates its rules through
//!    Prometheus's HTTP API.
//! 2. Prometheus evaluates the same rules and sends alerts to
//!    Alertmanager, which routes them to firebreak's webhook.
//! 3. Prometheus sends its alerts straight to firebreak's
//!    `/api/v2/alerts`.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::common::{
    KillOnDrop, eventually, free_port, get_json, run_ended, start_alertmanager,
    start_prometheus_with, start_sim,
};
use crate::fake_slack::FakeSlack;
use firebreak::clock::Clock;
use firebreak::daemon::Daemon;
use firebreak::store::Store;
use tokio_util::sync::CancellationToken;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// How the alerts reach firebreak.
#[derive(Clone, Copy, PartialEq)]
enum Path {
    RulesThroughApi,
    ViaAlertmanager,
    StraightFromPrometheus,
}

struct World {
    _sim: KillOnDrop,
    sim_addr: String,
    slack: FakeSlack,
    bot_addr: SocketAddr,
    daemon: Option<Daemon>,
    stop: CancellationToken,
    dir: tempfile::TempDir,
    _servers: Vec<KillOnDrop>,
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The simulator a minute into the launch, when listeners arrive at
/// 50,000 a minute; Prometheus scraping it every second; firebreak (this
/// process) posting to the fake Slack and querying Prometheus for its
/// runbooks' checks. `None` when a server is not installed.
async fn world(path: Path) -> Option<World> {
    let (sim, sim_addr) = start_sim(&["--speed", "1", "--from", "60s"]);
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let prom_port = free_port();
    std::fs::write(d.join("bot-token"), crate::fake_slack::TOKEN).unwrap();
    // With Prometheus evaluating, firebreak loads no rules of its own: one
    // decider, so the alert is not raised twice.
    let rules = match path {
        Path::RulesThroughApi => format!("['{ROOT}/alerts']"),
        _ => "[]".to_owned(),
    };
    let config = format!(
        "\
sources:
  prometheus: {{url: 'http://127.0.0.1:{prom_port}', timeout: 5s}}
rules: {{paths: {rules}}}
runbooks: {{paths: ['{ROOT}/runbooks']}}
targets:
  platform: {{url: 'http://{sim_addr}'}}
store: {{url: 'sqlite://{d}/fb.db'}}
secrets:
  bot: {{file: '{d}/bot-token'}}
server: {{listen: '127.0.0.1:0'}}
chat:
  channel: '#incidents'
  slack:
    bot_token_secret: bot
    api_url: '{api}'
",
        d = d.display(),
        api = slack.api_url(),
    );
    std::fs::write(d.join("firebreak.yaml"), &config).unwrap();
    let loaded = firebreak::load::load_from_disk(Some(&d.join("firebreak.yaml")))
        .unwrap_or_else(|e| panic!("{e}\n{config}"));
    let store = Store::open(&loaded.config.store_url).await.unwrap();
    let chat = firebreak::daemon::chat_adapter(&loaded.config)
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let daemon = Daemon::start(loaded, store, Clock::system(), chat, stop.clone())
        .await
        .unwrap();
    let bot_addr = daemon.http_addr.expect("server.listen is set");

    let mut servers = Vec::new();
    let mut prom = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: sim\n    static_configs: [{{targets: ['{sim_addr}']}}]\n"
    );
    match path {
        Path::RulesThroughApi => {}
        Path::ViaAlertmanager => {
            let am_port = free_port();
            let am = format!(
                "route:\n  receiver: firebreak\n  group_by: [alertname, event]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: firebreak\n    webhook_configs:\n      - url: 'http://{bot_addr}/api/v1/alertmanager'\n        send_resolved: true\n"
            );
            servers.push(start_alertmanager(d, &am, am_port)?);
            prom.push_str(&format!(
                "rule_files: ['{ROOT}/alerts/live-event.rules.yml']\nalerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['127.0.0.1:{am_port}']}}]\n"
            ));
        }
        Path::StraightFromPrometheus => {
            prom.push_str(&format!(
                "rule_files: ['{ROOT}/alerts/live-event.rules.yml']\nalerting:\n  alertmanagers:\n    - api_version: v2\n      static_configs: [{{targets: ['{bot_addr}']}}]\n"
            ));
        }
    }
    servers.push(start_prometheus_with(d, &prom, prom_port)?);
    Some(World {
        _sim: sim,
        sim_addr,
        slack,
        bot_addr,
        daemon: Some(daemon),
        stop,
        dir,
        _servers: servers,
    })
}

impl World {
    /// Waits for the launch to be live in a room on the secondary account;
    /// returns that room, and the groups (where they came from) of the
    /// surge alerts `GET /api/v1/alerts` showed meanwhile.
    async fn moved(&self, secs: u64) -> (Option<String>, BTreeSet<String>) {
        let http = firebreak::net::client().unwrap();
        let seen = std::sync::Mutex::new(BTreeSet::new());
        let room = eventually(secs, || async {
            if let Ok(r) = http
                .get(format!("http://{}/api/v1/alerts", self.bot_addr))
                .send()
                .await
                && let Ok(v) = r.json::<serde_json::Value>().await
            {
                for a in v["data"]["alerts"].as_array().into_iter().flatten() {
                    if a["name"] == "ListenerCapacityBreachPredicted" {
                        let g = a["group"].as_str().unwrap_or_default().to_owned();
                        seen.lock().unwrap().insert(g);
                    }
                }
            }
            let v = get_json(
                &http,
                &format!("http://{}/api/v1/events/launch", self.sim_addr),
            )
            .await?;
            let e = &v["event"];
            (e["account"] == "cohost").then(|| e["room"].as_str().unwrap_or_default().to_owned())
        })
        .await;
        (room, seen.into_inner().unwrap())
    }

    async fn finish(mut self) {
        self.stop.cancel();
        if let Some(d) = self.daemon.take() {
            d.wait().await.unwrap();
        }
    }
}

async fn moved_and_told(path: Path) {
    let Some(w) = world(path).await else { return };
    let (room, groups) = w.moved(150).await;
    let run = run_ended(&w.dir.path().join("fb.db"), "move-to-secondary-room", 90).await;
    let card = w
        .slack
        .wait_message("ListenerCapacityBreachPredicted", 20)
        .await;
    // Chat is paced per channel, so the run can end before its last
    // messages reach Slack: wait for the one this test reads.
    let told = w
        .slack
        .wait_message("is now live in room cohost-", 30)
        .await;
    let said: Vec<String> = w.slack.messages().iter().map(|m| m.text.clone()).collect();
    w.finish().await;
    let room = room.unwrap_or_else(|| {
        panic!(
            "the event never moved to cohost\nchat:\n{}",
            said.join("\n")
        )
    });
    assert!(room.starts_with("cohost-"), "{room}");
    assert_eq!(
        run.as_deref(),
        Some("succeeded"),
        "chat:\n{}",
        said.join("\n")
    );
    let card = card.unwrap_or_else(|| panic!("no incident message in Slack:\n{}", said.join("\n")));
    assert_eq!(card.channel, "C0INCIDENTS1");
    assert!(told.is_some(), "{}", said.join("\n"));
    // The alert came the way this path says: firebreak's own rule group,
    // or pushed by Alertmanager, or by Prometheus through the API.
    let want = match path {
        Path::RulesThroughApi => "live-event",
        Path::ViaAlertmanager => "alertmanager",
        Path::StraightFromPrometheus => "api",
    };
    assert_eq!(groups, BTreeSet::from([want.to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_evaluated_through_prometheus_api_move_the_event() {
    moved_and_told(Path::RulesThroughApi).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_routes_prometheus_alerts_to_the_webhook_and_the_event_moves() {
    moved_and_told(Path::ViaAlertmanager).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sends_alerts_straight_to_api_v2_and_the_event_moves() {
    moved_and_told(Path::StraightFromPrometheus).await;
}
