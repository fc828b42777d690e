//! `/admin/v1/jobs`: every job across handlers; one job with its graph;
//! its events (resumable with `after`); cancel. `/admin/v1/schedules`:
//! every schedule.

use super::{AdminResult, err, internal, require_admin};
use crate::jobs::{EventRecord, JobError, JobRecord, JobState, ListFilter, ScheduleRecord};
use crate::manifest::schedule::When;
use crate::server::ListenerCtx;
use crate::server::listen::ConnInfo;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Bytes shown as JSON when they are JSON, as text when UTF-8, else base64.
fn bytes_view(b: &[u8]) -> Value {
    if let Ok(v) = serde_json::from_slice::<Value>(b) {
        return v;
    }
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => json!({ "base64": base64::engine::general_purpose::STANDARD.encode(b) }),
    }
}

fn rfc3339(ms: u64) -> Value {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000);
    t.ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or(Value::Null, Value::String)
}

/// The admin view of a job.
pub fn job_view(j: &JobRecord) -> Value {
    json!({
        "id": j.id,
        "handler": j.handler,
        "kind": j.kind,
        "state": j.state.as_str(),
        "attempts": j.attempts,
        "max_attempts": j.max_attempts,
        "labels": j.labels.iter().map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<serde_json::Map<String, Value>>(),
        "depends_on": j.depends_on,
        "graph": j.graph,
        "progress": j.progress,
        "error": j.error,
        "input": bytes_view(&j.input),
        "output": j.output.as_deref().map(bytes_view),
        "created_at": rfc3339(j.created_at_ms),
        "started_at": j.started_at_ms.map(rfc3339),
        "finished_at": j.finished_at_ms.map(rfc3339),
    })
}

fn event_view(e: &EventRecord) -> Value {
    json!({ "seq": e.seq, "at": rfc3339(e.at_ms), "kind": e.kind, "message": e.message })
}

fn job_error(e: JobError) -> super::AdminError {
    match e {
        JobError::NotFound(_) => err(StatusCode::NOT_FOUND, "unknown-job", e.to_string()),
        JobError::Conflict(_) => err(StatusCode::CONFLICT, "job-finished", e.to_string()),
        JobError::Invalid(_) => err(StatusCode::BAD_REQUEST, "bad-request", e.to_string()),
        JobError::Storage(e) => internal(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    handler: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    start_after: Option<String>,
    limit: Option<usize>,
}

pub(super) async fn list(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> AdminResult {
    require_admin(&ctx, &headers, &conn).await?;
    let Query(q) = query.map_err(|e| err(StatusCode::BAD_REQUEST, "bad-request", e.body_text()))?;
    let state = match q.state.as_deref() {
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            err(
                StatusCode::BAD_REQUEST,
                "bad-request",
                format!("`{s}` is not a job state: queued, running, succeeded, failed, cancelled, rolled-back"),
            )
        })?),
        None => None,
    };
    let filter = ListFilter {
        handler: q.handler,
        state,
        kind: q.kind,
        labels: Vec::new(),
        start_after: q.start_after,
        limit: q.limit.unwrap_or(0),
    };
    let jobs = ctx.app.jobs.list(&filter).await.map_err(job_error)?;
    let items: Vec<Value> = jobs.iter().map(job_view).collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

pub(super) async fn get(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> AdminResult {
    require_admin(&ctx, &headers, &conn).await?;
    let jobs = &ctx.app.jobs;
    let job = jobs
        .get(&id, None)
        .await
        .map_err(job_error)?
        .ok_or_else(|| job_error(JobError::NotFound(id.clone())))?;
    let mut view = job_view(&job);
    if let Some(g) = &job.graph
        && let Some(graph) = jobs.graph(g).await.map_err(job_error)?
    {
        view["graph_state"] = json!(graph.state);
    }
    Ok(axum::Json(view).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

pub(super) async fn events(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> AdminResult {
    require_admin(&ctx, &headers, &conn).await?;
    let Query(q) = query.map_err(|e| err(StatusCode::BAD_REQUEST, "bad-request", e.body_text()))?;
    let after = q.after.unwrap_or(0);
    let evs = ctx
        .app
        .jobs
        .events(&id, None, after, q.limit.unwrap_or(0))
        .await
        .map_err(job_error)?;
    let next = evs.last().map_or(after, |e| e.seq);
    let items: Vec<Value> = evs.iter().map(event_view).collect();
    Ok(axum::Json(json!({ "items": items, "next_after": next })).into_response())
}

pub(super) async fn cancel(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> AdminResult {
    let by = require_admin(&ctx, &headers, &conn).await?;
    let job = ctx.app.jobs.cancel(&id, None).await.map_err(job_error)?;
    tracing::info!(job = %id, by = %by.subject, "job cancel requested through the admin API");
    Ok((StatusCode::ACCEPTED, axum::Json(job_view(&job))).into_response())
}

/// The admin view of a schedule.
fn schedule_view(s: &ScheduleRecord) -> Value {
    let (cron, every_ms) = match &s.timing {
        When::Cron(c) => (Some(c.as_str()), None),
        When::EveryMs(ms) => (None, Some(*ms)),
    };
    json!({
        "handler": s.handler,
        "name": s.name,
        "cron": cron,
        "every_ms": every_ms,
        "kind": s.kind,
        "input": bytes_view(&s.input),
        "from_manifest": s.from_manifest,
        "next_at": s.next_at_ms.map_or(Value::Null, rfc3339),
        "last_at": s.last_at_ms.map_or(Value::Null, rfc3339),
        "last_job": s.last_job,
        "skipped": s.skipped,
        "keep_jobs": s.keep_jobs,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScheduleQuery {
    handler: Option<String>,
}

/// `GET /admin/v1/schedules[?handler=NAME]`.
pub(super) async fn schedules(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    query: Result<Query<ScheduleQuery>, axum::extract::rejection::QueryRejection>,
) -> AdminResult {
    require_admin(&ctx, &headers, &conn).await?;
    let Query(q) = query.map_err(|e| err(StatusCode::BAD_REQUEST, "bad-request", e.body_text()))?;
    let items: Vec<Value> = ctx
        .app
        .jobs
        .schedules(q.handler.as_deref())
        .iter()
        .map(schedule_view)
        .collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}
