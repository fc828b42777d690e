//! The provisioning API's reply shape, for successes and errors alike:
//! `{"success": bool, "data": ..., "error": string|null}`.

use baton_sdk::{HostError, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a route returns.
pub type Reply = Result<Response, ApiError>;

/// An error reply: an HTTP status and one line saying what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The message, naming the field, id or value at fault.
    pub message: String,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// A 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, message)
    }

    /// A 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(404, message)
    }
}

/// The envelope itself, serialised field by field (no intermediate
/// `serde_json::Value`: replies are built on every request). Fields in the
/// order clients have always seen them.
#[derive(Serialize)]
struct Envelope<'a, T: Serialize + ?Sized> {
    data: Option<&'a T>,
    error: Option<&'a str>,
    success: bool,
}

impl From<ApiError> for Response {
    fn from(e: ApiError) -> Self {
        let message = baton_sdk::http::clip(&e.message);
        let body: Envelope<'_, ()> = Envelope {
            data: None,
            error: Some(&message),
            success: false,
        };
        Response::json(e.status, &body)
    }
}

impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::NotFound => ApiError::not_found("not found"),
            HostError::Conflict => ApiError::new(409, "conflict"),
            HostError::Invalid(m) => ApiError::bad_request(m),
            HostError::Denied(m) => ApiError::new(403, m),
            HostError::RateLimited(s) => {
                ApiError::new(429, format!("too many attempts; retry in {s} s"))
            }
            HostError::Unavailable(m) => {
                baton_sdk::log::warn(&format!("host call unavailable: {m}"));
                ApiError::new(
                    503,
                    format!("the database cannot be reached right now; retry shortly: {m}"),
                )
            }
            other => {
                baton_sdk::log::error(&format!("host call failed: {other}"));
                ApiError::new(500, format!("the server failed: {other}"))
            }
        }
    }
}

/// A success reply with `data`.
pub fn ok<T: Serialize + ?Sized>(status: u16, data: &T) -> Response {
    let body = Envelope {
        data: Some(data),
        error: None,
        success: true,
    };
    Response::json(status, &body)
}

/// The request body decoded as `T`; errors name the field at fault
/// (`operations[1].type: invalid type: …`).
pub fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body is empty; expected a JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(format!("request body is not valid JSON: {inner}"))
        } else if path == "." || path.is_empty() {
            ApiError::bad_request(format!("invalid request body: {inner}"))
        } else {
            ApiError::bad_request(format!("field `{path}`: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct B {
        name: String,
        ops: Vec<Op>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Op {
        wait: bool,
    }

    #[test]
    fn errors_name_the_field() {
        let e =
            body::<B>(br#"{"name": "x", "ops": [{"wait": true}, {"wait": "yes"}]}"#).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("ops[1].wait"), "{}", e.message);
        let e = body::<B>(br#"{"ops": []}"#).unwrap_err();
        assert!(e.message.contains("missing field `name`"), "{}", e.message);
        let e = body::<B>(b"{nope").unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = body::<B>(b"  ").unwrap_err();
        assert!(e.message.contains("empty"), "{}", e.message);
    }

    #[test]
    fn replies_are_envelopes() {
        let r: Response = ApiError::not_found("no task `x`").into();
        assert_eq!(r.status, 404);
        let b = r.body_json();
        assert_eq!(b["success"], false);
        assert_eq!(b["data"], serde_json::Value::Null);
        assert_eq!(b["error"], "no task `x`");
        let b = ok(200, "fine").body_json();
        assert_eq!(b["success"], true);
        assert_eq!(b["data"], "fine");
        assert_eq!(b["error"], serde_json::Value::Null);
    }
}
