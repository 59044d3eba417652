//! The one HTTP client setup. reqwest is built without a TLS crypto
//! provider of its own (`rustls-no-provider`) so it does not clash with the
//! one slack-morphism brings; we install ring's, once, before any client
//! exists.

use std::sync::Once;

static PROVIDER: Once = Once::new();

pub fn install_crypto_provider() {
    PROVIDER.call_once(|| {
        // Err means another provider is already installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub fn client() -> anyhow::Result<reqwest::Client> {
    build(reqwest::Client::builder())
}

/// For URLs a request named (Slack's `response_url`): checked before the
/// call, so a redirect must not take the call somewhere unchecked.
pub fn client_without_redirects() -> anyhow::Result<reqwest::Client> {
    build(reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()))
}

fn build(b: reqwest::ClientBuilder) -> anyhow::Result<reqwest::Client> {
    install_crypto_provider();
    use anyhow::Context;
    b.user_agent(concat!("firebreak/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .build()
        .context("building the HTTP client")
}

/// The client for configured targets (`http` steps and checks). It
/// follows no redirect by itself: `executor::actions::http::send` follows
/// only those that stay on the target, so a target cannot send a call, its
/// body and its `Idempotency-Key` to another host.
#[derive(Clone)]
pub struct TargetClient(pub(crate) reqwest::Client);

pub fn target_client() -> anyhow::Result<TargetClient> {
    install_crypto_provider();
    use anyhow::Context;
    reqwest::Client::builder()
        .user_agent(concat!("firebreak/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map(TargetClient)
        .context("building the HTTP client for targets")
}

/// An error and its causes on one line, for logs and chat: reqwest's
/// own message hides why a request failed in its sources.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}
