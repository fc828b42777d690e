//! Typed errors from host calls.

use crate::bindings::baton::api::types::Error as WitError;

/// An error returned by a host call (kv, jobs, auth).
///
/// ```no_run
/// use baton_sdk::{HostError, Response};
/// let resp = match baton_sdk::jobs::cancel("0190f0c2-…") {
///     Ok(()) => Response::new(204),
///     Err(HostError::NotFound) => Response::error(404, "no such job"),
///     Err(HostError::Conflict) => Response::error(409, "the job already ended"),
///     Err(e) => Response::error(500, &e.to_string()),
/// };
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// The thing asked for does not exist.
    NotFound,
    /// The write conflicts with the current state.
    Conflict,
    /// The arguments were rejected; the message says why.
    Invalid(String),
    /// The caller or handler is not allowed to do this.
    Denied(String),
    /// The capability is not available (not configured, or not implemented yet).
    Unavailable(String),
    /// The host failed; the message says how.
    Internal(String),
    /// Too many attempts; retry after this many seconds.
    RateLimited(u32),
    /// A stored value could not be decoded as the type asked for.
    Decode(String),
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostError::NotFound => f.write_str("not found"),
            HostError::Conflict => f.write_str("conflict"),
            HostError::Invalid(m) => write!(f, "invalid: {m}"),
            HostError::Denied(m) => write!(f, "denied: {m}"),
            HostError::Unavailable(m) => write!(f, "unavailable: {m}"),
            HostError::Internal(m) => write!(f, "internal: {m}"),
            HostError::RateLimited(s) => write!(f, "too many attempts; retry in {s} s"),
            HostError::Decode(m) => write!(f, "stored value does not decode: {m}"),
        }
    }
}

impl std::error::Error for HostError {}

impl From<WitError> for HostError {
    fn from(e: WitError) -> Self {
        match e {
            WitError::NotFound => HostError::NotFound,
            WitError::Conflict => HostError::Conflict,
            WitError::Invalid(m) => HostError::Invalid(m),
            WitError::Denied(m) => HostError::Denied(m),
            WitError::Unavailable(m) => HostError::Unavailable(m),
            WitError::Internal(m) => HostError::Internal(m),
            WitError::RateLimited(s) => HostError::RateLimited(s),
        }
    }
}
