//! The orchestrator's error shape:
//! `{"kind": "puppetlabs.orchestrator/<kind>", "msg": "...", "details": {...}}`.

use baton_sdk::http::{clip, clip_json};
use baton_sdk::{HostError, Response};
use serde_json::{Value, json};

/// An API error in the orchestrator's shape.
#[derive(Debug, Clone)]
pub struct OrchError {
    status: u16,
    kind: &'static str,
    msg: String,
    details: Value,
}

impl OrchError {
    /// An error with `status`, `kind` (without the prefix) and a message.
    pub fn new(status: u16, kind: &'static str, msg: impl Into<String>) -> Self {
        OrchError {
            status,
            kind,
            msg: msg.into(),
            details: json!({}),
        }
    }

    /// A 400 `validation-error`.
    pub fn validation(msg: impl Into<String>) -> Self {
        OrchError::new(400, "validation-error", msg)
    }

    /// This error with `details`.
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

impl std::fmt::Display for OrchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.msg, self.kind)
    }
}

impl From<OrchError> for Response {
    fn from(e: OrchError) -> Self {
        Response::json(
            e.status,
            &json!({
                "kind": format!("puppetlabs.orchestrator/{}", e.kind),
                "msg": clip(&e.msg),
                "details": clip_json(e.details),
            }),
        )
    }
}

impl From<HostError> for OrchError {
    fn from(e: HostError) -> Self {
        if let HostError::Unavailable(m) = &e {
            baton_sdk::log::warn(&format!("host call unavailable: {m}"));
            return OrchError::new(
                503,
                "service-unavailable",
                format!(
                    "the orchestrator's database cannot be reached right now; retry shortly: {m}"
                ),
            );
        }
        baton_sdk::log::error(&format!("host call failed: {e}"));
        OrchError::new(500, "internal-error", format!("storage failed: {e}"))
    }
}

impl From<baton_sdk::http::BodyError> for OrchError {
    fn from(e: baton_sdk::http::BodyError) -> Self {
        OrchError::validation(e.message)
    }
}
