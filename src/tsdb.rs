//! The in-memory series store: the window of samples the rules need.
//!
//! Owns per-series samples in time order, the metric-name index the
//! evaluator selects through, Prometheus's staleness markers (a series that
//! a target stops exposing, or every series of a target that fails, gets a
//! special NaN at the scrape time, which ends it for instant selectors at
//! once instead of five minutes later) and retention. No I/O: sources push
//! samples in, the evaluator reads slices out without cloning.
//!
//! Scrapes go through a per-target cache from the series text as the
//! target wrote it (`name{labels}`) to the series, as Prometheus's scrape
//! cache does: a target exposes the same series every time, so after the
//! first scrape a sample costs one hash lookup and a push, and label sets
//! are built only for series never seen before. The cache holds a 128-bit
//! hash of that text rather than the text: at a million series the text
//! was the largest thing the store held after the samples, and two
//! different series texts of one target sharing both 64-bit halves is not
//! a risk worth a hundred bytes a series.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasher;

use crate::duration::Millis;
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

/// How often [`SeriesStore::maybe_gc`] collects.
pub const GC_EVERY: Millis = 60_000;

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
    /// New series whose labels could not be read; their samples are not
    /// stored.
    pub unreadable: Vec<NewSeriesError>,
}

/// Why a scrape's new series could not be stored.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("series {key}: {reason}")]
pub struct NewSeriesError {
    pub key: String,
    pub reason: String,
}

#[derive(Debug)]
struct SeriesData {
    /// Shared with the label index (a clone is a reference count), so a
    /// label set is held once.
    labels: Labels,
    samples: Vec<(Millis, f64)>,
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What the store remembers of one target between scrapes.
#[derive(Debug, Default)]
struct TargetCache {
    /// Series text as written, by [`key_hash`] -> (series, the scrape
    /// that last exposed it). Only the series of the latest successful
    /// scrape are kept, so the cache is as large as the target, not as its
    /// history.
    entries: FastMap<[u64; 2], (SeriesId, u64)>,
    scrape: u64,
}

/// Two independently seeded hashes of a series text: the scrape cache's
/// key. Fixed seeds, so a key never depends on when it was made.
fn key_hash(key: &str) -> [u64; 2] {
    const A: foldhash::quality::FixedState =
        foldhash::quality::FixedState::with_seed(0x9e37_79b9_7f4a_7c15);
    const B: foldhash::quality::FixedState =
        foldhash::quality::FixedState::with_seed(0xc2b2_ae3d_27d4_eb4f);
    [A.hash_one(key), B.hash_one(key)]
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
    series: FastMap<SeriesId, SeriesData>,
    by_labels: FastMap<Labels, SeriesId>,
    /// Ordered so selection order (and thus query output order) is stable.
    by_name: BTreeMap<String, BTreeSet<SeriesId>>,
    targets: HashMap<String, TargetCache>,
    /// Never reused, so a cache entry of a collected series cannot point
    /// at a different one.
    next_id: SeriesId,
    last_gc: Option<Millis>,
}

impl SeriesStore {
    /// A store that keeps `retention_ms` of samples behind the `now` given
    /// to [`SeriesStore::gc`].
    pub fn new(retention_ms: Millis) -> Self {
        SeriesStore {
            retention: retention_ms.max(0),
            series: FastMap::default(),
            by_labels: FastMap::default(),
            by_name: BTreeMap::new(),
            targets: HashMap::new(),
            next_id: 1,
            last_gc: None,
        }
    }

    pub fn retention(&self) -> Millis {
        self.retention
    }

    /// For reloaded rules that look back further (or less far). History
    /// already trimmed does not come back; it fills in from now.
    pub fn set_retention(&mut self, retention_ms: Millis) {
        self.retention = retention_ms.max(0);
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
        match self.series.get_mut(&id) {
            Some(s) => push(s, ts, v, self.retention),
            None => Ok(()),
        }
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

    /// Stores one scrape of `target`: each sample is `(series text as
    /// written, value)`. `new_series` turns the text of a series the cache
    /// does not know into its labels (target labels included); it is called
    /// once per series in the target's life, not once per scrape. Series
    /// the target exposed last time but not this time are marked stale, as
    /// Prometheus's scrape loop does.
    pub fn ingest_raw<'k>(
        &mut self,
        target: &str,
        ts: Millis,
        samples: impl IntoIterator<Item = (&'k str, f64)>,
        mut new_series: impl FnMut(&str) -> Result<Labels, String>,
    ) -> ScrapeOutcome {
        let mut out = ScrapeOutcome::default();
        let mut cache = self.targets.remove(target).unwrap_or_default();
        cache.scrape += 1;
        let scrape = cache.scrape;
        for (key, v) in samples {
            // The hit path is one lookup in the cache and one in the
            // series map; a hit on a collected series falls through.
            let hash = key_hash(key);
            if let Some(e) = cache.entries.get_mut(&hash)
                && let Some(s) = self.series.get_mut(&e.0)
            {
                e.1 = scrape;
                match push(s, ts, v, self.retention) {
                    Ok(()) => out.appended += 1,
                    Err(e) => out.rejected.push(e),
                }
                continue;
            }
            let id = match new_series(key) {
                Ok(labels) => self.id_for(labels),
                Err(reason) => {
                    out.unreadable.push(NewSeriesError {
                        key: key.to_owned(),
                        reason,
                    });
                    continue;
                }
            };
            cache.entries.insert(hash, (id, scrape));
            match self.append_id(id, ts, v) {
                Ok(()) => out.appended += 1,
                Err(e) => out.rejected.push(e),
            }
        }
        let mut stale = 0;
        cache.entries.retain(|_, (id, seen)| {
            if *seen == scrape {
                return true;
            }
            // Several spellings of one series may share an id; the one
            // still exposed appended at `ts`, which `mark_stale_id` skips.
            if self.mark_stale_id(*id, ts) {
                stale += 1;
            }
            false
        });
        out.marked_stale = stale;
        self.targets.insert(target.to_owned(), cache);
        out
    }

    /// [`SeriesStore::ingest_raw`] for samples that already have their
    /// labels (tests, and sources other than a text exposition).
    pub fn ingest_scrape(
        &mut self,
        target: &str,
        ts: Millis,
        samples: impl IntoIterator<Item = (Labels, f64)>,
    ) -> ScrapeOutcome {
        let samples: Vec<(String, Labels, f64)> = samples
            .into_iter()
            .map(|(l, v)| (l.to_string(), l, v))
            .collect();
        let by_key: HashMap<&str, &Labels> =
            samples.iter().map(|(k, l, _)| (k.as_str(), l)).collect();
        self.ingest_raw(
            target,
            ts,
            samples.iter().map(|(k, _, v)| (k.as_str(), *v)),
            |k| Ok(by_key[k].clone()),
        )
    }

    /// The target could not be scraped: every series it exposed ends now.
    /// Returns how many series were marked. The cache is kept, so the
    /// target's recovery costs no label parsing.
    pub fn mark_target_stale(&mut self, target: &str, ts: Millis) -> usize {
        let Some(cache) = self.targets.remove(target) else {
            return 0;
        };
        let n = cache
            .entries
            .values()
            .filter(|(id, _)| self.mark_stale_id(*id, ts))
            .count();
        self.targets.insert(target.to_owned(), cache);
        n
    }

    /// Forgets a target that is no longer scraped (its series age out).
    pub fn forget_target(&mut self, target: &str) {
        self.targets.remove(target);
    }

    /// [`SeriesStore::gc`], at most once per [`GC_EVERY`]: collection walks
    /// every series, and samples a little past retention cost only memory.
    pub fn maybe_gc(&mut self, now: Millis) {
        if self.last_gc.is_none_or(|t| now - t >= GC_EVERY) {
            self.gc(now);
        }
    }

    /// Drops samples older than `now - retention`, then series left empty.
    pub fn gc(&mut self, now: Millis) {
        self.last_gc = Some(now);
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
        if dead.is_empty() {
            return;
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
        for cache in self.targets.values_mut() {
            cache
                .entries
                .retain(|_, (id, _)| self.series.contains_key(id));
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
    pub fn select<'a, 'm>(
        &'a self,
        matchers: &'m [Matcher],
    ) -> impl Iterator<Item = SeriesRef<'a>> + use<'a, 'm> {
        let name_eq = matchers
            .iter()
            .find(|m| m.name == METRIC_NAME && m.op == MatchOp::Equal)
            .map(|m| m.value.as_str());
        let names: Box<dyn Iterator<Item = &'a BTreeSet<SeriesId>> + 'a> = match name_eq {
            Some(n) => Box::new(self.by_name.get(n).into_iter()),
            None => {
                let name_ms: Vec<&'m Matcher> =
                    matchers.iter().filter(|m| m.name == METRIC_NAME).collect();
                let by_name: Vec<&'a BTreeSet<SeriesId>> = self
                    .by_name
                    .iter()
                    .filter(|(n, _)| name_ms.iter().all(|m| m.matches_value(n)))
                    .map(|(_, ids)| ids)
                    .collect();
                Box::new(by_name.into_iter())
            }
        };
        names
            .flat_map(|ids| ids.iter())
            .filter_map(|id| self.series_ref(*id))
            .filter(move |s| matchers.iter().all(|m| m.matches(s.labels)))
    }
}

/// Appends to a series whose timestamps must strictly increase.
fn push(s: &mut SeriesData, ts: Millis, v: f64, retention: Millis) -> Result<(), AppendError> {
    if let Some(&(last, _)) = s.samples.last() {
        if ts == last {
            return Err(AppendError::Duplicate {
                labels: Labels::clone(&s.labels),
                ts,
            });
        }
        if ts < last {
            return Err(AppendError::OutOfOrder {
                labels: Labels::clone(&s.labels),
                ts,
                last,
            });
        }
        if s.samples.len() == s.samples.capacity() {
            reserve_for_window(&mut s.samples, ts - last, retention);
        }
    }
    s.samples.push((ts, v));
    Ok(())
}

/// Grows a full sample vector to what the series will hold at its current
/// pace: the retention window plus the samples that arrive between two
/// collections. Doubling would leave a scraped series' vector up to half
/// empty for good, since collection keeps its size steady.
fn reserve_for_window(samples: &mut Vec<(Millis, f64)>, step: Millis, retention: Millis) {
    let len = samples.len();
    let want = if step > 0 {
        usize::try_from((retention + GC_EVERY) / step + 2).unwrap_or(usize::MAX)
    } else {
        0
    };
    if want > len && want - len <= len.max(4) * 4 {
        samples.reserve_exact(want - len);
    } else {
        samples.reserve(1);
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

    fn parse_key(k: &str) -> Result<Labels, String> {
        crate::source::exposition::parse_series(k, crate::source::exposition::Format::Prometheus004)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_scrape_cache_reads_labels_once_per_series() {
        let mut s = SeriesStore::new(3_600_000);
        let mut reads = 0;
        for ts in [1000, 2000, 3000] {
            let o = s.ingest_raw("t", ts, [("a{k=\"1\"}", 1.0), ("a{k=\"2\"}", 2.0)], |k| {
                reads += 1;
                parse_key(k)
            });
            assert_eq!((o.appended, o.marked_stale), (2, 0));
        }
        assert_eq!(reads, 2);
        assert_eq!(s.sample_count(), 6);
    }

    #[test]
    fn two_spellings_of_one_series_are_one_series() {
        let mut s = SeriesStore::new(3_600_000);
        let o = s.ingest_raw("t", 1000, [("a{x=\"1\",y=\"2\"}", 1.0)], parse_key);
        assert_eq!(o.appended, 1);
        // Same labels, other order: the same series, and not stale.
        let o = s.ingest_raw("t", 2000, [("a{y=\"2\",x=\"1\"}", 2.0)], parse_key);
        assert_eq!((o.appended, o.marked_stale), (1, 0));
        assert_eq!(s.series_count(), 1);
        assert_eq!(
            s.get(&parse_key("a{x=\"1\",y=\"2\"}").unwrap())
                .unwrap()
                .samples(),
            &[(1000, 1.0), (2000, 2.0)]
        );
    }

    #[test]
    fn a_collected_series_comes_back_through_the_cache() {
        let mut s = SeriesStore::new(1000);
        s.ingest_raw("t", 1000, [("a", 1.0)], parse_key);
        // The target stops exposing it, it goes stale, then ages out.
        s.ingest_raw("t", 2000, [("b", 1.0)], parse_key);
        s.gc(10_000);
        assert_eq!(s.series_count(), 0);
        let o = s.ingest_raw("t", 11_000, [("a", 5.0), ("b", 6.0)], parse_key);
        assert_eq!(o.appended, 2);
        assert_eq!(
            s.get(&l(&[("__name__", "a")])).unwrap().samples(),
            &[(11_000, 5.0)]
        );
    }

    #[test]
    fn maybe_gc_collects_at_most_once_a_minute() {
        let mut s = SeriesStore::new(1000);
        let a = l(&[("__name__", "a")]);
        s.append(a.clone(), 0, 1.0).unwrap();
        s.maybe_gc(500);
        s.append(a.clone(), 5_000, 1.0).unwrap();
        // Past retention, but within a minute of the last collection.
        s.maybe_gc(30_000);
        assert_eq!(s.sample_count(), 2);
        s.maybe_gc(500 + GC_EVERY);
        assert_eq!(s.series_count(), 0);
    }

    #[test]
    fn an_unreadable_new_series_is_reported_not_stored() {
        let mut s = SeriesStore::new(3_600_000);
        let o = s.ingest_raw("t", 1000, [("ok", 1.0), ("bad{", 2.0)], parse_key);
        assert_eq!(o.appended, 1);
        assert_eq!(o.unreadable.len(), 1);
        assert_eq!(o.unreadable[0].key, "bad{");
        assert_eq!(s.series_count(), 1);
    }
}
