//! Commissaire's error shape: `{"error": "..."}` (with `"field"` when one
//! field of the request is at fault).

use baton_sdk::{HostError, Response};
use serde_json::json;

/// An API error: a status and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, naming the resource or field.
    pub message: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
}

/// What every route returns.
pub type Reply = Result<Response, ApiError>;

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
        }
    }

    /// A 400 about request field `field`.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
            field: Some(field.to_string()),
        }
    }

    /// A 400.
    pub fn bad(message: impl Into<String>) -> Self {
        ApiError::new(400, message)
    }

    /// A 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(404, message)
    }

    /// A 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(409, message)
    }
}

impl From<ApiError> for Response {
    fn from(e: ApiError) -> Self {
        let message = baton_sdk::http::clip(&e.message);
        let body = match &e.field {
            Some(f) => json!({ "error": message, "field": baton_sdk::http::clip(f) }),
            None => json!({ "error": message }),
        };
        Response::json(e.status, &body)
    }
}

impl From<HostError> for ApiError {
    fn from(e: HostError) -> Self {
        if let HostError::Unavailable(m) = &e {
            baton_sdk::log::warn(&format!("host call unavailable: {m}"));
            return ApiError::new(
                503,
                format!("the database cannot be reached right now; retry shortly: {m}"),
            );
        }
        baton_sdk::log::error(&format!("host call failed: {e}"));
        ApiError::new(500, format!("storage failed: {e}"))
    }
}

impl From<baton_sdk::http::BodyError> for ApiError {
    fn from(e: baton_sdk::http::BodyError) -> Self {
        ApiError::bad(e.message)
    }
}
