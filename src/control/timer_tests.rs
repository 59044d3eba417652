//! The control loop's timers on a manual clock: tries again (dispatch
//! rule 5) and the audience tick.
use std::sync::atomic::{AtomicU32, Ordering};

use super::card_tests::event;
use super::*;

/// Cuts the room's cap on a target that may be unavailable.
const RUNBOOK: &str = r#"kind: runbook
name: NAME
trigger:
  alerts: [{alertname: Full}]
policy:
  concurrency_key: "{{ alert.labels.event }}"
  cooldown: 15m
  budget: {runs: 1, per: 1h}
  retry: {attempts: 2, backoff: 10s, max_backoff: 1m}
  expected_duration: 1m
steps:
  - id: set
    action: http
    with: {target: api, method: PUT, path: /cap}
"#;

/// A target that answers 503 to its first `fail` calls, then 200.
async fn target(fail: u32) -> (String, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let app = axum::Router::new().fallback(move || {
        let seen = seen.clone();
        async move {
            if seen.fetch_add(1, Ordering::SeqCst) < fail {
                axum::http::StatusCode::SERVICE_UNAVAILABLE
            } else {
                axum::http::StatusCode::OK
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/"), calls)
}

struct Bot {
    store: Store,
    clock: Clock,
    alerts: mpsc::Sender<AlertEvent>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// A control loop with runbook `name` (named per test: the metrics
/// are the process's).
async fn bot(url: &str, name: &str) -> Bot {
    bot_with(url, &RUNBOOK.replace("NAME", name)).await
}

/// A control loop with the runbook `text`.
async fn bot_with(url: &str, text: &str) -> Bot {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let clock = Clock::manual(1_000_000);
    let outbox = Outbox::new(store.clone());
    let mut env = silence_tests::env(&outbox, &clock);
    env.targets.insert(
        "api".into(),
        crate::config::Target {
            name: "api".into(),
            url: reqwest::Url::parse(url).unwrap(),
            timeout: crate::duration::PromDuration::from_secs(5),
            bearer_secret: None,
            idempotency_keys: true,
        },
    );
    let (finished_tx, finished_rx) = mpsc::channel(16);
    let executor = Executor::new(env, store.clone(), CancellationToken::new(), finished_tx);
    let check = crate::load::check_env(["api".to_owned()]);
    let rb = crate::runbook::parse_runbook("r.yaml", text, &check).unwrap();
    let control = Control::new(
        Dispatcher::new(vec![Arc::new(rb)], None),
        executor,
        store.clone(),
        outbox,
        clock.clone(),
        "#c".into(),
        vec!["event".into()],
    );
    let (alerts, alert_rx) = mpsc::channel(16);
    let (_cmd_tx, cmd_rx) = mpsc::channel(16);
    let stop = CancellationToken::new();
    let task = tokio::spawn(control.run(alert_rx, finished_rx, cmd_rx, stop.clone()));
    Bot {
        store,
        clock,
        alerts,
        stop,
        task,
    }
}

impl Bot {
    async fn chat(&self) -> Vec<String> {
        self.store
            .pending_outbox(1000)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|r| serde_json::from_str::<ChatMessage>(&r.payload_json).ok())
            .filter(|m| m.card.is_none())
            .map(|m| m.text)
            .collect()
    }

    /// Waits (real time) until chat says `needle`.
    async fn said(&self, needle: &str) {
        for _ in 0..500 {
            if self.chat().await.iter().any(|t| t.contains(needle)) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("chat never said {needle:?}: {:#?}", self.chat().await);
    }

    /// The kinds of the incident's timeline entries, in order.
    async fn timeline_kinds(&self) -> Vec<String> {
        self.store
            .timeline("launch")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind.to_string())
            .collect()
    }

    async fn outcomes(&self) -> Vec<String> {
        self.store
            .runs()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.state.to_string())
            .collect()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

// Real time for the store and the target; the bot's clock is manual,
// so every wait between tries is stepped by the test.
#[tokio::test]
async fn a_mitigation_the_target_refused_is_tried_again_until_it_takes() {
    let m = crate::metrics::get();
    let started_before = m.run_retries.with(&["cap", "started"]).get();
    let (url, calls) = target(2).await;
    let b = bot(&url, "cap").await;
    let t0 = b.clock.now();
    b.alerts
        .send(event(AlertEventKind::Firing, t0))
        .await
        .unwrap();
    b.said("trying it again in 10s if *Full* still fires (try 1 of 2)")
        .await;
    // Not before it is due.
    b.clock.advance_to(t0 + 9_000);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    b.clock.advance_to(t0 + 10_000);
    b.said("trying *cap* again (try 1 of 2): *Full* still fires")
        .await;
    // The wait doubles.
    b.said("trying it again in 20s if *Full* still fires (try 2 of 2)")
        .await;
    b.clock.advance_to(t0 + 30_000);
    b.said("runbook *cap* succeeded").await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(b.outcomes().await, ["failed", "failed", "succeeded"]);
    // The two that changed nothing used none of the budget of one.
    assert_eq!(b.store.runs_changed_nothing().await.unwrap().len(), 2);
    assert_eq!(
        m.run_retries.with(&["cap", "started"]).get() - started_before,
        2
    );
    let timeline = b.timeline_kinds().await;
    for kind in ["retry_scheduled", "retry_started"] {
        assert!(timeline.iter().any(|k| k == kind), "{timeline:?}");
    }
    b.stop().await;
}

/// Dispatch rule 7, end to end: a second alert within the cooldown
/// starts the runbook again only when its breach comes first, and
/// chat, the timeline and the metric say so.
#[tokio::test]
async fn a_cooldown_gives_way_to_a_nearer_breach_and_says_so() {
    let (url, calls) = target(0).await;
    let text = RUNBOOK
        .replace("NAME", "cap-again")
        .replace("budget: {runs: 1, per: 1h}", "budget: {runs: 3, per: 1h}");
    let b = bot_with(&url, &text).await;
    let m = crate::metrics::get();
    let before = m.cooldown_overrides.with(&["cap-again"]).get();
    let t0 = b.clock.now();
    let firing = |at: Millis, breach: Option<&str>| {
        let mut e = event(AlertEventKind::Firing, at);
        if let Some(v) = breach {
            e.alert
                .annotations
                .insert(crate::dispatch::TIME_TO_BREACH.into(), v.into());
        }
        e
    };
    let resolved = |at: Millis| event(AlertEventKind::Resolved, at);
    b.alerts.send(firing(t0, None)).await.unwrap();
    b.said("runbook *cap-again* succeeded").await;
    // Fires again 2 minutes later with its breach beyond the 13
    // minutes of cooldown left: held.
    b.alerts.send(resolved(t0 + 60_000)).await.unwrap();
    b.clock.advance_to(t0 + 120_000);
    b.alerts
        .send(firing(t0 + 120_000, Some("900")))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // And once more, the breach 2 minutes away: started, and said.
    b.alerts.send(resolved(t0 + 150_000)).await.unwrap();
    b.clock.advance_to(t0 + 180_000);
    b.alerts
        .send(firing(t0 + 180_000, Some("120")))
        .await
        .unwrap();
    b.said("starting *cap-again* again for launch within its cooldown: the breach is predicted in 2m, before the 12m of cooldown left are over")
            .await;
    b.said("runbook *cap-again* succeeded").await;
    for _ in 0..100 {
        if calls.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(m.cooldown_overrides.with(&["cap-again"]).get() - before, 1);
    let timeline = b.timeline_kinds().await;
    assert!(
        timeline.iter().any(|k| k == "cooldown_overridden"),
        "{timeline:?}"
    );
    b.stop().await;
}

#[tokio::test]
async fn tries_stop_when_spent_and_a_person_is_called() {
    let (url, calls) = target(u32::MAX).await;
    let b = bot(&url, "cap-spent").await;
    let t0 = b.clock.now();
    b.alerts
        .send(event(AlertEventKind::Firing, t0))
        .await
        .unwrap();
    b.said("(try 1 of 2)").await;
    b.clock.advance_to(t0 + 10_000);
    b.said("(try 2 of 2)").await;
    b.clock.advance_to(t0 + 30_000);
    b.said(":rotating_light: needs a person: *cap-spent* failed 3 times in a row without changing anything while *Full* fires; not trying it again").await;
    b.clock.advance_to(t0 + 600_000);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    b.stop().await;
}

/// A control loop with no runbooks that measures the audience every
/// 15s (and 60s after an incident resolves), with the ends of the
/// sampler's queues and of the run-end queue.
struct Measured {
    control: Control,
    requests: mpsc::Receiver<crate::audience::Request>,
    samples: mpsc::Sender<crate::audience::Sample>,
    finished: mpsc::Receiver<RunFinished>,
}

fn measured(store: &Store, clock: &Clock) -> Measured {
    let outbox = Outbox::new(store.clone());
    let env = silence_tests::env(&outbox, clock);
    let (finished_tx, finished) = mpsc::channel(16);
    let executor = Executor::new(env, store.clone(), CancellationToken::new(), finished_tx);
    let (req_tx, requests) = crate::audience::queue();
    let (samples, sample_rx) = mpsc::channel(16);
    let control = Control::new(
        Dispatcher::new(vec![], None),
        executor,
        store.clone(),
        outbox,
        clock.clone(),
        "#c".into(),
        vec!["event".into()],
    )
    .with_audience(
        req_tx,
        sample_rx,
        crate::duration::PromDuration::from_secs(15),
        crate::duration::PromDuration::from_secs(60),
    );
    Measured {
        control,
        requests,
        samples,
        finished,
    }
}

#[tokio::test]
async fn each_open_incident_is_measured_and_its_card_shows_the_audience() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let clock = Clock::manual(1_000_000);
    let Measured {
        control,
        requests: mut req_rx,
        samples: sample_tx,
        finished: finished_rx,
    } = measured(&store, &clock);
    let (alerts, alert_rx) = mpsc::channel(16);
    let (_cmd_tx, cmd_rx) = mpsc::channel(16);
    let stop = CancellationToken::new();
    let task = tokio::spawn(control.run(alert_rx, finished_rx, cmd_rx, stop.clone()));
    let t0 = clock.now();
    alerts
        .send(event(AlertEventKind::Firing, t0))
        .await
        .unwrap();
    let b = Bot {
        store: store.clone(),
        clock: clock.clone(),
        alerts,
        stop,
        task,
    };
    let card_says = |want: &'static str| {
        let store = store.clone();
        async move {
            for _ in 0..500 {
                let cards: Vec<String> = store
                    .pending_outbox(1000)
                    .await
                    .unwrap()
                    .into_iter()
                    .filter_map(|r| serde_json::from_str::<ChatMessage>(&r.payload_json).ok())
                    .filter_map(|m| m.card.map(|_| m.text))
                    .collect();
                if cards.last().is_some_and(|t| t.contains(want)) {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!("no card says {want:?}");
        }
    };
    card_says("Full").await;
    clock.advance_to(t0 + 15_000);
    let req = tokio::time::timeout(std::time::Duration::from_secs(5), req_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(req.incident, "launch");
    assert_eq!(
        req.labels,
        [("event".to_owned(), "launch".to_owned())].into()
    );
    for (at, listening) in [(15_000, 560_000), (30_000, 540_000)] {
        sample_tx
            .send(crate::audience::Sample {
                incident: "launch".into(),
                listening: Some(listening),
                at_risk: Some(500_000),
                without_us: Some(0),
                at: t0 + at,
            })
            .await
            .unwrap();
    }
    card_says("👥 540,000 listening (peak 560,000: 20,000 lost) · 500,000 at risk · doing nothing: 0 listening").await;
    let rows = store.audience("launch").await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].listening, Some(540_000));

    // Resolved, it is still measured for a while, for the review.
    b.alerts
        .send(event(AlertEventKind::Resolved, t0 + 31_000))
        .await
        .unwrap();
    card_says("RESOLVED").await;
    let mut asked = Vec::new();
    for at in [45_000, 60_000, 75_000, 90_000, 105_000, 120_000] {
        clock.advance_to(t0 + at);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        while let Ok(r) = req_rx.try_recv() {
            assert_eq!(r.incident, "launch");
            asked.push(at);
        }
        if at == 45_000 {
            sample_tx
                .send(crate::audience::Sample {
                    incident: "launch".into(),
                    listening: Some(530_000),
                    at_risk: Some(0),
                    without_us: Some(0),
                    at: t0 + at,
                })
                .await
                .unwrap();
            for _ in 0..500 {
                if store.audience("launch").await.unwrap().len() == 3 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            assert_eq!(store.audience("launch").await.unwrap().len(), 3);
        }
    }
    // Resolved at 15s on the bot's clock, follow_for 60s: asked until
    // 75s, then no more.
    assert!(asked.len() >= 2, "{asked:?}");
    assert!(asked.iter().all(|at| *at <= 75_000), "{asked:?}");
    b.stop().await;
}

#[tokio::test]
async fn with_more_incidents_than_the_queue_holds_each_is_measured_in_turn() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let clock = Clock::manual(1_000_000);
    let Measured {
        mut control,
        requests: mut req_rx,
        ..
    } = measured(&store, &clock);
    let t0 = clock.now();
    for n in 0..20 {
        let mut ev = event(AlertEventKind::Firing, t0);
        ev.alert.labels = ev.alert.labels.with("event", format!("e{n:02}"));
        control.on_alert(ev).await;
    }
    assert_eq!(control.cards.len(), 20);
    let drain = |rx: &mut mpsc::Receiver<crate::audience::Request>| {
        let mut got = Vec::new();
        while let Ok(r) = rx.try_recv() {
            assert_eq!(r.labels["event"], r.incident);
            got.push(r.incident);
        }
        got
    };
    control.on_audience_tick();
    let first = drain(&mut req_rx);
    assert_eq!(first.len(), crate::audience::QUEUE);
    control.on_audience_tick();
    let second = drain(&mut req_rx);
    // The four left out come first, then the rest again.
    assert_eq!(second[..4], ["e16", "e17", "e18", "e19"]);
    let all: std::collections::BTreeSet<&String> = first.iter().chain(&second).collect();
    assert_eq!(all.len(), 20);
}

#[tokio::test]
async fn nothing_that_can_act_before_the_breach_pages_people_at_once() {
    let (url, calls) = target(0).await;
    let b = bot(&url, "slow-cap").await;
    // The bot knows only the runbook's own estimate: 1m.
    let t0 = b.clock.now();
    let mut ev = event(AlertEventKind::Firing, t0);
    ev.alert
        .annotations
        .insert(crate::dispatch::TIME_TO_BREACH.into(), "30".into());
    b.alerts.send(ev).await.unwrap();
    b.said(":rotating_light: needs a person now: *Full* predicts its breach in 30s, and no runbook for it can take effect sooner: *slow-cap* takes about 1m (its expected_duration; not measured yet). Starting it anyway").await;
    // Started anyway: nothing faster exists.
    b.said("runbook *slow-cap* succeeded").await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let timeline = b.store.timeline("launch").await.unwrap();
    assert!(timeline.iter().any(|e| e.kind == tl::Kind::PagedLate));
    b.stop().await;
}

#[tokio::test]
async fn no_try_again_once_the_alert_has_stopped() {
    let (url, calls) = target(1).await;
    let b = bot(&url, "cap-stopped").await;
    let t0 = b.clock.now();
    b.alerts
        .send(event(AlertEventKind::Firing, t0))
        .await
        .unwrap();
    b.said("(try 1 of 2)").await;
    b.alerts
        .send(event(AlertEventKind::Resolved, t0 + 5_000))
        .await
        .unwrap();
    b.said("*Full* resolved").await;
    b.clock.advance_to(t0 + 10_000);
    b.said("not trying *cap-stopped* again: *Full* no longer fires or is silenced")
        .await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    b.stop().await;
}
