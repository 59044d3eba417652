//! `firebreak test rules` and `firebreak test runbooks`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::files::config_or_default;

/// `firebreak test runbooks`: one block per file, a line per case.
pub(crate) async fn test_runbooks(
    paths: &[PathBuf],
    config: Option<&std::path::Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use firebreak::stub_runs;
    let config = config_or_default(config)?;
    let (paths, absent): (Vec<PathBuf>, _) = if paths.is_empty() {
        firebreak::load::present(
            &config.runbook_paths,
            config.runbook_paths_defaulted,
            "runbooks.paths",
        )
    } else {
        (paths.to_vec(), Vec::new())
    };
    let mut errs = firebreak::diag::Diagnostics::new();
    let files = stub_runs::find_test_files(&paths, &mut errs);
    if !json {
        for e in errs.iter() {
            eprintln!("{e}");
        }
    }
    let mut general: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    if files.is_empty() {
        let looked = if paths.is_empty() {
            let absent: Vec<&str> = absent.iter().map(|(_, p)| p.as_str()).collect();
            format!(
                ": `runbooks.paths` is not set and {} is not there",
                absent.join(", ")
            )
        } else {
            let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            format!(" under {}", paths.join(", "))
        };
        let none = format!("no runbook test files (`kind: runbook_test`){looked}");
        if !json {
            eprintln!("{none}");
            return Ok(ExitCode::FAILURE);
        }
        general.push(none);
    }
    let (mut passed, mut failed) = (0, 0);
    let mut bad_files = !errs.is_empty() || files.is_empty();
    let mut out = Vec::new();
    for (name, text) in &files {
        if !json {
            println!("Unit Testing:  {name}");
        }
        let loaded = match stub_runs::load(name, text, &config) {
            Ok(l) => l,
            Err(d) => {
                if json {
                    out.push(serde_json::json!({
                        "file": name,
                        "errors": d.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                        "cases": [],
                    }));
                } else {
                    println!("  FAILED: the file is invalid:");
                    for e in d.iter() {
                        println!("    {e}");
                    }
                    println!();
                }
                bad_files = true;
                continue;
            }
        };
        let mut cases = Vec::new();
        for r in stub_runs::run_file(&loaded, &config).await {
            if r.failures.is_empty() {
                passed += 1;
            } else {
                failed += 1;
            }
            if json {
                cases.push(serde_json::json!({
                    "name": r.name,
                    "passed": r.failures.is_empty(),
                    "failures": r.failures.iter().map(|f| serde_json::json!({
                        "kind": f.kind(),
                        "message": f.to_string(),
                    })).collect::<Vec<_>>(),
                }));
            } else {
                print!("{r}");
            }
        }
        if json {
            out.push(serde_json::json!({"file": name, "errors": [], "cases": cases}));
        } else {
            println!();
        }
    }
    if json {
        let report = serde_json::json!({
            "ok": failed == 0 && !bad_files,
            "passed": passed,
            "failed": failed,
            "errors": general,
            "files": out,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{passed} passed, {failed} failed");
    }
    Ok(if failed == 0 && !bad_files {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `firebreak test rules`: promtool's report layout, one block per file.
pub(crate) fn test_rules(files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    use firebreak::rules::unittest;
    let mut failed = false;
    let mut out = Vec::new();
    for f in files {
        if !json {
            println!("Unit Testing:  {}", f.display());
        }
        let (tf, groups, warnings) = match firebreak::load::rule_test_file(f) {
            Ok(x) => x,
            Err(d) => {
                if json {
                    out.push(serde_json::json!({
                        "file": f.display().to_string(),
                        "ok": false,
                        "errors": d.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
                        "warnings": [],
                        "groups": [],
                    }));
                } else {
                    eprintln!("  FAILED:");
                    for e in d.iter() {
                        eprintln!("    {e}");
                    }
                    println!();
                }
                failed = true;
                continue;
            }
        };
        let reports = unittest::run_test_file(&tf, &groups);
        let ok = reports.iter().all(|r| r.failures.is_empty());
        failed |= !ok;
        if json {
            out.push(serde_json::json!({
                "file": f.display().to_string(),
                "ok": ok,
                "errors": [],
                "warnings": warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
                "groups": reports.iter().map(|r| serde_json::json!({
                    "name": r.name,
                    "failures": r.failures.iter().map(|x| serde_json::json!({
                        "kind": x.kind(),
                        "message": x.to_string(),
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            }));
            continue;
        }
        for w in warnings {
            eprintln!("  WARNING: {w}");
        }
        if ok {
            println!("  SUCCESS");
        } else {
            eprintln!("  FAILED:");
            for r in reports.iter().filter(|r| !r.failures.is_empty()) {
                eprint!("{r}");
            }
        }
        println!();
    }
    if json {
        let report = serde_json::json!({"ok": !failed, "files": out});
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
