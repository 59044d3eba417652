//! Running pre-event checklists: measuring each check and handing its
//! result to whoever runs the checklist (the `firebreak check` command, or
//! the daemon's [`task`] for chat and schedules). The verdict and the
//! evidence are the model's ([`crate::checklist`]); this is the I/O.
//!
//! Every measured check runs in its own task with its own time limit, so
//! one slow target cannot hold up the rest, and a check that cannot run
//! (a query error, a target down, a timeout) is an error with its reason,
//! never a pass. Sign-offs are not measured: people give them, through
//! chat or at the terminal.

pub mod task;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::checklist::judge::{self, RunbookState};
use crate::checklist::{CheckDef, CheckKind, CheckResult, Checklist, Outcome};
use crate::clock::Clock;
use crate::config::Config;
use crate::promql::Value;
use crate::runbook::Runbook;
use crate::runbook::template::Templates;
use crate::secrets::resolve_secret;
use crate::watcher::Queries;

/// On a fast clock a check's time limit never shrinks below this in real
/// time (or its own length, if shorter): on the demo's clock, `10s` would
/// otherwise leave a runbook's tests a sixth of a second.
const MIN_REAL_TIMEOUT: Duration = Duration::from_secs(5);
/// What an `http` check reads of a body to look for `body_contains`.
const MAX_BODY: usize = 1 << 20;

/// What checks measure with.
#[derive(Clone)]
pub struct Instruments {
    /// PromQL against the watcher's sources; `None` when there are none
    /// (then `query` and `capacity` checks cannot run, and say so).
    pub queries: Option<Queries>,
    pub http: crate::net::TargetClient,
    /// Targets and secrets for `http` checks; targets again for runbook
    /// tests' stubs.
    pub config: Arc<Config>,
    pub runbooks: Vec<Arc<Runbook>>,
    /// Runbook test files (`kind: runbook_test`), by name.
    pub runbook_tests: Arc<Vec<(String, String)>>,
    pub clock: Clock,
}

/// The template context a run renders its checks in.
pub fn template_ctx(event: &BTreeMap<String, Json>) -> Json {
    json!({ "event": event })
}

/// Measures one check within its time limit. Never panics the caller and
/// never returns a pass it did not see.
pub async fn measure(def: &CheckDef, ctx: &Json, inst: &Instruments) -> CheckResult {
    let started = Instant::now();
    let wanted = def.timeout.to_std();
    let limit = inst.clock.real(wanted).max(wanted.min(MIN_REAL_TIMEOUT));
    let (outcome, evidence) =
        match tokio::time::timeout(limit, measure_kind(&def.kind, ctx, inst)).await {
            Ok(Ok(r)) => r,
            Ok(Err(why)) => (Outcome::Error(why.clone()), why),
            Err(_) => {
                let why = format!("timed out after {}", def.timeout);
                (Outcome::Error(why.clone()), why)
            }
        };
    CheckResult {
        name: def.name.clone(),
        kind: def.kind.name().to_owned(),
        severity: def.severity,
        outcome,
        evidence,
        took_ms: started.elapsed().as_millis() as u64,
    }
}

/// `Err` is why the check could not run.
async fn measure_kind(
    kind: &CheckKind,
    ctx: &Json,
    inst: &Instruments,
) -> Result<(Outcome, String), String> {
    let t = Templates::new();
    let render = |field: &str, src: &str| {
        t.render_str(src, ctx)
            .map_err(|e| format!("{field}: template: {}", e.message))
    };
    match kind {
        CheckKind::Query {
            expr,
            op,
            threshold,
        } => {
            let expr = render("expr", expr)?;
            let threshold = number(&render("expect", threshold)?, "expect")?;
            let values = query(inst, &expr).await?;
            Ok(judge::query(&values, *op, threshold))
        }
        CheckKind::Capacity {
            audience,
            join_rate_per_min,
            capacity_expr,
            admission_per_min_expr,
            headroom,
        } => {
            let audience = number(&render("audience", audience)?, "audience")?;
            let rate = number(
                &render("join_rate_per_min", join_rate_per_min)?,
                "join_rate_per_min",
            )?;
            let cap_expr = render("capacity", capacity_expr)?;
            let adm_expr = render("admission_per_min", admission_per_min_expr)?;
            let (cap, adm) = tokio::join!(one(inst, &cap_expr), one(inst, &adm_expr));
            let cap = cap.map_err(|e| format!("capacity: {e}"))?;
            let adm = adm.map_err(|e| format!("admission_per_min: {e}"))?;
            Ok(judge::capacity(audience, rate, cap, adm, *headroom))
        }
        CheckKind::Http {
            target,
            method,
            path,
            status,
            body_contains,
        } => {
            let path = t
                .render_path(path, ctx)
                .map_err(|e| format!("path: template: {}", e.message))?;
            let needle = match body_contains {
                Some(b) => Some(render("body_contains", b)?),
                None => None,
            };
            let (code, body) = call(inst, target, method, &path).await?;
            let shown = format!("{method} {target}{path}");
            Ok(judge::http(&shown, code, &body, status, needle.as_deref()))
        }
        CheckKind::Runbook { names } => {
            let mut states = Vec::new();
            for name in names {
                let state = match inst.runbooks.iter().find(|r| &r.name == name) {
                    None => RunbookState::Missing,
                    Some(rb) => {
                        crate::stub_runs::test_loaded(rb, &inst.runbook_tests, &inst.config).await
                    }
                };
                states.push((name.clone(), state));
            }
            Ok(judge::runbooks(&states))
        }
        CheckKind::Credentials { runbooks, path } => {
            let path = t
                .render_path(path, ctx)
                .map_err(|e| format!("path: template: {}", e.message))?;
            let targets = reached_targets(&inst.runbooks, runbooks)?;
            let probes = futures_util::future::join_all(
                targets
                    .iter()
                    .map(|target| async { (target.clone(), probe(inst, target, &path).await) }),
            )
            .await;
            Ok(judge::credentials(&probes))
        }
        CheckKind::Signoff { .. } => Err("a sign-off is given by people, not measured".into()),
    }
}

/// The targets `names` (every loaded runbook when empty) may call,
/// through the runbooks they call.
fn reached_targets(
    loaded: &[Arc<Runbook>],
    names: &[String],
) -> Result<std::collections::BTreeSet<String>, String> {
    let mut todo: Vec<String> = if names.is_empty() {
        loaded.iter().map(|r| r.name.clone()).collect()
    } else {
        names.to_vec()
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut targets = std::collections::BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let rb = loaded
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| format!("no runbook named {name:?} is loaded"))?;
        let r = rb.reaches();
        targets.extend(r.targets);
        todo.extend(r.runbooks);
    }
    Ok(targets)
}

/// Calls `target` at `path` with its credentials, as an `http` step
/// would, and says how it answered.
async fn probe(inst: &Instruments, target: &str, path: &str) -> judge::Probe {
    use judge::Probe;
    if let Some(secret) = inst
        .config
        .targets
        .get(target)
        .and_then(|t| t.bearer_secret.as_ref())
    {
        let read = inst
            .config
            .secrets
            .get(secret)
            .ok_or_else(|| format!("secret {secret:?} is not configured"))
            .and_then(resolve_secret);
        if let Err(why) = read {
            return Probe::NoSecret(why);
        }
    }
    match call(inst, target, "GET", path).await {
        Ok((code @ (401 | 403), _)) => Probe::Refused(code),
        Ok((code, _)) if code >= 500 => Probe::Down(format!("GET {path} → {code}")),
        Ok((code, _)) => Probe::Answered(code),
        Err(why) => Probe::Down(why),
    }
}

fn number(s: &str, field: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .map_err(|_| format!("{field}: {s:?} is not a number"))
}

/// Every series the expression gives, as (labels, value).
async fn query(inst: &Instruments, expr: &str) -> Result<Vec<(String, f64)>, String> {
    let q = inst
        .queries
        .as_ref()
        .ok_or("no metrics source is configured (`scrape:` or `sources.remote`)")?;
    let v = q.query(expr).await.map_err(|e| format!("{expr}: {e}"))?;
    match v {
        Value::Vector(samples) => Ok(samples
            .into_iter()
            .map(|s| (s.labels.to_string(), s.value))
            .collect()),
        Value::Scalar(x) => Ok(vec![(String::new(), x)]),
        other => Err(format!(
            "{expr} gave a {}; a check needs an instant vector or a scalar",
            other.type_name()
        )),
    }
}

/// The one number an expression gives; none or several cannot be compared.
async fn one(inst: &Instruments, expr: &str) -> Result<f64, String> {
    let values = query(inst, expr).await?;
    match values.as_slice() {
        [(_, v)] => Ok(*v),
        [] => Err(format!("{expr} gave no series: nothing was measured")),
        many => Err(format!(
            "{expr} gave {} series; aggregate it to one number, e.g. max(...)",
            many.len()
        )),
    }
}

/// Calls a configured target as `http` steps do: the path joined to the
/// target's URL, its bearer token, the check's own time limit.
async fn call(
    inst: &Instruments,
    target: &str,
    method: &str,
    path: &str,
) -> Result<(u16, String), String> {
    use crate::executor::actions::http::{TargetRequest, describe, join_on_target, send};
    let t = inst
        .config
        .targets
        .get(target)
        .ok_or_else(|| format!("unknown target {target:?}"))?;
    let url = join_on_target(&t.url, path).map_err(|e| e.message)?;
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("bad method {method:?}"))?;
    let bearer = match &t.bearer_secret {
        None => None,
        Some(secret) => {
            let src = inst
                .config
                .secrets
                .get(secret)
                .ok_or_else(|| format!("secret {secret:?} is not configured"))?;
            Some(resolve_secret(src)?)
        }
    };
    let shown = format!("{method} {target}{path}");
    let call = TargetRequest {
        target: t,
        method,
        url,
        body: None,
        idempotency_key: None,
        bearer,
        // The check's own time limit bounds the call.
        timeout: None,
    };
    let resp = send(&inst.http, call)
        .await
        .map_err(|e| format!("{shown}: {e}"))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("{shown}: reading the response: {}", describe(&e)))?;
    let body = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_BODY)]).into_owned();
    Ok((status, body))
}

/// The checks a run measures (every kind but sign-offs), with the context
/// to render them in.
pub fn measured(list: &Checklist) -> impl Iterator<Item = &CheckDef> {
    list.checks
        .iter()
        .filter(|c| !matches!(c.kind, CheckKind::Signoff { .. }))
}

/// The PromQL a run will evaluate, rendered: what a one-off local source
/// needs to know (whether anything reads a range).
pub fn exprs(list: &Checklist, ctx: &Json) -> Vec<String> {
    let t = Templates::new();
    let mut out = Vec::new();
    for c in &list.checks {
        let srcs: Vec<&String> = match &c.kind {
            CheckKind::Query { expr, .. } => vec![expr],
            CheckKind::Capacity {
                capacity_expr,
                admission_per_min_expr,
                ..
            } => vec![capacity_expr, admission_per_min_expr],
            _ => vec![],
        };
        out.extend(srcs.into_iter().filter_map(|s| t.render_str(s, ctx).ok()));
    }
    out
}

/// A metrics source for one run outside the daemon (`firebreak check`):
/// the remote API when one is configured; else one scrape of every
/// configured target now, kept in a series store that answers the run's
/// queries. When an expression reads a range (`rate(x[1m])`) one scrape
/// cannot answer it, so the targets are scraped again after the shortest
/// scrape interval. `note` hears what is going on (a scrape failed, a
/// second one is coming). `None` when there is nothing to read from.
pub async fn one_off_queries(
    config: &Config,
    exprs: &[String],
    clock: &Clock,
    http: &reqwest::Client,
    note: &(dyn Fn(String) + Send + Sync),
) -> Option<Queries> {
    use crate::source::scrape::scrape_now;
    if let Some(r) = &config.remote {
        let api = crate::source::remote::RemoteApi {
            base: r.url.clone(),
            http: http.clone(),
            timeout: r.timeout.to_std(),
            retries: r.retries,
        };
        // The remote API answers every query; the local queue is unused.
        return Some(crate::watcher::queries(Some(api), clock.clone()).0);
    }
    if config.scrape.is_empty() {
        return None;
    }
    let ranges = exprs
        .iter()
        .any(|e| crate::promql::parse(e).is_ok_and(|x| crate::promql::lookback::reads_ranges(&x)));
    let mut watcher = crate::watcher::Watcher {
        engine: crate::rules::RuleEngine::new(
            Vec::new(),
            config.external_labels.clone(),
            clock.now(),
        ),
        series: crate::tsdb::SeriesStore::new(crate::promql::LOOKBACK_MS * 2),
        state: None,
        remote: None,
        pushed: None,
        reloads: None,
        sight: None,
        pending: None,
    };
    let rounds = if ranges { 2 } else { 1 };
    for round in 0..rounds {
        if round == 1 {
            let gap = config
                .scrape
                .iter()
                .map(|t| t.interval)
                .min()
                .unwrap_or(crate::duration::PromDuration::from_secs(15));
            note(format!(
                "a check reads a range of samples; scraping again in {gap}"
            ));
            clock.sleep(gap.to_std()).await;
        }
        let batches = futures_util::future::join_all(
            config.scrape.iter().map(|t| scrape_now(http, t, clock)),
        )
        .await;
        for b in batches {
            if let Err(e) = &b.result {
                note(format!("scrape of {} failed: {e}", b.target));
            }
            watcher.ingest(b);
        }
    }
    let (queries, requests) = crate::watcher::queries(None, clock.clone());
    // Ends by itself when the last query handle is dropped.
    tokio::spawn(crate::watcher::serve_fixed(
        requests,
        watcher.series,
        clock.clone(),
    ));
    Some(queries)
}

/// Starts measuring every measured check of a run, each in its own task
/// of `set`, tagged with the run's id (the daemon measures several runs
/// in one set).
pub fn spawn_measures(
    list: &Checklist,
    state: &crate::checklist::state::RunState,
    inst: &Instruments,
    set: &mut tokio::task::JoinSet<(String, CheckResult)>,
) {
    let ctx = Arc::new(template_ctx(&state.event));
    for def in measured(list) {
        let (def, ctx, inst, id) = (def.clone(), ctx.clone(), inst.clone(), state.id.clone());
        set.spawn(async move { (id, measure(&def, &ctx, &inst).await) });
    }
}

/// Runs every measured check of a run at once and records each result as
/// it arrives, telling `progress` after each. Sign-offs are left waiting
/// for the caller. Returns when every measured check has an answer.
pub async fn measure_all(
    list: &Checklist,
    state: &mut crate::checklist::state::RunState,
    inst: &Instruments,
    mut progress: impl FnMut(&crate::checklist::state::RunState, &CheckResult),
) {
    let mut set = tokio::task::JoinSet::new();
    spawn_measures(list, state, inst, &mut set);
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((_, r)) => {
                state.record(r.clone());
                progress(state, &r);
            }
            // A check that panicked has no result; the run reports it as
            // not finished, which is NO-GO.
            Err(e) => tracing::error!(error = %e, "a checklist check failed to complete"),
        }
    }
}

/// Everything a run outside the daemon needs from what was loaded, with a
/// one-off metrics source (see [`one_off_queries`]).
pub async fn instruments_for(
    loaded: &crate::load::Loaded,
    exprs: &[String],
    clock: &Clock,
    note: &(dyn Fn(String) + Send + Sync),
) -> anyhow::Result<Instruments> {
    let http = crate::net::client()?;
    let queries = one_off_queries(&loaded.config, exprs, clock, &http, note).await;
    Ok(Instruments {
        queries,
        http: crate::net::target_client()?,
        config: Arc::new(loaded.config.clone()),
        runbooks: loaded.runbooks.clone(),
        runbook_tests: Arc::new(loaded.runbook_tests.clone()),
        clock: clock.clone(),
    })
}

/// A run id: the checklist, the start in seconds and a per-process tag,
/// so ids from two processes (the daemon and a terminal) do not collide.
pub fn run_id(checklist: &str, now: crate::clock::Millis, seq: u64) -> String {
    use std::hash::{BuildHasher, Hasher};
    static TAG: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
    let tag = TAG.get_or_init(|| {
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish() as u16
    });
    format!("{checklist}-{}-{tag:04x}{seq}", now.div_euclid(1000))
}

/// No checklist of the name asked for is loaded.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error(
    "no checklist named {name:?}{}{}",
    hint.as_ref().map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default(),
    if loaded.is_empty() {
        ": none are loaded (`kind: checklist` files under the runbook paths)".to_owned()
    } else {
        format!("; loaded: {}", loaded.join(", "))
    }
)]
pub struct NoChecklist {
    pub name: String,
    pub hint: Option<String>,
    pub loaded: Vec<String>,
}

/// Finds a loaded checklist by name; the error lists what there is.
pub fn find<'a>(
    lists: &'a [Arc<Checklist>],
    name: &str,
) -> Result<&'a Arc<Checklist>, NoChecklist> {
    lists.iter().find(|c| c.name == name).ok_or_else(|| {
        let loaded: Vec<String> = lists.iter().map(|c| c.name.clone()).collect();
        NoChecklist {
            name: name.to_owned(),
            hint: crate::diag::did_you_mean(name, &loaded).map(str::to_owned),
            loaded,
        }
    })
}

/// `key=value` words as pairs; the error names the word and the form.
pub fn parse_overrides(words: &[String]) -> Result<Vec<(String, String)>, String> {
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            _ => Err(format!(
                "{w:?} is not an event parameter; write KEY=VALUE, like expected_audience=250000"
            )),
        })
        .collect()
}
