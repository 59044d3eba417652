//! Alert to action: how long the bot takes from an alert turning firing to
//! the first mitigation request reaching the platform, for the shipped
//! rules and runbooks against the simulator, and how long each step of a
//! whole move-to-secondary-room run takes.
//!
//! Each sample is a fresh simulator and a fresh bot (the daemon `firebreak
//! run` runs, with its own SQLite store) in this process, sharing one
//! clock running `FB_BENCH_SPEED` (default 60) times faster than real
//! time, replaying 2023-05-24 from 18:00:20 until the move has run. The
//! host feeds back (SpeakerFeedback, answered by mute-feedback-speaker's
//! POST), then the room is projected to saturate
//! (ListenerCapacityBreachPredicted, answered by move-to-secondary-room:
//! a chat line, a GET, then the POST that creates the room).
//!
//! Where the times come from: the alert's firing time is the evaluation
//! time the control loop wrote to the incident timeline; a request's
//! arrival is stamped by a layer in front of the simulator's routes, on
//! the same clock. Step timings are the store's step records. Clock times
//! are divided by the speed to give real time (resolution 1ms / speed).
//!
//! `cargo bench --bench alert_to_action`; `FB_BENCH_SAMPLES` (default 40)
//! sets the number of replays.
//!
//! The cost of replicas: with `FB_BENCH_POSTGRES_URL` (an admin URL, as
//! `FIREBREAK_TEST_POSTGRES_URL`) each replay gets a fresh PostgreSQL
//! database, and `FB_BENCH_REPLICAS` (default 0) says how the bot runs on
//! it: 0 is the plain daemon (no lease, no fence), N is N replicas in this
//! process, as `firebreak run` runs each on PostgreSQL: one takes the
//! lease and leads with every write fenced, the others follow. Comparing
//! 0, 1 and 3 on one server gives the fence's cost.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use tokio_util::sync::CancellationToken;

use firebreak::chat::console::Console;
use firebreak::clock::{Clock, Millis};
use firebreak::daemon::Daemon;
use firebreak::sim::{Scenario, Sim, SimOptions};
use firebreak::store::Store;

#[path = "support/common.rs"]
mod common;
use common::{env_or, pct};

const MOVE: &str = "move-to-secondary-room";
const MUTE: &str = "mute-feedback-speaker";

/// Requests to the admin API as they arrived: (clock ms, method, path).
#[derive(Clone)]
struct Arrivals {
    clock: Clock,
    seen: Arc<Mutex<Vec<(Millis, Method, String)>>>,
}

async fn stamp(State(a): State<Arrivals>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/api/") {
        // Stamped before the simulator does any work on it.
        let at = a.clock.now();
        a.seen
            .lock()
            .unwrap()
            .push((at, req.method().clone(), req.uri().path().to_owned()));
    }
    next.run(req).await
}

/// One replay's measurements, in real milliseconds.
#[derive(Default)]
struct Sample {
    mute_first_post: Option<f64>,
    move_first_request: Option<f64>,
    move_first_post: Option<f64>,
    /// Step id to real ms; `settle` (a one-minute wait) in clock seconds.
    steps: Vec<(String, f64)>,
    run_real_ms: Option<f64>,
}

/// Where a replay's bot keeps its store, and how it runs on it.
#[derive(Clone)]
enum Setup {
    Sqlite,
    Postgres { admin: String, replicas: usize },
}

impl Setup {
    fn describe(&self) -> String {
        match self {
            Setup::Sqlite => "the plain daemon on SQLite".into(),
            Setup::Postgres { replicas: 0, .. } => {
                "the plain daemon on PostgreSQL (no lease, no fence)".into()
            }
            Setup::Postgres { replicas, .. } => format!(
                "{replicas} replica(s) on PostgreSQL (a fenced leader{})",
                if *replicas > 1 { " and followers" } else { "" }
            ),
        }
    }

    /// A fresh store for one replay, and the directory that holds it.
    async fn store_url(&self, seed: u64) -> anyhow::Result<(String, tempfile::TempDir)> {
        let dir = tempfile::tempdir()?;
        match self {
            Setup::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("fb.db").display());
                Ok((url, dir))
            }
            Setup::Postgres { admin, .. } => {
                let name = format!("fb_bench_{}_{seed}", std::process::id());
                Ok((common::fresh_postgres(admin, &name).await?, dir))
            }
        }
    }
}

/// The bot of one replay, however it runs.
enum Bot {
    Daemon(Daemon),
    Replicas(Vec<tokio::task::JoinHandle<()>>),
}

/// Starts the bot as `setup` says: the daemon, or replicas that take
/// turns at the lease.
async fn start_bot(
    setup: &Setup,
    config: firebreak::config::Config,
    store: &Store,
    clock: &Clock,
    stop: &CancellationToken,
) -> anyhow::Result<Bot> {
    let chat = Arc::new(Console::new(
        Box::new(std::io::sink()),
        chrono::FixedOffset::east_opt(0).expect("zero offset"),
        "UTC",
    ));
    let load = move |config| {
        firebreak::load::load_embedded(config)
            .map_err(|d| anyhow::anyhow!("embedded rules or runbooks are invalid:\n{d}"))
    };
    let replicas = match setup {
        Setup::Postgres { replicas, .. } if *replicas > 0 => *replicas,
        _ => {
            let loaded = load(config)?;
            let d = Daemon::start(loaded, store.clone(), clock.clone(), chat, stop.clone()).await?;
            return Ok(Bot::Daemon(d));
        }
    };
    let mut tasks = Vec::new();
    for i in 0..replicas {
        let status = Arc::new(firebreak::front::Status::new(format!("bench-{i}")));
        let front = firebreak::front::Front::new(status.clone());
        let follower_routes = firebreak::replica::follower_api(
            &config,
            store.clone(),
            clock.clone(),
            status,
            stop.clone(),
        )?;
        let lead = {
            let (config, clock, chat, front) =
                (config.clone(), clock.clone(), chat.clone(), front.clone());
            move |store: Store, lead_stop: CancellationToken| {
                let (config, clock, chat, front) =
                    (config.clone(), clock.clone(), chat.clone(), front.clone());
                async move {
                    let loaded = load(config)?;
                    Daemon::lead(loaded, store, clock, chat, lead_stop, &front).await
                }
            }
        };
        let replica = firebreak::replica::Replica {
            store: store.clone(),
            front,
            follower_routes,
            timing: firebreak::replica::Timing::new(config.store_lease.to_std()),
            clock: clock.clone(),
            chat: chat.clone(),
            channel: config.chat.channel.clone(),
            lead,
        };
        tasks.push(tokio::spawn(replica.run(stop.clone())));
    }
    Ok(Bot::Replicas(tasks))
}

impl Bot {
    async fn stop(self) -> anyhow::Result<()> {
        match self {
            Bot::Daemon(d) => d.wait().await,
            Bot::Replicas(tasks) => {
                for t in tasks {
                    t.await?;
                }
                Ok(())
            }
        }
    }
}

async fn replay(seed: u64, speed: f64, setup: &Setup) -> anyhow::Result<Sample> {
    let scenario = Scenario::builtin();
    let clock = Clock::scaled(scenario.scheduled_start + 20_000, speed);
    let sim = Sim::new(
        SimOptions {
            scenario: scenario.clone(),
            seed,
        },
        clock.clone(),
    );
    let arrivals = Arrivals {
        clock: clock.clone(),
        seen: Arc::default(),
    };
    let app = sim.router().layer(axum::middleware::from_fn_with_state(
        arrivals.clone(),
        stamp,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let serving = tokio::spawn({
        let stop = stop.clone();
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        }
    });

    let (store_url, _dir) = setup.store_url(seed).await?;
    let store = Store::open(&store_url).await?;
    // As `firebreak demo` runs: the embedded rules and runbooks against
    // this simulator.
    let config = firebreak::demo::replay_config(&addr.to_string(), store_url);
    let daemon_stop = CancellationToken::new();
    let bot = start_bot(setup, config, &store, &clock, &daemon_stop).await?;

    // Real seconds: the move fires about 2m15s of clock time in.
    let deadline = Instant::now() + Duration::from_secs_f64(600.0 / speed + 10.0);
    let run = loop {
        let runs = store.runs().await?;
        if let Some(r) = runs
            .into_iter()
            .find(|r| r.runbook == MOVE && r.finished_at.is_some())
        {
            break r;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no {MOVE} run ended in time (seed {seed})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    daemon_stop.cancel();
    bot.stop().await?;
    stop.cancel();
    serving.await?.context("simulator server")?;

    anyhow::ensure!(
        run.state
            == firebreak::run_state::RunState::Ended(firebreak::run_state::Outcome::Succeeded),
        "{MOVE} ended {}",
        run.state
    );
    let mut fired: BTreeMap<String, Millis> = BTreeMap::new();
    for incident in store.incidents().await? {
        for e in store.timeline(&incident).await? {
            if e.kind == firebreak::timeline::Kind::AlertFiring
                && let Some(name) = e.about.alert
            {
                fired.entry(name).or_insert(e.at);
            }
        }
    }
    let seen = arrivals.seen.lock().unwrap().clone();
    let real = |ms: Millis| ms as f64 / speed;
    let first_after = |from: Millis, pred: &dyn Fn(&Method, &str) -> bool| {
        seen.iter()
            .find(|(at, m, p)| *at >= from && pred(m, p))
            .map(|(at, _, _)| real(at - from))
    };
    let mut s = Sample::default();
    if let Some(&t) = fired.get("SpeakerFeedback") {
        s.mute_first_post = first_after(t, &|m, p| m == Method::POST && p.ends_with("/mute"));
    }
    if let Some(&t) = fired.get("ListenerCapacityBreachPredicted") {
        s.move_first_request = first_after(t, &|_, p| !p.ends_with("/mute"));
        s.move_first_post = first_after(t, &|m, p| m == Method::POST && p == "/api/v1/rooms");
    }
    for step in store.steps(&run.id).await? {
        let Some(end) = step.finished_at else {
            continue;
        };
        let d = end - step.started_at;
        let v = if step.step_id == "settle" {
            d as f64 / 1000.0
        } else {
            real(d)
        };
        s.steps.push((step.step_id, v));
    }
    s.run_real_ms = run.finished_at.map(|f| real(f - run.started_at));
    store.close().await;
    // The mute run must have happened too, or its number means nothing.
    anyhow::ensure!(
        s.mute_first_post.is_some(),
        "no {MUTE} POST after SpeakerFeedback fired (seed {seed})"
    );
    Ok(s)
}

struct Row {
    what: String,
    unit: &'static str,
    values: Vec<f64>,
}

fn row(what: impl Into<String>, unit: &'static str, mut values: Vec<f64>) -> Row {
    values.sort_by(f64::total_cmp);
    Row {
        what: what.into(),
        unit,
        values,
    }
}

fn main() -> anyhow::Result<()> {
    let samples: usize = env_or("FB_BENCH_SAMPLES", 40);
    let speed: f64 = env_or("FB_BENCH_SPEED", 60.0);
    let setup = match std::env::var("FB_BENCH_POSTGRES_URL") {
        Ok(admin) if !admin.is_empty() => Setup::Postgres {
            admin,
            replicas: env_or("FB_BENCH_REPLICAS", 0),
        },
        _ => Setup::Sqlite,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    firebreak::net::install_crypto_provider();
    println!(
        "alert_to_action: {samples} replays of 2023-05-24 from 18:00:20 at {speed}x, shipped rules and runbooks, {}",
        setup.describe()
    );
    let mut all = Vec::new();
    let started = Instant::now();
    for i in 0..samples {
        let s = rt.block_on(replay(42 + i as u64, speed, &setup))?;
        all.push(s);
    }
    println!("{samples} replays in {:.1?}", started.elapsed());

    let mut rows = vec![
        row(
            "SpeakerFeedback firing → mute POST arrives",
            "ms",
            all.iter().filter_map(|s| s.mute_first_post).collect(),
        ),
        row(
            "ListenerCapacityBreachPredicted firing → first request (GET event)",
            "ms",
            all.iter().filter_map(|s| s.move_first_request).collect(),
        ),
        row(
            "ListenerCapacityBreachPredicted firing → create-room POST arrives",
            "ms",
            all.iter().filter_map(|s| s.move_first_post).collect(),
        ),
    ];
    let mut by_step: Vec<(String, Vec<f64>)> = Vec::new();
    for s in &all {
        for (id, v) in &s.steps {
            match by_step.iter_mut().find(|(k, _)| k == id) {
                Some((_, vs)) => vs.push(*v),
                None => by_step.push((id.clone(), vec![*v])),
            }
        }
    }
    for (id, vs) in by_step {
        let (label, unit) = if id == "settle" {
            (format!("{MOVE} step `{id}` (a 1m wait; clock time)"), "s")
        } else {
            (format!("{MOVE} step `{id}`"), "ms")
        };
        rows.push(row(label, unit, vs));
    }
    rows.push(row(
        format!("{MOVE} whole run, real time at {speed}x (includes the verification wait)"),
        "ms",
        all.iter().filter_map(|s| s.run_real_ms).collect(),
    ));

    println!();
    println!("| measure | n | p50 | p90 | p99 | max | unit |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for r in &rows {
        if r.values.is_empty() {
            println!("| {} | 0 | | | | | {} |", r.what, r.unit);
            continue;
        }
        let v = &r.values;
        println!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            r.what,
            v.len(),
            pct(v, 50.0),
            pct(v, 90.0),
            pct(v, 99.0),
            v[v.len() - 1],
            r.unit
        );
    }
    let worst_p99 = rows[..3]
        .iter()
        .filter(|r| !r.values.is_empty())
        .map(|r| pct(&r.values, 99.0))
        .fold(0.0, f64::max);
    println!(
        "\nalert to first mitigation request, p99 {worst_p99:.1} ms (target under 50 ms): {}",
        if worst_p99 < 50.0 { "met" } else { "MISSED" }
    );
    Ok(())
}
