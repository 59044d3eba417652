//! The API over real HTTP on 127.0.0.1:0: the watcher's queue and the
//! control loop are stood in for by the test, the store is a real SQLite.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Api, routes};
use crate::clock::Clock;
use crate::control::{Command, FiringAlert, Status};
use crate::source::alertmanager::{Incoming, Lifecycle};
use crate::store::Store;

pub(crate) struct Served {
    pub base: String,
    pushed: mpsc::Receiver<Vec<Incoming>>,
    pub store: Store,
    shutdown: CancellationToken,
    pub http: reqwest::Client,
    /// What the control loop's stand-in was asked to change, as
    /// `pause by LABEL`.
    pub changes: Arc<std::sync::Mutex<Vec<String>>>,
}

async fn serve(token: Option<&str>, queue: usize, max_body: usize) -> Served {
    serve_with(token, queue, max_body, |_, _| Default::default()).await
}

/// The API with the console's settings from `console`, given the
/// control queue and the store, for a console that acts.
pub(crate) async fn serve_with(
    token: Option<&str>,
    queue: usize,
    max_body: usize,
    console: impl FnOnce(mpsc::Sender<Command>, Store) -> super::console::Settings,
) -> Served {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let (pushed_tx, pushed) = mpsc::channel(queue);
    let (control, mut commands) = mpsc::channel::<Command>(4);
    let changes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let changed = changes.clone();
    // The control loop's part: one firing alert, acknowledged, one
    // pending, two silences; a pause is noted and answered.
    tokio::spawn(async move {
        while let Some(c) = commands.recv().await {
            if let Command::Pause { by, reply, .. } = c {
                changed
                    .lock()
                    .unwrap()
                    .push(format!("pause by {}", by.label()));
                let _ = reply.send(());
                continue;
            }
            if let Command::Status(reply) = c {
                let _ = reply.send(Status {
                    paused: None,
                    running: Vec::new(),
                    firing: vec![std::sync::Arc::new(FiringAlert {
                        fingerprint: "00000000deadbeef".into(),
                        name: "SpeakerFeedback".into(),
                        group: "g".into(),
                        incident: "launch".into(),
                        labels: BTreeMap::from([("room".into(), "main".into())]),
                        summary: "host feeds back".into(),
                        value: f64::NAN,
                        since: 1_684_965_647_000,
                        acked: Some(crate::control::Acked {
                            by: "ana".into(),
                            at: 1_684_965_700_000,
                        }),
                        silenced_by: None,
                    })],
                    waiting: Vec::new(),
                    blind: Vec::new(),
                    pending: std::sync::Arc::new(vec![crate::rules::PendingAlert {
                        name: "RoomFilling".into(),
                        group: "g".into(),
                        labels: crate::labels::Labels::new()
                            .with("alertname", "RoomFilling")
                            .with("room", "main"),
                        summary: "room main is filling".into(),
                        value: 0.91,
                        active_at: 1_684_965_640_000,
                        fires_at: 1_684_965_700_000,
                    }]),
                    silences: vec![
                        crate::control::SilenceView {
                            id: "sil-room".into(),
                            matchers: "room=\"main\"".into(),
                            ends_at: 1_684_969_200_000,
                            by: "ana".into(),
                            comment: "planned move".into(),
                        },
                        crate::control::SilenceView {
                            id: "sil-node".into(),
                            matchers: "alertname=\"NodeDown\"".into(),
                            ends_at: 1_684_969_200_000,
                            by: "bo".into(),
                            comment: "<b>db</b> rebuild".into(),
                        },
                    ],
                    incident: Some("launch".into()),
                });
            }
        }
    });
    let shutdown = CancellationToken::new();
    let console = console(control.clone(), store.clone());
    let api = Arc::new(Api {
        pushed: pushed_tx,
        control,
        store: store.clone(),
        clock: Clock::system(),
        token: token.map(str::to_owned),
        max_body_bytes: max_body,
        shutdown: shutdown.clone(),
        replica: None,
        push_wait: Duration::from_millis(200),
        sight: crate::sight::Board::new(),
        console,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(crate::server::serve(
        listener,
        routes(api),
        CancellationToken::new(),
    ));
    Served {
        base,
        pushed,
        store,
        shutdown,
        http: crate::net::client_without_redirects().unwrap(),
        changes,
    }
}

impl Served {
    async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Json) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Json::Null))
    }

    async fn get(&self, path: &str) -> (u16, Json) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Json::Null))
    }
}

const WEBHOOK: &str = r#"{"version": "4", "receiver": "firebreak", "status": "firing",
  "alerts": [{"status": "firing", "labels": {"alertname": "SpeakerFeedback", "room": "main"},
  "annotations": {"summary": "s"}, "startsAt": "2023-05-24T22:00:47Z", "endsAt": "0001-01-01T00:00:00Z",
  "generatorURL": "", "fingerprint": "ab"}],
  "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am", "groupKey": "{}"}"#;

#[tokio::test]
async fn alertmanagers_webhook_is_queued_for_the_watcher() {
    let mut s = serve(None, 8, 1 << 20).await;
    let (code, body) = s.post("/api/v1/alertmanager", WEBHOOK).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, json!({"status": "success", "accepted": 1}));
    let got = s.pushed.try_recv().unwrap();
    assert_eq!(got[0].labels.get("alertname"), Some("SpeakerFeedback"));
    assert_eq!(got[0].lifecycle, Lifecycle::Told { resolved: false });
}

#[tokio::test]
async fn api_v2_takes_prometheus_alerts_and_names_ignored_fields() {
    let mut s = serve(None, 8, 1 << 20).await;
    let (code, body) = s
        .post(
            "/api/v2/alerts",
            r#"[{"labels": {"alertname": "X"}, "endsAt": "2099-01-01T00:00:00Z", "extra": 1}]"#,
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["ignored_fields"], json!(["[0].extra"]));
    assert_eq!(s.pushed.try_recv().unwrap().len(), 1);
}

#[tokio::test]
async fn a_bad_request_is_refused_whole_with_every_problem() {
    let mut s = serve(None, 8, 1 << 20).await;
    let (code, body) = s
        .post(
            "/api/v2/alerts",
            r#"[{"labels": {"alertname": "X"}}, {"labels": {"room": "main"}}, {"labels": {"alertname": "Y"}, "startsAt": "soon"}]"#,
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["status"], "error");
    let problems = body["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{body}");
    assert!(
        problems[0]
            .as_str()
            .unwrap()
            .starts_with("[1].labels: no alertname")
    );
    assert!(
        problems[1]
            .as_str()
            .unwrap()
            .starts_with("[2].startsAt: \"soon\"")
    );
    assert!(
        s.pushed.try_recv().is_err(),
        "nothing is taken from a refused request"
    );

    let (code, body) = s.post("/api/v2/alerts", "not json").await;
    assert_eq!(code, 400);
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("line 1 column 2: "),
        "{body}"
    );
    let (code, body) = s.post("/api/v2/alerts", vec![0xffu8, 0xfe, 0x00]).await;
    assert_eq!(code, 400, "{body}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused() {
    let s = serve(None, 8, 2048).await;
    let big = format!(
        "[{}]",
        vec![r#"{"labels": {"alertname": "X"}}"#; 200].join(",")
    );
    let (code, body) = s.post("/api/v2/alerts", big).await;
    assert_eq!(code, 413, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("server.max_body_bytes (2048 bytes)"),
        "{body}"
    );
}

#[tokio::test]
async fn a_full_queue_says_try_again_and_takes_nothing() {
    let mut s = serve(None, 1, 1 << 20).await;
    let (code, _) = s.post("/api/v1/alertmanager", WEBHOOK).await;
    assert_eq!(code, 200);
    let r = s
        .http
        .post(format!("{}/api/v1/alertmanager", s.base))
        .body(WEBHOOK)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    let body: Json = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("send it again"),
        "{body}"
    );
    assert!(s.pushed.try_recv().is_ok());
    assert!(
        s.pushed.try_recv().is_err(),
        "the refused request was not queued"
    );
}

#[tokio::test]
async fn with_a_token_the_api_wants_it_and_health_does_not() {
    let s = serve(Some("s3cret"), 8, 1 << 20).await;
    let (code, body) = s.get("/api/v1/runs").await;
    assert_eq!(code, 401, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
    for (token, want) in [("wrong", 401), ("s3cret", 200)] {
        let r = s
            .http
            .get(format!("{}/api/v1/runs", s.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "{token}");
    }
    assert_eq!(s.get("/-/healthy").await.0, 200);
}

#[tokio::test]
async fn alerts_are_read_from_the_control_loop() {
    let s = serve(None, 8, 1 << 20).await;
    let (code, body) = s.get("/api/v1/alerts").await;
    assert_eq!(code, 200, "{body}");
    let a = &body["data"]["alerts"][0];
    assert_eq!(a["name"], "SpeakerFeedback");
    assert_eq!(a["value"], Json::Null, "no value is null, not NaN");
    assert_eq!(a["activeAt"], "2023-05-24T22:00:47.000Z");
    assert_eq!(a["acked"]["by"], "ana");
    assert_eq!(a["incident"], "launch");
    // Issue 22, item 8: pending alerts are listed too, with when they fire.
    let p = &body["data"]["alerts"][1];
    assert_eq!(p["name"], "RoomFilling");
    assert_eq!(p["state"], "pending");
    assert_eq!(p["labels"]["room"], "main");
    assert_eq!(p["activeAt"], "2023-05-24T22:00:40.000Z");
    assert_eq!(p["firesAt"], "2023-05-24T22:01:40.000Z");
}

#[tokio::test]
async fn runs_and_timelines_are_read_from_the_store() {
    let s = serve(None, 8, 1 << 20).await;
    for (id, runbook, state, at) in [
        ("r1", "mute-feedback-speaker", "succeeded", 1_000),
        ("r2", "move-to-secondary-room", "running", 2_000),
    ] {
        let rec = crate::store::RunRecord {
            id: id.into(),
            runbook: runbook.into(),
            incident: "launch".into(),
            concurrency_key: "k".into(),
            state: crate::run_state::RunState::parse(state).unwrap(),
            started_at: at,
            finished_at: None,
            error: None,
        };
        s.store.insert_run(&rec, "{}").await.unwrap();
    }
    s.store
        .append_timeline(&crate::timeline::TimelineEntry::new(
            "launch",
            1_000,
            crate::timeline::Kind::AlertFiring,
            crate::timeline::By::Bot,
            crate::timeline::About::alert("X"),
            "X firing",
        ))
        .await
        .unwrap();

    let (code, body) = s.get("/api/v1/runs").await;
    assert_eq!(code, 200);
    let ids: Vec<&str> = body["data"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["r2", "r1"], "newest first");
    let (_, body) = s.get("/api/v1/runs?state=succeeded").await;
    assert_eq!(body["data"]["runs"].as_array().unwrap().len(), 1);
    assert_eq!(body["data"]["runs"][0]["state"], "succeeded");
    // A misspelt state is said, not answered with no runs.
    let (code, body) = s.get("/api/v1/runs?state=success").await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no run state \"success\"; the states are running, awaiting_approval, rolling_back, succeeded, failed, rolled_back, aborted, interrupted"),
        "{body}"
    );
    let long = "x".repeat(5000);
    let (code, body) = s.get(&format!("/api/v1/runs?state={long}")).await;
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().len() < 300, "{body}");
    let (code, body) = s.get("/api/v1/runs?colour=red").await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("runbook, state, incident and limit")
    );

    let (code, body) = s.get("/api/v1/runs/r1").await;
    assert_eq!(code, 200);
    assert_eq!(body["data"]["runbook"], "mute-feedback-speaker");
    assert_eq!(body["data"]["steps"], json!([]));
    assert_eq!(s.get("/api/v1/runs/nope").await.0, 404);

    let (code, body) = s.get("/api/v1/incidents/launch/timeline").await;
    assert_eq!(code, 200);
    assert_eq!(body["data"]["entries"][0]["text"], "X firing");
    let (code, body) = s.get("/api/v1/incidents/lanch/timeline").await;
    assert_eq!(code, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("did you mean \"launch\"?"),
        "{body}"
    );
    let (_, body) = s.get("/api/v1/incidents").await;
    assert_eq!(body["data"]["incidents"], json!(["launch"]));
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let s = serve(None, 8, 1 << 20).await;
    assert_eq!(s.get("/-/healthy").await.0, 200);
    let ready = s
        .http
        .get(format!("{}/-/ready", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let m = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        m.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = m.text().await.unwrap();
    for family in [
        "firebreak_alerts",
        "firebreak_runs_total",
        "firebreak_rollbacks_held_total",
        "firebreak_step_duration_seconds",
        "firebreak_outbox_depth",
        "firebreak_chat_send_errors_total",
        "firebreak_scrape_duration_seconds",
        "firebreak_rule_evaluation_duration_seconds",
        "firebreak_http_requests_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family}\n{text}"
        );
    }
    assert!(text.contains("firebreak_outbox_depth 0\n"), "{text}");
    assert!(
        text.contains("firebreak_outbox_oldest_age_seconds 0\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "firebreak_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    // A message waiting 90s: chat is not getting through, and /metrics says
    // for how long.
    let now = crate::clock::Clock::system().now();
    s.store
        .enqueue_outbox("#c", "{}", now - 90_000)
        .await
        .unwrap();
    let text = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let age: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("firebreak_outbox_oldest_age_seconds "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((90.0..120.0).contains(&age), "{age}");
    // The requests above were counted, by route.
    assert!(
        text.contains(r#"firebreak_http_requests_total{route="/-/ready",code="200"}"#),
        "{text}"
    );
    s.shutdown.cancel();
    assert_eq!(
        s.http
            .get(format!("{}/-/ready", s.base))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        503
    );
}

#[tokio::test]
async fn a_store_that_does_not_answer_makes_the_bot_unready_but_alive() {
    let s = serve(None, 8, 1 << 20).await;
    s.store.close().await;
    let r = s
        .http
        .get(format!("{}/-/ready", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(
        r.text().await.unwrap(),
        "firebreak is not ready: the store does not answer (see the log).\n"
    );
    // Alive all the same: restarting it would not bring the store back.
    assert_eq!(s.get("/-/healthy").await.0, 200);
}

#[tokio::test]
async fn unknown_routes_and_the_old_api_say_where_to_go() {
    let s = serve(None, 8, 1 << 20).await;
    let (code, body) = s.get("/api/v1/nothing").await;
    assert_eq!(code, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("POST /api/v2/alerts"),
        "{body}"
    );
    let (code, body) = s.post("/api/v1/alerts", "[]").await;
    assert_eq!(code, 405);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("POST /api/v2/alerts"),
        "{body}"
    );
}

/// Regression: a wrong method, a request target too long and a path that
/// is not UTF-8 were answered by axum in plain text or with no body,
/// though the README promises JSON for every refusal.
#[tokio::test]
async fn every_refusal_is_json() {
    let s = serve(None, 8, 1 << 20).await;
    let send = |method: reqwest::Method, path: String| {
        let req = s.http.request(method, format!("{}{path}", s.base));
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let body: Json = r.json().await.unwrap_or(Json::Null);
            (status, ct, body)
        }
    };
    let cases = [
        (reqwest::Method::DELETE, "/api/v1/runs".to_owned(), 405),
        (reqwest::Method::PUT, "/-/healthy".to_owned(), 405),
        (
            reqwest::Method::GET,
            format!("/api/v1/runs/{}", "x".repeat(10_000)),
            414,
        ),
        (reqwest::Method::GET, "/api/v1/runs/%FF%FE".to_owned(), 400),
        (
            reqwest::Method::GET,
            "/api/v1/runs?limit=%FF".to_owned(),
            400,
        ),
    ];
    for (method, path, want) in cases {
        let shown = format!("{method} {}", &path[..path.len().min(40)]);
        let (status, ct, body) = send(method, path).await;
        assert_eq!(status, want, "{shown}: {body}");
        assert!(ct.starts_with("application/json"), "{shown}: {ct}");
        assert_eq!(body["status"], "error", "{shown}: {body}");
        assert!(
            !body["error"].as_str().unwrap().is_empty(),
            "{shown}: {body}"
        );
    }
}

/// Regression: with a token set, an unknown `/api/` path answered 404 to
/// anyone, so the API's shape could be mapped without the token.
#[tokio::test]
async fn unknown_api_paths_want_the_token_too() {
    let s = serve(Some("s3cret"), 8, 1 << 20).await;
    let (code, body) = s.get("/api/v1/nothing").await;
    assert_eq!(code, 401, "{body}");
    let r = s
        .http
        .get(format!("{}/api/v1/nothing", s.base))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // Outside `/api/` nothing is secret.
    assert_eq!(s.get("/nothing").await.0, 404);
}
