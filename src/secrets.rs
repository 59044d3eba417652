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
}
