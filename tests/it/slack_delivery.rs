//! Chat delivery to Slack: the real outbox (`Outbox::deliver`) and the real
//! Slack adapter against a fake Slack Web API on 127.0.0.1. Real time
//! throughout: sqlx's pool timeouts misbehave under paused tokio time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fake_slack::{FakeSlack, Fault, TOKEN};
use firebreak::chat::slack::Slack;
use firebreak::chat::{
    ChatAdapter, ChatError, ChatMessage, Image, Kind, Outbox, Outgoing, Placement,
};
use firebreak::clock::Clock;
use firebreak::store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const INCIDENTS: &str = "C0INCIDENTS1";

fn slack(fake: &FakeSlack, timeout: Duration) -> Arc<Slack> {
    Arc::new(Slack::new(&fake.api_url(), TOKEN.into(), timeout).unwrap())
}

fn msg(channel: &str, incident: Option<&str>, kind: Kind, text: &str) -> ChatMessage {
    ChatMessage {
        channel: channel.into(),
        incident: incident.map(Into::into),
        kind,
        text: text.into(),
        at: 1_700_000_000_000,
        slot: None,
        card: None,
        reply_to: None,
        image: None,
        checklist: None,
    }
}

fn note(text: &str) -> ChatMessage {
    msg("#incidents", None, Kind::Note, text)
}

async fn file_store(dir: &tempfile::TempDir) -> (Store, String) {
    let url = format!("sqlite://{}", dir.path().join("bot.db").display());
    (Store::open(&url).await.unwrap(), url)
}

struct Delivery {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Delivery {
    fn start(store: &Store, adapter: Arc<dyn ChatAdapter>) -> (Outbox, Delivery) {
        let outbox = Outbox::new(store.clone());
        let stop = CancellationToken::new();
        let task = tokio::spawn(outbox.clone().deliver(
            adapter,
            Clock::system(),
            stop.clone(),
            Duration::from_millis(200),
        ));
        (outbox, Delivery { stop, task })
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

/// Polls until `f` holds, failing the test after `limit`.
async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn texts(fake: &FakeSlack) -> Vec<String> {
    fake.messages().into_iter().map(|m| m.text).collect()
}

#[tokio::test]
async fn an_incident_opens_a_thread_and_its_card_is_updated_in_place() {
    let fake = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (store, url) = file_store(&dir).await;
    let (outbox, d) = Delivery::start(&store, slack(&fake, Duration::from_secs(5)));
    let inc = Some("launch");
    let card = |v: &str| ChatMessage {
        slot: Some("card".into()),
        ..msg("#incidents", inc, Kind::Note, &format!("card {v}"))
    };
    outbox
        .post(&msg("#incidents", inc, Kind::Firing, "room main filling"))
        .await
        .unwrap();
    outbox.post(&card("v1")).await.unwrap();
    outbox
        .post(&msg("#incidents", inc, Kind::Step, "capped listeners"))
        .await
        .unwrap();
    until("three messages", Duration::from_secs(10), || {
        fake.messages().len() == 3
    })
    .await;
    // Posted by name; chat.update needs the id, learnt from the post.
    outbox.post(&card("v2")).await.unwrap();
    until("the card's update", Duration::from_secs(10), || {
        fake.messages()[1].history.len() == 1
    })
    .await;
    d.stop().await;
    store.close().await;

    // A new process knows the card's ts from the store but not the
    // channel's id: it looks the name up before updating.
    let store = Store::open(&url).await.unwrap();
    let (outbox, d) = Delivery::start(&store, slack(&fake, Duration::from_secs(5)));
    outbox.post(&card("v3")).await.unwrap();
    until("the second update", Duration::from_secs(10), || {
        fake.messages()[1].history.len() == 2
    })
    .await;
    d.stop().await;

    let m = fake.in_channel(INCIDENTS);
    assert_eq!(m.len(), 3, "{m:#?}");
    assert_eq!(m[0].text, "room main filling");
    assert_eq!(m[0].thread_ts, None);
    assert_eq!(m[0].blocks.as_ref().unwrap()[0]["type"], "section");
    assert_eq!(
        m[0].blocks.as_ref().unwrap()[0]["text"]["text"],
        "room main filling"
    );
    assert_eq!(m[1].text, "card v3");
    assert_eq!(m[1].history, ["card v1", "card v2"]);
    assert_eq!(m[1].thread_ts.as_deref(), Some(m[0].ts.as_str()));
    assert_eq!(m[2].text, "capped listeners");
    assert_eq!(m[2].thread_ts.as_deref(), Some(m[0].ts.as_str()));
    assert!(
        fake.calls()
            .iter()
            .any(|c| c.method == "conversations.list"),
        "the restarted adapter resolved the channel name"
    );
    assert!(store.pending_outbox(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_chart_is_uploaded_into_the_thread_and_a_failed_upload_does_not_repost() {
    let fake = FakeSlack::start().await;
    let s = slack(&fake, Duration::from_secs(5));
    let png = b"\x89PNG\r\n\x1a\nnot really a chart".to_vec();
    let image = Image {
        png: png.clone(),
        title: "Listeners, room main".into(),
    };
    let head = note("room main filling");
    let ts = s
        .send(Outgoing {
            key: None,
            retried: false,
            msg: &head,
            placement: Placement::TopLevel,
            image: Some(&image),
        })
        .await
        .unwrap();
    let reply = note("after the cap");
    let reply_ts = s
        .send(Outgoing {
            key: None,
            retried: false,
            msg: &reply,
            placement: Placement::Reply { parent: ts.clone() },
            image: Some(&image),
        })
        .await
        .unwrap();
    assert_ne!(ts, reply_ts);
    let files = fake.shared_files();
    assert_eq!(files.len(), 2, "{files:#?}");
    for f in &files {
        assert_eq!(f.channel, INCIDENTS);
        assert_eq!(f.thread_ts.as_deref(), Some(ts.as_str()));
        assert_eq!(f.bytes, png);
        assert_eq!(f.title.as_deref(), Some("Listeners, room main"));
    }

    // The upload fails after the message is posted: the send still
    // succeeds, so the outbox does not post the message again.
    fake.fail_next_of("files.getUploadURLExternal", 1, Fault::Status(500));
    let third = note("third");
    s.send(Outgoing {
        key: None,
        retried: false,
        msg: &third,
        placement: Placement::TopLevel,
        image: Some(&image),
    })
    .await
    .unwrap();
    assert_eq!(
        texts(&fake),
        ["room main filling", "after the cap", "third"]
    );
    assert_eq!(fake.shared_files().len(), 2);
}

#[tokio::test]
async fn slack_refusals_are_told_from_outages() {
    let fake = FakeSlack::start().await;
    let good = slack(&fake, Duration::from_secs(5));
    assert_eq!(good.auth_test().await.unwrap().team, "Firebreak Test");
    let bad = Slack::new(&fake.api_url(), "xoxb-wrong".into(), Duration::from_secs(5)).unwrap();
    // A token Slack refuses is the bot's problem, not one message's.
    match bad.auth_test().await {
        Err(ChatError::Refused(r)) => assert_eq!(r, "slack auth.test: invalid_auth"),
        other => panic!("{other:?}"),
    }
    let m = note("x".repeat(10).as_str());
    let send = |p| Outgoing {
        key: None,
        retried: false,
        msg: &m,
        placement: p,
        image: None,
    };
    match bad.send(send(Placement::TopLevel)).await {
        Err(ChatError::Refused(r)) => assert!(r.contains("invalid_auth"), "{r}"),
        other => panic!("{other:?}"),
    }
    match good
        .send(send(Placement::Reply {
            parent: "1600000000.000100".into(),
        }))
        .await
    {
        Err(ChatError::Rejected(r)) => assert!(r.contains("thread_not_found"), "{r}"),
        other => panic!("{other:?}"),
    }
    fake.fail_next(
        1,
        Fault::RateLimited {
            retry_after_secs: 7,
        },
    );
    match good.send(send(Placement::TopLevel)).await {
        Err(ChatError::Retry { after, .. }) => assert_eq!(after, Some(Duration::from_secs(7))),
        other => panic!("{other:?}"),
    }
    fake.fail_next(1, Fault::Status(503));
    assert!(matches!(
        good.send(send(Placement::TopLevel)).await,
        Err(ChatError::Retry { after: None, .. })
    ));
    let short = slack(&fake, Duration::from_millis(200));
    fake.fail_next(1, Fault::Hang(Duration::from_secs(1)));
    match short.send(send(Placement::TopLevel)).await {
        Err(ChatError::Retry {
            after: None,
            reason,
        }) => assert!(reason.contains("no answer"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Text past Slack's limit is clipped rather than refused.
    let long = note(&"y".repeat(50_000));
    good.send(Outgoing {
        key: None,
        retried: false,
        msg: &long,
        placement: Placement::TopLevel,
        image: None,
    })
    .await
    .unwrap();
    assert_eq!(
        fake.messages().last().unwrap().text.chars().count(),
        crate::fake_slack::TEXT_MAX
    );
    // Nothing the faults answered was posted.
    assert_eq!(fake.messages().len(), 1);
    // Slack being down is not a refused token: startup goes on.
    let nowhere = reqwest::Url::parse("http://127.0.0.1:9/api/").unwrap();
    let down = Slack::new(&nowhere, TOKEN.into(), Duration::from_secs(2)).unwrap();
    assert!(matches!(
        down.auth_test().await,
        Err(ChatError::Retry { .. })
    ));
}

#[tokio::test]
async fn retry_after_is_honoured_and_nothing_is_lost_or_reordered() {
    let fake = FakeSlack::start().await;
    let store = Store::open("sqlite::memory:").await.unwrap();
    fake.fail_next(
        1,
        Fault::RateLimited {
            retry_after_secs: 2,
        },
    );
    let outbox = Outbox::new(store.clone());
    for i in 1..=5 {
        outbox.post(&note(&format!("m{i}"))).await.unwrap();
    }
    let (_, d) = Delivery::start(&store, slack(&fake, Duration::from_secs(5)));
    until("five messages", Duration::from_secs(15), || {
        fake.messages().len() >= 5
    })
    .await;
    d.stop().await;
    assert_eq!(texts(&fake), ["m1", "m2", "m3", "m4", "m5"]);
    let calls = fake.calls();
    let limited = calls.iter().position(|c| c.status == 429).unwrap();
    let next = &calls[limited + 1];
    let waited = next.at.duration_since(calls[limited].at);
    assert!(
        waited >= Duration::from_secs(2),
        "the next attempt came {waited:?} after a 429 with Retry-After: 2"
    );
    assert!(store.pending_outbox(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn server_errors_and_timeouts_are_retried_in_order() {
    let fake = FakeSlack::start().await;
    let store = Store::open("sqlite::memory:").await.unwrap();
    fake.fail_next(1, Fault::Status(503));
    fake.fail_next(1, Fault::Status(500));
    fake.fail_next(2, Fault::Hang(Duration::from_secs(1)));
    let outbox = Outbox::new(store.clone());
    for i in 1..=6 {
        outbox.post(&note(&format!("m{i}"))).await.unwrap();
    }
    // A short timeout so the hangs cost little; backoff 0.2+0.4+0.8+1.6s.
    let (_, d) = Delivery::start(&store, slack(&fake, Duration::from_millis(300)));
    until("six messages", Duration::from_secs(20), || {
        fake.messages().len() >= 6
    })
    .await;
    d.stop().await;
    assert_eq!(texts(&fake), ["m1", "m2", "m3", "m4", "m5", "m6"]);
    let failed = fake.calls().iter().filter(|c| c.status != 200).count();
    assert_eq!(failed, 4);
    assert!(store.pending_outbox(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_rejected_message_is_set_aside_and_the_rest_still_go() {
    let fake = FakeSlack::start().await;
    let store = Store::open("sqlite::memory:").await.unwrap();
    let outbox = Outbox::new(store.clone());
    outbox
        .post(&msg("#nowhere", None, Kind::Note, "lost"))
        .await
        .unwrap();
    outbox
        .post(&msg("#quiet", None, Kind::Note, "not a member"))
        .await
        .unwrap();
    outbox.post(&note("after")).await.unwrap();
    let (_, d) = Delivery::start(&store, slack(&fake, Duration::from_secs(5)));
    until("the good message", Duration::from_secs(10), || {
        !fake.messages().is_empty()
    })
    .await;
    let start = Instant::now();
    let rejected = loop {
        let r = store.rejected_outbox().await.unwrap();
        if r.len() == 2 || start.elapsed() > Duration::from_secs(5) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    d.stop().await;
    assert_eq!(texts(&fake), ["after"]);
    let reasons: Vec<&str> = rejected.iter().map(|(_, _, r)| r.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "slack chat.postMessage: channel_not_found",
            "slack chat.postMessage: not_in_channel"
        ]
    );
    assert!(store.pending_outbox(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn messages_undelivered_during_an_outage_arrive_once_after_a_restart() {
    let fake = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (store, url) = file_store(&dir).await;
    let (outbox, d) = Delivery::start(&store, slack(&fake, Duration::from_secs(5)));
    for i in 1..=2 {
        outbox.post(&note(&format!("m{i}"))).await.unwrap();
    }
    until("the first two", Duration::from_secs(10), || {
        fake.messages().len() == 2
    })
    .await;
    // Slack goes down; three more are written while it is.
    fake.fail_next(10_000, Fault::Status(503));
    for i in 3..=5 {
        outbox.post(&note(&format!("m{i}"))).await.unwrap();
    }
    until("a failed attempt", Duration::from_secs(10), || {
        fake.calls().iter().any(|c| c.status == 503)
    })
    .await;
    d.stop().await;
    assert_eq!(store.pending_outbox(10).await.unwrap().len(), 3);
    store.close().await;

    fake.clear_faults();
    let store = Store::open(&url).await.unwrap();
    let (_, d) = Delivery::start(&store, slack(&fake, Duration::from_secs(5)));
    until("all five", Duration::from_secs(10), || {
        fake.messages().len() >= 5
    })
    .await;
    // Anything extra would show up here.
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.stop().await;
    assert_eq!(texts(&fake), ["m1", "m2", "m3", "m4", "m5"]);
    assert!(store.pending_outbox(10).await.unwrap().is_empty());
}

/// How many alerts a delivered message speaks for: a coalesced one says
/// "N alerts firing:", a single one is one.
fn alerts_in(text: &str) -> usize {
    text.split_once(" alerts firing:")
        .map_or(1, |(n, _)| n.parse().expect("a count"))
}

#[tokio::test]
async fn a_storm_of_ten_thousand_alerts_becomes_a_handful_of_posts() {
    let fake = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = file_store(&dir).await;
    let (outbox, d) = Delivery::start(&store, slack(&fake, Duration::from_secs(5)));
    let start = Instant::now();
    // 10,000 alerts over about 10 seconds, in three incidents.
    for batch in 0..100 {
        for i in batch * 100..(batch + 1) * 100 {
            let inc = format!("event-{}", i % 3);
            outbox
                .post(&msg(
                    "#incidents",
                    Some(&inc),
                    Kind::Firing,
                    &format!("alert {i} firing"),
                ))
                .await
                .unwrap();
        }
        let due = start + Duration::from_millis(100 * (batch + 1));
        tokio::time::sleep_until(due.into()).await;
    }
    let enqueued = start.elapsed();
    let s = store.clone();
    let start_drain = Instant::now();
    loop {
        if s.pending_outbox(1).await.unwrap().is_empty() {
            break;
        }
        assert!(
            start_drain.elapsed() < Duration::from_secs(20),
            "the storm never drained"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d.stop().await;
    let posts = fake.messages();
    let total: usize = posts.iter().map(|m| alerts_in(&m.text)).sum();
    eprintln!(
        "storm: 10000 alerts enqueued in {enqueued:?}, delivered as {} posts, drained {:?} later",
        posts.len(),
        start_drain.elapsed()
    );
    assert_eq!(total, 10_000, "every alert accounted for");
    // The rate limit allows a burst of 3, then one post a second while the
    // storm lasts, then one last post per thread (3) for what the final
    // second left behind, plus one for rounding: 17 for a 10s storm.
    // On a loaded machine enqueuing takes longer than 10s, and the bound
    // follows the storm's real length (a fixed cap failed CI when it took
    // 18s and went out, correctly, as 23 posts).
    let bound = 3 + enqueued.as_secs_f64().ceil() as usize + 3 + 1;
    assert!(
        posts.len() <= bound,
        "{} posts for the storm (bound {bound})",
        posts.len()
    );
    assert!(
        posts.len() < 100,
        "a handful, not thousands: {}",
        posts.len()
    );
    // Each incident's first alerts open a thread (one post may open all
    // three); everything after replies in those threads.
    let heads: Vec<&str> = posts
        .iter()
        .filter(|m| m.thread_ts.is_none())
        .map(|m| m.ts.as_str())
        .collect();
    assert!((1..=3).contains(&heads.len()), "{posts:#?}");
    assert!(
        posts
            .iter()
            .filter_map(|m| m.thread_ts.as_deref())
            .all(|t| heads.contains(&t)),
        "{posts:#?}"
    );
    assert!(store.rejected_outbox().await.unwrap().is_empty());
}

/// `firebreak run`'s choice of chat: Slack when configured, its token
/// checked once at start.
#[tokio::test]
async fn run_uses_slack_when_configured_and_refuses_a_rejected_token() {
    let fake = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = |token: &str| {
        let path = dir.path().join(format!("token-{}", token.len()));
        std::fs::write(&path, format!("{token}\n")).unwrap();
        let text = format!(
            "secrets:\n  bot: {{file: '{}'}}\nchat:\n  channel: '#incidents'\n  slack:\n    bot_token_secret: bot\n    api_url: '{}'\n    timeout: 2s\n",
            path.display(),
            fake.api_url()
        );
        firebreak::config::Config::load("c.yaml", &text).unwrap()
    };
    let chat = firebreak::daemon::chat_adapter(&config(TOKEN))
        .await
        .unwrap();
    assert_eq!(chat.rate_limit(), Some(firebreak::chat::slack::RATE_LIMIT));
    chat.send(Outgoing {
        key: None,
        retried: false,
        msg: &note("hello"),
        placement: Placement::TopLevel,
        image: None,
    })
    .await
    .unwrap();
    assert_eq!(texts(&fake), ["hello"]);
    assert!(fake.calls().iter().any(|c| c.method == "auth.test"));

    let wrong = "xoxb-0000-revoked";
    let err = match firebreak::daemon::chat_adapter(&config(wrong)).await {
        Ok(_) => panic!("a rejected token must stop the start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("invalid_auth"), "{err}");
    assert!(!err.contains(wrong), "the token must not appear: {err}");

    // Slack down at start: the bot starts anyway; the outbox will wait.
    fake.fail_next(1, Fault::Status(503));
    assert!(
        firebreak::daemon::chat_adapter(&config(TOKEN))
            .await
            .is_ok()
    );
}

/// The production path builds an https connector with the system's roots.
/// rustls panics there when it cannot pick a process-wide provider (as
/// when a second one is compiled in); the adapter installs ring's first.
#[test]
fn the_https_client_builds_without_a_provider_panic() {
    let url = reqwest::Url::parse(firebreak::config::SLACK_API_URL).unwrap();
    Slack::new(&url, TOKEN.into(), Duration::from_secs(1)).unwrap();
}

/// The fake is only worth testing against if it refuses what Slack
/// refuses; these go to it directly, not through the adapter.
#[tokio::test]
async fn the_fake_checks_requests_as_slack_does() {
    let fake = FakeSlack::start().await;
    let http = firebreak::net::client().unwrap();
    let call = |method: &str, token: Option<&str>, ctype: &str, body: String| {
        let mut r = http
            .post(fake.api_url().join(method).unwrap())
            .header("content-type", ctype)
            .body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let resp = r.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<serde_json::Value>().await.unwrap()
        }
    };
    let json = "application/json; charset=utf-8";
    let post =
        |body: serde_json::Value| call("chat.postMessage", Some(TOKEN), json, body.to_string());
    let error = |v: serde_json::Value| v["error"].as_str().unwrap_or("ok").to_owned();
    let ok = serde_json::json!({"channel": "#incidents", "text": "hi"});

    assert_eq!(
        error(call("chat.postMessage", None, json, ok.to_string()).await),
        "not_authed"
    );
    assert_eq!(
        error(call("chat.postMessage", Some("xoxb-nope"), json, ok.to_string()).await),
        "invalid_auth"
    );
    assert_eq!(
        error(call("chat.postMessage", Some(TOKEN), "text/csv", ok.to_string()).await),
        "invalid_post_type"
    );
    let no_charset = call(
        "chat.postMessage",
        Some(TOKEN),
        "application/json",
        ok.to_string(),
    )
    .await;
    assert_eq!(no_charset["warning"], "missing_charset");
    assert_eq!(no_charset["ok"], true);
    assert_eq!(
        error(post(serde_json::json!({"text": "hi"})).await),
        "channel_not_found"
    );
    assert_eq!(
        error(post(serde_json::json!({"channel": "#nope", "text": "hi"})).await),
        "channel_not_found"
    );
    assert_eq!(
        error(post(serde_json::json!({"channel": "#incidents"})).await),
        "no_text"
    );
    assert_eq!(
        error(post(serde_json::json!({"channel": "#incidents", "text": "x".repeat(40_001)})).await),
        "msg_too_long"
    );
    let block = serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": "b"}});
    assert_eq!(
        error(
            post(serde_json::json!({"channel": "#incidents", "blocks": vec![block.clone(); 51]}))
                .await
        ),
        "invalid_blocks"
    );
    assert_eq!(
        error(
            post(serde_json::json!({"channel": "#incidents", "blocks": {"type": "section"}})).await
        ),
        "invalid_blocks_format"
    );
    // A form post carries blocks as a JSON string, as Slack's docs show.
    let form = serde_urlencoded::to_string([
        ("channel", "C0INCIDENTS1"),
        ("blocks", &serde_json::json!([block]).to_string()),
    ])
    .unwrap();
    let posted = call(
        "chat.postMessage",
        Some(TOKEN),
        "application/x-www-form-urlencoded",
        form,
    )
    .await;
    assert_eq!(posted["ok"], true, "{posted}");
    assert_eq!(posted["channel"], "C0INCIDENTS1");
    let ts = posted["ts"].as_str().unwrap().to_owned();
    assert!(
        ts.len() == 17 && ts.as_bytes()[10] == b'.',
        "Slack's ts shape: {ts}"
    );
    assert_eq!(posted["message"]["blocks"][0]["type"], "section");

    let update = |body: serde_json::Value| call("chat.update", Some(TOKEN), json, body.to_string());
    assert_eq!(
        error(update(serde_json::json!({"channel": "#incidents", "ts": ts, "text": "v2"})).await),
        "channel_not_found",
        "chat.update wants the channel's id"
    );
    assert_eq!(
        error(
            update(serde_json::json!({"channel": "C0INCIDENTS1", "ts": "1.000100", "text": "v2"}))
                .await
        ),
        "message_not_found"
    );
    let updated =
        update(serde_json::json!({"channel": "C0INCIDENTS1", "ts": ts, "text": "v2"})).await;
    assert_eq!(
        (updated["ok"].clone(), updated["ts"].clone()),
        (serde_json::json!(true), serde_json::json!(ts))
    );
    let m = fake.messages();
    assert_eq!(m.len(), 2, "only the two good posts were kept: {m:#?}");
    assert_eq!(m[1].text, "v2");
    assert_eq!(m[1].history, [""]);
}

/// The incident card, as the control loop posts it, reaches Slack as
/// Block Kit with its buttons, and each new status replaces the blocks of
/// the same message.
#[tokio::test]
async fn an_incident_card_goes_out_as_block_kit_and_is_replaced_in_place() {
    use firebreak::chat::card::{Card, CardAlert, CardRun, SLOT};
    let fake = FakeSlack::start().await;
    let store = Store::open("sqlite::memory:").await.unwrap();
    let (outbox, d) = Delivery::start(&store, slack(&fake, Duration::from_secs(5)));
    let mut card = Card::new("launch", 0);
    card.firing(
        CardAlert {
            name: "ListenerCapacityBreachPredicted".into(),
            severity: Some("critical".into()),
            labels: vec![("room".into(), "main".into())],
            value: 612_000.0,
            since: 1_700_000_000_000,
            summary: None,
            firing: true,
        },
        0,
    );
    let post = |c: &Card| ChatMessage {
        slot: Some(SLOT.into()),
        card: Some(c.clone()),
        ..msg("#incidents", Some("launch"), Kind::Firing, &c.text())
    };
    outbox.post(&post(&card)).await.unwrap();
    until("the card", Duration::from_secs(10), || {
        fake.messages().len() == 1
    })
    .await;
    card.run_progress(
        CardRun {
            id: "move-1".into(),
            runbook: "move-to-secondary-room".into(),
            state: firebreak::run_state::RunState::parse("awaiting_approval").unwrap(),
            last_step: None,
            waiting: Some("move_event".into()),
        },
        1,
    );
    outbox.post(&post(&card)).await.unwrap();
    until("the card's update", Duration::from_secs(10), || {
        fake.messages()[0].history.len() == 1
    })
    .await;
    d.stop().await;
    let m = &fake.in_channel(INCIDENTS)[0];
    let blocks = m.blocks.as_ref().unwrap();
    assert_eq!(
        blocks[0]["text"]["text"],
        "✋ WAITING FOR APPROVAL · incident launch"
    );
    let buttons: Vec<&str> = blocks
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .unwrap()["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        buttons,
        [
            "ack launch",
            "approve move-1",
            "deny move-1",
            "abort move-1"
        ]
    );
    assert!(
        m.text
            .starts_with("✋ *WAITING FOR APPROVAL* incident launch")
    );
}

/// Regression: alert data reached Slack verbatim in a message's text and
/// blocks, so a label could ping the channel or plant a disguised link.
#[tokio::test]
async fn alert_data_reaches_slack_escaped() {
    let fake = FakeSlack::start().await;
    let store = Store::open("sqlite::memory:").await.unwrap();
    let (outbox, d) = Delivery::start(&store, slack(&fake, Duration::from_secs(5)));
    outbox
        .post(&note(
            "room <!channel> is <https://evil.example|Open the runbook> & <@U024BE7LH>",
        ))
        .await
        .unwrap();
    until("the note", Duration::from_secs(10), || {
        fake.messages().len() == 1
    })
    .await;
    d.stop().await;
    let m = &fake.messages()[0];
    let want = "room &lt;!channel&gt; is &lt;https://evil.example|Open the runbook&gt; &amp; &lt;@U024BE7LH&gt;";
    assert_eq!(m.text, want);
    assert_eq!(m.blocks.as_ref().unwrap()[0]["text"]["text"], want);
}

/// Regression: when Slack took a post but answered after the client's
/// timeout, the retry posted it again, and a new incident's card stood
/// twice at the top of the channel. The retry now finds the copy by the
/// key the post carried and goes on from it.
#[tokio::test]
async fn a_post_that_timed_out_but_arrived_is_not_posted_twice() {
    let fake = FakeSlack::start().await;
    fake.fail_next_of(
        "chat.postMessage",
        1,
        Fault::ActThenHang(Duration::from_secs(3)),
    );
    let store = Store::open("sqlite::memory:").await.unwrap();
    let (outbox, d) = Delivery::start(&store, slack(&fake, Duration::from_millis(500)));
    let card = |text: &str| ChatMessage {
        slot: Some("card".into()),
        ..msg("#incidents", Some("launch"), Kind::Firing, text)
    };
    outbox.post(&card("card v1")).await.unwrap();
    outbox
        .post(&msg("#incidents", Some("launch"), Kind::Step, "step 1"))
        .await
        .unwrap();
    until("the step", Duration::from_secs(10), || {
        fake.messages().iter().any(|m| m.text == "step 1")
    })
    .await;
    outbox.post(&card("card v2")).await.unwrap();
    until("the card's update", Duration::from_secs(10), || {
        fake.messages().iter().any(|m| m.text == "card v2")
    })
    .await;
    d.stop().await;
    let all = fake.in_channel(INCIDENTS);
    let top: Vec<&str> = all
        .iter()
        .filter(|m| m.thread_ts.is_none())
        .map(|m| m.text.as_str())
        .collect();
    assert_eq!(top, ["card v2"], "{all:#?}");
    let head = all.iter().find(|m| m.thread_ts.is_none()).unwrap();
    assert_eq!(head.history, ["card v1"]);
    let step = all.iter().find(|m| m.text == "step 1").unwrap();
    assert_eq!(step.thread_ts.as_deref(), Some(head.ts.as_str()));
    assert!(
        fake.calls()
            .iter()
            .any(|c| c.method == "conversations.history"),
        "the retry looked for a copy first"
    );
}
