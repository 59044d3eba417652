//! `firebreak init`: a starter config, rule and runbook, with their tests,
//! written into a directory that `firebreak validate` then accepts. The
//! files are the ones under `src/cli/init/`, which a test validates as
//! they are, so what `init` writes cannot rot.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

/// Every file `init` writes, by its path under the directory.
const FILES: &[(&str, &str)] = &[
    ("firebreak.yaml", include_str!("init/firebreak.yaml")),
    (
        "alerts/starter.rules.yml",
        include_str!("init/alerts/starter.rules.yml"),
    ),
    (
        "alerts/starter.rules.test.yml",
        include_str!("init/alerts/starter.rules.test.yml"),
    ),
    (
        "runbooks/starter.yaml",
        include_str!("init/runbooks/starter.yaml"),
    ),
    (
        "runbooks/tests/starter.test.yaml",
        include_str!("init/runbooks/tests/starter.test.yaml"),
    ),
];

/// The URLs the starter config names, as written in it.
const PROMETHEUS: &str = "'http://127.0.0.1:9090'";
const PLATFORM: &str = "'http://127.0.0.1:8080'";

/// `firebreak init DIR`: refuses, writing nothing, when any file is there.
pub(crate) fn init(
    dir: &Path,
    prometheus: Option<&reqwest::Url>,
    platform: Option<&reqwest::Url>,
) -> anyhow::Result<ExitCode> {
    let config = starter_config(prometheus, platform)?;
    let planned: Vec<(PathBuf, &str)> = FILES
        .iter()
        .map(|(rel, text)| {
            let text = if *rel == "firebreak.yaml" {
                config.as_str()
            } else {
                text
            };
            (dir.join(rel), text)
        })
        .collect();
    let there: Vec<String> = planned
        .iter()
        .filter(|(p, _)| p.symlink_metadata().is_ok())
        .map(|(p, _)| p.display().to_string())
        .collect();
    if !there.is_empty() {
        eprintln!(
            "firebreak init: not writing anything: {} already there ({}); init never overwrites, so move them or pick another directory",
            if there.len() == 1 {
                "this file is"
            } else {
                "these files are"
            },
            there.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    for (path, text) in &planned {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        // create_new: a file that appeared since the check is left alone.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        std::io::Write::write_all(&mut f, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    let c = dir.join("firebreak.yaml");
    let c = c.display();
    println!(
        "\nNext:\n  firebreak validate -c {c}          # every file, with file:line:col on errors\n  firebreak test rules {}\n  firebreak test runbooks -c {c}\n  firebreak plan restart-instance instance=api-1:8080 -c {c}\n  firebreak run -c {c}               # alerts and runs on this terminal until you add Slack",
        dir.join("alerts/starter.rules.test.yml").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The starter config with the URLs given put in, each checked and
/// written as a quoted YAML string so no value can add a field.
fn starter_config(
    prometheus: Option<&reqwest::Url>,
    platform: Option<&reqwest::Url>,
) -> anyhow::Result<String> {
    let mut text = FILES[0].1.to_owned();
    for (placeholder, given, flag) in [
        (PROMETHEUS, prometheus, "--prometheus"),
        (PLATFORM, platform, "--platform"),
    ] {
        let Some(url) = given else { continue };
        anyhow::ensure!(
            matches!(url.scheme(), "http" | "https") && url.has_host(),
            "{flag} wants an http:// or https:// URL with a host, got {url}"
        );
        anyhow::ensure!(
            text.contains(placeholder),
            "the starter config no longer names {placeholder}"
        );
        text = text.replace(placeholder, &yaml_single_quoted(url.as_str()));
    }
    Ok(text)
}

fn yaml_single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_urls_given_replace_the_starters_and_stay_one_value() {
        let prom = reqwest::Url::parse("https://prom.example:9090/sub?x='a'").unwrap();
        let text = starter_config(Some(&prom), None).unwrap();
        assert!(
            text.contains("url: 'https://prom.example:9090/sub?x=%27a%27'"),
            "{text}"
        );
        assert!(
            text.contains(PLATFORM),
            "the platform default stays: {text}"
        );
        let bad = reqwest::Url::parse("file:///etc/passwd").unwrap();
        let e = starter_config(None, Some(&bad)).unwrap_err().to_string();
        assert!(e.contains("--platform wants an http"), "{e}");
    }

    #[test]
    fn every_placeholder_is_in_the_starter_config() {
        for p in [PROMETHEUS, PLATFORM] {
            assert_eq!(FILES[0].1.matches(p).count(), 1, "{p}");
        }
    }
}
