//! `firebreak validate [PATHS]`: load config, alert rules and runbooks the
//! way the daemon would and report every problem with its location.

use std::path::{Path, PathBuf};

use crate::config::{Config, DEFAULT_SIM_ADDR};
use crate::diag::{Diagnostic, Diagnostics};
use crate::load::{ConfigSource, FileKind, Files, classify, load, read_whole, read_yaml_files};

#[derive(Debug, Default)]
pub struct Report {
    pub config_file: Option<String>,
    /// Which config was checked and how it was found, for the summary.
    pub config: String,
    /// What was not loaded though nothing is wrong (see
    /// [`Files::notes`]).
    pub notes: Vec<String>,
    pub rule_files: usize,
    pub rule_groups: usize,
    pub runbooks: usize,
    pub checklists: usize,
    pub skipped_rule_tests: usize,
    /// Runbook test files checked (format, and against their runbook).
    pub runbook_tests: usize,
    /// Secrets resolved (`None`: not checked, `--offline`).
    pub secrets_checked: Option<usize>,
    pub diagnostics: Diagnostics,
}

impl Report {
    /// Nothing but warnings (or nothing at all) was found.
    pub fn ok(&self) -> bool {
        self.diagnostics.iter().all(|d| d.warning)
    }

    fn warnings(&self) -> String {
        match self.diagnostics.iter().filter(|d| d.warning).count() {
            0 => String::new(),
            n => format!("; {n} warning(s)"),
        }
    }

    fn notes(&self) -> String {
        self.notes.iter().map(|n| format!("; {n}")).collect()
    }

    fn secrets(&self) -> String {
        match self.secrets_checked {
            None => "; secrets not read (--offline)".into(),
            Some(0) => String::new(),
            Some(n) => format!(", {n} secret(s) read"),
        }
    }

    /// The report as `firebreak validate --json` prints it (the shape is
    /// in docs/json.md): counts, notes and every diagnostic with its place.
    pub fn json(&self) -> serde_json::Value {
        let diagnostics: Vec<_> = self
            .diagnostics
            .iter()
            .map(|d| {
                serde_json::json!({
                    "file": d.file,
                    "line": d.pos.map(|p| p.line),
                    "column": d.pos.map(|p| p.col),
                    "field": d.field,
                    "message": d.message,
                    "severity": if d.warning { "warning" } else { "error" },
                })
            })
            .collect();
        serde_json::json!({
            "ok": self.ok(),
            "config": {"file": self.config_file, "found": self.config},
            "rule_files": self.rule_files,
            "rule_groups": self.rule_groups,
            "runbooks": self.runbooks,
            "checklists": self.checklists,
            "runbook_tests": self.runbook_tests,
            "rule_tests_left": self.skipped_rule_tests,
            "secrets_read": self.secrets_checked,
            "notes": self.notes,
            "diagnostics": diagnostics,
            "summary": self.summary(),
        })
    }

    pub fn summary(&self) -> String {
        let cfg = &self.config;
        if self.ok() {
            format!(
                "ok: config {cfg}, {} rule file(s) with {} group(s), {} runbook(s){}{}{}",
                self.rule_files,
                self.rule_groups,
                self.runbooks,
                if self.checklists > 0 {
                    format!(", {} checklist(s)", self.checklists)
                } else {
                    String::new()
                },
                if self.runbook_tests > 0 {
                    format!(", {} runbook test file(s)", self.runbook_tests)
                } else {
                    String::new()
                },
                if self.skipped_rule_tests > 0 {
                    format!(
                        "; {} rule test file(s) left to `firebreak test rules`",
                        self.skipped_rule_tests
                    )
                } else {
                    String::new()
                },
            ) + &self.secrets()
                + &self.notes()
                + &self.warnings()
        } else {
            let errors: Vec<&Diagnostic> = self.diagnostics.iter().filter(|d| !d.warning).collect();
            let files: std::collections::BTreeSet<&str> =
                errors.iter().map(|d| d.file.as_str()).collect();
            format!(
                "{} error(s) in {} file(s); config {cfg}",
                errors.len(),
                files.len()
            ) + &self.warnings()
        }
    }
}

/// Validates `paths` (files or directories; default: the config's alert
/// and runbook paths). The config is `found` when given with `-c`, else a
/// config file among `paths`, else `found` (`FIREBREAK_CONFIG` or
/// `./firebreak.yaml`), else the built-in defaults; its relative paths are
/// its directory's. Unless `offline`, every secret the config defines is
/// read as a start would read it: one the config uses that does not
/// resolve is an error, naming what needs it; one it does not use is a
/// warning.
pub fn validate(found: &ConfigSource, paths: &[PathBuf], offline: bool) -> Report {
    let mut report = Report {
        config: ConfigSource::Builtin.to_string(),
        ..Report::default()
    };
    let mut errs = Diagnostics::new();
    let files = read_yaml_files(paths, &mut errs);
    let (config_files, other): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|(_, t)| classify(t) == FileKind::Config);

    let mut config_sources: Vec<(String, String, ConfigSource)> = Vec::new();
    let named_here = !config_files.is_empty();
    let chosen = match found {
        ConfigSource::Env(_) | ConfigSource::Cwd(_) if named_here => None,
        other => other.path(),
    };
    // The config that was to be used, read or not: what a broken one's
    // notes are about.
    let mut first = None;
    if let Some(p) = chosen {
        first = Some(p.display().to_string());
        report.config = found.to_string();
        match read_whole(p, "config") {
            Ok((name, t)) => config_sources.push((name, t, found.clone())),
            Err(d) => errs.extend(d),
        }
    }
    for (name, text) in config_files {
        let source = ConfigSource::Flag(PathBuf::from(&name));
        if first.is_none() {
            first = Some(name.clone());
            report.config = source.to_string();
        }
        config_sources.push((name, text, source));
    }

    let mut config = None;
    for (name, text, source) in &config_sources {
        let dir = Path::new(name).parent().unwrap_or(Path::new(""));
        match Config::load(name, text) {
            Ok(c) => {
                if config.is_none() {
                    report.config_file = Some(name.clone());
                    report.config = source.to_string();
                    config = Some(c.rebased(dir));
                }
            }
            Err(e) => errs.extend(e),
        }
    }
    let failed = first.filter(|_| config.is_none());
    if let (Some(c), Some(file)) = (&config, &report.config_file) {
        if offline {
            report.secrets_checked = None;
        } else {
            report.secrets_checked = Some(c.secrets.len());
            for m in crate::secrets::check(c) {
                let field = format!("secrets.{}", m.name);
                let d = if m.used_by.is_empty() {
                    Diagnostic {
                        warning: true,
                        ..Diagnostic::new(
                            file.clone(),
                            None,
                            field,
                            format!("{} (used nowhere)", m.why),
                        )
                    }
                } else {
                    Diagnostic::new(
                        file.clone(),
                        None,
                        field,
                        format!(
                            "{}; needed by {} (`--offline` skips reading secrets, on a machine that has none)",
                            m.why,
                            m.used_by.join(", ")
                        ),
                    )
                };
                errs.push(d);
            }
        }
    } else {
        report.secrets_checked = Some(0);
    }
    let config = config.unwrap_or_else(|| Config::for_simulator(DEFAULT_SIM_ADDR));

    let other = if !paths.is_empty() {
        other
    } else if let Some(name) = &failed {
        // Its paths are not known while it has errors: reading the
        // defaults instead would add an error for every one not there.
        errs.push(broken_config(
            name,
            "its rules and runbooks were not checked because this config has errors; fix them, or name the files: `firebreak validate -c FILE PATHS`",
        ));
        Vec::new()
    } else {
        let (files, read_errors) = Files::read(&config);
        errs.extend(read_errors);
        report.notes = files.notes();
        [files.alerts, files.runbooks].concat()
    };
    report.skipped_rule_tests = other
        .iter()
        .filter(|(_, t)| classify(t) == FileKind::RuleTest)
        .count();
    // Runbooks are checked against the config's targets; if the config
    // itself is broken, say so rather than flag every http step.
    if let Some(name) = failed.as_ref().filter(|_| !paths.is_empty()) {
        errs.push(broken_config(
            name,
            "runbooks were checked against the built-in defaults because this config has errors",
        ));
    }
    for (name, text) in other
        .iter()
        .filter(|(_, t)| classify(t) == FileKind::RunbookTest)
    {
        report.runbook_tests += 1;
        if let Err(e) = crate::stub_runs::load(name, text, &config) {
            errs.extend(e);
        }
    }
    match load(config, &other, &[]) {
        Ok(l) => {
            report.rule_files = l.rule_files;
            report.rule_groups = l.rule_groups.len();
            report.runbooks = l.runbooks.len();
            report.checklists = l.checklists.len();
            for rb in &l.runbooks {
                errs.extend(rb.warnings.clone());
            }
            for c in &l.checklists {
                errs.extend(c.warnings.clone());
            }
        }
        Err(e) => errs.extend(e),
    }
    report.diagnostics = errs.sorted();
    report
}

/// What a broken config meant for the other files: a warning, since the
/// config's own errors already fail the check.
fn broken_config(file: &str, what: &str) -> Diagnostic {
    Diagnostic {
        warning: true,
        ..Diagnostic::new(file, None, "", what)
    }
}
