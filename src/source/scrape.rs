//! The scrape loop for one target.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::exposition::Format;
use super::{ScrapeBatch, Scraped};
use crate::clock::{Clock, Millis};
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

/// Where in each interval `target` is scraped, in `[0, interval)`: stable
/// for a target (a hash of its name and URL), and different targets land
/// at different points, so their fetches and ingests spread over the
/// interval instead of all arriving together with rule evaluation, as
/// Prometheus spreads its targets.
pub fn scrape_offset(target: &ScrapeTarget) -> Millis {
    let interval = target.interval.as_millis() as Millis;
    if interval <= 0 {
        return 0;
    }
    // FNV-1a: std's hasher is randomly seeded per process, and a target
    // should keep its slot across restarts.
    let mut h = crate::labels::Fnv::new();
    h.eat(target.name.as_bytes());
    h.eat(&[0xff]);
    h.eat(target.url.as_str().as_bytes());
    (h.finish() % interval as u64) as Millis
}

/// The first instant at or after `now` that lies `offset` past a multiple
/// of `interval`.
pub fn next_slot(now: Millis, interval: Millis, offset: Millis) -> Millis {
    let interval = interval.max(1);
    let at = now - now.rem_euclid(interval) + offset.rem_euclid(interval);
    if at < now { at + interval } else { at }
}

/// Scrapes `target` every interval, at its [`scrape_offset`], until
/// shutdown. Batches go to the watcher through `out`; when the queue is
/// full the loop waits, so a slow evaluator delays scrapes rather than
/// dropping them.
pub async fn run(
    target: ScrapeTarget,
    http: reqwest::Client,
    clock: Clock,
    out: mpsc::Sender<ScrapeBatch>,
    shutdown: CancellationToken,
) {
    let labels = target_labels(&target);
    let interval = (target.interval.as_millis() as Millis).max(1);
    let offset = scrape_offset(&target);
    let mut next = next_slot(clock.now(), interval, offset);
    loop {
        tokio::select! {
            _ = clock.sleep_until(next) => {}
            _ = shutdown.cancelled() => return,
        }
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
        // From the slot, not from when the sleep ended, so wake-up delays
        // do not accumulate; slots a slow scrape overran are skipped.
        next = next_slot(clock.now().max(next + interval), interval, offset);
    }
}

/// One scrape of `target` now, as the watcher would receive it: for
/// one-off readings (`firebreak check`) where no scrape loop runs.
pub async fn scrape_now(
    http: &reqwest::Client,
    target: &ScrapeTarget,
    clock: &Clock,
) -> ScrapeBatch {
    let started = clock.now();
    let result = scrape_once(http, target, clock).await;
    ScrapeBatch {
        target: target.name.clone(),
        at: started,
        target_labels: target_labels(target),
        result,
        duration_ms: clock.now() - started,
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
    let body = read_body(resp).await?;
    let format = Format::detect(content_type.as_deref(), &body);
    Scraped::parse(body, format).map_err(|e| e.to_string())
}

/// The body as one buffer: sized from the announced length and filled
/// chunk by chunk, so a large exposition is held once while it arrives
/// (collecting it whole and then decoding it to text held it two or three
/// times over, for every target scraped at that moment).
async fn read_body(mut resp: reqwest::Response) -> Result<String, String> {
    let hint = resp.content_length().unwrap_or(0) as usize;
    let mut buf = Vec::with_capacity(hint.min(MAX_BODY_BYTES));
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading body: {e}"))?
    {
        if buf.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("exposition larger than {MAX_BODY_BYTES} bytes"));
        }
        buf.extend_from_slice(&chunk);
    }
    // Invalid UTF-8 is replaced, as reading the body as text did.
    Ok(String::from_utf8(buf)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
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

    fn target(name: &str, url: &str, secs: u64) -> ScrapeTarget {
        ScrapeTarget {
            name: name.into(),
            url: reqwest::Url::parse(url).unwrap(),
            interval: PromDuration::from_secs(secs),
            timeout: PromDuration::from_secs(secs),
            labels: Labels::new(),
        }
    }

    #[test]
    fn offsets_are_stable_within_the_interval_and_spread() {
        let a = target("a", "http://10.0.0.1:9100/metrics", 10);
        assert_eq!(scrape_offset(&a), scrape_offset(&a.clone()));
        let offsets: Vec<Millis> = (0..50)
            .map(|i| scrape_offset(&target(&format!("t{i}"), "http://h:1/metrics", 10)))
            .collect();
        assert!(offsets.iter().all(|o| (0..10_000).contains(o)));
        let distinct: std::collections::BTreeSet<_> = offsets.iter().collect();
        assert!(distinct.len() > 40, "{offsets:?}");
        // Pinned: a target keeps its slot across releases and restarts.
        assert_eq!(scrape_offset(&a), PINNED_A_OFFSET);
    }

    const PINNED_A_OFFSET: Millis = 7_307;

    #[test]
    fn slots_keep_the_offset_and_the_interval() {
        assert_eq!(next_slot(12_345, 10_000, 3_000), 13_000);
        assert_eq!(next_slot(13_000, 10_000, 3_000), 13_000);
        assert_eq!(next_slot(13_001, 10_000, 3_000), 23_000);
        // The loop asks from one slot past the last: exactly one interval.
        assert_eq!(next_slot(13_000 + 10_000, 10_000, 3_000), 23_000);
        // A scrape that overran two slots resumes on the phase.
        assert_eq!(next_slot(35_500, 10_000, 3_000), 43_000);
        assert_eq!(next_slot(-1, 10_000, 3_000), 3_000);
    }
}
