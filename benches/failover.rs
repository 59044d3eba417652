//! Failover: how long from the leader being killed to the first action by
//! the replica that takes over, over many trials.
//!
//! Each trial: a fresh PostgreSQL database, `FB_BENCH_REPLICAS` (default
//! 2) `firebreak run` processes on it with `store.lease` set to
//! `FB_BENCH_LEASE_SECS` (default 10, the default lease), and a probe
//! target that stamps each request's arrival. Once a replica leads, the
//! bench waits a random part of a renewal period (so the kill lands
//! anywhere in the leader's renew cycle), SIGKILLs the leader, and at the
//! same instant pushes an alert to every other replica as Prometheus
//! would. A runbook answers the alert with one GET to the probe: its
//! arrival is the first action of the new leader. The alert reaches it
//! through a follower's store hand-off, the path a push takes when the
//! leader is gone.
//!
//! `cargo bench --bench failover` with `FB_BENCH_POSTGRES_URL` set to an
//! admin URL (as `FIREBREAK_TEST_POSTGRES_URL`); `FB_BENCH_TRIALS`
//! (default 20). Cargo builds the `firebreak` binary for the bench;
//! `FB_BENCH_BIN` runs another.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::extract::State;

#[path = "support/common.rs"]
mod common;
use common::{env_or, fresh_postgres, pct};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const RUNBOOK: &str = "kind: runbook
name: probe
trigger:
  alerts:
    - alertname: FailoverProbe
steps:
  - id: first_action
    action: http
    with: {target: probe, method: GET, path: /probe}
";

struct Replica {
    name: String,
    listen: String,
    child: Option<Child>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn write_config(dir: &Path, url: &str, probe: &str, listen: &str, lease: u64) -> PathBuf {
    let d = dir.display();
    let config = dir.join(format!("{listen}.yaml").replace(':', "_"));
    std::fs::write(
        &config,
        format!(
            "store: {{url: '{url}', lease: {lease}s}}
rules: {{paths: ['{d}/alerts']}}
runbooks: {{paths: ['{d}/runbooks']}}
targets:
  probe: {{url: 'http://{probe}', timeout: 5s}}
server: {{listen: '{listen}'}}
chat: {{channel: '#failover'}}
"
        ),
    )
    .unwrap();
    config
}

/// One trial's failover time, in ms.
async fn trial(
    bin: &Path,
    admin: &str,
    i: usize,
    replicas: usize,
    lease: u64,
    rng: &mut u64,
) -> anyhow::Result<f64> {
    let url = fresh_postgres(admin, &format!("fb_failover_{}_{i}", std::process::id())).await?;
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/probe",
            axum::routing::get(|State(a): State<Arc<Mutex<Vec<Instant>>>>| async move {
                a.lock().unwrap().push(Instant::now());
                "{}"
            }),
        )
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let probe = listener.local_addr()?.to_string();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("alerts"))?;
    std::fs::create_dir(dir.path().join("runbooks"))?;
    std::fs::write(dir.path().join("runbooks/probe.yaml"), RUNBOOK)?;
    let mut reps = Vec::new();
    for k in 0..replicas {
        let listen = format!("127.0.0.1:{}", free_port());
        let config = write_config(dir.path(), &url, &probe, &listen, lease);
        let name = format!("b{i}-{k}");
        let child = Command::new(bin)
            .args(["run", "--config"])
            .arg(&config)
            .env("FIREBREAK_REPLICA_NAME", &name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start firebreak run")?;
        reps.push(Replica {
            name,
            listen,
            child: Some(child),
        });
    }
    let store = firebreak::store::Store::open(&url).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        let (l, now) = store.lease().await?;
        if let Some(l) = l.filter(|l| l.expires_at > now) {
            break l.holder;
        }
        if Instant::now() > deadline {
            bail!("no replica took the lease within 30s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Followers must be up to take the push.
    let http = reqwest::Client::new();
    for r in reps.iter().filter(|r| r.name != leader) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while http
            .get(format!("http://{}/-/ready", r.listen))
            .send()
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("replica {} never served", r.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Anywhere in the leader's renewal cycle.
    *rng = rng
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let wait = (*rng >> 33) % (lease * 1000 / 3).max(1);
    tokio::time::sleep(Duration::from_millis(wait)).await;

    let k = reps
        .iter()
        .position(|r| r.name == leader)
        .context("leader")?;
    let killed = Instant::now();
    if let Some(mut c) = reps[k].child.take() {
        c.kill()?;
        c.wait()?;
    }
    let body = "[{\"labels\": {\"alertname\": \"FailoverProbe\", \"severity\": \"critical\"}}]";
    for r in reps.iter().filter(|r| r.name != leader) {
        http.post(format!("http://{}/api/v2/alerts", r.listen))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?
            .error_for_status()?;
    }
    let deadline = killed + Duration::from_secs(lease * 3 + 30);
    let first = loop {
        if let Some(t) = arrivals.lock().unwrap().first() {
            break *t;
        }
        if Instant::now() > deadline {
            bail!("no action within {:?} of the kill", deadline - killed);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    store.close().await;
    drop(reps);
    server.abort();
    Ok((first - killed).as_secs_f64() * 1000.0)
}

fn main() -> anyhow::Result<()> {
    let Ok(admin) = std::env::var("FB_BENCH_POSTGRES_URL") else {
        println!(
            "failover: set FB_BENCH_POSTGRES_URL to a PostgreSQL admin URL (postgres://postgres@127.0.0.1:5432/postgres)"
        );
        return Ok(());
    };
    let trials: usize = env_or("FB_BENCH_TRIALS", 20);
    let replicas: usize = env_or("FB_BENCH_REPLICAS", 2).max(2);
    let lease: u64 = env_or("FB_BENCH_LEASE_SECS", 10).max(1);
    let bin = std::env::var_os("FB_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_firebreak")));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    firebreak::net::install_crypto_provider();
    println!(
        "failover: {trials} trials, {replicas} replicas, lease {lease}s: leader SIGKILLed at a random point of its renewal cycle → first action by the new leader"
    );
    let mut rng = 0x5eed_u64;
    let mut times = Vec::new();
    let started = Instant::now();
    for i in 0..trials {
        let ms = rt.block_on(trial(&bin, &admin, i, replicas, lease, &mut rng))?;
        times.push(ms);
    }
    times.sort_by(f64::total_cmp);
    println!("{trials} trials in {:.1?}", started.elapsed());
    println!();
    println!("| measure | n | p50 | p90 | p99 | max | unit |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    println!(
        "| leader killed → first action by the new leader | {} | {:.0} | {:.0} | {:.0} | {:.0} | ms |",
        times.len(),
        pct(&times, 50.0),
        pct(&times, 90.0),
        pct(&times, 99.0),
        times[times.len() - 1]
    );
    let budget = lease as f64 * 1000.0 * 1.1 + 1000.0;
    println!(
        "\nfailover p99 {:.0} ms against the stated budget of one lease plus a poll and a start ({budget:.0} ms): {}",
        pct(&times, 99.0),
        if pct(&times, 99.0) <= budget {
            "met"
        } else {
            "MISSED"
        }
    );
    Ok(())
}
