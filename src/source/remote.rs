//! A Prometheus-compatible HTTP API as the rules' source: Prometheus,
//! Thanos, Mimir, VictoriaMetrics. For fleets too big for one process to
//! scrape, the metrics stay where they are and each rule is an instant
//! query (`GET /api/v1/query?query=…&time=…`) answered in the standard
//! envelope.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value as Json;

use crate::clock::Millis;
use crate::labels::Labels;
use crate::promql::{Sample, Series, Value};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RemoteError {
    #[error("{url}: timed out after {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url}: cannot connect: {detail}")]
    Connect { url: String, detail: String },
    /// The API answered with its error envelope (`errorType`, `error`).
    #[error("{url}: HTTP {status}, {error_type}: {error}")]
    Api {
        url: String,
        status: u16,
        error_type: String,
        error: String,
    },
    #[error("{url}: unexpected response (HTTP {status}): {detail}")]
    Decode {
        url: String,
        status: u16,
        detail: String,
    },
}

impl RemoteError {
    /// Worth asking again: timeouts, connection failures, overload and
    /// server errors; not a query the server rejected.
    pub fn retryable(&self) -> bool {
        match self {
            RemoteError::Timeout { .. } | RemoteError::Connect { .. } => true,
            RemoteError::Api {
                status, error_type, ..
            } => {
                *status >= 500
                    || *status == 429
                    || error_type == "timeout"
                    || error_type == "unavailable"
            }
            RemoteError::Decode { status, .. } => *status >= 500,
        }
    }
}

#[derive(Clone, Debug)]
pub struct RemoteApi {
    pub base: reqwest::Url,
    pub http: reqwest::Client,
    pub timeout: Duration,
    /// Extra attempts for retryable failures, with doubling backoff.
    pub retries: u32,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    data: Option<Data>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Json,
}

impl RemoteApi {
    fn endpoint(&self) -> String {
        format!("{}/api/v1/query", self.base.as_str().trim_end_matches('/'))
    }

    /// An instant query at `at`, retried on transient failures.
    pub async fn query(&self, expr: &str, at: Millis) -> Result<Value, RemoteError> {
        let mut attempt = 0;
        loop {
            match self.query_once(expr, at).await {
                Err(e) if e.retryable() && attempt < self.retries => {
                    tokio::time::sleep(Duration::from_millis(100) * 2u32.pow(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn query_once(&self, expr: &str, at: Millis) -> Result<Value, RemoteError> {
        let url = self.endpoint();
        let time = format!("{}.{:03}", at.div_euclid(1000), at.rem_euclid(1000));
        let resp = self
            .http
            .get(&url)
            .query(&[("query", expr), ("time", time.as_str())])
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    RemoteError::Timeout {
                        url: url.clone(),
                        timeout: self.timeout,
                    }
                } else {
                    RemoteError::Connect {
                        url: url.clone(),
                        detail: e.to_string(),
                    }
                }
            })?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(|e| RemoteError::Connect {
            url: url.clone(),
            detail: e.to_string(),
        })?;
        let decode = |detail: String| RemoteError::Decode {
            url: url.clone(),
            status,
            detail,
        };
        let env: Envelope = serde_json::from_slice(&body).map_err(|e| {
            decode(format!(
                "not the Prometheus API envelope ({e}): {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ))
        })?;
        if env.status != "success" {
            return Err(RemoteError::Api {
                url,
                status,
                error_type: env.error_type.unwrap_or_else(|| "unknown".into()),
                error: env.error.unwrap_or_default(),
            });
        }
        let data = env
            .data
            .ok_or_else(|| decode("success without `data`".into()))?;
        parse_result(&data.result_type, &data.result).map_err(decode)
    }
}

fn parse_number(v: &Json) -> Result<f64, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("sample value {v} is not a string"))?;
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s
            .parse()
            .map_err(|_| format!("sample value {s:?} is not a number")),
    }
}

/// `[<unix seconds>, "<value>"]`
fn parse_point(p: &Json) -> Result<(Millis, f64), String> {
    let arr = p
        .as_array()
        .filter(|a| a.len() == 2)
        .ok_or_else(|| format!("{p} is not a [time, value] pair"))?;
    let t = arr[0]
        .as_f64()
        .ok_or_else(|| format!("time {} is not a number", arr[0]))?;
    Ok(((t * 1000.0).round() as Millis, parse_number(&arr[1])?))
}

fn parse_metric(m: &Json) -> Result<Labels, String> {
    let map: BTreeMap<String, String> =
        serde_json::from_value(m.clone()).map_err(|e| format!("bad metric {m}: {e}"))?;
    Ok(map.into())
}

/// Decodes `data.result` by its `resultType`.
pub fn parse_result(result_type: &str, result: &Json) -> Result<Value, String> {
    match result_type {
        "vector" => {
            let items = result.as_array().ok_or("vector result is not a list")?;
            let mut out = Vec::with_capacity(items.len());
            for it in items {
                out.push(Sample {
                    labels: parse_metric(&it["metric"])?,
                    value: parse_point(&it["value"])?.1,
                });
            }
            Ok(Value::Vector(out))
        }
        "scalar" => Ok(Value::Scalar(parse_point(result)?.1)),
        "string" => {
            let arr = result
                .as_array()
                .filter(|a| a.len() == 2)
                .ok_or("string result is not a [time, value] pair")?;
            Ok(Value::String(
                arr[1].as_str().unwrap_or_default().to_owned(),
            ))
        }
        "matrix" => {
            let items = result.as_array().ok_or("matrix result is not a list")?;
            let mut out = Vec::with_capacity(items.len());
            for it in items {
                let values = it["values"]
                    .as_array()
                    .ok_or("matrix series without `values`")?;
                out.push(Series {
                    labels: parse_metric(&it["metric"])?,
                    samples: values.iter().map(parse_point).collect::<Result<_, _>>()?,
                });
            }
            Ok(Value::Matrix(out))
        }
        other => Err(format!(
            "unknown resultType {other:?}; expected vector, scalar, string or matrix"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use axum::extract::{Query, State};
    use axum::http::StatusCode;
    use axum::routing::get;
    use serde_json::json;

    #[test]
    fn decodes_every_result_type() {
        let v = parse_result(
            "vector",
            &json!([{"metric": {"__name__": "up", "job": "sim"}, "value": [1684965600.5, "1"]}]),
        )
        .unwrap();
        assert_eq!(
            v,
            Value::Vector(vec![Sample {
                labels: Labels::new().with("__name__", "up").with("job", "sim"),
                value: 1.0
            }])
        );
        assert_eq!(
            parse_result("scalar", &json!([1.0, "+Inf"])).unwrap(),
            Value::Scalar(f64::INFINITY)
        );
        assert_eq!(
            parse_result("string", &json!([1.0, "hi"])).unwrap(),
            Value::String("hi".into())
        );
        let m = parse_result(
            "matrix",
            &json!([{"metric": {}, "values": [[1.0, "1"], [2.5, "NaN"]]}]),
        )
        .unwrap();
        let Value::Matrix(m) = m else { panic!() };
        assert_eq!(m[0].samples[0], (1000, 1.0));
        assert!(m[0].samples[1].1.is_nan());
        assert!(
            parse_result("vector", &json!([{"metric": {}, "value": [1.0, "x"]}]))
                .unwrap_err()
                .contains("\"x\" is not a number")
        );
        assert!(
            parse_result("histogram", &json!([]))
                .unwrap_err()
                .contains("unknown resultType")
        );
    }

    /// A fake Prometheus API: answers from a script of (status, body).
    async fn fake(script: Vec<(u16, Json)>) -> (RemoteApi, Arc<Mutex<Vec<(String, String)>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = (Arc::new(Mutex::new(script)), seen.clone());
        type St = (
            Arc<Mutex<Vec<(u16, Json)>>>,
            Arc<Mutex<Vec<(String, String)>>>,
        );
        async fn handler(
            State((script, seen)): State<St>,
            Query(q): Query<BTreeMap<String, String>>,
        ) -> (StatusCode, axum::Json<Json>) {
            seen.lock().unwrap().push((
                q.get("query").cloned().unwrap_or_default(),
                q.get("time").cloned().unwrap_or_default(),
            ));
            let (status, body) = {
                let mut s = script.lock().unwrap();
                if s.len() > 1 {
                    s.remove(0)
                } else {
                    s[0].clone()
                }
            };
            (StatusCode::from_u16(status).unwrap(), axum::Json(body))
        }
        let app = axum::Router::new()
            .route("/api/v1/query", get(handler))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let api = RemoteApi {
            base: reqwest::Url::parse(&format!("http://{addr}/")).unwrap(),
            http: crate::net::client().unwrap(),
            timeout: Duration::from_secs(2),
            retries: 2,
        };
        (api, seen)
    }

    #[tokio::test]
    async fn queries_at_the_given_time_and_retries_overload() {
        let ok = json!({"status": "success", "data": {"resultType": "scalar", "result": [1684965600.0, "42"]}});
        let busy =
            json!({"status": "error", "errorType": "unavailable", "error": "too many queries"});
        let (api, seen) = fake(vec![(503, busy), (200, ok)]).await;
        assert_eq!(
            api.query("up == 0", 1_684_965_600_250).await.unwrap(),
            Value::Scalar(42.0)
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "retried once");
        assert_eq!(seen[0], ("up == 0".to_owned(), "1684965600.250".to_owned()));
    }

    #[tokio::test]
    async fn a_bad_query_is_not_retried_and_says_why() {
        let bad = json!({"status": "error", "errorType": "bad_data", "error": "1:4: parse error: unexpected end of input"});
        let (api, seen) = fake(vec![(400, bad)]).await;
        let e = api.query("up ==", 0).await.unwrap_err();
        assert_eq!(seen.lock().unwrap().len(), 1);
        assert!(!e.retryable());
        assert!(
            e.to_string()
                .contains("HTTP 400, bad_data: 1:4: parse error"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn a_non_prometheus_answer_is_a_clear_error() {
        let (api, _) = fake(vec![(200, json!({"hello": "world"}))]).await;
        let e = api.query("up", 0).await.unwrap_err();
        assert!(
            e.to_string().contains("not the Prometheus API envelope"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_clear_error_after_retries() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let api = RemoteApi {
            base: reqwest::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
            http: crate::net::client().unwrap(),
            timeout: Duration::from_millis(500),
            retries: 1,
        };
        let e = api.query("up", 0).await.unwrap_err();
        assert!(matches!(e, RemoteError::Connect { .. }), "{e}");
    }
}
