//! `query`, `wait until` and `silence` through the real executor, with a
//! real watcher task answering queries and a real control loop owning the
//! silences, wired as the daemon wires them.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use firebreak::chat::Outbox;
use firebreak::clock::{Clock, Millis};
use firebreak::control::{Command, Control};
use firebreak::dispatch::Dispatcher;
use firebreak::executor::actions::ActionEnv;
use firebreak::executor::{Executor, Outcome, RunRequest};
use firebreak::labels::Labels;
use firebreak::rules::RuleEngine;
use firebreak::runbook::parse_runbook;
use firebreak::store::{StepRecord, Store};
use firebreak::tsdb::SeriesStore;
use firebreak::watcher::Watcher;

const T0: Millis = 1_700_000_000_000;

/// A runbook that silences the old room's alerts, waits for listeners to
/// reach the backup room, then checks a bound the data breaks.
const RECOVER: &str = r#"kind: runbook
name: recover
trigger: {manual: true}
steps:
  - id: quiet
    action: silence
    with:
      matchers: 'alertname="Full",event="{{ run.incident }}"'
      duration: 30m
      comment: moved to backup
  - id: recovered
    action: wait
    with:
      until: 'sum(listeners{room="backup"}) > 1000'
      within: 2m
      every: 15s
  - id: load
    action: query
    with:
      expr: 'sum(listeners{room="backup"})'
      expect: {empty: false, max: 1000}
  - id: never
    action: chat
    with: {text: "not reached"}
"#;

const NEVER: &str = r#"kind: runbook
name: never
trigger: {manual: true}
steps:
  - id: count
    action: query
    with:
      expr: 'count(listeners)'
      capture: {}
  - id: recovered
    action: wait
    with:
      until: 'listeners{room="green"}'
      within: 1m
"#;

struct Bot {
    exec: Executor,
    store: Store,
    commands: mpsc::Sender<Command>,
    finished_rx: Option<mpsc::Receiver<firebreak::executor::RunFinished>>,
    stop: CancellationToken,
}

/// The daemon's wiring on a clock 100 times faster than real time: the
/// backup room fills 40s (of the bot's clock) after the start.
async fn bot() -> Bot {
    let clock = Clock::scaled(T0, 100.0);
    let store = Store::open("sqlite::memory:").await.unwrap();
    let outbox = Outbox::new(store.clone());
    let stop = CancellationToken::new();

    let mut series = SeriesStore::new(3_600_000);
    let listeners = |room: &str| {
        Labels::new()
            .with("__name__", "listeners")
            .with("room", room)
    };
    series.append(listeners("main"), T0, 1_500.0).unwrap();
    series
        .append(listeners("backup"), T0 + 40_000, 1_500.0)
        .unwrap();
    let watcher = Watcher {
        engine: RuleEngine::new(Vec::new(), Labels::new(), T0),
        series,
        state: None,
        remote: None,
        pushed: None,
        reloads: None,
        sight: None,
        pending: None,
    };
    let (queries, query_rx) = firebreak::watcher::queries(None, clock.clone());
    let (scrape_tx, scrape_rx) = mpsc::channel(1);
    drop(scrape_tx);
    let (alert_tx, alert_rx) = mpsc::channel(16);
    tokio::spawn(watcher.run(scrape_rx, query_rx, alert_tx, clock.clone(), stop.clone()));

    let (command_tx, command_rx) = mpsc::channel(16);
    let (finished_tx, finished_rx) = mpsc::channel(16);
    let env = ActionEnv {
        http: firebreak::net::target_client().unwrap(),
        targets: BTreeMap::new(),
        secrets: BTreeMap::new(),
        outbox: outbox.clone(),
        clock: clock.clone(),
        channel: "#test".into(),
        queries: Some(queries),
        silencer: Some(std::sync::Arc::new(command_tx.clone())),
    };
    // The control loop gets run ends through its own queue; the test
    // reads them from a second one the executor reports to.
    let (ctl_finished_tx, ctl_finished_rx) = mpsc::channel(16);
    drop(ctl_finished_tx);
    let exec = Executor::new(env, store.clone(), stop.clone(), finished_tx);
    let control = Control::new(
        Dispatcher::new(Vec::new(), None),
        exec.clone(),
        store.clone(),
        outbox,
        clock,
        "#test".into(),
        vec!["event".into()],
    );
    tokio::spawn(control.run(alert_rx, ctl_finished_rx, command_rx, stop.clone()));
    Bot {
        exec,
        store,
        commands: command_tx,
        finished_rx: Some(finished_rx),
        stop,
    }
}

async fn run(bot: &mut Bot, runbook: &str) -> (Outcome, Vec<StepRecord>) {
    let rb = parse_runbook("rb.yaml", runbook, &firebreak::load::check_env([])).unwrap();
    let name = rb.name.clone();
    bot.exec.start(RunRequest {
        run_id: format!("{name}-1"),
        runbook: Arc::new(rb),
        incident: "launch".into(),
        concurrency_key: name.clone(),
        alert: None,
        inputs: BTreeMap::new(),
        by: firebreak::timeline::By::Person(firebreak::roles::Who::new("U1", "alice")),
    });
    let mut rx = bot.finished_rx.take().unwrap();
    let done = tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv())
        .await
        .expect("the run ends")
        .unwrap();
    bot.finished_rx = Some(rx);
    (done.outcome, bot.store.steps(&done.run_id).await.unwrap())
}

fn output(s: &StepRecord) -> Value {
    serde_json::from_str(s.output_json.as_deref().unwrap()).unwrap()
}

#[tokio::test]
async fn wait_until_holds_then_a_failed_expectation_stops_the_run() {
    let mut bot = bot().await;
    let (outcome, steps) = run(&mut bot, RECOVER).await;
    assert_eq!(outcome, Outcome::Failed);
    let by_id = |id: &str| steps.iter().find(|s| s.step_id == id).unwrap();

    let quiet = output(by_id("quiet"));
    assert!(quiet["id"].as_str().unwrap().starts_with('k'), "{quiet}");
    assert!(quiet["ends_at"].as_i64().unwrap() >= T0 + 30 * 60_000);

    let waited = by_id("recovered");
    assert_eq!(waited.state.as_str(), "succeeded");
    let w = output(waited);
    assert_eq!(w["held"], json!(true));
    assert_eq!(w["value"], json!(1500.0));
    let after: firebreak::duration::PromDuration = w["after"].as_str().unwrap().parse().unwrap();
    assert!(
        (40_000..=60_000).contains(&after.as_millis()),
        "held at the first poll after 40s: {after}"
    );

    let load = by_id("load");
    assert_eq!(load.state.as_str(), "failed");
    assert_eq!(load.attempts, 1, "a failed expectation is not retried");
    let e = load.error.as_deref().unwrap();
    assert!(e.contains("expected values <= 1000, got 1500"), "{e}");
    assert!(steps.iter().all(|s| s.step_id != "never"));

    // The silence is the control loop's now.
    let (reply, answer) = tokio::sync::oneshot::channel();
    bot.commands
        .send(Command::Unsilence {
            id: quiet["id"].as_str().unwrap().to_owned(),
            by: firebreak::roles::Who::new("UTEST", "test"),
            reply,
        })
        .await
        .unwrap();
    answer.await.unwrap().unwrap();
    assert_eq!(bot.store.silences().await.unwrap().len(), 1);
    bot.stop.cancel();
    bot.exec.drain().await;
}

#[tokio::test]
async fn wait_until_that_never_holds_says_what_it_last_saw() {
    let mut bot = bot().await;
    let (outcome, steps) = run(&mut bot, NEVER).await;
    assert_eq!(outcome, Outcome::Failed);
    assert_eq!(output(&steps[0])["value"], json!(1.0));
    let e = steps[1].error.as_deref().unwrap();
    assert!(
        e.contains("did not hold within 1m; last saw an empty result"),
        "{e}"
    );
    bot.stop.cancel();
    bot.exec.drain().await;
}

#[tokio::test]
async fn chat_steps_with_a_slot_update_one_message() {
    let mut bot = bot().await;
    let (outcome, _) = run(
        &mut bot,
        r#"kind: runbook
name: progress
trigger: {manual: true}
steps:
  - id: first
    action: chat
    with: {text: "moving: 1 of 2", slot: progress}
  - id: second
    action: chat
    with: {text: "moving: 2 of 2", slot: progress}
  - id: done
    action: chat
    with: {text: moved}
"#,
    )
    .await;
    assert_eq!(outcome, Outcome::Succeeded);
    let sent: Vec<(Option<String>, String)> = bot
        .store
        .pending_outbox(100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| serde_json::from_str::<firebreak::chat::ChatMessage>(&r.payload_json).unwrap())
        .filter(|m| m.kind == firebreak::chat::Kind::Note)
        .map(|m| (m.slot, m.text))
        .collect();
    let slot = Some("step:progress".to_owned());
    assert_eq!(
        sent,
        [
            (slot.clone(), "moving: 1 of 2".to_owned()),
            (slot, "moving: 2 of 2".to_owned()),
            (None, "moved".to_owned()),
        ]
    );
}
