//! The alert that starts a run, as the runbook model sees it: what its
//! templates read as `alert.*`, what a plan is made against, and what a
//! run's record keeps. It belongs to the runbook model, not to dispatch,
//! so that `runbook::plan` and `dispatch` do not import each other.

use std::collections::BTreeMap;

use crate::duration::Millis;

/// The alert that starts a run, as templates see it (`alert.*`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct AlertCtx {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// NaN when the alert carries no value (every pushed alert without a
    /// `value` annotation). JSON has no NaN, so it is written as `null`
    /// and must read back from `null`, or a run record of such an alert
    /// could not be resumed after a restart.
    #[serde(deserialize_with = "value_or_nan")]
    pub value: f64,
    pub fired_at: Millis,
}

fn value_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(<Option<f64> as serde::Deserialize>::deserialize(d)?.unwrap_or(f64::NAN))
}
