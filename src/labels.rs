//! Label sets: the identity of a series and of an alert.
//!
//! A label set is a vector of name/value pairs kept sorted by name, so
//! equality, hashing, ordering and rendering are canonical without a sort
//! step, which every consumer (series store, alert fingerprints, chat
//! rendering) relies on. Names and values are shared strings: the series
//! store interns them ([`Interner`]), so the `job`, `instance` and metric
//! names of a hundred thousand series are held once, not once per series.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

/// The reserved label that carries a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// An ordered set of label name/value pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<(Arc<str>, Arc<str>)>);

impl Labels {
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(name))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.find(name).ok().map(|i| &*self.0[i].1)
    }

    /// Sets a label; an empty value removes it, as in Prometheus where an
    /// empty label value is the same as no label.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        if value.is_empty() {
            self.remove(&name);
            return;
        }
        match self.find(&name) {
            Ok(i) => self.0[i].1 = value.into(),
            Err(i) => self.0.insert(i, (name.into(), value.into())),
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let i = self.find(name).ok()?;
        Some(self.0.remove(i).1.to_string())
    }

    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }

    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn without_metric_name(&self) -> Labels {
        let mut out = self.clone();
        out.remove(METRIC_NAME);
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The labels as an owned map, for templates and JSON.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// A stable 64-bit fingerprint (FNV-1a over the sorted pairs), used as an
    /// alert identity in the store and in chat. Stable across processes and
    /// releases, unlike `std`'s randomly seeded hasher.
    pub fn fingerprint(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        for (k, v) in self.iter() {
            eat(k.as_bytes());
            eat(&[0xff]);
            eat(v.as_bytes());
            eat(&[0xfe]);
        }
        h
    }
}

/// Shares equal strings between label sets. The series store keeps one,
/// so a name or value repeated across its series is held once.
#[derive(Debug, Default)]
pub struct Interner(HashSet<Arc<str>, foldhash::fast::RandomState>);

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(a.clone());
        a
    }

    /// The same labels, made of this interner's strings, with no spare
    /// capacity.
    pub fn labels(&mut self, l: &Labels) -> Labels {
        let mut v = Vec::with_capacity(l.len());
        v.extend(l.iter().map(|(k, v)| (self.intern(k), self.intern(v))));
        Labels(v)
    }

    /// Forgets the strings no label set holds any more.
    pub fn prune(&mut self) {
        self.0.retain(|s| Arc::strong_count(s) > 1);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// As a JSON object, the way label sets are stored and sent.
impl serde::Serialize for Labels {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> serde::Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::<String, String>::deserialize(d).map(Labels::from)
    }
}

impl FromIterator<(String, String)> for Labels {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut out = Labels::new();
        for (k, v) in iter {
            out.set(k, v);
        }
        out
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Labels {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Self {
        iter.into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        // Already sorted and unique: no search per pair.
        Labels(
            map.into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// Renders as Prometheus does: `name{a="1", b="2"}`.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.metric_name() {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for (k, v) in self.iter().filter(|(k, _)| *k != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{k}=\"")?;
            for c in v.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_value_removes_label() {
        let l = Labels::new().with("a", "1").with("a", "");
        assert!(l.is_empty());
    }

    #[test]
    fn display_escapes_and_orders() {
        let l: Labels = [("__name__", "up"), ("z", "a\"b"), ("a", "x\\y")]
            .into_iter()
            .collect();
        assert_eq!(l.to_string(), r#"up{a="x\\y", z="a\"b"}"#);
    }

    #[test]
    fn serializes_as_a_map_and_keeps_the_order_of_a_map() {
        let l: Labels = [("b", "2"), ("a", "1"), ("c", "")].into_iter().collect();
        let j = serde_json::to_string(&l).unwrap();
        assert_eq!(j, r#"{"a":"1","b":"2"}"#);
        let back: Labels = serde_json::from_str(&j).unwrap();
        assert_eq!(back, l);
        let m: Labels = [("a", "1"), ("b", "3")].into_iter().collect();
        let n: Labels = [("a", "2")].into_iter().collect();
        assert_eq!(l.cmp(&m), l.to_map().cmp(&m.to_map()));
        assert_eq!(m.cmp(&n), m.to_map().cmp(&n.to_map()));
        let mut r = l.clone();
        assert_eq!(r.remove("a").as_deref(), Some("1"));
        assert_eq!((r.get("a"), r.get("b")), (None, Some("2")));
    }

    #[test]
    fn interned_labels_share_strings_and_pruning_forgets_unused_ones() {
        let mut i = Interner::new();
        let a: Labels = [("job", "sim"), ("id", "1")].into_iter().collect();
        let b: Labels = [("job", "sim"), ("id", "2")].into_iter().collect();
        let (a, b) = (i.labels(&a), i.labels(&b));
        assert!(Arc::ptr_eq(&a.0[1].1, &b.0[1].1), "one \"sim\"");
        assert_eq!(i.len(), 5, "job, sim, id, 1, 2");
        drop(a);
        i.prune();
        assert_eq!(i.len(), 4, "\"1\" is gone");
        assert_eq!(b.get("id"), Some("2"));
    }

    const PINNED_AB_FINGERPRINT: u64 = 2_639_922_437_359_951_817;

    #[test]
    fn fingerprint_is_order_independent_and_stable() {
        let a: Labels = [("a", "1"), ("b", "2")].into_iter().collect();
        let b: Labels = [("b", "2"), ("a", "1")].into_iter().collect();
        assert_eq!(a.fingerprint(), b.fingerprint());
        // Pinned so that a change of hash (which would orphan stored alert
        // state) is a deliberate decision.
        assert_eq!(a.fingerprint(), PINNED_AB_FINGERPRINT);
        let c: Labels = [("a", "12")].into_iter().collect();
        let d: Labels = [("a", "1"), ("2", "")].into_iter().collect();
        assert_ne!(c.fingerprint(), d.fingerprint());
    }
}
