//! The executor's safety features against a fake target on loopback:
//! rollback in reverse order, verification that rolls back or escalates,
//! approval gates, and resuming after a restart without repeating a
//! mitigation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::common::chat_texts;
use firebreak::chat::Outbox;
use firebreak::clock::Clock;
use firebreak::config::Target;
use firebreak::duration::PromDuration;
use firebreak::executor::actions::ActionEnv;
use firebreak::executor::{Executor, Outcome, RunFinished, RunRequest, Verdict};
use firebreak::roles::{Role, Who};
use firebreak::run_state::StepState;
use firebreak::runbook::{Runbook, parse_runbook};
use firebreak::store::Store;

/// Records every call; answers by path: `/fail` 500, `/bad` 400,
/// `/health` 503 until `healthy`, `GET /rooms/<id>` the room in `rooms`
/// (404 when it has none), anything else 200 with a room id.
#[derive(Default)]
struct Fake {
    calls: Vec<(String, String, String)>,
    healthy: bool,
    rooms: BTreeMap<String, Value>,
}

async fn handle(
    State(s): State<Arc<Mutex<Fake>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    _body: Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let mut f = s.lock().unwrap();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    f.calls
        .push((method.to_string(), uri.path().to_owned(), key));
    if let (&Method::GET, Some(id)) = (&method, uri.path().strip_prefix("/rooms/")) {
        return match f.rooms.get(id) {
            Some(room) => (StatusCode::OK, axum::Json(json!({ "room": room }))),
            None => (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": format!("no room {id}")})),
            ),
        };
    }
    match uri.path() {
        "/fail" => (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({}))),
        "/bad" => (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "no"}))),
        "/health" if !f.healthy => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({}))),
        _ => (StatusCode::OK, axum::Json(json!({"room": {"id": "r-1"}}))),
    }
}

struct World {
    fake: Arc<Mutex<Fake>>,
    url: String,
    store: Store,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let fake = Arc::new(Mutex::new(Fake::default()));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}", dir.path().join("fb.db").display()))
            .await
            .unwrap();
        World {
            fake,
            url: format!("http://{addr}/"),
            store,
            _dir: dir,
        }
    }

    fn executor(
        &self,
        idempotency_keys: bool,
        shutdown: CancellationToken,
    ) -> (Executor, mpsc::Receiver<RunFinished>) {
        let mut targets = BTreeMap::new();
        targets.insert(
            "api".to_owned(),
            Target {
                name: "api".into(),
                url: reqwest::Url::parse(&self.url).unwrap(),
                timeout: PromDuration::from_secs(5),
                bearer_secret: None,
                idempotency_keys,
            },
        );
        let env = ActionEnv {
            http: firebreak::net::target_client().unwrap(),
            targets,
            secrets: BTreeMap::new(),
            outbox: Outbox::new(self.store.clone()),
            clock: Clock::system(),
            channel: "#test".into(),
            queries: None,
            silencer: None,
        };
        let (tx, rx) = mpsc::channel(4);
        (Executor::new(env, self.store.clone(), shutdown, tx), rx)
    }

    fn calls(&self) -> Vec<(String, String)> {
        self.fake
            .lock()
            .unwrap()
            .calls
            .iter()
            .map(|(m, p, _)| (m.clone(), p.clone()))
            .collect()
    }

    async fn chat(&self) -> Vec<String> {
        chat_texts(&self.store).await
    }
}

fn runbook(text: &str) -> Arc<Runbook> {
    let env = firebreak::load::check_env(["api".to_owned()]);
    Arc::new(parse_runbook("rb.yaml", text, &env).unwrap_or_else(|e| panic!("{e}")))
}

fn request(rb: &Arc<Runbook>, id: &str) -> RunRequest {
    RunRequest {
        run_id: id.into(),
        runbook: rb.clone(),
        incident: "launch".into(),
        concurrency_key: "launch".into(),
        alert: None,
        inputs: BTreeMap::new(),
        by: firebreak::timeline::By::Person(firebreak::roles::Who::new("U1", "alice")),
    }
}

async fn finish(rx: &mut mpsc::Receiver<RunFinished>) -> RunFinished {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("the run ends within 30s")
        .expect("a run end")
}

const ROLLBACK: &str = r#"kind: runbook
name: three-steps
trigger: {manual: true}
steps:
  - id: create
    action: http
    with: {target: api, method: POST, path: /rooms, capture: {room: /room/id}}
    rollback:
      action: http
      with: {target: api, method: DELETE, path: "/rooms/{{ steps.create.room }}"}
  - id: note
    action: chat
    with: {text: "no rollback for chat"}
  - id: cap
    action: http
    with: {target: api, method: PUT, path: /cap}
    rollback:
      action: http
      with: {target: api, method: PUT, path: /uncap}
  - id: move
    action: http
    with: {target: api, method: POST, path: /bad}
    on_failure: rollback
  - id: never
    action: http
    with: {target: api, method: POST, path: /never}
"#;

#[tokio::test]
async fn a_failed_step_rolls_back_what_was_done_in_reverse_order() {
    let w = World::new().await;
    let (exec, mut rx) = w.executor(true, CancellationToken::new());
    exec.start(request(&runbook(ROLLBACK), "run-1"));
    let done = finish(&mut rx).await;
    assert_eq!(done.outcome, Outcome::RolledBack);
    assert_eq!(
        w.calls(),
        [
            ("POST", "/rooms"),
            ("PUT", "/cap"),
            ("POST", "/bad"),
            ("PUT", "/uncap"),
            ("DELETE", "/rooms/r-1"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let runs = w.store.runs().await.unwrap();
    assert_eq!(runs[0].state.as_str(), "rolled_back");
    assert!(
        runs[0]
            .error
            .as_deref()
            .unwrap()
            .contains("step `move` failed")
    );
    let chat = w.chat().await;
    assert!(
        chat.iter().any(|t| t == "rolling back: `cap`, `create`"),
        "{chat:#?}"
    );
    assert!(
        chat.last().unwrap().contains("rolled back") && chat.last().unwrap().contains("undone"),
        "{chat:#?}"
    );
}

fn verified(on_failure: &str) -> String {
    format!(
        r#"kind: runbook
name: verified
trigger: {{manual: true}}
steps:
  - id: mitigate
    action: http
    with: {{target: api, method: POST, path: /mitigate}}
    rollback:
      action: http
      with: {{target: api, method: POST, path: /undo}}
verify:
  on_failure: {on_failure}
  steps:
    - id: recovered
      action: http
      with: {{target: api, method: GET, path: /health}}
      retries: {{attempts: 2, backoff: 10ms}}
"#
    )
}

#[tokio::test]
async fn verification_that_does_not_recover_rolls_back_or_escalates() {
    let w = World::new().await;
    let (exec, mut rx) = w.executor(true, CancellationToken::new());
    exec.start(request(&runbook(&verified("rollback")), "run-1"));
    assert_eq!(finish(&mut rx).await.outcome, Outcome::RolledBack);
    let paths: Vec<String> = w.calls().into_iter().map(|c| c.1).collect();
    assert_eq!(
        paths,
        ["/mitigate", "/health", "/health", "/health", "/undo"]
    );

    exec.start(request(&runbook(&verified("escalate")), "run-2"));
    let done = finish(&mut rx).await;
    assert_eq!(done.outcome, Outcome::Failed);
    let paths: Vec<String> = w.calls().into_iter().skip(5).map(|c| c.1).collect();
    assert_eq!(
        paths,
        ["/mitigate", "/health", "/health", "/health"],
        "no undo"
    );
    let runs = w.store.runs().await.unwrap();
    assert!(
        runs[1]
            .error
            .as_deref()
            .unwrap()
            .contains("escalated, the mitigation is left in place")
    );

    w.fake.lock().unwrap().healthy = true;
    exec.start(request(&runbook(&verified("rollback")), "run-3"));
    assert_eq!(finish(&mut rx).await.outcome, Outcome::Succeeded);
}

const GATED: &str = r#"kind: runbook
name: gated
trigger: {manual: true}
steps:
  - id: look
    action: http
    with: {target: api, method: GET, path: /look}
  - id: move
    action: http
    approval: {role: commander, timeout: 1m}
    with: {target: api, method: POST, path: /move}
"#;

async fn waiting_for(exec: &Executor, run: &str) {
    for _ in 0..200 {
        if exec.waiting().iter().any(|g| g.run == run) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("run {run} never waited for approval");
}

#[tokio::test]
async fn a_gated_step_waits_for_a_commander() {
    let w = World::new().await;
    let (exec, mut rx) = w.executor(true, CancellationToken::new());
    let rb = runbook(GATED);
    exec.start(request(&rb, "run-1"));
    waiting_for(&exec, "run-1").await;
    assert_eq!(w.calls().len(), 1, "the gated step has not acted");
    let e = exec
        .answer(
            "run-1",
            Verdict::Approve,
            &Who::new("U0BOB", "bob"),
            Role::Responder,
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("needs a commander; you are a responder"),
        "{e}"
    );
    exec.answer(
        "run-1",
        Verdict::Approve,
        &Who::new("U0CAROL", "carol"),
        Role::Commander,
    )
    .unwrap();
    assert_eq!(finish(&mut rx).await.outcome, Outcome::Succeeded);
    assert_eq!(w.calls().last().unwrap().1, "/move");
    let steps = w.store.steps("run-1").await.unwrap();
    let gate = steps.iter().find(|s| s.step_id == "approval:move").unwrap();
    assert_eq!(gate.state.as_str(), "approved");
    assert!(gate.output_json.as_deref().unwrap().contains("carol"));

    // Denied: the run stops before the step acts.
    exec.start(request(&rb, "run-2"));
    waiting_for(&exec, "run-2").await;
    exec.answer(
        "run-2",
        Verdict::Deny,
        &Who::new("U0BOB", "bob"),
        Role::Responder,
    )
    .unwrap();
    let done = finish(&mut rx).await;
    assert_eq!(done.outcome, Outcome::Aborted);
    assert_eq!(w.calls().iter().filter(|c| c.1 == "/move").count(), 1);
    let chat = w.chat().await;
    assert!(
        chat.iter().any(|t| t.contains("`move` denied by bob")),
        "{chat:#?}"
    );
}

#[tokio::test]
async fn an_approval_step_can_proceed_when_nobody_objects() {
    let w = World::new().await;
    let (exec, mut rx) = w.executor(true, CancellationToken::new());
    let rb = runbook(
        r#"kind: runbook
name: quiet
trigger: {manual: true}
steps:
  - id: ok
    action: approval
    with: {role: responder, timeout: 300ms, on_timeout: proceed, text: "Cap the room?"}
  - id: cap
    action: http
    with: {target: api, method: PUT, path: /cap}
"#,
    );
    exec.start(request(&rb, "run-1"));
    assert_eq!(finish(&mut rx).await.outcome, Outcome::Succeeded);
    assert_eq!(w.calls().len(), 1);
    // Recorded as a gate is, not as a step that did something.
    assert_eq!(
        step_state(&w.store, "run-1", "ok").await.as_deref(),
        Some("approved")
    );
    let chat = w.chat().await;
    assert!(
        chat.iter()
            .any(|t| t.contains("waits at `ok` for a responder: Cap the room?")),
        "{chat:#?}"
    );
}

#[tokio::test]
async fn a_denied_approval_step_fails_and_its_on_failure_decides() {
    let w = World::new().await;
    let (exec, mut rx) = w.executor(true, CancellationToken::new());
    let rb = runbook(
        r#"kind: runbook
name: ask-then-undo
trigger: {manual: true}
steps:
  - id: cap
    action: http
    with: {target: api, method: PUT, path: /cap}
    rollback:
      action: http
      with: {target: api, method: PUT, path: /uncap}
  - id: ok
    action: approval
    with: {role: commander, timeout: 1m}
    on_failure: rollback
"#,
    );
    exec.start(request(&rb, "run-1"));
    waiting_for(&exec, "run-1").await;
    exec.answer(
        "run-1",
        Verdict::Deny,
        &Who::new("U0BOB", "bob"),
        Role::Responder,
    )
    .unwrap();
    let done = finish(&mut rx).await;
    assert_eq!(done.outcome, Outcome::RolledBack);
    let paths: Vec<String> = w.calls().into_iter().map(|c| c.1).collect();
    assert_eq!(paths, ["/cap", "/uncap"]);
    let runs = w.store.runs().await.unwrap();
    assert!(runs[0].error.as_deref().unwrap().contains("denied by bob"));
    assert_eq!(
        step_state(&w.store, "run-1", "ok").await.as_deref(),
        Some("denied")
    );
}

/// An approval step answered before a restart is not asked again, and
/// one denied stays denied: the record, not the restart, decides.
#[tokio::test]
async fn an_answered_approval_step_is_not_asked_again_after_a_restart() {
    for (answer, outcome, calls) in [
        (StepState::Approved, Outcome::Succeeded, 1),
        (StepState::Denied, Outcome::Failed, 0),
    ] {
        let w = World::new().await;
        let rb = runbook(
            r#"kind: runbook
name: asked
trigger: {manual: true}
steps:
  - id: ok
    action: approval
    with: {role: commander, timeout: 1h}
  - id: cap
    action: http
    with: {target: api, method: PUT, path: /cap}
"#,
        );
        unfinished_run(&w, &rb).await;
        w.store.step_started("run-1", "ok", 1, 1, 2).await.unwrap();
        let error = (answer == StepState::Denied).then_some("denied by bob");
        let end = firebreak::store::StepEnd {
            state: answer,
            attempts: 1,
            at: 3,
            output_json: Some(r#"{"approved": true, "by": "alice"}"#).filter(|_| error.is_none()),
            error,
        };
        w.store.step_finished("run-1", "ok", &end).await.unwrap();
        let (exec, mut rx) = w.executor(true, CancellationToken::new());
        assert_eq!(exec.resume(std::slice::from_ref(&rb)).await.len(), 1);
        let done = finish(&mut rx).await;
        assert_eq!(done.outcome, outcome, "{answer}");
        assert!(exec.waiting().is_empty(), "asked again after {answer}");
        assert_eq!(w.calls().len(), calls, "{answer}");
    }
}

#[tokio::test]
async fn abort_stops_a_run_where_it_is_without_rollback() {
    let w = World::new().await;
    let (exec, mut rx) = w.executor(true, CancellationToken::new());
    let rb = runbook(GATED);
    exec.start(request(&rb, "run-1"));
    waiting_for(&exec, "run-1").await;
    assert!(exec.abort("run-9", "carol").is_err(), "unknown run");
    exec.abort("run-1", "carol").unwrap();
    let done = finish(&mut rx).await;
    assert_eq!(done.outcome, Outcome::Aborted);
    assert_eq!(w.calls().len(), 1, "the gated step never acted");
    let runs = w.store.runs().await.unwrap();
    assert_eq!(runs[0].state.as_str(), "aborted");
    assert_eq!(runs[0].error.as_deref(), Some("aborted by carol"));
    assert!(exec.waiting().is_empty());
}

const LONG: &str = r#"kind: runbook
name: long
trigger: {manual: true}
steps:
  - id: create
    action: http
    with: {target: api, method: POST, path: /rooms}
  - id: settle
    action: wait
    with: {duration: 2s}
  - id: move
    action: http
    with: {target: api, method: POST, path: /move}
"#;

async fn step_state(store: &Store, run: &str, step: &str) -> Option<String> {
    store
        .steps(run)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.step_id == step)
        .map(|s| s.state.to_string())
}

#[tokio::test]
async fn a_restart_resumes_the_run_without_repeating_done_steps() {
    let w = World::new().await;
    let rb = runbook(LONG);
    let shutdown = CancellationToken::new();
    let (exec, mut rx) = w.executor(true, shutdown.clone());
    exec.start(request(&rb, "run-1"));
    for _ in 0..200 {
        if step_state(&w.store, "run-1", "settle").await.as_deref() == Some("running") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The bot stops in the middle of the wait.
    shutdown.cancel();
    exec.drain().await;
    assert!(rx.try_recv().is_err(), "a suspended run has not ended");
    assert_eq!(w.store.runs().await.unwrap()[0].finished_at, None);

    // A new process over the same store.
    let (exec2, mut rx2) = w.executor(true, CancellationToken::new());
    let resumed = exec2.resume(&[rb]).await;
    assert_eq!(resumed.len(), 1);
    let done = finish(&mut rx2).await;
    assert_eq!(done.outcome, Outcome::Succeeded);
    assert_eq!(
        w.calls(),
        [("POST", "/rooms"), ("POST", "/move")].map(|(a, b)| (a.to_owned(), b.to_owned())),
        "each mitigation exactly once"
    );
    let chat = w.chat().await;
    assert!(
        chat.iter().any(|t| t.contains("resumed after a restart")),
        "{chat:#?}"
    );
}

/// The record of a run of `rb` that a stopped process left unfinished, as
/// `run-1`; its steps are the test's to add.
async fn unfinished_run(w: &World, rb: &Runbook) -> firebreak::store::RunRecord {
    let rec = firebreak::store::RunRecord {
        id: "run-1".into(),
        runbook: rb.name.clone(),
        incident: "launch".into(),
        concurrency_key: "launch".into(),
        state: firebreak::run_state::RunState::RUNNING,
        started_at: 1,
        finished_at: None,
        error: None,
    };
    let trigger = json!({"alert": null, "inputs": {}, "actor": "alice", "digest": rb.digest});
    w.store
        .insert_run(&rec, &trigger.to_string())
        .await
        .unwrap();
    rec
}

#[tokio::test]
async fn an_unsafe_step_in_flight_at_a_crash_interrupts_the_run() {
    let w = World::new().await;
    let rb = runbook(LONG);
    // What a crash during `create` leaves behind.
    let rec = unfinished_run(&w, &rb).await;
    w.store
        .step_started("run-1", "create", 1, 1, 2)
        .await
        .unwrap();

    // The target does not honour idempotency keys: a POST may not repeat.
    let (exec, mut rx) = w.executor(false, CancellationToken::new());
    assert_eq!(exec.resume(std::slice::from_ref(&rb)).await.len(), 1);
    let done = finish(&mut rx).await;
    assert_eq!(done.outcome, Outcome::Interrupted);
    assert!(w.calls().is_empty(), "nothing sent twice");
    let chat = w.chat().await;
    assert!(
        chat.iter()
            .any(|t| t.contains("was in flight when the bot stopped")),
        "{chat:#?}"
    );

    // A run of a runbook that changed since is not resumed either.
    let rec2 = firebreak::store::RunRecord {
        id: "run-2".into(),
        ..rec
    };
    let old = json!({"alert": null, "inputs": {}, "actor": "alice", "digest": "0000"});
    w.store.insert_run(&rec2, &old.to_string()).await.unwrap();
    assert!(exec.resume(&[rb]).await.is_empty());
    let runs = w.store.runs().await.unwrap();
    let r2 = runs.iter().find(|r| r.id == "run-2").unwrap();
    assert_eq!(r2.state.as_str(), "interrupted");
    assert!(
        r2.error
            .as_deref()
            .unwrap()
            .contains("changed since the run started")
    );
}

fn linked(texts: &[&str]) -> Vec<Arc<Runbook>> {
    let env = firebreak::load::check_env(["api".to_owned()]);
    let files: Vec<(String, String)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("rb{i}.yaml"), (*t).to_owned()))
        .collect();
    firebreak::runbook::load_runbooks(&files, &env)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(Arc::new)
        .collect()
}

const CALLED: &str = r#"kind: runbook
name: cap
trigger: {manual: true}
inputs:
  room: {type: string}
  limit: {type: integer, default: 10}
steps:
  - id: set
    action: http
    with: {target: api, method: PUT, path: "/rooms/{{ inputs.room }}/cap/{{ inputs.limit }}", capture: {room: /room/id}}
  - id: settle
    action: wait
    with: {duration: 1s}
"#;

fn caller(then: &str) -> String {
    format!(
        r#"kind: runbook
name: caller
trigger: {{manual: true}}
steps:
  - id: create
    action: http
    with: {{target: api, method: POST, path: /rooms}}
    rollback:
      action: http
      with: {{target: api, method: DELETE, path: /rooms}}
  - id: capped
    action: runbook
    with: {{runbook: cap, inputs: {{room: main}}}}
    on_failure: rollback
  - id: after
    action: http
    with: {{target: api, method: POST, path: "{then}"}}
"#
    )
}

#[tokio::test]
async fn a_called_runbook_runs_inside_the_step_and_its_outputs_come_back() {
    let w = World::new().await;
    let books = linked(&[CALLED, &caller("/moved/{{ steps.capped.steps.set.room }}")]);
    let rb = books.iter().find(|r| r.name == "caller").unwrap();
    let (exec, mut rx) = w.executor(true, CancellationToken::new());
    exec.start(request(rb, "run-1"));
    let done = finish(&mut rx).await;
    assert_eq!(done.outcome, Outcome::Succeeded);
    let keys: Vec<(String, String, String)> = w.fake.lock().unwrap().calls.clone();
    assert_eq!(
        keys,
        [
            ("POST", "/rooms", "firebreak/run-1/create"),
            ("PUT", "/rooms/main/cap/10", "firebreak/run-1/capped/set"),
            ("POST", "/moved/r-1", "firebreak/run-1/after"),
        ]
        .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    );
    let steps: Vec<(String, String)> = w
        .store
        .steps("run-1")
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.step_id, s.state.to_string()))
        .collect();
    for want in ["create", "capped", "capped/set", "capped/settle", "after"] {
        assert!(
            steps.iter().any(|(id, st)| id == want && st == "succeeded"),
            "{want} in {steps:?}"
        );
    }
    let chat = w.chat().await;
    assert!(
        chat.iter().any(|t| t.starts_with("`capped/set` (http)")),
        "{chat:#?}"
    );
    assert!(
        chat.iter()
            .any(|t| t.starts_with("`capped` (runbook) runbook *cap* succeeded")),
        "{chat:#?}"
    );
}

#[tokio::test]
async fn a_called_runbook_that_fails_fails_the_step_and_the_caller_rolls_back() {
    let w = World::new().await;
    let failing = CALLED.replace("/rooms/{{ inputs.room }}/cap/{{ inputs.limit }}", "/bad");
    let books = linked(&[&failing, &caller("/never")]);
    let rb = books.iter().find(|r| r.name == "caller").unwrap();
    let (exec, mut rx) = w.executor(true, CancellationToken::new());
    exec.start(request(rb, "run-1"));
    let done = finish(&mut rx).await;
    assert_eq!(done.outcome, Outcome::RolledBack);
    assert_eq!(
        w.calls(),
        [("POST", "/rooms"), ("PUT", "/bad"), ("DELETE", "/rooms")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let err = w.store.runs().await.unwrap()[0].error.clone().unwrap();
    assert!(
        err.contains("step `capped` failed: runbook cap failed: step `capped/set` failed"),
        "{err}"
    );
}

#[tokio::test]
async fn a_restart_inside_a_called_runbook_resumes_it_without_repeating_its_steps() {
    let w = World::new().await;
    let books = linked(&[CALLED, &caller("/after")]);
    let rb = books.iter().find(|r| r.name == "caller").unwrap().clone();
    let shutdown = CancellationToken::new();
    let (exec, mut rx) = w.executor(true, shutdown.clone());
    exec.start(request(&rb, "run-1"));
    let mut inside = false;
    for _ in 0..200 {
        if step_state(&w.store, "run-1", "capped/settle")
            .await
            .as_deref()
            == Some("running")
        {
            inside = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(inside, "the called runbook's wait started");
    shutdown.cancel();
    exec.drain().await;
    assert!(rx.try_recv().is_err(), "a suspended run has not ended");

    let (exec2, mut rx2) = w.executor(true, CancellationToken::new());
    assert_eq!(exec2.resume(&books).await.len(), 1);
    let done = finish(&mut rx2).await;
    assert_eq!(done.outcome, Outcome::Succeeded);
    assert_eq!(
        w.calls(),
        [
            ("POST", "/rooms"),
            ("PUT", "/rooms/main/cap/10"),
            ("POST", "/after")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned())),
        "each call exactly once across the restart"
    );
}

/// A move whose verification fails, with a guard on moving back: back
/// only if the room left can take the new room's audience. A second
/// rollback, without a guard, undoes a cap.
fn guarded(name: &str) -> String {
    format!(
        r#"kind: runbook
name: {name}
trigger: {{manual: true}}
steps:
  - id: move
    action: http
    with: {{target: api, method: POST, path: /move/new}}
    rollback:
      guard:
        read:
          - id: origin
            action: http
            with: {{target: api, path: /rooms/old, capture: {{state: /room/state, capacity: /room/capacity}}}}
          - id: destination
            action: http
            with: {{target: api, method: GET, path: /rooms/new, capture: {{listeners: /room/listeners}}}}
        holds: "steps.origin.state != 'crashed' and steps.destination.listeners < 0.9 * steps.origin.capacity"
        otherwise: "room old ({{{{ steps.origin.state }}}}) holds {{{{ steps.origin.capacity }}}}; room new has {{{{ steps.destination.listeners }}}} listening"
      action: http
      with: {{target: api, method: POST, path: /move/old}}
  - id: cap
    action: http
    with: {{target: api, method: PUT, path: /cap}}
    rollback:
      action: http
      with: {{target: api, method: PUT, path: /uncap}}
verify:
  steps:
    - id: recovered
      action: http
      with: {{target: api, path: /health}}
"#
    )
}

/// Runs `guarded(name)` to its end with the rooms the guard will read
/// (`new` left out: that read fails), and the paths the target got.
async fn run_guarded(name: &str, old: Value, new: Option<Value>) -> (World, Outcome, Vec<String>) {
    let w = World::new().await;
    {
        let mut f = w.fake.lock().unwrap();
        f.rooms.insert("old".into(), old);
        if let Some(new) = new {
            f.rooms.insert("new".into(), new);
        }
    }
    let (exec, mut rx) = w.executor(true, CancellationToken::new());
    exec.start(request(&runbook(&guarded(name)), "run-1"));
    let outcome = finish(&mut rx).await.outcome;
    let paths = w.calls().into_iter().map(|c| c.1).collect();
    (w, outcome, paths)
}

/// What the target got before the guarded rollback acts or not: the
/// move, the cap, the failed check, the cap undone (no guard), the reads.
const BEFORE_MOVING_BACK: [&str; 6] = [
    "/move/new",
    "/cap",
    "/health",
    "/uncap",
    "/rooms/old",
    "/rooms/new",
];

async fn step_states(store: &Store, run: &str) -> Vec<(String, String)> {
    store
        .steps(run)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.step_id, s.state.to_string()))
        .collect()
}

fn held_count(runbook: &str) -> u64 {
    firebreak::metrics::get()
        .rollbacks_held
        .with(&[runbook])
        .get()
}

#[tokio::test]
async fn a_rollback_whose_guard_does_not_hold_is_held_for_a_person() {
    // The room left holds 1000; 950 are in the new one: moving them back
    // would fill it to 95%, where it was saturating.
    let (w, outcome, paths) = run_guarded(
        "guard-held",
        json!({"state": "ended", "capacity": 1000}),
        Some(json!({"listeners": 950})),
    )
    .await;
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(
        paths, BEFORE_MOVING_BACK,
        "the unguarded rollback ran, the guarded one read and did not move back"
    );
    let said = "room old (ended) holds 1000; room new has 950 listening";
    let chat = w.chat().await;
    assert!(
        chat.contains(&"rolling back: `cap`, `move` (if its guard holds)".to_owned()),
        "{chat:#?}"
    );
    let run = &w.store.runs().await.unwrap()[0];
    assert_eq!(run.state.as_str(), "failed");
    let err = run.error.as_deref().unwrap();
    assert!(
        err.starts_with("verification `recovered` failed: GET api/health returned 503")
            && err.ends_with(&format!("; rollback of `move` held: {said}")),
        "{err}"
    );
    assert!(
        chat.contains(&format!(
            ":rotating_light: needs a person: rollback of `move` held, not done. {said}"
        )),
        "{chat:#?}"
    );
    assert!(
        chat.last()
            .unwrap()
            .starts_with("runbook *guard-held* failed after"),
        "{chat:#?}"
    );
    let timeline = w.store.timeline("launch").await.unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e.kind == firebreak::timeline::Kind::RollbackHeld && e.text.ends_with(said)),
        "{timeline:#?}"
    );
    assert_eq!(held_count("guard-held"), 1);
    let states = step_states(&w.store, "run-1").await;
    let want = [
        ("move", "succeeded"),
        ("cap", "succeeded"),
        ("recovered", "failed"),
        ("rollback:cap", "succeeded"),
        ("guard:move:origin", "succeeded"),
        ("guard:move:destination", "succeeded"),
        ("rollback:move", "held"),
    ]
    .map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert_eq!(states, want, "the record, in order");
}

#[tokio::test]
async fn a_rollback_whose_guard_holds_rolls_back() {
    let (w, outcome, paths) = run_guarded(
        "guard-holds",
        json!({"state": "ended", "capacity": 1000}),
        Some(json!({"listeners": 100})),
    )
    .await;
    assert_eq!(outcome, Outcome::RolledBack);
    assert_eq!(paths[..6], BEFORE_MOVING_BACK);
    assert_eq!(paths[6..], ["/move/old"]);
    assert_eq!(held_count("guard-holds"), 0);
    let chat = w.chat().await;
    assert!(
        !chat.iter().any(|t| t.contains("needs a person")),
        "{chat:#?}"
    );
}

#[tokio::test]
async fn a_guard_that_cannot_read_holds_the_rollback() {
    // The new room cannot be read: no judging blind.
    let (w, outcome, paths) = run_guarded(
        "guard-blind",
        json!({"state": "ended", "capacity": 1000}),
        None,
    )
    .await;
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(paths, BEFORE_MOVING_BACK);
    let err = w.store.runs().await.unwrap()[0].error.clone().unwrap();
    assert!(
        err.contains("; rollback of `move` held: read `destination` failed: GET api/rooms/new returned 404 Not Found: no room new; (`otherwise` could not be rendered: "),
        "{err}"
    );
    assert_eq!(held_count("guard-blind"), 1);

    // Nor when what it read does not make `holds` a yes or no.
    let (w, outcome, paths) = run_guarded(
        "guard-garbled",
        json!({"state": "ended", "capacity": "lots"}),
        Some(json!({"listeners": 100})),
    )
    .await;
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(paths, BEFORE_MOVING_BACK);
    let err = w.store.runs().await.unwrap()[0].error.clone().unwrap();
    assert!(
        err.contains("rollback of `move` held: `holds` could not be evaluated: "),
        "{err}"
    );
}

/// A restart between the guard's reads and its decision decides from the
/// numbers read before it, without reading again: the same decision the
/// bot would have made.
#[tokio::test]
async fn a_restart_after_the_guard_read_decides_from_what_it_read() {
    let w = World::new().await;
    let rb = runbook(&guarded("guard-resumed"));
    unfinished_run(&w, &rb).await;
    let recorded = [
        ("move", "succeeded", json!({"status": 200})),
        ("cap", "succeeded", json!({"status": 200})),
        ("recovered", "failed", Value::Null),
        ("rollback:cap", "succeeded", json!({"status": 200})),
        (
            "guard:move:origin",
            "succeeded",
            json!({"state": "ended", "capacity": 1000}),
        ),
        (
            "guard:move:destination",
            "succeeded",
            json!({"listeners": 950}),
        ),
    ];
    for (seq, (id, state, out)) in recorded.iter().enumerate() {
        w.store
            .step_started("run-1", id, seq as i64 + 1, 1, 2)
            .await
            .unwrap();
        let out = out.to_string();
        w.store
            .step_finished(
                "run-1",
                id,
                &firebreak::store::StepEnd {
                    state: firebreak::run_state::StepState::parse(state).unwrap(),
                    attempts: 1,
                    at: 3,
                    output_json: (*state == "succeeded").then_some(out.as_str()),
                    error: (*state == "failed").then_some("GET api/health returned 503"),
                },
            )
            .await
            .unwrap();
    }
    let (exec, mut rx) = w.executor(true, CancellationToken::new());
    assert_eq!(exec.resume(&[rb]).await.len(), 1);
    assert_eq!(finish(&mut rx).await.outcome, Outcome::Failed);
    assert!(w.calls().is_empty(), "nothing read or moved again");
    let err = w.store.runs().await.unwrap()[0].error.clone().unwrap();
    assert!(
        err.ends_with(
            "rollback of `move` held: room old (ended) holds 1000; room new has 950 listening"
        ),
        "{err}"
    );
}

/// One step, then the run's end: whether it changed anything, and whether
/// the failure was a passing one.
async fn effects_of(w: &World, steps: &str) -> RunFinished {
    let rb = runbook(&format!(
        "kind: runbook\nname: effects\ntrigger: {{manual: true}}\nsteps:\n{steps}"
    ));
    let (exec, mut rx) = w.executor(true, CancellationToken::new());
    exec.start(request(&rb, "run-1"));
    finish(&mut rx).await
}

#[tokio::test]
async fn a_run_knows_whether_it_changed_anything_before_it_failed() {
    // (steps, changed, transient)
    let cases = [
        // A read that fails changes nothing.
        (
            "  - {id: a, action: http, with: {target: api, path: /health}}\n",
            false,
            true,
        ),
        // A change the target refused as unavailable was not made.
        (
            "  - {id: a, action: http, with: {target: api, method: POST, path: /health}}\n",
            false,
            true,
        ),
        // A 500 may have done it.
        (
            "  - {id: a, action: http, with: {target: api, method: POST, path: /fail}}\n",
            true,
            true,
        ),
        // A 400 did nothing, and will not pass by itself.
        (
            "  - {id: a, action: http, with: {target: api, method: POST, path: /bad}}\n",
            false,
            false,
        ),
        // Done, then a failed read: it changed something.
        (
            "  - {id: a, action: http, with: {target: api, method: POST, path: /ok}}\n  - {id: b, action: http, with: {target: api, path: /health}}\n",
            true,
            true,
        ),
    ];
    for (steps, changed, transient) in cases {
        let w = World::new().await;
        let end = effects_of(&w, steps).await;
        assert_eq!(end.outcome, Outcome::Failed, "{steps}");
        assert_eq!(
            (end.changed, end.transient),
            (changed, transient),
            "{steps}"
        );
        let marked = w.store.runs_changed_nothing().await.unwrap();
        assert_eq!(
            marked.contains("run-1"),
            !changed && transient,
            "{steps}: recorded for the next process too"
        );
        assert_eq!(end.changed_nothing(), !changed && transient, "{steps}");
    }
}

#[tokio::test]
async fn a_target_that_refuses_connections_changed_nothing() {
    let w = World::new().await;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let rb = runbook(
        "kind: runbook\nname: effects\ntrigger: {manual: true}\nsteps:\n  - {id: a, action: http, with: {target: api, method: POST, path: /rooms}}\n",
    );
    let target = Target {
        name: "api".into(),
        url: reqwest::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
        timeout: PromDuration::from_secs(5),
        bearer_secret: None,
        idempotency_keys: true,
    };
    let env = ActionEnv {
        http: firebreak::net::target_client().unwrap(),
        targets: [("api".to_owned(), target)].into(),
        secrets: BTreeMap::new(),
        outbox: Outbox::new(w.store.clone()),
        clock: Clock::system(),
        channel: "#test".into(),
        queries: None,
        silencer: None,
    };
    let (tx, mut rx) = mpsc::channel(4);
    let exec = Executor::new(env, w.store.clone(), CancellationToken::new(), tx);
    exec.start(request(&rb, "run-1"));
    let end = finish(&mut rx).await;
    assert_eq!(end.outcome, Outcome::Failed);
    assert!(end.changed_nothing(), "{end:?}");
}

/// A caller whose first step calls `cap` and whose second reads health.
const CALLS_THEN_READS: &str = r#"kind: runbook
name: caller
trigger: {manual: true}
steps:
  - id: capped
    action: runbook
    with: {runbook: cap, inputs: {room: main}}
  - id: check
    action: http
    with: {target: api, path: /health}
"#;

#[tokio::test]
async fn what_a_called_runbook_did_or_failed_on_is_its_callers() {
    // The callee acts (PUT), then the caller's read fails: changed.
    let w = World::new().await;
    let books = linked(&[CALLED, CALLS_THEN_READS]);
    let rb = books.iter().find(|r| r.name == "caller").unwrap();
    let (exec, mut rx) = w.executor(true, CancellationToken::new());
    exec.start(request(rb, "run-1"));
    let end = finish(&mut rx).await;
    assert_eq!(end.outcome, Outcome::Failed);
    assert!(end.changed && !end.changed_nothing(), "{end:?}");

    // The callee fails on a passing fault before acting: the caller
    // changed nothing, and the failure is still a passing one.
    let w = World::new().await;
    let reads = CALLED.replace(
        "method: PUT, path: \"/rooms/{{ inputs.room }}/cap/{{ inputs.limit }}\", capture: {room: /room/id}",
        "path: /health",
    );
    let books = linked(&[&reads, CALLS_THEN_READS]);
    let rb = books.iter().find(|r| r.name == "caller").unwrap();
    let (exec, mut rx) = w.executor(true, CancellationToken::new());
    exec.start(request(rb, "run-1"));
    let end = finish(&mut rx).await;
    assert_eq!(end.outcome, Outcome::Failed);
    assert!(end.changed_nothing(), "{end:?}");
    assert_eq!(w.calls(), [("GET".to_owned(), "/health".to_owned())]);
}
