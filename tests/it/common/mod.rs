//! Helpers shared by the integration tests that run real processes.

#![allow(dead_code)]

pub mod browser;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Kills the child when the test ends, pass or fail.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes into a shared buffer the test can read: what a replay printed.
#[derive(Clone, Default)]
pub struct Buf(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `firebreak ARGS` run to its end in `dir`, with no config from the
/// environment: its exit code and its stdout then stderr.
pub fn firebreak_in(dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(args)
        .current_dir(dir)
        .env_remove("FIREBREAK_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `firebreak sim` on a free loopback port and returns it with the
/// address it announced.
pub fn start_sim(extra: &[&str]) -> (KillOnDrop, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(["sim", "--listen", "127.0.0.1:0", "--seed", "7"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start firebreak sim");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().expect("sim printed nothing").unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (KillOnDrop(child), addr)
}

/// Polls `f` every 100ms for up to `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..secs * 10 {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Starts `firebreak run --config` with this config text, written to `dir`.
pub fn start_bot(dir: &std::path::Path, config: &str) -> Child {
    start_bot_with(dir, config, &[])
}

/// [`start_bot`] with more arguments to `run`.
pub fn start_bot_with(dir: &std::path::Path, config: &str, extra: &[&str]) -> Child {
    let cfg = dir.join("firebreak.yaml");
    std::fs::write(&cfg, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(["run", "--config", cfg.to_str().unwrap()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start firebreak run")
}

/// GETs `url` as JSON; `None` on any failure, for polling with
/// [`eventually`].
pub async fn get_json(http: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    http.get(url).send().await.ok()?.json().await.ok()
}

/// Waits up to `secs` for the simulator's host speaker to be muted.
pub async fn host_muted(sim_addr: &str, secs: u64) -> bool {
    let http = firebreak::net::client().unwrap();
    eventually(secs, || async {
        let v = get_json(&http, &format!("http://{sim_addr}/api/v1/rooms/main")).await?;
        let speakers = v["room"]["speakers"].as_array()?.clone();
        speakers
            .iter()
            .any(|s| s["id"] == "host" && s["muted"] == true)
            .then_some(())
    })
    .await
    .is_some()
}

/// Waits until a run of `runbook` has ended in the bot's SQLite store and
/// returns its state. Tests stop the bot only then: a SIGTERM between two
/// steps interrupts the run, which under load made the "succeeded" checks
/// flaky.
pub async fn run_ended(db: &std::path::Path, runbook: &str, secs: u64) -> Option<String> {
    let store = firebreak::store::Store::open(&format!("sqlite://{}", db.display()))
        .await
        .ok()?;
    let state = eventually(secs, || async {
        let runs = store.runs().await.ok()?;
        runs.into_iter()
            .find(|r| r.runbook == runbook && r.finished_at.is_some())
            .map(|r| r.state.to_string())
    })
    .await;
    store.close().await;
    state
}

/// Sends SIGTERM and waits up to 10s; returns (exited cleanly, stdout, stderr).
pub fn stop_bot(mut bot: Child) -> (Option<std::process::ExitStatus>, String, String) {
    use std::io::Read;
    let pid = bot.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = bot.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if status.is_none() {
        let _ = bot.kill();
        let _ = bot.wait();
    }
    let mut out = String::new();
    let mut err = String::new();
    bot.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    bot.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status, out, err)
}

/// Whether `program` runs; when it does not, says so, and fails under CI
/// (which must install it).
pub fn installed(program: &str, package: &str) -> bool {
    if Command::new(program).arg("--version").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must install Debian's {package} package (see .ci/run)"
    );
    eprintln!("SKIPPED: `{program}` is not installed (apt-get install {package})");
    false
}

/// Starts Debian's Prometheus on `port` with this config (written to
/// `dir`), or `None` when it is not installed.
pub fn start_prometheus_with(dir: &std::path::Path, config: &str, port: u16) -> Option<KillOnDrop> {
    if !installed("prometheus", "prometheus") {
        return None;
    }
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, config).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prom-data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    Some(KillOnDrop(child))
}

/// Starts Debian's Alertmanager (`prometheus-alertmanager`; upstream
/// calls it `alertmanager`) on `port` with this config, clustering off,
/// or `None` when it is not installed.
pub fn start_alertmanager(dir: &std::path::Path, config: &str, port: u16) -> Option<KillOnDrop> {
    let program = ["prometheus-alertmanager", "alertmanager"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok());
    let Some(program) = program else {
        installed("prometheus-alertmanager", "prometheus-alertmanager");
        return None;
    };
    let cfg = dir.join("alertmanager.yml");
    std::fs::write(&cfg, config).unwrap();
    let child = Command::new(program)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.join("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start alertmanager");
    Some(KillOnDrop(child))
}

/// Starts Debian's Prometheus scraping `sim_addr` every second, or `None`
/// when it is not installed (which fails under CI).
pub fn start_prometheus(dir: &std::path::Path, sim_addr: &str) -> Option<(KillOnDrop, u16)> {
    let port = free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: sim\n    static_configs:\n      - targets: ['{sim_addr}']\n"
    );
    start_prometheus_with(dir, &config, port).map(|p| (p, port))
}

/// The text of every chat message queued in the outbox, oldest first.
pub async fn chat_texts(store: &firebreak::store::Store) -> Vec<String> {
    store
        .pending_outbox(500)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(&r.payload_json).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Starts the daemon in this process on the embedded rules and runbooks,
/// an in-memory store and the real clock, its chat printed to `out`; the
/// token stops it.
pub async fn start_daemon(
    config: firebreak::config::Config,
    out: Box<dyn std::io::Write + Send>,
) -> (
    firebreak::daemon::Daemon,
    tokio_util::sync::CancellationToken,
) {
    start_daemon_loaded(firebreak::load::load_embedded(config).unwrap(), out).await
}

/// [`start_daemon`] with what is loaded given.
pub async fn start_daemon_loaded(
    loaded: firebreak::load::Loaded,
    out: Box<dyn std::io::Write + Send>,
) -> (
    firebreak::daemon::Daemon,
    tokio_util::sync::CancellationToken,
) {
    let store = firebreak::store::Store::open("sqlite::memory:")
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let chat = std::sync::Arc::new(firebreak::chat::console::Console::new(
        out,
        chrono::FixedOffset::east_opt(0).unwrap(),
        "UTC",
    ));
    let daemon = firebreak::daemon::Daemon::start(
        loaded,
        store,
        firebreak::clock::Clock::system(),
        chat,
        stop.clone(),
    )
    .await
    .unwrap();
    (daemon, stop)
}
