//! Label sets: the identity of a series and of an alert.
//!
//! A label set is kept sorted by name, so equality, hashing, ordering and
//! rendering are canonical without a sort step, which every consumer
//! (series store, alert fingerprints, chat rendering) relies on.
//!
//! The pairs are packed into one shared string, each name and value after
//! its length: the series store holds a label set per series, a million
//! of them at scale, and one allocation of the label text costs about half
//! of what a vector of shared-string pairs did (32 bytes of pointers per
//! pair before any text), reads without chasing a pointer per string, and
//! clones by a reference count.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The reserved label that carries a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// An ordered set of label name/value pairs.
///
/// `None` is the empty set, so `Labels::new()` does not allocate. The
/// packing is canonical (sorted, unique names, no empty values), so equal
/// sets have equal strings and the derived `Eq` and `Hash` agree.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels(Option<Arc<str>>);

/// Lengths are written as one `char` below the surrogates, which covers
/// any realistic label; longer strings take a marker and two digits.
const DIRECT: usize = 0xD800;
const LONG: char = '\u{E000}';

fn push_len(out: &mut String, n: usize) {
    let digit = |d: usize| char::from_u32(d as u32).expect("below the surrogates");
    if n < DIRECT {
        out.push(digit(n));
    } else {
        assert!(n < DIRECT * DIRECT, "label of {n} bytes");
        out.push(LONG);
        out.push(digit(n / DIRECT));
        out.push(digit(n % DIRECT));
    }
}

fn encoded_len(n: usize) -> usize {
    if n < DIRECT {
        char::from_u32(n as u32).map_or(3, char::len_utf8)
    } else {
        9
    }
}

/// Reads a length written by [`push_len`]; returns it and the rest.
fn take_len(s: &str) -> (usize, &str) {
    let mut it = s.chars();
    let c = it.next().expect("a length");
    if c != LONG {
        return (c as usize, &s[c.len_utf8()..]);
    }
    let (hi, lo) = (it.next().expect("digit"), it.next().expect("digit"));
    let used = c.len_utf8() + hi.len_utf8() + lo.len_utf8();
    (hi as usize * DIRECT + lo as usize, &s[used..])
}

/// The pairs of a packed label set, in order.
#[derive(Clone)]
pub struct Iter<'a>(&'a str);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        if self.0.is_empty() {
            return None;
        }
        let (n, rest) = take_len(self.0);
        let (name, rest) = rest.split_at(n);
        let (n, rest) = take_len(rest);
        let (value, rest) = rest.split_at(n);
        self.0 = rest;
        Some((name, value))
    }
}

impl Labels {
    pub fn new() -> Self {
        Self::default()
    }

    /// Packs pairs that are already sorted by name, unique and non-empty.
    fn pack<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Labels {
        let size: usize = pairs
            .clone()
            .map(|(k, v)| encoded_len(k.len()) + k.len() + encoded_len(v.len()) + v.len())
            .sum();
        if size == 0 {
            return Labels(None);
        }
        let mut s = String::with_capacity(size);
        for (k, v) in pairs {
            push_len(&mut s, k.len());
            s.push_str(k);
            push_len(&mut s, v.len());
            s.push_str(v);
        }
        Labels(Some(Arc::from(s)))
    }

    /// Packs pairs in any order; a later pair overrides an earlier one of
    /// the same name and an empty value removes the label, as a sequence
    /// of [`Labels::set`] calls would.
    fn from_pairs<K: AsRef<str>, V: AsRef<str>>(mut pairs: Vec<(K, V)>) -> Labels {
        // Stable, so among equal names the last written is last.
        pairs.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        let mut keep: Vec<(&str, &str)> = Vec::with_capacity(pairs.len());
        for (k, v) in &pairs {
            let (k, v) = (k.as_ref(), v.as_ref());
            match keep.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => keep.push((k, v)),
            }
        }
        keep.retain(|(_, v)| !v.is_empty());
        Labels::pack(keep.iter().copied())
    }

    fn text(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        for (k, v) in self.iter() {
            match k.cmp(name) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => return Some(v),
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }

    /// Sets a label; an empty value removes it, as in Prometheus where an
    /// empty label value is the same as no label.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        if value.is_empty() {
            self.remove(&name);
            return;
        }
        if self.get(&name) == Some(value.as_str()) {
            return;
        }
        let old = self.iter().filter(|(k, _)| *k != name);
        let at = old.clone().take_while(|(k, _)| **k < *name).count();
        let new = [(name.as_str(), value.as_str())];
        let pairs = old
            .clone()
            .take(at)
            .chain(new.iter().copied())
            .chain(old.skip(at));
        *self = Labels::pack(pairs);
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let v = self.get(name)?.to_owned();
        *self = Labels::pack(self.iter().filter(|(k, _)| *k != name));
        Some(v)
    }

    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }

    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn without_metric_name(&self) -> Labels {
        if self.metric_name().is_none() {
            return self.clone();
        }
        Labels::pack(self.iter().filter(|(k, _)| *k != METRIC_NAME))
    }

    pub fn iter(&self) -> Iter<'_> {
        Iter(self.text())
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Heap bytes this label set holds (shared with its clones).
    pub fn heap_bytes(&self) -> usize {
        // The reference counts sit before the text.
        self.0.as_ref().map_or(0, |s| s.len() + 16)
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
        let mut h = Fnv::new();
        for (k, v) in self.iter() {
            h.eat(k.as_bytes());
            h.eat(&[0xff]);
            h.eat(v.as_bytes());
            h.eat(&[0xfe]);
        }
        h.finish()
    }
}

/// Pairwise, name then value, as the sorted vector of pairs this replaced
/// ordered (and as a `BTreeMap` of the labels would).
impl Ord for Labels {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.iter().cmp(other.iter())
    }
}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pairs: Vec<(&str, &str)> = self.iter().collect();
        f.debug_tuple("Labels").field(&pairs).finish()
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
        Labels::from_pairs(iter.into_iter().collect())
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Labels {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Self {
        Labels::from_pairs(iter.into_iter().collect())
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        // Already sorted and unique: packed as it is.
        Labels::pack(
            map.iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.as_str(), v.as_str())),
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

/// FNV-1a, 64-bit: stable across builds, processes and platforms, unlike
/// `std`'s randomly seeded hasher, so what is derived from it (alert
/// fingerprints, runbook digests, silence ids, scrape slots, idempotency
/// fingerprints) can be stored and compared later. The one copy in the
/// crate.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Fnv {
    pub const fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub fn eat(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv::new()
    }
}

/// FNV-1a of `bytes` ([`Fnv`]).
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.eat(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fingerprints, digests and silence ids are stored: the hash must
    /// never change. Published FNV-1a 64 test vectors, and the same value
    /// fed in pieces.
    #[test]
    fn fnv_is_fnv_1a_64_and_pinned() {
        assert_eq!(fnv(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv(b"foobar"), 0x8594_4171_f739_67e8);
        let mut h = Fnv::new();
        h.eat(b"foo");
        h.eat(b"bar");
        assert_eq!(h.finish(), fnv(b"foobar"));
    }

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
    fn packing_is_canonical_and_long_strings_round_trip() {
        let long = "v".repeat(DIRECT + 5);
        let a: Labels = [("b", "2"), ("a", "1"), ("a", "x"), ("z", "")]
            .into_iter()
            .collect();
        let b = Labels::new().with("a", "x").with("b", "2");
        assert_eq!(a, b);
        assert_eq!(a.iter().collect::<Vec<_>>(), [("a", "x"), ("b", "2")]);
        assert_eq!(a.heap_bytes(), 16 + 8, "four lengths, four bytes");
        let c = b.clone().with("m", long.as_str()).with("é", "ü");
        assert_eq!(c.get("m"), Some(long.as_str()));
        assert_eq!(
            (c.get("é"), c.get("b"), c.get("c")),
            (Some("ü"), Some("2"), None)
        );
        assert_eq!(c.len(), 4);
        let mut d = c.clone();
        assert_eq!(d.remove("m").as_deref(), Some(long.as_str()));
        assert_eq!(d, b.clone().with("é", "ü"));
        assert_eq!(format!("{b:?}"), r#"Labels([("a", "x"), ("b", "2")])"#);
        assert!(Labels::new().with("a", "").is_empty());
        assert_eq!(Labels::new(), Labels::from(BTreeMap::new()));
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
