//! The request path: route by longest mount, enforce the body limit, run the
//! handler in a fresh instance, make its writes durable, and turn every
//! failure into a JSON error carrying the request id.

use super::ListenerCtx;
use super::authn;
use super::errors::HostError;
use super::listen::ConnInfo;
use crate::host_calls::jobs::JobsState;
use crate::manifest::ErrorStyle;
use crate::manifest::public_url;
use crate::runtime::InvokeError;
use crate::runtime::bindings::types;
use crate::runtime::registry::HandlerSlot;
use crate::telemetry::scope::RequestLog;
use crate::telemetry::traces;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// Response headers the host owns; a guest's values for them are ignored.
const HOST_OWNED_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "x-request-id",
];

/// [`dispatch`] as an axum handler, for requests carrying a [`ConnInfo`]
/// extension (the listener router's fallback).
pub async fn dispatch_extension(
    State(ctx): State<Arc<ListenerCtx>>,
    req: axum::extract::Request,
) -> Response {
    match req.extensions().get::<ConnInfo>().cloned() {
        Some(conn) => dispatch(&ctx, &conn, req).await,
        None => HostError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the connection has no ConnInfo (served outside server::listen)",
        )
        .into_response(ErrorStyle::Baton, "-"),
    }
}

/// Serves one request for a mounted handler: the whole request path.
pub async fn dispatch(ctx: &ListenerCtx, conn: &ConnInfo, req: axum::extract::Request) -> Response {
    // A v4 uuid from the thread-local CSPRNG: no getrandom syscall per request.
    let request_id = uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned();
    let log = RequestLog::open(&request_id, req.method(), req.uri().path());
    traces::begin_request(log.span(), req.headers());
    let started = Instant::now();
    let method = req.method().clone();
    let routed = ctx
        .app
        .registry
        .route_where(req.uri().path(), |name| ctx.serves(name));
    let (resp, slot) = match routed {
        Some((slot, rel_path)) => {
            traces::route_request(log.span(), &method, Some((&slot.name, &slot.mount)));
            let resp = log
                .within(serve(ctx, conn, req, &slot, rel_path, &request_id))
                .await;
            (resp, Some(slot))
        }
        None => {
            traces::route_request(log.span(), &method, None);
            let resp = HostError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                format!("no handler is mounted at {}", req.uri().path()),
            )
            .into_response(ErrorStyle::Baton, &request_id);
            (resp, None)
        }
    };
    let took = started.elapsed();
    let metrics = slot.as_ref().map_or(unrouted_metrics(), |s| &s.metrics);
    metrics.request(&method, resp.status().as_u16(), took);
    traces::end_request(log.span(), &request_id, resp.status().as_u16());
    log.served(resp.status().as_u16(), took);
    resp
}

/// The series of requests no mounted handler matched.
fn unrouted_metrics() -> &'static Arc<crate::metrics::HandlerMetrics> {
    static UNROUTED: std::sync::OnceLock<Arc<crate::metrics::HandlerMetrics>> =
        std::sync::OnceLock::new();
    UNROUTED.get_or_init(|| crate::metrics::global().handler(crate::metrics::UNROUTED))
}

async fn serve(
    ctx: &ListenerCtx,
    conn: &ConnInfo,
    req: axum::extract::Request,
    slot: &Arc<HandlerSlot>,
    rel_path: String,
    request_id: &str,
) -> Response {
    let (parts, body) = req.into_parts();
    let style = slot.errors;
    let fail = |e: HostError| e.into_response(style, request_id);

    let policy = slot.access.policy_for(parts.method.as_str(), &rel_path);
    let limit = slot.limits.max_body_bytes;
    let principal = match authn::authorize(&ctx.app.auth, &parts.headers, conn, policy, style).await
    {
        Ok(p) => p,
        Err(e) => {
            drain(body, limit.saturating_mul(2)).await;
            return fail(e);
        }
    };
    let body = match read_body(&parts.headers, body, limit).await {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let mount_suffix = if slot.mount == "/" {
        ""
    } else {
        slot.mount.as_str()
    };
    let base_url = match &ctx.public_url {
        Some(public) => [public, mount_suffix].concat(),
        None => {
            // The client's own name for the server, only when it is a plain
            // `host[:port]` (HTTP/2 sends it as `:authority`).
            let given = parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .or_else(|| parts.uri.authority().map(|a| a.as_str()))
                .filter(|h| public_url::is_authority(h));
            let host: std::borrow::Cow<str> = match given {
                Some(h) => h.into(),
                None => ctx.local_addr.to_string().into(),
            };
            [ctx.scheme, "://", &host, mount_suffix].concat()
        }
    };
    let mut headers = authn::guest_headers(&parts.headers);
    traces::guest_trace_headers(&tracing::Span::current(), &mut headers);
    let wit_req = types::Request {
        method: parts.method.as_str().to_string(),
        path: rel_path,
        query: parts.uri.query().unwrap_or("").to_string(),
        headers,
        body,
        mount: slot.mount.clone(),
        base_url,
        remote_addr: conn.remote_text.clone(),
        request_id: request_id.to_string(),
        principal: principal
            .as_ref()
            .map(crate::host_calls::auth::to_wit_principal),
    };

    let version = slot.current();
    let jobs = JobsState::for_request(ctx.app.jobs.clone(), slot.name.clone());
    let outcome = match ctx.app.runtime.handle(slot, &version, &wit_req, jobs).await {
        Ok(o) => o,
        Err(e) => return fail(invoke_error(&slot.name, e)),
    };
    if outcome.wrote {
        let flushed = ctx
            .app
            .store
            .commit()
            .instrument(tracing::debug_span!("store.commit"))
            .await;
        if flushed.is_err() {
            tracing::error!("flushing the store failed: {flushed:?}");
            return fail(HostError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage-error",
                "the handler's writes could not be made durable",
            ));
        }
    }
    to_http(outcome.response, request_id).unwrap_or_else(fail)
}

/// Reads and discards up to `cap` bytes of a body that will not be used.
///
/// A reply sent while the client is still uploading ends the HTTP/2 stream
/// with a reset, and curl (7.88 with nghttp2, for one) then reports a
/// framing error instead of the reply; reading the body first lets clients
/// see the refusal. Beyond `cap` the stream is reset as before.
async fn drain(mut body: Body, cap: u64) {
    let mut seen = 0u64;
    while seen <= cap {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len() as u64),
            _ => return,
        }
    }
}

/// The body, at most `limit` bytes. A larger one is refused (413) after
/// reading up to twice the limit (see [`drain`]); one declared larger than
/// that is refused at once.
async fn read_body(headers: &HeaderMap, mut body: Body, limit: u64) -> Result<Vec<u8>, HostError> {
    let too_large = || {
        HostError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("the request body is larger than this endpoint's limit of {limit} bytes"),
        )
    };
    let drain_cap = limit.saturating_mul(2);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > limit) {
        if n <= drain_cap {
            drain(body, drain_cap).await;
        }
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    let mut seen = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            HostError::new(
                StatusCode::BAD_REQUEST,
                "bad-request",
                format!("the request body could not be read: {e}"),
            )
        })?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        seen += data.len() as u64;
        if seen > drain_cap {
            return Err(too_large());
        }
        if seen <= limit {
            bytes.extend_from_slice(data);
        }
    }
    if seen > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

fn invoke_error(handler: &str, e: InvokeError) -> HostError {
    match &e {
        InvokeError::Timeout(_) => {
            tracing::warn!(handler, "{e}");
            HostError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "handler-timeout",
                e.to_string(),
            )
        }
        InvokeError::Overloaded => {
            tracing::warn!(handler, "{e}");
            HostError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", e.to_string())
        }
        InvokeError::MemoryExhausted(_) => {
            tracing::error!(handler, "{e}");
            HostError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "handler-memory",
                e.to_string(),
            )
        }
        InvokeError::Trap(detail) | InvokeError::Instantiate(detail) => {
            tracing::error!(handler, "handler failed: {detail}");
            HostError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "handler-error",
                format!(
                    "the `{handler}` handler failed while serving this request; the server log has the details under this request id"
                ),
            )
        }
    }
}

fn to_http(r: types::Response, request_id: &str) -> Result<Response, HostError> {
    let status = StatusCode::from_u16(r.status)
        .ok()
        .filter(|s| (200..=599).contains(&s.as_u16()))
        .ok_or_else(|| {
            tracing::error!(status = r.status, "handler returned an invalid HTTP status");
            HostError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "handler-error",
                format!("the handler returned an invalid HTTP status {}", r.status),
            )
        })?;
    let mut resp = Response::new(Body::from(r.body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    for (name, value) in r.headers {
        if HOST_OWNED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            continue;
        }
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
            }
            _ => tracing::warn!(header = %name, "handler returned an invalid header; dropped"),
        }
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_within_the_limit_are_read_whole_and_larger_ones_are_413() {
        let h = HeaderMap::new();
        let got = read_body(&h, Body::from("abcdef"), 6).await.unwrap();
        assert_eq!(got, b"abcdef");
        for too_big in ["abcdefg", "abcdefghijklmnopqrstuvwxyz"] {
            let e = read_body(&h, Body::from(too_big), 6).await.unwrap_err();
            assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE, "{too_big}");
        }
        let mut declared = HeaderMap::new();
        declared.insert(header::CONTENT_LENGTH, HeaderValue::from_static("7"));
        let e = read_body(&declared, Body::from("abcdefg"), 6)
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
