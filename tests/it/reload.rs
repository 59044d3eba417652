//! Reloading a running `firebreak run`: a bad version of the files is
//! refused with its located errors in chat and the old rules keep
//! running; the fixed version replaces rules and runbooks together, ends
//! the alerts of removed rules, and starts the new runbook; SIGHUP reloads
//! too.

use std::path::Path;
use std::process::Command;

use crate::common::{eventually, get_json, run_ended, start_bot, stop_bot};

const OLD_RULES: &str = "groups:\n  - name: g\n    interval: 1s\n    rules:\n      - alert: Old\n        expr: vector(1)\n        labels: {event: drill}\n";

/// Broken on line 6: the expression does not parse.
const BAD_RULES: &str = "groups:\n  - name: h\n    interval: 1s\n    rules:\n      - alert: New\n        expr: sum(rate(x[1m])\n";

const NEW_RULES: &str = "groups:\n  - name: h\n    interval: 1s\n    rules:\n      - alert: New\n        expr: vector(2)\n        labels: {event: drill}\n";

const RUNBOOK: &str = "kind: runbook\nname: on-new\ntrigger:\n  alerts: [{alertname: New}]\nsteps:\n  - {id: say, action: chat, with: {text: 'the reloaded runbook ran'}}\n";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The names of the firing alerts, from the bot's API.
async fn firing(port: u16) -> Option<Vec<String>> {
    let v = get_json(
        &firebreak::net::client().ok()?,
        &format!("http://127.0.0.1:{port}/api/v1/alerts"),
    )
    .await?;
    let mut names: Vec<String> = v["data"]["alerts"]
        .as_array()?
        .iter()
        .filter_map(|a| a["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    Some(names)
}

fn write(dir: &Path, name: &str, text: &str) {
    // Written beside and renamed in, as config management does, so the
    // poll never reads half a file.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_version_is_refused_and_a_good_one_replaces_rules_and_runbooks() {
    firebreak::net::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts");
    let runbooks = dir.path().join("runbooks");
    std::fs::create_dir_all(&alerts).unwrap();
    std::fs::create_dir_all(&runbooks).unwrap();
    write(&alerts, "old.yml", OLD_RULES);
    let port = free_port();
    let db = dir.path().join("fb.db");
    let bot = start_bot(
        dir.path(),
        &format!(
            "rules:\n  paths: ['{}']\nrunbooks:\n  paths: ['{}']\nstore:\n  url: sqlite://{}\nchat:\n  channel: '#test'\nserver:\n  listen: 127.0.0.1:{port}\n",
            alerts.display(),
            runbooks.display(),
            db.display()
        ),
    );
    let seen = |want: &'static [&'static str]| async move {
        eventually(20, || async {
            let names = firing(port).await?;
            (names == want).then_some(())
        })
        .await
        .is_some()
    };
    let old_fires = seen(&["Old"]).await;

    // A new runbook and a broken rule file: the whole version is refused.
    write(&runbooks, "on-new.yaml", RUNBOOK);
    write(&alerts, "new.yml", BAD_RULES);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let still_old = firing(port).await;

    // Fixed, and the old rule removed: both changes land as one version.
    write(&alerts, "new.yml", NEW_RULES);
    std::fs::remove_file(alerts.join("old.yml")).unwrap();
    let new_fires = seen(&["New"]).await;
    let ran = run_ended(&db, "on-new", 20).await;

    // SIGHUP reloads the same files again.
    let hup = Command::new("kill")
        .args(["-HUP", &bot.id().to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after_hup = firing(port).await;

    let (status, out, err) = stop_bot(bot);
    let logs = format!("stdout:\n{out}\nstderr:\n{err}");
    assert!(old_fires, "Old never fired\n{logs}");
    assert_eq!(
        still_old.as_deref(),
        Some(&["Old".to_owned()][..]),
        "the refused version must not replace the running one\n{logs}"
    );
    assert!(
        out.contains(
            "⚠️ reload refused (files changed): 1 error(s); still running the previous rules, runbooks and checklists."
        ),
        "{logs}"
    );
    // Located: file, line and column, as `firebreak validate` says it.
    let bad = format!("• {}:6:", alerts.join("new.yml").display());
    assert!(out.contains(&bad), "missing {bad:?}\n{logs}");
    assert_eq!(
        out.matches("reload refused").count(),
        1,
        "said once\n{logs}"
    );
    assert!(new_fires, "New never fired or Old never ended\n{logs}");
    assert_eq!(ran.as_deref(), Some("succeeded"), "{logs}");
    assert!(out.contains("the reloaded runbook ran"), "{logs}");
    assert!(
        out.contains("🔄 reloaded (files changed): 1 rule group(s), 1 runbook(s), 0 checklist(s)"),
        "{logs}"
    );
    // The removed rule's alert ended rather than staying firing forever.
    assert!(out.contains("*Old* resolved"), "{logs}");
    assert!(hup.success());
    assert!(out.contains("🔄 reloaded (SIGHUP)"), "{logs}");
    assert_eq!(
        after_hup.as_deref(),
        Some(&["New".to_owned()][..]),
        "{logs}"
    );
    assert!(status.is_some_and(|s| s.success()), "{logs}");
}
