//! The scrape loop for one target.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::exposition::Format;
use super::{ScrapeBatch, Scraped};
use crate::clock::Clock;
use crate::config::ScrapeTarget;
use crate::labels::Labels;

/// Expositions beyond this are refused rather than buffered without end.
const MAX_BODY_BYTES: usize = 256 << 20;

/// The labels Prometheus attaches to a target: `job`, `instance`, and the
/// configured ones.
pub fn target_labels(t: &ScrapeTarget) -> Labels {
    let instance = match (t.url.host_str(), t.url.port_or_known_default()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => t.url.to_string(),
    };
    let mut l = Labels::new()
        .with("job", t.name.clone())
        .with("instance", instance);
    for (k, v) in t.labels.iter() {
        l.set(k, v);
    }
    l
}

/// Scrapes `target` every interval until shutdown. Batches go to the
/// watcher through `out`; when the queue is full the loop waits, so a slow
/// evaluator delays scrapes rather than dropping them.
pub async fn run(
    target: ScrapeTarget,
    http: reqwest::Client,
    clock: Clock,
    out: mpsc::Sender<ScrapeBatch>,
    shutdown: CancellationToken,
) {
    let labels = target_labels(&target);
    loop {
        let started = clock.now();
        let result = tokio::select! {
            r = scrape_once(&http, &target, &clock) => r,
            _ = shutdown.cancelled() => return,
        };
        if let Err(e) = &result {
            tracing::warn!(target = %target.name, url = %target.url, error = %e, "scrape failed");
        }
        let batch = ScrapeBatch {
            target: target.name.clone(),
            at: started,
            target_labels: labels.clone(),
            result,
            duration_ms: clock.now() - started,
        };
        tokio::select! {
            r = out.send(batch) => if r.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
        let next = started + target.interval.as_millis() as i64;
        tokio::select! {
            _ = clock.sleep_until(next) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

async fn scrape_once(
    http: &reqwest::Client,
    t: &ScrapeTarget,
    clock: &Clock,
) -> Result<Scraped, String> {
    let timeout = clock
        .real(t.timeout.to_std())
        .max(Duration::from_millis(50));
    let resp = http
        .get(t.url.clone())
        .header("Accept", "text/plain;version=0.0.4")
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                format!("timed out after {}", t.timeout)
            } else {
                format!("request failed: {e}")
            }
        })?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    if resp
        .content_length()
        .is_some_and(|n| n as usize > MAX_BODY_BYTES)
    {
        return Err(format!("exposition larger than {MAX_BODY_BYTES} bytes"));
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp
        .text()
        .await
        .map_err(|e| format!("reading body: {e}"))?;
    let format = Format::detect(content_type.as_deref(), &body);
    Scraped::parse(body, format).map_err(|e| e.to_string())
}

/// Adds target labels; a scraped label that clashes is kept as
/// `exported_<name>`, as Prometheus does without `honor_labels`.
pub fn attach_target_labels(labels: &mut Labels, target: &Labels) {
    for (k, v) in target.iter() {
        if let Some(old) = labels.get(k).map(str::to_owned)
            && old != v
        {
            labels.set(format!("exported_{k}"), old);
        }
        labels.set(k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::PromDuration;

    #[test]
    fn target_labels_and_clashes() {
        let t = ScrapeTarget {
            name: "sim".into(),
            url: reqwest::Url::parse("http://127.0.0.1:9100/metrics").unwrap(),
            interval: PromDuration::from_secs(15),
            timeout: PromDuration::from_secs(10),
            labels: Labels::new().with("env", "demo"),
        };
        let tl = target_labels(&t);
        assert_eq!(
            tl.to_string(),
            r#"{env="demo", instance="127.0.0.1:9100", job="sim"}"#
        );
        let mut l = Labels::new().with("__name__", "x").with("job", "inner");
        attach_target_labels(&mut l, &tl);
        assert_eq!(l.get("job"), Some("sim"));
        assert_eq!(l.get("exported_job"), Some("inner"));
    }
}
