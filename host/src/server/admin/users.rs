//! `/admin/v1/users` and `/admin/v1/tokens`.

use super::{AdminResult, MAX_ADMIN_BODY, err, internal, parse, read_body, require_admin};
use crate::auth::AuthError;
use crate::auth::admin_ops::{self, DeleteError, UpdateError, UserUpdate};
use crate::auth::tokens::TokenKind;
use crate::auth::users::UserView;
use crate::server::ListenerCtx;
use crate::server::listen::ConnInfo;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub(super) async fn list(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
) -> AdminResult {
    require_admin(&ctx, &headers, &conn).await?;
    let users = ctx.app.auth.users().list().await.map_err(internal)?;
    let views: Vec<UserView> = users.iter().map(UserView::from).collect();
    Ok(axum::Json(json!({ "users": views })).into_response())
}

pub(super) async fn get(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> AdminResult {
    require_admin(&ctx, &headers, &conn).await?;
    match ctx.app.auth.users().get(&name).await.map_err(internal)? {
        Some(u) => Ok(axum::Json(UserView::from(&u)).into_response()),
        None => Err(err(
            StatusCode::NOT_FOUND,
            "unknown-user",
            format!("there is no user `{name}`"),
        )),
    }
}

pub(super) async fn put(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> AdminResult {
    let by = require_admin(&ctx, &headers, &conn).await?;
    let update: UserUpdate = parse(&read_body(body, MAX_ADMIN_BODY).await?)?;
    let auth = &ctx.app.auth;
    let outcome = admin_ops::apply(
        auth.users(),
        auth.roles(),
        &auth.config().issuer,
        &name,
        update,
    )
    .await
    .map_err(|e| match e {
        UpdateError::User(crate::auth::users::UserError::Storage(m)) => internal(m),
        UpdateError::User(crate::auth::users::UserError::Unavailable(m)) => {
            err(StatusCode::SERVICE_UNAVAILABLE, "service-unavailable", m)
        }
        e @ UpdateError::LastAdmin(_) => err(StatusCode::CONFLICT, "last-admin", e.to_string()),
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

pub(super) async fn delete(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> AdminResult {
    let by = require_admin(&ctx, &headers, &conn).await?;
    admin_ops::delete(ctx.app.auth.users(), &name)
        .await
        .map_err(|e| match e {
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

pub(super) async fn issue_token(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: Body,
) -> AdminResult {
    let by = require_admin(&ctx, &headers, &conn).await?;
    let req: TokenRequest = parse(&read_body(body, MAX_ADMIN_BODY).await?)?;
    let auth = &ctx.app.auth;
    let token = auth
        .issue(&req.user, TokenKind::Access, req.lifetime_secs)
        .await
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

pub(super) async fn revoke_token(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    body: Body,
) -> AdminResult {
    require_admin(&ctx, &headers, &conn).await?;
    let req: RevokeRequest = parse(&read_body(body, MAX_ADMIN_BODY).await?)?;
    ctx.app.auth.revoke(&req.token).await.map_err(|e| match e {
        AuthError::Unauthenticated(m) => err(StatusCode::BAD_REQUEST, "bad-token", m),
        other => internal(other),
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
