//! Alert data steering calls, through the real executor against fake
//! targets on loopback: a label value cannot change which resource an
//! `http` step calls, and a target's redirect cannot take the call to
//! another host or out of the target's base path.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use firebreak::chat::Outbox;
use firebreak::clock::Clock;
use firebreak::config::Target;
use firebreak::duration::PromDuration;
use firebreak::executor::actions::ActionEnv;
use firebreak::executor::{Executor, Outcome, RunRequest};
use firebreak::runbook::parse_runbook;
use firebreak::store::Store;

/// One call as a fake saw it: method, raw path, idempotency key, body.
type Call = (String, String, String, String);

#[derive(Default)]
struct Fake {
    calls: Vec<Call>,
    /// Where `/api/away` redirects: another server.
    elsewhere: String,
}

/// Answers by path: `/api/away` 307 to another host, `/api/up` 307 to the
/// same host outside `/api`, `/api/hop` 307 and `/api/see` 303 to
/// `/api/landed`; anything else 200.
async fn handle(
    State(s): State<Arc<Mutex<Fake>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut f = s.lock().unwrap();
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    f.calls.push((
        method.to_string(),
        uri.path().to_owned(),
        key,
        String::from_utf8_lossy(&body).into_owned(),
    ));
    let to = match uri.path() {
        "/api/away" => format!("{}/steal", f.elsewhere),
        "/api/up" => "/tenant-b/steal".to_owned(),
        "/api/hop" | "/api/see" => "/api/landed".to_owned(),
        _ => return (StatusCode::OK, axum::Json(json!({"ok": true}))).into_response(),
    };
    let status = if uri.path() == "/api/see" {
        StatusCode::SEE_OTHER
    } else {
        StatusCode::TEMPORARY_REDIRECT
    };
    (status, [(header::LOCATION, to)]).into_response()
}

async fn serve(fake: Arc<Mutex<Fake>>) -> String {
    let app = axum::Router::new().fallback(handle).with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

struct World {
    target: Arc<Mutex<Fake>>,
    other: Arc<Mutex<Fake>>,
    other_url: String,
    store: Store,
    exec: Executor,
    finished: mpsc::Receiver<firebreak::executor::RunFinished>,
}

/// A target `api` whose base URL has a path (`/api/`), and another server
/// it can redirect to.
async fn world() -> World {
    let other = Arc::new(Mutex::new(Fake::default()));
    let other_url = serve(other.clone()).await;
    let target = Arc::new(Mutex::new(Fake {
        elsewhere: other_url.clone(),
        ..Fake::default()
    }));
    let url = serve(target.clone()).await;
    let store = Store::open("sqlite::memory:").await.unwrap();
    let targets = BTreeMap::from([(
        "api".to_owned(),
        Target {
            name: "api".into(),
            url: reqwest::Url::parse(&format!("{url}/api/")).unwrap(),
            timeout: PromDuration::from_secs(5),
            bearer_secret: None,
            idempotency_keys: true,
        },
    )]);
    let env = ActionEnv {
        http: firebreak::net::target_client().unwrap(),
        targets,
        secrets: BTreeMap::new(),
        outbox: Outbox::new(store.clone()),
        clock: Clock::system(),
        channel: "#test".into(),
        queries: None,
        silencer: None,
    };
    let (tx, finished) = mpsc::channel(4);
    let exec = Executor::new(env, store.clone(), CancellationToken::new(), tx);
    World {
        target,
        other,
        other_url,
        store,
        exec,
        finished,
    }
}

impl World {
    /// Runs a one-step runbook calling `path` with `inputs`; returns the
    /// outcome and the step's error.
    async fn run(
        &mut self,
        id: &str,
        method: &str,
        path: &str,
        inputs: Value,
    ) -> (Outcome, Option<String>) {
        let text = format!(
            r#"kind: runbook
name: steer
trigger: {{manual: true}}
inputs:
  room: {{type: string}}
  speaker: {{type: string}}
steps:
  - id: call
    action: http
    with: {{target: api, method: {method}, path: "{path}", body: {{muted: true}}}}
"#
        );
        let env = firebreak::load::check_env(["api".to_owned()]);
        let rb =
            Arc::new(parse_runbook("steer.yaml", &text, &env).unwrap_or_else(|e| panic!("{e}")));
        // Given as a run request carries them, after defaults.
        let mut all: BTreeMap<String, Value> = BTreeMap::from([
            ("room".into(), json!("main")),
            ("speaker".into(), json!("host")),
        ]);
        all.extend(serde_json::from_value::<BTreeMap<String, Value>>(inputs).unwrap());
        self.exec.start(RunRequest {
            run_id: id.into(),
            runbook: rb,
            incident: "launch".into(),
            concurrency_key: id.into(),
            alert: None,
            inputs: all,
            by: firebreak::timeline::By::Person(firebreak::roles::Who::new("U1", "alice")),
        });
        let done = tokio::time::timeout(Duration::from_secs(30), self.finished.recv())
            .await
            .expect("the run ends within 30s")
            .expect("a run end");
        let steps = self.store.steps(id).await.unwrap();
        (done.outcome, steps.into_iter().find_map(|s| s.error))
    }

    fn calls(&self) -> Vec<(String, String)> {
        self.target
            .lock()
            .unwrap()
            .calls
            .iter()
            .map(|(m, p, _, _)| (m.clone(), p.clone()))
            .collect()
    }
}

const MUTE: &str = "/rooms/{{ inputs.room }}/speakers/{{ inputs.speaker }}/mute";

#[tokio::test]
async fn a_label_value_stays_inside_its_path_segment() {
    let mut w = world().await;
    for (i, speaker) in [
        "../../../rooms#",
        "%2e%2e/%2E%2e/rooms?x=1",
        "..\\..\\rooms",
        "ana maría",
    ]
    .into_iter()
    .enumerate()
    {
        let (outcome, error) = w
            .run(
                &format!("run-{i}"),
                "POST",
                MUTE,
                json!({"speaker": speaker}),
            )
            .await;
        assert_eq!(outcome, Outcome::Succeeded, "{speaker:?}: {error:?}");
    }
    assert_eq!(
        w.calls(),
        [
            "/api/rooms/main/speakers/..%2F..%2F..%2Frooms%23/mute",
            "/api/rooms/main/speakers/%252e%252e%2F%252E%252e%2Frooms%3Fx%3D1/mute",
            "/api/rooms/main/speakers/..%5C..%5Crooms/mute",
            "/api/rooms/main/speakers/ana%20mar%C3%ADa/mute",
        ]
        .map(|p| ("POST".to_owned(), p.to_owned()))
    );
}

#[tokio::test]
async fn a_value_that_would_name_another_resource_fails_the_step_uncalled() {
    let mut w = world().await;
    for (i, (path, inputs, why)) in [
        (MUTE, json!({"speaker": ".."}), "cannot go into a URL path"),
        (MUTE, json!({"speaker": ""}), "cannot go into a URL path"),
        (MUTE, json!({"room": "."}), "cannot go into a URL path"),
        (
            "/rooms/.{{ inputs.room }}/x",
            json!({"room": "."}),
            "cannot go into a URL path",
        ),
        // A `..` the template writes where validation cannot see it (one
        // in plain text is an error at load), in any spelling.
        (
            "/{% if true %}..{% endif %}/tenant-b/{{ inputs.room }}",
            json!({}),
            "`.` or `..` segment",
        ),
        (
            "/{% if true %}%2e%2E{% endif %}/tenant-b/{{ inputs.room }}",
            json!({}),
            "`.` or `..` segment",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let (outcome, error) = w.run(&format!("run-{i}"), "POST", path, inputs).await;
        assert_eq!(outcome, Outcome::Failed, "{path}");
        let error = error.unwrap_or_default();
        assert!(error.contains(why), "{path}: {error}");
    }
    assert_eq!(w.calls(), []);
}

#[tokio::test]
async fn a_redirect_off_the_target_is_refused_and_not_followed() {
    let mut w = world().await;
    let (outcome, error) = w.run("away", "POST", "/away", json!({})).await;
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(
        error.as_deref(),
        Some(
            format!(
                "POST api/api/away: redirected to {}/steal which is outside target api; not followed",
                w.other_url
            )
            .as_str()
        )
    );
    // Same host, outside the target's base path.
    let (outcome, error) = w.run("up", "GET", "/up", json!({})).await;
    assert_eq!(outcome, Outcome::Failed);
    assert!(
        error
            .as_deref()
            .unwrap_or_default()
            .contains("/tenant-b/steal which is outside target api"),
        "{error:?}"
    );
    assert!(w.other.lock().unwrap().calls.is_empty());
    assert_eq!(
        w.calls(),
        [("POST", "/api/away"), ("GET", "/api/up")].map(|(m, p)| (m.to_owned(), p.to_owned()))
    );
}

#[tokio::test]
async fn a_redirect_that_stays_on_the_target_is_followed() {
    let mut w = world().await;
    let (outcome, error) = w.run("hop", "POST", "/hop", json!({})).await;
    assert_eq!(outcome, Outcome::Succeeded, "{error:?}");
    let (outcome, error) = w.run("see", "POST", "/see", json!({})).await;
    assert_eq!(outcome, Outcome::Succeeded, "{error:?}");
    let calls = w.target.lock().unwrap().calls.clone();
    let body = r#"{"muted":true}"#.to_owned();
    assert_eq!(
        calls,
        [
            ("POST", "/api/hop", "firebreak/hop/call", body.as_str()),
            // A 307 repeats the call as it was.
            ("POST", "/api/landed", "firebreak/hop/call", body.as_str()),
            ("POST", "/api/see", "firebreak/see/call", body.as_str()),
            // A 303 makes it a GET, without the body.
            ("GET", "/api/landed", "", ""),
        ]
        .map(|(m, p, k, b)| (m.to_owned(), p.to_owned(), k.to_owned(), b.to_owned()))
    );
}
