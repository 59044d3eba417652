//! The web console in a real browser (Debian's Chromium, headless):
//! people sign in through the page, a gated run started from the command
//! line waits on the home page, a viewer's approval is refused by its gate,
//! a commander approves it with the keyboard alone and it proceeds; the
//! incident page says what `firebreak timeline --markdown` says; the home
//! page fits a phone; and during a replay the home page shows the incident
//! as it happens, without a reload.
//!
//! With `FIREBREAK_SCREENSHOTS=DIR` the pages are saved there as PNGs (the
//! ones in `docs/` were made so, with `fonts-noto-color-emoji` installed
//! for the cards' status icons).

use crate::common::browser::Browser;
use crate::common::{start_bot_with, start_sim, stop_bot};

/// Keeps a screenshot where `FIREBREAK_SCREENSHOTS` says, and checks it is
/// a picture either way.
async fn keep(b: &mut Browser, name: &str) {
    let png = b.screenshot().await;
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "{name}: not a picture"
    );
    if let Some(dir) = std::env::var_os("FIREBREAK_SCREENSHOTS") {
        std::fs::write(std::path::Path::new(&dir).join(name), png).unwrap();
    }
}

/// Runs axe-core (the accessibility checker, `npm ci --prefix
/// tests/browser`) on the page and fails on any WCAG 2.1 A or AA
/// violation. Without it the check is skipped, and under CI that fails.
async fn accessible(b: &mut Browser, what: &str) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/browser/node_modules/axe-core/axe.min.js"
    );
    let Ok(axe) = std::fs::read_to_string(path) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install axe-core: npm ci --prefix tests/browser (see .ci/run)"
        );
        eprintln!("SKIPPED the accessibility check of {what}: npm ci --prefix tests/browser");
        return;
    };
    b.eval(&axe).await;
    let found = b
        .eval(
            "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})\
             .then(r => r.violations.map(v => v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', ')))",
        )
        .await;
    assert_eq!(
        found,
        serde_json::json!([]),
        "{what} has accessibility violations"
    );
}

/// Signs in through the page, as a person pastes their token.
async fn sign_in(b: &mut Browser, base: &str, token: &str) {
    b.goto(&format!("{base}/")).await;
    let at = b.eval("location.pathname").await;
    assert_eq!(at, "/signin", "nobody signed in is sent to sign in");
    accessible(b, "the sign-in page").await;
    b.leave(&format!(
        "document.querySelector('#token').value = {}; document.querySelector('form.cmd button').click()",
        serde_json::to_string(token).unwrap()
    ))
    .await;
    let at = b.eval("location.pathname").await;
    assert_eq!(at, "/", "{}", b.text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commander_approves_from_the_keyboard_and_a_viewer_cannot() {
    let Some(mut ana) = Browser::launch(1280, 900, false).await else {
        return;
    };
    let mut vic = Browser::launch(1280, 900, false).await.unwrap();
    let (daemon, stop, base) = crate::console::gated_daemon().await;
    let store = daemon.ctx.store.clone();
    let token = |user: &'static str, name: &'static str| {
        let store = store.clone();
        async move { crate::console::issue(&store, user, name).await }
    };
    sign_in(&mut ana, &base, &token("U1", "ana").await).await;
    sign_in(&mut vic, &base, &token("U2", "vic").await).await;

    // The command line, typed and sent with Enter.
    ana.eval("document.querySelector('#command').focus(); document.querySelector('#command').value = 'run gated room=main'")
        .await;
    ana.press_enter_and_wait().await;
    assert!(ana.text().await.contains("You sent run gated room=main"));
    ana.goto(&format!("{base}/")).await;
    ana.until_shows("Waiting for approval (1)", 10).await;
    let run = ana
        .eval("document.querySelector('button[value^=\"approve \"]').value.slice(8)")
        .await;
    let run = run.as_str().unwrap().to_owned();
    keep(&mut ana, "console-now.png").await;
    accessible(&mut ana, "the home page with a run waiting").await;

    // The viewer sees the page, clicks, and the gate says no.
    vic.goto(&format!("{base}/")).await;
    vic.leave("document.querySelector('button[value^=\"approve \"]').click()")
        .await;
    let said = vic.text().await;
    assert!(said.contains("commander"), "{said}");
    accessible(&mut vic, "an answer page").await;
    vic.goto(&format!("{base}/runs/{run}")).await;
    assert!(vic.text().await.contains("awaiting_approval"));

    // Keyboard only: Tab to the Approve button, Enter.
    ana.goto(&format!("{base}/")).await;
    let mut reached = false;
    for _ in 0..60 {
        ana.press("Tab").await;
        let focused = ana
            .eval("document.activeElement && document.activeElement.value || ''")
            .await;
        if focused.as_str() == Some(&format!("approve {run}")) {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab never reached the Approve button");
    let outline = ana
        .eval("getComputedStyle(document.activeElement).outlineStyle")
        .await;
    assert_eq!(outline, "solid", "the focused button is shown as focused");
    ana.press_enter_and_wait().await;
    assert!(ana.text().await.contains("approved"));
    ana.goto(&format!("{base}/runs/{run}")).await;
    ana.until_shows("succeeded", 10).await;
    accessible(&mut ana, "a run's page").await;
    keep(&mut ana, "console-run.png").await;

    // The incident page says what the Markdown report says.
    let incident = ana
        .eval("document.querySelector('a[href^=\"/incidents/\"]').textContent")
        .await;
    let incident = incident.as_str().unwrap().to_owned();
    ana.goto(&format!("{base}/incidents/{incident}")).await;
    let review = ana
        .eval("document.querySelector('article.review').innerText")
        .await;
    let review = review.as_str().unwrap().to_owned();
    let entries = store.timeline(&incident).await.unwrap();
    let md = firebreak::incident::Review::new(&incident, entries).markdown(&|ms| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string()
    });
    let summary = md.split("## Timeline").next().unwrap();
    let mut compared = 0;
    for line in summary
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("|---"))
    {
        // What a reader sees of a cell: no Markdown marks.
        let cells: Vec<String> = line
            .trim_matches('|')
            .split(" | ")
            .map(|c| c.trim().replace(['*', '`'], "").replace("\\|", "|"))
            .filter(|c| !c.is_empty())
            .collect();
        for c in cells {
            assert!(
                review.contains(&c),
                "the page lacks {c:?} of {line:?}:\n{review}"
            );
        }
        compared += 1;
    }
    assert!(compared >= 8, "{summary}");
    assert!(review.contains("Time to detect"));
    accessible(&mut ana, "an incident's page").await;

    stop.cancel();
    daemon.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_the_replay_the_home_page_shows_the_incident_without_a_reload() {
    let Some(mut desk) = Browser::launch(1280, 900, false).await else {
        return;
    };
    let mut phone = Browser::launch(390, 844, true).await.unwrap();
    // The launch at 60x from T-10m: the host's feedback fires within
    // seconds and the bot mutes it.
    let (_sim, sim_addr) = start_sim(&["--speed", "60", "--from", "-10m"]);
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let port = crate::common::free_port();
    let config = format!(
        "sources:\n  scrape:\n    - name: sim\n      url: http://{sim_addr}/metrics\n      interval: 15s\n      timeout: 5s\nrules:\n  paths: ['{root}/alerts']\nrunbooks:\n  paths: ['{root}/runbooks']\ntargets:\n  platform: {{url: 'http://{sim_addr}'}}\nstore:\n  url: sqlite://{}\nchat:\n  channel: '#test'\nserver:\n  listen: 127.0.0.1:{port}\n",
        dir.path().join("fb.db").display()
    );
    let url = format!("http://{sim_addr}");
    let bot = start_bot_with(dir.path(), &config, &["--clock-from", &url]);
    let base = format!("http://127.0.0.1:{port}");
    let http = firebreak::net::client().unwrap();
    crate::common::eventually(20, || async {
        http.get(format!("{base}/-/ready")).send().await.ok()
    })
    .await
    .expect("the bot serves");

    desk.goto(&format!("{base}/")).await;
    desk.eval("window.stayed = true").await;
    // The incident appears, and the host's feedback fires and is muted,
    // on the page as it was opened before anything happened.
    assert!(desk.text().await.contains("no incidents yet"));
    let seen = desk.until_shows("launch\t", 60).await;
    assert_eq!(
        desk.eval("window.stayed === true").await,
        true,
        "shown by the live page itself, not by a reload"
    );
    assert!(seen.contains("launch\t2023-05-24 "), "{seen}");
    crate::common::eventually(60, || async {
        let review = http
            .get(format!("{base}/incidents/launch"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        review.contains("Mitigated (runbook ").then_some(())
    })
    .await
    .expect("the incident is mitigated");
    // Let the live page catch up with the mitigation before the picture.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    keep(&mut desk, "console-replay.png").await;
    desk.goto(&format!("{base}/incidents/launch")).await;
    let review = desk.text().await;
    assert!(review.contains("Mitigated (runbook "), "{review}");
    keep(&mut desk, "console-incident.png").await;
    assert_eq!(
        desk.eval("document.body.classList.contains('live')").await,
        true
    );
    // The phone: the page fits its width (wide tables scroll in place).
    phone.goto(&format!("{base}/")).await;
    let fits = phone
        .eval("document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    assert_eq!(fits, true, "the page is wider than a phone");
    keep(&mut phone, "console-phone.png").await;
    let (_, out, err) = stop_bot(bot);
    assert!(!out.is_empty() || !err.is_empty());
}
