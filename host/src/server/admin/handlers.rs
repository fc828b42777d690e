//! `/admin/v1/handlers`: what each mount runs, new versions (the body is the
//! component), and rollback.

use super::{AdminError, AdminResult, MAX_ADMIN_BODY, err, internal, read_body, require_admin};
use crate::added_mounts::AddedMount;
use crate::deploy::DeployError;
use crate::manifest::{ErrorStyle, LimitOverrides};
use crate::runtime::registry::HandlerVersion;
use crate::runtime::versions::Source;
use crate::server::ListenerCtx;
use crate::server::listen::ConnInfo;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

fn version_view(v: &HandlerVersion) -> Value {
    json!({
        "version": v.sha256,
        "size": v.size,
        "loaded_at_ms": v.loaded_at.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
        "compiled_from_cache": v.from_cache,
    })
}

fn deploy_error(e: DeployError) -> AdminError {
    match e {
        DeployError::UnknownHandler(_) => {
            err(StatusCode::NOT_FOUND, "unknown-handler", e.to_string())
        }
        DeployError::Rejected(_) => err(
            StatusCode::UNPROCESSABLE_ENTITY,
            "component-rejected",
            e.to_string(),
        ),
        DeployError::UnknownVersion(_) => {
            err(StatusCode::NOT_FOUND, "unknown-version", e.to_string())
        }
        DeployError::Invalid(_) => err(StatusCode::BAD_REQUEST, "bad-request", e.to_string()),
        DeployError::Conflict(_) => err(StatusCode::CONFLICT, "mount-taken", e.to_string()),
        DeployError::Storage(e) => internal(e),
    }
}

pub(super) async fn list(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
) -> AdminResult {
    require_admin(&ctx, &headers, &conn).await?;
    let app = &ctx.app;
    let mut items = Vec::new();
    for slot in app.registry.all() {
        let history = app.versions.history(&slot.name).await.map_err(internal)?;
        let mut kept: Vec<Value> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for d in history.iter().rev() {
            if seen.insert(d.sha256.clone()) {
                kept.push(json!({"version": d.sha256, "size": d.size, "deployed_at_ms": d.at_ms, "source": d.source}));
            }
        }
        let mut item = json!({
            "name": &*slot.name,
            "mount": slot.mount,
            "current": version_view(&slot.current()),
            "versions": kept,
            "last_rejected": slot.rejection(),
        });
        if let Some(p) = &slot.wasm_path {
            item["watched_file"] = json!(p.display().to_string());
        }
        items.push(item);
    }
    items.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(axum::Json(json!({ "handlers": items })).into_response())
}

/// `?mount=/path` (and optionally `policy`, `errors`, limits) mounts a new
/// handler; without it the named handler must exist.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct PutQuery {
    mount: Option<String>,
    policy: Option<String>,
    errors: Option<ErrorStyle>,
    memory_mib: Option<u32>,
    request_timeout_ms: Option<u64>,
    job_timeout_ms: Option<u64>,
    max_concurrent: Option<u32>,
    max_body_bytes: Option<u64>,
    max_running_jobs: Option<u32>,
}

pub(super) async fn put(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    Path(name): Path<String>,
    query: Result<Query<PutQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> AdminResult {
    let by = require_admin(&ctx, &headers, &conn).await?;
    let Query(q) = query.map_err(|e| err(StatusCode::BAD_REQUEST, "bad-request", e.body_text()))?;
    let bytes = read_body(body, ctx.app.manifest.components.max_bytes).await?;
    if bytes.is_empty() {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "the body must be the component's bytes",
        ));
    }
    if ctx.app.registry.get(&name).is_none()
        && let Some(mount) = q.mount
    {
        let m = AddedMount {
            name: name.clone(),
            mount,
            policy: q.policy.unwrap_or_else(|| "authenticated".into()),
            errors: q.errors.unwrap_or_default(),
            limits: LimitOverrides {
                memory_mib: q.memory_mib,
                request_timeout_ms: q.request_timeout_ms,
                job_timeout_ms: q.job_timeout_ms,
                max_concurrent: q.max_concurrent,
                max_body_bytes: q.max_body_bytes,
                max_running_jobs: q.max_running_jobs,
                ..LimitOverrides::default()
            },
        };
        let v = ctx
            .app
            .mount_new(m, bytes.to_vec())
            .await
            .map_err(deploy_error)?;
        tracing::info!(handler = %name, by = %by.subject, version = %v.sha256, "mounted through the admin API");
        return Ok((StatusCode::CREATED, axum::Json(version_view(&v))).into_response());
    }
    let version = ctx
        .app
        .deploy(&name, bytes.to_vec(), Source::Admin)
        .await
        .map_err(deploy_error)?;
    tracing::info!(handler = %name, by = %by.subject, version = %version.sha256, "deployed through the admin API");
    Ok(axum::Json(version_view(&version)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RollbackRequest {
    version: Option<String>,
}

pub(super) async fn rollback(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> AdminResult {
    let by = require_admin(&ctx, &headers, &conn).await?;
    let body = read_body(body, MAX_ADMIN_BODY).await?;
    let req: RollbackRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RollbackRequest::default()
    } else {
        super::parse(&body)?
    };
    let version = ctx
        .app
        .rollback(&name, req.version.as_deref())
        .await
        .map_err(deploy_error)?;
    tracing::info!(handler = %name, by = %by.subject, version = %version.sha256, "rolled back through the admin API");
    Ok(axum::Json(version_view(&version)).into_response())
}
