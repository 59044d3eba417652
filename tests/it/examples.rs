//! Every setup under `examples/` runs as written, against the real
//! servers it names: `firebreak sim` for the platform, Debian's Prometheus
//! and Alertmanager, and a fake Slack (its Web API and Socket Mode). Each
//! is copied with `examples/shared/`, its loopback ports (sim 9100,
//! Prometheus 9090, Alertmanager 9093, the bot 9095) swapped for free ones,
//! and `firebreak run -c` started on it; it passes when the loud host is
//! muted by the example's runbook and the run succeeded.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{
    KillOnDrop, free_port, host_muted, run_ended, start_alertmanager, start_prometheus_with,
    start_sim, stop_bot,
};
use crate::fake_slack::{self, FakeSlack};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// An example laid out in a temporary directory, ready to start.
struct Laid {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    sim_addr: String,
    bot_port: u16,
    _servers: Vec<KillOnDrop>,
}

fn swap_ports(text: &str, ports: &[(&str, String)]) -> String {
    let mut t = text.to_owned();
    for (from, to) in ports {
        t = t.replace(from, to);
    }
    t
}

/// Copies `examples/<name>` and `examples/shared`, swaps the ports, and
/// starts the simulator and whichever of Prometheus and Alertmanager the
/// example has a config for. `None` when one of those is not installed.
fn lay_out(name: &str) -> Option<Laid> {
    lay_out_from(&examples().join(name))
}

fn lay_out_from(src: &Path) -> Option<Laid> {
    let tmp = tempfile::tempdir().unwrap();
    crate::docs::copy_dir(&examples().join("shared"), &tmp.path().join("shared"));
    let dir = tmp.path().join(src.file_name().unwrap());
    crate::docs::copy_dir(src, &dir);
    // The feedback starts 30s into the scenario: 10s from now.
    let (sim, sim_addr) = start_sim(&["--speed", "1", "--from", "20s"]);
    let (prom_port, am_port, bot_port) = (free_port(), free_port(), free_port());
    let ports = [
        ("127.0.0.1:9100", sim_addr.clone()),
        ("127.0.0.1:9090", format!("127.0.0.1:{prom_port}")),
        ("127.0.0.1:9093", format!("127.0.0.1:{am_port}")),
        ("127.0.0.1:9095", format!("127.0.0.1:{bot_port}")),
    ];
    std::fs::write(dir.join("api-token"), "example-token-not-a-secret\n").unwrap();
    let mut servers = vec![sim];
    for file in ["firebreak.yaml", "prometheus.yml", "alertmanager.yml"] {
        let p = dir.join(file);
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let text = swap_ports(&text, &ports);
        match file {
            "alertmanager.yml" => servers.push(start_alertmanager(&dir, &text, am_port)?),
            "prometheus.yml" => servers.push(start_prometheus_with(&dir, &text, prom_port)?),
            _ => std::fs::write(&p, text).unwrap(),
        }
    }
    Some(Laid {
        _tmp: tmp,
        dir,
        sim_addr,
        bot_port,
        _servers: servers,
    })
}

/// `firebreak run -c` on the laid-out example, with these variables set.
fn start(laid: &Laid, env: &[(&str, &str)]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(["run", "-c", "firebreak.yaml"])
        .current_dir(&laid.dir)
        .env_remove("FIREBREAK_CONFIG")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start firebreak run")
}

/// The run muted the host and succeeded; says why not otherwise.
async fn assert_mitigated(laid: &Laid, bot: std::process::Child, name: &str) {
    let muted = host_muted(&laid.sim_addr, 120).await;
    let state = if muted {
        run_ended(&laid.dir.join("firebreak.db"), "quiet-speaker", 30).await
    } else {
        None
    };
    let (_, out, err) = stop_bot(bot);
    assert!(
        muted,
        "{name}: the host was never muted\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert_eq!(
        state.as_deref(),
        Some("succeeded"),
        "{name}\nstdout:\n{out}\nstderr:\n{err}"
    );
}

async fn runs_as_written(name: &str) {
    let Some(laid) = lay_out(name) else { return };
    let bot = start(&laid, &[]);
    assert_mitigated(&laid, bot, name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_scrape_example_mutes_the_loud_host() {
    runs_as_written("scrape").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_prometheus_api_example_mutes_the_loud_host() {
    runs_as_written("prometheus-api").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_prometheus_push_example_mutes_the_loud_host() {
    runs_as_written("prometheus-push").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_alertmanager_example_mutes_the_loud_host() {
    runs_as_written("alertmanager").await;
}

/// Points the example's Slack at the fake (the one line a test adds),
/// whose workspace has the example's channel.
fn to_fake(laid: &Laid, slack: &FakeSlack) {
    slack.add_channel("C0LIVEINC01", "live-incidents");
    let p = laid.dir.join("firebreak.yaml");
    let text = std::fs::read_to_string(&p).unwrap();
    let anchor = "    bot_token_secret: slack_bot\n";
    assert!(text.contains(anchor), "{text}");
    let text = text.replace(
        anchor,
        &format!("{anchor}    api_url: '{}'\n", slack.api_url()),
    );
    std::fs::write(p, text).unwrap();
}

/// A Slack example started against the fake Slack, with these secrets.
async fn slack_example(
    name: &str,
    env: &[(&str, &str)],
) -> Option<(Laid, FakeSlack, std::process::Child)> {
    let laid = lay_out(name)?;
    let slack = FakeSlack::start().await;
    to_fake(&laid, &slack);
    let bot = start(&laid, env);
    Some((laid, slack, bot))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_slack_http_example_posts_to_slack_and_takes_signed_commands() {
    firebreak::net::install_crypto_provider();
    let env = [
        ("SLACK_BOT_TOKEN", fake_slack::TOKEN),
        ("SLACK_SIGNING_SECRET", fake_slack::SIGNING_SECRET),
    ];
    let Some((laid, slack, bot)) = slack_example("slack-http", &env).await else {
        return;
    };
    let told = slack.wait_message("Muted host in room main", 120).await;
    use fake_slack::to_bot;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", laid.bot_port).parse().unwrap();
    let body = to_bot::slash("U0ANYONE", "ana", "status", &slack.response_url("cmd"));
    let r = to_bot::send(
        addr,
        "/slack/commands",
        to_bot::FORM,
        &body,
        to_bot::now_s(),
        None,
    )
    .await;
    let status = r.status().as_u16();
    let forged = to_bot::send(
        addr,
        "/slack/commands",
        to_bot::FORM,
        &body,
        to_bot::now_s(),
        Some("v0=00".into()),
    )
    .await
    .status()
    .as_u16();
    assert!(
        told.is_some(),
        "no message in Slack: {:?}",
        slack.messages()
    );
    assert_eq!(status, 200, "a signed slash command");
    assert_eq!(forged, 401, "a badly signed one");
    assert_mitigated(&laid, bot, "slack-http").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_slack_socket_mode_example_connects_and_posts_to_slack() {
    let env = [
        ("SLACK_BOT_TOKEN", fake_slack::TOKEN),
        ("SLACK_APP_TOKEN", fake_slack::APP_TOKEN),
    ];
    let Some((laid, slack, bot)) = slack_example("slack-socket-mode", &env).await else {
        return;
    };
    let connected = slack.wait_socket(60).await;
    let told = slack.wait_message("Muted host in room main", 120).await;
    assert!(connected, "the bot never opened a Socket Mode connection");
    assert!(
        told.is_some(),
        "no message in Slack: {:?}",
        slack.messages()
    );
    assert_mitigated(&laid, bot, "slack-socket-mode").await;
}

/// The getting-started page's setup, walked as the page says: its
/// `prometheus.yml` in a real Prometheus, `firebreak sim` for the
/// platform, `firebreak run -c` on the copied directory; the host is
/// muted by the page's runbook.
#[tokio::test(flavor = "multi_thread")]
async fn the_getting_started_setup_mutes_the_loud_host() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/snippets/getting-started");
    let Some(laid) = lay_out_from(&src) else {
        return;
    };
    let bot = start(&laid, &[]);
    assert_mitigated(&laid, bot, "docs/snippets/getting-started").await;
}

/// Every example validates as shipped (secrets not read: they name
/// environment variables and files a user makes), and the shared rule and
/// runbook tests pass.
#[test]
fn every_example_validates_and_the_shared_tests_pass() {
    let mut n = 0;
    for e in std::fs::read_dir(examples()).unwrap() {
        let dir = e.unwrap().path();
        if !dir.join("firebreak.yaml").is_file() {
            continue;
        }
        n += 1;
        let (code, out) =
            crate::common::firebreak_in(&dir, &["validate", "-c", "firebreak.yaml", "--offline"]);
        assert_eq!(code, 0, "{}: {out}", dir.display());
        assert!(!out.contains("warning"), "{}: {out}", dir.display());
    }
    assert!(n >= 6, "{n} examples");
    let shared = examples().join("shared");
    let (code, out) = crate::common::firebreak_in(
        &shared,
        &["test", "rules", "alerts/speakers.rules.test.yml"],
    );
    assert_eq!(code, 0, "{out}");
    let tmp = tempfile::tempdir().unwrap();
    crate::docs::copy_dir(&examples().join("shared"), &tmp.path().join("shared"));
    crate::docs::copy_dir(&examples().join("scrape"), &tmp.path().join("scrape"));
    let (code, out) = crate::common::firebreak_in(
        &tmp.path().join("scrape"),
        &["test", "runbooks", "-c", "firebreak.yaml"],
    );
    assert_eq!(code, 0, "{out}");
}
