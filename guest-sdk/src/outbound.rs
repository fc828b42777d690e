//! Outbound HTTP: requests from a handler to the places its manifest grants
//! (`[handler.capabilities] http = [...]`), through the standard
//! `wasi:http/outgoing-handler` interface.
//!
//! ```no_run
//! use baton_sdk::outbound::{self, OutboundRequest};
//!
//! let resp = outbound::send(
//!     &OutboundRequest::get("https://puppetdb.example:8081/pdb/query/v4/nodes")
//!         .header("accept", "application/json"),
//! )?;
//! let nodes: serde_json::Value = resp.json()?;
//! # Ok::<(), baton_sdk::outbound::OutboundError>(())
//! ```
//!
//! The host refuses anything outside the grant before a connection is made
//! ([`OutboundError::Denied`]), and bounds each request (connect and total
//! timeouts, response size, requests per request or job). Redirects are
//! returned as they are: following one is a new request, checked again.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

/// A request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// `http(s)://host[:port]/path?query`.
    pub url: String,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body (empty: none).
    pub body: Vec<u8>,
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundError {
    /// The url is not `http(s)://host[:port]/…`.
    BadUrl(String),
    /// Outside this handler's grant, to an address it may not reach, or
    /// past its number of requests: refused before any connection.
    Denied(String),
    /// A connect, first-byte or total timeout ran out.
    Timeout(String),
    /// The response was larger than the handler's limit.
    TooLarge(String),
    /// Anything else: DNS, connection, TLS, protocol.
    Failed(String),
}

impl std::fmt::Display for OutboundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutboundError::BadUrl(m) => write!(f, "not an http(s) url: {m}"),
            OutboundError::Denied(m) => write!(f, "denied: {m}"),
            OutboundError::Timeout(m) => write!(f, "timed out: {m}"),
            OutboundError::TooLarge(m) => write!(f, "response too large: {m}"),
            OutboundError::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

impl std::error::Error for OutboundError {}

impl From<OutboundError> for crate::Response {
    fn from(e: OutboundError) -> crate::Response {
        let status = match e {
            OutboundError::BadUrl(_) => 400,
            OutboundError::Denied(_) => 403,
            OutboundError::Timeout(_) => 504,
            _ => 502,
        };
        crate::Response::error(status, &e.to_string())
    }
}

impl OutboundRequest {
    /// A request with `method` to `url`, no headers, no body.
    pub fn new(method: &str, url: &str) -> Self {
        OutboundRequest {
            method: method.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `GET url`.
    pub fn get(url: &str) -> Self {
        Self::new("GET", url)
    }

    /// `POST url` with a JSON body.
    pub fn post_json(url: &str, body: &impl serde::Serialize) -> Self {
        Self::new("POST", url)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap_or_default())
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

impl OutboundResponse {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::header_value(&self.headers, name)
    }

    /// The body decoded from JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, OutboundError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            OutboundError::Failed(format!("the response is not the JSON expected: {e}"))
        })
    }
}

/// The parts of an `http(s)` url: whether it is https, its authority, and
/// its path with the query (`/` when it has none).
pub fn split_url(url: &str) -> Result<(bool, &str, String), OutboundError> {
    let bad = || OutboundError::BadUrl(url.to_string());
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let rest = rest.split('#').next().unwrap_or("");
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad());
    }
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    Ok((https, authority, path))
}

fn error(code: ErrorCode) -> OutboundError {
    let text = format!("{code:?}");
    match code {
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => {
            OutboundError::Denied(text)
        }
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout => OutboundError::Timeout(text),
        ErrorCode::HttpResponseBodySize(_) => OutboundError::TooLarge(text),
        _ => OutboundError::Failed(text),
    }
}

/// A body stream's failure that carries no `error-code`, read from its text
/// (the host's limits name themselves there).
fn body_error(text: &str) -> OutboundError {
    let lower = text.to_ascii_lowercase();
    if lower.contains("body size") {
        OutboundError::TooLarge(text.to_string())
    } else if lower.contains("timeout") || lower.contains("timed out") {
        OutboundError::Timeout(text.to_string())
    } else {
        OutboundError::Failed(text.to_string())
    }
}

/// Sends `req` and reads the whole response.
pub fn send(req: &OutboundRequest) -> Result<OutboundResponse, OutboundError> {
    let (https, authority, path) = split_url(&req.url)?;
    let failed = |what: &str| OutboundError::Failed(what.to_string());
    let headers: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&headers)
        .map_err(|e| OutboundError::BadUrl(format!("a header is not allowed: {e:?}")))?;
    let outgoing = OutgoingRequest::new(fields);
    let method = match req.method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_string()),
    };
    let scheme = if https { Scheme::Https } else { Scheme::Http };
    outgoing
        .set_method(&method)
        .and(outgoing.set_scheme(Some(&scheme)))
        .and(outgoing.set_authority(Some(authority)))
        .and(outgoing.set_path_with_query(Some(&path)))
        .map_err(|()| OutboundError::BadUrl(req.url.clone()))?;
    let body = outgoing.body().map_err(|()| failed("the request body"))?;
    let pending = outgoing_handler::handle(outgoing, None).map_err(error)?;
    {
        let stream = body
            .write()
            .map_err(|()| failed("the request body stream"))?;
        for chunk in req.body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| failed(&format!("writing the request body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(error)?;
    pending.subscribe().block();
    let resp = match pending.get() {
        Some(Ok(Ok(resp))) => resp,
        Some(Ok(Err(code))) => return Err(error(code)),
        Some(Err(())) | None => return Err(failed("the response was taken already")),
    };
    let status = resp.status();
    let headers = resp
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = resp.consume().map_err(|()| failed("the response body"))?;
    let mut body = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| failed("the response body stream"))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    let detail = wasip2::http::types::http_error_code(&e);
                    return Err(detail.map_or_else(|| body_error(&e.to_debug_string()), error));
                }
            }
        }
    }
    drop(wasip2::http::types::IncomingBody::finish(incoming));
    Ok(OutboundResponse {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        assert_eq!(
            split_url("https://db.example:8081/pdb/query?x=1").unwrap(),
            (true, "db.example:8081", "/pdb/query?x=1".to_string())
        );
        assert_eq!(
            split_url("http://h").unwrap(),
            (false, "h", "/".to_string())
        );
        assert_eq!(
            split_url("http://h?q").unwrap(),
            (false, "h", "/?q".to_string())
        );
        for bad in ["ftp://h/", "h/x", "http:///x", "https://u:p@h/"] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }
}
