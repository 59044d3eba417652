//! The executor against a fake target on loopback: what it sends, what it
//! records, what it posts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::common::chat_texts;
use firebreak::chat::Outbox;
use firebreak::clock::Clock;
use firebreak::config::Target;
use firebreak::duration::PromDuration;
use firebreak::executor::actions::ActionEnv;
use firebreak::executor::{AlertCtx, Executor, Outcome, RunRequest};
use firebreak::runbook::parse_runbook;
use firebreak::store::Store;

#[derive(Default)]
struct Fake {
    /// (idempotency key, body) of every request.
    calls: Vec<(String, Value)>,
    /// Answer 503 this many times first.
    fail_first: usize,
}

async fn rooms(
    State(s): State<Arc<Mutex<Fake>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let mut f = s.lock().unwrap();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    f.calls.push((key, body.clone()));
    if f.fail_first > 0 {
        f.fail_first -= 1;
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "overloaded"})),
        );
    }
    if body.get("account") == Some(&json!("nobody")) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "unknown account \"nobody\"; valid: cohost, owner"})),
        );
    }
    (
        StatusCode::CREATED,
        Json(json!({"room": {"id": "cohost-1", "capacity": body["capacity"]}})),
    )
}

async fn fake_target(fail_first: usize) -> (String, Arc<Mutex<Fake>>) {
    let state = Arc::new(Mutex::new(Fake {
        fail_first,
        ..Fake::default()
    }));
    let app = axum::Router::new()
        .route("/api/v1/rooms", post(rooms))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/"), state)
}

const RUNBOOK: &str = r#"kind: runbook
name: make-room
trigger: {manual: true}
inputs:
  account: {type: string, default: cohost}
  capacity: {type: integer, default: 1500000}
steps:
  - id: create
    action: http
    with:
      target: platform
      method: POST
      path: /api/v1/rooms
      body: {account: "{{ inputs.account }}", capacity: "{{ inputs.capacity }}"}
      capture: {room: /room/id}
    retries: {attempts: 3, backoff: 10ms}
  - id: skipped_one
    action: chat
    when: steps.create.status != 201
    with: {text: "never"}
  - id: tell
    action: chat
    with: {text: "room {{ steps.create.room }} ready for {{ alert.labels.event }}"}
"#;

/// What the executor needs, with `url` as the target `platform`.
fn env_for(url: &str, store: &Store) -> ActionEnv {
    let mut targets = BTreeMap::new();
    targets.insert(
        "platform".to_owned(),
        Target {
            name: "platform".into(),
            url: reqwest::Url::parse(url).unwrap(),
            timeout: PromDuration::from_secs(5),
            bearer_secret: None,
            idempotency_keys: true,
        },
    );
    ActionEnv {
        http: firebreak::net::target_client().unwrap(),
        targets,
        secrets: BTreeMap::new(),
        outbox: Outbox::new(store.clone()),
        clock: Clock::system(),
        channel: "#test".into(),
        queries: None,
        silencer: None,
    }
}

async fn run_once(fail_first: usize, account: &str) -> (Outcome, Arc<Mutex<Fake>>, Store, String) {
    let (url, fake) = fake_target(fail_first).await;
    let store = Store::open("sqlite::memory:").await.unwrap();
    let env = env_for(&url, &store);
    let rb = parse_runbook(
        "make-room.yaml",
        RUNBOOK,
        &firebreak::load::check_env(["platform".to_owned()]),
    )
    .unwrap();
    let (tx, mut rx) = mpsc::channel(4);
    let exec = Executor::new(env, store.clone(), CancellationToken::new(), tx);
    let mut inputs = BTreeMap::new();
    inputs.insert("account".to_owned(), json!(account));
    inputs.insert("capacity".to_owned(), json!(1_500_000));
    exec.start(RunRequest {
        run_id: "run-1".into(),
        runbook: Arc::new(rb),
        incident: "launch".into(),
        concurrency_key: "k".into(),
        alert: Some(AlertCtx {
            name: "Full".into(),
            labels: [("event".to_owned(), "launch".to_owned())].into(),
            annotations: BTreeMap::new(),
            value: 1.0,
            fired_at: 0,
        }),
        inputs,
        by: firebreak::timeline::By::Bot,
    });
    let done = rx.recv().await.unwrap();
    exec.drain().await;
    (done.outcome, fake, store, done.run_id)
}

#[tokio::test]
async fn retries_keep_one_idempotency_key_and_types_survive_templating() {
    let (outcome, fake, store, run_id) = run_once(2, "cohost").await;
    assert_eq!(outcome, Outcome::Succeeded);
    let calls = fake.lock().unwrap().calls.clone();
    assert_eq!(calls.len(), 3, "two 503s then success");
    assert!(
        calls.iter().all(|(k, _)| k == "firebreak/run-1/create"),
        "{calls:?}"
    );
    // The whole-expression template kept the integer type.
    assert_eq!(
        calls[0].1,
        json!({"account": "cohost", "capacity": 1500000})
    );

    let steps = store.steps(&run_id).await.unwrap();
    let create = steps.iter().find(|s| s.step_id == "create").unwrap();
    assert_eq!(create.state.as_str(), "succeeded");
    assert_eq!(create.attempts, 3);
    assert!(
        create
            .output_json
            .as_deref()
            .unwrap()
            .contains("\"room\":\"cohost-1\"")
    );
    // Skipped steps do not act; the record says so, so a replay after a
    // restart does not have to decide again.
    let skipped = steps.iter().find(|s| s.step_id == "skipped_one").unwrap();
    assert_eq!((skipped.state.as_str(), skipped.attempts), ("skipped", 0));

    let texts = chat_texts(&store).await;
    assert!(
        texts[0].starts_with("runbook *make-room* started for Full"),
        "{texts:#?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("attempt 1 failed") && t.contains("503")),
        "{texts:#?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("`skipped_one` skipped")),
        "{texts:#?}"
    );
    assert!(
        texts.iter().any(|t| t == "room cohost-1 ready for launch"),
        "{texts:#?}"
    );
    assert!(texts.last().unwrap().contains("succeeded"), "{texts:#?}");
    assert_eq!(store.runs().await.unwrap()[0].state.as_str(), "succeeded");
    let tl = store.timeline("launch").await.unwrap();
    assert!(
        tl.iter().any(|e| e.kind
            == firebreak::timeline::Kind::RunEnded(firebreak::timeline::Outcome::Succeeded))
    );
}

#[tokio::test]
async fn a_client_error_is_not_retried_and_aborts_the_run() {
    let (outcome, fake, store, _) = run_once(0, "nobody").await;
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(fake.lock().unwrap().calls.len(), 1, "4xx is not retried");
    let texts = chat_texts(&store).await;
    assert!(
        texts
            .iter()
            .any(|t| t.contains("returned 404 Not Found: unknown account \"nobody\"")),
        "{texts:#?}"
    );
    assert!(
        !texts.iter().any(|t| t.contains("ready for")),
        "later steps do not run after an abort"
    );
    assert!(texts.last().unwrap().contains("failed"), "{texts:#?}");
    let run = &store.runs().await.unwrap()[0];
    assert_eq!(run.state.as_str(), "failed");
    assert!(
        run.error
            .as_deref()
            .unwrap()
            .contains("step `create` failed")
    );
}

/// A replica's executor acts only while its lease is surely its own: past
/// the local deadline its renewals set (a process frozen past its lease
/// wakes to find it so), it sends nothing and records nothing, though the
/// store would still take its writes, and the run is left where the store
/// says for the next leader.
#[tokio::test]
async fn a_leader_past_its_lease_deadline_sends_nothing() {
    let (url, fake) = fake_target(0).await;
    let dir = tempfile::tempdir().unwrap();
    let plain = Store::open(&format!("sqlite://{}", dir.path().join("fb.db").display()))
        .await
        .unwrap();
    let lease = plain.take_lease("r1", 60_000).await.unwrap().unwrap();
    let fence = firebreak::store::Fence::new("r1", lease.epoch, CancellationToken::new());
    fence.hold_until(std::time::Instant::now() + std::time::Duration::from_millis(300));
    let store = plain.fenced(fence);
    let env = env_for(&url, &store);
    let rb = parse_runbook(
        "slow.yaml",
        "kind: runbook\nname: slow\ntrigger: {manual: true}\nsteps:\n  - {id: pause, action: wait, with: {duration: 600ms}}\n  - {id: create, action: http, with: {target: platform, method: POST, path: /api/v1/rooms, body: {account: cohost}}}\n",
        &firebreak::load::check_env(["platform".to_owned()]),
    )
    .unwrap();
    let (tx, _rx) = mpsc::channel(4);
    let exec = Executor::new(env, store.clone(), CancellationToken::new(), tx);
    exec.start(RunRequest {
        run_id: "run-1".into(),
        runbook: Arc::new(rb),
        incident: "launch".into(),
        concurrency_key: "k".into(),
        alert: None,
        inputs: BTreeMap::new(),
        by: firebreak::timeline::By::Bot,
    });
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    exec.drain().await;
    assert!(
        fake.lock().unwrap().calls.is_empty(),
        "nothing sent past the deadline"
    );
    let runs = plain.unfinished_runs().await.unwrap();
    assert_eq!(runs.len(), 1, "the run is left for the next leader");
    let steps = plain.steps("run-1").await.unwrap();
    assert!(
        steps.iter().all(|s| s.step_id != "create"),
        "the step was not even recorded as started: {steps:?}"
    );
}
