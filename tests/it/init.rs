//! `firebreak init` through the real binary: what it writes validates and
//! its tests pass, it never overwrites, and the URLs given land in the
//! config as values.

use std::path::Path;

fn firebreak(args: &[&str], dir: &Path) -> (i32, String) {
    crate::common::firebreak_in(dir, args)
}

#[test]
fn init_writes_a_setup_that_validates_and_whose_tests_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (code, out) = firebreak(
        &[
            "init",
            "night",
            "--prometheus",
            "http://prom.internal:9090",
            "--platform",
            "https://admin.internal/",
        ],
        d,
    );
    assert_eq!(code, 0, "{out}");
    for f in [
        "firebreak.yaml",
        "alerts/starter.rules.yml",
        "alerts/starter.rules.test.yml",
        "runbooks/starter.yaml",
        "runbooks/tests/starter.test.yaml",
    ] {
        assert!(d.join("night").join(f).is_file(), "{f} not written:\n{out}");
        assert!(out.contains(&format!("wrote night/{f}")), "{out}");
    }
    let config = std::fs::read_to_string(d.join("night/firebreak.yaml")).unwrap();
    assert!(
        config.contains("url: 'http://prom.internal:9090/'"),
        "{config}"
    );
    assert!(
        config.contains("url: 'https://admin.internal/'"),
        "{config}"
    );

    let (code, out) = firebreak(&["validate", "-c", "night/firebreak.yaml", "--offline"], d);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 runbook(s)"), "{out}");
    assert!(!out.contains("warning"), "{out}");
    let (code, out) = firebreak(&["test", "rules", "night/alerts/starter.rules.test.yml"], d);
    assert_eq!(code, 0, "{out}");
    let (code, out) = firebreak(&["test", "runbooks", "-c", "night/firebreak.yaml"], d);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 passed, 0 failed"), "{out}");
    let (code, out) = firebreak(
        &[
            "plan",
            "restart-instance",
            "instance=api-1:8080",
            "-c",
            "night/firebreak.yaml",
        ],
        d,
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("https://admin.internal/api/v1/instances/api-1%3A8080/restart"),
        "{out}"
    );
}

#[test]
fn init_refuses_to_overwrite_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir_all(d.join("runbooks")).unwrap();
    std::fs::write(d.join("runbooks/starter.yaml"), "mine\n").unwrap();
    let (code, out) = firebreak(&["init"], d);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not writing anything"), "{out}");
    assert!(out.contains("./runbooks/starter.yaml"), "{out}");
    assert_eq!(
        std::fs::read_to_string(d.join("runbooks/starter.yaml")).unwrap(),
        "mine\n"
    );
    assert!(!d.join("firebreak.yaml").exists(), "wrote despite refusing");

    let (code, out) = firebreak(&["init", "--platform", "file:///etc/passwd", "x"], d);
    assert_ne!(code, 0, "{out}");
    assert!(!d.join("x").exists());
}

/// The starter files as they are in the repository (what `init` embeds)
/// validate: the docs may quote them.
#[test]
fn the_starter_files_in_the_repository_validate() {
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli/init");
    crate::docs::copy_dir(&src, tmp.path());
    let (code, out) = firebreak(
        &["validate", "-c", "firebreak.yaml", "--offline"],
        tmp.path(),
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_grammar() {
    let d = std::env::temp_dir();
    let (code, out) = firebreak(&["completions", "bash"], &d);
    assert_eq!(code, 0, "{out}");
    for verb in ["demo", "validate", "timeline", "init"] {
        assert!(out.contains(verb), "bash completion lacks {verb}");
    }
    let (code, out) = firebreak(&["completions", "zsh"], &d);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("#compdef firebreak"), "{out}");
    let (code, out) = firebreak(&["man"], &d);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(".TH firebreak 1"),
        "{}",
        &out[..out.len().min(300)]
    );
    assert!(out.contains("validate"), "the man page lists the verbs");
}
