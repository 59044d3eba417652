//! `firebreak test rules` and `firebreak test runbooks`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::files::config_or_default;

/// `firebreak test runbooks`: one block per file, a line per case.
pub(crate) async fn test_runbooks(
    paths: &[PathBuf],
    config: Option<&std::path::Path>,
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
    for e in errs.iter() {
        eprintln!("{e}");
    }
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
        eprintln!("no runbook test files (`kind: runbook_test`){looked}");
        return Ok(ExitCode::FAILURE);
    }
    let (mut passed, mut failed) = (0, 0);
    let mut bad_files = !errs.is_empty();
    for (name, text) in &files {
        println!("Unit Testing:  {name}");
        let loaded = match stub_runs::load(name, text, &config) {
            Ok(l) => l,
            Err(d) => {
                println!("  FAILED: the file is invalid:");
                for e in d.iter() {
                    println!("    {e}");
                }
                println!();
                bad_files = true;
                continue;
            }
        };
        for r in stub_runs::run_file(&loaded, &config).await {
            if r.failures.is_empty() {
                passed += 1;
            } else {
                failed += 1;
            }
            print!("{r}");
        }
        println!();
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 && !bad_files {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `firebreak test rules`: promtool's report layout, one block per file.
pub(crate) fn test_rules(files: &[PathBuf]) -> ExitCode {
    use firebreak::rules::unittest;
    let mut failed = false;
    for f in files {
        println!("Unit Testing:  {}", f.display());
        let (tf, groups, warnings) = match firebreak::load::rule_test_file(f) {
            Ok(x) => x,
            Err(d) => {
                eprintln!("  FAILED:");
                for e in d.iter() {
                    eprintln!("    {e}");
                }
                println!();
                failed = true;
                continue;
            }
        };
        for w in warnings {
            eprintln!("  WARNING: {w}");
        }
        let reports = unittest::run_test_file(&tf, &groups);
        if reports.iter().all(|r| r.failures.is_empty()) {
            println!("  SUCCESS");
        } else {
            failed = true;
            eprintln!("  FAILED:");
            for r in reports.iter().filter(|r| !r.failures.is_empty()) {
                eprint!("{r}");
            }
        }
        println!();
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
