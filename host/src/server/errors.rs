//! Errors the host itself produces, in the JSON shape of the API family the
//! request was for (see [`ErrorStyle`]), always with the request id.

use crate::manifest::ErrorStyle;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A host-generated error reply.
#[derive(Debug, Clone)]
pub struct HostError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A short machine-readable kind, e.g. `handler-timeout`.
    pub kind: &'static str,
    /// One human sentence: what happened and, where useful, what to do.
    pub message: String,
    /// Extra response headers, e.g. `WWW-Authenticate` or `Retry-After`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl HostError {
    /// An error with `status`, `kind` and `message`.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        HostError {
            status,
            kind,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// The same error with an extra response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The body for `style`.
    pub fn body(&self, style: ErrorStyle, request_id: &str) -> serde_json::Value {
        match style {
            ErrorStyle::Baton => json!({
                "error": { "kind": self.kind, "message": self.message, "request_id": request_id }
            }),
            ErrorStyle::Puppet => json!({
                "kind": format!("puppetlabs.orchestrator/{}", self.kind),
                "msg": self.message,
                "details": { "request_id": request_id },
            }),
            ErrorStyle::Commissaire => json!({ "error": self.message, "request_id": request_id }),
            ErrorStyle::Envelope => json!({
                "success": false, "data": null, "error": self.message, "request_id": request_id,
            }),
            // `Status` of postgres-operator's `pkg/apiservermsgs`, embedded
            // untagged in its replies: `Code` and `Msg` are top-level.
            ErrorStyle::Pgo => json!({
                "Code": "error", "Msg": self.message, "RequestID": request_id,
            }),
        }
    }

    /// The full HTTP response for `style`.
    pub fn into_response(self, style: ErrorStyle, request_id: &str) -> Response {
        let body = self.body(style, request_id);
        let mut resp = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            resp.headers_mut().insert(name, value);
        }
        if let Ok(v) = HeaderValue::from_str(request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_style_carries_message_and_request_id() {
        let e = HostError::new(StatusCode::GATEWAY_TIMEOUT, "handler-timeout", "too slow");
        let puppet = e.body(ErrorStyle::Puppet, "r1");
        assert_eq!(puppet["kind"], "puppetlabs.orchestrator/handler-timeout");
        assert_eq!(puppet["msg"], "too slow");
        assert_eq!(puppet["details"]["request_id"], "r1");
        assert_eq!(e.body(ErrorStyle::Baton, "r1")["error"]["request_id"], "r1");
        assert_eq!(e.body(ErrorStyle::Commissaire, "r1")["error"], "too slow");
        let env = e.body(ErrorStyle::Envelope, "r1");
        assert_eq!(env["success"], false);
        assert_eq!(env["error"], "too slow");
        let pgo = e.body(ErrorStyle::Pgo, "r1");
        assert_eq!(pgo["Code"], "error");
        assert_eq!(pgo["Msg"], "too slow");
        assert_eq!(pgo["RequestID"], "r1");
    }
}
