use super::*;
use crate::labels::Labels;
use crate::rules::{Alert, AlertState};

/// Says something, then waits for a commander before saying more.
const RUNBOOK: &str = r#"kind: runbook
name: on-full
trigger:
  alerts: [{alertname: Full}]
  manual: true
steps:
  - id: look
    action: chat
    with: {text: looking}
  - id: act
    action: chat
    approval: {role: commander, timeout: 1m}
    with: {text: acting}
"#;

pub(super) fn event(kind: AlertEventKind, at: Millis) -> AlertEvent {
    AlertEvent {
        kind,
        at,
        alert: Alert {
            rule: "Full".into(),
            group: "g".into(),
            labels: Labels::new()
                .with("alertname", "Full")
                .with("event", "launch")
                .with("room", "main")
                .with("severity", "page"),
            annotations: [("summary".to_owned(), "room main is full".to_owned())].into(),
            state: AlertState::Firing,
            active_at: at,
            fired_at: Some(at),
            resolved_at: None,
            keep_firing_since: None,
            last_eval: at,
            value: 1000.0,
        },
    }
}

/// The card versions in the outbox, in order: (status, run state).
async fn cards(store: &Store) -> Vec<(card::Status, Option<String>)> {
    store
        .pending_outbox(1000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|r| {
            serde_json::from_str::<ChatMessage>(&r.payload_json)
                .ok()?
                .card
        })
        .map(|c| (c.status, c.run.map(|r| r.state.to_string())))
        .collect()
}

async fn until<F: Fn(&[(card::Status, Option<String>)]) -> bool>(store: &Store, f: F) {
    for _ in 0..400 {
        if f(&cards(store).await) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("cards never got there: {:?}", cards(store).await);
}

/// The control loop and an executor wired as the daemon wires them, with
/// `runbook` loaded and an alert for it firing, once its card says it
/// waits for approval.
struct Wired {
    store: Store,
    executor: Executor,
    cmd_tx: mpsc::Sender<Command>,
    alert_tx: mpsc::Sender<AlertEvent>,
    clock: Clock,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn waiting_for_approval(runbook: &str) -> Wired {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let clock = Clock::system();
    let outbox = Outbox::new(store.clone());
    let env = silence_tests::env(&outbox, &clock);
    let (finished_tx, finished_rx) = mpsc::channel(16);
    let (progress_tx, progress_rx) = mpsc::channel(16);
    let executor = Executor::new(env, store.clone(), CancellationToken::new(), finished_tx)
        .with_progress(progress_tx);
    let rb = crate::runbook::parse_runbook("r.yaml", runbook, &crate::load::check_env([])).unwrap();
    let control = Control::new(
        Dispatcher::new(vec![std::sync::Arc::new(rb)], None),
        executor.clone(),
        store.clone(),
        outbox,
        clock.clone(),
        "#c".into(),
        vec!["event".into()],
    )
    .with_progress(progress_rx);
    let (alert_tx, alert_rx) = mpsc::channel(16);
    let (cmd_tx, cmd_rx) = mpsc::channel(16);
    let stop = CancellationToken::new();
    let task = tokio::spawn(control.run(alert_rx, finished_rx, cmd_rx, stop.clone()));
    alert_tx
        .send(event(AlertEventKind::Firing, clock.now()))
        .await
        .unwrap();
    until(&store, |c| {
        c.last()
            .is_some_and(|l| l.0 == card::Status::AwaitingApproval)
    })
    .await;
    Wired {
        store,
        executor,
        cmd_tx,
        alert_tx,
        clock,
        stop,
        task,
    }
}

/// The card's statuses, in order, for a run that waits for approval and
/// recovers the incident, which then resolves.
const GATE_STORY: [card::Status; 6] = [
    card::Status::Firing,
    card::Status::Mitigating,
    card::Status::AwaitingApproval,
    card::Status::Mitigating,
    card::Status::Recovered,
    card::Status::Resolved,
];

/// Alice, a commander, approves `run`; returns once the card says the
/// incident recovered.
async fn approve_until_recovered(cmd_tx: &mpsc::Sender<Command>, store: &Store, run: String) {
    let (reply, answer) = oneshot::channel();
    cmd_tx
        .send(Command::Answer {
            run,
            verdict: Verdict::Approve,
            by: Who::new("U1", "alice"),
            role: Role::Commander,
            reply,
        })
        .await
        .unwrap();
    answer.await.unwrap().unwrap();
    until(store, |c| {
        c.last().is_some_and(|l| l.0 == card::Status::Recovered)
    })
    .await;
}

// Real time: paused time would time out the store's connection pool.
#[tokio::test]
async fn one_card_follows_the_incident_from_firing_to_resolved() {
    // The registry is the process's; other tests only add to it.
    let m = crate::metrics::get();
    let runs_before = m.runs.with(&["on-full", "succeeded"]).get();
    let steps_before = m.steps.with(&["chat", "succeeded"]).get();
    let Wired {
        store,
        executor,
        cmd_tx,
        alert_tx,
        clock,
        stop,
        task,
    } = waiting_for_approval(RUNBOOK).await;
    // Regression (found by the load benchmark): the run's first
    // message could be queued before the card, and head the thread.
    let first = &store.pending_outbox(1).await.unwrap()[0];
    let first: ChatMessage = serde_json::from_str(&first.payload_json).unwrap();
    assert_eq!(
        first.card.map(|c| c.status),
        Some(card::Status::Firing),
        "{}",
        first.text
    );
    // Regression: the card showed the gate before it was open, so an
    // answer given at once could find nothing to answer.
    let waiting = executor.waiting();
    assert_eq!(waiting.len(), 1, "the gate is open once the card shows it");
    let run = waiting[0].run.clone();
    approve_until_recovered(&cmd_tx, &store, run).await;
    alert_tx
        .send(event(AlertEventKind::Resolved, clock.now()))
        .await
        .unwrap();
    until(&store, |c| {
        c.last().is_some_and(|l| l.0 == card::Status::Resolved)
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    assert!(m.runs.with(&["on-full", "succeeded"]).get() > runs_before);
    assert!(m.steps.with(&["chat", "succeeded"]).get() >= steps_before + 2);
    assert!(m.step_seconds.with(&["chat"]).count() >= 2);

    let all = cards(&store).await;
    // Every version is queued; the outbox sends only the newest of
    // those still waiting. Progress reports can be merged, so check
    // the order of the statuses, not their number.
    let mut statuses: Vec<card::Status> = all.iter().map(|c| c.0).collect();
    statuses.dedup();
    assert_eq!(statuses, GATE_STORY, "{all:?}");
    let last: ChatMessage = serde_json::from_str(
        &store
            .pending_outbox(1000)
            .await
            .unwrap()
            .last()
            .unwrap()
            .payload_json,
    )
    .unwrap();
    assert_eq!(last.slot.as_deref(), Some(card::SLOT));
    let c = last.card.unwrap();
    assert_eq!(
        c.alerts[0].labels,
        [
            ("event".into(), "launch".into()),
            ("room".into(), "main".into())
        ]
    );
    assert_eq!(c.alerts[0].summary.as_deref(), Some("room main is full"));
    assert_eq!(c.silence.as_deref(), Some("event=\"launch\""));
    assert_eq!(c.runnable, ["on-full"]);
    assert_eq!(c.run.unwrap().state, RunState::Ended(Outcome::Succeeded));
}

/// Issue 22, item 4: an alert with none of the `incidents.group_by`
/// labels (a node alert from a company's Alertmanager) opens an incident
/// of its own, named from it, and never joins the live event's.
#[tokio::test]
async fn an_alert_without_the_grouping_labels_is_its_own_incident() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let clock = Clock::system();
    let mut control = silence_tests::control(&store, &clock);
    let now = clock.now();
    control.on_alert(event(AlertEventKind::Firing, now)).await;
    let mut node = event(AlertEventKind::Firing, now + 1);
    node.alert.rule = "NodeDown".into();
    node.alert.labels = Labels::new()
        .with("alertname", "NodeDown")
        .with("instance", "db-1:9100")
        .with("job", "node")
        .with("severity", "critical");
    control.on_alert(node.clone()).await;
    let incidents: BTreeMap<String, String> = control
        .status()
        .firing
        .iter()
        .map(|f| (f.name.clone(), f.incident.clone()))
        .collect();
    assert_eq!(incidents["Full"], "launch");
    assert_eq!(incidents["NodeDown"], "NodeDown-db-1_9100-node");
    // The same alert again, after a restart too, names the same incident.
    node.alert.labels = node.alert.labels.with("severity", "warning");
    assert_eq!(
        control.incident_for(&node.alert.labels, "NodeDown"),
        "NodeDown-db-1_9100-node"
    );
    let timeline = store.timeline("launch").await.unwrap();
    assert!(
        timeline
            .iter()
            .all(|e| e.about.alert.as_deref() != Some("NodeDown")),
        "the node alert is not on the event's timeline: {timeline:?}"
    );
}

/// Issue 22, item 3: an `action: approval` step shows on the card as a
/// gate does (WAITING FOR APPROVAL, with Approve and Deny buttons, so
/// nobody types run ids), and its answer is recorded as `approved`, on
/// the timeline as the approver's.
#[tokio::test]
async fn an_approval_step_shows_waiting_for_approval_with_buttons() {
    const ASKS: &str = r#"kind: runbook
name: on-full
trigger:
  alerts: [{alertname: Full}]
steps:
  - id: ok_to_cap
    action: approval
    with: {role: commander, timeout: 1m, text: "Cap the room?"}
  - id: act
    action: chat
    with: {text: acting}
"#;
    let Wired {
        store,
        executor,
        cmd_tx,
        stop,
        task,
        ..
    } = waiting_for_approval(ASKS).await;
    let newest = store.pending_outbox(1000).await.unwrap();
    let shown: ChatMessage = newest
        .iter()
        .rev()
        .find_map(|r| {
            serde_json::from_str::<ChatMessage>(&r.payload_json)
                .ok()
                .filter(|m| m.card.is_some())
        })
        .unwrap();
    let blocks = crate::chat::blocks::render(&shown).to_string();
    let waiting = executor.waiting();
    assert_eq!(waiting.len(), 1, "the gate is open once the card shows it");
    let run = waiting[0].run.clone();
    assert_eq!(waiting[0].what, "ok_to_cap");
    for b in ["Approve", "Deny"] {
        assert!(blocks.contains(b), "no {b} button: {blocks}");
    }
    assert!(blocks.contains(&format!("approve {run}")), "{blocks}");
    approve_until_recovered(&cmd_tx, &store, run.clone()).await;
    stop.cancel();
    task.await.unwrap();
    // The same card story as a gate's, up to recovery.
    let all = cards(&store).await;
    let mut statuses: Vec<card::Status> = all.iter().map(|c| c.0).collect();
    statuses.dedup();
    assert_eq!(statuses, GATE_STORY[..5], "{all:?}");
    let steps = store.steps(&run).await.unwrap();
    let asked = steps.iter().find(|s| s.step_id == "ok_to_cap").unwrap();
    assert_eq!(
        asked.state,
        crate::run_state::StepState::Approved,
        "{steps:?}"
    );
    let timeline = store.timeline("launch").await.unwrap();
    let approval = timeline
        .iter()
        .find(|e| e.about.step.as_deref() == Some("ok_to_cap"))
        .unwrap();
    assert_eq!(approval.kind, crate::timeline::Kind::Approved);
    assert_eq!(
        approval.by,
        crate::timeline::By::Person(Who::new("U1", "alice"))
    );
}

/// The demo's replay found it: a card saying "last step `look`
/// succeeded" was queued before the step's own tick, because the run
/// reported its progress before it said the step. Nothing of a step is
/// on the card before the step's line is in the thread.
#[tokio::test]
async fn a_card_never_names_a_step_before_its_line() {
    let Wired {
        store,
        executor,
        cmd_tx,
        stop,
        task,
        ..
    } = waiting_for_approval(RUNBOOK).await;
    let run = executor.waiting()[0].run.clone();
    approve_until_recovered(&cmd_tx, &store, run).await;
    stop.cancel();
    task.await.unwrap();
    let mut said: Vec<String> = Vec::new();
    let mut named = 0;
    for row in store.pending_outbox(1000).await.unwrap() {
        let m: ChatMessage = serde_json::from_str(&row.payload_json).unwrap();
        match m.card.and_then(|c| c.run).and_then(|r| r.last_step) {
            Some((step, _)) => {
                // A gate's answer is said of the step it guards.
                let shown = step.strip_prefix("approval:").unwrap_or(&step);
                assert!(
                    said.iter().any(|l| l.starts_with(&format!("`{shown}`"))),
                    "the card names `{step}` before its line; said so far: {said:?}"
                );
                named += 1;
            }
            None => said.push(m.text),
        }
    }
    assert!(named > 0, "no card named a step: {said:?}");
}
