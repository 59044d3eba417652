//! Sources: where samples come from. Each scrape target is one task that
//! fetches Prometheus text exposition on its interval and hands the parsed
//! batch to the watcher through a bounded queue.

pub mod exposition;
pub mod remote;
pub mod scrape;

use crate::clock::Millis;
use crate::labels::Labels;

/// One scrape's result, as the watcher receives it.
#[derive(Debug)]
pub struct ScrapeBatch {
    pub target: String,
    pub at: Millis,
    /// Labels added to every series of the target (`job`, `instance`, and
    /// the configured ones); also the labels of its `up` series.
    pub target_labels: Labels,
    /// The samples, or why the scrape failed (then `up` is 0).
    pub result: Result<Vec<(Labels, f64)>, String>,
    pub duration_ms: i64,
}
