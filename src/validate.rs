//! `firebreak validate [PATHS]`: load config, alert rules and runbooks the
//! way the daemon would and report every problem with its location.

use std::path::{Path, PathBuf};

use crate::config::{Config, DEFAULT_SIM_ADDR};
use crate::diag::{Diagnostic, Diagnostics};
use crate::load::{FileKind, classify, load, read_yaml_files};

#[derive(Debug, Default)]
pub struct Report {
    pub config_file: Option<String>,
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

    fn secrets(&self) -> String {
        match self.secrets_checked {
            None => "; secrets not read (--offline)".into(),
            Some(0) => String::new(),
            Some(n) => format!(", {n} secret(s) read"),
        }
    }

    pub fn summary(&self) -> String {
        let cfg = self
            .config_file
            .as_deref()
            .map_or_else(|| "built-in defaults".to_owned(), |c| c.to_owned());
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
                + &self.warnings()
        } else {
            let errors: Vec<&Diagnostic> = self.diagnostics.iter().filter(|d| !d.warning).collect();
            let files: std::collections::BTreeSet<&str> =
                errors.iter().map(|d| d.file.as_str()).collect();
            format!("{} error(s) in {} file(s)", errors.len(), files.len()) + &self.warnings()
        }
    }
}

/// Validates `paths` (files or directories; default: the config's alert
/// and runbook paths). The config is `config_path`, else a config file
/// among `paths`, else `./firebreak.yaml` if present, else the built-in
/// defaults. Unless `offline`, every secret the config defines is read as
/// a start would read it: one the config uses that does not resolve is an
/// error, naming what needs it; one it does not use is a warning.
pub fn validate(config_path: Option<&Path>, paths: &[PathBuf], offline: bool) -> Report {
    let mut report = Report::default();
    let mut errs = Diagnostics::new();
    let files = read_yaml_files(paths, &mut errs);
    let (config_files, other): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|(_, t)| classify(t) == FileKind::Config);

    let mut config_sources: Vec<(String, String)> = Vec::new();
    match config_path {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => config_sources.push((p.display().to_string(), t)),
            Err(e) => errs.push(Diagnostic::new(
                p.display().to_string(),
                None,
                "",
                format!("cannot read config: {e}"),
            )),
        },
        None if config_files.is_empty() && Path::new("firebreak.yaml").exists() => {
            match std::fs::read_to_string("firebreak.yaml") {
                Ok(t) => config_sources.push(("firebreak.yaml".into(), t)),
                Err(e) => errs.push(Diagnostic::new(
                    "firebreak.yaml",
                    None,
                    "",
                    format!("cannot read config: {e}"),
                )),
            }
        }
        None => {}
    }
    config_sources.extend(config_files);

    let mut config = None;
    for (name, text) in &config_sources {
        match Config::load(name, text) {
            Ok(c) => {
                if config.is_none() {
                    report.config_file = Some(name.clone());
                    config = Some(c);
                }
            }
            Err(e) => errs.extend(e),
        }
    }
    let config_failed = config.is_none() && !config_sources.is_empty();
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

    let other = if paths.is_empty() {
        let defaults: Vec<PathBuf> = config
            .alert_paths
            .iter()
            .chain(&config.runbook_paths)
            .map(PathBuf::from)
            .collect();
        read_yaml_files(&defaults, &mut errs)
    } else {
        other
    };
    report.skipped_rule_tests = other
        .iter()
        .filter(|(_, t)| classify(t) == FileKind::RuleTest)
        .count();
    // Runbooks are checked against the config's targets; if the config
    // itself is broken, say so rather than flag every http step.
    if config_failed {
        errs.push(Diagnostic::new(
            config_sources[0].0.clone(),
            None,
            "",
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
