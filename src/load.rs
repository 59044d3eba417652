//! Loading what the daemon runs on: the config, alert rule files and
//! runbooks, from disk or from the embedded defaults. Every problem in
//! every file is collected before failing.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, RwLock};

use serde::Deserialize;

use crate::config::Config;
use crate::diag::{Diagnostic, Diagnostics};
use crate::rules::RuleGroup;
use crate::rules::file::parse_rule_file_with;
use crate::rules::unittest::{TestFile, parse_test_file};
use crate::runbook::literals::Fixture;
use crate::runbook::{CheckEnv, Runbook, load_runbooks};
use crate::sim::Scenario;

impl Loaded {
    /// What validation warned about (a value in a PromQL string or a
    /// matcher without its escape filter, ...): a version with warnings
    /// runs, and says so in the log so they are not seen only by
    /// `firebreak validate`.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.runbooks
            .iter()
            .flat_map(|r| r.warnings.iter())
            .chain(self.checklists.iter().flat_map(|c| c.warnings.iter()))
    }

    /// Logs each warning once, for a start or a reload.
    pub fn log_warnings(&self, why: &str) -> usize {
        let mut n = 0;
        for w in self.warnings() {
            tracing::warn!(warning = %w, %why, "runbook or checklist warning");
            n += 1;
        }
        n
    }
}

#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    pub rule_groups: Vec<RuleGroup>,
    pub runbooks: Vec<Arc<Runbook>>,
    pub checklists: Vec<Arc<crate::checklist::Checklist>>,
    /// Runbook test files (`kind: runbook_test`) found beside the
    /// runbooks, by name: checklists' `runbook` checks run them.
    pub runbook_tests: Vec<(String, String)>,
    pub rule_files: usize,
    /// The fingerprint of the files on disk this was read from (see
    /// [`Files`]); `None` for the embedded defaults, which
    /// cannot change under a running bot.
    pub disk: Option<u64>,
    /// What a person starting the bot should hear about what was not
    /// loaded, though nothing is wrong (see [`Files::notes`]).
    pub notes: Vec<String>,
}

/// What a YAML file is, judged by its top-level keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Rules,
    /// A promtool rule test file (`rule_files:`), run by `firebreak test rules`.
    RuleTest,
    Runbook,
    /// A runbook test file (`kind: runbook_test`), run by `firebreak test runbooks`.
    RunbookTest,
    /// A pre-event checklist (`kind: checklist`), run by `firebreak check`.
    Checklist,
    Config,
    Unknown,
}

#[derive(Deserialize)]
struct Peek {
    kind: Option<String>,
    groups: Option<serde::de::IgnoredAny>,
    rule_files: Option<serde::de::IgnoredAny>,
    sources: Option<serde::de::IgnoredAny>,
    targets: Option<serde::de::IgnoredAny>,
    store: Option<serde::de::IgnoredAny>,
    rules: Option<serde::de::IgnoredAny>,
    chat: Option<serde::de::IgnoredAny>,
}

/// The ids of the embedded scenario, which runbooks should read from the
/// platform rather than name.
static BUILTIN_FIXTURE: LazyLock<Fixture> =
    LazyLock::new(|| Fixture::new(Scenario::builtin().ids()));

/// What runbooks are checked against: the executor's actions, the
/// embedded scenario's ids, and these targets.
pub fn check_env(targets: impl IntoIterator<Item = String>) -> CheckEnv {
    CheckEnv::new(
        &crate::executor::actions::Registry,
        &BUILTIN_FIXTURE,
        targets,
    )
}

pub fn classify(text: &str) -> FileKind {
    let Ok(p) = serde_saphyr::from_str::<Peek>(text) else {
        return FileKind::Unknown;
    };
    if p.kind.as_deref() == Some("runbook") {
        FileKind::Runbook
    } else if p.kind.as_deref() == Some(crate::runbook::testfile::KIND) {
        FileKind::RunbookTest
    } else if p.kind.as_deref() == Some(crate::checklist::KIND) {
        FileKind::Checklist
    } else if p.rule_files.is_some() {
        FileKind::RuleTest
    } else if p.groups.is_some() {
        FileKind::Rules
    } else if p.sources.is_some()
        || p.targets.is_some()
        || p.store.is_some()
        || p.rules.is_some()
        || p.chat.is_some()
    {
        FileKind::Config
    } else {
        FileKind::Unknown
    }
}

/// The `name:` of a YAML document, if it has one.
fn peek_name(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Named {
        name: Option<String>,
    }
    serde_saphyr::from_str::<Named>(text).ok()?.name
}

/// Reads every `.yml`/`.yaml` file under the given files and directories
/// (sorted, so output is stable). Unreadable paths become diagnostics.
pub fn read_yaml_files(paths: &[PathBuf], errs: &mut Diagnostics) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in paths {
        collect(p, 0, &mut out, errs);
    }
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

/// How deep under a configured directory files are looked for; a symlink
/// loop would otherwise recurse until the stack runs out.
const MAX_DIR_DEPTH: usize = 16;

/// Reads one file the operator named (a config, rule, runbook or test
/// file): a regular file, at most [`crate::limits::MAX_FILE_BYTES`]. A
/// device or a FIFO named by mistake or by a glob would otherwise be read
/// forever; a huge file would be held whole.
pub fn read_text_file(p: &Path) -> Result<String, String> {
    use std::io::Read;
    let max = crate::limits::MAX_FILE_BYTES;
    let meta = std::fs::metadata(p).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    if meta.len() > max as u64 {
        return Err(format!("{} bytes; files are read up to {max}", meta.len()));
    }
    let mut text = String::new();
    std::fs::File::open(p)
        .and_then(|f| f.take(max as u64 + 1).read_to_string(&mut text))
        .map_err(|e| e.to_string())?;
    if text.len() > max {
        return Err(format!("more than {max} bytes; files are read up to {max}"));
    }
    Ok(text)
}

/// [`read_text_file`] for a file that is all there is to check: its name
/// and text, or the one diagnostic that it cannot be read (as a `what`).
pub fn read_whole(path: &Path, what: &str) -> Result<(String, String), Diagnostics> {
    let name = path.display().to_string();
    match read_text_file(path) {
        Ok(text) => Ok((name, text)),
        Err(e) => Err(Diagnostic::new(name, None, "", format!("cannot read {what}: {e}")).into()),
    }
}

/// Reads a test file and the rule files it names (relative to it, globs
/// expanded): the I/O edge. Warnings (a glob matching nothing) are
/// returned beside the result, as promtool only warns.
pub fn rule_test_file(path: &Path) -> Result<(TestFile, Vec<RuleGroup>, Vec<String>), Diagnostics> {
    let (name, text) = read_whole(path, "file")?;
    let tf = parse_test_file(&name, &text)?;
    let base = path.parent().unwrap_or(Path::new(""));
    let mut errs = Diagnostics::new();
    let mut warnings = Vec::new();
    let mut groups = Vec::new();
    for (i, (rf, pos)) in tf.rule_files.iter().enumerate() {
        let full: PathBuf = base.join(rf);
        let pattern = full.display().to_string();
        let matched: Vec<PathBuf> = match glob::glob(&pattern) {
            Ok(paths) => paths.filter_map(Result::ok).collect(),
            Err(e) => {
                errs.push(Diagnostic::new(
                    &name,
                    *pos,
                    format!("rule_files[{i}]"),
                    format!("invalid glob: {e}"),
                ));
                continue;
            }
        };
        if matched.is_empty() {
            warnings.push(format!("no file match pattern {rf}"));
        }
        for p in matched {
            let pn = p.display().to_string();
            // A test file names rule files; it must not make the runner
            // read (and quote, in a parse error) any other file it can
            // reach, such as a key or a password file.
            if !matches!(p.extension().and_then(|x| x.to_str()), Some("yml" | "yaml")) {
                errs.push(Diagnostic::new(
                    &name,
                    *pos,
                    format!("rule_files[{i}]"),
                    format!(
                        "{pn} is not a rule file: firebreak reads rule files named *.yml or *.yaml"
                    ),
                ));
                continue;
            }
            // Only regular files: a glob over a directory of devices or
            // FIFOs must not hang the test run.
            match read_text_file(&p) {
                Ok(text) => match parse_rule_file_with(&pn, &text, tf.evaluation_interval_ms) {
                    Ok(f) => groups.extend(f.groups),
                    Err(d) => errs.extend(d),
                },
                Err(e) => errs.push(Diagnostic::new(
                    &name,
                    *pos,
                    format!("rule_files[{i}]"),
                    format!("cannot read {pn}: {e}"),
                )),
            }
        }
    }
    errs.into_result((tf, groups, warnings))
}

fn collect(p: &Path, depth: usize, out: &mut Vec<(String, String)>, errs: &mut Diagnostics) {
    let name = p.display().to_string();
    if p.is_dir() {
        if depth >= MAX_DIR_DEPTH {
            errs.push(Diagnostic::new(
                name,
                None,
                "",
                format!("directories nest more than {MAX_DIR_DEPTH} deep here (a symlink loop?); not read further"),
            ));
            return;
        }
        match std::fs::read_dir(p) {
            Ok(rd) => {
                let mut entries: Vec<PathBuf> =
                    rd.filter_map(Result::ok).map(|e| e.path()).collect();
                entries.sort();
                for e in entries {
                    // Hidden entries are not the operator's files: a
                    // Kubernetes ConfigMap volume keeps a second and third
                    // copy of every file under `..data` and `..<timestamp>`,
                    // and editors leave `.x.yaml.swp`.
                    let hidden = e
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.'));
                    if hidden {
                        continue;
                    }
                    if e.is_dir()
                        || matches!(e.extension().and_then(|x| x.to_str()), Some("yml" | "yaml"))
                    {
                        collect(&e, depth + 1, out, errs);
                    }
                }
            }
            Err(e) => errs.push(Diagnostic::new(
                name,
                None,
                "",
                format!("cannot read directory: {e}"),
            )),
        }
    } else {
        match read_text_file(p) {
            Ok(t) => out.push((name, t)),
            Err(e) => errs.push(Diagnostic::new(
                name,
                None,
                "",
                format!("cannot read file: {e}"),
            )),
        }
    }
}

/// Validates rule files and runbooks against a config. Files of other
/// kinds in the lists are skipped (rule tests) or reported (unknown).
pub fn load(
    config: Config,
    alert_files: &[(String, String)],
    runbook_files: &[(String, String)],
) -> Result<Loaded, Diagnostics> {
    let mut errs = Diagnostics::new();
    let mut groups = Vec::new();
    let mut rule_files = 0;
    let mut runbooks_in = Vec::new();
    let mut checklists_in = Vec::new();
    let mut runbook_tests = Vec::new();
    for (name, text) in alert_files.iter().chain(runbook_files) {
        match classify(text) {
            FileKind::Rules => {
                rule_files += 1;
                let opts = crate::rules::RuleFileOptions {
                    default_interval_ms: config.evaluation_interval.as_millis() as i64,
                    template_queries: config.remote.is_none(),
                };
                match crate::rules::parse_rule_file_opts(name, text, opts) {
                    Ok(f) => groups.extend(f.groups),
                    Err(e) => errs.extend(e),
                }
            }
            FileKind::Runbook => runbooks_in.push((name.clone(), text.clone())),
            FileKind::Checklist => checklists_in.push((name, text)),
            // Tests sit beside what they test (`runbooks/tests/`); the
            // daemon keeps runbook tests for checklists to run, and
            // `firebreak validate` and `test` read both.
            FileKind::RunbookTest => runbook_tests.push((name.clone(), text.clone())),
            FileKind::RuleTest => {}
            FileKind::Config => errs.push(Diagnostic::new(
                name,
                None,
                "",
                "this looks like a config file; pass it with --config",
            )),
            FileKind::Unknown => {
                // Let the strictest parser say what is wrong.
                match crate::diag::from_yaml::<serde::de::IgnoredAny>(name, text) {
                    Err(d) => errs.extend(d),
                    Ok(_) => errs.push(Diagnostic::new(name, None, "", "not a rule file (`groups:`), a rule test (`rule_files:`), a runbook (`kind: runbook`), a runbook test (`kind: runbook_test`) or a checklist (`kind: checklist`)")),
                }
            }
        }
    }
    let env = crate::load::check_env(config.targets.keys().cloned());
    let runbooks: Vec<Arc<Runbook>> = match load_runbooks(&runbooks_in, &env) {
        Ok(r) => r.into_iter().map(Arc::new).collect(),
        Err(e) => {
            errs.extend(e);
            Vec::new()
        }
    };
    let mut runbook_names: Vec<String> = runbooks.iter().map(|r| r.name.clone()).collect();
    // A runbook that failed to load is reported once, above; a checklist
    // naming it is not wrong as well.
    runbook_names.extend(runbooks_in.iter().filter_map(|(_, t)| peek_name(t)));
    let checklist_env = crate::checklist::Env {
        targets: config.targets.keys().cloned().collect(),
        runbooks: runbook_names,
    };
    let mut checklists: Vec<Arc<crate::checklist::Checklist>> = Vec::new();
    for (name, text) in checklists_in {
        match crate::checklist::parse_checklist(name, text, &checklist_env) {
            Ok(c) => {
                if let Some(first) = checklists.iter().find(|o| o.name == c.name) {
                    errs.push(Diagnostic::new(
                        name,
                        None,
                        "name",
                        format!(
                            "checklist name {:?} is already used by {}",
                            c.name, first.file
                        ),
                    ));
                }
                checklists.push(Arc::new(c));
            }
            Err(e) => errs.extend(e),
        }
    }
    errs.sorted().into_result(Loaded {
        config,
        rule_groups: groups,
        runbooks,
        checklists,
        runbook_tests,
        rule_files,
        disk: None,
        notes: Vec::new(),
    })
}

/// The environment variable naming the config file when `-c` does not.
pub const CONFIG_ENV: &str = "FIREBREAK_CONFIG";

/// The config file looked for in the current directory.
pub const CONFIG_FILE: &str = "firebreak.yaml";

/// Where a command's config comes from; each command says which, so
/// nobody wonders which file the bot is running on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// `-c PATH` (`--config PATH`).
    Flag(PathBuf),
    /// `FIREBREAK_CONFIG`.
    Env(PathBuf),
    /// `./firebreak.yaml`.
    Cwd(PathBuf),
    /// None of those: the built-in setup against a local `firebreak sim`.
    Builtin,
}

impl ConfigSource {
    /// `-c PATH`, else `$FIREBREAK_CONFIG`, else `./firebreak.yaml` when
    /// there is one, else the built-in simulator setup.
    pub fn find(flag: Option<&Path>) -> ConfigSource {
        ConfigSource::choose(
            flag,
            std::env::var_os(CONFIG_ENV),
            Path::new(CONFIG_FILE).is_file(),
        )
    }

    /// The choice [`ConfigSource::find`] makes from what it looked at: the
    /// flag, the environment variable, and whether `./firebreak.yaml` is
    /// a file. An empty variable counts as unset.
    pub fn choose(
        flag: Option<&Path>,
        env: Option<std::ffi::OsString>,
        here: bool,
    ) -> ConfigSource {
        if let Some(p) = flag {
            return ConfigSource::Flag(p.to_owned());
        }
        if let Some(e) = env.filter(|e| !e.is_empty()) {
            return ConfigSource::Env(PathBuf::from(e));
        }
        if here {
            return ConfigSource::Cwd(PathBuf::from(CONFIG_FILE));
        }
        ConfigSource::Builtin
    }

    /// The file to read; `None` for the built-in setup.
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigSource::Flag(p) | ConfigSource::Env(p) | ConfigSource::Cwd(p) => Some(p),
            ConfigSource::Builtin => None,
        }
    }
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::Flag(p) => write!(f, "{}", p.display()),
            ConfigSource::Env(p) => write!(f, "{} (from {CONFIG_ENV})", p.display()),
            ConfigSource::Cwd(p) => write!(f, "{} (found in the current directory)", p.display()),
            ConfigSource::Builtin => write!(
                f,
                "built-in defaults (no -c, {CONFIG_ENV} or ./{CONFIG_FILE}: a local `firebreak sim`)"
            ),
        }
    }
}

/// Reads and checks a config file; the relative paths it names are
/// taken from its directory (see [`Config::rebased`]).
pub fn read_config(path: &Path) -> Result<Config, Diagnostics> {
    let (name, text) = read_whole(path, "config")?;
    let dir = path.parent().unwrap_or(Path::new(""));
    Ok(Config::load(&name, &text)?.rebased(dir))
}

/// Loads the config file (or the defaults) and the files it names.
pub fn load_from_disk(config_path: Option<&Path>) -> Result<Loaded, Diagnostics> {
    let config = match config_path {
        Some(p) => read_config(p)?,
        None => Config::for_simulator(crate::config::DEFAULT_SIM_ADDR),
    };
    // The same reading and checking as a reload's, so what starts is
    // what a reload would accept.
    let (files, errs) = Files::read(&config);
    let mut loaded = check(&config, &files, errs)?;
    loaded.disk = Some(files.fingerprint());
    loaded.notes = files.notes();
    Ok(loaded)
}

/// A value a reload replaces while readers keep the version they took.
#[derive(Debug, Default)]
pub struct Shared<T>(Arc<RwLock<Arc<T>>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T> Shared<T> {
    pub fn new(v: T) -> Self {
        Shared(Arc::new(RwLock::new(Arc::new(v))))
    }

    /// The current version.
    pub fn get(&self) -> Arc<T> {
        // A writer that panicked left a whole value behind (it only swaps
        // an Arc), so a poisoned lock is still good to read.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, v: T) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(v);
    }
}

impl<T> From<T> for Shared<T> {
    fn from(v: T) -> Self {
        Shared::new(v)
    }
}

/// The files a version is made of, as read: name and text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Files {
    pub alerts: Vec<(String, String)>,
    pub runbooks: Vec<(String, String)>,
    /// Default paths (`rules.paths` or `runbooks.paths` left out) that
    /// are not there, with the field: nothing to load, and no error.
    pub absent: Vec<(&'static str, String)>,
}

impl Files {
    /// Reads what the config's paths hold now. A path that cannot be read
    /// is an error of this version, like a bad file, unless the config
    /// did not name it (see [`Config::alert_paths_defaulted`]) and it is
    /// not there at all.
    pub fn read(config: &Config) -> (Files, Diagnostics) {
        let mut errs = Diagnostics::new();
        let (alert_paths, mut absent) = present(
            &config.alert_paths,
            config.alert_paths_defaulted,
            "rules.paths",
        );
        let (runbook_paths, more) = present(
            &config.runbook_paths,
            config.runbook_paths_defaulted,
            "runbooks.paths",
        );
        absent.extend(more);
        let alerts = read_yaml_files(&alert_paths, &mut errs);
        let runbooks = read_yaml_files(&runbook_paths, &mut errs);
        (
            Files {
                alerts,
                runbooks,
                absent,
            },
            errs,
        )
    }

    /// One sentence per default path that is not there.
    pub fn notes(&self) -> Vec<String> {
        self.absent
            .iter()
            .map(|(field, path)| {
                let what = if *field == "rules.paths" {
                    "alert rules"
                } else {
                    "runbooks or checklists"
                };
                // `./alerts` rather than `alerts`: a path, not a word.
                let path = if Path::new(path).is_relative() && !path.starts_with('.') {
                    format!("./{path}")
                } else {
                    path.clone()
                };
                format!("no {what} loaded: `{field}` is not set and {path} is not there")
            })
            .collect()
    }

    /// Changes when any file's name or text does.
    pub fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.alerts.hash(&mut h);
        self.runbooks.hash(&mut h);
        h.finish()
    }
}

/// The paths of `field` to read: all of them when the config named them
/// (one not there is then an error when read), else those that are there,
/// with the others apart as `(field, path)`.
pub fn present(
    paths: &[String],
    defaulted: bool,
    field: &'static str,
) -> (Vec<PathBuf>, Vec<(&'static str, String)>) {
    let mut absent = Vec::new();
    let mut out = Vec::new();
    for p in paths.iter().map(PathBuf::from) {
        // `symlink_metadata`: a dangling link is there, and reading it
        // says what is wrong with it.
        if defaulted && std::fs::symlink_metadata(&p).is_err() {
            absent.push((field, p.display().to_string()));
        } else {
            out.push(p);
        }
    }
    (out, absent)
}

/// Validates a version against the running config, collecting every
/// error.
pub fn check(
    config: &Config,
    files: &Files,
    read_errors: Diagnostics,
) -> Result<Loaded, Diagnostics> {
    match load(config.clone(), &files.alerts, &files.runbooks) {
        Ok(l) if read_errors.is_empty() => Ok(l),
        Ok(_) => Err(read_errors),
        Err(mut e) => {
            e.extend(read_errors);
            Err(e.sorted())
        }
    }
}

/// The embedded rules and runbooks, validated against `config`.
pub fn load_embedded(config: Config) -> Result<Loaded, Diagnostics> {
    load(
        config,
        &crate::embedded::owned(crate::embedded::ALERT_FILES),
        &[
            crate::embedded::owned(crate::embedded::RUNBOOK_FILES),
            crate::embedded::owned(crate::embedded::RUNBOOK_TEST_FILES),
        ]
        .concat(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a directory mounted from a Kubernetes ConfigMap holds
    /// every file three times (`x.yaml` -> `..data/x.yaml` ->
    /// `..2026_12_05_20_00_00.1/x.yaml`), so each runbook was loaded thrice
    /// and refused as a duplicate. Hidden entries are skipped.
    #[test]
    fn a_configmap_volume_is_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let stamp = d.join("..2026_12_05_20_00_00.1");
        std::fs::create_dir(&stamp).unwrap();
        std::fs::write(stamp.join("mute.yaml"), "kind: runbook\n").unwrap();
        std::os::unix::fs::symlink("..2026_12_05_20_00_00.1", d.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/mute.yaml", d.join("mute.yaml")).unwrap();
        std::fs::write(d.join(".mute.yaml.swp"), "junk").unwrap();
        let mut errs = Diagnostics::new();
        let files = read_yaml_files(&[d.to_path_buf()], &mut errs);
        assert!(errs.is_empty(), "{errs}");
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [d.join("mute.yaml").display().to_string()]);
    }

    /// Regression: a `rule_files` glob that matched a FIFO (or a device) read
    /// it forever and hung `firebreak test rules`. Only regular files are read.
    #[test]
    fn rule_files_that_are_not_regular_files_are_errors_not_hangs() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.yml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        std::fs::write(
            dir.path().join("rules.yml"),
            "groups:\n- {name: a, rules: []}\n",
        )
        .unwrap();
        let test = dir.path().join("t.yaml");
        std::fs::write(
            &test,
            "rule_files: ['*.yml']\ntests:\n- input_series: []\n  alert_rule_test: []\n",
        )
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(rule_test_file(&test).map(|_| ()).map_err(|e| e.to_string()));
        });
        // A hang is the failure this test catches; a whole minute is far
        // beyond what reading three small files takes.
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("loading the test file hung on the FIFO");
        let e = got.unwrap_err();
        assert!(e.contains("pipe.yml: not a regular file"), "{e}");
        // The regular rule file beside it reads as before.
        assert!(!e.contains("rules.yml"), "{e}");
    }

    /// Regression: `rule_files` could name any file the runner can read
    /// (`/etc/passwd`), and a parse error then quoted its lines.
    #[test]
    fn rule_files_are_yaml_files_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret.txt"), "root:x:0:0:hunter2\n").unwrap();
        let test = dir.path().join("t.yaml");
        std::fs::write(
            &test,
            "rule_files: ['secret.txt']\ntests:\n- input_series: []\n  alert_rule_test: []\n",
        )
        .unwrap();
        let e = rule_test_file(&test).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("secret.txt is not a rule file"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn runbooks_are_warned_off_the_embedded_scenarios_ids() {
        let s = Scenario::builtin();
        let f = &*BUILTIN_FIXTURE;
        assert!(f.names(&s.event.secondary_account).is_some());
        assert_eq!(f.names(&s.event.id).as_deref(), Some("the event"));
        assert_eq!(f.names(&s.event.room).as_deref(), Some("a room"));
        // `owner` is both an account and a speaker there.
        assert_eq!(
            f.names("owner").as_deref(),
            Some("an account and a speaker")
        );
        assert_eq!(f.names("harbour-radio"), None);
    }

    /// Issue 22, item 5: `-c`, else `FIREBREAK_CONFIG` (unless empty),
    /// else `./firebreak.yaml`, else the built-in setup.
    #[test]
    fn the_config_is_the_flag_then_the_variable_then_the_current_directory() {
        let flag = Some(Path::new("/etc/fb.yaml"));
        let env = || Some(std::ffi::OsString::from("/srv/fb.yaml"));
        assert_eq!(
            ConfigSource::choose(flag, env(), true),
            ConfigSource::Flag("/etc/fb.yaml".into())
        );
        assert_eq!(
            ConfigSource::choose(None, env(), true),
            ConfigSource::Env("/srv/fb.yaml".into())
        );
        assert_eq!(
            ConfigSource::choose(None, Some("".into()), true),
            ConfigSource::Cwd("firebreak.yaml".into())
        );
        assert_eq!(
            ConfigSource::choose(None, None, false),
            ConfigSource::Builtin
        );
        assert_eq!(ConfigSource::Builtin.path(), None);
        assert_eq!(
            ConfigSource::choose(None, env(), false).to_string(),
            "/srv/fb.yaml (from FIREBREAK_CONFIG)"
        );
    }

    /// A path the config leaves to its default may be absent, and is
    /// then said; one it names is read, and an error when not there.
    #[test]
    fn default_paths_that_are_not_there_are_said_not_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("runbooks")).unwrap();
        let config = Config::load("c.yaml", "store: {url: 'sqlite://x.db'}\n")
            .unwrap()
            .rebased(dir.path());
        let (files, errs) = Files::read(&config);
        assert!(errs.is_empty(), "{errs}");
        assert_eq!(
            files.notes(),
            [format!(
                "no alert rules loaded: `rules.paths` is not set and {}/alerts is not there",
                dir.path().display()
            )]
        );
        let config = Config::load("c.yaml", "rules: {paths: [alerts]}\n")
            .unwrap()
            .rebased(dir.path());
        let (files, errs) = Files::read(&config);
        assert!(files.notes().is_empty());
        assert!(
            errs.to_string().contains("alerts: cannot read file"),
            "{errs}"
        );
    }

    #[test]
    fn classifies_by_top_level_keys() {
        assert_eq!(classify("groups: []"), FileKind::Rules);
        assert_eq!(
            classify("rule_files: [a.yml]\ntests: []"),
            FileKind::RuleTest
        );
        assert_eq!(classify("kind: runbook\nname: x"), FileKind::Runbook);
        assert_eq!(
            classify("kind: runbook_test\nrunbook: x.yaml"),
            FileKind::RunbookTest
        );
        assert_eq!(classify("kind: checklist\nname: x"), FileKind::Checklist);
        assert_eq!(classify("store: {url: 'sqlite://x'}"), FileKind::Config);
        assert_eq!(classify("hello: world"), FileKind::Unknown);
        assert_eq!(classify(": : :"), FileKind::Unknown);
    }

    /// A template's `query` is answered by the local evaluator; rules run
    /// through a remote API are refused it at load, at the call.
    #[test]
    fn template_queries_need_the_local_evaluator() {
        let rules = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        annotations:\n          summary: '{{ with query \"up\" }}{{ . | first | value }}{{ end }}'\n";
        let files = [("r.yml".to_owned(), rules.to_owned())];
        let local = Config::load("c.yaml", "").unwrap();
        assert_eq!(load(local, &files, &[]).unwrap().rule_groups.len(), 1);
        let remote = Config::load(
            "c.yaml",
            "sources:\n  prometheus:\n    url: http://127.0.0.1:9090\n",
        )
        .unwrap();
        let errs = load(remote, &files, &[]).unwrap_err().to_string();
        assert!(
            errs.contains("r.yml:7:29: groups[0].rules[0].annotations.summary: `query` in a template needs the local evaluator"),
            "{errs}"
        );
    }
}
