//! The config and files a verb reads: the given config, or the embedded
//! defaults.

use anyhow::Context;

/// The config for commands that only read: the file given, else the
/// built-in simulator config (one target, `sim`).
pub(crate) fn config_or_default(
    path: Option<&std::path::Path>,
) -> anyhow::Result<firebreak::config::Config> {
    use firebreak::config::{Config, DEFAULT_SIM_ADDR};
    let Some(p) = path else {
        return Ok(Config::for_simulator(DEFAULT_SIM_ADDR));
    };
    let name = p.display().to_string();
    let text = std::fs::read_to_string(p).with_context(|| format!("reading config {name}"))?;
    Config::load(&name, &text).map_err(|d| anyhow::anyhow!("{d}"))
}

/// What read-only commands work on: the config given and its files, else
/// the built-in rules, runbooks and checklist against a local simulator,
/// so they work on a fresh machine.
pub(crate) fn load_or_builtin(
    config: Option<&std::path::Path>,
) -> Result<firebreak::load::Loaded, firebreak::diag::Diagnostics> {
    match config {
        Some(p) => firebreak::load::load_from_disk(Some(p)),
        None => firebreak::load::load_embedded(firebreak::config::Config::for_simulator(
            firebreak::config::DEFAULT_SIM_ADDR,
        )),
    }
}
