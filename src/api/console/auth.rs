//! Who is at the console, and what they may do there.
//!
//! Sign-in is off by default. With `server.console.sign_in: tokens`, a
//! person signs in with a token issued to their chat user id
//! (`firebreak console-token add`); the browser then holds a session
//! cookie, and their role is read from `chat.roles` on every request, so
//! a role taken away in config is gone at the next reload. Identity is
//! the user id the token was issued to; the name beside it is only shown.
//!
//! Every action is a form post that carries a CSRF token derived from the
//! session's secret (which the page's origin alone can read) and comes
//! from the console's own origin; the session cookie is `SameSite=Strict`
//! and `HttpOnly` besides.
//!
//! [`decide`] is the policy, pure and numbered like `dispatch.rs`; the
//! handlers gather what it needs.

use std::fmt::Write as _;

use axum::http::{HeaderMap, header};
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::command::Actor;

/// The cookie a signed-in browser holds: the session's secret.
pub const SESSION_COOKIE: &str = "firebreak_session";

/// What every sign-in token starts with, so one pasted in the wrong place
/// (a chat message, a log) is recognisable.
pub const TOKEN_PREFIX: &str = "fbc_";

pub use crate::config::SignIn;

/// A fresh secret: the prefix and 32 random bytes, URL-safe base64.
pub fn mint(prefix: &str) -> Result<String, getrandom::Error> {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// What the store keeps of a secret: its SHA-256, in hex.
pub fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// A token's public id, from its digest: enough to list and revoke it by,
/// nothing that helps guess it.
pub fn token_id(digest: &str) -> String {
    digest.chars().take(12).collect()
}

/// The CSRF token of the session whose secret is `session`: only a page
/// the session was shown can carry it.
pub fn csrf_for(session: &str) -> String {
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(session.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(b"firebreak console csrf");
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// Whether a form post comes from the console's own pages. Browsers send
/// `Origin` with every POST (and `Sec-Fetch-Site`); a post that names
/// another origin, or says it is cross-site, is refused. A client that
/// sends neither (curl) is not a browser another site can drive.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match (get("origin"), get("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    }
}

/// Whether the browser reached the console over HTTPS (directly or, as
/// the proxy in front says, through it): then the cookie is `Secure`.
pub fn over_https(headers: &HeaderMap) -> bool {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    get("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"))
        || get("origin").is_some_and(|o| o.starts_with("https://"))
}

/// The `Set-Cookie` value that keeps `secret` for `max_age_s` seconds.
pub fn session_cookie(secret: &str, max_age_s: u64, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={secret}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn cleared_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
}

/// Who is asking for a page.
#[derive(Clone, Debug, PartialEq)]
pub enum Visitor {
    /// Nobody signed in, on a console that lets anyone read.
    Anonymous,
    /// A caller with the API's bearer token: reads; it names nobody, so it
    /// never acts.
    Bearer,
    /// A signed-in person, with the CSRF token their forms carry.
    Person { actor: Actor, csrf: String },
}

impl Visitor {
    pub fn person(&self) -> Option<(&Actor, &str)> {
        match self {
            Visitor::Person { actor, csrf } => Some((actor, csrf)),
            _ => None,
        }
    }
}

/// The bearer token as the request presented it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bearer {
    None,
    Right,
    Wrong,
}

/// What [`decide`] says about a page request.
#[derive(Clone, Debug, PartialEq)]
pub enum Gate {
    Read(Visitor),
    /// Send them to the sign-in page.
    SignInFirst,
    /// 401, with why.
    Refused(&'static str),
}

/// Whether a page may be read, and as whom. `api_token`: whether the API
/// has a bearer token (its reads are closed to anyone without it).
pub fn decide(
    sign_in: SignIn,
    open_to_viewers: bool,
    api_token: bool,
    bearer: Bearer,
    person: Option<Visitor>,
) -> Gate {
    // 1. A signed-in person reads, whatever else the request carries.
    if let Some(p) = person {
        return Gate::Read(p);
    }
    // 2. The API's bearer reads, as it reads the JSON API; a wrong one is
    //    refused, never taken as anonymous.
    match bearer {
        Bearer::Right => return Gate::Read(Visitor::Bearer),
        Bearer::Wrong => {
            return Gate::Refused("the bearer token is not the one in server.token_secret");
        }
        Bearer::None => {}
    }
    match sign_in {
        // 3. With sign-in, the console is for signed-in people unless it
        //    is opened to viewers.
        SignIn::Tokens if open_to_viewers => Gate::Read(Visitor::Anonymous),
        SignIn::Tokens => Gate::SignInFirst,
        // 4. Without sign-in, it is as open as the JSON API: no more.
        SignIn::Off if api_token => Gate::Refused(
            "the console shows what the API does, which needs `Authorization: Bearer` with server.token_secret; for browsers, turn on server.console.sign_in",
        ),
        SignIn::Off => Gate::Read(Visitor::Anonymous),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roles::Role;

    fn ana() -> Visitor {
        Visitor::Person {
            actor: Actor {
                id: "U024BE7LH".into(),
                name: "ana".into(),
                role: Role::Commander,
            },
            csrf: "c".into(),
        }
    }

    #[test]
    fn the_gate_follows_its_rules_in_order() {
        use Bearer::{Right, Wrong};
        let no = Bearer::None;
        use SignIn::*;
        // 1
        assert_eq!(
            decide(Tokens, false, true, Wrong, Some(ana())),
            Gate::Read(ana())
        );
        // 2
        assert_eq!(
            decide(Off, false, true, Right, None),
            Gate::Read(Visitor::Bearer)
        );
        assert!(matches!(
            decide(Tokens, true, true, Wrong, None),
            Gate::Refused(_)
        ));
        // 3
        assert_eq!(
            decide(Tokens, true, false, no, None),
            Gate::Read(Visitor::Anonymous)
        );
        assert_eq!(decide(Tokens, false, false, no, None), Gate::SignInFirst);
        // 4
        assert!(matches!(
            decide(Off, false, true, no, None),
            Gate::Refused(_)
        ));
        assert_eq!(
            decide(Off, false, false, no, None),
            Gate::Read(Visitor::Anonymous)
        );
    }

    #[test]
    fn secrets_are_long_random_and_kept_only_as_digests() {
        let a = mint(TOKEN_PREFIX).unwrap();
        let b = mint(TOKEN_PREFIX).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("fbc_") && a.len() == 4 + 43, "{a}");
        let d = digest(&a);
        assert_eq!(d.len(), 64);
        assert!(!d.contains(&a[4..]));
        assert_eq!(token_id(&d).len(), 12);
        assert_ne!(csrf_for(&a), csrf_for(&b));
        assert_eq!(csrf_for(&a), csrf_for(&a));
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "x_firebreak_session=no; firebreak_session=yes; other=1"
                .parse()
                .unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("yes"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn a_post_from_another_site_is_not_the_consoles() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        assert!(same_origin(&h(&[
            ("host", "fb:9095"),
            ("origin", "http://fb:9095")
        ])));
        assert!(same_origin(&h(&[("host", "fb:9095")])));
        assert!(!same_origin(&h(&[
            ("host", "fb:9095"),
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&h(&[("host", "fb:9095"), ("origin", "null")])));
        assert!(!same_origin(&h(&[
            ("host", "fb:9095"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "fb:9095"),
            ("sec-fetch-site", "same-site")
        ])));
    }

    #[test]
    fn the_session_cookie_is_strict_and_out_of_scripts_reach() {
        let c = session_cookie("s3cret", 3600, true);
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/",
            "Max-Age=3600",
        ] {
            assert!(c.contains(part), "{c}");
        }
        assert!(!session_cookie("s", 1, false).contains("Secure"));
    }
}
