//! Two and three `firebreak run` replicas on one real PostgreSQL store,
//! against the simulator. The leader is SIGKILLed at random points of a
//! mitigation (then started again, as a supervisor would), or SIGSTOPped
//! past its lease (a GC pause, a partition) and SIGCONTed; over many
//! iterations. At the simulator: never two rooms, never two moves, and a
//! POST not safe to repeat never sent twice; in the store: one run, and
//! it ended; in chat: its end said. A leader frozen past its lease logs
//! that it lost it on waking, and sends nothing more to the platform.
//!
//! The alert comes three ways in turn: a rule every replica could
//! evaluate (only the leader does), an alert pushed to every replica as
//! Prometheus does, and Alertmanager's webhook sent to one replica chosen
//! at random, which must reach the leader through the store.
//!
//! Needs `FIREBREAK_TEST_POSTGRES_URL` (`.ci/run` starts a PostgreSQL and
//! sets it); without it the test says so and passes. `FB_REPLICA_ITERATIONS`
//! (default 6) and `FB_REPLICA_SEED` as in `kill_restart`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{free_port, get_json, start_sim};
use crate::kill_restart::{
    Bot, PUSHED_LABELS, RULES, RUNBOOK, RUNBOOK_YAML, Rng, Via, start_bot_with, start_proxy,
    write_config,
};
use firebreak::store::Store;

/// Short, so a takeover takes seconds.
const LEASE: Duration = Duration::from_secs(2);
const MAX_DISRUPTIONS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Disruption {
    Kill,
    Freeze,
}

/// A fresh database on the test server.
async fn fresh_database(admin: &str) -> String {
    use sqlx::any::{AnyPoolOptions, install_default_drivers};
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "fb_replicas_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .connect(admin)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    format!("{base}/{name}")
}

struct Replica {
    /// `r<k>`, and a generation after each restart: the lease names the
    /// process, not the slot.
    name: String,
    restarts: usize,
    config: std::path::PathBuf,
    listen: String,
    bot: Option<Bot>,
    log: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Replica {
    fn new(
        k: usize,
        config: std::path::PathBuf,
        listen: String,
        dir: tempfile::TempDir,
    ) -> Replica {
        Replica {
            name: format!("r{k}"),
            restarts: 0,
            config,
            listen,
            bot: None,
            log: Arc::new(Mutex::new(String::new())),
            _dir: dir,
        }
    }

    fn start(&mut self) {
        let slot = self.name.split('.').next().unwrap().to_owned();
        self.name = format!("{slot}.{}", self.restarts);
        self.restarts += 1;
        self.bot = Some(start_bot_with(
            &self.config,
            &self.log,
            &[("FIREBREAK_REPLICA_NAME", &self.name)],
        ));
    }

    /// Kills the process and returns its whole log (both streams read to
    /// their end).
    fn stop(&mut self) -> String {
        if let Some(b) = self.bot.take() {
            b.kill();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log.lock().unwrap().clone();
            if log.matches(crate::kill_restart::STREAM_END).count() >= 2 * self.restarts
                || Instant::now() > deadline
            {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> i32 {
        self.bot.as_ref().unwrap().child.id() as i32
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a child this test started and has not reaped.
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig})");
}

#[derive(Default)]
struct Tally {
    kills: usize,
    freezes: usize,
    takeovers_mid_run: usize,
    outcomes: BTreeMap<String, usize>,
    replays: usize,
    sent_after_waking: usize,
    led_again: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_or_frozen_leaders_never_repeat_or_forget_a_mitigation() {
    let Ok(admin) = std::env::var("FIREBREAK_TEST_POSTGRES_URL") else {
        eprintln!("replicas: skipped: FIREBREAK_TEST_POSTGRES_URL is not set (.ci/run sets it)");
        return;
    };
    let iterations: usize = std::env::var("FB_REPLICA_ITERATIONS")
        .ok()
        .map(|s| s.parse().expect("FB_REPLICA_ITERATIONS is a number"))
        .unwrap_or(6);
    let seed: u64 = std::env::var("FB_REPLICA_SEED")
        .ok()
        .map(|s| s.parse().expect("FB_REPLICA_SEED is a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("replicas: seed {seed} ({iterations} iterations); FB_REPLICA_SEED={seed} replays it");
    let mut rng = Rng(seed);
    let mut tally = Tally::default();
    let started = Instant::now();
    for i in 0..iterations {
        iteration(i, &admin, &mut rng, &mut tally, seed).await;
    }
    eprintln!(
        "replicas: {iterations} runs in {:.0?}; {} kills, {} freezes past the lease, {} takeovers during a run; outcomes {:?}; {} replayed POSTs answered by idempotency keys; {} requests from a frozen leader after it woke; {} frozen leaders led again later",
        started.elapsed(),
        tally.kills,
        tally.freezes,
        tally.takeovers_mid_run,
        tally.outcomes,
        tally.replays,
        tally.sent_after_waking,
        tally.led_again,
    );
}

async fn iteration(i: usize, admin: &str, rng: &mut Rng, tally: &mut Tally, seed: u64) {
    let replicas_n = 2 + i % 2;
    let keys = i % 4 != 3;
    let via = [Via::Rule, Via::Push, Via::Webhook][i % 3];
    let url = fresh_database(admin).await;
    let (_sim, sim_addr) = start_sim(&["--speed", "1", "--from", "3m"]);
    let mut replicas = Vec::new();
    let mut seen = Vec::new();
    for k in 0..replicas_n {
        // A proxy each, so what each replica sent is told apart.
        let (proxy, s) = start_proxy(&sim_addr).await;
        seen.push(s);
        let dir = tempfile::tempdir().unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let config = write_config(
            dir.path(),
            if via == Via::Rule {
                RULES
            } else {
                "groups: []\n"
            },
            RUNBOOK_YAML,
            &sim_addr,
            &proxy,
            keys,
            &format!(
                "server:\n  listen: {listen}\nstore:\n  url: '{url}'\n  lease: {}s\n",
                LEASE.as_secs()
            ),
        );
        replicas.push(Replica::new(k, config, listen, dir));
    }
    for r in &mut replicas {
        r.start();
    }
    let pushers: Vec<_> = match via {
        Via::Rule => Vec::new(),
        Via::Push => replicas
            .iter()
            .map(|r| crate::kill_restart::start_pusher(via, r.listen.clone()))
            .collect(),
        Via::Webhook => {
            let k = rng.below(replicas_n as u64) as usize;
            vec![crate::kill_restart::start_pusher(
                via,
                replicas[k].listen.clone(),
            )]
        }
    };
    let _ = PUSHED_LABELS;

    let store = Store::open(&url).await.unwrap();
    let mut events = Vec::new();
    let mut frozen: Vec<(usize, Instant)> = Vec::new();
    for _ in 0..MAX_DISRUPTIONS {
        // Aim at the mitigation: wait for the run to start (or the alert
        // to be on its way), then strike at a random point of it.
        let wait_until = Instant::now() + Duration::from_secs(8);
        while store.runs().await.unwrap().is_empty() && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let at = rng.below(1500);
        tokio::time::sleep(Duration::from_millis(at)).await;
        let runs = store.runs().await.unwrap();
        if runs.first().is_some_and(|r| r.finished_at.is_some()) {
            break;
        }
        let (lease, now) = store.lease().await.unwrap();
        let Some(lease) = lease.filter(|l| l.expires_at > now) else {
            events.push(format!("{at}ms: no leader"));
            continue;
        };
        let Some(k) = replicas.iter().position(|r| r.name == lease.holder) else {
            events.push(format!("{at}ms: {} leads and is dead", lease.holder));
            continue;
        };
        let mid_run = runs.first().is_some_and(|r| r.finished_at.is_none());
        if mid_run {
            tally.takeovers_mid_run += 1;
        }
        let how = if rng.below(2) == 0 {
            Disruption::Kill
        } else {
            Disruption::Freeze
        };
        events.push(format!(
            "{at}ms: {how:?} {} (epoch {}){}",
            lease.holder,
            lease.epoch,
            if mid_run { " mid-run" } else { "" }
        ));
        match how {
            Disruption::Kill => {
                tally.kills += 1;
                replicas[k].bot.take().unwrap().kill();
                replicas[k].start();
            }
            Disruption::Freeze => {
                tally.freezes += 1;
                let pid = replicas[k].pid();
                signal(pid, libc::SIGSTOP);
                tokio::time::sleep(LEASE + Duration::from_millis(1500)).await;
                signal(pid, libc::SIGCONT);
                frozen.push((k, Instant::now()));
            }
        }
    }
    let why = |events: &[String], replicas: &[Replica]| {
        let logs: String = replicas
            .iter()
            .map(|r| format!("--- {} ---\n{}\n", r.name, r.log.lock().unwrap()))
            .collect();
        format!(
            "iteration {i} (seed {seed}, {replicas_n} replicas, idempotency_keys {keys}, alert by {via:?}), events {events:?}\n{logs}"
        )
    };

    // The run ends, and what it said is delivered.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let runs = store.runs().await.unwrap();
        let ended = runs.first().is_some_and(|r| r.finished_at.is_some());
        if ended && store.outbox_depth().await.unwrap() == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not end, or chat was not delivered: {runs:?}\n{}",
            why(&events, &replicas)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let a frozen leader that woke have its say, if it were to act.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for p in pushers {
        p.abort();
    }
    for r in &mut replicas {
        r.stop();
    }
    let why = why(&events, &replicas);

    let (state, created, moves) = crate::kill_restart::mitigations(&sim_addr).await;
    let runs = store.runs().await.unwrap();
    assert_eq!(runs.len(), 1, "one run of {RUNBOOK}: {runs:?}\n{why}");
    let run = &runs[0];
    assert!(created.len() <= 1, "rooms created: {created:?}\n{why}");
    assert!(moves.len() <= 1, "moves: {moves:?}\n{why}");
    let all: Vec<_> = seen
        .iter()
        .flat_map(|s| s.lock().unwrap().clone())
        .collect();
    tally.replays += all
        .iter()
        .filter(|s| s.replayed && s.method == "POST")
        .count();
    if !keys {
        // Without keys, no POST reaches the platform twice.
        let mut posts: BTreeMap<&str, usize> = BTreeMap::new();
        for s in all.iter().filter(|s| s.method == "POST") {
            *posts.entry(s.path.as_str()).or_default() += 1;
        }
        assert!(
            posts.values().all(|n| *n <= 1),
            "POSTs sent: {posts:?}\n{why}"
        );
    }
    *tally.outcomes.entry(run.state.to_string()).or_default() += 1;
    match run.state.as_str() {
        "succeeded" => {
            assert_eq!(created.len(), 1, "{created:?}\n{why}");
            assert_eq!(moves.len(), 1, "{moves:?}\n{why}");
            assert_eq!(state["event"]["room"], created[0], "{why}");
        }
        "interrupted" => assert!(
            !keys,
            "with keys every step may be repeated: {run:?}\n{why}"
        ),
        other => panic!("run ended {other}: {run:?}\n{why}"),
    }
    // Its end was said, by whichever replica led then: not lost, and at
    // most once more than once (a delivery in flight when its sender died
    // is sent again by the next leader, as the README says).
    let end = if run.state.as_str() == "succeeded" {
        format!("runbook *{RUNBOOK}* succeeded")
    } else {
        "was interrupted".to_owned()
    };
    let said: usize = replicas
        .iter()
        .map(|r| r.log.lock().unwrap().matches(end.as_str()).count())
        .sum();
    assert!(said >= 1, "the run's end was never delivered\n{why}");
    if run.state.as_str() == "succeeded" {
        assert!(said <= 2, "the run's end was delivered {said} times\n{why}");
    }

    // A leader frozen past its lease knows it lost it, and sends nothing
    // to the platform once awake.
    for (k, woke) in &frozen {
        let log = replicas[*k].log.lock().unwrap().clone();
        assert!(
            log.contains("lost the leader lease"),
            "replica {} was frozen past its lease and did not say it lost it\n{why}",
            replicas[*k].name
        );
        // Woken, it may lead again later, by a new lease: that is not
        // the old epoch acting.
        let since_lost = log.rsplit("lost the leader lease").next().unwrap_or("");
        if since_lost.contains("took the leader lease") {
            tally.led_again += 1;
            continue;
        }
        let after: Vec<_> = seen[*k]
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.at > *woke)
            .cloned()
            .collect();
        tally.sent_after_waking += after.len();
        // A replica killed and restarted later under the same name sends
        // through the same proxy; only count until then.
        assert!(
            after.len() <= 1
                || events.iter().any(|e| e.contains("Kill")
                    && e.contains(replicas[*k].name.split('.').next().unwrap())),
            "a deposed leader kept acting after it woke: {after:?}\n{why}"
        );
    }
    if events.iter().any(|e| e.contains("mid-run")) {
        let timeline = store.timeline(&run.incident).await.unwrap();
        assert!(
            timeline
                .iter()
                .any(|e| e.kind == firebreak::timeline::Kind::Takeover),
            "a takeover during a run is on the incident's timeline\n{why}"
        );
    }
    store.close().await;
}

/// What a load balancer and Prometheus see of two replicas: readiness
/// says who leads, `/metrics` has the lease, a follower refuses questions
/// only the leader can answer, and an alert pushed to the follower fires
/// at the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_say_who_leads_and_hand_pushes_to_the_leader() {
    let Ok(admin) = std::env::var("FIREBREAK_TEST_POSTGRES_URL") else {
        eprintln!("replicas: skipped: FIREBREAK_TEST_POSTGRES_URL is not set (.ci/run sets it)");
        return;
    };
    let url = fresh_database(&admin).await;
    let http = firebreak::net::client().unwrap();
    let mut replicas = Vec::new();
    for k in 0..2 {
        let (dir, listen, config) = idle_replica(&url, "automation:\n  paused: true\n");
        let mut r = Replica::new(k, config, listen, dir);
        r.start();
        replicas.push(r);
        // r0 first, so it leads.
        if k == 0 {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let ready = http
                    .get(format!("http://{}/-/ready", replicas[0].listen))
                    .send()
                    .await;
                if let Ok(r) = ready
                    && r.text().await.unwrap_or_default().contains("leads")
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{}",
                    replicas[0].log.lock().unwrap()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let (leader, follower) = (&replicas[0], &replicas[1]);
    let text = |addr: String| {
        let http = http.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(r) = http.get(&addr).send().await {
                    return (r.status().as_u16(), r.text().await.unwrap());
                }
                assert!(Instant::now() < deadline, "{addr} never answered");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let (code, ready) = text(format!("http://{}/-/ready", follower.listen)).await;
    assert_eq!(code, 200, "{ready}");
    assert!(
        ready.contains("replica r1.0 follows; r0.0 leads (lease epoch 1)"),
        "{ready}"
    );
    let (_, m) = text(format!("http://{}/metrics", follower.listen)).await;
    assert!(m.contains("firebreak_leader 0"), "{m}");
    assert!(m.contains("firebreak_lease_epoch 1"), "{m}");
    let (_, m) = text(format!("http://{}/metrics", leader.listen)).await;
    assert!(m.contains("firebreak_leader 1"), "{m}");
    let (code, body) = text(format!("http://{}/api/v1/alerts", follower.listen)).await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("r0.0 leads"), "{body}");

    let push = http
        .post(format!("http://{}/api/v2/alerts", follower.listen))
        .header("content-type", "application/json")
        .body(format!("[{{\"labels\": {PUSHED_LABELS}}}]"))
        .send()
        .await
        .unwrap();
    assert_eq!(push.status().as_u16(), 200);
    let pushed: serde_json::Value = push.json().await.unwrap();
    assert_eq!(pushed["forwarded_to_leader"], true, "{pushed}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alerts = get_json(&http, &format!("http://{}/api/v1/alerts", leader.listen))
            .await
            .unwrap();
        if alerts["data"]["alerts"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x["name"] == "ListenerCapacityBreachPredicted")
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the alert pushed to the follower never fired at the leader: {alerts}\n{}",
            leader.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A replica's files with no rules and no platform to reach, on the store
/// at `url` with a 2s lease; `extra` is added to its config.
fn idle_replica(url: &str, extra: &str) -> (tempfile::TempDir, String, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let config = write_config(
        dir.path(),
        "groups: []\n",
        RUNBOOK_YAML,
        "127.0.0.1:9",
        "127.0.0.1:9",
        true,
        &format!("server:\n  listen: {listen}\nstore:\n  url: '{url}'\n  lease: 2s\n{extra}"),
    );
    (dir, listen, config)
}

/// Waits until `/-/ready` at `addr` says `needle`.
async fn wait_ready(http: &reqwest::Client, r: &Replica, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(resp) = http
            .get(format!("http://{}/-/ready", r.listen))
            .send()
            .await
            && resp.text().await.unwrap_or_default().contains(needle)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never said {needle:?}\n{}",
            r.name,
            r.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Behind a load balancer a follower gets its share of Slack's requests:
/// it checks the signature, and the leader does the command and answers
/// at the response URL. The same request sent again, to either replica,
/// is refused as a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_command_sent_to_a_follower_is_done_by_the_leader() {
    use crate::fake_slack::to_bot::{self, FORM, now_s};
    let Ok(admin) = std::env::var("FIREBREAK_TEST_POSTGRES_URL") else {
        eprintln!("replicas: skipped: FIREBREAK_TEST_POSTGRES_URL is not set (.ci/run sets it)");
        return;
    };
    let url = fresh_database(&admin).await;
    let slack = crate::fake_slack::FakeSlack::start().await;
    let http = firebreak::net::client().unwrap();
    let mut replicas = Vec::new();
    for k in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("bot-token"), crate::fake_slack::TOKEN).unwrap();
        std::fs::write(d.join("signing"), crate::fake_slack::SIGNING_SECRET).unwrap();
        std::fs::create_dir(d.join("alerts")).unwrap();
        std::fs::create_dir(d.join("runbooks")).unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let config = d.join("firebreak.yaml");
        std::fs::write(
            &config,
            format!(
                "store: {{url: '{url}', lease: 2s}}
rules: {{paths: ['{d}/alerts']}}
runbooks: {{paths: ['{d}/runbooks']}}
server: {{listen: '{listen}'}}
secrets:
  bot: {{file: '{d}/bot-token'}}
  signing: {{file: '{d}/signing'}}
chat:
  channel: '#incidents'
  slack:
    bot_token_secret: bot
    signing_secret: signing
    api_url: '{api}'
    response_hosts: [127.0.0.1]
  roles:
    commander: {{users: [U0COMMAND1]}}
",
                d = d.display(),
                api = slack.api_url(),
            ),
        )
        .unwrap();
        let mut r = Replica::new(k, config, listen, dir);
        r.start();
        wait_ready(&http, &r, if k == 0 { "leads" } else { "follows" }).await;
        replicas.push(r);
    }
    let follower: std::net::SocketAddr = replicas[1].listen.parse().unwrap();
    let leader: std::net::SocketAddr = replicas[0].listen.parse().unwrap();
    let body = to_bot::slash(
        "U0COMMAND1",
        "ana",
        "pause checking the failover",
        &slack.response_url("c1"),
    );
    let ts = now_s();
    let r = to_bot::send(follower, "/slack/commands", FORM, &body, ts, None).await;
    assert_eq!(r.status().as_u16(), 200);
    let ack: serde_json::Value = r.json().await.unwrap();
    assert!(
        ack["text"]
            .as_str()
            .unwrap()
            .contains("working on `pause checking the failover`"),
        "{ack}"
    );
    let answers = slack.wait_responses(1, 15).await;
    assert_eq!(answers.len(), 1, "the leader answers at the response URL");
    let answer = answers[0].1["text"].as_str().unwrap_or_default().to_owned();
    assert!(answer.to_lowercase().contains("paus"), "{answer}");
    let (lead_status, _) = {
        let ready = http
            .get(format!("http://{leader}/api/v1/alerts"))
            .send()
            .await
            .unwrap();
        let j: serde_json::Value = ready.json().await.unwrap();
        (j["data"]["paused"]["reason"].clone(), j)
    };
    assert!(
        lead_status
            .as_str()
            .unwrap_or_default()
            .contains("checking the failover"),
        "the leader paused: {lead_status}"
    );
    for to in [follower, leader] {
        let again = to_bot::send(to, "/slack/commands", FORM, &body, ts, None).await;
        assert_eq!(again.status().as_u16(), 401, "a replay to {to} is refused");
    }
}

/// A TCP proxy to PostgreSQL that can be cut: cutting closes every
/// connection through it and refuses new ones until it is mended, as a
/// database outage or a partition looks to the bot.
struct Cuttable {
    addr: std::net::SocketAddr,
    cut: Arc<std::sync::atomic::AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Cuttable {
    async fn start(upstream: String) -> Cuttable {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (c, k) = (cut.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    continue;
                }
                let upstream = upstream.clone();
                k.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                }));
            }
        });
        Cuttable { addr, cut, conns }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn mend(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// PostgreSQL out of reach: the leader stops acting within its lease,
/// says so once, straight to chat (the outbox is in the database), is not
/// ready and shows it in `/metrics`; when the database is back it says so
/// and leads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_its_database_stops_says_so_and_comes_back() {
    let Ok(admin) = std::env::var("FIREBREAK_TEST_POSTGRES_URL") else {
        eprintln!("replicas: skipped: FIREBREAK_TEST_POSTGRES_URL is not set (.ci/run sets it)");
        return;
    };
    let direct = url::Url::parse(&fresh_database(&admin).await).unwrap();
    let proxy = Cuttable::start(format!(
        "{}:{}",
        direct.host_str().unwrap(),
        direct.port().unwrap_or(5432)
    ))
    .await;
    let mut through = direct.clone();
    through.set_port(Some(proxy.addr.port())).unwrap();
    through.set_host(Some("127.0.0.1")).unwrap();
    let http = firebreak::net::client().unwrap();
    let (dir, listen, config) = idle_replica(through.as_str(), "");
    let mut r = Replica::new(0, config, listen, dir);
    r.start();
    wait_ready(&http, &r, "leads (lease epoch 1)").await;

    proxy.cut();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready = http
            .get(format!("http://{}/-/ready", r.listen))
            .send()
            .await
            .unwrap();
        let code = ready.status().as_u16();
        let text = ready.text().await.unwrap();
        if code == 503 && text.contains("cannot reach the store") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready never said the store is out of reach: {code} {text}\n{}",
            r.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = http
        .get(format!("http://{}/metrics", r.listen))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("firebreak_leader 0"), "{metrics}");
    assert!(metrics.contains("firebreak_store_up 0"), "{metrics}");

    proxy.mend();
    wait_ready(&http, &r, "leads (lease epoch 2)").await;
    let log = r.stop();
    assert!(log.contains("lost the leader lease"), "{log}");
    assert_eq!(
        log.matches("cannot reach its store and has stopped acting")
            .count(),
        1,
        "said in chat, once: {log}"
    );
    assert_eq!(
        log.matches("reaches its store again").count(),
        1,
        "the recovery is said, once: {log}"
    );
}

/// What people set on the bot outlives it: a pause and an ack, made on
/// one daemon, are in force on the next one on the same store (a restart,
/// or the replica that takes over), and a resume is too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_and_an_ack_survive_a_restart_or_takeover() {
    use firebreak::clock::Clock;
    use firebreak::command::{Actor, handle};
    use firebreak::daemon::Daemon;
    firebreak::net::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fb.db").display());
    let start = || async {
        let mut config = firebreak::config::Config::for_simulator("127.0.0.1:9");
        config.scrape.clear();
        config.store_url = url.clone();
        config.server.listen = Some("127.0.0.1:0".parse().unwrap());
        let loaded = firebreak::load::load_embedded(config).unwrap();
        let store = Store::open(&url).await.unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let chat = Arc::new(firebreak::chat::console::Console::new(
            Box::new(std::io::sink()),
            chrono::FixedOffset::east_opt(0).unwrap(),
            "UTC",
        ));
        let d = Daemon::start(loaded, store.clone(), Clock::system(), chat, stop.clone())
            .await
            .unwrap();
        (d, stop, store)
    };
    let me = Actor::console();
    let (d, stop, store) = start().await;
    let push = firebreak::net::client()
        .unwrap()
        .post(format!("http://{}/api/v2/alerts", d.http_addr.unwrap()))
        .header("content-type", "application/json")
        .body(r#"[{"labels":{"alertname":"Drill","event":"drill"}}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(push.status().as_u16(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !handle(&d.ctx, &me, "alerts").await.text.contains("Drill") {
        assert!(Instant::now() < deadline, "the pushed alert never fired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acked = handle(&d.ctx, &me, "ack Drill").await.text;
    assert!(acked.contains("acknowledged"), "{acked}");
    handle(&d.ctx, &me, "pause failover drill").await;
    stop.cancel();
    d.wait().await.unwrap();
    store.close().await;

    let (d, stop, store) = start().await;
    let status = handle(&d.ctx, &me, "status").await.text;
    assert!(status.contains("failover drill"), "still paused: {status}");
    let alerts = handle(&d.ctx, &me, "alerts").await.text;
    assert!(alerts.contains("acked by console"), "still acked: {alerts}");
    handle(&d.ctx, &me, "resume").await;
    stop.cancel();
    d.wait().await.unwrap();
    store.close().await;

    let (d, stop, _store) = start().await;
    let status = handle(&d.ctx, &me, "status").await.text;
    assert!(
        !status.contains("failover drill"),
        "resumed stays resumed: {status}"
    );
    stop.cancel();
    d.wait().await.unwrap();
}
