//! Durations in the Prometheus style: `30s`, `5m`, `1h30m`, `250ms`, `1d`.
//!
//! Users copy these from Prometheus rule files and Alertmanager configs, so
//! the grammar is Prometheus's: one or more `<integer><unit>` pairs, units in
//! descending order, each at most once; units `ms s m h d w y` (a day is 24h,
//! a week 7d, a year 365d).
//!
//! Also the crate's instant, [`Millis`], so model code can speak of time
//! without the clock (which sleeps, on tokio).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration; expected a duration like 30s, 5m or 1h30m")]
    Empty,
    #[error(
        "invalid duration {0:?}; expected <number><unit> pairs like 30s, 5m or 1h30m (units: ms, s, m, h, d, w, y)"
    )]
    Syntax(String),
    #[error("invalid duration {0:?}: units must go from largest to smallest, each at most once")]
    Order(String),
    #[error("duration {0:?} is too large")]
    Overflow(String),
}

/// A non-negative duration with millisecond resolution, written the
/// Prometheus way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromDuration(u64);

impl PromDuration {
    pub const ZERO: PromDuration = PromDuration(0);

    pub const fn from_millis(ms: u64) -> Self {
        PromDuration(ms)
    }

    pub const fn from_secs(s: u64) -> Self {
        PromDuration(s * 1000)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    pub fn to_std(self) -> Duration {
        Duration::from_millis(self.0)
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn parse(s: &str) -> Result<Self, DurationError> {
        if s.is_empty() {
            return Err(DurationError::Empty);
        }
        if s == "0" {
            return Ok(PromDuration(0));
        }
        let bytes = s.as_bytes();
        let mut i = 0;
        let mut total: u64 = 0;
        let mut last_unit_rank: Option<usize> = None;
        while i < bytes.len() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return Err(DurationError::Syntax(s.to_owned()));
            }
            let n: u64 = s[start..i]
                .parse()
                .map_err(|_| DurationError::Overflow(s.to_owned()))?;
            let ustart = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let unit = &s[ustart..i];
            let Some(rank) = UNITS.iter().position(|(u, _)| *u == unit) else {
                return Err(DurationError::Syntax(s.to_owned()));
            };
            if last_unit_rank.is_some_and(|r| rank <= r) {
                return Err(DurationError::Order(s.to_owned()));
            }
            last_unit_rank = Some(rank);
            let add = n
                .checked_mul(UNITS[rank].1)
                .ok_or_else(|| DurationError::Overflow(s.to_owned()))?;
            total = total
                .checked_add(add)
                .ok_or_else(|| DurationError::Overflow(s.to_owned()))?;
        }
        Ok(PromDuration(total))
    }
}

impl From<PromDuration> for Duration {
    fn from(d: PromDuration) -> Duration {
        d.to_std()
    }
}

impl std::str::FromStr for PromDuration {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PromDuration::parse(s)
    }
}

/// Formats the way Prometheus prints durations: largest units first, `0s`
/// for zero.
impl fmt::Display for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        for (unit, ms) in UNITS {
            // Prometheus only uses w/y when the value divides evenly.
            if (unit == "y" || unit == "w") && !rest.is_multiple_of(ms) {
                continue;
            }
            if rest >= ms {
                write!(f, "{}{}", rest / ms, unit)?;
                rest %= ms;
            }
        }
        Ok(())
    }
}

impl Serialize for PromDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PromDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_forms() {
        assert_eq!(PromDuration::parse("30s").unwrap().as_millis(), 30_000);
        assert_eq!(PromDuration::parse("1h30m").unwrap().as_millis(), 5_400_000);
        assert_eq!(PromDuration::parse("250ms").unwrap().as_millis(), 250);
        assert_eq!(PromDuration::parse("1d").unwrap().as_millis(), 86_400_000);
        assert_eq!(PromDuration::parse("0").unwrap().as_millis(), 0);
        assert_eq!(
            PromDuration::parse("1m30s500ms").unwrap().as_millis(),
            90_500
        );
    }

    #[test]
    fn rejects_bad_forms_with_reasons() {
        assert_eq!(PromDuration::parse(""), Err(DurationError::Empty));
        assert!(matches!(
            PromDuration::parse("5"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            PromDuration::parse("5x"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            PromDuration::parse("-5s"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            PromDuration::parse("1.5h"),
            Err(DurationError::Syntax(_))
        ));
        assert!(matches!(
            PromDuration::parse("30s1m"),
            Err(DurationError::Order(_))
        ));
        assert!(matches!(
            PromDuration::parse("1m1m"),
            Err(DurationError::Order(_))
        ));
        assert!(matches!(
            PromDuration::parse("99999999999999999999y"),
            Err(DurationError::Overflow(_))
        ));
        let msg = PromDuration::parse("5x").unwrap_err().to_string();
        assert!(msg.contains("30s"), "{msg}");
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "0s",
            "30s",
            "1h30m",
            "250ms",
            "1d",
            "2w",
            "1y",
            "1m30s500ms",
        ] {
            assert_eq!(PromDuration::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(PromDuration::from_secs(90 * 60).to_string(), "1h30m");
    }
}
