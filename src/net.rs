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

/// A clock that follows another process's: asks `base`'s
/// `/api/v1/clock` (a simulator started with `--speed`) for its simulated
/// now and speed, and starts a scaled clock there, corrected by half the
/// round trip. Both then advance from their own monotonic clocks at the
/// same speed, so they stay in step without asking again.
pub async fn follow_clock(base: &reqwest::Url) -> anyhow::Result<crate::clock::Clock> {
    use anyhow::Context;
    #[derive(serde::Deserialize)]
    struct Answer {
        now: crate::clock::Millis,
        speed: f64,
    }
    let url = base
        .join("api/v1/clock")
        .with_context(|| format!("{base} cannot take the path api/v1/clock"))?;
    let http = client()?;
    let sent = tokio::time::Instant::now();
    let resp = http
        .get(url.clone())
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("asking {url} for the time"))?
        .error_for_status()
        .with_context(|| format!("asking {url} for the time"))?;
    let a: Answer = resp
        .json()
        .await
        .with_context(|| format!("{url} did not answer {{\"now\": ms, \"speed\": x}}"))?;
    anyhow::ensure!(
        a.speed > 0.0 && a.speed.is_finite() && a.speed <= 1e6,
        "{url} says its clock runs at {}x; expected a positive speed",
        a.speed
    );
    let half_trip = sent.elapsed().as_secs_f64() / 2.0;
    let now = a.now + (half_trip * a.speed * 1000.0) as crate::clock::Millis;
    Ok(crate::clock::Clock::scaled(now, a.speed))
}
