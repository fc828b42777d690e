//! `GET /admin/v1/metrics`: every family of [`crate::metrics`], in the
//! Prometheus text format or, when the scraper's `Accept` prefers it,
//! OpenMetrics. Needs `metrics:read` unless the manifest says
//! `[metrics] public = true`.

use super::{AdminResult, ListenerCtx};
use crate::manifest::{ErrorStyle, METRICS_READ, Policy};
use crate::metrics::{self, OPENMETRICS_TEXT, PROMETHEUS_TEXT};
use crate::server::authn;
use crate::server::listen::ConnInfo;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The metrics, for a caller with `metrics:read` (or anyone when public).
pub(super) async fn get(
    State(ctx): State<Arc<ListenerCtx>>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
) -> AdminResult {
    if !ctx.app.manifest.metrics.public {
        let policy = Policy::Permission(METRICS_READ.into());
        authn::authorize(&ctx.app.auth, &headers, &conn, &policy, ErrorStyle::Baton).await?;
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let openmetrics = metrics::prefers_openmetrics(accept);
    let body = metrics::global().render(openmetrics);
    let content_type = if openmetrics {
        OPENMETRICS_TEXT
    } else {
        PROMETHEUS_TEXT
    };
    let mut resp: Response = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(resp)
}
