//! The caller's permissions and, for handlers granted `issue_tokens`, logins
//! and tokens.
//!
//! The host authenticates every request before the handler runs and enforces
//! the route policies of the manifest; [`check`] lets a handler make finer
//! decisions (e.g. show credentials only to callers holding `hosts:creds`).

use crate::bindings::baton::api::auth as wit;
use crate::{HostError, Principal};

/// Whether the current caller holds `permission`.
///
/// ```no_run
/// if !baton_sdk::auth::check("hosts:creds") {
///     // answer 403
/// }
/// ```
pub fn check(permission: &str) -> bool {
    wit::check(permission)
}

/// Checks a user's password and, when the user enrolled TOTP, the current
/// code. Fails with [`HostError::Denied`] on wrong credentials and
/// [`HostError::RateLimited`] after too many failures.
pub fn verify_password(
    username: &str,
    password: &str,
    otp: Option<&str>,
) -> Result<Principal, HostError> {
    Ok(wit::verify_password(username, password, otp)?.into())
}

/// Issues an access token for `principal.subject`; `ttl_secs = 0` uses the
/// manifest's default lifetime.
pub fn issue_token(principal: &Principal, ttl_secs: u32) -> Result<String, HostError> {
    Ok(wit::issue_token(&principal.into(), ttl_secs)?)
}

/// Issues a refresh token for `principal.subject`.
pub fn issue_refresh_token(principal: &Principal) -> Result<String, HostError> {
    Ok(wit::issue_refresh_token(&principal.into())?)
}

/// Exchanges a refresh token for a new access token (`ttl_secs = 0`: default).
pub fn refresh(refresh_token: &str, ttl_secs: u32) -> Result<String, HostError> {
    Ok(wit::refresh(refresh_token, ttl_secs)?)
}

/// Revokes an access or refresh token at once.
pub fn revoke_token(token: &str) -> Result<(), HostError> {
    Ok(wit::revoke_token(token)?)
}

/// The default access-token lifetime, in seconds.
pub fn token_lifetime() -> u32 {
    wit::token_lifetime()
}
