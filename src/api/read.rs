//! JSON reads: firing alerts (as the control loop holds them: acked,
//! silenced, their incident), runs and their steps, incidents and their
//! timelines (from the store).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use super::{Api, ApiError, READ_WAIT, ok, time};
use crate::control::Command;

pub async fn alerts(State(api): State<Arc<Api>>) -> Result<Response, ApiError> {
    if api.follows() {
        let who = api
            .replica
            .as_ref()
            .map(|r| r.describe())
            .unwrap_or_default();
        return Err(ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("what fires is known to the leader only; ask it ({who})"),
            )
        });
    }
    let (reply, answer) = oneshot::channel();
    let asked = async {
        api.control
            .send(Command::Status(reply))
            .await
            .map_err(|_| "the control loop has stopped")?;
        answer.await.map_err(|_| "the control loop did not answer")
    };
    let status = match tokio::time::timeout(READ_WAIT, asked).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(ApiError::internal("cannot read alerts", e)),
        Err(_) => {
            return Err(ApiError::internal(
                "cannot read alerts",
                "control loop busy",
            ));
        }
    };
    // Pending ones too, as Prometheus's API lists them: what is about to
    // fire, and when it will if its condition holds.
    let pending = status.pending.iter().map(|p| {
        json!({
            "name": p.name,
            "group": p.group,
            "state": "pending",
            "labels": p.labels,
            "summary": p.summary,
            "value": p.value.is_finite().then_some(p.value),
            "activeAt": time(p.active_at),
            "firesAt": time(p.fires_at),
        })
    });
    let alerts: Vec<_> = status
        .firing
        .iter()
        .map(|a| {
            json!({
                "id": a.fingerprint,
                "name": a.name,
                "group": a.group,
                "state": "firing",
                "labels": a.labels,
                "summary": a.summary,
                "value": a.value.is_finite().then_some(a.value),
                "activeAt": time(a.since),
                "incident": a.incident,
                "acked": a.acked.as_ref().map(|k| json!({"by": k.by, "at": time(k.at)})),
                "silencedBy": a.silenced_by,
            })
        })
        .chain(pending)
        .collect();
    Ok(ok(json!({
        "alerts": alerts,
        "paused": status.paused.as_ref().map(|p| json!({"by": p.by, "reason": p.reason, "since": time(p.since)})),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    runbook: Option<String>,
    state: Option<String>,
    incident: Option<String>,
    limit: Option<usize>,
}

/// Newest first, at most `limit` (default 100).
pub async fn runs(
    State(api): State<Arc<Api>>,
    q: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "{}; the parameters are runbook, state, incident and limit",
                e.body_text()
            ),
        )
    })?;
    // A state that does not exist is a mistake, not an empty list.
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(crate::run_state::RunState::parse(s).ok_or_else(|| {
            let known: Vec<&str> = crate::run_state::RunState::all()
                .map(|s| s.as_str())
                .collect();
            ApiError::new(
                StatusCode::BAD_REQUEST,
                // Echoed bounded: the query string is the asker's.
                format!(
                    "no run state {:?}; the states are {}",
                    crate::human::clip(s, 40),
                    known.join(", ")
                ),
            )
        })?),
    };
    let filter = crate::store::RunFilter {
        runbook: q.runbook,
        state,
        incident: q.incident,
    };
    let limit = i64::try_from(q.limit.unwrap_or(100)).unwrap_or(i64::MAX);
    let runs = read_store(api.store.newest_runs(&filter, 0, limit)).await?;
    let runs: Vec<_> = runs.iter().map(run_json).collect();
    Ok(ok(json!({"runs": runs})))
}

fn run_json(r: &crate::store::RunRecord) -> serde_json::Value {
    json!({
        "id": r.id,
        "runbook": r.runbook,
        "incident": r.incident,
        "concurrencyKey": r.concurrency_key,
        "state": r.state,
        "startedAt": time(r.started_at),
        "finishedAt": r.finished_at.map(time),
        "error": r.error,
    })
}

pub async fn run(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let Some(r) = read_store(api.store.run(&id)).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no run {id:?}; GET /api/v1/runs lists them"),
        ));
    };
    let steps = read_store(api.store.steps(&id)).await?;
    let mut out = run_json(&r);
    out["steps"] = steps
        .iter()
        .map(|s| {
            json!({
                "id": s.step_id,
                "state": s.state,
                "attempts": s.attempts,
                "startedAt": time(s.started_at),
                "finishedAt": s.finished_at.map(time),
                "output": s.output_json.as_deref().and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok()),
                "error": s.error,
            })
        })
        .collect();
    Ok(ok(out))
}

pub async fn incidents(State(api): State<Arc<Api>>) -> Result<Response, ApiError> {
    let names = read_store(api.store.incidents()).await?;
    Ok(ok(json!({"incidents": names})))
}

pub async fn timeline(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let entries = read_store(api.store.timeline(&id)).await?;
    if entries.is_empty() {
        let known = read_store(api.store.incidents()).await?;
        let hint = match crate::diag::did_you_mean(&id, &known) {
            Some(c) => format!(" (did you mean {c:?}?)"),
            None => String::new(),
        };
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no incident {id:?}{hint}; GET /api/v1/incidents lists them"),
        ));
    }
    let mut body = crate::incident::entries_json(&entries, &time);
    body["incident"] = json!(id);
    Ok(ok(body))
}

async fn read_store<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(READ_WAIT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiError::internal("cannot read the store", e)),
        Err(_) => Err(ApiError::internal(
            "cannot read the store",
            "it did not answer in time",
        )),
    }
}
