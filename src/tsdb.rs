//! The in-memory series store: the window of samples the rules need.
//!
//! Owns per-series samples in time order, the metric-name index the
//! evaluator selects through, Prometheus's staleness markers (a series that
//! a target stops exposing, or every series of a target that fails, gets a
//! special NaN at the scrape time, which ends it for instant selectors at
//! once instead of five minutes later) and retention. No I/O: sources push
//! samples in, the evaluator reads slices out without cloning.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::clock::Millis;
use crate::labels::{Labels, METRIC_NAME};
use crate::matchers::{MatchOp, Matcher};

/// The bit pattern Prometheus uses for staleness markers. Distinct from the
/// NaN arithmetic produces, so a genuinely NaN sample is not mistaken for
/// the end of a series.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker value.
pub const STALE_NAN: f64 = f64::from_bits(STALE_NAN_BITS);

/// Whether a sample value is a staleness marker (not just any NaN).
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Internal handle of a series; stable for the series' life in the store.
pub type SeriesId = u64;

/// Why a sample was not stored.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AppendError {
    #[error("out-of-order sample for {labels} at {ts}: the series already has a sample at {last}")]
    OutOfOrder {
        labels: Labels,
        ts: Millis,
        last: Millis,
    },
    #[error("duplicate sample for {labels} at {ts}")]
    Duplicate { labels: Labels, ts: Millis },
}

/// What one scrape did to the store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScrapeOutcome {
    pub appended: usize,
    /// Series of the previous scrape absent from this one, now marked stale.
    pub marked_stale: usize,
    pub rejected: Vec<AppendError>,
}

#[derive(Debug)]
struct SeriesData {
    labels: Labels,
    samples: Vec<(Millis, f64)>,
}

/// A series as the evaluator sees it: borrowed, never cloned.
#[derive(Clone, Copy, Debug)]
pub struct SeriesRef<'a> {
    pub id: SeriesId,
    pub labels: &'a Labels,
    samples: &'a [(Millis, f64)],
}

impl<'a> SeriesRef<'a> {
    /// All retained samples, oldest first, staleness markers included.
    pub fn samples(&self) -> &'a [(Millis, f64)] {
        self.samples
    }

    /// Samples with `start < ts <= end`, oldest first, staleness markers
    /// included (range selectors skip them; the evaluator decides).
    pub fn range(&self, start: Millis, end: Millis) -> &'a [(Millis, f64)] {
        let lo = self.samples.partition_point(|(t, _)| *t <= start);
        let hi = self.samples.partition_point(|(t, _)| *t <= end);
        if lo >= hi { &[] } else { &self.samples[lo..hi] }
    }

    /// The newest sample with `start < ts <= end`.
    pub fn latest(&self, start: Millis, end: Millis) -> Option<(Millis, f64)> {
        self.range(start, end).last().copied()
    }
}

/// The series store. See the module documentation.
#[derive(Debug)]
pub struct SeriesStore {
    retention: Millis,
    series: HashMap<SeriesId, SeriesData>,
    by_labels: HashMap<Labels, SeriesId>,
    /// Ordered so selection order (and thus query output order) is stable.
    by_name: BTreeMap<String, BTreeSet<SeriesId>>,
    /// The series each target exposed in its latest scrape.
    targets: HashMap<String, Vec<SeriesId>>,
    next_id: SeriesId,
}

impl SeriesStore {
    /// A store that keeps `retention_ms` of samples behind the `now` given
    /// to [`SeriesStore::gc`].
    pub fn new(retention_ms: Millis) -> Self {
        SeriesStore {
            retention: retention_ms.max(0),
            series: HashMap::new(),
            by_labels: HashMap::new(),
            by_name: BTreeMap::new(),
            targets: HashMap::new(),
            next_id: 1,
        }
    }

    pub fn retention(&self) -> Millis {
        self.retention
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    pub fn sample_count(&self) -> usize {
        self.series.values().map(|s| s.samples.len()).sum()
    }

    fn id_for(&mut self, labels: Labels) -> SeriesId {
        if let Some(id) = self.by_labels.get(&labels) {
            return *id;
        }
        let id = self.next_id;
        self.next_id += 1;
        let name = labels.metric_name().unwrap_or_default().to_owned();
        self.by_name.entry(name).or_default().insert(id);
        self.by_labels.insert(labels.clone(), id);
        self.series.insert(
            id,
            SeriesData {
                labels,
                samples: Vec::new(),
            },
        );
        id
    }

    fn append_id(&mut self, id: SeriesId, ts: Millis, v: f64) -> Result<(), AppendError> {
        let Some(s) = self.series.get_mut(&id) else {
            return Ok(());
        };
        if let Some(&(last, _)) = s.samples.last() {
            if ts == last {
                return Err(AppendError::Duplicate {
                    labels: s.labels.clone(),
                    ts,
                });
            }
            if ts < last {
                return Err(AppendError::OutOfOrder {
                    labels: s.labels.clone(),
                    ts,
                    last,
                });
            }
        }
        s.samples.push((ts, v));
        Ok(())
    }

    /// Appends one sample. Timestamps of a series must strictly increase.
    pub fn append(&mut self, labels: Labels, ts: Millis, v: f64) -> Result<(), AppendError> {
        if let Some(&id) = self.by_labels.get(&labels) {
            return self.append_id(id, ts, v);
        }
        let id = self.id_for(labels);
        self.append_id(id, ts, v)
    }

    /// Ends a series now: appends a staleness marker unless the series is
    /// unknown, already stale, or already has a sample at or after `ts`.
    pub fn mark_stale(&mut self, labels: &Labels, ts: Millis) -> bool {
        match self.by_labels.get(labels) {
            Some(&id) => self.mark_stale_id(id, ts),
            None => false,
        }
    }

    fn mark_stale_id(&mut self, id: SeriesId, ts: Millis) -> bool {
        let Some(s) = self.series.get_mut(&id) else {
            return false;
        };
        match s.samples.last() {
            Some(&(last, v)) if last < ts && !is_stale(v) => {
                s.samples.push((ts, STALE_NAN));
                true
            }
            _ => false,
        }
    }

    /// Stores one scrape of `target`, and marks stale the series the target
    /// exposed last time but not this time, as Prometheus's scrape loop
    /// does.
    pub fn ingest_scrape(
        &mut self,
        target: &str,
        ts: Millis,
        samples: impl IntoIterator<Item = (Labels, f64)>,
    ) -> ScrapeOutcome {
        let mut out = ScrapeOutcome::default();
        let mut seen = Vec::new();
        for (labels, v) in samples {
            let id = self.id_for(labels);
            match self.append_id(id, ts, v) {
                Ok(()) => out.appended += 1,
                Err(e) => out.rejected.push(e),
            }
            seen.push(id);
        }
        let previous = self.targets.insert(target.to_owned(), seen.clone());
        if let Some(previous) = previous {
            let now: std::collections::HashSet<SeriesId> = seen.into_iter().collect();
            for id in previous {
                if !now.contains(&id) && self.mark_stale_id(id, ts) {
                    out.marked_stale += 1;
                }
            }
        }
        out
    }

    /// The target could not be scraped: every series it exposed ends now.
    /// Returns how many series were marked.
    pub fn mark_target_stale(&mut self, target: &str, ts: Millis) -> usize {
        let ids = self.targets.insert(target.to_owned(), Vec::new());
        ids.unwrap_or_default()
            .into_iter()
            .filter(|&id| self.mark_stale_id(id, ts))
            .count()
    }

    /// Drops samples older than `now - retention`, then series left empty.
    pub fn gc(&mut self, now: Millis) {
        let cutoff = now.saturating_sub(self.retention);
        let mut dead = Vec::new();
        for (id, s) in &mut self.series {
            let keep_from = s.samples.partition_point(|(t, _)| *t < cutoff);
            if keep_from > 0 {
                s.samples.drain(..keep_from);
            }
            if s.samples.is_empty() {
                dead.push(*id);
            }
        }
        for id in dead {
            if let Some(s) = self.series.remove(&id) {
                self.by_labels.remove(&s.labels);
                let name = s.labels.metric_name().unwrap_or_default();
                if let Some(set) = self.by_name.get_mut(name) {
                    set.remove(&id);
                    if set.is_empty() {
                        self.by_name.remove(name);
                    }
                }
            }
        }
        for ids in self.targets.values_mut() {
            ids.retain(|id| self.series.contains_key(id));
        }
    }

    /// The series with exactly these labels.
    pub fn get(&self, labels: &Labels) -> Option<SeriesRef<'_>> {
        let id = *self.by_labels.get(labels)?;
        self.series_ref(id)
    }

    fn series_ref(&self, id: SeriesId) -> Option<SeriesRef<'_>> {
        self.series.get(&id).map(|s| SeriesRef {
            id,
            labels: &s.labels,
            samples: &s.samples,
        })
    }

    /// Every series all `matchers` accept. Uses the metric-name index when a
    /// matcher constrains `__name__`, so a selector touches only its
    /// metric's series.
    pub fn select<'a>(
        &'a self,
        matchers: &'a [Matcher],
    ) -> impl Iterator<Item = SeriesRef<'a>> + 'a {
        let name_eq = matchers
            .iter()
            .find(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal)
            .map(|m| m.value.as_str());
        let names: Box<dyn Iterator<Item = &'a BTreeSet<SeriesId>> + 'a> = match name_eq {
            Some(n) => Box::new(self.by_name.get(n).into_iter()),
            None => {
                let name_ms: Vec<&'a Matcher> =
                    matchers.iter().filter(|m| m.name == METRIC_NAME).collect();
                Box::new(
                    self.by_name
                        .iter()
                        .filter(move |(n, _)| name_ms.iter().all(|m| m.matches_value(n)))
                        .map(|(_, ids)| ids),
                )
            }
        };
        names
            .flat_map(|ids| ids.iter())
            .filter_map(|id| self.series_ref(*id))
            .filter(move |s| matchers.iter().all(|m| m.matches(s.labels)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().copied().collect()
    }

    #[test]
    fn stale_nan_is_distinct_from_nan() {
        assert!(is_stale(STALE_NAN));
        assert!(STALE_NAN.is_nan());
        assert!(!is_stale(f64::NAN));
        assert!(!is_stale(-f64::NAN));
    }

    #[test]
    fn append_rejects_out_of_order_and_duplicates() {
        let mut s = SeriesStore::new(3_600_000);
        let up = l(&[("__name__", "up"), ("job", "a")]);
        s.append(up.clone(), 1000, 1.0).unwrap();
        s.append(up.clone(), 2000, 1.0).unwrap();
        assert!(matches!(
            s.append(up.clone(), 2000, 1.0),
            Err(AppendError::Duplicate { ts: 2000, .. })
        ));
        assert!(matches!(
            s.append(up.clone(), 1500, 1.0),
            Err(AppendError::OutOfOrder {
                ts: 1500,
                last: 2000,
                ..
            })
        ));
        assert_eq!(s.get(&up).unwrap().samples(), &[(1000, 1.0), (2000, 1.0)]);
    }

    #[test]
    fn range_is_left_open_right_closed() {
        let mut s = SeriesStore::new(3_600_000);
        let x = l(&[("__name__", "x")]);
        for t in [10, 20, 30, 40] {
            s.append(x.clone(), t, t as f64).unwrap();
        }
        let r = s.get(&x).unwrap();
        assert_eq!(r.range(10, 30), &[(20, 20.0), (30, 30.0)]);
        assert_eq!(r.range(40, 50), &[] as &[(Millis, f64)]);
        assert_eq!(r.latest(0, 35), Some((30, 30.0)));
        assert_eq!(r.latest(40, 100), None);
    }

    #[test]
    fn scrape_marks_disappeared_series_stale() {
        let mut s = SeriesStore::new(3_600_000);
        let a = l(&[("__name__", "m"), ("k", "a")]);
        let b = l(&[("__name__", "m"), ("k", "b")]);
        let o = s.ingest_scrape("t1", 1000, [(a.clone(), 1.0), (b.clone(), 2.0)]);
        assert_eq!((o.appended, o.marked_stale), (2, 0));
        let o = s.ingest_scrape("t1", 2000, [(a.clone(), 1.0)]);
        assert_eq!((o.appended, o.marked_stale), (1, 1));
        let last = s.get(&b).unwrap().samples().last().copied().unwrap();
        assert_eq!(last.0, 2000);
        assert!(is_stale(last.1));
        // Only once.
        let o = s.ingest_scrape("t1", 3000, [(a.clone(), 1.0)]);
        assert_eq!(o.marked_stale, 0);
        assert_eq!(s.get(&b).unwrap().samples().len(), 2);
    }

    #[test]
    fn failed_target_marks_all_its_series() {
        let mut s = SeriesStore::new(3_600_000);
        let a = l(&[("__name__", "m"), ("k", "a")]);
        let other = l(&[("__name__", "m"), ("k", "z")]);
        s.ingest_scrape("t1", 1000, [(a.clone(), 1.0)]);
        s.ingest_scrape("t2", 1000, [(other.clone(), 1.0)]);
        assert_eq!(s.mark_target_stale("t1", 2000), 1);
        assert!(is_stale(s.get(&a).unwrap().samples()[1].1));
        assert_eq!(s.get(&other).unwrap().samples().len(), 1);
        assert_eq!(s.mark_target_stale("t1", 3000), 0);
    }

    #[test]
    fn gc_drops_old_samples_and_empty_series() {
        let mut s = SeriesStore::new(1000);
        let a = l(&[("__name__", "a")]);
        let b = l(&[("__name__", "b")]);
        s.append(a.clone(), 100, 1.0).unwrap();
        s.append(a.clone(), 1500, 1.0).unwrap();
        s.append(b.clone(), 200, 1.0).unwrap();
        s.gc(2000);
        assert_eq!(s.get(&a).unwrap().samples(), &[(1500, 1.0)]);
        assert!(s.get(&b).is_none());
        assert_eq!(s.series_count(), 1);
        let ms = vec![Matcher::new("__name__", MatchOp::Equal, "b").unwrap()];
        assert_eq!(s.select(&ms).count(), 0);
        // The name can be reused.
        s.append(b.clone(), 2100, 1.0).unwrap();
        assert_eq!(s.select(&ms).count(), 1);
    }

    #[test]
    fn select_uses_matchers() {
        let mut s = SeriesStore::new(3_600_000);
        for (n, job) in [("up", "a"), ("up", "b"), ("down", "a")] {
            s.append(l(&[("__name__", n), ("job", job)]), 1, 1.0)
                .unwrap();
        }
        let ms = crate::matchers::parse_matchers(r#"__name__="up",job=~"a|c""#).unwrap();
        let got: Vec<_> = s.select(&ms).map(|r| r.labels.clone()).collect();
        assert_eq!(got, vec![l(&[("__name__", "up"), ("job", "a")])]);
        let ms = crate::matchers::parse_matchers(r#"__name__=~"u.*|d.*",job="a""#).unwrap();
        assert_eq!(s.select(&ms).count(), 2);
        let ms = crate::matchers::parse_matchers(r#"job="a""#).unwrap();
        assert_eq!(s.select(&ms).count(), 2);
    }

    #[test]
    fn many_series_select_one_metric_quickly() {
        let mut s = SeriesStore::new(3_600_000);
        for i in 0..100_000 {
            let name = if i % 1000 == 0 { "rare" } else { "common" };
            s.append(l(&[("__name__", name), ("i", &i.to_string())]), 1, 1.0)
                .unwrap();
        }
        let ms = vec![Matcher::new("__name__", MatchOp::Equal, "rare").unwrap()];
        assert_eq!(s.select(&ms).count(), 100);
    }
}
