//! Slack request signatures (version `v0`), checked before anything in an
//! inbound request is parsed: `X-Slack-Signature` must be
//! `v0=` + hex(HMAC-SHA256(signing secret, "v0:" + timestamp + ":" + raw
//! body)), and `X-Slack-Request-Timestamp` within five minutes of now, so
//! a captured request cannot be replayed later. Model: no I/O, `now` is an
//! argument.

use hmac::{KeyInit, Mac};

use crate::clock::Millis;

/// How far a request's timestamp may be from now, either way (Slack's
/// recommendation).
pub const REPLAY_WINDOW_S: i64 = 5 * 60;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing header {0}")]
    Missing(&'static str),
    #[error("X-Slack-Request-Timestamp is not a number of seconds: {0:?}")]
    BadTimestamp(String),
    #[error(
        "request timestamp is {age_s}s away from now; more than {REPLAY_WINDOW_S}s is refused as a possible replay"
    )]
    Stale { age_s: i64 },
    #[error("X-Slack-Signature is not `v0=` and 64 hex digits")]
    Malformed,
    #[error("signature does not match the body")]
    Mismatch,
}

/// Checks one request. `timestamp` and `signature` are the header values
/// (`None` when absent); `body` is the raw body exactly as received.
pub fn verify(
    signing_secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: Millis,
) -> Result<(), SignatureError> {
    let ts = timestamp.ok_or(SignatureError::Missing("X-Slack-Request-Timestamp"))?;
    let sig = signature.ok_or(SignatureError::Missing("X-Slack-Signature"))?;
    let secs: i64 = ts
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp(ts.to_owned()))?;
    let age_s = now.div_euclid(1000).saturating_sub(secs);
    if age_s.abs() > REPLAY_WINDOW_S {
        return Err(SignatureError::Stale { age_s });
    }
    let want = sig
        .strip_prefix("v0=")
        .and_then(hex32)
        .ok_or(SignatureError::Malformed)?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(signing_secret)
        .expect("HMAC takes a key of any length");
    mac.update(b"v0:");
    mac.update(ts.as_bytes());
    mac.update(b":");
    mac.update(body);
    // Constant time: a forger learns nothing from how long a refusal takes.
    mac.verify_slice(&want)
        .map_err(|_| SignatureError::Mismatch)
}

/// 64 hex digits (either case) as 32 bytes.
fn hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's published example ("Verifying requests from Slack").
    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const NOW: Millis = 1_531_420_618_000 + 30_000;

    fn check(
        ts: Option<&str>,
        sig: Option<&str>,
        body: &str,
        now: Millis,
    ) -> Result<(), SignatureError> {
        verify(SECRET, ts, sig, body.as_bytes(), now)
    }

    #[test]
    fn slacks_own_example_verifies() {
        assert_eq!(check(Some(TS), Some(SIG), BODY, NOW), Ok(()));
        let upper = format!("v0={}", SIG[3..].to_uppercase());
        assert_eq!(check(Some(TS), Some(&upper), BODY, NOW), Ok(()));
    }

    #[test]
    fn a_changed_body_or_secret_is_a_forgery() {
        let forged = BODY.replace("text=", "text=pause");
        assert_eq!(
            check(Some(TS), Some(SIG), &forged, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"another secret", Some(TS), Some(SIG), BODY.as_bytes(), NOW),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed too: moving it breaks the signature.
        assert_eq!(
            check(Some("1531420619"), Some(SIG), BODY, NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn old_and_future_requests_are_refused_as_replays() {
        let five_min = REPLAY_WINDOW_S * 1000;
        let at = 1_531_420_618_000;
        assert_eq!(check(Some(TS), Some(SIG), BODY, at + five_min), Ok(()));
        assert_eq!(
            check(Some(TS), Some(SIG), BODY, at + five_min + 1000),
            Err(SignatureError::Stale { age_s: 301 })
        );
        assert_eq!(
            check(Some(TS), Some(SIG), BODY, at - five_min - 1000),
            Err(SignatureError::Stale { age_s: -301 })
        );
    }

    #[test]
    fn missing_or_malformed_headers_say_which() {
        assert_eq!(
            check(None, Some(SIG), BODY, NOW),
            Err(SignatureError::Missing("X-Slack-Request-Timestamp"))
        );
        assert_eq!(
            check(Some(TS), None, BODY, NOW),
            Err(SignatureError::Missing("X-Slack-Signature"))
        );
        assert!(matches!(
            check(Some("soon"), Some(SIG), BODY, NOW),
            Err(SignatureError::BadTimestamp(_))
        ));
        for bad in [
            "a2114d57",
            "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "v0=zz14d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "v0=",
        ] {
            assert_eq!(
                check(Some(TS), Some(bad), BODY, NOW),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }
}
