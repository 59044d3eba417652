//! The audience sampler: for each open incident, how many are listening,
//! how many of them are in danger and how many would be listening had
//! nobody acted, from the PromQL the config gives (`incidents.audience`),
//! rendered with the incident's `group_by` labels. The control loop asks
//! on its own tick and puts the answers on the incident's card and in the
//! store, for the review.
//!
//! An extra beside the card, never on the alert's path: the request queue
//! is small and a full one drops the request (the next tick asks again),
//! a sample that finds the control loop's queue full is dropped the same
//! way, and a query that fails or gives nothing leaves its figure unknown.
//! A query that fails is said in chat once (and counted in `/metrics`),
//! and so is its recovery: the people reading the card must know why a
//! figure went blank.

use std::collections::BTreeMap;

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::chat::{ChatMessage, Kind, Outbox};
use crate::clock::{Clock, Millis};
use crate::promql::Value;
use crate::runbook::template::Templates;
use crate::watcher::Queries;

/// Requests waiting for the sampler; a full queue drops the newest.
pub const QUEUE: usize = 16;

use crate::config::AudienceConfig;

/// One incident to measure.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub incident: String,
    /// The incident's `group_by` labels, as its first alert had them.
    pub labels: BTreeMap<String, String>,
}

/// One measurement; a figure is `None` when its query failed or gave
/// nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub incident: String,
    pub listening: Option<u64>,
    pub at_risk: Option<u64>,
    pub without_us: Option<u64>,
    pub at: Millis,
}

pub fn queue() -> (mpsc::Sender<Request>, mpsc::Receiver<Request>) {
    mpsc::channel(QUEUE)
}

pub struct Sampler {
    pub config: AudienceConfig,
    pub queries: Queries,
    pub clock: Clock,
    /// Where samples go: the control loop.
    pub samples: mpsc::Sender<Sample>,
    /// Where a failing query (and its recovery) is said.
    pub outbox: Outbox,
    pub channel: String,
}

/// The three figures, by the config field that gives each.
const FIGURES: [&str; 3] = ["listening", "at_risk", "without_us"];

impl Sampler {
    pub async fn run(self, mut requests: mpsc::Receiver<Request>, shutdown: CancellationToken) {
        let templates = Templates::new();
        // Which figures' queries fail now, with why: said on the change.
        let mut failing: BTreeMap<&'static str, String> = BTreeMap::new();
        loop {
            let req = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = requests.recv() => match r {
                    Some(r) => r,
                    None => break,
                },
            };
            let (s, errors) = tokio::select! {
                _ = shutdown.cancelled() => break,
                s = self.sample(&templates, req) => s,
            };
            self.say_changes(&mut failing, errors).await;
            if self.samples.try_send(s).is_err() {
                tracing::debug!("control loop busy; audience sample dropped");
            }
        }
    }

    /// One measurement, and the error of each figure whose query failed
    /// (one that gave nothing is not an error: the figure is unknown).
    async fn sample(
        &self,
        templates: &Templates,
        req: Request,
    ) -> (Sample, BTreeMap<&'static str, Option<String>>) {
        let ctx = json!({ "labels": req.labels });
        let queries = [
            Some(&self.config.listening),
            self.config.at_risk.as_ref(),
            self.config.without_us.as_ref(),
        ];
        let mut values = [None; 3];
        let mut errors = BTreeMap::new();
        for (k, (name, src)) in FIGURES.iter().zip(queries).enumerate() {
            let Some(src) = src else { continue };
            let result = match templates.render_str(src, &ctx) {
                Err(e) => Err(format!(
                    "cannot be rendered for incident {}: {}",
                    req.incident, e.message
                )),
                Ok(q) => self.queries.query(&q).await.map_err(|e| e.to_string()),
            };
            match result {
                Ok(v) => {
                    values[k] = listeners(&v);
                    errors.insert(*name, None);
                }
                Err(e) => {
                    crate::metrics::get()
                        .audience_query_errors
                        .with(&[name])
                        .inc();
                    errors.insert(*name, Some(e));
                }
            }
        }
        let [listening, at_risk, without_us] = values;
        let s = Sample {
            incident: req.incident,
            listening,
            at_risk,
            without_us,
            at: self.clock.now(),
        };
        (s, errors)
    }

    /// Says which queries started failing, and which answer again.
    async fn say_changes(
        &self,
        failing: &mut BTreeMap<&'static str, String>,
        errors: BTreeMap<&'static str, Option<String>>,
    ) {
        for (name, error) in errors {
            let text = match (failing.contains_key(name), error) {
                (false, Some(e)) => {
                    tracing::warn!(figure = name, error = %e, "audience query fails");
                    let text = format!(
                        ":warning: the audience query `incidents.audience.{name}` fails: {e}. Cards show it as unknown until it answers again."
                    );
                    failing.insert(name, e);
                    text
                }
                (true, None) => {
                    failing.remove(name);
                    format!("the audience query `incidents.audience.{name}` answers again")
                }
                _ => continue,
            };
            let msg = ChatMessage {
                channel: self.channel.clone(),
                kind: Kind::Note,
                text,
                at: self.clock.now(),
                ..ChatMessage::default()
            };
            if let Err(e) = self.outbox.post(&msg).await {
                tracing::error!(error = %e, "cannot queue chat message");
            }
        }
    }
}

/// A count of people from a query's answer: the sum of its samples,
/// rounded; nothing for an empty answer or one that is not a count.
pub fn listeners(v: &Value) -> Option<u64> {
    let total = match v {
        Value::Scalar(x) => *x,
        Value::Vector(samples) if !samples.is_empty() => samples.iter().map(|s| s.value).sum(),
        _ => return None,
    };
    (total.is_finite() && total >= 0.0).then(|| total.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::check_query;
    use crate::labels::Labels;
    use crate::promql::Sample as Point;

    #[test]
    fn a_count_is_the_sum_of_what_the_query_gave() {
        let v = Value::Vector(vec![
            Point {
                labels: Labels::new().with("room", "a"),
                value: 10.4,
            },
            Point {
                labels: Labels::new().with("room", "b"),
                value: 5.0,
            },
        ]);
        assert_eq!(listeners(&v), Some(15));
        assert_eq!(listeners(&Value::Scalar(3.0)), Some(3));
        // Nothing is unknown, not zero: a room with no series is not empty.
        assert_eq!(listeners(&Value::Vector(vec![])), None);
        assert_eq!(listeners(&Value::Scalar(f64::NAN)), None);
        assert_eq!(listeners(&Value::Scalar(-1.0)), None);
        assert_eq!(listeners(&Value::String("x".into())), None);
    }

    /// A Prometheus query API on loopback that answers 500 listeners, or
    /// an error while `failing` is set.
    async fn prometheus(failing: std::sync::Arc<std::sync::atomic::AtomicBool>) -> String {
        let app = axum::Router::new().route(
            "/api/v1/query",
            axum::routing::get(move || {
                let failing = failing.clone();
                async move {
                    if failing.load(std::sync::atomic::Ordering::SeqCst) {
                        (
                            axum::http::StatusCode::BAD_REQUEST,
                            axum::Json(json!({"status": "error", "errorType": "bad_data", "error": "unknown function"})),
                        )
                    } else {
                        (
                            axum::http::StatusCode::OK,
                            axum::Json(json!({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "500"]}]}})),
                        )
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn a_failing_query_is_said_once_and_so_is_its_recovery() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let failing = std::sync::Arc::new(AtomicBool::new(true));
        let url = prometheus(failing.clone()).await;
        let clock = Clock::manual(1_000_000);
        let remote = crate::source::remote::RemoteApi {
            base: reqwest::Url::parse(&url).unwrap(),
            http: crate::net::client().unwrap(),
            timeout: std::time::Duration::from_secs(5),
            retries: 0,
        };
        let (queries, _unused) = crate::watcher::queries(Some(remote), clock.clone());
        let store = crate::store::Store::open("sqlite::memory:").await.unwrap();
        let (sample_tx, mut samples) = mpsc::channel(16);
        let sampler = Sampler {
            config: AudienceConfig {
                at_risk: None,
                without_us: None,
                ..AudienceConfig::for_simulator()
            },
            queries,
            clock,
            samples: sample_tx,
            outbox: Outbox::new(store.clone()),
            channel: "#c".into(),
        };
        let (req_tx, req_rx) = queue();
        let stop = CancellationToken::new();
        let task = tokio::spawn(sampler.run(req_rx, stop.clone()));
        let before = crate::metrics::get()
            .audience_query_errors
            .with(&["listening"])
            .get();
        let ask = |n: u32| crate::audience::Request {
            incident: format!("i{n}"),
            labels: [("event".to_owned(), "launch".to_owned())].into(),
        };
        let mut got = Vec::new();
        for n in 0..5 {
            if n == 3 {
                failing.store(false, Ordering::SeqCst);
            }
            req_tx.send(ask(n)).await.unwrap();
            got.push(samples.recv().await.unwrap().listening);
        }
        assert_eq!(got, [None, None, None, Some(500), Some(500)]);
        let chat = crate::chat::pending_texts(&store, 100).await;
        assert_eq!(chat.len(), 2, "{chat:#?}");
        assert!(
            chat[0]
                .starts_with(":warning: the audience query `incidents.audience.listening` fails: ")
                && chat[0].contains("unknown function")
                && chat[0].ends_with("Cards show it as unknown until it answers again."),
            "{chat:#?}"
        );
        assert_eq!(
            chat[1],
            "the audience query `incidents.audience.listening` answers again"
        );
        let after = crate::metrics::get()
            .audience_query_errors
            .with(&["listening"])
            .get();
        assert!(after - before >= 3, "{before} {after}");
        stop.cancel();
        task.await.unwrap();
    }

    #[test]
    fn the_simulators_queries_are_valid_and_encode_the_label() {
        let c = AudienceConfig::for_simulator();
        let t = Templates::new();
        for q in [
            Some(&c.listening),
            c.at_risk.as_ref(),
            c.without_us.as_ref(),
        ] {
            let q = q.unwrap();
            check_query(q).unwrap();
            assert!(
                crate::runbook::template::promql_string_warnings(q).is_empty(),
                "{q}"
            );
            // A hostile label value stays inside its string.
            let ctx = json!({"labels": {"event": "x\"} or vector(1) or {a=\""}});
            let rendered = t.render_str(q, &ctx).unwrap();
            assert!(
                rendered.contains(r#"event="x\x22} or vector(1) or {a=\x22""#),
                "{rendered}"
            );
            crate::promql::parse(&rendered).unwrap_or_else(|e| panic!("{rendered}: {e}"));
        }
        assert!(check_query("sum(").is_err());
        assert!(check_query("{{ nope(").is_err());
    }
}
