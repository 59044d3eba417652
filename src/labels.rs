//! Label sets: the identity of a series and of an alert.
//!
//! A `BTreeMap` keeps labels sorted, so equality, hashing and rendering are
//! canonical without a separate sort step, which every consumer (series
//! store, alert fingerprints, chat rendering) relies on.

use std::collections::BTreeMap;
use std::fmt;

/// The reserved label that carries a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// An ordered set of label name/value pairs.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Labels(BTreeMap<String, String>);

impl Labels {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Sets a label; an empty value removes it, as in Prometheus where an
    /// empty label value is the same as no label.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        if value.is_empty() {
            self.0.remove(&name);
        } else {
            self.0.insert(name, value);
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
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
        out.0.remove(METRIC_NAME);
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
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
        for (k, v) in &self.0 {
            eat(k.as_bytes());
            eat(&[0xff]);
            eat(v.as_bytes());
            eat(&[0xfe]);
        }
        h
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
        map.into_iter().collect()
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
