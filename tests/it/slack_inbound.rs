//! Slack's inbound side end to end: the daemon as `firebreak run` starts
//! it, with `server.listen` and a signing secret, and the fake Slack
//! playing both the Web API and Slack calling the bot: slash commands,
//! button clicks on the incident card and mentions, each signed (or
//! forged, replayed, expired), with roles from users and user groups.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::fake_slack::to_bot::{self, FORM, now_s};
use crate::fake_slack::{FakeSlack, SIGNING_SECRET};
use firebreak::clock::Clock;
use firebreak::daemon::Daemon;
use firebreak::store::Store;
use serde_json::{Value as Json, json};
use tokio_util::sync::CancellationToken;

const COMMANDER: &str = "U0COMMAND1";
const RESPONDER: &str = "U0RESPOND1";
const VIEWER: &str = "U0VIEWER01";
/// In no grant, but in the on-call group, which is a commander.
const ONCALL: &str = "U0ONCALL01";
const STRANGER: &str = "U0STRANGE1";

const GATED: &str = "kind: runbook\nname: gated\ntrigger: {manual: true}\ninputs:\n  room: {type: string}\npolicy:\n  concurrency_key: \"gated/{{ inputs.room }}\"\n  approval: {role: commander, timeout: 10m}\nsteps:\n  - {id: say, action: chat, with: {text: 'moving {{ inputs.room }}'}}\n";

/// Approved by a commander, or by the responder listed by id.
const LISTED: &str = "kind: runbook\nname: listed\ntrigger: {manual: true}\ninputs:\n  room: {type: string}\npolicy:\n  concurrency_key: \"listed/{{ inputs.room }}\"\n  approval: {role: commander, users: [U0RESPOND1], timeout: 10m}\nsteps:\n  - {id: say, action: chat, with: {text: 'listed moving {{ inputs.room }}'}}\n";

const SURGE_RULE: &str = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: Surge\n        expr: joins_per_minute > 40000\n        labels: {severity: critical}\n";

struct Bot {
    slack: FakeSlack,
    addr: SocketAddr,
    store: Store,
    daemon: Option<Daemon>,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Bot {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The daemon with Slack over HTTP; `extra` is appended to `chat.slack`.
async fn bot_with(slack_extra: &str) -> Bot {
    bot_watching(slack_extra, None).await
}

/// With `metrics`, the bot scrapes that address every second and alerts
/// with `Surge` when `joins_per_minute > 40000`.
async fn bot_watching(slack_extra: &str, metrics: Option<SocketAddr>) -> Bot {
    let slack = FakeSlack::start().await;
    slack.set_group("S0ONCALL01", &[ONCALL, "U0SOMEONE1"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("runbooks")).unwrap();
    std::fs::create_dir(d.join("alerts")).unwrap();
    std::fs::write(d.join("runbooks/gated.yaml"), GATED).unwrap();
    std::fs::write(d.join("runbooks/listed.yaml"), LISTED).unwrap();
    std::fs::write(
        d.join("bot-token"),
        format!("{}\n", crate::fake_slack::TOKEN),
    )
    .unwrap();
    std::fs::write(d.join("signing"), SIGNING_SECRET).unwrap();
    std::fs::write(d.join("app-token"), crate::fake_slack::APP_TOKEN).unwrap();
    let sources = match metrics {
        Some(addr) => {
            std::fs::write(d.join("alerts/surge.yaml"), SURGE_RULE).unwrap();
            format!(
                "sources:\n  scrape:\n    - {{name: app, url: 'http://{addr}/metrics', interval: 1s, timeout: 1s}}\n"
            )
        }
        None => String::new(),
    };
    let config = format!(
        "\
{sources}rules: {{paths: ['{d}/alerts'], evaluation_interval: 1s}}
runbooks: {{paths: ['{d}/runbooks']}}
store: {{url: 'sqlite://{d}/fb.db'}}
secrets:
  bot: {{file: '{d}/bot-token'}}
  signing: {{file: '{d}/signing'}}
  app: {{file: '{d}/app-token'}}
server: {{listen: '127.0.0.1:0'}}
chat:
  channel: '#incidents'
  slack:
    bot_token_secret: bot
    api_url: '{api}'
    response_hosts: [127.0.0.1]
{slack_extra}
  roles:
    commander: {{users: [{COMMANDER}], groups: [S0ONCALL01]}}
    responder: {{users: [{RESPONDER}]}}
    viewer: {{users: [{VIEWER}]}}
",
        d = d.display(),
        api = slack.api_url(),
    );
    std::fs::write(d.join("firebreak.yaml"), &config).unwrap();
    let loaded = firebreak::load::load_from_disk(Some(&d.join("firebreak.yaml")))
        .unwrap_or_else(|e| panic!("{e}\n{config}"));
    let store = Store::open(&loaded.config.store_url).await.unwrap();
    let chat = firebreak::daemon::chat_adapter(&loaded.config)
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let daemon = Daemon::start(loaded, store.clone(), Clock::system(), chat, stop.clone())
        .await
        .unwrap();
    let addr = daemon.http_addr.expect("server.listen is set");
    Bot {
        slack,
        addr,
        store,
        daemon: Some(daemon),
        stop,
        _dir: dir,
    }
}

async fn bot() -> Bot {
    bot_with("    signing_secret: signing").await
}

impl Bot {
    /// `/firebreak TEXT` from `user`, signed now; the acknowledgement.
    async fn slash(&self, user: &str, text: &str) -> (u16, Json) {
        let body = to_bot::slash(user, &name(user), text, &self.slack.response_url("cmd"));
        let r = to_bot::send(self.addr, "/slack/commands", FORM, &body, now_s(), None).await;
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(json!(text)))
    }

    async fn click(&self, user: &str, button: &Json, response_id: &str) -> u16 {
        self.click_as(user, &name(user), button, response_id).await
    }

    /// A click from `user` whose display name is `shown` (anyone may set
    /// theirs to anything).
    async fn click_as(&self, user: &str, shown: &str, button: &Json, response_id: &str) -> u16 {
        let payload =
            to_bot::click_payload(user, shown, button, &self.slack.response_url(response_id));
        let r = to_bot::send(
            self.addr,
            "/slack/interactions",
            FORM,
            &to_bot::click(&payload),
            now_s(),
            None,
        )
        .await;
        let status = r.status().as_u16();
        assert_eq!(
            r.text().await.unwrap(),
            "",
            "a click's acknowledgement is empty"
        );
        status
    }

    /// The answer posted to the response URL `id`.
    async fn response(&self, id: &str) -> Json {
        for _ in 0..250 {
            if let Some((_, v)) = self.slack.responses().into_iter().find(|(r, _)| r == id) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "nothing posted to response URL {id}: {:?}",
            self.slack.responses()
        );
    }

    /// The timeline entries of kind `kind`, across incidents, as
    /// (actor, text), once there is one.
    async fn timeline(&self, kind: &str) -> Vec<(String, String)> {
        for _ in 0..250 {
            let mut found = Vec::new();
            for incident in self.store.incidents().await.unwrap() {
                for e in self.store.timeline(&incident).await.unwrap() {
                    if e.kind.as_str() == kind {
                        found.push((e.by.label(), e.text));
                    }
                }
            }
            if !found.is_empty() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no {kind} on any timeline");
    }

    async fn stop(mut self) {
        self.stop.cancel();
        let d = self.daemon.take().unwrap();
        tokio::time::timeout(Duration::from_secs(15), d.wait())
            .await
            .expect("the daemon stops")
            .unwrap();
    }
}

fn name(user: &str) -> String {
    user.trim_start_matches("U0").to_lowercase()
}

fn text(v: &Json) -> &str {
    v["text"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_command_is_answered_in_its_acknowledgement() {
    let bot = bot().await;
    let (status, ack) = bot.slash(RESPONDER, "status").await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack["response_type"], "in_channel", "{ack}");
    assert!(text(&ack).contains("automation"), "{ack}");

    let (status, ack) = bot.slash(RESPONDER, "staus").await;
    assert_eq!(status, 200);
    assert!(text(&ack).contains("did you mean `status`"), "{ack}");

    // Regression (found by the load benchmark): Slack's request URLs
    // were served but not counted in the bot's own HTTP metrics.
    let metrics = reqwest::get(format!("http://{}/metrics", bot.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"firebreak_http_requests_total{route="/slack/commands",code="200"}"#),
        "{metrics}"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_expired_and_unsigned_requests_are_refused_before_anything_runs() {
    let bot = bot().await;
    let body = to_bot::slash(COMMANDER, "command1", "pause forged", "http://unused/");
    let now = now_s();
    let send = |ts: i64, sig: Option<String>| {
        to_bot::send(bot.addr, "/slack/commands", FORM, &body, ts, sig)
    };
    let refusal = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    };

    // Signed with another secret.
    let forged = to_bot::sign("not-the-signing-secret", now, &body);
    let (s, why) = refusal(send(now, Some(forged)).await).await;
    assert_eq!(
        (s, why.as_str()),
        (
            401,
            "not signed by Slack: signature does not match the body\n"
        )
    );
    // The right signature over a different body.
    let other = to_bot::sign(SIGNING_SECRET, now, "text=resume");
    assert_eq!(refusal(send(now, Some(other)).await).await.0, 401);
    // Properly signed, but six minutes old, or six minutes ahead.
    for ts in [now - 360, now + 360] {
        let (s, why) = refusal(send(ts, None).await).await;
        assert_eq!(s, 401);
        assert!(why.contains("possible replay"), "{why}");
    }
    // No signature at all.
    let r = reqwest::Client::new()
        .post(format!("http://{}/slack/commands", bot.addr))
        .header("content-type", FORM)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let (s, why) = refusal(r).await;
    assert_eq!(s, 401);
    assert!(
        why.contains("missing header X-Slack-Request-Timestamp"),
        "{why}"
    );

    // None of that paused anything.
    let (_, ack) = bot.slash(VIEWER, "status").await;
    assert!(!text(&ack).contains("paused"), "{ack}");

    // A genuine request is taken once; the very same request again is a
    // replay, even inside the five minutes.
    let genuine = to_bot::sign(SIGNING_SECRET, now, &body);
    let (s, ack) = refusal(send(now, Some(genuine.clone())).await).await;
    assert_eq!(s, 200, "{ack}");
    assert!(ack.contains("paused"), "{ack}");
    let (s, why) = refusal(send(now, Some(genuine)).await).await;
    assert_eq!(s, 401);
    assert!(why.contains("already received"), "{why}");

    // A signed body that is not a slash command is a 400 that says why.
    let junk = "user_name=x";
    let r = to_bot::send(bot.addr, "/slack/commands", FORM, junk, now, None).await;
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("user_id"));
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_come_from_users_and_user_groups() {
    let bot = bot().await;
    let (_, ack) = bot.slash(VIEWER, "pause maintenance").await;
    assert!(
        text(&ack).contains("needs the commander role") && text(&ack).contains("viewer"),
        "{ack}"
    );
    let (_, ack) = bot.slash(STRANGER, "status").await;
    assert!(text(&ack).contains("you have no firebreak role"), "{ack}");
    // In no grant by name, but a member of the on-call group.
    let (_, ack) = bot.slash(ONCALL, "pause maintenance").await;
    assert!(text(&ack).contains("paused"), "{ack}");
    // The channel hears it from the bot's own note.
    assert_eq!(ack["response_type"], "ephemeral", "{ack}");
    assert!(
        bot.slack
            .calls()
            .iter()
            .any(|c| c.method == "usergroups.users.list"),
        "group members were asked of Slack"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_buttons_approve_a_gated_run_and_refuse_who_may_not() {
    let bot = bot().await;
    let (_, ack) = bot.slash(RESPONDER, "run gated room=main").await;
    assert!(text(&ack).contains("gated"), "{ack}");
    let card = bot
        .slack
        .wait_message("waiting for approval", 10)
        .await
        .unwrap_or_else(|| panic!("no card waits for approval: {:#?}", bot.slack.messages()));
    let approve = card.button("Approve").expect("an Approve button");

    // A responder may not approve: said to them alone, and the run waits.
    assert_eq!(bot.click(RESPONDER, &approve, "r1").await, 200);
    let answer = bot.response("r1").await;
    assert_eq!(answer["response_type"], "ephemeral");
    assert_eq!(answer["replace_original"], false);
    assert!(text(&answer).contains("commander"), "{answer}");

    // A commander may.
    assert_eq!(bot.click(COMMANDER, &approve, "r2").await, 200);
    let answer = bot.response("r2").await;
    assert!(text(&answer).contains("approved"), "{answer}");
    assert!(
        bot.slack.wait_message("moving main", 10).await.is_some(),
        "the run went on: {:#?}",
        bot.slack.messages()
    );
    bot.stop().await;
}

/// Regression: the gate compared its `users` with the display name, so a
/// viewer who named themselves after the listed approver's id could
/// approve, and the approver, named otherwise, could not. The id decides;
/// the record shows both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_goes_by_user_id_whatever_the_display_name() {
    let bot = bot().await;
    let (_, ack) = bot.slash(RESPONDER, "run listed room=main").await;
    assert!(text(&ack).contains("listed"), "{ack}");
    let card = bot
        .slack
        .wait_message("waiting for approval", 10)
        .await
        .unwrap_or_else(|| panic!("no card waits for approval: {:#?}", bot.slack.messages()));
    let approve = card.button("Approve").expect("an Approve button");

    // The viewer, renamed to the responder's id.
    assert_eq!(bot.click_as(VIEWER, RESPONDER, &approve, "v1").await, 200);
    let answer = bot.response("v1").await;
    assert!(
        text(&answer).contains("needs a commander or U0RESPOND1; you are a viewer"),
        "{answer}"
    );
    let refused = bot.timeline("command_refused").await;
    assert!(
        refused
            .iter()
            .any(|(actor, _)| actor == "U0RESPOND1 (U0VIEWER01)"),
        "the record names the viewer by id: {refused:?}"
    );

    // The listed responder, whatever they call themselves.
    assert_eq!(
        bot.click_as(RESPONDER, "the-boss", &approve, "r1").await,
        200
    );
    let answer = bot.response("r1").await;
    assert!(text(&answer).contains("approved"), "{answer}");
    assert!(
        bot.slack
            .wait_message("approved by the-boss (U0RESPOND1)", 10)
            .await
            .is_some(),
        "{:#?}",
        bot.slack.messages()
    );
    assert!(
        bot.slack
            .wait_message("listed moving main", 10)
            .await
            .is_some(),
        "the run went on: {:#?}",
        bot.slack.messages()
    );
    bot.stop().await;
}

/// Regression: someone with no role was told so and nothing was
/// recorded, while a viewer's refusal went on the timeline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_of_someone_with_no_role_is_on_the_timeline() {
    let bot = bot().await;
    // An incident for the refusals to land in.
    let (_, ack) = bot.slash(RESPONDER, "run gated room=main").await;
    assert!(text(&ack).contains("gated"), "{ack}");
    bot.slack
        .wait_message("waiting for approval", 10)
        .await
        .expect("a card");
    let (_, ack) = bot.slash(STRANGER, "pause lunch").await;
    assert!(text(&ack).contains("you have no firebreak role"), "{ack}");
    let (_, ack) = bot.slash(VIEWER, "pause lunch").await;
    assert!(text(&ack).contains("needs the commander role"), "{ack}");
    let mut refused = bot.timeline("command_refused").await;
    for _ in 0..250 {
        if refused.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        refused = bot.timeline("command_refused").await;
    }
    let stranger = refused
        .iter()
        .find(|(actor, _)| actor == "strange1 (U0STRANGE1)")
        .unwrap_or_else(|| panic!("the stranger's refusal: {refused:?}"));
    assert!(
        stranger.1.contains("`pause lunch` refused") && stranger.1.contains("no firebreak role"),
        "{stranger:?}"
    );
    assert!(
        refused
            .iter()
            .any(|(actor, text)| actor == "viewer01 (U0VIEWER01)"
                && text.contains("needs the commander role")),
        "{refused:?}"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_is_answered_in_its_thread_once() {
    let bot = bot().await;
    let ts = bot
        .slack
        .user_says("C0INCIDENTS1", RESPONDER, "@firebreak status");
    let event = to_bot::mention(
        "Ev0MENTION1",
        RESPONDER,
        "C0INCIDENTS1",
        &ts,
        "<@U0FIREBRK1> status",
    );
    for retry in 0..2 {
        let r = reqwest::Client::new();
        let body = event.to_string();
        // Slack's redelivery is signed afresh, same event id.
        let ts = now_s() + retry;
        let mut req = r
            .post(format!("http://{}/slack/events", bot.addr))
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", ts.to_string())
            .header("x-slack-signature", to_bot::sign(SIGNING_SECRET, ts, &body));
        if retry > 0 {
            req = req.header("x-slack-retry-num", "1");
        }
        let resp = req.body(body).send().await.unwrap();
        assert_eq!(
            resp.status().as_u16(),
            200,
            "{}",
            resp.text().await.unwrap()
        );
    }
    let reply = bot
        .slack
        .wait_message("automation", 10)
        .await
        .unwrap_or_else(|| panic!("no answer: {:#?}", bot.slack.messages()));
    assert_eq!(reply.thread_ts.as_deref(), Some(ts.as_str()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answers = bot
        .slack
        .messages()
        .iter()
        .filter(|m| m.thread_ts.as_deref() == Some(ts.as_str()))
        .count();
    assert_eq!(answers, 1, "the redelivery was not answered again");

    // The Events API's URL check.
    let body = json!({"type": "url_verification", "token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}).to_string();
    let r = to_bot::send(
        bot.addr,
        "/slack/events",
        "application/json",
        &body,
        now_s(),
        None,
    )
    .await;
    assert_eq!(r.status().as_u16(), 200);
    let v: Json = r.json().await.unwrap();
    assert_eq!(
        v["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_mode_takes_commands_and_clicks_and_reconnects() {
    let bot = bot_with("    app_token_secret: app").await;
    assert!(
        bot.slack.wait_socket(10).await,
        "the bot opened a Socket Mode connection"
    );
    bot.slack.socket_send(&json!({
        "type": "slash_commands",
        "envelope_id": "env-1",
        "accepts_response_payload": true,
        "payload": {"user_id": RESPONDER, "user_name": "respond1", "command": "/firebreak", "text": "status", "response_url": bot.slack.response_url("s1")},
    }));
    let ack = bot
        .slack
        .socket_ack("env-1", 10)
        .await
        .expect("acknowledged");
    assert_eq!(ack["payload"]["response_type"], "in_channel", "{ack}");
    assert!(text(&ack["payload"]).contains("automation"), "{ack}");

    // Slack refreshes the connection: the bot opens a new one and goes on.
    let before = bot.slack.socket_connections();
    bot.slack
        .socket_send(&json!({"type": "disconnect", "reason": "refresh_requested"}));
    for _ in 0..250 {
        if bot.slack.socket_connections() > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(bot.slack.socket_connections() > before, "reconnected");
    assert!(bot.slack.wait_socket(10).await);

    bot.slack.socket_send(&json!({
        "type": "slash_commands",
        "envelope_id": "env-2",
        "payload": {"user_id": RESPONDER, "text": "run gated room=side", "response_url": bot.slack.response_url("s2")},
    }));
    bot.slack
        .socket_ack("env-2", 10)
        .await
        .expect("acknowledged");
    let card = bot
        .slack
        .wait_message("waiting for approval", 10)
        .await
        .expect("a card");
    let approve = card.button("Approve").unwrap();
    let click = to_bot::click_payload(
        COMMANDER,
        "command1",
        &approve,
        &bot.slack.response_url("s3"),
    );
    bot.slack
        .socket_send(&json!({"type": "interactive", "envelope_id": "env-3", "payload": click}));
    let ack = bot
        .slack
        .socket_ack("env-3", 10)
        .await
        .expect("acknowledged");
    assert_eq!(
        ack,
        json!({"envelope_id": "env-3"}),
        "a click's acknowledgement is bare"
    );
    let answer = bot.response("s3").await;
    assert!(text(&answer).contains("approved"), "{answer}");
    assert!(bot.slack.wait_message("moving side", 10).await.is_some());
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_alert_gets_a_chart_in_its_incident_thread() {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(|| async { "# TYPE joins_per_minute gauge\njoins_per_minute{event=\"launch\"} 52000\njoins_per_minute{event=\"other\"} 10\n" }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let bot = bot_watching("    signing_secret: signing", Some(metrics)).await;
    let files = crate::fake_slack::poll(20, || {
        Some(bot.slack.shared_files()).filter(|f| !f.is_empty())
    })
    .await
    .unwrap_or_else(|| panic!("no chart: {:#?}", bot.slack.messages()));
    assert_eq!(files.len(), 1, "one chart for one alert");
    let card = bot
        .slack
        .messages()
        .into_iter()
        .find(|m| m.text.contains("Surge"))
        .expect("the incident card");
    assert_eq!(
        files[0].thread_ts.as_deref(),
        Some(card.ts.as_str()),
        "in the incident's thread"
    );
    assert_eq!(files[0].title.as_deref(), Some("Surge: last 5m"));
    assert_eq!(&files[0].bytes[..4], b"\x89PNG");
    let caption = bot
        .slack
        .wait_message("chart: `joins_per_minute`", 5)
        .await
        .expect("the chart's message");
    assert_eq!(caption.thread_ts.as_deref(), Some(card.ts.as_str()));
    assert!(
        caption.text.contains("against the threshold 40,000"),
        "{}",
        caption.text
    );
    bot.stop().await;
}

/// An inbound side alone, on a system clock, whose control loop (played
/// here) answers `status` only after the bot's acknowledgement budget has
/// passed, so every answer goes to the response URL. `hosts` are where
/// response URLs may point. Returns where it listens.
async fn slow_inbound(
    hosts: firebreak::inbound::slack::ResponseHosts,
    stop: &CancellationToken,
) -> SocketAddr {
    use firebreak::command::Ctx;
    use firebreak::control::{Command, Status};
    use firebreak::inbound::slack::{Inbound, routes};

    let store = Store::open("sqlite::memory:").await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let ctx = Arc::new(Ctx {
        control: tx,
        runbooks: Default::default(),
        checklists: Default::default(),
        targets: Default::default(),
        store: store.clone(),
        clock: Clock::system(),
        offset: chrono::FixedOffset::east_opt(0).unwrap(),
        zone: "UTC".into(),
    });
    tokio::spawn(async move {
        while let Some(c) = rx.recv().await {
            if let Command::Status(reply) = c {
                tokio::time::sleep(Duration::from_millis(400)).await;
                let _ = reply.send(Status::default());
            }
        }
    });
    let roles = firebreak::roles::RoleMap::default();
    let inbound = Arc::new(
        Inbound::new(
            ctx,
            roles,
            None,
            firebreak::net::client().unwrap(),
            firebreak::chat::Outbox::new(store),
            Some(SIGNING_SECRET.as_bytes().to_vec()),
            stop.clone(),
        )
        .with_ack_budget(Duration::from_millis(100))
        .with_response_hosts(hosts),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(firebreak::server::serve(
        listener,
        routes(inbound),
        stop.clone(),
    ));
    addr
}

/// Slow work: the acknowledgement says so at once, the answer follows
/// through the response URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_command_is_acknowledged_then_answered_at_its_response_url() {
    use firebreak::inbound::slack::ResponseHosts;
    let slack = FakeSlack::start().await;
    let stop = CancellationToken::new();
    let addr = slow_inbound(ResponseHosts::new(["127.0.0.1".to_owned()]), &stop).await;

    let body = to_bot::slash(VIEWER, "viewer01", "status", &slack.response_url("slow"));
    let r = to_bot::send(addr, "/slack/commands", FORM, &body, now_s(), None).await;
    assert_eq!(r.status().as_u16(), 200);
    let ack: Json = r.json().await.unwrap();
    assert_eq!(text(&ack), "working on `status`…");
    assert!(slack.responses().is_empty(), "not answered yet");
    let answers = slack.wait_responses(1, 10).await;
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].0, "slow");
    assert!(
        text(&answers[0].1).contains("automation"),
        "{:?}",
        answers[0]
    );
    stop.cancel();
}

/// Regression: the bot posted its answer to whatever `response_url` the
/// request named. Only Slack's hosts are called (by default; tests add
/// their fake's); anything else is refused, logged and counted, and the
/// answer goes nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_url_outside_slack_is_never_called() {
    use firebreak::inbound::slack::ResponseHosts;
    let elsewhere = FakeSlack::start().await;
    let stop = CancellationToken::new();
    // Slack's hosts only: the fake, on 127.0.0.1, is "elsewhere".
    let addr = slow_inbound(ResponseHosts::default(), &stop).await;
    // The tests share the process's metrics; others only add to these.
    let refused = || {
        firebreak::metrics::get()
            .slack_refused
            .with(&["response_url"])
            .get()
    };
    let before = refused();
    let port = elsewhere.api_url().port().unwrap();
    let urls = [
        elsewhere.response_url("plain"),
        // Looks like Slack to a reader, not to a URL parser.
        format!("https://hooks.slack.com@127.0.0.1:{port}/respond/userinfo"),
        format!("http://hooks.slack.com.127.0.0.1.nip.io:{port}/respond/suffix"),
    ];
    for url in &urls {
        let body = to_bot::slash(VIEWER, "viewer01", "status", url);
        let r = to_bot::send(addr, "/slack/commands", FORM, &body, now_s(), None).await;
        assert_eq!(r.status().as_u16(), 200);
        let ack: Json = r.json().await.unwrap();
        assert_eq!(text(&ack), "working on `status`…");
    }
    for _ in 0..250 {
        if refused() >= before + urls.len() as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        elsewhere.responses().is_empty(),
        "nothing was posted outside Slack: {:?}",
        elsewhere.responses()
    );
    assert!(
        refused() >= before + urls.len() as u64,
        "each refusal is counted"
    );
    stop.cancel();
}
