//! Issue 22, item 5: a config that finds itself, through the real
//! binary. `-c`, else `FIREBREAK_CONFIG`, else `./firebreak.yaml`, else
//! the built-in setup, and each command says which; relative paths are
//! the config file's directory's, so it works from any directory; a bare
//! config with only `store` and `server` starts.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{eventually, free_port, stop_bot};

/// Runs firebreak in `cwd`, with `FIREBREAK_CONFIG` set to `env` or
/// unset whatever the test process has: (exit code, stdout, stderr).
fn firebreak(args: &[&str], cwd: &Path, env: Option<&Path>) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_firebreak"));
    cmd.args(args).current_dir(cwd);
    match env {
        Some(p) => cmd.env("FIREBREAK_CONFIG", p),
        None => cmd.env_remove("FIREBREAK_CONFIG"),
    };
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A manual runbook named `name`, to count which directory was read.
fn runbook(name: &str) -> String {
    format!(
        "kind: runbook\nname: {name}\ntrigger: {{manual: true}}\nsteps:\n  - id: say\n    action: chat\n    with: {{text: hi}}\n"
    )
}

/// `dir/firebreak.yaml` holding `config`, and `dir/runbooks/` with the
/// runbooks named.
fn config_dir(dir: &Path, config: &str, runbooks: &[&str]) {
    std::fs::create_dir_all(dir.join("runbooks")).unwrap();
    std::fs::write(dir.join("firebreak.yaml"), config).unwrap();
    for r in runbooks {
        std::fs::write(dir.join(format!("runbooks/{r}.yaml")), runbook(r)).unwrap();
    }
}

#[test]
fn the_config_is_the_flag_else_the_environment_else_the_current_directory_and_is_said() {
    let root = tempfile::tempdir().unwrap();
    let here = root.path().join("here");
    let there = root.path().join("there");
    let flagged = root.path().join("flagged");
    let empty = root.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    config_dir(&here, "store: {url: 'sqlite://fb.db'}\n", &["one"]);
    config_dir(
        &there,
        "store: {url: 'sqlite://fb.db'}\n",
        &["two", "three"],
    );
    config_dir(
        &flagged,
        "store: {url: 'sqlite://fb.db'}\n",
        &["a", "b", "c", "d"],
    );
    let env_config = there.join("firebreak.yaml");
    let flag_config = flagged.join("firebreak.yaml");
    let flag = flag_config.to_str().unwrap();

    let (code, out, err) = firebreak(&["validate"], &here, None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(
            "ok: config firebreak.yaml (found in the current directory), 0 rule file(s) with 0 group(s), 1 runbook(s)"
        ),
        "{out}"
    );

    let (code, out, err) = firebreak(&["validate"], &here, Some(&env_config));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(&format!(
            "ok: config {} (from FIREBREAK_CONFIG), 0 rule file(s) with 0 group(s), 2 runbook(s)",
            env_config.display()
        )),
        "the environment wins over ./firebreak.yaml: {out}"
    );

    let (code, out, err) = firebreak(&["validate", "-c", flag], &here, Some(&env_config));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(&format!(
            "ok: config {flag}, 0 rule file(s) with 0 group(s), 4 runbook(s)"
        )),
        "-c wins over both: {out}"
    );

    let (code, out, err) = firebreak(&["validate"], &empty, None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(
            "ok: config built-in defaults (no -c, FIREBREAK_CONFIG or ./firebreak.yaml"
        ),
        "{out}"
    );

    // Commands whose output is their own say it on stderr, in one line.
    let (code, out, err) = firebreak(&["plan", "one"], &here, None);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        err.lines().next(),
        Some("config: firebreak.yaml (found in the current directory)"),
        "{err}"
    );
    assert!(out.starts_with("plan of runbook one "), "{out}");
    let (_, _, err) = firebreak(&["plan", "two"], &here, Some(&env_config));
    assert_eq!(
        err.lines().next(),
        Some(format!("config: {} (from FIREBREAK_CONFIG)", env_config.display()).as_str()),
        "{err}"
    );
    let (code, out, err) = firebreak(&["timeline"], &empty, None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.starts_with("config: built-in defaults"), "{err}");

    // A variable naming a file that is not there is an error, not a
    // silent fall back to another config.
    let missing = root.path().join("nope.yaml");
    let (code, out, err) = firebreak(&["validate"], &here, Some(&missing));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!("{}: cannot read config", missing.display())),
        "{err}"
    );
    assert!(!err.contains("cannot read file"), "{err}");
}

/// Rule and runbook paths, the SQLite store and secret files in a config
/// are its directory's, whatever directory firebreak runs in.
#[test]
fn relative_paths_are_the_config_files_directorys() {
    let root = tempfile::tempdir().unwrap();
    let conf = root.path().join("etc/firebreak");
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir_all(conf.join("rb")).unwrap();
    std::fs::create_dir_all(conf.join("state")).unwrap();
    std::fs::create_dir_all(conf.join("secrets")).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(conf.join("rb/one.yaml"), runbook("one")).unwrap();
    std::fs::write(conf.join("secrets/token"), "t0ken\n").unwrap();
    std::fs::write(
        conf.join("fb.yaml"),
        "runbooks: {paths: [rb]}\nrules: {paths: []}\nsecrets:\n  api: {file: secrets/token}\nserver: {token_secret: api}\nstore: {url: 'sqlite://state/fb.db'}\n",
    )
    .unwrap();
    let cfg = conf.join("fb.yaml");
    let cfg = cfg.to_str().unwrap();

    let (code, out, err) = firebreak(&["validate", "-c", cfg], &elsewhere, None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(&format!(
            "ok: config {cfg}, 0 rule file(s) with 0 group(s), 1 runbook(s), 1 secret(s) read"
        )),
        "{out}"
    );
    let (code, out, err) = firebreak(&["timeline", "-c", cfg], &elsewhere, None);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.trim(),
        format!("no incidents in sqlite://{}/state/fb.db", conf.display())
    );
    assert!(conf.join("state/fb.db").exists());
    assert!(!elsewhere.join("state").exists());
}

/// A config of only `store` and `server` starts, from any directory: no
/// `alerts/` or `runbooks/` beside it means none loaded, said, not an
/// error about the current directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_config_with_only_store_and_server_starts() {
    let root = tempfile::tempdir().unwrap();
    let conf = root.path().join("conf");
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let port = free_port();
    std::fs::write(
        conf.join("firebreak.yaml"),
        format!("store:\n  url: sqlite://fb.db\nserver:\n  listen: 127.0.0.1:{port}\n"),
    )
    .unwrap();
    let cfg = conf.join("firebreak.yaml");

    let (code, out, err) = firebreak(&["validate", "-c", cfg.to_str().unwrap()], &elsewhere, None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "no alert rules loaded: `rules.paths` is not set and {}/alerts is not there",
            conf.display()
        )),
        "{out}"
    );

    let bot = Command::new(env!("CARGO_BIN_EXE_firebreak"))
        .args(["run", "-c", cfg.to_str().unwrap()])
        .current_dir(&elsewhere)
        .env_remove("FIREBREAK_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = firebreak::net::client().unwrap();
    let ready = eventually(20, || async {
        let r = http
            .get(format!("http://127.0.0.1:{port}/-/ready"))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    let (status, _out, err) = stop_bot(bot);
    assert!(ready.is_some(), "it never became ready:\n{err}");
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{err}");
    assert!(err.contains(&format!("config: {}", cfg.display())), "{err}");
    assert!(
        err.contains(&format!(
            "no runbooks or checklists loaded: `runbooks.paths` is not set and {}/runbooks is not there",
            conf.display()
        )),
        "{err}"
    );
    assert!(!err.contains("cannot read"), "{err}");
    assert!(
        conf.join("fb.db").exists(),
        "the store is beside the config"
    );
    assert!(!elsewhere.join("fb.db").exists());
}
