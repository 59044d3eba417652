//! `firebreak validate` through the real binary: exit codes and located
//! errors, on the shipped files and on broken ones.

use std::process::Command;

fn firebreak(args: &[&str], dir: &std::path::Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_shipped_rules_and_runbooks_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, out, err) = firebreak(&["validate", "alerts", "runbooks"], root);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        out.starts_with("ok: config built-in defaults (no -c, FIREBREAK_CONFIG or ./firebreak.yaml: a local `firebreak sim`), 1 rule file(s)"),
        "{out}"
    );
    assert!(out.contains("5 runbook(s)"), "{out}");
    // Every alert value in their PromQL strings goes through `| promql`.
    assert!(!err.contains("warning"), "{err}");
    assert!(!out.contains("warning"), "{out}");
}

#[test]
fn an_unescaped_value_in_a_promql_string_is_a_warning_that_passes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("verify.yaml"),
        "kind: runbook\nname: verify\ntrigger: {manual: true}\nsteps:\n  - id: held\n    action: wait\n    with: {until: 'max(live_room_up{room=\"{{ alert.labels.room }}\"}) == 1', within: 1m}\n",
    )
    .unwrap();
    let (code, out, err) = firebreak(&["validate", "verify.yaml"], d);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        err.starts_with("verify.yaml:7:11: warning: steps[0].with.until: `{{ alert.labels.room }}` is inside a PromQL string without `| promql`"),
        "{err}"
    );
    assert!(
        out.starts_with("ok: ") && out.trim_end().ends_with("; 1 warning(s)"),
        "{out}"
    );
}

/// A runbook that names the built-in scenario's ids works on its replay
/// only: validate says where, and why, and still passes. A word that is
/// one of those ids inside a sentence or a path is not a warning.
#[test]
fn a_literal_only_the_built_in_scenario_defines_is_a_warning_that_passes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("move.yaml"),
        r#"kind: runbook
name: move
trigger: {manual: true}
inputs:
  event: {type: string, default: launch}
  secondary_account:
    type: string
    default: cohost
steps:
  - id: create
    action: http
    when: "inputs.event != 'main'"
    with:
      target: platform
      method: POST
      path: /api/v1/rooms/main
      body: {account: "{{ inputs.secondary_account }}", title: host, note: "the main room"}
"#,
    )
    .unwrap();
    let (code, out, err) = firebreak(&["validate", "move.yaml"], d);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    let why = "of the built-in simulator scenario; read it from the platform";
    assert_eq!(lines.len(), 4, "{err}");
    assert!(
        lines[0].starts_with(&format!(
            "move.yaml:5:34: warning: inputs.event.default: \"launch\" is the event {why}"
        )),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "move.yaml:8:14: warning: inputs.secondary_account.default: \"cohost\" is an account {why}"
        )),
        "{err}"
    );
    assert!(
        lines[2].starts_with(&format!(
            "move.yaml:12:11: warning: steps[0].when: \"main\" is a room {why}"
        )),
        "{err}"
    );
    assert!(
        lines[3].starts_with(&format!(
            "move.yaml:14:7: warning: steps[0].with.body.title: \"host\" is a speaker {why}"
        )),
        "{err}"
    );
    assert!(out.trim_end().ends_with("; 4 warning(s)"), "{out}");
}

/// A config from `deploy/` laid out as the systemd unit and the container
/// install it: copied as `name` into a directory that holds the shipped
/// `alerts/` and `runbooks/`. Its relative paths are that directory's, so
/// it is checked from the repository root.
fn installed(from: &str, name: &str) -> (tempfile::TempDir, String) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let etc = tempfile::tempdir().unwrap();
    std::fs::copy(root.join(from), etc.path().join(name)).unwrap();
    for dir in ["alerts", "runbooks"] {
        std::os::unix::fs::symlink(root.join(dir), etc.path().join(dir)).unwrap();
    }
    let config = etc.path().join(name).display().to_string();
    (etc, config)
}

/// The production config in `deploy/` loads with the shipped runbooks, as
/// the systemd unit and the container run it (`runbooks` beside it).
#[test]
fn the_deploy_config_is_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (_etc, config) = installed("deploy/firebreak.yaml", "firebreak.yaml");
    let (code, out, err) = firebreak(&["validate", "--offline", "--config", &config], root);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("0 rule file(s)"), "{out}");
    assert!(out.contains("5 runbook(s)"), "{out}");
    assert!(out.contains("secrets not read (--offline)"), "{out}");
}

/// Issue 22, item 1: secrets are checked before the night. Without the
/// files its secrets come from, the production config is refused, and
/// each missing secret is named with what needs it.
#[test]
fn the_deploy_config_without_its_secret_files_says_which_are_missing() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (_etc, config) = installed("deploy/firebreak.yaml", "firebreak.yaml");
    let (code, out, err) = firebreak(&["validate", "--config", &config], root);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    let missing: Vec<&str> = err.lines().filter(|l| l.contains(": secrets.")).collect();
    let named: Vec<&str> = missing
        .iter()
        .map(|l| {
            let field = l.split(": secrets.").nth(1).unwrap();
            field.split(':').next().unwrap()
        })
        .collect();
    assert_eq!(
        named,
        ["api_token", "platform_admin", "slack_bot", "slack_signing"],
        "{err}"
    );
    for (line, needed_by) in missing.iter().zip([
        "server.token_secret",
        "targets.platform.bearer_token_secret",
        "chat.slack.bot_token_secret",
        "chat.slack.signing_secret",
    ]) {
        assert!(
            line.contains("cannot read secret file /run/credentials/firebreak.service/"),
            "{line}"
        );
        assert!(line.contains(&format!("needed by {needed_by}")), "{line}");
    }
    assert!(out.contains("4 error(s) in 1 file(s)"), "{out}");
}

/// A directory with `firebreak.yaml` holding `config`, and empty
/// `alerts/` and `runbooks/`.
fn with_config(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("alerts")).unwrap();
    std::fs::create_dir_all(d.join("runbooks")).unwrap();
    std::fs::write(d.join("firebreak.yaml"), config).unwrap();
    dir
}

/// `firebreak run` does not start without a secret it needs, and says
/// which; the first mitigation would otherwise find out.
#[test]
fn run_refuses_to_start_without_a_secret_it_needs() {
    let dir = with_config(
        "targets:\n  platform: {url: 'http://127.0.0.1:9', bearer_token_secret: admin}\nsecrets:\n  admin: {env: FIREBREAK_TEST_SURELY_UNSET}\nstore:\n  url: sqlite://fb.db\n",
    );
    let d = dir.path();
    let (code, _out, err) = firebreak(&["run", "--config", "firebreak.yaml"], d);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("secrets.admin: environment variable FIREBREAK_TEST_SURELY_UNSET is not set (needed by targets.platform.bearer_token_secret)"),
        "{err}"
    );
    assert!(err.contains("not starting: 1 secret(s)"), "{err}");
    assert!(!d.join("fb.db").exists(), "nothing started");
}

#[test]
fn every_error_in_every_file_is_printed_with_its_location() {
    let dir = with_config(
        "targets:\n  platform: {url: 'http://127.0.0.1:9100'}\nstore:\n  url: sqlite://x.db\n",
    );
    let d = dir.path();
    std::fs::write(
        d.join("alerts/bad.rules.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: Broken\n        expr: rate(x[5m) > 1\n      - alert: BadFor\n        expr: up == 0\n        for: 5 minutes\n",
    )
    .unwrap();
    std::fs::write(
        d.join("runbooks/bad.yaml"),
        "kind: runbook\nname: bad\ntrigger: {manual: true}\nsteps:\n  - id: a\n    action: http\n    with: {target: nope, path: /x}\n  - id: b\n    action: chatt\n    with: {text: hi}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("runbooks/typo.yaml"),
        "kind: runbook\nname: typo\ntrigger: {manual: true}\nstepz: []\n",
    )
    .unwrap();

    let (code, out, err) = firebreak(&["validate"], d);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    let expect = [
        "alerts/bad.rules.yml:5:24: groups[0].rules[0].expr: invalid PromQL: unexpected character inside brackets: ')'",
        "alerts/bad.rules.yml:8:14: groups[0].rules[1].for:",
        "runbooks/bad.yaml:7:11: steps[0].with.target: unknown target \"nope\"; known targets: platform",
        "runbooks/bad.yaml:9:13: steps[1].action: unknown action \"chatt\" (did you mean `chat`?)",
        "runbooks/typo.yaml:4:1:",
    ];
    for e in expect {
        assert!(
            lines.iter().any(|l| l.starts_with(e)),
            "missing {e:?} in:\n{err}"
        );
    }
    assert!(out.contains("error(s) in 3 file(s)"), "{out}");
}

/// A rollback's guard only reads, must say when it holds and what to tell
/// people, and reads only what exists; and a guard belongs on a rollback.
#[test]
fn a_broken_rollback_guard_is_reported_where_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("guarded.yaml"),
        r#"kind: runbook
name: guarded
trigger: {manual: true}
steps:
  - id: before
    action: http
    with: {target: platform, path: /api/v1/events/e, capture: {room: /event/room}}
    guard: {holds: "true", otherwise: x}
  - id: move
    action: http
    with: {target: platform, method: POST, path: /api/v1/events/e/move}
    rollback:
      guard:
        read:
          - id: origin
            action: http
            with: {target: platform, method: PATCH, path: "/api/v1/rooms/{{ steps.before.room }}"}
        holds: "steps.destination.up"
      action: http
      with: {target: platform, method: POST, path: /api/v1/events/e/move}
"#,
    )
    .unwrap();
    let (code, out, err) = firebreak(&["validate", "guarded.yaml"], d);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    for e in [
        "guarded.yaml:8:12: steps[0].guard: a guard decides whether a rollback runs, so it goes under `rollback:`",
        "guarded.yaml:14:9: steps[1].rollback.guard.otherwise: missing; a guard needs `otherwise`",
        "guarded.yaml:17:19: steps[1].rollback.guard.read[0].with.method: method \"PATCH\" could change what the guard is there to judge",
        "guarded.yaml:18:16: steps[1].rollback.guard.holds: unknown step `destination`",
    ] {
        assert!(
            err.lines().any(|l| l.starts_with(e)),
            "missing {e:?} in:\n{err}"
        );
    }
    assert_eq!(err.lines().count(), 4, "{err}");
}

#[test]
fn a_broken_config_is_reported_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cfg.yaml"), "store:\n  url: mysql://x\n").unwrap();
    std::fs::create_dir_all(dir.path().join("alerts")).unwrap();
    let (code, _out, err) = firebreak(&["validate", "--config", "cfg.yaml", "alerts"], dir.path());
    assert_eq!(code, 1);
    assert!(
        err.contains("cfg.yaml:2:8: store.url: unsupported store \"mysql://x\""),
        "{err}"
    );
}

/// Issue 22, item 6: every typo in a file at once, each with its path and
/// what it was probably meant to be; indentation said in words; and a
/// config typo reads no other file, so it cannot add "cannot read file"
/// errors about paths nobody named.
#[test]
fn every_typo_is_reported_at_once_and_a_config_typo_reads_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("firebreak.yaml"),
        "runbook:\n  paths: [books]\nstore:\n  ur: sqlite://fb.db\n",
    )
    .unwrap();
    let (code, out, err) = firebreak(&["validate"], d);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "firebreak.yaml: warning: its rules and runbooks were not checked because this config has errors; fix them, or name the files: `firebreak validate -c FILE PATHS`",
            "firebreak.yaml:1:1: runbook: unknown field `runbook` (did you mean `runbooks`?)",
            "firebreak.yaml:4:3: store.ur: unknown field `ur` (did you mean `url`?)",
        ],
        "{err}"
    );
    assert!(
        out.starts_with(
            "2 error(s) in 1 file(s); config firebreak.yaml (found in the current directory)"
        ),
        "{out}"
    );

    std::fs::remove_file(d.join("firebreak.yaml")).unwrap();
    std::fs::write(
        d.join("two.yaml"),
        "kind: runbook\nname: two\ntrigger: {manual: true}\nsteps:\n  - id: a\n    acton: chat\n    with: {text: hi}\n  - id: b\n    action: chat\n    tiemout: 5s\n    with: {txt: hi, chanel: '#x'}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("indent.yaml"),
        "kind: runbook\nname: indent\ntrigger: {manual: true}\nsteps:\n  - id: a\n    action: chat\n     with: {text: hi}\n",
    )
    .unwrap();
    let (code, out, err) = firebreak(&["validate", "two.yaml", "indent.yaml"], d);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "indent.yaml:7:6: line 7: this line's indentation does not match the lines around it (it starts in column 6, the line above in column 5); the keys of one mapping start in the same column, and what belongs under a key starts further right than the key, on the lines after it",
            "two.yaml:6:5: steps[0].acton: unknown field `acton` (did you mean `action`?)",
            "two.yaml:10:5: steps[1].tiemout: unknown field `tiemout` (did you mean `timeout`?)",
        ],
        "{err}"
    );
    // With the structure right, the action's own fields are checked: both
    // typos there too.
    std::fs::write(
        d.join("two.yaml"),
        "kind: runbook\nname: two\ntrigger: {manual: true}\nsteps:\n  - id: b\n    action: chat\n    with: {txt: hi, slto: a}\n",
    )
    .unwrap();
    let (code, out, err) = firebreak(&["validate", "two.yaml"], d);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    for want in [
        "two.yaml:7:11: steps[0].with.slto: unknown field `slto` (did you mean `slot`?)",
        "two.yaml:7:11: steps[0].with.txt: unknown field `txt` (did you mean `text`?)",
    ] {
        assert!(err.lines().any(|l| l == want), "{want}\n{err}");
    }
}

/// Regression: a PromQL expression nested a few thousand levels deep
/// overflowed the parser's stack and aborted `validate` (and, in a
/// reload, the bot). Now each is a located error and the rest of the
/// file is still checked.
#[test]
fn hostile_rule_files_are_errors_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("alerts")).unwrap();
    let n = 4000;
    let rules = [
        format!("{}up{}", "(".repeat(n), ")".repeat(n)),
        format!("{}1", "-".repeat(n)),
        format!("up{}", " + up".repeat(n)),
    ]
    .iter()
    .enumerate()
    .map(|(i, e)| format!("      - alert: Deep{i}\n        expr: '{e}'\n"))
    .collect::<String>();
    std::fs::write(
        d.join("alerts/deep.rules.yml"),
        format!(
            "groups:\n  - name: g\n    rules:\n{rules}      - alert: Typo\n        expr: up ==\n"
        ),
    )
    .unwrap();
    // YAML nested far deeper than any rule file.
    std::fs::write(
        d.join("alerts/nested.rules.yml"),
        format!("groups: {}{}\n", "[".repeat(50 * n), "]".repeat(50 * n)),
    )
    .unwrap();
    let (code, out, err) = firebreak(&["validate", "alerts"], d);
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    for i in 0..3 {
        assert!(
            err.contains(&format!("groups[0].rules[{i}].expr: invalid PromQL:")),
            "rule {i} in:\n{err}"
        );
    }
    assert!(
        err.contains("nests too deep") && err.contains("bytes"),
        "{err}"
    );
    assert!(
        err.contains("groups[0].rules[3].expr"),
        "the rest is checked:\n{err}"
    );
    assert!(err.contains("alerts/nested.rules.yml:"), "{err}");
}

/// Regression: `firebreak validate | head` (any command whose reader has
/// gone) panicked in `println!` with "failed printing to stdout". It now
/// ends as Unix tools do, on SIGPIPE, without a word on stderr.
#[test]
fn a_closed_pipe_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(["validate", "alerts", "runbooks"])
        .current_dir(root)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    // SIGPIPE is 13 on Linux.
    assert_eq!(out.status.signal(), Some(13), "{:?} {err}", out.status);
}

/// `deploy/replicas/`: three replicas on one PostgreSQL behind a load
/// balancer, with Prometheus and Alertmanager sending to each. The files
/// must agree with each other and with what firebreak reads: the config
/// validates, every replica has its own name and the same config and
/// store, the store URL names the compose database, and the balancer,
/// Prometheus and Alertmanager list exactly the replicas (checked by
/// promtool and amtool too, where installed, as in CI).
#[test]
fn the_replicas_deployment_is_consistent_and_valid() {
    use std::collections::BTreeSet;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("deploy/replicas");
    // Where compose mounts it, beside the image's runbooks.
    let (_etc, config) = installed("deploy/replicas/firebreak.yaml", "replicas.yaml");
    let (code, out, err) = firebreak(&["validate", "--offline", "--config", &config], root);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");

    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let compose: serde_json::Value = serde_saphyr::from_str(&read("compose.yaml")).unwrap();
    let services = compose["services"].as_object().unwrap();
    let replicas: Vec<&String> = services
        .keys()
        .filter(|k| k.starts_with("firebreak-"))
        .collect();
    assert_eq!(replicas.len(), 3, "{replicas:?}");
    let mut names = BTreeSet::new();
    for r in &replicas {
        let s = &services[*r];
        let env = &s["environment"];
        names.insert(env["FIREBREAK_REPLICA_NAME"].as_str().unwrap().to_owned());
        assert!(
            env["PGPASSWORD"]
                .as_str()
                .unwrap()
                .contains("FIREBREAK_PG_PASSWORD"),
            "{r}: the password comes from the environment, not the config"
        );
        assert_eq!(s["restart"], "always", "{r}: a deposed replica comes back");
        let mounts: Vec<&str> = s["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            mounts.contains(&"./firebreak.yaml:/etc/firebreak/replicas.yaml:ro"),
            "{r}: {mounts:?}"
        );
        assert_eq!(
            s["command"],
            serde_json::json!(["run", "--config", "/etc/firebreak/replicas.yaml"])
        );
    }
    assert_eq!(names.len(), 3, "each replica has its own name: {names:?}");

    let config: serde_json::Value = serde_saphyr::from_str(&read("firebreak.yaml")).unwrap();
    let store = url::Url::parse(config["store"]["url"].as_str().unwrap()).unwrap();
    let pg = &services["postgres"]["environment"];
    assert_eq!(store.scheme(), "postgres");
    assert!(services.contains_key(store.host_str().unwrap()), "{store}");
    assert_eq!(store.username(), pg["POSTGRES_USER"].as_str().unwrap());
    assert_eq!(
        store.path(),
        format!("/{}", pg["POSTGRES_DB"].as_str().unwrap())
    );
    assert_eq!(store.password(), None, "no password in the config");

    let listed = |text: &str| -> BTreeSet<String> {
        replicas
            .iter()
            .filter(|r| text.contains(&format!("{r}:9095")))
            .map(|r| (*r).clone())
            .collect()
    };
    let all: BTreeSet<String> = replicas.iter().map(|r| (*r).clone()).collect();
    let haproxy = read("haproxy.cfg");
    assert_eq!(listed(&haproxy), all, "the balancer sends to every replica");
    assert!(haproxy.contains("option httpchk GET /-/ready"));
    let prometheus = read("prometheus.yml");
    assert_eq!(listed(&prometheus), all);
    assert!(prometheus.contains("api_version: v2"));
    let alertmanager = read("alertmanager.yml");
    assert_eq!(listed(&alertmanager), all);

    for (tool, args) in [
        ("promtool", vec!["check", "config", "prometheus.yml"]),
        ("amtool", vec!["check-config", "alertmanager.yml"]),
    ] {
        match std::process::Command::new(tool)
            .args(&args)
            .current_dir(&dir)
            .output()
        {
            Ok(o) => assert!(
                o.status.success(),
                "{tool} {args:?}: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("{tool} not run ({e}); CI installs it"),
        }
    }
}
