//! `firebreak test runbooks`: runs runbook test cases with the real
//! executor. Each case gets its own world and leaves nothing behind: a
//! fake HTTP server on 127.0.0.1:0 for every configured target
//! (answering only the case's stubs), an in-memory SQLite store, recorded
//! series for `query` and `wait until` steps, a stand-in control loop for
//! `silence` steps, and a manual clock that a driver moves forward when
//! the run sleeps, so `wait: 10m` and retry backoffs take no real time.
//!
//! The format and the comparison are model code in
//! [`crate::runbook::testfile`]; this is the I/O around them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use serde_json::{Value as Json, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::chat::{BoxFut, Outbox};
use crate::clock::{Clock, Millis};
use crate::config::{Config, Target};
use crate::diag::{Diagnostic, Diagnostics};
use crate::executor::actions::ActionEnv;
use crate::executor::actions::silence::{Ask, Granted, SilenceError, Silencer};
use crate::executor::{Executor, RunRequest, Verdict};
use crate::runbook::plan::resolve_inputs;
use crate::runbook::template::Templates;
use crate::runbook::testfile::{
    Call, Case, CaseReport, Failure, Got, Stub, TestFile, check_against, compare, parse_test_file,
    result_of,
};
use crate::runbook::{CheckEnv, Runbook, parse_runbook};
use crate::store::Store;
use crate::tsdb::SeriesStore;

/// Real time one case may take before it is failed: virtual waits are
/// free, so only a hung step or a stuck driver gets near this.
const CASE_LIMIT: Duration = Duration::from_secs(60);
/// How often the driver looks at gates and sleepers.
const TICK: Duration = Duration::from_millis(2);
const RUN_ID: &str = "test-run";

/// The test files under `paths` (files or directories, recursively).
pub fn find_test_files(paths: &[PathBuf], errs: &mut Diagnostics) -> Vec<(String, String)> {
    crate::load::read_yaml_files(paths, errs)
        .into_iter()
        .filter(|(_, t)| crate::load::classify(t) == crate::load::FileKind::RunbookTest)
        .collect()
}

/// A test file with its runbook, ready to run.
pub struct Loaded {
    pub tests: TestFile,
    pub runbook: Arc<Runbook>,
}

/// Parses a test file and the runbook it names (relative to it), and
/// checks one against the other and the config's targets.
pub fn load(name: &str, text: &str, config: &Config) -> Result<Loaded, Diagnostics> {
    let tests = parse_test_file(name, text)?;
    let rb_path = Path::new(name)
        .parent()
        .unwrap_or(Path::new(""))
        .join(&tests.runbook);
    let rb_name = rb_path.display().to_string();
    let rb_text = std::fs::read_to_string(&rb_path).map_err(|e| {
        Diagnostics::from(Diagnostic::new(
            name,
            tests.runbook_pos,
            "runbook",
            format!("cannot read {rb_name}: {e}"),
        ))
    })?;
    let env = crate::load::check_env(config.targets.keys().cloned());
    let runbook = with_callees(parse_runbook(&rb_name, &rb_text, &env)?, &rb_path, &env);
    let targets: Vec<String> = config.targets.keys().cloned().collect();
    check_against(&tests, &runbook, &targets).into_result(Loaded {
        tests,
        runbook: Arc::new(runbook),
    })
}

/// Links the runbooks `rb` calls (`action: runbook`), found beside its
/// file, as the daemon links everything it loads: a test of a runbook
/// that holds the line by calling another runs that other one too. A
/// callee that is not there fails its step, saying so.
fn with_callees(rb: Runbook, file: &Path, env: &CheckEnv) -> Runbook {
    let calls = rb
        .steps
        .iter()
        .flat_map(|s| std::iter::once(s).chain(s.rollback.as_deref()))
        .any(|s| s.action == "runbook");
    if !calls {
        return rb;
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    let mut all = vec![];
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p == file || !matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            continue;
        }
        let Ok(text) = crate::load::read_text_file(&p) else {
            continue;
        };
        if crate::load::classify(&text) != crate::load::FileKind::Runbook {
            continue;
        }
        if let Ok(other) = parse_runbook(&p.display().to_string(), &text, env) {
            all.push(other);
        }
    }
    let name = rb.name.clone();
    all.push(rb);
    crate::runbook::calls::link(all)
        .into_iter()
        .find(|r| r.name == name)
        .expect("link keeps every runbook it is given")
}

/// Runs every case of a loaded file, one after the other.
pub async fn run_file(l: &Loaded, config: &Config) -> Vec<CaseReport> {
    let mut out = Vec::new();
    for case in &l.tests.cases {
        let failures = match run_case(&l.runbook, case, config).await {
            Ok(got) => compare(case, &got),
            Err(e) => vec![Failure::Setup(format!("{e:#}"))],
        };
        out.push(CaseReport {
            name: case.name.clone(),
            failures,
        });
    }
    out
}

/// What the tests among `files` say of `rb` (the runbook as loaded): the
/// cases of every test file whose `runbook:` resolves to `rb`'s file, run
/// against it. A test file that does not parse or no longer fits the
/// runbook counts as a failure, not as no tests.
pub async fn test_loaded(
    rb: &Arc<Runbook>,
    files: &[(String, String)],
    config: &Config,
) -> crate::checklist::judge::RunbookState {
    use crate::checklist::judge::RunbookState;
    let want = normalize(Path::new(&rb.file));
    let targets: Vec<String> = config.targets.keys().cloned().collect();
    let (mut passed, mut failed) = (0, 0);
    let mut broken = Vec::new();
    for (name, text) in files {
        #[derive(serde::Deserialize)]
        struct About {
            runbook: Option<String>,
        }
        let dir = Path::new(name).parent().unwrap_or(Path::new(""));
        let about = serde_saphyr::from_str::<About>(text)
            .ok()
            .and_then(|a| a.runbook)
            .map(|r| normalize(&dir.join(r)));
        if about.as_ref() != Some(&want) {
            continue;
        }
        let tests = match parse_test_file(name, text) {
            Ok(t) => t,
            Err(d) => {
                broken.push(first_error(&d));
                continue;
            }
        };
        let problems = check_against(&tests, rb, &targets);
        if !problems.is_empty() {
            broken.push(first_error(&problems));
            continue;
        }
        for case in &tests.cases {
            let ok = match run_case(rb, case, config).await {
                Ok(got) => compare(case, &got).is_empty(),
                Err(_) => false,
            };
            if ok {
                passed += 1;
            } else {
                failed += 1;
            }
        }
    }
    if let Some(b) = broken.into_iter().next() {
        return RunbookState::BadTests(b);
    }
    RunbookState::Tested { passed, failed }
}

fn first_error(d: &Diagnostics) -> String {
    let more = d.len().saturating_sub(1);
    let first = d.iter().next().map(|e| e.to_string()).unwrap_or_default();
    if more > 0 {
        format!("{first}; and {more} more")
    } else {
        first
    }
}

/// A path with `.` and `..` taken out, without touching the disk: test
/// files name their runbook relative to themselves (`../x.yaml`).
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// (target, method, path).
type StubKey = (String, String, String);

/// The fake targets' state.
#[derive(Default)]
struct Fake {
    /// (target, method, path) to the responses and how many were used.
    stubs: BTreeMap<StubKey, (Vec<(u16, Json)>, usize)>,
    calls: Vec<Call>,
    unstubbed: Vec<Call>,
}

async fn answer(
    State((fake, target)): State<(Arc<Mutex<Fake>>, String)>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> (StatusCode, axum::Json<Json>) {
    let path = uri.path().to_owned();
    let body = (!body.is_empty()).then(|| {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&body).into_owned()))
    });
    let call = Call {
        target: target.clone(),
        method: method.to_string(),
        path: path.clone(),
        body,
    };
    let mut f = fake.lock().unwrap_or_else(|e| e.into_inner());
    let key = (target, method.to_string(), path);
    let Some((responses, used)) = f.stubs.get_mut(&key) else {
        f.unstubbed.push(call);
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": "no stub for this call in the runbook test"})),
        );
    };
    let (status, body) = responses[(*used).min(responses.len() - 1)].clone();
    *used += 1;
    f.calls.push(call);
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
}

fn stub_key(s: &Stub, only_target: Option<&String>) -> StubKey {
    let target = s
        .target
        .clone()
        .or_else(|| only_target.cloned())
        .unwrap_or_default();
    (target, s.method.clone(), s.path.clone())
}

/// Runs one case and returns what happened.
pub async fn run_case(rb: &Arc<Runbook>, case: &Case, config: &Config) -> anyhow::Result<Got> {
    use anyhow::Context;
    let only_target = (config.targets.len() == 1)
        .then(|| config.targets.keys().next().cloned())
        .flatten();
    let fake = Arc::new(Mutex::new(Fake::default()));
    {
        let mut f = fake.lock().unwrap_or_else(|e| e.into_inner());
        for s in &case.stubs {
            let responses = s
                .responses
                .iter()
                .map(|r| (r.status, r.body.clone()))
                .collect();
            f.stubs
                .insert(stub_key(s, only_target.as_ref()), (responses, 0));
        }
    }
    // One listener per target, so paths reach the stubs as the runbook
    // wrote them and chat names calls as a real run would.
    let stop = CancellationToken::new();
    let _stop_on_exit = stop.clone().drop_guard();
    let mut servers = Vec::new();
    let mut targets = BTreeMap::new();
    for (name, t) in &config.targets {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a fake target on 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new()
            .fallback(answer)
            .with_state((fake.clone(), name.clone()));
        let server_stop = stop.clone();
        servers.push(tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(server_stop.cancelled_owned())
                .await
        }));
        targets.insert(
            name.clone(),
            Target {
                name: name.clone(),
                url: reqwest::Url::parse(&format!("http://{addr}/")).context("fake target URL")?,
                timeout: t.timeout,
                // Stubs need no credentials; secrets are never read here.
                bearer_secret: None,
                idempotency_keys: t.idempotency_keys,
            },
        );
    }
    let store = Store::open("sqlite::memory:")
        .await
        .context("opening an in-memory store")?;
    let clock = Clock::manual(case.at_ms);
    let mut series = SeriesStore::new(Millis::MAX / 4);
    for s in &case.input_series {
        for (i, v) in s.values.iter().enumerate() {
            if let crate::rules::unittest::SeriesValue::Value(v) = v {
                series
                    .append(s.labels.clone(), i as Millis * case.interval_ms, *v)
                    .map_err(|e| anyhow::anyhow!("input series {}: {e}", s.labels))?;
            }
        }
    }
    let (queries, requests) = crate::watcher::queries(None, clock.clone());
    tokio::spawn(crate::watcher::serve_fixed(requests, series, clock.clone()));
    let silencer = Arc::new(FakeSilencer {
        clock: clock.clone(),
        made: Mutex::new(Vec::new()),
    });

    let env = ActionEnv {
        http: crate::net::target_client().context("building the HTTP client")?,
        targets,
        secrets: BTreeMap::new(),
        outbox: Outbox::new(store.clone()),
        clock: clock.clone(),
        channel: "#runbook-test".into(),
        queries: Some(queries),
        silencer: Some(silencer.clone()),
    };
    let alert = case.alert.as_ref().map(|a| a.to_ctx(clock.now()));
    let inputs = match resolve_inputs(rb, alert.as_ref(), &case.inputs) {
        Ok(i) => i.into_iter().map(|(k, (v, _))| (k, v)).collect(),
        Err(e) => anyhow::bail!("inputs: {e}"),
    };
    let ctx = json!({"alert": alert, "inputs": inputs});
    let concurrency_key = Templates::new()
        .render_str(&rb.concurrency_key, &ctx)
        .unwrap_or_else(|_| rb.concurrency_key.clone());
    let (tx, mut finished) = mpsc::channel(1);
    let exec = Executor::new(env, store.clone(), CancellationToken::new(), tx);
    exec.start(RunRequest {
        run_id: RUN_ID.into(),
        runbook: rb.clone(),
        incident: "test".into(),
        concurrency_key,
        alert,
        inputs,
        by: crate::timeline::By::Bot,
    });

    let mut notes = Vec::new();
    let mut answered: BTreeSet<String> = BTreeSet::new();
    // Deadlines of gates already answered: their sleeps end on their own.
    let mut stale: BTreeSet<Millis> = BTreeSet::new();
    let started = tokio::time::Instant::now();
    let done = loop {
        tokio::select! {
            d = finished.recv() => break d,
            _ = tokio::time::sleep(TICK) => {}
        }
        if started.elapsed() > CASE_LIMIT {
            let _ = exec.abort(RUN_ID, "the test harness");
            notes.push(format!(
                "the run did not end within {}s of real time; aborted",
                CASE_LIMIT.as_secs()
            ));
            break finished.recv().await;
        }
        // Sleepers first: a gate is registered before its deadline sleep,
        // so a sleep seen here has its gate visible below.
        let wake = clock.next_wake();
        let mut acted = false;
        for w in exec.waiting() {
            let Some(a) = case.approvals.get(&w.what) else {
                continue;
            };
            if !answered.insert(w.what.clone()) {
                continue;
            }
            let verdict = if a.approve {
                Verdict::Approve
            } else {
                Verdict::Deny
            };
            // A test names the answerer once: as the id gates compare
            // and as the name records show.
            let by = crate::roles::Who::new(a.by.clone(), a.by.clone());
            if let Err(e) = exec.answer(&w.run, verdict, &by, a.role) {
                notes.push(format!("approval answer for `{}` refused: {e}", w.what));
            } else {
                stale.insert(w.deadline);
                acted = true;
            }
        }
        if !acted
            && let Some(at) = wake
            && !stale.contains(&at)
        {
            clock.advance_to(at);
        }
    };
    exec.drain().await;
    stop.cancel();
    for s in servers {
        let _ = s.await;
    }
    let Some(done) = done else {
        anyhow::bail!("the executor stopped without reporting the run's end");
    };

    let record = store
        .runs()
        .await
        .context("reading the run")?
        .into_iter()
        .find(|r| r.id == RUN_ID);
    let steps = store
        .steps(RUN_ID)
        .await
        .context("reading the steps")?
        .into_iter()
        .map(|s| (s.step_id, result_of(s.state).to_owned(), s.error))
        .collect();
    let chat = store
        .pending_outbox(10_000)
        .await
        .context("reading chat")?
        .into_iter()
        .filter_map(|r| {
            serde_json::from_str::<Json>(&r.payload_json)
                .ok()
                .and_then(|m| m["text"].as_str().map(str::to_owned))
        })
        .collect();
    store.close().await;
    let f = fake.lock().unwrap_or_else(|e| e.into_inner());
    let mut got = Got {
        outcome: done.outcome.as_str().to_owned(),
        error: record.and_then(|r| r.error),
        steps,
        calls: f.calls.clone(),
        unstubbed: f.unstubbed.clone(),
        chat,
        notes,
    };
    let silences = silencer.made.lock().unwrap_or_else(|e| e.into_inner());
    got.notes
        .extend(silences.iter().map(|s| format!("silence made: {s}")));
    Ok(got)
}

/// Stands in for the control loop, which owns silences (`silence` steps
/// need one): it grants every silence and records each as text.
struct FakeSilencer {
    clock: Clock,
    made: Mutex<Vec<String>>,
}

impl Silencer for FakeSilencer {
    fn silence(&self, ask: Ask) -> BoxFut<'_, Result<Granted, SilenceError>> {
        Box::pin(async move {
            let text = format!(
                "{} for {}",
                crate::silence::matchers_text(&ask.matchers),
                crate::duration::PromDuration::from_millis(ask.duration_ms.max(0) as u64)
            );
            let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
            made.push(text);
            Ok(Granted {
                id: format!("test-silence-{}", made.len()),
                ends_at: self.clock.now() + ask.duration_ms,
            })
        })
    }
}
