//! Reading secrets where the config says they are (an environment
//! variable or a file), at the edge and only when a step, a check or an
//! adapter needs one: the config names them, never holds them.

use std::collections::BTreeMap;

use crate::config::SecretSource;

/// The value of the secret called `name` under `secrets:`.
pub fn secret_named(
    secrets: &BTreeMap<String, SecretSource>,
    name: &str,
) -> Result<String, String> {
    let src = secrets
        .get(name)
        .ok_or_else(|| format!("no secret named {name:?}"))?;
    resolve_secret(src)
}

/// Reads a secret's value. Secrets are resolved only when a step needs
/// them and are never logged or rendered into chat.
pub fn resolve_secret(src: &SecretSource) -> Result<String, String> {
    match src {
        SecretSource::Env(var) => {
            std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))
        }
        SecretSource::File(path) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
            .map_err(|e| format!("cannot read secret file {path}: {e}")),
    }
}

/// One secret that does not resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    pub name: String,
    /// Where the config uses it (empty: defined, used nowhere).
    pub used_by: Vec<String>,
    pub why: String,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "secrets.{}: {}", self.name, self.why)?;
        if !self.used_by.is_empty() {
            write!(f, " (needed by {})", self.used_by.join(", "))?;
        }
        Ok(())
    }
}

/// Resolves every secret `config` defines, as a start would (the values
/// are read and dropped, never kept or shown), and returns those that do
/// not resolve or are empty, with where each is used.
pub fn check(config: &crate::config::Config) -> Vec<Missing> {
    let uses = config.secret_uses();
    config
        .secrets
        .iter()
        .filter_map(|(name, src)| {
            let why = match resolve_secret(src) {
                Ok(v) if v.trim().is_empty() => "is empty".to_owned(),
                Ok(_) => return None,
                Err(e) => e,
            };
            Some(Missing {
                name: name.clone(),
                used_by: uses
                    .iter()
                    .filter(|(n, _)| n == name)
                    .map(|(_, f)| f.clone())
                    .collect(),
                why,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_resolve_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "s3cret\n").unwrap();
        let v = resolve_secret(&SecretSource::File(p.display().to_string())).unwrap();
        assert_eq!(v, "s3cret");
        assert!(resolve_secret(&SecretSource::Env("FIREBREAK_SURELY_UNSET_VAR".into())).is_err());
    }

    #[test]
    fn check_names_each_missing_secret_and_what_needs_it() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        let empty = dir.path().join("empty");
        std::fs::write(&good, "x\n").unwrap();
        std::fs::write(&empty, "\n").unwrap();
        let text = format!(
            "targets:\n  platform: {{url: 'http://127.0.0.1:1', bearer_token_secret: admin}}\nsecrets:\n  admin: {{file: '{}'}}\n  api: {{env: FIREBREAK_SURELY_UNSET_VAR}}\n  spare: {{file: '{}'}}\n  ok: {{file: '{}'}}\nserver: {{token_secret: api}}\n",
            dir.path().join("absent").display(),
            empty.display(),
            good.display(),
        );
        let config = crate::config::Config::load("c.yaml", &text).unwrap();
        let missing: Vec<String> = check(&config).iter().map(ToString::to_string).collect();
        assert_eq!(missing.len(), 3, "{missing:#?}");
        assert!(
            missing[0].starts_with("secrets.admin: cannot read secret file"),
            "{}",
            missing[0]
        );
        assert!(
            missing[0].ends_with("(needed by targets.platform.bearer_token_secret)"),
            "{}",
            missing[0]
        );
        assert_eq!(
            missing[1],
            "secrets.api: environment variable FIREBREAK_SURELY_UNSET_VAR is not set (needed by server.token_secret)"
        );
        assert_eq!(missing[2], "secrets.spare: is empty");
    }
}
