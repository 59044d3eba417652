//! Numbers, durations and long names as people read them in chat, the terminal, the
//! checklist verdicts and the post-incident review. Model: no I/O. One
//! place, so every surface says "1,250,000" and "4m12s" the same way and
//! no module imports a chat or command module just to format a number.

use crate::duration::Millis;

/// Values as people read them: integers without a fraction, others with
/// three significant digits, thousands separated.
pub fn value(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let digits = format!("{}", v.abs() as u64);
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        return if v < 0.0 { format!("-{out}") } else { out };
    }
    let mag = v.abs();
    if mag >= 100.0 {
        format!("{v:.0}")
    } else if mag >= 10.0 {
        format!("{v:.1}")
    } else if mag >= 0.01 {
        format!("{v:.2}")
    } else {
        format!("{v:.3e}")
    }
}

/// A duration as people read it: `45s`, `4m12s`, `2h05m`. To the nearest
/// second (a span measured a moment short of 5m is `5m00s`).
pub fn span(ms: Millis) -> String {
    let s = (ms.max(0) + 500) / 1000;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// A duration measured on the clock (time left, time waited), written as
/// people write one and as a config would: `5m`, `1h30m`, `4m12s`. Whole
/// seconds, rounded to the nearest, since a measurement a moment after
/// its start is a few milliseconds short (5m less 1ms is `5m`, not
/// `4m59s999ms`); under a second it stays in milliseconds.
pub fn duration(ms: Millis) -> String {
    let ms = ms.max(0) as u64;
    let shown = if ms < 1000 {
        ms
    } else {
        (ms + 500) / 1000 * 1000
    };
    crate::duration::PromDuration::from_millis(shown).to_string()
}

/// `s` cut to at most `max` characters, the last an ellipsis when cut.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some(_) => {
            let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
            out.push('…');
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_like_people_write_them() {
        assert_eq!(value(612_345.0), "612,345");
        assert_eq!(value(-1_000.0), "-1,000");
        assert_eq!(value(0.853), "0.85");
        assert_eq!(value(12.345), "12.3");
        assert_eq!(value(1234.4), "1234");
        assert_eq!(value(0.0001234), "1.234e-4");
        assert_eq!(value(f64::NAN), "NaN");
    }

    #[test]
    fn measured_durations_read_as_they_were_written() {
        assert_eq!(duration(299_999), "5m");
        assert_eq!(duration(300_000), "5m");
        assert_eq!(duration(300_499), "5m");
        assert_eq!(duration(5_399_700), "1h30m");
        assert_eq!(duration(252_400), "4m12s");
        assert_eq!(duration(1_500), "2s");
        assert_eq!(duration(250), "250ms");
        assert_eq!(duration(-5), "0s");
    }

    #[test]
    fn spans_read_like_people_write_them() {
        assert_eq!(span(45_000), "45s");
        assert_eq!(span(252_000), "4m12s");
        assert_eq!(span(7_500_000), "2h05m");
        assert_eq!(span(137_000), "2m17s");
        assert_eq!(span(3_900_000), "1h05m");
        assert_eq!(span(-5), "0s");
        assert_eq!(span(299_999), "5m00s");
        assert_eq!(span(14_499), "14s");
    }
}
