//! The PGO reply shape: every reply carries `"Status": {"Code", "Msg"}`.
//!
//! Like the PGO API server, refusals about the request's meaning (version
//! mismatch, a namespace the user may not use, an unknown or duplicate
//! cluster) are HTTP 200 with `Code: "error"`; a body that cannot be read
//! (not JSON, a field of the wrong type, a required field missing or
//! malformed) is HTTP 400, and storage failures are HTTP 500.

use baton_sdk::{HostError, Response};
use serde_json::{Map, Value, json};

/// What a route returns: a reply, or an error in the PGO shape.
pub type Reply = Result<Response, PgoError>;

/// `Status.Code` of a successful reply.
pub const OK: &str = "ok";
/// `Status.Code` of a refusal.
pub const ERROR: &str = "error";

/// An error reply: `{"Status": {"Code": "error", "Msg": msg}}` with an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgoError {
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, naming the field, cluster, namespace or version at fault.
    pub msg: String,
}

impl PgoError {
    /// A refusal about the request's meaning (HTTP 200, like the PGO API server).
    pub fn refused(msg: impl Into<String>) -> Self {
        PgoError {
            status: 200,
            msg: msg.into(),
        }
    }

    /// A body that cannot be read (HTTP 400).
    pub fn bad_request(msg: impl Into<String>) -> Self {
        PgoError {
            status: 400,
            msg: msg.into(),
        }
    }

    /// A failure of the server itself (HTTP 500).
    pub fn internal(msg: impl Into<String>) -> Self {
        PgoError {
            status: 500,
            msg: msg.into(),
        }
    }
}

impl From<PgoError> for Response {
    fn from(e: PgoError) -> Self {
        Response::json(
            e.status,
            &json!({ "Status": { "Code": ERROR, "Msg": e.msg } }),
        )
    }
}

impl From<HostError> for PgoError {
    fn from(e: HostError) -> Self {
        baton_sdk::log::error(&format!("host call failed: {e}"));
        PgoError::internal(format!("the server could not complete the request: {e}"))
    }
}

/// A 200 reply with `Status: ok` and the given other top-level fields.
pub fn ok(fields: Value) -> Response {
    let mut body = Map::new();
    body.insert("Status".into(), json!({ "Code": OK, "Msg": "" }));
    if let Value::Object(extra) = fields {
        body.extend(extra);
    }
    Response::json(200, &Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_status_object_and_http_status() {
        let resp: Response = PgoError::bad_request("`Name` is required").into();
        assert_eq!(resp.status, 400);
        let body = resp.body_json();
        assert_eq!(body["Status"]["Code"], "error");
        assert_eq!(body["Status"]["Msg"], "`Name` is required");
        assert_eq!(Response::from(PgoError::refused("no")).status, 200);
    }

    #[test]
    fn ok_replies_put_status_first_and_keep_the_fields() {
        let body = ok(json!({ "Version": "4.7.4" })).body_json();
        assert_eq!(body["Status"]["Code"], "ok");
        assert_eq!(body["Status"]["Msg"], "");
        assert_eq!(body["Version"], "4.7.4");
    }
}
