//! The config and files a verb reads: the one it finds (`-c`,
//! `FIREBREAK_CONFIG`, `./firebreak.yaml`), or the embedded defaults,
//! said on stderr so the verb's own output stays as it was.

use std::path::Path;

use firebreak::config::{Config, DEFAULT_SIM_ADDR};
use firebreak::load::{ConfigSource, Loaded};

/// The config this verb runs on, said in one line.
fn found(flag: Option<&Path>) -> ConfigSource {
    let found = ConfigSource::find(flag);
    eprintln!("config: {found}");
    found
}

/// The config for commands that only read: the file found, else the
/// built-in simulator config (one target, `platform`).
pub(crate) fn config_or_default(flag: Option<&Path>) -> anyhow::Result<Config> {
    match found(flag).path() {
        None => Ok(Config::for_simulator(DEFAULT_SIM_ADDR)),
        Some(p) => firebreak::load::read_config(p).map_err(|d| anyhow::anyhow!("{d}")),
    }
}

/// What read-only commands work on: the config found and its files, else
/// the built-in rules, runbooks and checklist against a local simulator,
/// so they work on a fresh machine.
pub(crate) fn load_or_builtin(flag: Option<&Path>) -> Result<Loaded, firebreak::diag::Diagnostics> {
    let loaded = match found(flag).path() {
        Some(p) => firebreak::load::load_from_disk(Some(p))?,
        None => firebreak::load::load_embedded(Config::for_simulator(DEFAULT_SIM_ADDR))?,
    };
    for note in &loaded.notes {
        eprintln!("note: {note}");
    }
    Ok(loaded)
}
