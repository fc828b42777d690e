//! The admin API under `/admin/v1` (permission `admin`; health checks are
//! public): users and tokens for now. Served natively by the host, with the
//! same auth step as handler routes and errors in Baton's own shape.

use super::ListenerCtx;
use super::authn;
use super::errors::HostError;
use super::listen::ConnInfo;
use crate::auth::admin_ops::{self, DeleteError, UpdateError, UserUpdate};
use crate::auth::tokens::TokenKind;
use crate::auth::users::UserView;
use crate::auth::{AuthError, Principal};
use crate::manifest::{ErrorStyle, Policy};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// The admin routes, to be nested at [`crate::manifest::ADMIN_MOUNT`].
pub fn router() -> Router<Arc<ListenerCtx>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/users", get(list_users))
        .route(
            "/users/{name}",
            get(get_user).put(put_user).delete(delete_user),
        )
        .route("/tokens", post(issue_token))
        .route("/tokens/revoke", post(revoke_token))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_ADMIN_BODY))
        .fallback(|| async {
            AdminError(HostError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "no such admin endpoint",
            ))
        })
}

/// Largest body the user and token endpoints accept.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// The request body, or a JSON error (413 past [`MAX_ADMIN_BODY`]).
fn body_of(body: Result<Bytes, BytesRejection>) -> Result<Bytes, AdminError> {
    body.map_err(|e| {
        let status = e.status();
        let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload-too-large"
        } else {
            "bad-request"
        };
        err(
            status,
            kind,
            format!("the request body could not be read: {e}"),
        )
    })
}

/// An admin API error in Baton's shape.
struct AdminError(HostError);

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

type AdminResult = Result<Response, AdminError>;

fn err(status: StatusCode, kind: &'static str, message: impl Into<String>) -> AdminError {
    AdminError(HostError::new(status, kind, message))
}

fn internal(e: impl std::fmt::Display) -> AdminError {
    tracing::error!("admin API: {e}");
    err(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the admin operation failed; see the server log",
    )
}

async fn require_admin(
    ctx: &ListenerCtx,
    headers: &HeaderMap,
    conn: &ConnInfo,
) -> Result<Principal, AdminError> {
    let policy = Policy::Permission("admin".into());
    let p = authn::authorize(&ctx.app.auth, headers, conn, &policy, ErrorStyle::Baton).await?;
    p.ok_or_else(|| internal("a non-public policy returned no principal"))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(body).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("the body is not the JSON expected: {e}"),
        )
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AdminError> {
    tokio::task::spawn_blocking(f).await.map_err(internal)
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

async fn readyz(State(ctx): State<Arc<ListenerCtx>>) -> Response {
    let handlers = ctx.app.registry.all().len();
    axum::Json(json!({ "status": "ready", "handlers": handlers })).into_response()
}

async fn list_users(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
) -> AdminResult {
    require_admin(&ctx, &headers, &conn).await?;
    let users = ctx.app.auth.users().list().map_err(internal)?;
    let views: Vec<UserView> = users.iter().map(UserView::from).collect();
    Ok(axum::Json(json!({ "users": views })).into_response())
}

async fn get_user(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> AdminResult {
    require_admin(&ctx, &headers, &conn).await?;
    match ctx.app.auth.users().get(&name).map_err(internal)? {
        Some(u) => Ok(axum::Json(UserView::from(&u)).into_response()),
        None => Err(err(
            StatusCode::NOT_FOUND,
            "unknown-user",
            format!("there is no user `{name}`"),
        )),
    }
}

async fn put_user(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AdminResult {
    let by = require_admin(&ctx, &headers, &conn).await?;
    let update: UserUpdate = parse(&body_of(body)?)?;
    let app = ctx.app.clone();
    let target = name.clone();
    let outcome = blocking(move || {
        let auth = &app.auth;
        admin_ops::apply(
            auth.users(),
            auth.roles(),
            &auth.config().issuer,
            &target,
            update,
        )
    })
    .await?
    .map_err(|e| match e {
        UpdateError::User(crate::auth::users::UserError::Storage(m)) => internal(m),
        other => err(StatusCode::BAD_REQUEST, "bad-request", other.to_string()),
    })?;
    tracing::info!(user = %name, by = %by.subject, created = outcome.created, "user saved");
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(outcome)).into_response())
}

async fn delete_user(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> AdminResult {
    let by = require_admin(&ctx, &headers, &conn).await?;
    admin_ops::delete(ctx.app.auth.users(), &name).map_err(|e| match e {
        DeleteError::Unknown(_) => err(StatusCode::NOT_FOUND, "unknown-user", e.to_string()),
        DeleteError::LastAdmin(_) => err(StatusCode::CONFLICT, "last-admin", e.to_string()),
        DeleteError::User(e) => internal(e),
    })?;
    tracing::info!(user = %name, by = %by.subject, "user deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    user: String,
    #[serde(default)]
    lifetime_secs: u64,
}

async fn issue_token(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AdminResult {
    let by = require_admin(&ctx, &headers, &conn).await?;
    let req: TokenRequest = parse(&body_of(body)?)?;
    let auth = &ctx.app.auth;
    let token = auth
        .issue(&req.user, TokenKind::Access, req.lifetime_secs)
        .map_err(|e| match e {
            AuthError::Invalid(m) => err(StatusCode::NOT_FOUND, "unknown-user", m),
            other => internal(other),
        })?;
    tracing::info!(user = %req.user, by = %by.subject, "token issued through the admin API");
    Ok(axum::Json(json!({ "token": token })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    token: String,
}

async fn revoke_token(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AdminResult {
    require_admin(&ctx, &headers, &conn).await?;
    let req: RevokeRequest = parse(&body_of(body)?)?;
    ctx.app.auth.revoke(&req.token).map_err(|e| match e {
        AuthError::Unauthenticated(m) => err(StatusCode::BAD_REQUEST, "bad-token", m),
        other => internal(other),
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
