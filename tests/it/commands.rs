//! Chat commands end to end: text through the parser and the command
//! layer into a real control loop, executor and store, wired as the daemon
//! wires them, with alerts pushed in by the test.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use firebreak::chat::Outbox;
use firebreak::clock::Clock;
use firebreak::command::{Actor, Ctx, Reply, Visibility, handle};
use firebreak::control::{Control, Status};
use firebreak::dispatch::Dispatcher;
use firebreak::executor::Executor;
use firebreak::executor::actions::ActionEnv;
use firebreak::incident::Review;
use firebreak::labels::Labels;
use firebreak::roles::Role;
use firebreak::rules::{Alert, AlertEvent, AlertEventKind, AlertState};
use firebreak::runbook::parse_runbook;
use firebreak::store::Store;

const RUNBOOKS: &[&str] = &[
    // Started by the alert, and by hand.
    "kind: runbook\nname: announce\ntrigger:\n  alerts: [{alertname: Full}]\n  manual: true\nsteps:\n  - {id: say, action: chat, with: {text: room is full}}\n",
    // Long enough to abort.
    "kind: runbook\nname: hold\ntrigger: {manual: true}\ninputs:\n  room: {type: string}\n  seconds: {type: integer, default: 60}\npolicy:\n  concurrency_key: \"room/{{ inputs.room }}\"\nsteps:\n  - {id: wait, action: wait, with: {duration: 60s}}\n",
    // Waits for a commander.
    "kind: runbook\nname: gated\ntrigger: {manual: true}\ninputs:\n  room: {type: string}\npolicy:\n  concurrency_key: \"gated/{{ inputs.room }}\"\n  approval: {role: commander, timeout: 10m}\nsteps:\n  - {id: say, action: chat, with: {text: 'moving {{ inputs.room }}'}}\n",
    // Only alerts start it.
    "kind: runbook\nname: auto-only\ntrigger:\n  alerts: [{alertname: Never}]\nsteps:\n  - {id: say, action: chat, with: {text: never}}\n",
];

struct Bot {
    ctx: Ctx,
    alerts: mpsc::Sender<AlertEvent>,
    store: Store,
    clock: Clock,
    _stop: tokio_util::sync::DropGuard,
}

async fn bot() -> Bot {
    let clock = Clock::system();
    let store = Store::open("sqlite::memory:").await.unwrap();
    let outbox = Outbox::new(store.clone());
    let stop = CancellationToken::new();
    let (command_tx, command_rx) = mpsc::channel(64);
    let (finished_tx, finished_rx) = mpsc::channel(64);
    let (alert_tx, alert_rx) = mpsc::channel(64);
    let env = ActionEnv {
        http: firebreak::net::target_client().unwrap(),
        targets: BTreeMap::new(),
        secrets: BTreeMap::new(),
        outbox: outbox.clone(),
        clock: clock.clone(),
        channel: "#test".into(),
        queries: None,
        silencer: Some(std::sync::Arc::new(command_tx.clone())),
    };
    let exec = Executor::new(env, store.clone(), stop.clone(), finished_tx);
    let runbooks: Vec<_> = RUNBOOKS
        .iter()
        .map(|t| Arc::new(parse_runbook("rb.yaml", t, &firebreak::load::check_env([])).unwrap()))
        .collect();
    let control = Control::new(
        Dispatcher::new(runbooks.clone(), None),
        exec,
        store.clone(),
        outbox,
        clock.clone(),
        "#test".into(),
        vec!["event".into()],
    );
    tokio::spawn(control.run(alert_rx, finished_rx, command_rx, stop.clone()));
    Bot {
        ctx: Ctx {
            control: command_tx,
            runbooks: runbooks.into(),
            checklists: Default::default(),
            targets: BTreeMap::new(),
            store: store.clone(),
            clock: clock.clone(),
            offset: chrono::FixedOffset::east_opt(0).unwrap(),
            zone: "UTC".into(),
        },
        alerts: alert_tx,
        store,
        clock,
        _stop: stop.drop_guard(),
    }
}

fn person(name: &str, role: Role) -> Actor {
    Actor {
        id: format!("U-{name}"),
        name: name.into(),
        role,
    }
}

impl Bot {
    async fn say(&self, who: &Actor, line: &str) -> Reply {
        handle(&self.ctx, who, line).await
    }

    async fn fire(&self, name: &str) {
        let at = self.clock.now();
        self.alerts
            .send(AlertEvent {
                kind: AlertEventKind::Firing,
                at,
                alert: Alert {
                    rule: name.into(),
                    group: "g".into(),
                    labels: Labels::new()
                        .with("alertname", name)
                        .with("event", "launch")
                        .with("room", "main"),
                    annotations: [("summary".to_string(), "room main is full".to_string())]
                        .into_iter()
                        .collect(),
                    state: AlertState::Firing,
                    active_at: at,
                    fired_at: Some(at),
                    resolved_at: None,
                    keep_firing_since: None,
                    last_eval: at,
                    value: 0.97,
                },
            })
            .await
            .unwrap();
    }

    /// The status once `ok` holds, within 10s.
    async fn until(&self, what: &str, ok: impl Fn(&Status) -> bool) -> Status {
        for _ in 0..200 {
            let s = self.ctx.status().await.unwrap();
            if ok(&s) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{what}: never happened; status: {:?}",
            self.ctx.status().await
        );
    }

    async fn run_state(&self, id: &str) -> String {
        for _ in 0..200 {
            let runs = self.store.runs().await.unwrap();
            if let Some(r) = runs.iter().find(|r| r.id == id && r.state.is_over()) {
                return r.state.to_string();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {id} never ended");
    }
}

/// The run id in "started *x* (run ID) in incident ...".
fn run_id(r: &Reply) -> String {
    let start = r.text.find("(run ").unwrap_or_else(|| panic!("{}", r.text)) + 5;
    let end = start + r.text[start..].find(')').unwrap();
    r.text[start..end].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_drive_the_control_loop_and_leave_a_record() {
    let bot = bot().await;
    let carol = person("carol", Role::Commander);
    let alice = person("alice", Role::Responder);
    let victor = person("victor", Role::Viewer);

    let r = bot.say(&victor, "status").await;
    assert_eq!(
        r,
        Reply::channel("automation: on; nothing firing, nothing running")
    );

    // Pause: refused for a responder, done for a commander; then an
    // alert fires and its runbook does not start.
    let r = bot.say(&alice, "pause").await;
    assert_eq!(
        r.text,
        "`pause` needs the commander role; you are a responder"
    );
    bot.say(&carol, "pause \"vendor maintenance\"").await;
    // The reply comes once the pause is in force, so the alert after it
    // cannot start a runbook (before, it raced the pause on its own queue).
    bot.fire("Full").await;
    let s = bot.until("Full fires", |s| !s.firing.is_empty()).await;
    assert_eq!(s.paused.as_ref().unwrap().reason, "vendor maintenance");
    assert!(s.running.is_empty(), "paused: nothing started");
    let r = bot.say(&victor, "status").await;
    assert!(
        r.text.starts_with("automation: PAUSED by carol (U-carol)"),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("• Full (event=launch, room=main) for"),
        "{}",
        r.text
    );

    // A refusal while an incident is open goes on its timeline.
    let r = bot.say(&alice, "resume").await;
    assert_eq!(
        r.text,
        "`resume` needs the commander role; you are a responder"
    );
    let r = bot.say(&carol, "resume").await;
    assert!(
        r.text
            .starts_with("automation resumed; it was paused by carol (U-carol) for"),
        "{}",
        r.text
    );
    assert!(bot.ctx.status().await.unwrap().paused.is_none());
    let r = bot.say(&carol, "resume").await;
    assert_eq!(r.text, "automation is not paused; nothing to resume");

    // alerts and ack.
    let r = bot.say(&victor, "alerts").await;
    assert_eq!(r.visibility, Visibility::Channel);
    assert!(
        r.text
            .contains("• Full {event=\"launch\", room=\"main\"} value 0.97"),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("; not acked\n  room main is full"),
        "{}",
        r.text
    );
    let r = bot.say(&alice, "ack Fulll").await;
    assert!(
        r.text
            .starts_with("nothing firing is called \"Fulll\" (did you mean `Full`?)"),
        "{}",
        r.text
    );
    let r = bot.say(&alice, "ack Full").await;
    assert_eq!(r.text, "acknowledged: Full (event=launch, room=main)");
    let r = bot.say(&alice, "ack launch").await;
    assert_eq!(
        r.text,
        "acknowledged: Full (already acknowledged by alice (U-alice))"
    );
    assert!(
        bot.say(&victor, "alerts")
            .await
            .text
            .contains("; acked by alice (U-alice)")
    );
    assert!(
        bot.say(&victor, "status")
            .await
            .text
            .contains("acked by alice (U-alice)")
    );

    // Silences.
    let r = bot
        .say(
            &alice,
            "silence alertname=Other room=\"main\" 1h \"known noise\"",
        )
        .await;
    assert!(r.text.starts_with("silence "), "{}", r.text);
    let id = r.text.split(' ').nth(1).unwrap().to_owned();
    let s = bot.ctx.status().await.unwrap();
    assert_eq!(s.silences.len(), 1);
    assert_eq!(s.silences[0].matchers, "alertname=\"Other\", room=\"main\"");
    let r = bot.say(&alice, &format!("unsilence {id}x")).await;
    assert!(
        r.text.contains(&format!("(did you mean `{id}`?)")),
        "{}",
        r.text
    );
    let r = bot.say(&alice, &format!("unsilence {id}")).await;
    assert_eq!(r.text, format!("silence {id} ended"));
    assert!(bot.ctx.status().await.unwrap().silences.is_empty());

    // run --dry-run plans and starts nothing; run starts; the key holds.
    let runs_before = bot.store.runs().await.unwrap().len();
    let r = bot.say(&alice, "run hold room=main --dry-run").await;
    assert!(r.text.starts_with("plan of runbook hold"), "{}", r.text);
    assert!(r.text.contains("room = \"main\" (given)"), "{}", r.text);
    assert_eq!(bot.store.runs().await.unwrap().len(), runs_before);
    let r = bot.say(&alice, "run auto-only").await;
    assert_eq!(
        r.text,
        "not started: runbook auto-only cannot be started by hand: it does not say `manual: true` under `trigger:`"
    );
    let r = bot.say(&alice, "run hold room=main seconds=soon").await;
    assert!(
        r.text.starts_with("not started: input `seconds`"),
        "{}",
        r.text
    );
    let r = bot.say(&alice, "run hodl room=main").await;
    assert!(r.text.contains("(did you mean \"hold\"?)"), "{}", r.text);
    let r = bot.say(&alice, "run hold room=main").await;
    assert!(
        r.text.starts_with("started *hold* (run hold-"),
        "{}",
        r.text
    );
    assert!(r.text.ends_with("in incident launch"), "{}", r.text);
    let hold = run_id(&r);
    bot.until("hold runs", |s| {
        s.running.iter().any(|(_, _, id)| *id == hold)
    })
    .await;
    let r = bot.say(&alice, "run hold room=main").await;
    assert_eq!(
        r.text,
        format!("not started: run {hold} is already handling room/main")
    );

    // abort.
    let r = bot.say(&victor, &format!("abort {hold}")).await;
    assert_eq!(r.text, "`abort` needs the responder role; you are a viewer");
    let r = bot.say(&alice, "abort hold-1").await;
    assert!(
        r.text.starts_with("no run hold-1 is in progress"),
        "{}",
        r.text
    );
    let r = bot.say(&alice, &format!("abort {hold}")).await;
    assert_eq!(r.text, format!("run {hold} is stopping"));
    assert_eq!(bot.run_state(&hold).await, "aborted");

    // approve and deny at the gate: the gate wants a commander.
    let r = bot.say(&alice, "run gated room=main").await;
    let gated = run_id(&r);
    bot.until("gated waits", |s| s.waiting.iter().any(|w| w.run == gated))
        .await;
    let r = bot.say(&alice, &format!("approve {gated}")).await;
    assert!(
        r.text.contains("needs a commander; you are a responder"),
        "{}",
        r.text
    );
    let r = bot.say(&carol, &format!("approve {gated}")).await;
    assert!(r.text.starts_with("approved `"), "{}", r.text);
    assert_eq!(bot.run_state(&gated).await, "succeeded");
    let r = bot.say(&alice, "run gated room=side").await;
    let denied = run_id(&r);
    bot.until("second gated waits", |s| {
        s.waiting.iter().any(|w| w.run == denied)
    })
    .await;
    let r = bot.say(&alice, &format!("deny {denied}")).await;
    assert!(r.text.starts_with("denied `"), "{}", r.text);
    assert_eq!(bot.run_state(&denied).await, "aborted");

    // The timeline tells the story, refusals included.
    let r = bot.say(&victor, "timeline").await;
    let t = &r.text;
    assert!(t.starts_with("timeline of launch ("), "{t}");
    for want in [
        "firebreak [alert_firing] Full firing: room main is full",
        "firebreak [run_skipped] runbook announce not started: automation is paused by carol (U-carol) (vendor maintenance)",
        "carol (U-carol) [resumed] automation resumed by carol (U-carol)",
        "alice (U-alice) [command_refused] `resume` refused: `resume` needs the commander role; you are a responder",
        "alice (U-alice) [ack] Full (event=launch, room=main) acknowledged by alice (U-alice)",
        "[run_started] runbook hold started by alice (U-alice)",
        "alice (U-alice) [command_refused] approval of run",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }
    let r = bot.say(&victor, "timeline lunch").await;
    assert!(
        r.text
            .starts_with("no incident \"lunch\" (did you mean `launch`?); incidents: ")
            && r.text.contains("launch")
            && r.text.contains("outside-incidents"),
        "{}",
        r.text
    );
    // The refusal before anything fired is on the record too.
    let r = bot.say(&victor, "timeline outside-incidents").await;
    assert!(
        r.text.contains(
            "alice (U-alice) [command_refused] `pause` refused: `pause` needs the commander role"
        ),
        "{}",
        r.text
    );

    // The channel heard about the ack and the runs.
    let said: Vec<String> = bot
        .store
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
        .collect();
    assert!(
        said.iter()
            .any(|t| t == "Full (event=launch, room=main) acknowledged by alice (U-alice)"),
        "{said:#?}"
    );
    assert!(
        said.iter()
            .any(|t| t.starts_with("automation paused by carol (U-carol)")),
        "{said:#?}"
    );
    assert!(
        said.iter().any(|t| t.starts_with(&format!(
            "runbook *hold* started by alice (U-alice) (run {hold})"
        ))),
        "{said:#?}"
    );

    // Issue 22, item 11: every action taken in chat is on a timeline as
    // the person's (by user id), and the review lists it: the pause came
    // before any incident, so it is on `outside-incidents`.
    let people = |incident: &str| {
        let store = bot.store.clone();
        let incident = incident.to_owned();
        async move {
            let review = Review::new(&incident, store.timeline(&incident).await.unwrap());
            let did: Vec<(String, String)> = review
                .by_people()
                .map(|e| (e.kind.to_string(), e.by.id().to_owned()))
                .collect();
            (review, did)
        }
    };
    let (_, outside) = people("outside-incidents").await;
    assert!(
        outside.contains(&("paused".into(), "U-carol".into())),
        "{outside:?}"
    );
    let (review, did) = people("launch").await;
    for (kind, id) in [
        ("resumed", "U-carol"),
        ("ack", "U-alice"),
        ("silence", "U-alice"),
        ("unsilence", "U-alice"),
        ("run_started", "U-alice"),
        ("abort", "U-alice"),
        ("approved", "U-carol"),
        ("denied", "U-alice"),
        ("command_refused", "U-alice"),
    ] {
        assert!(
            did.contains(&(kind.to_owned(), id.to_owned())),
            "no {kind} by {id} in {did:?}"
        );
    }
    let md = review.markdown(&|t| t.to_string());
    for want in [
        "| carol (U-carol) | approved | `run` approved by carol (U-carol) |",
        "| alice (U-alice) | denied | `run` denied by alice (U-alice) |",
        &format!("| alice (U-alice) | abort | run {hold} of hold aborted by alice (U-alice) |"),
    ] {
        assert!(md.contains(want), "missing {want:?} in:\n{md}");
    }
    let chat: Vec<serde_json::Value> = bot
        .store
        .pending_outbox(500)
        .await
        .unwrap()
        .into_iter()
        .map(|r| serde_json::from_str(&r.payload_json).unwrap())
        .collect();
    let text = |m: &serde_json::Value| m["text"].as_str().unwrap_or_default().to_owned();
    // The gate's time is said as the runbook wrote it.
    let asked: Vec<String> = chat
        .iter()
        .map(text)
        .filter(|t| t.contains("waits for approval"))
        .collect();
    assert!(!asked.is_empty());
    for t in &asked {
        assert!(
            t.ends_with("without an answer within 10m, the run stops."),
            "{t}"
        );
    }
    // A denial stops the run: it is said as a failure, not with a tick.
    let denial = chat
        .iter()
        .find(|m| text(m).contains("denied by alice"))
        .unwrap();
    assert_eq!(denial["kind"], "step_failed", "{denial}");
}
