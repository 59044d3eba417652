//! Pre-event checklists against the simulator: the shipped
//! launch-readiness checklist says NO-GO on the 2023 defaults with the
//! reasons and fixes, and GO once the fixes are applied through the
//! simulator's admin API; every kind of check fails, and fails to run,
//! with its reason; and the chat flow (card, sign-off, timeline) through
//! the daemon.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value as Json, json};

use firebreak::chat::{BoxFut, ChatAdapter, ChatError, ChatMessage, Outgoing};
use firebreak::checklist::state::{Phase, RunState};
use firebreak::checklist::{Outcome, Verdict, parse_checklist};
use firebreak::clock::Clock;
use firebreak::command::{Actor, handle};
use firebreak::config::Config;
use firebreak::roles::Role;

fn config_for(sim: &str, db: &std::path::Path) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    format!(
        "sources:\n  scrape:\n    - name: sim\n      url: http://{sim}/metrics\n      interval: 1s\n      timeout: 1s\nrules:\n  paths: ['{root}/alerts']\nrunbooks:\n  paths: ['{root}/runbooks']\ntargets:\n  platform: {{url: 'http://{sim}'}}\nstore:\n  url: sqlite://{}\nchat:\n  channel: '#test'\n",
        db.display()
    )
}

/// `firebreak check` as a person runs it: exit code, stdout, stderr.
fn check(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .arg("check")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start firebreak check");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check_json(result: &Json, name: &str) -> Json {
    result["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no check {name} in {result:#}"))
}

/// The fixes the NO-GO names, applied through the simulator's admin API.
async fn apply_fixes(sim: &str) {
    firebreak::net::install_crypto_provider();
    let http = firebreak::net::client().unwrap();
    for (method, path, body) in [
        (
            reqwest::Method::PATCH,
            "/api/v1/rooms/main",
            json!({"capacity": 1_000_000, "admission_rate": 2500}),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/rooms",
            json!({"account": "cohost"}),
        ),
        (
            reqwest::Method::POST,
            "/api/v1/rooms/main/speakers/host/soundcheck",
            json!({}),
        ),
    ] {
        let r = http
            .request(method.clone(), format!("http://{sim}{path}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_readiness_says_no_go_on_the_2023_defaults_and_go_after_the_fixes() {
    let (_sim, sim) = crate::common::start_sim(&["--speed", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fb.db");
    let cfg = dir.path().join("firebreak.yaml");
    std::fs::write(&cfg, config_for(&sim, &db)).unwrap();
    let cfg = cfg.to_str().unwrap();

    let (code, out, err) = check(&["launch-readiness", "--config", cfg, "--json"], "");
    assert_eq!(code, 1, "NO-GO exits 1\n{out}\n{err}");
    let r: Json = serde_json::from_str(&out).unwrap();
    assert_eq!(r["verdict"], "NO-GO");
    let capacity = check_json(&r, "room-capacity");
    assert_eq!(capacity["outcome"], "fail");
    assert_eq!(
        capacity["evidence"],
        "capacity 520,000 < needed 720,000 (600,000 + 20%); admission/min 60,000 >= needed 60,000 (50,000 + 20%)"
    );
    assert!(
        capacity["fix"]
            .as_str()
            .unwrap()
            .contains("PATCH /api/v1/rooms/main"),
        "{capacity}"
    );
    let secondary = check_json(&r, "secondary-room-ready");
    assert_eq!(
        (
            secondary["outcome"].as_str(),
            secondary["evidence"].as_str()
        ),
        (Some("fail"), Some("0 (wanted == 1)"))
    );
    assert!(
        secondary["fix"]
            .as_str()
            .unwrap()
            .contains(r#"{"account": "cohost"}"#)
    );
    assert_eq!(check_json(&r, "host-audio-checked")["outcome"], "fail");
    assert_eq!(check_json(&r, "host-audio-clean")["outcome"], "pass");
    let ready = check_json(&r, "mitigations-ready");
    assert_eq!(ready["outcome"], "pass", "{ready}");
    assert!(
        ready["evidence"]
            .as_str()
            .unwrap()
            .contains("cap-listeners: 4 test(s) pass")
    );
    assert_eq!(check_json(&r, "platform-reachable")["outcome"], "pass");
    assert_eq!(check_json(&r, "commander-sign-off")["outcome"], "waiting");
    // Nobody to ask: stdin is not a terminal and --ask was not given.
    assert!(!err.contains("Sign off as"), "{err}");

    // The run was stored with its verdict in the event's timeline.
    let store = firebreak::store::Store::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let runs = store.checklist_runs("launch-readiness").await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].1.verdict(), Verdict::NoGo);
    let timeline = store.timeline("launch").await.unwrap();
    assert!(
        timeline[0].text.contains("NO-GO: 4 of 6 blockers did not pass: room-capacity, secondary-room-ready, host-audio-checked, commander-sign-off"),
        "{timeline:?}"
    );
    store.close().await;

    apply_fixes(&sim).await;
    // Without a sign-off it is still NO-GO, and says what is missing.
    let (code, out, _) = check(&["launch-readiness", "--config", cfg, "--no-store"], "");
    assert_eq!(code, 1);
    assert!(
        out.contains("NO-GO: 1 of 6 blockers did not pass: commander-sign-off"),
        "{out}"
    );
    // The person at the terminal signs off once they have seen the rest.
    let (code, out, err) = check(
        &["launch-readiness", "--config", cfg, "--ask", "--no-store"],
        "y\n",
    );
    assert_eq!(code, 0, "GO exits 0\n{out}\n{err}");
    assert!(out.contains("GO: every blocker passed (6 of 6)"), "{out}");
    assert!(
        out.contains("capacity 1,000,000 >= needed 720,000"),
        "{out}"
    );
    assert!(err.contains("Sign off as"), "{err}");
    // Progress went to stderr as checks finished.
    assert!(err.contains("PASS    mitigations-ready"), "{err}");

    // A parameter changes the projection: 900,000 listeners do not fit.
    let (code, out, _) = check(
        &[
            "launch-readiness",
            "expected_audience=900000",
            "--config",
            cfg,
            "--ask",
            "--no-store",
        ],
        "y\n",
    );
    assert_eq!(code, 1);
    assert!(
        out.contains("capacity 1,000,000 < needed 1,080,000 (900,000 + 20%)"),
        "{out}"
    );

    let (code, _, err) = check(&["launch-readines", "--config", cfg], "");
    assert_eq!(code, 2, "a checklist that cannot run exits 2");
    assert!(
        err.contains("no checklist named \"launch-readines\" (did you mean \"launch-readiness\"?)"),
        "{err}"
    );
    let (code, _, err) = check(&["launch-readiness", "audience=1", "--config", cfg], "");
    assert_eq!(code, 2);
    assert!(
        err.contains("launch-readiness has no event parameter \"audience\"; it has"),
        "{err}"
    );
}

/// A target that answers what it is told to, or never.
async fn fake_target(status: u16, body: &'static str, hang: bool) -> String {
    let app = axum::Router::new().fallback(move || async move {
        if hang {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        (axum::http::StatusCode::from_u16(status).unwrap(), body)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/")
}

fn target(name: &str, url: &str) -> firebreak::config::Target {
    firebreak::config::Target {
        name: name.into(),
        url: reqwest::Url::parse(url).unwrap(),
        timeout: firebreak::duration::PromDuration::from_secs(10),
        bearer_secret: None,
        idempotency_keys: false,
    }
}

/// Each kind of check passing, failing, and unable to run, measured for
/// real: PromQL over a scrape of the simulator, HTTP against fake
/// targets, runbook tests with the real executor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_passes_fails_and_cannot_run_with_its_reason() {
    let (_sim, sim) = crate::common::start_sim(&["--speed", "1"]);
    let mut config = Config::for_simulator(&sim);
    config.targets.insert(
        "ok".into(),
        target("ok", &fake_target(200, "ready", false).await),
    );
    config.targets.insert(
        "broken".into(),
        target("broken", &fake_target(503, "overloaded", false).await),
    );
    config.targets.insert(
        "hangs".into(),
        target("hangs", &fake_target(200, "", true).await),
    );
    let closed = crate::common::free_port();
    config.targets.insert(
        "down".into(),
        target("down", &format!("http://127.0.0.1:{closed}/")),
    );
    // A target that sends its callers to another host.
    let app = axum::Router::new().fallback(move || async move {
        let elsewhere = format!("http://127.0.0.1:{closed}/elsewhere");
        (
            axum::http::StatusCode::FOUND,
            [(axum::http::header::LOCATION, elsewhere)],
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let moved = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    config
        .targets
        .insert("moved".into(), target("moved", &format!("http://{moved}/")));
    let mut loaded = firebreak::load::load_embedded(config).unwrap();
    // A test file that expects what cap-listeners does not do.
    let (name, text) = loaded
        .runbook_tests
        .iter()
        .find(|(n, _)| n.contains("cap-listeners"))
        .cloned()
        .unwrap();
    loaded.runbook_tests.retain(|(n, _)| n != &name);
    loaded.runbook_tests.push((
        name,
        text.replacen("outcome: succeeded", "outcome: failed", 1),
    ));

    let env = firebreak::checklist::Env {
        targets: loaded.config.targets.keys().cloned().collect(),
        runbooks: loaded.runbooks.iter().map(|r| r.name.clone()).collect(),
    };
    let list = parse_checklist(
        "kinds.yaml",
        r#"kind: checklist
name: kinds
event: {room: main, bad: "rate(", audience: 600000}
checks:
  - name: query-pass
    query: {expr: 'max(live_room_capacity{room="{{ event.room }}"})', expect: "> 0"}
  - name: query-fail
    query: {expr: 'max(live_room_capacity{room="{{ event.room }}"})', expect: ">= 10000000"}
  - name: query-no-series
    query: {expr: 'live_room_capacity{room="nowhere"}', expect: "> 0"}
  - name: query-cannot-run
    query: {expr: '{{ event.bad }}', expect: "> 0"}
  - name: capacity-pass
    capacity: {audience: 100000, join_rate_per_min: 1000, capacity: 'max(live_room_capacity)', admission_per_min: 'max(live_room_admission_rate) * 60', headroom: 0}
  - name: capacity-fail
    capacity: {audience: "{{ event.audience }}", join_rate_per_min: 50000, capacity: 'max(live_room_capacity{room="main"})', admission_per_min: 'max(live_room_admission_rate{room="main"}) * 60'}
  - name: capacity-cannot-run
    capacity: {audience: 1, join_rate_per_min: 1, capacity: 'live_speaker_feedback_level', admission_per_min: '1'}
  - name: http-pass
    http: {target: ok, path: /x, body_contains: ready}
  - name: http-fail
    http: {target: broken, path: /x}
  - name: http-down
    http: {target: down, path: /x}
  - name: http-timeout
    timeout: 1s
    http: {target: hangs, path: /x}
  - name: runbook-pass
    runbook: {names: [move-to-secondary-room, mute-feedback-speaker]}
  - name: runbook-fail
    runbook: {names: [cap-listeners]}
  - name: http-redirected
    http: {target: moved, path: /x}
"#,
        &env,
    )
    .unwrap();
    let clock = Clock::system();
    let event = firebreak::checklist::event_params(&list, &[]).unwrap();
    let exprs = firebreak::preflight::exprs(&list, &firebreak::preflight::template_ctx(&event));
    let inst = firebreak::preflight::instruments_for(&loaded, &exprs, &clock, &|_| {})
        .await
        .unwrap();
    let mut state = RunState::new(
        "r1",
        &list,
        event,
        &firebreak::timeline::By::Schedule("test".into()),
        clock.now(),
    );
    let mut seen = Vec::new();
    firebreak::preflight::measure_all(&list, &mut state, &inst, |_, r| seen.push(r.name.clone()))
        .await;
    assert_eq!(seen.len(), 14, "progress heard every check: {seen:?}");
    let got: BTreeMap<&str, (&Outcome, &str)> = state
        .checks
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                (c.outcome.as_ref().unwrap(), c.evidence.as_str()),
            )
        })
        .collect();
    let is = |name: &str, want: &str| {
        let (o, e) = got[name];
        let word = firebreak::checklist::state::mark(Some(o));
        assert_eq!(word, want, "{name}: {e}");
        e.to_owned()
    };
    assert_eq!(is("query-pass", "PASS"), "520,000 (wanted > 0)");
    assert_eq!(is("query-fail", "FAIL"), "520,000 (wanted >= 10,000,000)");
    assert_eq!(
        is("query-no-series", "FAIL"),
        "no series: nothing was measured (wanted > 0)"
    );
    assert!(is("query-cannot-run", "ERROR").starts_with("rate(: bad expression"));
    assert!(is("capacity-pass", "PASS").starts_with("capacity 520,000 >= needed 100,000"));
    assert!(is("capacity-fail", "FAIL").starts_with("capacity 520,000 < needed 720,000"));
    assert_eq!(
        is("capacity-cannot-run", "ERROR"),
        "capacity: live_speaker_feedback_level gave 3 series; aggregate it to one number, e.g. max(...)"
    );
    assert_eq!(
        is("http-pass", "PASS"),
        "GET ok/x → 200, body contains \"ready\""
    );
    assert_eq!(is("http-fail", "FAIL"), "GET broken/x → 503 (wanted 200)");
    assert_eq!(is("http-down", "ERROR"), "GET down/x: connection failed");
    assert_eq!(is("http-timeout", "ERROR"), "timed out after 1s");
    assert_eq!(
        is("http-redirected", "ERROR"),
        format!(
            "GET moved/x: redirected to http://127.0.0.1:{closed}/elsewhere which is outside target moved; not followed"
        )
    );
    // Runbook tests that stub a target without naming it need a config
    // with one target; with several they no longer fit, and say why.
    assert!(
        is("runbook-pass", "FAIL").starts_with(
            "move-to-secondary-room: tests broken (runbooks/tests/move-to-secondary-room.test.yaml:15:9: tests[0].stubs[0].target: needed when config has more than one target"
        ),
        "{:?}",
        got["runbook-pass"]
    );
    assert!(state.settle(clock.now()));
    let one_target = firebreak::preflight::Instruments {
        config: Arc::new(Config::for_simulator(&sim)),
        ..inst.clone()
    };
    let r = firebreak::preflight::measure(&list.checks[11], &json!({}), &one_target).await;
    assert_eq!(
        (r.outcome, r.evidence.as_str()),
        (
            Outcome::Pass,
            "move-to-secondary-room: 13 test(s) pass; mute-feedback-speaker: 4 test(s) pass"
        )
    );
    let r = firebreak::preflight::measure(&list.checks[12], &json!({}), &one_target).await;
    assert_eq!(
        (r.outcome, r.evidence.as_str()),
        (Outcome::Fail, "cap-listeners: 1 of 4 test(s) fail")
    );
    assert_eq!(state.verdict(), Verdict::NoGo);

    // With no metrics source at all, PromQL checks cannot run and say so.
    let bare = firebreak::preflight::Instruments {
        queries: None,
        ..inst.clone()
    };
    let r =
        firebreak::preflight::measure(&list.checks[0], &json!({"event": {"room": "main"}}), &bare)
            .await;
    assert_eq!(
        r.outcome,
        Outcome::Error("no metrics source is configured (`scrape:` or `sources.remote`)".into())
    );
    // A runbook the checklist names that is not loaded is not ready.
    let none = firebreak::preflight::Instruments {
        runbooks: Vec::new(),
        ..inst
    };
    let r = firebreak::preflight::measure(&list.checks[12], &json!({}), &none).await;
    assert_eq!(
        (r.outcome, r.evidence.as_str()),
        (Outcome::Fail, "cap-listeners: not loaded")
    );
}

/// A target that takes `Authorization: Bearer s3cret` and refuses the rest.
async fn guarded_target() -> String {
    let app = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let auth = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if auth == Some("Bearer s3cret") {
            (axum::http::StatusCode::OK, "hello")
        } else {
            (axum::http::StatusCode::UNAUTHORIZED, "who are you")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/")
}

/// Issue 22, item 1: a `credentials` check proves, before the night,
/// that every target a runbook may call (its rollbacks and the runbooks it
/// calls included) answers with the bot's credentials, and names each
/// one that would fail the first mitigation, and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credentials_check_proves_each_target_takes_its_secret() {
    use firebreak::config::SecretSource;
    let dir = tempfile::tempdir().unwrap();
    let secret = |name: &str, value: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, value).unwrap();
        SecretSource::File(path.display().to_string())
    };
    let guarded = guarded_target().await;
    let mut config = Config::default();
    config
        .secrets
        .insert("good".into(), secret("good", "s3cret\n"));
    config
        .secrets
        .insert("old".into(), secret("old", "expired"));
    config.secrets.insert(
        "unset".into(),
        SecretSource::Env("FIREBREAK_TEST_NEVER_SET_TOKEN".into()),
    );
    for (name, url, bearer) in [
        ("good", guarded.clone(), Some("good")),
        ("stale", guarded.clone(), Some("old")),
        ("unset", guarded.clone(), Some("unset")),
        (
            "down",
            format!("http://127.0.0.1:{}/", crate::common::free_port()),
            None,
        ),
    ] {
        let mut t = target(name, &url);
        t.bearer_secret = bearer.map(str::to_owned);
        config.targets.insert(name.into(), t);
    }
    let book = |name: &str, steps: &str| {
        (
            format!("runbooks/{name}.yaml"),
            format!("kind: runbook\nname: {name}\ntrigger: {{manual: true}}\nsteps:\n{steps}"),
        )
    };
    let books = [
        book(
            "rb-good",
            "  - id: ping\n    action: http\n    with: {target: good, method: GET, path: /rooms}\n",
        ),
        book(
            "rb-all",
            "  - id: cap\n    action: http\n    with: {target: stale, method: PUT, path: /cap}\n    rollback:\n      action: http\n      with: {target: unset, method: PUT, path: /uncap}\n  - id: inner\n    action: runbook\n    with: {runbook: rb-inner}\n",
        ),
        book(
            "rb-inner",
            "  - id: move\n    action: http\n    with: {target: down, method: POST, path: /move}\n",
        ),
    ];
    let loaded = firebreak::load::load(config, &[], &books).unwrap();
    let env = firebreak::checklist::Env {
        targets: loaded.config.targets.keys().cloned().collect(),
        runbooks: loaded.runbooks.iter().map(|r| r.name.clone()).collect(),
    };
    let list = parse_checklist(
        "creds.yaml",
        "kind: checklist\nname: creds\nchecks:\n  - name: good\n    credentials: {runbooks: [rb-good], path: /health}\n  - name: all\n    credentials: {runbooks: [rb-all]}\n  - name: every-runbook\n    credentials: {}\n",
        &env,
    )
    .unwrap();
    let inst = firebreak::preflight::Instruments {
        queries: None,
        http: firebreak::net::target_client().unwrap(),
        config: Arc::new(loaded.config.clone()),
        runbooks: loaded.runbooks.clone(),
        runbook_tests: Arc::new(Vec::new()),
        clock: Clock::system(),
    };
    let r = firebreak::preflight::measure(&list.checks[0], &json!({}), &inst).await;
    assert_eq!(
        (r.outcome, r.evidence.as_str()),
        (
            Outcome::Pass,
            "1 target(s) answer with their credentials: good → 200"
        )
    );
    let r = firebreak::preflight::measure(&list.checks[1], &json!({}), &inst).await;
    assert_eq!(r.outcome, Outcome::Fail, "{}", r.evidence);
    for needle in [
        "3 of 3 target(s) would fail a mitigation: ",
        "down did not answer (GET down/: connection failed)",
        "stale refused the credentials (401)",
        "unset: environment variable FIREBREAK_TEST_NEVER_SET_TOKEN is not set",
    ] {
        assert!(
            r.evidence.contains(needle),
            "no {needle:?} in {}",
            r.evidence
        );
    }
    // Without names, every loaded runbook's targets.
    let r = firebreak::preflight::measure(&list.checks[2], &json!({}), &inst).await;
    assert!(
        r.evidence
            .starts_with("3 of 4 target(s) would fail a mitigation: "),
        "{}",
        r.evidence
    );
    // A runbook that is not there is said when the checklist loads.
    let e = parse_checklist(
        "creds.yaml",
        "kind: checklist\nname: creds\nchecks:\n  - name: typo\n    credentials: {runbooks: [rb-gods], path: health}\n",
        &env,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("checks[0].credentials.runbooks[0]: no runbook named \"rb-gods\" (did you mean \"rb-good\"?)"),
        "{e}"
    );
    assert!(
        e.contains("checks[0].credentials.path: must start with /"),
        "{e}"
    );
}

/// Records what the daemon delivers to chat.
#[derive(Default)]
struct Recorder(Mutex<Vec<ChatMessage>>);

impl ChatAdapter for Recorder {
    fn send<'a>(&'a self, out: Outgoing<'a>) -> BoxFut<'a, Result<String, ChatError>> {
        Box::pin(async move {
            let mut all = self.0.lock().unwrap();
            all.push(out.msg.clone());
            Ok(format!("m{}", all.len()))
        })
    }
}

impl Recorder {
    /// The newest card of checklist runs, once `f` holds of it.
    async fn card_where(&self, f: impl Fn(&RunState) -> bool) -> RunState {
        crate::common::eventually(30, || async {
            self.0
                .lock()
                .unwrap()
                .iter()
                .rev()
                .filter_map(|m| m.checklist.as_deref())
                .find(|r| f(r))
                .cloned()
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "no such card; sent: {:#?}",
                self.0
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|m| m.text.clone())
                    .collect::<Vec<_>>()
            )
        })
    }
}

fn person(name: &str, role: Role) -> Actor {
    Actor {
        id: format!("U-{name}"),
        name: name.into(),
        role,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_chat_a_card_fills_in_is_signed_off_and_lands_in_the_timeline() {
    let (_sim, sim) = crate::common::start_sim(&["--speed", "1"]);
    apply_fixes(&sim).await;
    let mut config = Config::for_simulator(&sim);
    config.scrape[0].interval = firebreak::duration::PromDuration::from_secs(1);
    let loaded = firebreak::load::load_embedded(config).unwrap();
    let store = firebreak::store::Store::open("sqlite::memory:")
        .await
        .unwrap();
    let chat = Arc::new(Recorder::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let daemon = firebreak::daemon::Daemon::start(
        loaded,
        store.clone(),
        Clock::system(),
        chat.clone(),
        stop.clone(),
    )
    .await
    .unwrap();
    let ctx = daemon.ctx.clone();

    // Until the first scrape the metrics are not there and it is NO-GO;
    // each attempt is a run of its own.
    let mut card = None;
    for _ in 0..20 {
        let said = handle(
            &ctx,
            &person("bob", Role::Responder),
            "checklist launch-readiness",
        )
        .await;
        assert!(
            said.text
                .starts_with("checking *launch-readiness* (run launch-readiness-"),
            "{}",
            said.text
        );
        let id = said
            .text
            .split("(run ")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap()
            .to_owned();
        let c = chat
            .card_where(|r| r.id == id && r.phase() != Phase::Checking)
            .await;
        if c.phase() == Phase::AwaitingSignOff {
            card = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let card = card.expect("a run reached the sign-off once the simulator was scraped");
    let run = card.id.clone();
    assert_eq!(card.started_by, "bob (U-bob)");
    let sent = chat.0.lock().unwrap().clone();
    let text = &sent
        .iter()
        .rev()
        .find(|m| m.checklist.as_ref().is_some_and(|r| r.id == run))
        .unwrap()
        .text;
    assert!(
        text.starts_with("✋ *WAITING FOR SIGN-OFF* · checklist launch-readiness"),
        "{text}"
    );
    assert!(
        sent.iter()
            .filter(|m| m.checklist.as_ref().is_some_and(|r| r.id == run))
            .all(|m| m.slot.as_deref() == Some(&format!("checklist:{run}"))),
        "every version of the card goes to the run's one slot"
    );
    // The card's button stands for this command.
    let blocks = firebreak::chat::blocks::render(
        sent.iter()
            .rev()
            .find(|m| m.checklist.as_ref().is_some_and(|r| r.id == run))
            .unwrap(),
    );
    let button = &blocks.as_array().unwrap().last().unwrap()["elements"][0];
    let command = button["value"].as_str().unwrap();
    assert_eq!(command, format!("signoff {run} commander-sign-off"));

    let r = handle(&ctx, &person("bob", Role::Responder), command).await;
    assert_eq!(
        r.text,
        "not signed off: commander-sign-off needs commander; you are a responder"
    );
    let r = handle(&ctx, &person("alice", Role::Commander), command).await;
    assert_eq!(
        r.text,
        "commander-sign-off: signed off by alice (U-alice) as commander"
    );
    let done = chat
        .card_where(|r| r.id == run && r.finished_at.is_some())
        .await;
    assert_eq!(done.phase(), Phase::Done(Verdict::Go));
    let r = handle(&ctx, &person("carol", Role::Commander), command).await;
    assert!(
        r.text
            .contains("is over; start a new one with `checklist launch-readiness`"),
        "{}",
        r.text
    );

    let timeline = store.timeline("launch").await.unwrap();
    // The refused sign-off is on the record, by id and name.
    assert!(
        timeline
            .iter()
            .any(|t| t.kind == firebreak::timeline::Kind::CommandRefused
                && t.by.id() == "U-bob"
                && t.by.label() == "bob (U-bob)"
                && t.text.contains("sign-off of commander-sign-off")
                && t.text.ends_with("needs commander; you are a responder")),
        "{timeline:#?}"
    );
    let texts: Vec<&str> = timeline.iter().map(|t| t.text.as_str()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.ends_with("commander-sign-off: signed off by alice (U-alice) as commander")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains(&format!("(run {run}): GO: every blocker passed (6 of 6)"))),
        "{texts:?}"
    );
    let stored = store.checklist_runs("launch-readiness").await.unwrap();
    assert!(
        stored
            .iter()
            .any(|(_, r)| r.id == run && r.verdict() == Verdict::Go)
    );

    let r = handle(&ctx, &person("bob", Role::Responder), "checklist nope").await;
    assert_eq!(
        r.text,
        "not started: no checklist named \"nope\"; loaded: launch-readiness"
    );
    stop.cancel();
    daemon.wait().await.unwrap();
}
