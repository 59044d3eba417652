//! `firebreak test rules` against `promtool test rules` (Prometheus 2.42):
//! every `*.test.yml` under `alerts/`, `tests/ruletests/` and
//! `deploy/monitoring/` must pass or fail in both, and files named
//! `*_fails*` must fail in both. The alerts on firebreak itself must also
//! pass `promtool check rules` and name only metrics the bot exports.
//!
//! Skips with a message when promtool is missing, except under CI (`CI`
//! set), where a missing promtool is a failure: the point of the job is
//! the comparison.

use std::path::{Path, PathBuf};
use std::process::Command;

fn test_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["alerts", "tests/ruletests", "deploy/monitoring"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.to_string_lossy().ends_with(".test.yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Exit code and combined output of one tool on one file.
fn run(cmd: &mut Command) -> (i32, String) {
    let o = cmd.output().expect("run the test tool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), text)
}

#[test]
fn firebreak_and_promtool_agree_on_every_rule_test_file() {
    if Command::new("promtool").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not installed, and CI is set: install Prometheus 2.42 (Debian's prometheus package)"
        );
        eprintln!("skipping: promtool is not on PATH (install Debian's prometheus package)");
        return;
    }
    let files = test_files();
    assert!(files.len() >= 5, "rule test files not found: {files:?}");
    let mut disagreements = Vec::new();
    for f in &files {
        let dir = f.parent().unwrap();
        let name = f.file_name().unwrap();
        let (p, ptext) = run(Command::new("promtool")
            .args(["test", "rules"])
            .arg(name)
            .current_dir(dir));
        let (b, btext) = run(Command::new(env!("CARGO_BIN_EXE_firebreak"))
            .args(["test", "rules"])
            .arg(name)
            .current_dir(dir));
        let should_fail = name.to_string_lossy().contains("_fails");
        if p != b || (should_fail && (p == 0 || b == 0)) || (!should_fail && p != 0) {
            disagreements.push(format!(
                "{}: promtool exit {p}, firebreak exit {b}{}\n--- promtool:\n{ptext}\n--- firebreak:\n{btext}",
                f.display(),
                if should_fail { " (must fail in both)" } else { "" }
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n\n"));
}

/// The alerts shipped for watching firebreak itself
/// (`deploy/monitoring/firebreak-alerts.yml`) are valid for Prometheus and
/// read only metrics firebreak exports, so renaming one breaks this test,
/// not someone's pager.
#[test]
fn the_alerts_on_firebreak_itself_check_and_name_real_metrics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = root.join("deploy/monitoring/firebreak-alerts.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    firebreak::rules::parse_rule_file("firebreak-alerts.yml", &text).unwrap();
    assert_names_exported_metrics(&text, 5);
    if Command::new("promtool").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not installed, and CI is set"
        );
        eprintln!("skipping promtool check rules: promtool is not on PATH");
        return;
    }
    let (code, out) = run(Command::new("promtool").args(["check", "rules"]).arg(&file));
    assert_eq!(code, 0, "{out}");
}

/// Every `firebreak_*` name in `text` is a metric firebreak exports (a
/// histogram's `_bucket`, `_sum` and `_count` series included).
fn assert_names_exported_metrics(text: &str, at_least: usize) {
    let exported = firebreak::metrics::get().render();
    let mut named: Vec<&str> = text
        .match_indices("firebreak_")
        .filter(|(i, _)| {
            // A name, not the end of another word (`my_firebreak_x`).
            !text[..*i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .map(|(i, _)| {
            let rest = &text[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    named.sort_unstable();
    named.dedup();
    assert!(named.len() >= at_least, "{named:?}");
    for m in named {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let b = m.strip_suffix(suffix)?;
                exported
                    .contains(&format!("# TYPE {b} histogram"))
                    .then_some(b)
            })
            .unwrap_or(m);
        assert!(
            exported.contains(&format!("# TYPE {base} ")),
            "{m} is not a metric firebreak exports"
        );
    }
}

/// The Grafana dashboard for the bot's own metrics charts only metrics it
/// exports, through a data source variable rather than one team's uid.
#[test]
fn the_dashboard_names_real_metrics_and_no_fixed_datasource() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text =
        std::fs::read_to_string(root.join("deploy/monitoring/firebreak-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let vars = dash["templating"]["list"].as_array().expect("variables");
    assert!(
        vars.iter().any(|v| v["type"] == "datasource"),
        "no data source variable"
    );
    let mut uids = Vec::new();
    fn walk<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(u) = m
                    .get("datasource")
                    .and_then(|ds| ds.get("uid"))
                    .and_then(|u| u.as_str())
                {
                    out.push(u);
                }
                m.values().for_each(|x| walk(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(&dash, &mut uids);
    for u in uids {
        // `-- Grafana --` is Grafana's own, for annotations: every
        // installation has it.
        assert!(
            u.starts_with("${") || u == "-- Grafana --",
            "a fixed data source uid {u:?}"
        );
    }
    assert_names_exported_metrics(&text, 20);
}
