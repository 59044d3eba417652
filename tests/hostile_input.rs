//! Alert data steering calls, through the real executor against a fake
//! target on loopback: a label value cannot change which resource an
//! `http` step calls.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use firebreak::chat::Outbox;
use firebreak::clock::Clock;
use firebreak::config::Target;
use firebreak::duration::PromDuration;
use firebreak::executor::actions::ActionEnv;
use firebreak::executor::{Executor, Outcome, RunRequest};
use firebreak::runbook::{CheckEnv, parse_runbook};
use firebreak::store::Store;

/// Every call the fake saw: method and raw path.
#[derive(Default)]
struct Fake {
    calls: Vec<(String, String)>,
}

async fn handle(
    State(s): State<Arc<Mutex<Fake>>>,
    method: Method,
    uri: Uri,
) -> (StatusCode, axum::Json<Value>) {
    let mut f = s.lock().unwrap();
    f.calls.push((method.to_string(), uri.path().to_owned()));
    (StatusCode::OK, axum::Json(json!({"ok": true})))
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
    store: Store,
    exec: Executor,
    finished: mpsc::Receiver<firebreak::executor::RunFinished>,
}

/// A target `api` whose base URL has a path (`/api/`).
async fn world() -> World {
    let target = Arc::new(Mutex::new(Fake::default()));
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
        http: firebreak::net::client().unwrap(),
        targets,
        secrets: BTreeMap::new(),
        outbox: Outbox::new(store.clone()),
        clock: Clock::system(),
        channel: "#test".into(),
        queries: None,
        control: None,
    };
    let (tx, finished) = mpsc::channel(4);
    let exec = Executor::new(env, store.clone(), CancellationToken::new(), tx);
    World {
        target,
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
        let env = CheckEnv {
            targets: ["api".to_owned()].into(),
        };
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
            actor: "alice".into(),
        });
        let done = tokio::time::timeout(Duration::from_secs(30), self.finished.recv())
            .await
            .expect("the run ends within 30s")
            .expect("a run end");
        let steps = self.store.steps(id).await.unwrap();
        (done.outcome, steps.into_iter().find_map(|s| s.error))
    }

    fn calls(&self) -> Vec<(String, String)> {
        self.target.lock().unwrap().calls.clone()
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
        // A `..` the template itself writes, in any spelling.
        (
            "/../tenant-b/{{ inputs.room }}",
            json!({}),
            "`.` or `..` segment",
        ),
        (
            "/%2e%2E/tenant-b/{{ inputs.room }}",
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
