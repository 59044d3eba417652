//! The web console of a running daemon, spoken to as a browser speaks
//! it (cookies, form posts with their origin): people sign in with the
//! tokens issued to them, a gated run is started from the command line,
//! waits on the home page, is refused to a viewer by its gate, approved
//! from its button by a commander, and proceeds, on the record as theirs.

use std::time::Duration;

use firebreak::api::console::auth;
use firebreak::config::{Config, SignIn};
use firebreak::store::Store;

use crate::common::start_daemon_loaded;

const GATED: &str = "kind: runbook\nname: gated\ntrigger: {manual: true}\ninputs:\n  room: {type: string}\npolicy:\n  concurrency_key: \"gated/{{ inputs.room }}\"\n  approval: {role: commander, timeout: 10m}\nsteps:\n  - {id: say, action: chat, with: {text: 'moving {{ inputs.room }}'}}\n";

pub async fn issue(store: &Store, user: &str, name: &str) -> String {
    firebreak::api::console::issue_token(store, user, name, 0)
        .await
        .unwrap()
        .0
}

/// One person's browser: their session cookie, sent with the console's
/// origin as a browser sends it on a form post.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl Browser {
    async fn sign_in(base: &str, token: &str) -> Browser {
        let http = firebreak::net::client_without_redirects().unwrap();
        let r = http
            .post(format!("{base}/signin"))
            .header("origin", base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string([("token", token)]).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 303);
        let cookie = r.headers()["set-cookie"].to_str().unwrap();
        Browser {
            http,
            base: base.to_owned(),
            cookie: cookie.split(';').next().unwrap().to_owned(),
        }
    }

    async fn get(&self, path: &str) -> String {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        r.text().await.unwrap()
    }

    /// Sends `command` the way the page's forms do, with its CSRF token.
    async fn send(&self, command: &str) -> String {
        let home = self.get("/").await;
        let at = home.find("name=\"csrf\" value=\"").unwrap() + 19;
        let csrf = &home[at..at + 64];
        let r = self
            .http
            .post(format!("{}/act", self.base))
            .header("cookie", &self.cookie)
            .header("origin", &self.base)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                serde_urlencoded::to_string([("csrf", csrf), ("command", command), ("back", "/")])
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.text().await.unwrap()
    }

    /// Reloads `path` until it shows `want`, as someone watching would.
    async fn until(&self, path: &str, want: &str) -> String {
        for _ in 0..100 {
            let page = self.get(path).await;
            if page.contains(want) {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{path} never showed {want:?}:\n{}", self.get(path).await);
    }
}

/// A daemon with sign-in on, U1 its commander, and one manual runbook
/// behind a commander's approval; its console's address.
pub async fn gated_daemon() -> (
    firebreak::daemon::Daemon,
    tokio_util::sync::CancellationToken,
    String,
) {
    firebreak::net::install_crypto_provider();
    let mut config = Config::for_simulator("127.0.0.1:9");
    config.scrape.clear();
    config.server.listen = Some("127.0.0.1:0".parse().unwrap());
    config.server.console.sign_in = SignIn::Tokens;
    config.chat.roles.commander.users = vec!["U1".into()];
    let loaded =
        firebreak::load::load(config, &[], &[("gated.yaml".into(), GATED.into())]).unwrap();
    let (daemon, stop) = start_daemon_loaded(loaded, Box::new(std::io::sink())).await;
    let base = format!("http://{}", daemon.http_addr.unwrap());
    (daemon, stop, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gated_run_is_approved_from_the_console_and_a_viewer_cannot() {
    let (daemon, stop, base) = gated_daemon().await;
    let ana = Browser::sign_in(&base, &issue(&daemon.ctx.store, "U1", "ana").await).await;
    let vic = Browser::sign_in(&base, &issue(&daemon.ctx.store, "U2", "vic").await).await;

    let said = ana.send("run gated room=main").await;
    assert!(
        said.contains("You sent <code>run gated room=main</code>"),
        "{said}"
    );
    let home = ana.until("/", "Waiting for approval (1)").await;
    let at = home.find("value=\"approve ").expect("an Approve button") + 15;
    let run = &home[at..at + home[at..].find('"').unwrap()];

    // The gate names commanders: a viewer's click is refused by it, and
    // the run still waits.
    let refused = vic.send(&format!("approve {run}")).await;
    assert!(refused.contains("commander"), "{refused}");
    assert!(
        vic.get(&format!("/runs/{run}"))
            .await
            .contains("awaiting_approval")
    );

    let approved = ana.send(&format!("approve {run}")).await;
    assert!(approved.contains("approved"), "{approved}");
    let page = ana.until(&format!("/runs/{run}"), "succeeded").await;
    let at = page.find("href=\"/incidents/").unwrap() + 17;
    let incident = &page[at..at + page[at..].find('"').unwrap()];
    let timeline = ana.get(&format!("/incidents/{incident}")).await;
    assert!(
        timeline.contains("ana (U1)"),
        "the approval is on the record as ana's:\n{timeline}"
    );
    assert!(
        timeline.contains("vic (U2)"),
        "and so is the refusal:\n{timeline}"
    );

    stop.cancel();
    daemon.wait().await.unwrap();
}

#[test]
fn tokens_are_issued_once_listed_and_revoked_from_the_command_line() {
    use crate::common::firebreak_in;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("firebreak.yaml"),
        "store: {url: sqlite://fb.db}\nchat:\n  roles:\n    commander: {users: [U024BE7LH]}\nserver:\n  listen: 127.0.0.1:0\n  console: {sign_in: tokens}\n",
    )
    .unwrap();
    let (code, out) = firebreak_in(
        dir.path(),
        &["console-token", "add", "U024BE7LH", "--name", "ana"],
    );
    assert_eq!(code, 0, "{out}");
    let token = out
        .lines()
        .find(|l| l.starts_with(auth::TOKEN_PREFIX))
        .expect("the token, on a line of its own");
    let id = auth::token_id(&auth::digest(token));
    assert!(
        out.contains(&format!("token {id} for ana (U024BE7LH)")),
        "{out}"
    );

    let (code, out) = firebreak_in(dir.path(), &["console-token", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("{id}\tU024BE7LH\tana\tissued ")),
        "{out}"
    );
    assert!(
        !out.contains(token),
        "the token itself is never shown again"
    );

    // A name is not an id: nothing is issued for it.
    let (code, out) = firebreak_in(dir.path(), &["console-token", "add", "ana"]);
    assert_ne!(code, 0);
    assert!(out.contains("is not a chat user id"), "{out}");

    let (code, out) = firebreak_in(dir.path(), &["console-token", "revoke", &id]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = firebreak_in(dir.path(), &["console-token", "revoke", &id]);
    assert_eq!(code, 1, "{out}");
    let (_, out) = firebreak_in(dir.path(), &["console-token", "list"]);
    assert!(out.contains("\trevoked "), "{out}");
}
