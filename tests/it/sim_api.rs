//! The simulator over real HTTP on 127.0.0.1:0: metrics, admin API,
//! idempotency, error handling, shutdown.
//!
//! The clock is scaled at speed 1 and started at the simulated moment a
//! test needs; the first request catches the world up to it in
//! deterministic one-second ticks. No test waits on wall-clock time.

use firebreak::clock::{Clock, Millis};
use firebreak::sim::{Scenario, Sim, SimOptions, StateSnapshot};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Server {
    base: String,
    http: reqwest::Client,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

const MIN: Millis = 60_000;

/// A simulator whose clock reads `minutes` after 18:00 ET (may be negative).
async fn start(minutes: i64) -> Server {
    start_fast(minutes, 1.0).await
}

/// [`start`], with the clock running `speed` times real time.
async fn start_fast(minutes: i64, speed: f64) -> Server {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let scenario = Scenario::builtin();
    let clock = Clock::scaled(scenario.scheduled_start + minutes * MIN, speed);
    let sim = Sim::new(SimOptions { scenario, seed: 7 }, clock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let task = tokio::spawn(sim.serve(listener, stop.clone()));
    Server {
        base,
        http: reqwest::Client::new(),
        stop,
        task,
    }
}

impl Server {
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap())
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: &str,
    ) -> (StatusCode, bool, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let r = req.send().await.unwrap();
        let replayed = r
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true");
        (r.status(), replayed, r.json().await.unwrap())
    }

    async fn post(&self, path: &str, key: Option<&str>, body: Value) -> (StatusCode, bool, Value) {
        self.send(reqwest::Method::POST, path, key, &body.to_string())
            .await
    }

    /// Creates a room of 1.5M on the co-host's account; its answer.
    async fn create_cohost_room(&self) -> Value {
        let (s, _, v) = self
            .post(
                "/api/v1/rooms",
                None,
                json!({"account": "cohost", "capacity": 1_500_000, "title": "Launch (co-host)"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    async fn state(&self) -> StateSnapshot {
        let (s, v) = self.get("/api/v1/state").await;
        assert_eq!(s, StatusCode::OK);
        serde_json::from_value(v).unwrap()
    }

    async fn metrics(&self) -> prometheus_parse::Scrape {
        let r = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        let text = r.text().await.unwrap();
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

fn gauge(scrape: &prometheus_parse::Scrape, name: &str, label: (&str, &str)) -> f64 {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
        .unwrap_or_else(|| panic!("no {name}{{{}={}}}", label.0, label.1));
    match s.value {
        prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Counter(v) => v,
        ref v => panic!("{name}: {v:?}"),
    }
}

#[tokio::test]
async fn capacity_breach_and_crash_are_visible_over_http() {
    // 18:30 ET: with nobody intervening the main room has crashed.
    let srv = start(30).await;
    let st = srv.state().await;
    assert!(st.event.crashed, "{:?}", st.event);
    let at = st.event.crashed_at.unwrap() - st.scheduled_start;
    assert!(
        (20 * MIN..30 * MIN).contains(&at),
        "crashed {at} ms after 18:00"
    );
    let m = srv.metrics().await;
    assert_eq!(gauge(&m, "live_room_up", ("room", "main")), 0.0);
    assert_eq!(gauge(&m, "live_event_listeners", ("event", "launch")), 0.0);
    let failures = |reason: &str| {
        m.samples
            .iter()
            .find(|s| {
                s.metric == "live_join_failures_total" && s.labels.get("reason") == Some(reason)
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) => v,
                _ => panic!(),
            })
            .unwrap()
    };
    assert!(failures("capacity") > 0.0);
    assert!(failures("overload") > 0.0);
    assert!(failures("room_down") > 0.0);
    let t = m
        .samples
        .iter()
        .find(|s| s.metric == "live_sim_time_seconds")
        .unwrap();
    let prometheus_parse::Value::Gauge(secs) = t.value else {
        panic!("{t:?}")
    };
    assert!(
        (secs * 1000.0 - st.time as f64).abs() < 2_000.0,
        "{secs} vs {}",
        st.time
    );
    srv.stop().await;
}

#[tokio::test]
async fn move_before_saturation_over_http() {
    let srv = start(4).await;
    let m = srv.metrics().await;
    assert_eq!(
        gauge(&m, "live_secondary_room_ready", ("account", "cohost")),
        0.0
    );
    let v = srv.create_cohost_room().await;
    assert_eq!(v["room"]["id"], "cohost-1");
    assert_eq!(v["room"]["state"], "ready");
    let m = srv.metrics().await;
    assert_eq!(
        gauge(&m, "live_secondary_room_ready", ("account", "cohost")),
        1.0
    );

    let (s, _, v) = srv
        .post(
            "/api/v1/events/launch/move",
            None,
            json!({"room": "cohost-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["moved"]["from_room"], "main");
    assert_eq!(v["moved"]["to_room"], "cohost-1");
    assert!(
        v["moved"]["listeners_moved"].as_u64().unwrap() > 100_000,
        "{v}"
    );
    let (s, v) = srv.get("/api/v1/events/launch").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["event"]["room"], "cohost-1");
    assert_eq!(v["event"]["account"], "cohost");
    let m = srv.metrics().await;
    let info = m
        .samples
        .iter()
        .find(|s| s.metric == "live_event_info")
        .unwrap();
    assert_eq!(info.labels.get("room"), Some("cohost-1"));
    let (s, v) = srv.get("/api/v1/rooms/main").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["room"]["state"], "ended");
    srv.stop().await;
}

#[tokio::test]
async fn an_event_is_split_over_http_and_its_rooms_count_together() {
    let srv = start(4).await;
    srv.create_cohost_room().await;
    let (s, _, v) = srv
        .post(
            "/api/v1/events/launch/overflow",
            None,
            json!({"room": "cohost-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["event"]["room"], "main");
    assert_eq!(v["event"]["overflow_rooms"], json!(["cohost-1"]));
    // Twice, the stage, or a room that does not exist: refused, saying why.
    let (s, _, v) = srv
        .post(
            "/api/v1/events/launch/overflow",
            None,
            json!({"room": "cohost-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("already carries"),
        "{v}"
    );
    let (s, _, v) = srv
        .post(
            "/api/v1/events/launch/overflow",
            None,
            json!({"room": "nope"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, _, _) = srv
        .post(
            "/api/v1/events/other/overflow",
            None,
            json!({"room": "main"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = srv.get("/api/v1/rooms/cohost-1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["room"]["overflow_of"], "main");
    assert_eq!(v["room"]["hosting_event"], "launch");
    assert_eq!(v["room"]["state"], "live");
    let m = srv.metrics().await;
    let roles: Vec<(String, String)> = m
        .samples
        .iter()
        .filter(|s| s.metric == "live_event_info")
        .map(|s| {
            (
                s.labels.get("room").unwrap().to_owned(),
                s.labels.get("role").unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("main".to_owned(), "stage".to_owned()),
            ("cohost-1".to_owned(), "overflow".to_owned())
        ]
    );
    let (_, v) = srv.get("/api/v1/events/launch").await;
    let listeners = v["event"]["listeners"].as_f64().unwrap();
    assert_eq!(
        gauge(&m, "live_event_listeners", ("event", "launch")),
        listeners
    );
    assert_eq!(v["event"]["capacity"], json!(520_000 + 1_500_000));
    srv.stop().await;
}

#[tokio::test]
async fn the_platform_says_what_doing_nothing_would_have_cost() {
    // 18:04 at 600x: moved at once, then half an hour later (3s real).
    let srv = start_fast(4, 600.0).await;
    let m = srv.metrics().await;
    let now = gauge(&m, "live_event_listeners", ("event", "launch"));
    let untouched = gauge(
        &m,
        "live_event_counterfactual_listeners",
        ("event", "launch"),
    );
    // Nobody has acted yet: the twin is the same world.
    assert!(
        (now - untouched).abs() <= now * 0.05,
        "{now} vs {untouched}"
    );
    srv.create_cohost_room().await;
    let (s, _, v) = srv
        .post(
            "/api/v1/events/launch/move",
            None,
            json!({"room": "cohost-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let st = srv.state().await;
    assert!(st.time - st.scheduled_start >= 30 * MIN, "{}", st.time);
    let m = srv.metrics().await;
    let now = gauge(&m, "live_event_listeners", ("event", "launch"));
    let untouched = gauge(
        &m,
        "live_event_counterfactual_listeners",
        ("event", "launch"),
    );
    // The moved event kept its audience; left alone, the room crashed.
    assert!(now > 100_000.0, "{now}");
    assert_eq!(untouched, 0.0);
    assert!(m.docs.contains_key("live_event_counterfactual_listeners"));
    srv.stop().await;
}

#[tokio::test]
async fn idempotency_key_applies_once() {
    let srv = start(0).await;
    let body = json!({"account": "cohost", "capacity": 1_500_000});
    let (s1, r1, v1) = srv.post("/api/v1/rooms", Some("k-1"), body.clone()).await;
    let (s2, r2, v2) = srv.post("/api/v1/rooms", Some("k-1"), body.clone()).await;
    assert_eq!((s1, r1), (StatusCode::CREATED, false));
    assert_eq!((s2, r2), (StatusCode::CREATED, true));
    assert_eq!(v1, v2);
    assert_eq!(srv.state().await.rooms.len(), 2, "applied once");

    // Same key, different request: refused, nothing applied.
    let (s, _, v) = srv
        .post("/api/v1/rooms", Some("k-1"), json!({"account": "owner"}))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["error"].as_str().unwrap().contains("k-1"), "{v}");
    let (s, _, _) = srv
        .post(
            "/api/v1/rooms/main/speakers/host/mute",
            Some("k-1"),
            json!({"muted": true}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(srv.state().await.rooms.len(), 2);

    // Without a key every call applies.
    srv.post("/api/v1/rooms", None, body.clone()).await;
    srv.post("/api/v1/rooms", None, body).await;
    assert_eq!(srv.state().await.rooms.len(), 4);

    // Moves replay too: the second call does not fail as "already there".
    let mv = json!({"room": "cohost-1"});
    let (s1, _, v1) = srv
        .post("/api/v1/events/launch/move", Some("move-1"), mv.clone())
        .await;
    let (s2, r2, v2) = srv
        .post("/api/v1/events/launch/move", Some("move-1"), mv)
        .await;
    assert_eq!((s1, s2, r2), (StatusCode::OK, StatusCode::OK, true));
    assert_eq!(v1, v2);
    assert_eq!(srv.state().await.event.moves.len(), 1);
    srv.stop().await;
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let srv = start(5).await;
    let (s, v) = srv.get("/api/v1/rooms/nope").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().unwrap().contains("main"), "{v}");
    let (s, v) = srv.get("/api/v1/events/lunch").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().unwrap().contains("launch"), "{v}");

    let (s, _, v) = srv
        .post(
            "/api/v1/rooms",
            None,
            json!({"account": "cohost", "capacty": 5}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("capacty"), "{v}");
    let (s, _, v) = srv
        .send(reqwest::Method::POST, "/api/v1/rooms", None, "{not json")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _, v) = srv
        .post("/api/v1/rooms", None, json!({"account": "nobody"}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().unwrap().contains("cohost"), "{v}");
    let (s, _, v) = srv
        .post(
            "/api/v1/rooms",
            None,
            json!({"account": "cohost", "capacity": -3}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    let (s, _, v) = srv
        .post("/api/v1/events/launch/move", None, json!({"room": "main"}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, _, v) = srv
        .post("/api/v1/events/launch/move", None, json!({}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("room"), "{v}");

    let put =
        |body: &'static str| srv.send(reqwest::Method::PUT, "/api/v1/rooms/main/cap", None, body);
    let (s, _, v) = put(r#"{"max_listeners": 0}"#).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, _, v) = put("{}").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _, v) = put(r#"{"max_listeners": 400000}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["room"]["listener_cap"], 400000);
    let (s, _, v) = put(r#"{"max_listeners": null}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["room"]["listener_cap"], Value::Null);

    let (s, _, v) = srv
        .post(
            "/api/v1/rooms/main/speakers/hots/mute",
            None,
            json!({"muted": true}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().unwrap().contains("host"), "{v}");
    let (s, v) = srv.get("/api/v1/nothing").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["error"].as_str().is_some());
    let (s, _, v) = srv
        .send(reqwest::Method::DELETE, "/api/v1/rooms/main", None, "")
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{v}");
    let (s, _, v) = srv
        .send(
            reqwest::Method::POST,
            "/api/v1/rooms",
            Some(""),
            r#"{"account":"cohost"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    srv.stop().await;
}

#[tokio::test]
async fn mute_shows_in_metrics_and_keeps_the_input_level() {
    let srv = start(5).await;
    let m = srv.metrics().await;
    assert!(gauge(&m, "live_speaker_feedback_level", ("speaker", "host")) > 0.8);
    assert_eq!(gauge(&m, "live_speaker_muted", ("speaker", "host")), 0.0);
    // An empty body means "mute".
    let (s, _, v) = srv
        .send(
            reqwest::Method::POST,
            "/api/v1/rooms/main/speakers/host/mute",
            None,
            "",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["speaker"]["muted"], true);
    let m = srv.metrics().await;
    assert_eq!(gauge(&m, "live_speaker_muted", ("speaker", "host")), 1.0);
    assert!(gauge(&m, "live_speaker_feedback_level", ("speaker", "host")) > 0.8);
    srv.stop().await;
}

#[tokio::test]
async fn snapshot_has_the_demo_summary() {
    let srv = start(10).await;
    let st = srv.state().await;
    assert_eq!(st.event.id, "launch");
    assert_eq!(st.event.room, "main");
    assert_eq!(st.event.account, "owner");
    assert!(st.event.peak_listeners >= st.event.listeners);
    assert!(st.event.unique_listeners >= st.event.peak_listeners);
    assert_eq!(st.reference.listeners_after, 275_000);
    assert_eq!(st.reference.listeners_before, 500_000);
    assert_eq!(st.reference.mitigation_minutes, 30);
    assert!(st.event.moves.is_empty());
    srv.stop().await;
}

#[tokio::test(start_paused = true)]
async fn sim_handle_follows_a_paused_clock() {
    let scenario = Scenario::builtin();
    // 17:55 ET: the pre-show, when listeners start to arrive.
    let t0 = scenario.scheduled_start - 5 * MIN;
    let clock = Clock::scaled(t0, 60.0);
    let sim = Sim::new(SimOptions { scenario, seed: 1 }, clock);
    assert_eq!(sim.snapshot().time, t0);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await; // 5 simulated minutes
    let st = sim.snapshot();
    assert_eq!(st.time, t0 + 5 * MIN);
    assert!(st.event.listeners > 0);
}

#[tokio::test(start_paused = true)]
async fn same_seed_same_snapshot_through_the_handle() {
    let make = |seed| {
        let scenario = Scenario::builtin();
        let clock = Clock::scaled(scenario.scheduled_start - 5 * MIN, 120.0);
        Sim::new(SimOptions { scenario, seed }, clock)
    };
    let (a, b, c) = (make(9), make(9), make(10));
    // Different call patterns: `a` is asked often, `b` once.
    for _ in 0..10 {
        tokio::time::sleep(std::time::Duration::from_millis(900)).await;
        a.snapshot();
    }
    tokio::time::sleep(std::time::Duration::from_secs(1)).await; // 18:15 ET
    let (sa, sb, sc) = (a.snapshot(), b.snapshot(), c.snapshot());
    assert_eq!(sa.time, sa.scheduled_start + 15 * MIN);
    assert_eq!(sa, sb);
    assert_eq!(a.metrics_text(), b.metrics_text());
    assert_ne!(sa.event.listeners, sc.event.listeners);
}

#[tokio::test]
async fn a_room_is_provisioned_ahead_of_the_event() {
    let srv = start(-2).await;
    let m = srv.metrics().await;
    assert_eq!(gauge(&m, "live_room_capacity", ("room", "main")), 520_000.0);
    let patch =
        |body: &'static str| srv.send(reqwest::Method::PATCH, "/api/v1/rooms/main", None, body);
    let (s, _, v) = patch(r#"{"capacity": 1000000, "admission_rate": 2500}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The room is live and listeners are arriving: new servers take
    // `scale_up_after` to come online.
    let room = &v["room"];
    assert_eq!(
        (room["capacity"].as_u64(), room["admission_rate"].as_u64()),
        (Some(520_000), Some(1000))
    );
    assert_eq!(
        (
            room["scaling"]["capacity"].as_u64(),
            room["scaling"]["admission_rate"].as_u64()
        ),
        (Some(1_000_000), Some(2500))
    );
    let m = srv.metrics().await;
    assert_eq!(
        gauge(&m, "live_room_scaling_admission_rate", ("room", "main")),
        2500.0
    );
    // Either alone is fine; neither, zero or an unknown field is not.
    assert_eq!(patch(r#"{"admission_rate": 3000}"#).await.0, StatusCode::OK);
    let (s, _, v) = patch("{}").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["error"],
        "give capacity (listeners), admission_rate (joins per second), or both"
    );
    let (s, _, v) = patch(r#"{"capacity": 0}"#).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"], "capacity must be a positive number, got 0");
    assert_eq!(patch(r#"{"size": 5}"#).await.0, StatusCode::BAD_REQUEST);
    let (s, _, _) = srv
        .send(
            reqwest::Method::PATCH,
            "/api/v1/rooms/nope",
            None,
            r#"{"capacity": 5}"#,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    srv.stop().await;
}

#[tokio::test]
async fn a_sound_check_finds_the_hosts_feedback_and_fixes_it() {
    // Before the show the host sounds clean and nobody has checked.
    let srv = start(-5).await;
    let m = srv.metrics().await;
    assert!(gauge(&m, "live_speaker_feedback_level", ("speaker", "host")) < 0.1);
    assert_eq!(
        gauge(&m, "live_speaker_audio_checked", ("speaker", "host")),
        0.0
    );
    let (s, _, v) = srv
        .post(
            "/api/v1/rooms/main/speakers/host/soundcheck",
            None,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["soundcheck"]["found_feedback_level"], 0.85);
    assert_eq!(v["soundcheck"]["fixed"], true);
    let m = srv.metrics().await;
    assert_eq!(
        gauge(&m, "live_speaker_audio_checked", ("speaker", "host")),
        1.0
    );
    // A speaker with a clean setup is checked and left alone.
    let (_, _, v) = srv
        .post(
            "/api/v1/rooms/main/speakers/moderator/soundcheck",
            None,
            json!({}),
        )
        .await;
    assert_eq!(v["soundcheck"]["fixed"], false);
    let (s, _, v) = srv
        .post(
            "/api/v1/rooms/main/speakers/nobody/soundcheck",
            None,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("speakers in that room: host, owner, moderator"),
        "{v}"
    );
    srv.stop().await;

    // Five minutes in, the fault is on air; a sound check then fixes it
    // from that moment.
    let srv = start(5).await;
    let m = srv.metrics().await;
    assert!(gauge(&m, "live_speaker_feedback_level", ("speaker", "host")) > 0.8);
    srv.post(
        "/api/v1/rooms/main/speakers/host/soundcheck",
        None,
        json!({}),
    )
    .await;
    let m = srv.metrics().await;
    assert!(gauge(&m, "live_speaker_feedback_level", ("speaker", "host")) < 0.1);
    srv.stop().await;
}

/// What a runbook needs to move an event without naming anything: the
/// event says where it may go, the account says how large a room it can
/// have, and a room asked for at that size is created.
#[tokio::test]
async fn the_event_names_its_secondary_account_and_the_account_its_room_sizes() {
    let s = start(0).await;
    let (st, ev) = s.get("/api/v1/events/launch").await;
    assert_eq!(st, StatusCode::OK, "{ev}");
    let secondary = ev["event"]["secondary_account"].as_str().unwrap();
    assert_eq!(secondary, "cohost");

    let (st, acc) = s.get(&format!("/api/v1/accounts/{secondary}")).await;
    assert_eq!(st, StatusCode::OK, "{acc}");
    assert_eq!(acc["account"]["id"], "cohost");
    assert_eq!(acc["account"]["role"], "secondary");
    assert_eq!(acc["account"]["new_room"]["capacity"], 1_000_000);
    assert_eq!(acc["account"]["new_room"]["admission_rate"], 2500);
    let max = acc["account"]["max_room_capacity"].as_u64().unwrap();
    assert_eq!(max, 100_000_000);

    let (st, _, room) = s
        .post(
            "/api/v1/rooms",
            None,
            json!({"account": secondary, "capacity": max}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{room}");
    assert_eq!(room["room"]["capacity"], max);
    let (st, _, room) = s
        .post(
            "/api/v1/rooms",
            None,
            json!({"account": secondary, "capacity": max + 1}),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{room}");

    // The state lists every account the same way.
    let state = s.state().await;
    assert!(
        state
            .accounts
            .iter()
            .all(|a| a.max_room_capacity == max && a.new_room.capacity == 1_000_000)
    );

    let (st, err) = s.get("/api/v1/accounts/nobody").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(
        err["error"].as_str().unwrap().contains("cohost"),
        "lists the accounts there are: {err}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_waiting_room_opens_over_http_and_shows_in_metrics() {
    let srv = start(2).await;
    let put = |body: &'static str| {
        srv.send(
            reqwest::Method::PUT,
            "/api/v1/rooms/main/waiting_room",
            None,
            body,
        )
    };
    let (s, _, v) = put(r#"{"open": true}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["room"]["waiting_room"], true);
    let m = srv.metrics().await;
    assert_eq!(
        gauge(&m, "live_room_waiting_room_open", ("room", "main")),
        1.0
    );
    assert_eq!(put("{}").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(put(r#"{"open": 1}"#).await.0, StatusCode::BAD_REQUEST);
    let (s, _, v) = srv
        .send(
            reqwest::Method::PUT,
            "/api/v1/rooms/nope/waiting_room",
            None,
            r#"{"open": true}"#,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (_, state) = srv.get("/api/v1/state").await;
    let actions = state["event"]["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0]["action"], "waiting_room");
    srv.stop().await;
}

#[tokio::test]
async fn the_admin_api_fails_in_its_scenario_window_and_metrics_do_not() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let text = Scenario::builtin_text().replace(
        "\nfaults:\n",
        "\nadmin_api:\n  - {at: -1m, until: 1m, fails: 503}\nfaults:\n",
    );
    let scenario = Scenario::load("down.yaml", &text).unwrap();
    assert_eq!(scenario.admin_api.len(), 1);
    let clock = Clock::scaled(scenario.scheduled_start, 1.0);
    let sim = Sim::new(SimOptions { scenario, seed: 7 }, clock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let task = tokio::spawn(sim.clone().serve(listener, stop.clone()));
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{base}/api/v1/events/launch"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "5");
    let r = http
        .post(format!("{base}/api/v1/rooms"))
        .body(r#"{"account": "cohost"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(sim.snapshot().rooms.len() == 1, "nothing was created");
    let r = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    stop.cancel();
    task.await.unwrap().unwrap();
}
