//! `http`: call a named target from config. Runbooks cannot name hosts:
//! the path (its values percent-encoded, see `template::Lang::UrlPath`) is
//! joined to the target's base URL, and a result on another host, port or
//! scheme, or outside the base path, is refused, and so is a redirect
//! there. Mutating calls carry an `Idempotency-Key` derived from the run
//! and step, so a retry (or a resumed run) applies once. Fields of the
//! JSON response can be captured for later steps with JSON pointers.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use super::{Action, ActionError, ActionSpec, Done, StepCtx, check_shape};
use crate::chat::BoxFut;
use crate::config::Target;
use crate::net::TargetClient;
use crate::runbook::CheckEnv;
use crate::runbook::spec::{Destination, Reads};
use crate::runbook::template::Lang;
use crate::secrets::resolve_secret;

pub struct Http;

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
/// Responses are captured from, not stored whole; bound what we read.
const MAX_BODY: usize = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    target: String,
    #[serde(default = "get")]
    method: String,
    path: String,
    #[serde(default)]
    query: BTreeMap<String, Json>,
    body: Option<Json>,
    /// Accepted statuses; default any 2xx.
    #[serde(default)]
    expect: Vec<u16>,
    /// Output field name to JSON pointer into the response body.
    #[serde(default)]
    capture: BTreeMap<String, String>,
}

fn get() -> String {
    "GET".into()
}

fn safe_to_repeat(method: &str, target_honours_keys: bool) -> bool {
    matches!(method, "GET" | "PUT" | "DELETE") || target_honours_keys
}

impl ActionSpec for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn langs(&self) -> &'static [(&'static str, Lang)] {
        &[("path", Lang::UrlPath)]
    }

    fn check(&self, with: &Json, env: &CheckEnv) -> Vec<(String, String)> {
        let p = match check_shape::<Params>(with) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let mut errs = Vec::new();
        if p.target.contains("{{") {
            errs.push(("target".into(), "must be a target name, not a template: runbooks may only call targets named in config".into()));
        } else if !env.targets.contains(&p.target) {
            let known: Vec<&String> = env.targets.iter().collect();
            let valid = if known.is_empty() {
                "no targets are defined in config (`targets:`)".to_owned()
            } else {
                format!("known targets: {}", crate::diag::one_of(&known))
            };
            errs.push((
                "target".into(),
                format!("unknown target {:?}; {valid}", p.target),
            ));
        }
        if !METHODS.contains(&p.method.as_str()) {
            errs.push((
                "method".into(),
                format!(
                    "unknown method {:?}; expected one of: {}",
                    p.method,
                    METHODS.join(", ")
                ),
            ));
        }
        if !p.path.starts_with('/') || p.path.starts_with("//") {
            errs.push(("path".into(), format!("{:?} must be a path starting with a single `/` (the host comes from the target)", p.path)));
        } else if has_dot_segment(&p.path) {
            // Values cannot make one (see `Lang::UrlPath`); the text can.
            errs.push((
                "path".into(),
                format!(
                    "{:?} has a `.` or `..` segment; a run would refuse it",
                    p.path
                ),
            ));
        }
        for (name, ptr) in &p.capture {
            if !ptr.is_empty() && !ptr.starts_with('/') {
                errs.push((
                    format!("capture.{name}"),
                    format!("{ptr:?} is not a JSON pointer; expected e.g. /room/id"),
                ));
            }
        }
        for s in &p.expect {
            if !(100..=599).contains(s) {
                errs.push(("expect".into(), format!("{s} is not an HTTP status")));
            }
        }
        errs
    }

    /// GET (the default) only reads; any other method could act.
    fn reads(&self, with: &Json) -> Reads {
        match with.get("method") {
            None => Reads::Only,
            Some(Json::String(m)) if m == "GET" => Reads::Only,
            Some(m) => Reads::NotWith {
                field: "method",
                why: format!("method {m} could change what the guard is there to judge"),
            },
        }
    }

    fn destination(
        &self,
        params: &Json,
        targets: &BTreeMap<String, String>,
    ) -> Option<Destination> {
        let base = targets.get(params.get("target")?.as_str()?)?;
        let path = params.get("path")?.as_str()?;
        // A placeholder (`<run.id>`) is not a path yet.
        let refused = reqwest::Url::parse(base)
            .ok()
            .filter(|_| !path.contains('<'))
            .and_then(|url| join_on_target(&url, path).err())
            .map(|e| ("path", e.message));
        Some(Destination {
            url: format!("{}{path}", base.trim_end_matches('/')),
            refused,
        })
    }
}

impl Action for Http {
    /// GET, PUT and DELETE are idempotent by HTTP's definition; POST and
    /// PATCH only at a target that honours `Idempotency-Key`.
    fn changes(&self, with: &Json) -> bool {
        let method = with.get("method").and_then(Json::as_str).unwrap_or("GET");
        !matches!(method, "GET" | "HEAD" | "OPTIONS")
    }

    fn repeatable(&self, with: &Json, env: &super::ActionEnv) -> bool {
        let method = with.get("method").and_then(Json::as_str).unwrap_or("GET");
        let target = with.get("target").and_then(Json::as_str).unwrap_or("");
        safe_to_repeat(
            method,
            env.targets.get(target).is_some_and(|t| t.idempotency_keys),
        )
    }

    fn run<'a>(
        &'a self,
        ctx: &'a StepCtx<'a>,
        with: Json,
    ) -> BoxFut<'a, Result<Done, ActionError>> {
        Box::pin(async move {
            let p: Params = super::params(with)?;
            let target = ctx
                .env
                .targets
                .get(&p.target)
                .ok_or_else(|| ActionError::fatal(format!("unknown target {:?}", p.target)))?;
            let mut url = join_on_target(&target.url, &p.path)?;
            let method = reqwest::Method::from_bytes(p.method.as_bytes())
                .map_err(|_| ActionError::fatal(format!("bad method {:?}", p.method)))?;
            if !p.query.is_empty() {
                url.query_pairs_mut()
                    .extend_pairs(p.query.iter().map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                        )
                    }));
            }
            let bearer = match &target.bearer_secret {
                None => None,
                Some(secret) => {
                    let src = ctx.env.secrets.get(secret).ok_or_else(|| {
                        ActionError::fatal(format!("secret {secret:?} is not configured"))
                    })?;
                    Some(resolve_secret(src).map_err(ActionError::fatal)?)
                }
            };
            let shown = format!("{method} {}{}", p.target, url.path());
            let call = TargetRequest {
                target,
                method,
                url,
                body: p.body.as_ref(),
                idempotency_key: Some(&ctx.idempotency_key),
                bearer,
                timeout: Some(target.timeout.to_std()),
            };
            let resp = send(&ctx.env.http, call).await.map_err(|e| ActionError {
                message: format!("{shown}: {e}"),
                retryable: e.retryable(),
                not_applied: e.never_sent(),
                answered: None,
            })?;
            let status = resp.status();
            let bytes = resp.bytes().await.map_err(|e| {
                ActionError::retryable(format!("{shown}: reading response: {}", describe(&e)))
            })?;
            let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_BODY)]).into_owned();
            let body: Json = serde_json::from_str(&text).unwrap_or(Json::String(text.clone()));
            let ok = if p.expect.is_empty() {
                status.is_success()
            } else {
                p.expect.contains(&status.as_u16())
            };
            if !ok {
                let detail = body
                    .get("error")
                    .and_then(Json::as_str)
                    .map_or_else(|| truncate(&text, 200), str::to_owned);
                let msg = format!("{shown} returned {status}: {detail}");
                let retry =
                    status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
                return Err(ActionError {
                    message: msg,
                    retryable: retry,
                    // A refusal (4xx) or "unavailable" is the target saying
                    // it did nothing; a 500 or a gateway error may not be.
                    not_applied: status.is_client_error()
                        || status == reqwest::StatusCode::SERVICE_UNAVAILABLE,
                    answered: None,
                });
            }
            let mut out = Map::new();
            out.insert("status".into(), json!(status.as_u16()));
            for (name, ptr) in &p.capture {
                let v = body.pointer(ptr).ok_or_else(|| {
                    ActionError::fatal(format!(
                        "{shown}: response has nothing at {ptr} to capture as `{name}`"
                    ))
                })?;
                out.insert(name.clone(), v.clone());
            }
            out.insert("body".into(), body);
            Ok(Done {
                output: Json::Object(out),
                summary: format!("{shown} → {}", status.as_u16()),
                answered: None,
            })
        })
    }
}

/// Joins a path to a target base URL, refusing anything that would leave
/// the target: another scheme, host or port, or a path outside the base
/// URL's. A `.` or `..` segment is refused in any spelling (`%2e%2e` is
/// `..` to the URL parser), since it could climb out.
pub(crate) fn join_on_target(base: &reqwest::Url, path: &str) -> Result<reqwest::Url, ActionError> {
    if !path.starts_with('/') || path.starts_with("//") || path.contains('\\') {
        return Err(ActionError::fatal(format!(
            "path {path:?} must start with a single `/`"
        )));
    }
    if has_dot_segment(path) {
        return Err(ActionError::fatal(format!(
            "path {path:?} has a `.` or `..` segment; refused, as it could leave the target's base path"
        )));
    }
    let joined = format!("{}{}", base.as_str().trim_end_matches('/'), path);
    let url = reqwest::Url::parse(&joined)
        .map_err(|e| ActionError::fatal(format!("bad path {path:?}: {e}")))?;
    if !on_target(base, &url) {
        return Err(ActionError::fatal(format!(
            "path {path:?} leaves the target ({url} is not under {base})"
        )));
    }
    Ok(url)
}

/// A `.` or `..` segment before the query, in any spelling the URL
/// parser reads as one.
fn has_dot_segment(path: &str) -> bool {
    let before_query = path.split(['?', '#']).next().unwrap_or_default();
    before_query.split('/').any(|segment| {
        let s = segment.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    })
}

/// Whether `url` is on the target whose base URL is `base`: the same
/// scheme, host and port, and a path at or under the base path, segment
/// by segment (`/api` holds `/api/x`, not `/apix`).
pub(crate) fn on_target(base: &reqwest::Url, url: &reqwest::Url) -> bool {
    let prefix = base.path().trim_end_matches('/');
    url.scheme() == base.scheme()
        && url.host() == base.host()
        && url.port_or_known_default() == base.port_or_known_default()
        && (url.path() == prefix || url.path().starts_with(&format!("{prefix}/")))
}

/// The most redirects followed for one call, all on the target.
const MAX_REDIRECTS: usize = 5;

/// One call to a target, as [`send`] makes it.
pub(crate) struct TargetRequest<'a> {
    pub target: &'a Target,
    pub method: reqwest::Method,
    pub url: reqwest::Url,
    pub body: Option<&'a Json>,
    /// Sent on every method but GET.
    pub idempotency_key: Option<&'a str>,
    pub bearer: Option<String>,
    pub timeout: Option<std::time::Duration>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error("{}", describe(.0))]
    Http(#[from] reqwest::Error),
    #[error("redirected to {to} which is outside target {target}; not followed")]
    Outside { to: String, target: String },
    #[error("redirected with a Location that is not a URL ({0:?}); not followed")]
    BadLocation(String),
    #[error("more than {MAX_REDIRECTS} redirects; not followed")]
    TooManyRedirects,
}

impl SendError {
    /// Only a failed connection or a timeout may go better next time.
    pub(crate) fn retryable(&self) -> bool {
        matches!(self, SendError::Http(_))
    }

    /// The call never reached the target: no connection was made. A
    /// refused redirect is not this, since a 303 answers a call that was
    /// done.
    pub(crate) fn never_sent(&self) -> bool {
        matches!(self, SendError::Http(e) if e.is_connect() || e.is_builder())
    }
}

/// Sends a call to a target, following redirects only while they stay on
/// it: the client follows none by itself (see [`TargetClient`]), because a
/// 307 elsewhere would take the body and the `Idempotency-Key` with it. A
/// 301, 302 or 303 turns the call into a GET without a body, as browsers
/// and reqwest do; a 307 or 308 repeats it as it was.
pub(crate) async fn send(
    http: &TargetClient,
    r: TargetRequest<'_>,
) -> Result<reqwest::Response, SendError> {
    let (mut method, mut url, mut body) = (r.method, r.url, r.body);
    for _ in 0..=MAX_REDIRECTS {
        let mut req = http.0.request(method.clone(), url.clone());
        if let Some(t) = r.timeout {
            req = req.timeout(t);
        }
        if let (Some(key), false) = (r.idempotency_key, method == reqwest::Method::GET) {
            req = req.header("Idempotency-Key", key);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(token) = &r.bearer {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        if !matches!(status, 301 | 302 | 303 | 307 | 308) {
            return Ok(resp);
        }
        let Some(location) = resp.headers().get(reqwest::header::LOCATION) else {
            return Ok(resp);
        };
        let next = location
            .to_str()
            .ok()
            .and_then(|l| url.join(l).ok())
            .ok_or_else(|| {
                SendError::BadLocation(String::from_utf8_lossy(location.as_bytes()).into_owned())
            })?;
        if !on_target(&r.target.url, &next) {
            return Err(SendError::Outside {
                to: next.to_string(),
                target: r.target.name.clone(),
            });
        }
        if status <= 303 && method != reqwest::Method::HEAD {
            method = reqwest::Method::GET;
            body = None;
        }
        url = next;
    }
    Err(SendError::TooManyRedirects)
}

pub(crate) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        e.to_string()
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_owned();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> CheckEnv {
        crate::load::check_env(["platform".to_owned()])
    }

    #[test]
    fn check_reports_every_problem() {
        let e = Http.check(
            &json!({"target": "simm", "method": "YEET", "path": "api", "capture": {"x": "room"}}),
            &env(),
        );
        let fields: Vec<&str> = e.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["target", "method", "path", "capture.x"], "{e:?}");
        assert!(e[0].1.contains("known targets: platform"), "{e:?}");
    }

    #[test]
    fn only_idempotent_calls_are_repeated_after_a_crash() {
        for m in ["GET", "PUT", "DELETE"] {
            assert!(safe_to_repeat(m, false), "{m}");
        }
        for m in ["POST", "PATCH"] {
            assert!(!safe_to_repeat(m, false), "{m}");
            assert!(safe_to_repeat(m, true), "{m} with Idempotency-Key honoured");
        }
    }

    #[test]
    fn a_dot_segment_written_in_the_path_is_an_error_at_load() {
        for path in ["/api/../x", "/api/%2E%2e/{{ inputs.room }}", "/./x"] {
            let e = Http.check(&json!({"target": "platform", "path": path}), &env());
            assert_eq!(e.len(), 1, "{path}: {e:?}");
            assert!(e[0].1.contains("`.` or `..` segment"), "{path}: {e:?}");
        }
        let ok = Http.check(
            &json!({"target": "platform", "path": "/api/v1.2/{{ inputs.room }}?up=.."}),
            &env(),
        );
        assert!(ok.is_empty(), "{ok:?}");
    }

    #[test]
    fn unknown_param_is_named() {
        let e = Http.check(
            &json!({"target": "platform", "path": "/", "bdy": {}}),
            &env(),
        );
        assert!(e[0].1.contains("bdy"), "{e:?}");
    }

    #[test]
    fn paths_cannot_leave_the_target() {
        let base = reqwest::Url::parse("http://127.0.0.1:9100/").unwrap();
        assert_eq!(
            join_on_target(&base, "/api/v1/rooms").unwrap().as_str(),
            "http://127.0.0.1:9100/api/v1/rooms"
        );
        assert!(join_on_target(&base, "//evil.example/x").is_err());
        assert!(join_on_target(&base, "@evil.example/x").is_err());
        assert!(join_on_target(&base, "http://evil/").is_err());
        let based = reqwest::Url::parse("http://127.0.0.1:9100/prefix/").unwrap();
        assert_eq!(
            join_on_target(&based, "/x").unwrap().as_str(),
            "http://127.0.0.1:9100/prefix/x"
        );
    }

    #[test]
    fn paths_cannot_climb_out_of_the_base_path() {
        let base = reqwest::Url::parse("http://h/tenant-a/api").unwrap();
        for path in [
            "/../../tenant-b/rooms",
            "/x/%2e%2e/%2E%2E/%2e./tenant-b",
            "/./x",
            "/x/.%2E",
            "/x/..?y=1",
            "/x/..#y",
        ] {
            let e = join_on_target(&base, path).unwrap_err();
            assert!(e.message.contains("`.` or `..` segment"), "{path}: {e}");
        }
        // Dots inside a segment are a name, and `..` after `?` is a query.
        assert_eq!(
            join_on_target(&base, "/a..b/.x/x./?up=../..")
                .unwrap()
                .as_str(),
            "http://h/tenant-a/api/a..b/.x/x./?up=../.."
        );
    }

    #[test]
    fn on_target_means_the_origin_and_under_the_base_path() {
        let base = reqwest::Url::parse("http://h:8080/tenant-a/api/").unwrap();
        let at = |u: &str| on_target(&base, &reqwest::Url::parse(u).unwrap());
        assert!(at("http://h:8080/tenant-a/api"));
        assert!(at("http://h:8080/tenant-a/api/rooms?x=1"));
        assert!(!at("http://h:8080/tenant-a/apix"));
        assert!(!at("http://h:8080/tenant-b/api/rooms"));
        assert!(!at("https://h:8080/tenant-a/api/rooms"));
        assert!(!at("http://h:8081/tenant-a/api/rooms"));
        assert!(!at("http://evil:8080/tenant-a/api/rooms"));
        let root = reqwest::Url::parse("http://h/").unwrap();
        assert!(on_target(
            &root,
            &reqwest::Url::parse("http://h:80/any/where").unwrap()
        ));
    }
}
