//! SIGKILL `firebreak run` at random points of a mitigation, restart it on
//! the same store, and repeat until the run has ended. Then the simulator
//! must show the mitigation applied exactly once (one room on the secondary
//! account, one move of the event), and the store must show the run ended,
//! every step recorded, and an interrupted run reported in chat.
//!
//! The bot reaches the simulator's admin API through a proxy that holds
//! each request before passing it on and each response before returning
//! it. Without that, a step is in flight for a millisecond or two and a
//! random kill almost never lands inside one, which is the case that
//! matters: the request may or may not have reached the platform.
//!
//! Every fourth iteration runs with `idempotency_keys: false`, so a POST in
//! flight at the kill must not be repeated: the run ends `interrupted`
//! instead, and says so in chat.
//!
//! The alert that starts the run comes three ways in turn: a rule the bot
//! evaluates over its scrape, an alert pushed to `/api/v2/alerts` as
//! Prometheus pushes it (no value), and Alertmanager's webhook. A run
//! started by a pushed alert must resume after a restart like any other.
//!
//! `FB_KILL_ITERATIONS` (default 20) sets the number of runs and
//! `FB_KILL_SEED` replays the kill points of a failure (the seed is printed
//! at the start).

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::Value;

use crate::common::{get_json, start_sim};
use firebreak::store::Store;

pub(crate) const RUNBOOK: &str = "move-to-secondary-room";
/// The shipped runbook's steps, with a short `settle` so a run takes
/// seconds: the bot's clock is the wall clock.
const STEPS: [&str; 8] = [
    "announce",
    "before",
    "create_room",
    "move_event",
    "tell_listeners",
    "settle",
    "verify",
    "report",
];
/// Kills per iteration before the last start, which is left to finish.
const MAX_KILLS: usize = 6;
/// The proxy's hold on each request and on each response.
const HOLD_REQUEST: Duration = Duration::from_millis(60);
const HOLD_RESPONSE: Duration = Duration::from_millis(120);

/// splitmix64: enough randomness for kill points, and reproducible from
/// the printed seed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One request seen by the proxy.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) replayed: bool,
    /// When the request reached the proxy.
    pub(crate) at: Instant,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn forward(
    State(p): State<Proxy>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    tokio::time::sleep(HOLD_REQUEST).await;
    let path = uri.path().to_owned();
    let url = format!(
        "{}{}",
        p.upstream,
        uri.path_and_query().map_or("/", |x| x.as_str())
    );
    let mut req = p.http.request(method.clone(), url).body(body);
    for name in ["content-type", "idempotency-key", "authorization"] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.clone());
        }
    }
    let seen = p.seen.clone();
    // Spawned: once passed on, the request reaches the simulator even if
    // the bot is killed now and this handler is dropped with its
    // connection. That is the crash the executor must survive.
    let sent = tokio::spawn(async move {
        let r = req.send().await?;
        let status = r.status();
        let content_type = r.headers().get("content-type").cloned();
        let replayed = r.headers().contains_key("idempotent-replayed");
        let b = r.bytes().await?;
        seen.lock().unwrap().push(Seen {
            method: method.to_string(),
            path,
            replayed,
            at: arrived,
        });
        Ok::<_, reqwest::Error>((status, content_type, replayed, b))
    });
    let res = sent.await;
    tokio::time::sleep(HOLD_RESPONSE).await;
    match res {
        Ok(Ok((status, content_type, replayed, b))) => {
            let mut resp = Response::new(Body::from(b));
            *resp.status_mut() = status;
            if let Some(ct) = content_type {
                resp.headers_mut().insert("content-type", ct);
            }
            if replayed {
                resp.headers_mut()
                    .insert("idempotent-replayed", "true".parse().unwrap());
            }
            resp
        }
        other => {
            let mut resp = Response::new(Body::from(format!("proxy: {other:?}")));
            *resp.status_mut() = StatusCode::BAD_GATEWAY;
            resp
        }
    }
}

pub(crate) async fn start_proxy(upstream: &str) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new().fallback(forward).with_state(Proxy {
        upstream: format!("http://{upstream}"),
        http: firebreak::net::client().unwrap(),
        seen: seen.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr.to_string(), seen)
}

/// Fires at the first evaluation that sees the event's first room busy,
/// evaluated every second, so a run starts within a couple of seconds of
/// the bot's start and resolves once the event has moved.
pub(crate) const RULES: &str = r#"groups:
  - name: kill-test
    interval: 1s
    rules:
      - alert: ListenerCapacityBreachPredicted
        expr: live_room_listeners{room="main"} > 1000
        labels:
          severity: critical
        annotations:
          summary: 'Room {{ $labels.room }} is busy ({{ $value }} listeners)'
"#;

/// The shipped move-to-secondary-room's steps, settling for 300ms instead
/// of a minute.
pub(crate) const RUNBOOK_YAML: &str = r#"kind: runbook
name: move-to-secondary-room
description: Move the event to a new room on the secondary account.
owner: test
trigger:
  alerts:
    - alertname: ListenerCapacityBreachPredicted
      matchers: ['severity="critical"']
inputs:
  event: {type: string, from: alert.labels.event}
  secondary_account: {type: string, default: cohost}
  capacity: {type: integer, default: 1500000}
policy:
  concurrency_key: "event/{{ inputs.event }}"
  cooldown: 15m
  budget: {runs: 2, per: 1h}
steps:
  - id: announce
    action: chat
    with:
      text: "Room {{ alert.labels.room }} is busy. Moving event {{ inputs.event }} to a new room on {{ inputs.secondary_account }}."
  - id: before
    action: http
    with:
      target: platform
      method: GET
      path: "/api/v1/events/{{ inputs.event }}"
      capture: {room: /event/room}
    timeout: 5s
    retries: {attempts: 3, backoff: 200ms}
  - id: create_room
    action: http
    with:
      target: platform
      method: POST
      path: /api/v1/rooms
      body:
        account: "{{ inputs.secondary_account }}"
        capacity: "{{ inputs.capacity }}"
        title: "{{ inputs.event }} (moved)"
      expect: [201]
      capture: {room: /room/id}
    timeout: 5s
    retries: {attempts: 3, backoff: 200ms}
  - id: move_event
    action: http
    with:
      target: platform
      method: POST
      path: "/api/v1/events/{{ inputs.event }}/move"
      body: {room: "{{ steps.create_room.room }}"}
    timeout: 5s
    retries: {attempts: 3, backoff: 200ms}
    on_failure: rollback
    rollback:
      action: http
      with:
        target: platform
        method: POST
        path: "/api/v1/events/{{ inputs.event }}/move"
        body: {room: "{{ steps.before.room }}"}
  - id: tell_listeners
    action: chat
    with:
      text: "Event {{ inputs.event }} is now live in room {{ steps.create_room.room }}."
  - id: settle
    action: wait
    with: {duration: 300ms}
  - id: verify
    action: http
    with:
      target: platform
      method: GET
      path: "/api/v1/events/{{ inputs.event }}"
      capture: {room: /event/room, listeners: /event/listeners}
  - id: report
    action: chat
    with:
      text: "After the move: {{ steps.verify.listeners }} listeners in room {{ steps.verify.room }}."
"#;

/// A bot process whose output is collected, so it never blocks on a full
/// pipe and a failure can show what it said.
/// Written to a bot's log after each of its two streams ends.
pub(crate) const STREAM_END: &str = "\n[stream ended]\n";

pub(crate) struct Bot {
    pub(crate) child: Child,
}

fn start_bot(config: &std::path::Path, log: &Arc<Mutex<String>>) -> Bot {
    start_bot_with(config, log, &[])
}

/// [`start_bot`] with environment variables set.
pub(crate) fn start_bot_with(
    config: &std::path::Path,
    log: &Arc<Mutex<String>>,
    env: &[(&str, &str)],
) -> Bot {
    let mut child = Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(["run", "--config", config.to_str().unwrap()])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start firebreak run");
    for mut pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            let mut log = log.lock().unwrap();
            log.push_str(&s);
            log.push_str(STREAM_END);
        });
    }
    Bot { child }
}

impl Bot {
    /// SIGKILL: no shutdown path runs, as when the machine dies.
    pub(crate) fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The store as a killed bot left it.
struct Record {
    runs: Vec<firebreak::store::RunRecord>,
    steps: Vec<firebreak::store::StepRecord>,
    chat: Vec<String>,
}

async fn read_store(db: &std::path::Path) -> Record {
    let url = format!("sqlite://{}", db.display());
    let store = Store::open(&url).await.unwrap();
    let runs = store.runs().await.unwrap();
    let mut steps = Vec::new();
    for r in &runs {
        steps.extend(store.steps(&r.id).await.unwrap());
    }
    store.close().await;
    // Sent and unsent alike: what the bot said, or will say on its next
    // start.
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let rows: Vec<(String,)> = sqlx::query_as("SELECT payload_json FROM outbox ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    let chat = rows
        .into_iter()
        .map(|(p,)| {
            serde_json::from_str::<Value>(&p).unwrap()["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    Record { runs, steps, chat }
}

/// Where a kill landed, for the summary: the step in flight, if any.
fn in_flight(r: &Record) -> Option<String> {
    r.steps
        .iter()
        .find(|s| s.finished_at.is_none())
        .map(|s| s.step_id.clone())
}

#[derive(Default)]
struct Tally {
    kills: usize,
    before_run: usize,
    in_flight: BTreeMap<String, usize>,
    between_steps: usize,
    after_end: usize,
    outcomes: BTreeMap<String, usize>,
    replays: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_never_repeats_or_forgets_a_mitigation() {
    let iterations: usize = std::env::var("FB_KILL_ITERATIONS")
        .ok()
        .map(|s| s.parse().expect("FB_KILL_ITERATIONS is a number"))
        .unwrap_or(20);
    let seed: u64 = std::env::var("FB_KILL_SEED")
        .ok()
        .map(|s| s.parse().expect("FB_KILL_SEED is a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!(
        "kill_restart: seed {seed} ({iterations} iterations); FB_KILL_SEED={seed} replays it"
    );
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    let started = Instant::now();
    for i in 0..iterations {
        let keys = i % 4 != 3;
        iteration(i, keys, &mut rng, &mut tally, seed).await;
    }
    eprintln!(
        "kill_restart: {iterations} runs in {:.0?}; {} kills: {} before the run started, {} between steps, {} after it ended, in flight: {:?}; outcomes {:?}; {} replayed POSTs answered by the simulator's idempotency keys",
        started.elapsed(),
        tally.kills,
        tally.before_run,
        tally.between_steps,
        tally.after_end,
        tally.in_flight,
        tally.outcomes,
        tally.replays,
    );
}

/// How the alert that starts the run reaches the bot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Via {
    Rule,
    Push,
    Webhook,
}

pub(crate) const PUSHED_LABELS: &str = r#"{"alertname": "ListenerCapacityBreachPredicted", "severity": "critical", "event": "launch", "room": "main"}"#;

/// Pushes the alert every 250ms, as Prometheus re-sends a firing alert
/// (and Alertmanager a webhook), whether or not the bot is up.
pub(crate) fn start_pusher(via: Via, listen: String) -> tokio::task::JoinHandle<()> {
    let (path, body) = match via {
        Via::Push => (
            "/api/v2/alerts",
            format!("[{{\"labels\": {PUSHED_LABELS}}}]"),
        ),
        _ => (
            "/api/v1/alertmanager",
            format!(
                "{{\"version\": \"4\", \"receiver\": \"firebreak\", \"status\": \"firing\", \"alerts\": [{{\"status\": \"firing\", \"labels\": {PUSHED_LABELS}}}]}}"
            ),
        ),
    };
    tokio::spawn(async move {
        let http = firebreak::net::client().unwrap();
        loop {
            let _ = http
                .post(format!("http://{listen}{path}"))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

/// Writes the rules, the runbook and a config that scrapes the simulator
/// and reaches its admin API through `proxy`, with the store at
/// `dir/fb.db`; `extra` is appended to the config. Returns the config's
/// path.
pub(crate) fn write_config(
    dir: &std::path::Path,
    rules: &str,
    runbook: &str,
    sim_addr: &str,
    proxy: &str,
    keys: bool,
    extra: &str,
) -> std::path::PathBuf {
    std::fs::write(dir.join("rules.yml"), rules).unwrap();
    std::fs::create_dir(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("runbooks/move.yaml"), runbook).unwrap();
    let config = dir.join("firebreak.yaml");
    std::fs::write(
        &config,
        format!(
            "sources:\n  scrape:\n    - name: sim\n      url: http://{sim_addr}/metrics\n      interval: 1s\n      timeout: 1s\nrules:\n  paths: ['{rules}']\nrunbooks:\n  paths: ['{runbooks}']\ntargets:\n  platform: {{url: 'http://{proxy}', timeout: 5s, idempotency_keys: {keys}}}\n{store}chat:\n  channel: '#test'\n{extra}",
            rules = dir.join("rules.yml").display(),
            runbooks = dir.join("runbooks").display(),
            store = if extra.contains("store:") {
                String::new()
            } else {
                format!("store:\n  url: sqlite://{}\n", dir.join("fb.db").display())
            },
        ),
    )
    .unwrap();
    config
}

async fn iteration(i: usize, keys: bool, rng: &mut Rng, tally: &mut Tally, seed: u64) {
    let via = [Via::Rule, Via::Push, Via::Webhook][i % 3];
    // The bot runs on the wall clock, so the simulator does too, from 3
    // minutes in: the first room is busy and far from crashing.
    let (_sim, sim_addr) = start_sim(&["--speed", "1", "--from", "3m"]);
    let (proxy, seen) = start_proxy(&sim_addr).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fb.db");
    let listen = format!("127.0.0.1:{}", crate::common::free_port());
    let rules = if via == Via::Rule {
        RULES
    } else {
        "groups: []\n"
    };
    let pusher = (via != Via::Rule).then(|| start_pusher(via, listen.clone()));
    let config = write_config(
        dir.path(),
        rules,
        RUNBOOK_YAML,
        &sim_addr,
        &proxy,
        keys,
        &format!("server:\n  listen: {listen}\n"),
    );

    let log = Arc::new(Mutex::new(String::new()));
    let mut kills = Vec::new();
    let ctx = |kills: &[u64], log: &Arc<Mutex<String>>| {
        format!(
            "iteration {i} (seed {seed}, idempotency_keys {keys}, alert by {via:?}), kills after {kills:?} ms\nbot output:\n{}",
            log.lock().unwrap()
        )
    };
    let mut record = None;
    for _ in 0..MAX_KILLS {
        // The first start needs a scrape and an evaluation before the
        // alert fires; a restart resumes at once.
        let window = if kills.is_empty() { 3500 } else { 2000 };
        let at = rng.below(window);
        let bot = start_bot(&config, &log);
        tokio::time::sleep(Duration::from_millis(at)).await;
        bot.kill();
        kills.push(at);
        tally.kills += 1;
        let r = read_store(&db).await;
        match r.runs.first() {
            None => tally.before_run += 1,
            Some(run) if run.finished_at.is_some() => tally.after_end += 1,
            Some(_) => match in_flight(&r) {
                Some(step) => *tally.in_flight.entry(step).or_default() += 1,
                None => tally.between_steps += 1,
            },
        }
        if r.runs.first().is_some_and(|run| run.finished_at.is_some()) {
            record = Some(r);
            break;
        }
    }
    let record = match record {
        Some(r) => r,
        None => {
            // The last start runs to the end.
            let bot = start_bot(&config, &log);
            let mut r = read_store(&db).await;
            let deadline = Instant::now() + Duration::from_secs(20);
            while r.runs.first().is_none_or(|run| run.finished_at.is_none())
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
                r = read_store(&db).await;
            }
            bot.kill();
            read_store(&db).await
        }
    };

    if let Some(p) = pusher {
        p.abort();
    }
    let (state, created, moves) = mitigations(&sim_addr).await;
    let why = ctx(&kills, &log);

    // Nothing forgotten: the alert fired, so a run exists and has ended.
    assert_eq!(
        record.runs.len(),
        1,
        "one run of {RUNBOOK}: {:?}\n{why}",
        record.runs
    );
    let run = &record.runs[0];
    assert!(
        run.finished_at.is_some(),
        "the run never ended: {run:?}\nsteps: {:?}\n{why}",
        record.steps
    );
    tally.replays += seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.replayed && s.method == "POST")
        .count();

    // No mitigation applied twice.
    assert!(created.len() <= 1, "rooms created: {created:?}\n{why}");
    assert!(moves.len() <= 1, "moves: {moves:?}\n{why}");
    let step = |id: &str| record.steps.iter().find(|s| s.step_id == id);
    *tally.outcomes.entry(run.state.to_string()).or_default() += 1;
    match run.state.as_str() {
        "succeeded" => {
            assert_eq!(created.len(), 1, "rooms created: {created:?}\n{why}");
            assert_eq!(moves.len(), 1, "moves: {moves:?}\n{why}");
            assert_eq!(moves[0]["to_room"], created[0], "{why}");
            assert_eq!(state["event"]["room"], created[0], "{why}");
            for id in STEPS {
                let s = step(id).unwrap_or_else(|| panic!("step {id} not recorded\n{why}"));
                assert_eq!(s.state.as_str(), "succeeded", "{s:?}\n{why}");
                assert!(s.finished_at.is_some(), "{s:?}\n{why}");
            }
            let out: Value =
                serde_json::from_str(step("create_room").unwrap().output_json.as_ref().unwrap())
                    .unwrap();
            assert_eq!(out["room"], created[0], "the room the run recorded\n{why}");
            assert!(
                record
                    .chat
                    .iter()
                    .any(|t| t.contains(&format!("runbook *{RUNBOOK}* succeeded"))),
                "{:?}\n{why}",
                record.chat
            );
        }
        "interrupted" => {
            // Only a POST that is not safe to repeat may interrupt a run.
            assert!(
                !keys,
                "with idempotency keys every step may be repeated: {run:?}\n{why}"
            );
            let at = record
                .steps
                .iter()
                .find(|s| s.state.as_str() == "interrupted")
                .unwrap_or_else(|| panic!("no step marked interrupted: {:?}\n{why}", record.steps));
            assert!(
                ["create_room", "move_event"].contains(&at.step_id.as_str()),
                "{at:?}\n{why}"
            );
            // Every step before it finished; none after it ran.
            let pos = STEPS.iter().position(|s| *s == at.step_id).unwrap();
            for id in &STEPS[..pos] {
                let s = step(id).unwrap_or_else(|| panic!("step {id} not recorded\n{why}"));
                assert_eq!(s.state.as_str(), "succeeded", "{s:?}\n{why}");
            }
            for id in &STEPS[pos + 1..] {
                assert!(step(id).is_none(), "{id} ran after the interruption\n{why}");
            }
            if at.step_id == "create_room" {
                assert!(moves.is_empty(), "{moves:?}\n{why}");
            } else {
                assert_eq!(created.len(), 1, "{created:?}\n{why}");
            }
            assert!(
                record
                    .chat
                    .iter()
                    .any(|t| t.contains("was interrupted") && t.contains(&at.step_id)),
                "an interrupted run says so in chat, naming the step: {:?}\n{why}",
                record.chat
            );
        }
        other => panic!("run ended {other}: {run:?}\n{why}"),
    }
}

/// The simulator's state, the rooms made on the secondary account, and
/// the event's moves.
pub(crate) async fn mitigations(sim_addr: &str) -> (Value, Vec<String>, Vec<Value>) {
    let state = get_json(
        &firebreak::net::client().unwrap(),
        &format!("http://{sim_addr}/api/v1/state"),
    )
    .await
    .unwrap();
    let created = state["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["account"] == "cohost")
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let moves = state["event"]["moves"].as_array().unwrap().clone();
    (state, created, moves)
}

/// A proxy that answers 503 (as an admin API in an outage does) while
/// `down` is set, and passes requests on otherwise.
#[derive(Clone)]
struct Flaky {
    upstream: String,
    http: reqwest::Client,
    down: Arc<std::sync::atomic::AtomicBool>,
}

async fn flaky(
    State(p): State<Flaky>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if p.down.load(std::sync::atomic::Ordering::SeqCst) {
        let mut resp = Response::new(Body::from("{\"error\": \"admin API down\"}"));
        *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return resp;
    }
    let url = format!(
        "{}{}",
        p.upstream,
        uri.path_and_query().map_or("/", |x| x.as_str())
    );
    let mut req = p.http.request(method, url).body(body);
    for name in ["content-type", "idempotency-key"] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.clone());
        }
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            let ct = r.headers().get("content-type").cloned();
            let mut resp = Response::new(Body::from(r.bytes().await.unwrap_or_default()));
            *resp.status_mut() = status;
            if let Some(ct) = ct {
                resp.headers_mut().insert("content-type", ct);
            }
            resp
        }
        Err(e) => {
            let mut resp = Response::new(Body::from(format!("proxy: {e}")));
            *resp.status_mut() = StatusCode::BAD_GATEWAY;
            resp
        }
    }
}

/// The runbook above, tried again after 2 seconds instead of 20.
fn quick_retry_runbook() -> String {
    RUNBOOK_YAML.replace(
        "  budget: {runs: 2, per: 1h}\n",
        "  budget: {runs: 2, per: 1h}\n  retry: {attempts: 5, backoff: 2s, max_backoff: 2s}\n",
    )
}

/// A run that failed on an outage before changing anything is tried again
/// (dispatch rule 5). When the bot is killed while that try is pending,
/// the next start must still try it (the streak is in the store), once,
/// and the mitigation must then be applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_try_pending_at_a_kill_is_made_after_the_restart() {
    let (_sim, sim_addr) = start_sim(&["--speed", "1", "--from", "3m"]);
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let app = axum::Router::new().fallback(flaky).with_state(Flaky {
        upstream: format!("http://{sim_addr}"),
        http: firebreak::net::client().unwrap(),
        down: down.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fb.db");
    let config = write_config(
        dir.path(),
        RULES,
        &quick_retry_runbook(),
        &sim_addr,
        &proxy.to_string(),
        true,
        "",
    );
    let log = Arc::new(Mutex::new(String::new()));
    let why = |log: &Arc<Mutex<String>>, r: &Record| {
        format!(
            "runs: {:?}\nchat: {:#?}\nbot output:\n{}",
            r.runs,
            r.chat,
            log.lock().unwrap()
        )
    };

    // Down: the first run fails at its first call, having changed nothing,
    // and a try is scheduled. The bot is killed while it is pending.
    let bot = start_bot(&config, &log);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut r = read_store(&db).await;
    while !r.chat.iter().any(|t| t.contains("trying it again in")) {
        assert!(
            Instant::now() < deadline,
            "no try scheduled\n{}",
            why(&log, &r)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        r = read_store(&db).await;
    }
    bot.kill();
    let r = read_store(&db).await;
    assert!(
        r.runs.iter().all(|run| run.state.as_str() == "failed"),
        "{}",
        why(&log, &r)
    );
    let failed_before = r.runs.len();

    // Up again, and a new start: the pending try is made, and it moves the
    // event.
    down.store(false, std::sync::atomic::Ordering::SeqCst);
    let bot = start_bot(&config, &log);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut r = read_store(&db).await;
    while !r
        .runs
        .iter()
        .any(|run| run.state.as_str() == "succeeded" && run.finished_at.is_some())
    {
        assert!(
            Instant::now() < deadline,
            "the pending try was never made after the restart\n{}",
            why(&log, &r)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        r = read_store(&db).await;
    }
    // Time for a wrong second run to show itself.
    tokio::time::sleep(Duration::from_secs(3)).await;
    bot.kill();
    let r = read_store(&db).await;
    let (_, created, moves) = mitigations(&sim_addr).await;
    assert_eq!((created.len(), moves.len()), (1, 1), "{}", why(&log, &r));
    assert_eq!(
        r.runs
            .iter()
            .filter(|run| run.state.as_str() == "succeeded")
            .count(),
        1,
        "{}",
        why(&log, &r)
    );
    assert_eq!(
        r.runs.len(),
        failed_before + 1,
        "one run after the restart: {}",
        why(&log, &r)
    );
}
