//! What the runbook model knows of an action: how its parameters check at
//! load, what its fields' templates write, how long a step of it lasts,
//! which runbook it calls, whether it only reads, and where it would send
//! a call. The executor's actions implement [`ActionSpec`] beside running;
//! the loader is handed a [`Catalog`] of them, so the model never sees how
//! an action runs and never names one.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use super::CheckEnv;
use super::template::Lang;
use crate::duration::PromDuration;

pub trait ActionSpec: Send + Sync {
    fn name(&self) -> &'static str;
    /// Load-time check of the parameters as written (templates not yet
    /// rendered): `(field under with, problem)` pairs.
    fn check(&self, with: &Json, env: &CheckEnv) -> Vec<(String, String)>;
    /// What the templates of some of its fields write, where that decides
    /// how values go in: a `path` is encoded, a PromQL string checked for
    /// `| promql`. Fields not named are plain text.
    fn langs(&self) -> &'static [(&'static str, Lang)] {
        &[]
    }
    /// How long a step lasts by itself, which sizes its default timeout and
    /// bounds the one written.
    fn lasts(&self, _with: &Json) -> Lasts {
        Lasts::Briefly
    }
    /// The runbook a step calls, when its parameters name one. Such a step
    /// runs that runbook's steps inside itself, and they say how it failed.
    fn callee(&self, _with: &Json) -> Option<Callee> {
        None
    }
    /// Whether a step only looks, so a rollback's guard may use it.
    fn reads(&self, _with: &Json) -> Reads {
        Reads::No
    }
    /// Where a step would send its call, from its rendered parameters and
    /// the targets' base URLs, for a plan to show.
    fn destination(
        &self,
        _params: &Json,
        _targets: &BTreeMap<String, String>,
    ) -> Option<Destination> {
        None
    }
}

impl std::fmt::Debug for dyn ActionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The actions a loader knows, handed in by whoever builds the runbooks.
pub trait Catalog: Send + Sync {
    fn find(&self, name: &str) -> Option<&'static dyn ActionSpec>;
    fn names(&self) -> Vec<&'static str>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lasts {
    /// Returns when its call does: the default step timeout fits.
    Briefly,
    /// Waits this long; a timeout must outlast it.
    For(PromDuration),
    /// Waits for as long as a template or another runbook decides.
    Unknown,
}

/// A call of another runbook, as written.
#[derive(Clone, Debug, PartialEq)]
pub struct Callee {
    pub runbook: String,
    pub inputs: Map<String, Json>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reads {
    Only,
    No,
    /// Could read, but this parameter makes it act.
    NotWith {
        field: &'static str,
        why: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub url: String,
    /// What a run would refuse about it, said before any run: the
    /// parameter at fault, and why.
    pub refused: Option<(&'static str, String)>,
}

/// Stands in for an action the catalog does not have; the step that names
/// it has already failed the load, so this is never run or planned.
pub(super) struct Unknown;

impl ActionSpec for Unknown {
    fn name(&self) -> &'static str {
        "unknown"
    }
    fn check(&self, _with: &Json, _env: &CheckEnv) -> Vec<(String, String)> {
        Vec::new()
    }
}
