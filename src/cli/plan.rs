//! `firebreak plan`: what a run of a runbook would do, rendered, touching
//! nothing.

use std::process::ExitCode;

use anyhow::Context;

use super::files::load_or_builtin;

/// `firebreak plan`.
pub(crate) fn plan(
    runbook: &str,
    inputs: &[String],
    alert: Option<&std::path::Path>,
    config: Option<&std::path::Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use firebreak::runbook::plan::{AlertInput, build_plan, find_runbook};
    use std::collections::BTreeMap;
    let loaded = match load_or_builtin(config) {
        Ok(l) => l,
        Err(d) => {
            eprintln!("{d}");
            eprintln!("firebreak plan: {} error(s) in the loaded files", d.len());
            return Ok(ExitCode::FAILURE);
        }
    };
    let is_file = runbook.ends_with(".yaml")
        || runbook.ends_with(".yml")
        || std::path::Path::new(runbook).is_file();
    let from_file;
    let rb = if is_file {
        let text = std::fs::read_to_string(runbook)
            .with_context(|| format!("reading runbook {runbook}"))?;
        let env = firebreak::load::check_env(loaded.config.targets.keys().cloned());
        match firebreak::runbook::parse_runbook(runbook, &text, &env) {
            Ok(r) => {
                from_file = r;
                &from_file
            }
            Err(d) => {
                eprintln!("{d}");
                return Ok(ExitCode::FAILURE);
            }
        }
    } else {
        find_runbook(&loaded.runbooks, runbook)?
    };
    let mut given = BTreeMap::new();
    for kv in inputs {
        let Some((k, v)) = kv.split_once('=') else {
            anyhow::bail!(
                "input {kv:?} is not NAME=VALUE; runbook {} takes: {}",
                rb.name,
                rb.inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        given.insert(k.trim().to_owned(), serde_json::Value::String(v.to_owned()));
    }
    let alert = match alert {
        None => None,
        Some(p) => {
            let name = p.display().to_string();
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading alert {name}"))?;
            match firebreak::diag::from_yaml::<AlertInput>(&name, &text) {
                Ok(a) => Some(a),
                Err(d) => {
                    eprintln!(
                        "{d}; expected {{labels: {{alertname: ..., ...}}, annotations: {{...}}, value: N}}"
                    );
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    };
    let targets = loaded
        .config
        .targets
        .iter()
        .map(|(k, t)| (k.clone(), t.url.to_string()))
        .collect();
    let now = firebreak::clock::Clock::system().now();
    let plan = build_plan(rb, alert.as_ref(), &given, &targets, now)
        .with_context(|| format!("cannot plan runbook {}", rb.name))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&plan.json())?);
    } else {
        print!("{plan}");
    }
    Ok(ExitCode::SUCCESS)
}
