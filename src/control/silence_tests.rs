use super::*;
use crate::executor::actions::ActionEnv;
use crate::labels::Labels;
use crate::rules::{Alert, AlertState};

const RUNBOOK: &str = "kind: runbook\nname: on-full\ntrigger:\n  alerts: [{alertname: Full}]\nsteps:\n  - id: say\n    action: chat\n    with: {text: hi}\n";

/// A store in a file that lives as long as the returned directory.
async fn file_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = Store::open(&url).await.unwrap();
    (dir, store)
}

/// Actions that talk to chat only, on channel `#c`.
pub(super) fn env(outbox: &Outbox, clock: &Clock) -> ActionEnv {
    ActionEnv {
        http: crate::net::target_client().unwrap(),
        targets: BTreeMap::new(),
        secrets: BTreeMap::new(),
        outbox: outbox.clone(),
        clock: clock.clone(),
        channel: "#c".into(),
        queries: None,
        silencer: None,
    }
}

pub(super) fn control(store: &Store, clock: &Clock) -> Control {
    let outbox = Outbox::new(store.clone());
    let env = silence_tests::env(&outbox, clock);
    // Runs are not awaited here; their ends queue up unread.
    let (finished, _) = mpsc::channel(16);
    let executor = Executor::new(env, store.clone(), CancellationToken::new(), finished);
    let rb = crate::runbook::parse_runbook("r.yaml", RUNBOOK, &crate::load::check_env([])).unwrap();
    Control::new(
        Dispatcher::new(vec![std::sync::Arc::new(rb)], None),
        executor,
        store.clone(),
        outbox,
        clock.clone(),
        "#c".into(),
        vec!["event".into()],
    )
}

fn event(kind: AlertEventKind, name: &str, at: Millis) -> AlertEvent {
    let labels = Labels::new()
        .with("alertname", name)
        .with("event", "launch");
    AlertEvent {
        kind,
        at,
        alert: Alert {
            rule: name.into(),
            group: "g".into(),
            labels,
            annotations: BTreeMap::new(),
            state: AlertState::Firing,
            active_at: at,
            fired_at: Some(at),
            resolved_at: None,
            keep_firing_since: None,
            last_eval: at,
            value: 1.0,
        },
    }
}

async fn chat(store: &Store) -> Vec<String> {
    store
        .pending_outbox(100)
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

/// Hands `c` the command `make` builds around a reply, and waits for the
/// answer.
async fn ask<T>(c: &mut Control, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> T {
    let (reply, answer) = oneshot::channel();
    c.on_command(make(reply)).await;
    answer.await.unwrap()
}

async fn silence(c: &mut Control, m: &str, duration_ms: Millis) -> Result<String, SilenceRefused> {
    silence_keyed(c, m, duration_ms, None)
        .await
        .map(|(id, _)| id)
}

async fn silence_keyed(
    c: &mut Control,
    m: &str,
    duration_ms: Millis,
    key: Option<&str>,
) -> Result<(String, Millis), SilenceRefused> {
    let (reply, answer) = oneshot::channel();
    c.on_command(Command::Silence {
        matchers: crate::matchers::parse_matchers(m).unwrap(),
        duration_ms,
        by: SilenceBy::Person(Who::new("U1", "alice")),
        comment: "moving rooms".into(),
        key: key.map(str::to_owned),
        reply,
    })
    .await;
    answer.await.unwrap()
}

#[tokio::test]
async fn a_chart_is_asked_for_once_per_alert_rule_of_an_incident() {
    let (_dir, store) = file_store().await;
    let clock = Clock::system();
    let (tx, mut rx) = crate::chat::charts::queue();
    let mut c = control(&store, &clock).with_charts(tx);
    let t = clock.now();
    c.on_alert(event(AlertEventKind::Firing, "Full", t)).await;
    c.on_alert(event(AlertEventKind::Firing, "Other", t + 1))
        .await;
    let mut again = event(AlertEventKind::Firing, "Full", t + 2);
    again.alert.labels = again.alert.labels.with("room", "side");
    c.on_alert(again).await;
    let mut asked = Vec::new();
    while let Ok(r) = rx.try_recv() {
        asked.push((
            r.incident,
            r.group,
            r.rule,
            r.labels.get("event").map(str::to_owned),
        ));
    }
    let launch = Some("launch".to_owned());
    assert_eq!(
        asked,
        [
            ("launch".into(), "g".into(), "Full".into(), launch.clone()),
            ("launch".into(), "g".into(), "Other".into(), launch),
        ]
    );
}

// Real time: paused time would time out the store's connection pool.
#[tokio::test]
async fn a_silenced_alert_is_recorded_and_nothing_more_even_after_a_restart() {
    let (_dir, store) = file_store().await;
    let clock = Clock::system();
    let mut c = control(&store, &clock);

    let e = silence(&mut c, "event=~\".*\"", 60_000).await.unwrap_err();
    assert!(e.to_string().contains("would match every alert"), "{e}");
    let id = silence(&mut c, "alertname=\"Full\"", 60_000).await.unwrap();

    c.on_alert(event(AlertEventKind::Firing, "Full", clock.now()))
        .await;
    c.on_alert(event(AlertEventKind::Resolved, "Full", clock.now()))
        .await;
    assert!(store.runs().await.unwrap().is_empty(), "no runbook started");
    let said = chat(&store).await;
    assert_eq!(said.len(), 1, "only the silence itself: {said:?}");
    assert!(
        said[0].starts_with("silenced alertname=\"Full\" for 1m by alice"),
        "{said:?}"
    );
    let kinds: Vec<(String, String)> = store
        .timeline("launch")
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind.to_string(), e.text))
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert_eq!(kinds[0].0, "alert_silenced");
    assert!(kinds[0].1.contains(&id), "{kinds:?}");
    assert_eq!(kinds[1].1, "Full resolved (was silenced)");

    // A restart: the silence is read back and still holds.
    let mut c = control(&store, &clock);
    c.restore_silences().await;
    c.on_alert(event(AlertEventKind::Firing, "Full", clock.now()))
        .await;
    assert!(store.runs().await.unwrap().is_empty());

    // Expired: the next firing pages and starts the runbook.
    let (reply, answer) = oneshot::channel();
    c.on_command(Command::Unsilence {
        id: id.clone(),
        by: Who::new("U2", "bob"),
        reply,
    })
    .await;
    answer.await.unwrap().unwrap();
    let (reply, answer) = oneshot::channel();
    c.on_command(Command::Unsilence {
        id,
        by: Who::new("U2", "bob"),
        reply,
    })
    .await;
    assert!(
        answer
            .await
            .unwrap()
            .unwrap_err()
            .to_string()
            .contains("already expired")
    );
    c.on_alert(event(AlertEventKind::Firing, "Other", clock.now()))
        .await;
    c.on_alert(event(AlertEventKind::Firing, "Full", clock.now() + 1))
        .await;
    c.post_cards().await;
    c.executor.drain().await;
    let said = chat(&store).await;
    assert!(
        said.iter()
            .any(|t| t.contains("\n• Full") && t.contains("firing")),
        "the incident card names it: {said:?}"
    );
    assert!(
        said.iter().any(|t| t.contains("ended by bob (U2) after")),
        "{said:?}"
    );
    assert_eq!(store.runs().await.unwrap().len(), 1);
}

/// Regression: the watcher saves an alert as firing before the control
/// loop has recorded a run for it. A bot killed in between came back
/// with the alert restored as firing, which never fires again, and
/// the mitigation was forgotten (found by `tests/kill_restart.rs`).
#[tokio::test]
async fn an_alert_restored_as_firing_with_no_run_starts_its_runbook_once() {
    let (_dir, store) = file_store().await;
    let clock = Clock::system();
    let firing = event(AlertEventKind::Firing, "Full", clock.now() - 5_000).alert;

    let mut c = control(&store, &clock);
    c.dispatch_restored(vec![firing.clone()]).await;
    c.executor.drain().await;
    let runs = store.runs().await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].state, RunState::Ended(Outcome::Succeeded));
    let said = chat(&store).await;
    assert!(
        said.iter()
            .any(|t| t.contains("*Full* was firing when the bot stopped")),
        "{said:?}"
    );

    // Another restart, with no cooldown remembered: the run that this
    // firing started is in the store, so nothing starts again.
    let mut c = control(&store, &clock);
    c.dispatch_restored(vec![firing]).await;
    c.executor.drain().await;
    assert_eq!(store.runs().await.unwrap().len(), 1);
}

async fn status(c: &mut Control) -> Status {
    let (tx, rx) = oneshot::channel();
    c.on_command(Command::Status(tx)).await;
    rx.await.unwrap()
}

async fn ack(c: &mut Control, target: &str) -> Result<String, AckError> {
    let (reply, answer) = oneshot::channel();
    c.on_command(Command::Ack {
        target: target.into(),
        by: Who::new("U2", "bob"),
        reply,
    })
    .await;
    answer.await.unwrap()
}

#[tokio::test]
async fn silenced_alerts_are_listed_as_such_and_acks_find_alerts_by_id_name_or_incident() {
    let (_dir, store) = file_store().await;
    let clock = Clock::system();
    let mut c = control(&store, &clock);
    let id = silence(&mut c, "alertname=\"Quiet\"", 60_000)
        .await
        .unwrap();
    c.on_alert(event(AlertEventKind::Firing, "Quiet", clock.now()))
        .await;
    let s = status(&mut c).await;
    assert_eq!(s.firing.len(), 1);
    assert_eq!(s.firing[0].silenced_by.as_deref(), Some(id.as_str()));
    assert_eq!(s.incident, None, "a silenced alert opens no incident");
    assert!(
        ack(&mut c, "Quiett")
            .await
            .unwrap_err()
            .to_string()
            .contains("did you mean `Quiet`?")
    );

    c.on_alert(event(AlertEventKind::Firing, "Full", clock.now()))
        .await;
    let s = status(&mut c).await;
    assert_eq!(s.incident.as_deref(), Some("launch"));
    let full = s.firing.iter().find(|f| f.name == "Full").unwrap().clone();
    assert_eq!(
        ack(&mut c, &full.fingerprint[..6]).await.unwrap(),
        "acknowledged: Full (event=launch)"
    );
    assert_eq!(
        ack(&mut c, "launch").await.unwrap(),
        "acknowledged: Full (already acknowledged by bob (U2)), Quiet (event=launch)"
    );
    let s = status(&mut c).await;
    assert!(
        s.firing
            .iter()
            .all(|f| f.acked.as_ref().is_some_and(|a| a.by == "bob (U2)"))
    );

    c.on_alert(event(AlertEventKind::Resolved, "Quiet", clock.now()))
        .await;
    c.on_alert(event(AlertEventKind::Resolved, "Full", clock.now()))
        .await;
    assert!(status(&mut c).await.firing.is_empty());
    assert_eq!(
        ack(&mut c, "Full").await.unwrap_err().to_string(),
        "no alert is firing, so there is nothing to acknowledge as \"Full\""
    );
    c.executor.drain().await;
}

/// Found by the load benchmark: acking an incident of 10,000 alerts
/// answered with every name, a reply of hundreds of kilobytes.
#[tokio::test]
async fn an_ack_of_a_storm_counts_alike_alerts_instead_of_listing_them() {
    let (_dir, store) = file_store().await;
    let clock = Clock::system();
    let mut c = control(&store, &clock);
    for i in 0..300 {
        let mut e = event(AlertEventKind::Firing, "Surge", clock.now());
        e.alert.labels = e.alert.labels.with("instance", format!("edge-{i}"));
        c.on_alert(e).await;
    }
    for room in 0..15 {
        let mut e = event(AlertEventKind::Firing, "Full", clock.now());
        e.alert.labels = e.alert.labels.with("room", format!("r{room:02}"));
        c.on_alert(e).await;
    }
    let reply = ack(&mut c, "launch").await.unwrap();
    assert_eq!(
        reply,
        "acknowledged: Full (event=launch, room=r00), Full (event=launch, room=r01), \
             Full (event=launch, room=r02), Full (event=launch, room=r03), \
             Full (event=launch, room=r04), Full (event=launch, room=r05), \
             Full (event=launch, room=r06), Full (event=launch, room=r07), \
             Full (event=launch, room=r08), Full (event=launch, room=r09), … and 305 more"
    );
    let said = store.pending_outbox(10_000).await.unwrap();
    let note = said
        .iter()
        .map(|r| r.payload_json.as_str())
        .find(|t| t.contains("acknowledged by"))
        .unwrap();
    assert!(note.len() < 1000, "{note}");
    let again = ack(&mut c, "launch").await.unwrap();
    assert!(
        again.contains("Surge (already acknowledged by bob (U2)) ×300"),
        "{again}"
    );
    let miss = ack(&mut c, "nope").await.unwrap_err();
    assert_eq!(
        miss.to_string(),
        "nothing firing is called \"nope\"; firing: Full, Surge, launch"
    );
    c.executor.drain().await;
}

#[tokio::test]
async fn a_keyed_silence_asked_for_again_after_a_restart_is_the_same_silence() {
    let (_dir, store) = file_store().await;
    let clock = Clock::system();
    let mut c = control(&store, &clock);
    let key = Some("move-1-00001:quiet");
    let first = silence_keyed(&mut c, "alertname=\"Full\"", 60_000, key)
        .await
        .unwrap();
    let again = silence_keyed(&mut c, "alertname=\"Full\"", 60_000, key)
        .await
        .unwrap();
    assert_eq!(first, again);

    let mut c = control(&store, &clock);
    c.restore_silences().await;
    let after_restart = silence_keyed(&mut c, "alertname=\"Full\"", 60_000, key)
        .await
        .unwrap();
    assert_eq!(first, after_restart);
    assert_eq!(store.silences().await.unwrap().len(), 1);
    let other = silence_keyed(&mut c, "alertname=\"Full\"", 60_000, Some("other:quiet"))
        .await
        .unwrap();
    assert_ne!(first.0, other.0);
    let said = chat(&store).await;
    assert_eq!(
        said.iter().filter(|t| t.starts_with("silenced")).count(),
        2,
        "{said:?}"
    );
}

/// Issue 22, item 11: a silence a person makes, and its end, are on the
/// timeline of the incident whose alerts it silences, as theirs; a
/// runbook step's silence is on it as the step, not again here.
#[tokio::test]
async fn a_persons_silence_and_its_end_are_on_the_silenced_incidents_timeline() {
    let (_dir, store) = file_store().await;
    let clock = Clock::system();
    let mut c = control(&store, &clock);
    c.on_alert(event(AlertEventKind::Firing, "Full", clock.now()))
        .await;
    let id = silence(&mut c, "alertname=\"Full\"", 300_000)
        .await
        .unwrap();
    ask(&mut c, |reply| Command::Silence {
        matchers: crate::matchers::parse_matchers("alertname=\"Full\"").unwrap(),
        duration_ms: 60_000,
        by: SilenceBy::Step("runbook run on-full-1".into()),
        comment: String::new(),
        key: Some("on-full-1:quiet".into()),
        reply,
    })
    .await
    .unwrap();
    ask(&mut c, |reply| Command::Unsilence {
        id: id.clone(),
        by: Who::new("U2", "bob"),
        reply,
    })
    .await
    .unwrap();
    c.executor.drain().await;
    let people: Vec<(String, String, String)> = store
        .timeline("launch")
        .await
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.kind, tl::Kind::Silence | tl::Kind::Unsilence))
        .map(|e| (e.kind.to_string(), e.by.id().to_owned(), e.text))
        .collect();
    assert_eq!(people.len(), 2, "{people:?}");
    assert_eq!(
        (people[0].0.as_str(), people[0].1.as_str()),
        ("silence", "U1")
    );
    assert!(
        people[0]
            .2
            .starts_with("silenced alertname=\"Full\" for 5m by alice (U1)"),
        "{people:?}"
    );
    assert_eq!(
        (people[1].0.as_str(), people[1].1.as_str()),
        ("unsilence", "U2")
    );
    assert!(
        people[1].2.starts_with(&format!(
            "silence {id} (alertname=\"Full\") ended by bob (U2) after "
        )),
        "{people:?}"
    );
}

/// A pause while no incident is open is on record all the same.
#[tokio::test]
async fn a_pause_between_incidents_is_on_the_outside_timeline() {
    let (_dir, store) = file_store().await;
    let clock = Clock::system();
    let mut c = control(&store, &clock);
    let carol = Who::new("U3", "carol");
    ask(&mut c, |reply| Command::Pause {
        by: carol.clone(),
        reason: "maintenance".into(),
        reply,
    })
    .await;
    ask(&mut c, |reply| Command::Resume { by: carol, reply }).await;
    let kinds: Vec<(String, String)> = store
        .timeline(OUTSIDE_INCIDENTS)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind.to_string(), e.by.id().to_owned()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("paused".to_owned(), "U3".to_owned()),
            ("resumed".to_owned(), "U3".to_owned())
        ]
    );
}
