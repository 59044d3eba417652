//! Who is at the console, and what they may do there.
//!
//! Sign-in is off by default. With `server.console.sign_in: tokens`, a
//! person signs in with a token issued to their chat user id
//! (`firebreak console-token add`); the browser then holds a session
//! cookie, and their role is read from `chat.roles` on every request, so
//! a role taken away in config is gone at the next reload. Identity is
//! the user id the token was issued to; the name beside it is only shown.
//! With `sign_in: proxy`, an authenticating proxy in front names the
//! person in a header, believed only from the proxy's addresses
//! ([`proxied`]).
//!
//! Every action is a form post that carries a CSRF token derived from the
//! session's secret (behind a proxy, from a secret cookie of the
//! browser's own) and comes from the console's own origin; the cookies
//! are `SameSite=Strict` and `HttpOnly` besides.
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
    /// A signed-in person, with the CSRF token their forms carry, and
    /// the `Set-Cookie` value of the secret it derives from when that is
    /// new to this browser (its [`CSRF_COOKIE`], set with the answer).
    Person {
        actor: Actor,
        csrf: String,
        mint: Option<String>,
    },
}

impl Visitor {
    pub fn person(&self) -> Option<(&Actor, &str)> {
        match self {
            Visitor::Person { actor, csrf, .. } => Some((actor, csrf)),
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

/// What a request claims through the proxy's sign-in header that is not
/// a person ([`proxied`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// No header, or sign-in is not the proxy's.
    None,
    /// The header, from an address that is not a trusted proxy: someone
    /// naming themselves.
    Untrusted,
    /// The header from the proxy, but empty, repeated, not text or too
    /// long.
    Malformed,
}

/// The longest id or name the proxy's headers may carry, in bytes.
pub const MAX_PROXY_ID: usize = 200;

/// Who the proxy's headers name, as (chat user id, name to show), when
/// `peer` is one of its trusted addresses; `Ok(None)` when there is no
/// header; the claim otherwise. The id is the header's, or the chat user
/// id `users` maps it to; the name is only shown.
pub fn proxied(
    p: &crate::config::ProxySignIn,
    headers: &HeaderMap,
    peer: Option<std::net::IpAddr>,
) -> Result<Option<(String, String)>, Claim> {
    let mut values = headers.get_all(p.user_header.as_str()).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    // 1. Only the proxy may say who someone is.
    if !peer.is_some_and(|ip| p.trusted.iter().any(|t| t.contains(ip))) {
        return Err(Claim::Untrusted);
    }
    // 2. One bounded, printable value, or nobody.
    let text = |v: &axum::http::HeaderValue| {
        v.to_str()
            .ok()
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= MAX_PROXY_ID)
            .map(str::to_owned)
    };
    let (Some(id), None) = (text(first), values.next()) else {
        return Err(Claim::Malformed);
    };
    let name = p
        .name_header
        .as_deref()
        .and_then(|h| headers.get(h))
        .and_then(text)
        .unwrap_or_else(|| id.clone());
    let user = p.users.get(&id).cloned().unwrap_or(id);
    Ok(Some((user, name)))
}

/// The cookie that holds a proxy-signed-in browser's CSRF secret (there is
/// no session of ours to derive it from): set on the first page, sent
/// back with each form post, out of scripts' and other sites' reach.
pub const CSRF_COOKIE: &str = "firebreak_csrf";

/// The `Set-Cookie` value that keeps CSRF secret `secret` for the
/// browser's session.
pub fn csrf_cookie(secret: &str, secure: bool) -> String {
    format!(
        "{CSRF_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether a page may be read, and as whom. `api_token`: whether the API
/// has a bearer token (its reads are closed to anyone without it).
pub fn decide(
    sign_in: SignIn,
    open_to_viewers: bool,
    api_token: bool,
    bearer: Bearer,
    person: Option<Visitor>,
    claim: Claim,
) -> Gate {
    // 0. Someone naming themselves in the proxy's header, or a header the
    //    proxy mangled, is refused: never read as anyone, nor anonymous.
    match claim {
        Claim::Untrusted => {
            return Gate::Refused(
                "a sign-in header came from an address that is not a trusted proxy (server.console.proxy.trusted)",
            );
        }
        Claim::Malformed => {
            return Gate::Refused("the proxy's sign-in header is empty, repeated or too long");
        }
        Claim::None => {}
    }
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
        // 4. Behind a signing-in proxy, likewise; signing in is the
        //    proxy's, so there is no page of ours to send them to.
        SignIn::Proxy if open_to_viewers => Gate::Read(Visitor::Anonymous),
        SignIn::Proxy => {
            Gate::Refused("the proxy in front names nobody; open the console through it to sign in")
        }
        // 5. Without sign-in, it is as open as the JSON API: no more.
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
            mint: None,
        }
    }

    #[test]
    fn the_gate_follows_its_rules_in_order() {
        use Bearer::{Right, Wrong};
        let no = Bearer::None;
        use SignIn::*;
        // 1
        assert_eq!(
            decide(Tokens, false, true, Wrong, Some(ana()), Claim::None),
            Gate::Read(ana())
        );
        // 2
        assert_eq!(
            decide(Off, false, true, Right, None, Claim::None),
            Gate::Read(Visitor::Bearer)
        );
        assert!(matches!(
            decide(Tokens, true, true, Wrong, None, Claim::None),
            Gate::Refused(_)
        ));
        // 3
        assert_eq!(
            decide(Tokens, true, false, no, None, Claim::None),
            Gate::Read(Visitor::Anonymous)
        );
        assert_eq!(
            decide(Tokens, false, false, no, None, Claim::None),
            Gate::SignInFirst
        );
        // 5
        assert!(matches!(
            decide(Off, false, true, no, None, Claim::None),
            Gate::Refused(_)
        ));
        assert_eq!(
            decide(Off, false, false, no, None, Claim::None),
            Gate::Read(Visitor::Anonymous)
        );
    }

    #[test]
    fn behind_a_proxy_only_the_proxy_names_people() {
        use Bearer::Right;
        use SignIn::*;
        let no = Bearer::None;
        // 0, before a person and before the bearer.
        for claim in [Claim::Untrusted, Claim::Malformed] {
            assert!(matches!(
                decide(Proxy, true, false, Right, Some(ana()), claim),
                Gate::Refused(_)
            ));
        }
        // 4
        assert_eq!(
            decide(Proxy, false, false, no, Some(ana()), Claim::None),
            Gate::Read(ana())
        );
        assert_eq!(
            decide(Proxy, true, false, no, None, Claim::None),
            Gate::Read(Visitor::Anonymous)
        );
        assert!(matches!(
            decide(Proxy, false, false, no, None, Claim::None),
            Gate::Refused(_)
        ));
    }

    #[test]
    fn the_proxys_header_names_someone_only_from_the_proxy() {
        let c = crate::config::Config::load(
            "c.yaml",
            "server:\n  console:\n    sign_in: proxy\n    proxy:\n      user_header: X-Forwarded-User\n      name_header: X-Forwarded-Preferred-Username\n      trusted: [10.1.0.0/16, '::1']\n      users: {ana@example.com: U024BE7LH}\n",
        )
        .unwrap();
        let p = c.server.console.proxy.unwrap();
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(*k, v.parse().unwrap());
            }
            m
        };
        let proxy = Some("10.1.2.3".parse().unwrap());
        let ana = h(&[
            ("x-forwarded-user", "ana@example.com"),
            ("x-forwarded-preferred-username", "Ana"),
        ]);
        assert_eq!(
            proxied(&p, &ana, proxy),
            Ok(Some(("U024BE7LH".into(), "Ana".into())))
        );
        assert_eq!(
            proxied(&p, &ana, Some("::ffff:10.1.9.9".parse().unwrap())),
            Ok(Some(("U024BE7LH".into(), "Ana".into()))),
            "an IPv4 proxy reached over IPv6"
        );
        assert_eq!(
            proxied(&p, &ana, Some("::1".parse().unwrap()))
                .unwrap()
                .unwrap()
                .0,
            "U024BE7LH"
        );
        // Not listed: the proxy's id is taken as the chat user id.
        assert_eq!(
            proxied(&p, &h(&[("x-forwarded-user", "U07BOB")]), proxy),
            Ok(Some(("U07BOB".into(), "U07BOB".into())))
        );
        assert_eq!(proxied(&p, &h(&[]), None), Ok(None));
        for peer in [Some("10.2.0.1".parse().unwrap()), None] {
            assert_eq!(proxied(&p, &ana, peer), Err(Claim::Untrusted));
        }
        let long = "u".repeat(MAX_PROXY_ID + 1);
        for bad in [
            h(&[("x-forwarded-user", "")]),
            h(&[("x-forwarded-user", long.as_str())]),
            h(&[("x-forwarded-user", "a"), ("x-forwarded-user", "b")]),
        ] {
            assert_eq!(proxied(&p, &bad, proxy), Err(Claim::Malformed));
        }
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
