//! The console over real HTTP on 127.0.0.1:0, with the API's test harness:
//! a stand-in control loop (one firing alert, one pending, pauses noted)
//! and a real SQLite store.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::Settings;
use super::auth::{self, SignIn};
use crate::api::tests::{Served, serve_with};
use crate::control::Command;
use crate::store::Store;
use crate::timeline::{About, By, Kind, TimelineEntry};

struct Page {
    code: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Served {
    async fn page(&self, path: &str, headers: &[(&str, &str)]) -> Page {
        self.send(self.http.get(format!("{}{path}", self.base)), headers)
            .await
    }

    async fn form(&self, path: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
        let post = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap());
        self.send(post, headers).await
    }

    async fn send(&self, mut r: reqwest::RequestBuilder, headers: &[(&str, &str)]) -> Page {
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let r = r.send().await.unwrap();
        Page {
            code: r.status().as_u16(),
            headers: r.headers().clone(),
            body: r.text().await.unwrap(),
        }
    }

    /// The origin a browser names when it posts one of our forms.
    fn origin(&self) -> String {
        self.base.clone()
    }
}

fn header<'a>(p: &'a Page, name: &str) -> &'a str {
    p.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Who may do what: U1 commands, everyone else views.
fn roles() -> crate::roles::RoleMap {
    crate::config::Config::load("c.yaml", "chat:\n  roles:\n    commander: {users: [U1]}\n")
        .unwrap()
        .chat
        .roles
}

fn signing_in(open_to_viewers: bool) -> impl FnOnce(mpsc::Sender<Command>, Store) -> Settings {
    move |control, store| Settings {
        sign_in: SignIn::Tokens,
        open_to_viewers,
        session: std::time::Duration::from_secs(3600),
        roles: roles(),
        streams: Arc::new(tokio::sync::Semaphore::new(super::MAX_STREAMS)),
        commands: Some(Arc::new(crate::command::Ctx {
            control,
            runbooks: Vec::new().into(),
            checklists: Default::default(),
            targets: Default::default(),
            store,
            clock: crate::clock::Clock::system(),
            offset: chrono::FixedOffset::east_opt(0).unwrap(),
            zone: "UTC".into(),
        })),
        proxy: None,
        groups: None,
        ahead: None,
    }
}

/// Issues a token for `user` as `firebreak console-token add` does.
async fn issue(store: &Store, user: &str, name: &str) -> String {
    super::issue_token(store, user, name, 1).await.unwrap().0
}

/// Signs in with `token`; the cookie header the browser then sends.
async fn sign_in(s: &Served, token: &str) -> String {
    let p = s
        .form("/signin", &[("token", token)], &[("origin", &s.origin())])
        .await;
    assert_eq!(p.code, 303, "{}", p.body);
    assert_eq!(header(&p, "location"), "/");
    let set = header(&p, "set-cookie").to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    set.split(';').next().unwrap().to_owned()
}

/// The CSRF token a page's forms carry.
fn csrf(body: &str) -> String {
    let at = body
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    body[at..at + 64].to_owned()
}

#[tokio::test]
async fn the_home_page_shows_what_fires_and_what_is_about_to() {
    let s = serve_with(None, 8, 1 << 20, |_, _| Settings::default()).await;
    let p = s.page("/", &[]).await;
    assert_eq!(p.code, 200, "{}", p.body);
    assert_eq!(header(&p, "content-type"), "text/html; charset=utf-8");
    assert!(header(&p, "content-security-policy").starts_with("default-src 'none'"));
    assert_eq!(header(&p, "x-content-type-options"), "nosniff");
    for part in [
        "<h2>Firing (1)</h2>",
        "SpeakerFeedback",
        "{room=main}",
        "acked by ana",
        "<a href=\"/incidents/launch\">launch</a>",
        "<h2>Pending (1)</h2>",
        "RoomFilling",
        "room main is filling",
    ] {
        assert!(p.body.contains(part), "{part} not in {}", p.body);
    }
    assert!(
        !p.body.contains("<form"),
        "nobody is signed in, so nothing acts"
    );
    assert!(!p.body.contains("Chat is behind"));
    let firing = s.page("/alerts", &[]).await;
    assert_eq!(firing.code, 200);
    assert!(firing.body.contains("<h2>Firing (1)</h2>") && firing.body.contains("SpeakerFeedback"));
    let pending = s.page("/alerts/pending?page=1", &[]).await;
    assert_eq!(pending.code, 200);
    assert!(pending.body.contains("<h2>Pending (1)</h2>") && pending.body.contains("RoomFilling"));

    // Chat that has not taken a message for minutes is said on every page.
    let written = crate::clock::Clock::system().now() - 300_000;
    s.store
        .enqueue_outbox("#live", "{}", written)
        .await
        .unwrap();
    for path in ["/", "/runs", "/incidents", "/alerts"] {
        let p = s.page(path, &[]).await;
        assert!(
            p.body.contains("role=\"alert\">Chat is behind: 1 message(s) not delivered yet, the oldest written 5m"),
            "{path}: {}",
            p.body
        );
    }
}

#[tokio::test]
async fn the_console_is_as_closed_as_the_api_without_sign_in() {
    let s = serve_with(Some("s3cret"), 8, 1 << 20, |_, _| Settings::default()).await;
    for path in ["/", "/incidents", "/runs", "/runs/x"] {
        let p = s.page(path, &[]).await;
        assert_eq!(p.code, 401, "{path}: {}", p.body);
        assert_eq!(header(&p, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&p, "www-authenticate"), "Bearer");
        assert!(!p.body.contains("SpeakerFeedback"));
    }
    let wrong = s.page("/", &[("authorization", "Bearer nope")]).await;
    assert_eq!(wrong.code, 401);
    let right = s.page("/", &[("authorization", "Bearer s3cret")]).await;
    assert_eq!(right.code, 200, "{}", right.body);
    assert!(right.body.contains("SpeakerFeedback"));
}

#[tokio::test]
async fn incidents_and_runs_are_pages_and_unknown_ones_are_404_pages() {
    let s = serve_with(None, 8, 1 << 20, |_, _| Settings::default()).await;
    let t0 = 1_684_965_647_000;
    for (i, text) in ["SpeakerFeedback firing", "<script>alert(1)</script> said"]
        .iter()
        .enumerate()
    {
        s.store
            .append_timeline(&TimelineEntry::new(
                "launch",
                t0 + i as i64 * 1000,
                Kind::AlertFiring,
                By::Bot,
                About::default(),
                *text,
            ))
            .await
            .unwrap();
    }
    let list = s.page("/incidents", &[]).await;
    assert_eq!(list.code, 200);
    assert!(
        list.body
            .contains("<a href=\"/incidents/launch\">launch</a>"),
        "{}",
        list.body
    );
    let one = s.page("/incidents/launch", &[]).await;
    assert_eq!(one.code, 200, "{}", one.body);
    assert!(one.body.contains("SpeakerFeedback firing"));
    assert!(
        one.body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt; said")
    );
    assert!(!one.body.contains("<script>"));
    assert!(
        one.body
            .contains("<a href=\"/runs?incident=launch\">Every run for this incident</a>"),
        "{}",
        one.body
    );

    let missing = s.page("/incidents/no-such", &[]).await;
    assert_eq!(missing.code, 404);
    assert_eq!(header(&missing, "content-type"), "text/html; charset=utf-8");
    assert!(
        missing.body.contains("There is no incident"),
        "{}",
        missing.body
    );
    let run = s.page("/runs/%3Cb%3E", &[]).await;
    assert_eq!(run.code, 404);
    assert!(
        run.body.contains("There is no run &quot;&lt;b&gt;&quot;"),
        "{}",
        run.body
    );

    let bad = s.page("/runs?page=first", &[]).await;
    assert_eq!(bad.code, 400);
    assert_eq!(header(&bad, "content-type"), "text/html; charset=utf-8");
    let unknown = s.page("/runs?page=1&limit=9", &[]).await;
    assert_eq!(unknown.code, 400);
}

#[tokio::test]
async fn a_signed_in_commander_acts_as_themselves_and_only_with_the_pages_token() {
    let s = serve_with(None, 8, 1 << 20, signing_in(false)).await;
    let o = s.origin();
    let origin = [("origin", o.as_str())];

    // Nobody signed in: to the sign-in page, and no action.
    let p = s.page("/", &[]).await;
    assert_eq!((p.code, header(&p, "location")), (303, "/signin"));
    let p = s
        .form("/act", &[("csrf", "x"), ("command", "pause")], &origin)
        .await;
    assert_eq!(p.code, 401, "{}", p.body);

    // A token never issued is refused.
    let wrong = s
        .form(
            "/signin",
            &[("token", "fbc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")],
            &origin,
        )
        .await;
    assert_eq!(wrong.code, 401);
    assert!(header(&wrong, "set-cookie").is_empty());

    let token = issue(&s.store, "U1", "ana").await;
    // A sign-in posted from another site is refused.
    let p = s
        .form(
            "/signin",
            &[("token", &token)],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(p.code, 403);

    let cookie = sign_in(&s, &token).await;
    let with = [("cookie", cookie.as_str()), ("origin", o.as_str())];
    let home = s.page("/", &with).await;
    assert_eq!(home.code, 200, "{}", home.body);
    assert!(home.body.contains("ana (U1) (commander)"), "{}", home.body);
    assert!(
        home.body
            .contains("value=\"pause\">Pause automation</button>")
    );
    assert!(
        !home.body.contains("value=\"ack "),
        "the one alert is acked already"
    );
    let token_on_page = csrf(&home.body);

    // Without the page's CSRF token, or from another origin: refused,
    // and the control loop never hears of it.
    let p = s
        .form("/act", &[("csrf", "0"), ("command", "pause")], &with)
        .await;
    assert_eq!(p.code, 403, "{}", p.body);
    let elsewhere = [
        ("cookie", cookie.as_str()),
        ("origin", "https://evil.example"),
    ];
    let p = s
        .form(
            "/act",
            &[("csrf", &token_on_page), ("command", "pause")],
            &elsewhere,
        )
        .await;
    assert_eq!(p.code, 403);
    assert!(s.changes.lock().unwrap().is_empty());

    // With both: the command runs as ana, by id.
    let p = s
        .form(
            "/act",
            &[
                ("csrf", &token_on_page),
                ("command", "pause"),
                ("back", "//evil.example/"),
            ],
            &with,
        )
        .await;
    assert_eq!(p.code, 200, "{}", p.body);
    assert!(p.body.contains("You sent <code>pause</code>"), "{}", p.body);
    assert!(
        p.body.contains("<a href=\"/\">Back</a>"),
        "never back to another site: {}",
        p.body
    );
    assert_eq!(*s.changes.lock().unwrap(), ["pause by ana (U1)"]);

    // Signed out, the cookie opens nothing.
    let p = s.form("/signout", &[("csrf", &token_on_page)], &with).await;
    assert_eq!(p.code, 303);
    let p = s.page("/", &with).await;
    assert_eq!(p.code, 303);
}

#[tokio::test]
async fn a_viewer_sees_no_buttons_and_cannot_act_by_posting() {
    let s = serve_with(None, 8, 1 << 20, signing_in(false)).await;
    let token = issue(&s.store, "U2", "vic").await;
    let cookie = sign_in(&s, &token).await;
    let o = s.origin();
    let with = [("cookie", cookie.as_str()), ("origin", o.as_str())];
    let home = s.page("/", &with).await;
    assert_eq!(home.code, 200);
    assert!(home.body.contains("vic (U2) (viewer)"));
    assert!(!home.body.contains("Pause automation"));
    assert!(!home.body.contains("value=\"ack "));
    let p = s
        .form(
            "/act",
            &[("csrf", &csrf(&home.body)), ("command", "pause")],
            &with,
        )
        .await;
    assert_eq!(p.code, 200);
    assert!(
        p.body
            .contains("`pause` needs the commander role; you are a viewer"),
        "{}",
        p.body
    );
    assert!(s.changes.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_revoked_token_signs_its_sessions_out() {
    let s = serve_with(None, 8, 1 << 20, signing_in(true)).await;
    let token = issue(&s.store, "U1", "ana").await;
    let cookie = sign_in(&s, &token).await;
    let with = [("cookie", cookie.as_str())];
    assert!(s.page("/", &with).await.body.contains("ana (U1)"));
    let id = auth::token_id(&auth::digest(&token));
    assert!(s.store.revoke_console_token(&id, 2).await.unwrap());
    // Open to viewers: still readable, but as nobody.
    let p = s.page("/", &with).await;
    assert_eq!(p.code, 200);
    assert!(!p.body.contains("ana (U1)"));
    assert!(
        p.body
            .contains("<a class=\"who\" href=\"/signin\">Sign in</a>")
    );
    let again = s.form("/signin", &[("token", &token)], &[]).await;
    assert_eq!(again.code, 401, "a revoked token signs nobody in");
}

#[tokio::test]
async fn without_sign_in_nothing_acts() {
    let s = serve_with(None, 8, 1 << 20, |_, _| Settings::default()).await;
    let p = s
        .form("/act", &[("csrf", "x"), ("command", "pause")], &[])
        .await;
    assert_eq!(p.code, 403);
    assert!(p.body.contains("Sign-in is off"));
    let p = s.page("/signin", &[]).await;
    assert!(p.body.contains("server.console.sign_in: tokens"));
    assert!(s.changes.lock().unwrap().is_empty());
}

#[test]
fn after_an_action_the_way_back_stays_on_the_console() {
    assert_eq!(super::local(Some("/runs/r1")), "/runs/r1");
    for away in [
        "//evil.example/x",
        "/\\evil.example",
        "https://evil.example",
        "runs",
    ] {
        assert_eq!(super::local(Some(away)), "/", "{away}");
    }
    assert_eq!(super::local(None), "/");
}

/// The moment a live page was drawn at, from its `data-moment`.
fn moment(body: &str) -> String {
    let at = body.find("data-moment=\"").expect("a live page") + 13;
    body[at..at + body[at..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn a_live_page_hears_of_a_change_and_of_nothing_else() {
    let s = serve_with(None, 8, 1 << 20, |_, _| Settings::default()).await;
    let home = s.page("/", &[]).await;
    assert!(
        home.body
            .contains("<script src=\"/console.js\" defer></script>")
    );
    assert!(header(&home, "content-security-policy").contains("script-src 'self'"));
    let since = moment(&home.body);
    let js = s.page("/console.js", &[]).await;
    assert_eq!(js.code, 200);
    assert_eq!(
        header(&js, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert!(js.body.contains("new EventSource(\"/events?since=\""));

    let mut events = s
        .http
        .get(format!("{}/events?since={since}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status().as_u16(), 200);
    assert_eq!(
        events.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    // Nothing changed since the page was drawn: nothing is said (the
    // countdowns and `ago`s move on their own, and are no change).
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(2500), events.chunk()).await;
    assert!(
        quiet.is_err()
            || quiet
                .as_ref()
                .unwrap()
                .as_ref()
                .unwrap()
                .as_ref()
                .is_some_and(|c| c.starts_with(b":")),
        "{quiet:?}"
    );
    // The bot says something: that is a change.
    s.store.enqueue_outbox("#live", "{}", 1).await.unwrap();
    let mut got = String::new();
    for _ in 0..10 {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(3), events.chunk())
            .await
            .expect("a change is told within seconds")
            .unwrap()
            .unwrap();
        got.push_str(&String::from_utf8_lossy(&chunk));
        if got.contains("event: change") {
            break;
        }
    }
    assert!(got.contains("event: change\ndata: "), "{got:?}");
    let then = s.page("/", &[]).await;
    assert_ne!(moment(&then.body), since);
    assert!(
        got.contains(&format!("data: {}", moment(&then.body))),
        "{got:?}"
    );
}

#[tokio::test]
async fn event_streams_follow_the_pages_rule_and_are_bounded() {
    let s = serve_with(Some("s3cret"), 8, 1 << 20, |_, _| Settings {
        streams: Arc::new(tokio::sync::Semaphore::new(1)),
        ..Settings::default()
    })
    .await;
    let p = s.page("/events", &[]).await;
    assert_eq!(p.code, 401);
    let bearer = [("authorization", "Bearer s3cret")];
    let first = s
        .http
        .get(format!("{}/events", s.base))
        .header("authorization", "Bearer s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status().as_u16(), 200);
    let second = s.page("/events", &bearer).await;
    assert_eq!(second.code, 503, "one stream at most here");
    assert_eq!(header(&second, "retry-after"), "30");
    drop(first);
    let mut freed = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let r = s
            .http
            .get(format!("{}/events", s.base))
            .header("authorization", "Bearer s3cret")
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 200 {
            freed = true;
            break;
        }
    }
    assert!(freed, "a closed stream gives its place back");
}

#[tokio::test]
async fn checklist_runs_and_silences_are_pages_with_their_buttons() {
    let s = serve_with(None, 8, 1 << 20, signing_in(false)).await;
    let loaded =
        crate::load::load_embedded(crate::config::Config::for_simulator("127.0.0.1:9")).unwrap();
    let list = loaded
        .checklists
        .iter()
        .find(|c| c.name == "launch-readiness")
        .unwrap();
    let run = crate::checklist::state::RunState::new(
        "launch-readiness-1",
        list,
        Default::default(),
        &By::Bot,
        1_684_962_000_000,
    );
    s.store.save_checklist_run(&run, "T-1h").await.unwrap();

    let cookie = sign_in(&s, &issue(&s.store, "U1", "ana").await).await;
    let with = [("cookie", cookie.as_str())];
    let page = s.page("/checklists", &with).await;
    assert_eq!(page.code, 200, "{}", page.body);
    for part in [
        "<h2>Checklist runs (1)</h2>",
        "<code>launch-readiness-1</code>",
        "T-1h",
        "checking",
        "commander-sign-off (a commander)",
        "value=\"signoff launch-readiness-1 commander-sign-off\">Sign off</button>",
    ] {
        assert!(page.body.contains(part), "{part} not in {}", page.body);
    }
    let home = s.page("/", &with).await;
    assert!(
        home.body.contains("<h2>The last checklist</h2>"),
        "{}",
        home.body
    );
    assert!(
        home.body
            .contains("<a href=\"/checklists\">Every checklist run</a>")
    );
    let past = s.page("/checklists?page=9", &with).await;
    assert!(
        past.body.contains("launch-readiness-1"),
        "a page past the end is the last"
    );

    let silences = s.page("/silences", &with).await;
    assert_eq!(silences.code, 200);
    assert!(
        silences.body.contains("<h2>Silences (2)</h2>"),
        "{}",
        silences.body
    );
    assert!(
        silences
            .body
            .contains("value=\"unsilence sil-room\">Unsilence</button>")
    );
    assert!(
        silences.body.contains("<label for=\"command\">"),
        "a new silence is a command"
    );
}

/// Lists take filters as an address (a GET form), read only what they
/// let through, keep them from page to page, and refuse what they do
/// not know with the list of what they take.
#[tokio::test]
async fn runs_checklists_and_silences_are_filtered_lists() {
    use crate::run_state::{Going, Outcome, RunState};
    use crate::store::RunRecord;
    let s = serve_with(None, 8, 1 << 20, |_, _| Settings::default()).await;
    let t0 = 1_684_965_647_000;
    // 60 moves in incident "launch" (more than a page), 3 mutes in
    // "other", one of them still running.
    for n in 0..63 {
        let (runbook, incident, state) = if n < 60 {
            ("move", "launch", RunState::Ended(Outcome::Succeeded))
        } else if n == 62 {
            ("mute", "other", RunState::Going(Going::Running))
        } else {
            ("mute", "other", RunState::Ended(Outcome::Failed))
        };
        let r = RunRecord {
            id: format!("{runbook}-{n:03}"),
            runbook: runbook.into(),
            incident: incident.into(),
            concurrency_key: format!("k{n}"),
            state,
            started_at: t0 + n * 1000,
            finished_at: None,
            error: None,
        };
        s.store.insert_run(&r, "{}").await.unwrap();
    }
    let all = s.page("/runs", &[]).await;
    assert_eq!(all.code, 200, "{}", all.body);
    assert!(all.body.contains("<h2>Runs (63)</h2>"), "{}", all.body);
    assert!(
        all.body
            .contains("<form class=\"filters\" method=\"get\" action=\"/runs\"")
    );
    for option in [
        "<option>move</option>",
        "<option>mute</option>",
        "<option>rolled_back</option>",
    ] {
        assert!(
            all.body.contains(option),
            "{option} not offered: {}",
            all.body
        );
    }
    assert!(!all.body.contains("show all"), "nothing to clear");

    let mutes = s.page("/runs?runbook=mute&state=&incident=", &[]).await;
    assert!(mutes.body.contains("<h2>Runs (3)</h2>"), "{}", mutes.body);
    assert!(!mutes.body.contains("move-0"), "{}", mutes.body);
    assert!(mutes.body.contains("<option selected>mute</option>"));
    assert!(mutes.body.contains("<a href=\"/runs\">show all</a>"));
    let running = s.page("/runs?runbook=mute&state=running", &[]).await;
    assert!(
        running.body.contains("<h2>Runs (1)</h2>"),
        "{}",
        running.body
    );
    assert!(running.body.contains("mute-062"));

    // The pager keeps the filter, and a page is the filter's.
    let moves = s.page("/runs?incident=launch", &[]).await;
    assert!(moves.body.contains("<h2>Runs (60)</h2>"), "{}", moves.body);
    assert!(
        moves
            .body
            .contains("<a href=\"/runs?incident=launch&amp;page=2\">older</a>"),
        "{}",
        moves.body
    );
    let second = s.page("/runs?incident=launch&page=2", &[]).await;
    assert!(
        second.body.contains("Page 2 of 2 (60 in all)"),
        "{}",
        second.body
    );
    assert!(second.body.contains("move-000") && !second.body.contains("mute-"));

    // Hostile values are drawn back escaped and encoded, and match nothing.
    let odd = s
        .page(
            "/runs?incident=%22%3E%3Cscript%3E&runbook=a%26page%3D9",
            &[],
        )
        .await;
    assert_eq!(odd.code, 200);
    assert!(odd.body.contains("<h2>Runs (0)</h2>") && odd.body.contains("no run matches"));
    assert!(!odd.body.contains("\"><script>"), "{}", odd.body);
    assert!(
        odd.body.contains("value=\"&quot;&gt;&lt;script&gt;\""),
        "{}",
        odd.body
    );
    assert!(
        odd.body.contains("<option selected>a&amp;page=9</option>"),
        "{}",
        odd.body
    );

    let bad_state = s.page("/runs?state=exploded", &[]).await;
    assert_eq!(bad_state.code, 400);
    assert!(
        bad_state.body.contains("the states are running"),
        "{}",
        bad_state.body
    );
    let unknown = s.page("/runs?limit=9", &[]).await;
    assert_eq!(unknown.code, 400);
    assert!(
        unknown.body.contains("<code>runbook</code>"),
        "{}",
        unknown.body
    );
    let long = s
        .page(&format!("/runs?incident={}", "x".repeat(201)), &[])
        .await;
    assert_eq!(long.code, 400);
    assert!(long.body.contains("at most 200 bytes"), "{}", long.body);

    // Checklist runs by checklist.
    let loaded =
        crate::load::load_embedded(crate::config::Config::for_simulator("127.0.0.1:9")).unwrap();
    let mut other = (*loaded.checklists[0]).clone();
    other.name = "venue-readiness".into();
    let lists = [(*loaded.checklists[0]).clone(), other];
    for (n, list) in lists.iter().enumerate() {
        let run = crate::checklist::state::RunState::new(
            &format!("{}-1", list.name),
            list,
            Default::default(),
            &By::Bot,
            t0 + n as i64,
        );
        s.store.save_checklist_run(&run, "").await.unwrap();
    }
    let names: Vec<&str> = lists.iter().map(|c| c.name.as_str()).collect();
    let every = s.page("/checklists", &[]).await;
    assert!(
        every.body.contains("<h2>Checklist runs (2)</h2>"),
        "{}",
        every.body
    );
    let one = s
        .page(&format!("/checklists?checklist={}", names[1]), &[])
        .await;
    assert!(
        one.body.contains("<h2>Checklist runs (1)</h2>"),
        "{}",
        one.body
    );
    assert!(one.body.contains(&format!("<code>{}-1</code>", names[1])));
    assert!(!one.body.contains(&format!("<code>{}-1</code>", names[0])));
    let none = s.page("/checklists?checklist=nope", &[]).await;
    assert!(
        none.body.contains("no checklist run matches"),
        "{}",
        none.body
    );

    // Silences by text in their matchers, author or comment, any case.
    let nodes = s.page("/silences?matching=NODEDOWN", &[]).await;
    assert!(
        nodes.body.contains("<h2>Silences (1)</h2>"),
        "{}",
        nodes.body
    );
    assert!(nodes.body.contains("sil-node") && !nodes.body.contains("sil-room"));
    let by_ana = s.page("/silences?matching=ana", &[]).await;
    assert!(by_ana.body.contains("sil-room") && !by_ana.body.contains("sil-node"));
    let none = s.page("/silences?matching=zzz", &[]).await;
    assert!(
        none.body.contains("no active silence matches"),
        "{}",
        none.body
    );
}

/// The home page names the checklist runs still to come, as the
/// checklist runner publishes them, and follows when they change.
#[tokio::test]
async fn the_home_page_names_the_next_scheduled_checklist() {
    use crate::preflight::task::{Upcoming, ahead};
    let (tx, rx) = ahead();
    let s = serve_with(None, 8, 1 << 20, move |_, _| {
        Settings::default().with_ahead(rx)
    })
    .await;
    let home = s.page("/", &[]).await;
    assert!(!home.body.contains("Checklists ahead"), "nothing scheduled");
    let at = crate::clock::Clock::system().now() + 8 * 60_000 + 30_000;
    tx.send_replace(vec![Upcoming {
        checklist: "launch-<readiness>".into(),
        label: "T-10m".into(),
        at,
    }]);
    let home = s.page("/", &[]).await;
    for part in [
        "<h2>Checklists ahead (1)</h2>",
        "<td>launch-&lt;readiness&gt;</td><td>T-10m</td>",
        "(in 8m",
    ] {
        assert!(home.body.contains(part), "{part} not in {}", home.body);
    }
}

/// An incident's page shows its card as chat was last told it (with the
/// card's actions as buttons for who may act) and its charts, the PNGs
/// chat was given, each at an address of its own.
#[tokio::test]
async fn an_incidents_page_shows_its_card_and_charts_as_chat_has_them() {
    use crate::chat::card::{Card, CardAlert, CardRun};
    use crate::chat::{ChatMessage, Image, Outbox};
    let s = serve_with(None, 8, 1 << 20, signing_in(true)).await;
    let t0 = 1_684_965_647_000;
    s.store
        .append_timeline(&TimelineEntry::new(
            "launch",
            t0,
            Kind::AlertFiring,
            By::Bot,
            About::default(),
            "RoomFilling firing",
        ))
        .await
        .unwrap();
    let outbox = Outbox::new(s.store.clone());
    let mut card = Card::new("launch", t0);
    card.firing(
        CardAlert {
            name: "RoomFilling".into(),
            severity: Some("page".into()),
            labels: vec![("room".into(), "<i>main</i>".into())],
            value: 0.93,
            since: t0,
            summary: Some("room <i>main</i> is filling".into()),
            firing: true,
        },
        t0,
    );
    let card_msg = |c: &Card| ChatMessage {
        channel: "#c".into(),
        incident: Some("launch".into()),
        text: c.text(),
        card: Some(c.clone()),
        ..Default::default()
    };
    outbox.post(&card_msg(&card)).await.unwrap();
    let png = b"\x89PNG\r\n\x1a\n not really".to_vec();
    outbox
        .post(&ChatMessage {
            channel: "#c".into(),
            incident: Some("launch".into()),
            text: "chart".into(),
            image: Some(Image {
                png: png.clone(),
                title: "RoomFilling: last 15m".into(),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    // A newer version of the card: waiting for approval.
    card.run_progress(
        CardRun {
            id: "move-1".into(),
            runbook: "move".into(),
            state: crate::run_state::RunState::Going(crate::run_state::Going::AwaitingApproval),
            last_step: None,
            waiting: Some("move_event".into()),
        },
        t0 + 1000,
    );
    outbox.post(&card_msg(&card)).await.unwrap();

    let cookie = sign_in(&s, &issue(&s.store, "U1", "ana").await).await;
    let home = s.page("/", &[("cookie", cookie.as_str())]).await;
    assert!(
        home.body.contains("<th scope=\"col\">in chat</th>")
            && home.body.contains("<td>✋ WAITING FOR APPROVAL</td>"),
        "the home page gives each incident its card's state: {}",
        home.body
    );
    let page = s
        .page("/incidents/launch", &[("cookie", cookie.as_str())])
        .await;
    assert_eq!(page.code, 200, "{}", page.body);
    let charts = s.store.charts("launch", 10).await.unwrap();
    assert_eq!(charts.len(), 1, "the outbox tags what it queues");
    let src = format!("/incidents/launch/charts/{}", charts[0].0);
    for part in [
        "<h2>In chat</h2>",
        "✋ WAITING FOR APPROVAL · incident launch</h3>",
        "<strong>RoomFilling</strong> firing · <code>page</code> · value <strong>0.93</strong>",
        "<code>room=&lt;i&gt;main&lt;/i&gt;</code>",
        "room &lt;i&gt;main&lt;/i&gt; is filling",
        "waiting for approval of <code>move_event</code>",
        "value=\"approve move-1\">Approve</button>",
        "value=\"abort move-1\">Abort</button>",
        "<h2>Charts</h2>",
        &format!("<img src=\"{src}\" alt=\"chart: RoomFilling: last 15m\""),
    ] {
        assert!(page.body.contains(part), "{part} not in {}", page.body);
    }
    assert!(!page.body.contains("<i>main"), "alert data stays text");
    // A viewer reads the same card, and which buttons chat has.
    let viewer = s.page("/incidents/launch", &[]).await;
    assert!(
        viewer
            .body
            .contains("Buttons in chat: Acknowledge · Approve · Deny · Abort"),
        "{}",
        viewer.body
    );
    assert!(!viewer.body.contains("value=\"approve move-1\""));

    let chart = s.http.get(format!("{}{src}", s.base)).send().await.unwrap();
    assert_eq!(chart.status(), 200);
    assert_eq!(header_of(&chart, "content-type"), "image/png");
    assert_eq!(header_of(&chart, "x-content-type-options"), "nosniff");
    assert_eq!(chart.bytes().await.unwrap().to_vec(), png);
    for wrong in [
        format!("/incidents/other/charts/{}", charts[0].0),
        format!("/incidents/launch/charts/{}", charts[0].0 + 1),
        "/incidents/launch/charts/x".to_owned(),
    ] {
        let r = s.page(&wrong, &[]).await;
        assert_eq!(r.code, 404, "{wrong}: {}", r.body);
    }
}

fn header_of(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Settings for a console behind an authenticating proxy at `trusted`,
/// which names people in `X-Forwarded-User` (and `ana@example.com` is
/// chat user U1, a commander).
fn behind_proxy(trusted: &'static str) -> impl FnOnce(mpsc::Sender<Command>, Store) -> Settings {
    move |control, store| {
        let c = crate::config::Config::load(
            "c.yaml",
            &format!(
                "server:\n  console:\n    sign_in: proxy\n    proxy:\n      user_header: X-Forwarded-User\n      name_header: X-Forwarded-Preferred-Username\n      trusted: [{trusted}]\n      users: {{ana@example.com: U1}}\n"
            ),
        )
        .unwrap();
        Settings {
            sign_in: SignIn::Proxy,
            proxy: c.server.console.proxy,
            ..signing_in(false)(control, store)
        }
    }
}

/// Issue 24: sign-in through a trusted header from an authenticating
/// proxy. The proxy's word names a person (by chat user id, mapped from
/// the proxy's id), whose role is chat.roles'; their forms carry a CSRF
/// token from a cookie of their own; the header from anyone but the proxy
/// is refused, never taken as someone.
#[tokio::test]
async fn behind_a_proxy_its_header_signs_people_in_and_only_its() {
    let s = serve_with(None, 8, 1 << 20, behind_proxy("127.0.0.0/8")).await;
    let ana = [
        ("x-forwarded-user", "ana@example.com"),
        ("x-forwarded-preferred-username", "Ana <Ops>"),
    ];
    let home = s.page("/", &ana).await;
    assert_eq!(home.code, 200, "{}", home.body);
    assert!(
        home.body
            .contains("<span class=\"who\">Ana &lt;Ops&gt; (U1) (commander)</span>"),
        "{}",
        home.body
    );
    assert!(
        !home.body.contains("Sign out"),
        "signing out is the proxy's"
    );
    let set = header(&home, "set-cookie").to_owned();
    assert!(set.starts_with("firebreak_csrf="), "{set}");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();
    let with: Vec<(&str, &str)> = ana
        .iter()
        .copied()
        .chain([("cookie", cookie.as_str()), ("origin", s.base.as_str())])
        .collect();
    // The next page keeps the cookie's token and sets none.
    let again = s.page("/", &with).await;
    assert_eq!(header(&again, "set-cookie"), "");
    let token = csrf(&again.body);

    // Without the cookie the token is worth nothing.
    let no_cookie: Vec<(&str, &str)> = ana
        .iter()
        .copied()
        .chain([("origin", s.base.as_str())])
        .collect();
    let p = s
        .form(
            "/act",
            &[("csrf", &token), ("command", "pause")],
            &no_cookie,
        )
        .await;
    assert_eq!(p.code, 403, "{}", p.body);
    assert!(s.changes.lock().unwrap().is_empty());
    let p = s
        .form("/act", &[("csrf", &token), ("command", "pause")], &with)
        .await;
    assert_eq!(p.code, 200, "{}", p.body);
    assert_eq!(*s.changes.lock().unwrap(), ["pause by Ana <Ops> (U1)"]);

    // Nobody named: no page (opening to viewers is the config's choice);
    // someone else is who chat.roles says: here, a viewer.
    assert_eq!(s.page("/", &[]).await.code, 401);
    let bo = s.page("/", &[("x-forwarded-user", "U999")]).await;
    assert_eq!(bo.code, 200);
    assert!(bo.body.contains("U999 (viewer)"), "{}", bo.body);
    assert!(!bo.body.contains("value=\"pause\""), "{}", bo.body);
    let twice = s
        .page(
            "/",
            &[("x-forwarded-user", "U1"), ("x-forwarded-user", "U2")],
        )
        .await;
    assert_eq!(twice.code, 401);
    assert!(twice.body.contains("repeated"), "{}", twice.body);
    assert_eq!(s.page("/signin", &[]).await.code, 200);
    let p = s.form("/signin", &[("token", "fbc_x")], &[]).await;
    assert_eq!(p.code, 403, "no tokens behind a proxy");

    // The same header from an address that is not the proxy's.
    let m = crate::metrics::get();
    let before = m.console_signins.with(&["refused_header"]).get();
    let s = serve_with(None, 8, 1 << 20, behind_proxy("10.0.0.0/8")).await;
    let p = s.page("/", &ana).await;
    assert_eq!(p.code, 401);
    assert!(p.body.contains("not a trusted proxy"), "{}", p.body);
    assert!(!p.body.contains("Ana"), "{}", p.body);
    let p = s
        .form("/act", &[("csrf", &token), ("command", "pause")], &with)
        .await;
    assert_eq!(p.code, 401, "{}", p.body);
    assert!(s.changes.lock().unwrap().is_empty());
    assert!(m.console_signins.with(&["refused_header"]).get() >= before + 2);
}

/// A role granted to a Slack user group is seen in the console as in
/// chat, by asking Slack who is in the group; a Slack that does not
/// answer holds no page for long, and the role is then by id only.
#[tokio::test]
async fn roles_granted_to_slack_user_groups_count_in_the_console() {
    use axum::extract::Query;
    use std::collections::HashMap;
    async fn fake_slack(delay: std::time::Duration) -> reqwest::Url {
        let app = axum::Router::new().route(
            "/api/usergroups.users.list",
            axum::routing::get(move |Query(q): Query<HashMap<String, String>>| async move {
                tokio::time::sleep(delay).await;
                let users: Vec<&str> = if q.get("usergroup").map(String::as_str) == Some("SONCALL")
                {
                    vec!["U777"]
                } else {
                    vec![]
                };
                axum::Json(serde_json::json!({"ok": true, "users": users}))
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        url.parse().unwrap()
    }
    let roles = crate::config::Config::load(
        "c.yaml",
        "chat:\n  roles:\n    commander: {users: [U1], groups: [SONCALL]}\n",
    )
    .unwrap()
    .chat
    .roles;
    for (delay, role) in [
        (std::time::Duration::ZERO, "commander"),
        (std::time::Duration::from_secs(30), "viewer"),
    ] {
        let slack = crate::chat::slack::Slack::new(
            &fake_slack(delay).await,
            "xoxb-test".into(),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        let groups = crate::inbound::slack::Groups::for_roles(Arc::new(slack), &roles)
            .map(|g| Arc::new(g) as Arc<dyn crate::roles::GroupLookup>);
        assert!(groups.is_some(), "the roles name a group");
        let roles = roles.clone();
        let s = serve_with(None, 8, 1 << 20, move |control, store| Settings {
            roles,
            groups,
            ..behind_proxy("127.0.0.0/8")(control, store)
        })
        .await;
        let started = std::time::Instant::now();
        let page = s.page("/", &[("x-forwarded-user", "U777")]).await;
        assert_eq!(page.code, 200, "{}", page.body);
        assert!(
            page.body.contains(&format!("U777 ({role})")),
            "{role}: {}",
            page.body
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "a slow Slack holds the page only for GROUPS_WAIT"
        );
    }
}

/// A token's name is shown on every page and listed one per line: it is
/// bounded and one line, refused otherwise, before anything is stored.
#[tokio::test]
async fn a_token_name_is_short_and_one_line() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    for bad in [
        "x".repeat(super::MAX_TOKEN_NAME + 1),
        "ana\tU2".into(),
        "ana\nroot".into(),
    ] {
        let e = super::issue_token(&store, "U1", &bad, 1).await.unwrap_err();
        assert!(e.to_string().contains("at most 80 characters"), "{e}");
    }
    assert!(store.console_tokens().await.unwrap().is_empty());
    let (_, t) = super::issue_token(&store, "U1", &"é".repeat(80), 1)
        .await
        .unwrap();
    assert_eq!(t.name.chars().count(), 80);
    let (_, t) = super::issue_token(&store, "U1", "  ", 1).await.unwrap();
    assert_eq!(t.name, "U1", "no name: the id");
}
