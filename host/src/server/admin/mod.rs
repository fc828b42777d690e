//! The admin API under `/admin/v1`, served natively by the host with the
//! same auth step as handler routes and errors in Baton's own shape. Every
//! route needs `admin` but the health checks and the OpenAPI document
//! (`openapi.json`, public) and metrics (`metrics:read`): users and tokens
//! (`users.rs`), jobs (`jobs.rs`), handler versions and hot swap
//! (`handlers.rs`), metrics (`metrics.rs`).

mod handlers;
mod jobs;
mod metrics;
mod users;

use super::ListenerCtx;
use super::authn;
use super::errors::HostError;
use super::listen::ConnInfo;
use crate::auth::Principal;
use crate::manifest::{ErrorStyle, Policy};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::sync::Arc;

/// The admin routes, to be nested at [`crate::manifest::ADMIN_MOUNT`].
pub fn router() -> Router<Arc<ListenerCtx>> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::get))
        .route("/users", get(users::list))
        .route(
            "/users/{name}",
            get(users::get).put(users::put).delete(users::delete),
        )
        .route("/tokens", post(users::issue_token))
        .route("/tokens/revoke", post(users::revoke_token))
        .route("/handlers", get(handlers::list))
        .route("/handlers/{name}/rollback", post(handlers::rollback))
        .route("/jobs", get(jobs::list))
        .route("/jobs/{id}", get(jobs::get))
        .route("/jobs/{id}/events", get(jobs::events))
        .route("/jobs/{id}/cancel", post(jobs::cancel))
        .route("/schedules", get(jobs::schedules))
        .route("/handlers/{name}", axum::routing::put(handlers::put))
        .fallback(|| async {
            AdminError(HostError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "no such admin endpoint",
            ))
        })
}

/// Largest body the user, token, job and rollback endpoints accept.
pub(super) const MAX_ADMIN_BODY: usize = 64 * 1024;

/// Reads the request body, at most `limit` bytes (413 beyond, without
/// reading further when the declared length already exceeds it). Handlers
/// take the body as a stream and call this only once the caller is
/// authenticated, so nothing is buffered for anonymous callers.
pub(super) async fn read_body(body: Body, limit: usize) -> Result<Bytes, AdminError> {
    use http_body_util::BodyExt;
    let too_large = || {
        err(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("the request body is larger than this endpoint's limit of {limit} bytes"),
        )
    };
    if axum::body::HttpBody::size_hint(&body).lower() > limit as u64 {
        return Err(too_large());
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(err(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("the request body could not be read: {e}"),
        )),
    }
}

/// An admin API error in Baton's shape.
pub(super) struct AdminError(HostError);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let id = uuid::Uuid::new_v4().to_string();
        self.0.into_response(ErrorStyle::Baton, &id)
    }
}

impl From<HostError> for AdminError {
    fn from(e: HostError) -> Self {
        AdminError(e)
    }
}

pub(super) type AdminResult = Result<Response, AdminError>;

pub(super) fn err(
    status: StatusCode,
    kind: &'static str,
    message: impl Into<String>,
) -> AdminError {
    AdminError(HostError::new(status, kind, message))
}

pub(super) fn internal(e: impl std::fmt::Display) -> AdminError {
    tracing::error!("admin API: {e}");
    err(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the admin operation failed; see the server log",
    )
}

pub(super) async fn require_admin(
    ctx: &ListenerCtx,
    headers: &HeaderMap,
    conn: &ConnInfo,
) -> Result<Principal, AdminError> {
    let policy = Policy::Permission("admin".into());
    let p = authn::authorize(&ctx.app.auth, headers, conn, &policy, ErrorStyle::Baton).await?;
    p.ok_or_else(|| internal("a non-public policy returned no principal"))
}

pub(super) fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(body).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("the body is not the JSON expected: {e}"),
        )
    })
}

/// The admin API's OpenAPI 3.1 document (public, like the health checks).
const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// How long `/readyz` waits for its write to become durable.
const READINESS_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Ready when every handler is mounted (the server listens only then) and
/// the store takes a durable write within [`READINESS_WRITE_TIMEOUT`];
/// else 503, saying why.
async fn readyz(State(ctx): State<Arc<ListenerCtx>>) -> Response {
    let probe = tokio::time::timeout(READINESS_WRITE_TIMEOUT, ctx.app.floor.probe_write()).await;
    let reason = match probe {
        Ok(Ok(())) => {
            let handlers = ctx.app.registry.all().len();
            return axum::Json(json!({ "status": "ready", "handlers": handlers })).into_response();
        }
        Ok(Err(e)) => format!("the store cannot be written: {e}"),
        Err(_) => format!(
            "the store did not make a write durable within {} s",
            READINESS_WRITE_TIMEOUT.as_secs()
        ),
    };
    tracing::warn!("not ready: {reason}");
    AdminError(HostError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not-ready",
        reason,
    ))
    .into_response()
}
