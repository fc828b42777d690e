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
///
/// ```no_run
/// # fn main() -> Result<(), baton_sdk::HostError> {
/// // In a login route of a handler granted `issue_tokens`:
/// let principal = baton_sdk::auth::verify_password("ann", "secret", Some("123456"))?;
/// # Ok(())
/// # }
/// ```
pub fn verify_password(
    username: &str,
    password: &str,
    otp: Option<&str>,
) -> Result<Principal, HostError> {
    Ok(wit::verify_password(username, password, otp)?.into())
}

/// Issues an access token for `principal.subject`; `ttl_secs = 0` uses the
/// manifest's default lifetime.
///
/// ```no_run
/// # fn main() -> Result<(), baton_sdk::HostError> {
/// let p = baton_sdk::auth::verify_password("ann", "secret", None)?;
/// let access = baton_sdk::auth::issue_token(&p, 0)?; // default lifetime
/// # Ok(())
/// # }
/// ```
pub fn issue_token(principal: &Principal, ttl_secs: u32) -> Result<String, HostError> {
    Ok(wit::issue_token(&principal.into(), ttl_secs)?)
}

/// Issues a refresh token for `principal.subject`.
///
/// ```no_run
/// # fn main() -> Result<(), baton_sdk::HostError> {
/// let p = baton_sdk::auth::verify_password("ann", "secret", None)?;
/// let refresh = baton_sdk::auth::issue_refresh_token(&p)?;
/// # Ok(())
/// # }
/// ```
pub fn issue_refresh_token(principal: &Principal) -> Result<String, HostError> {
    Ok(wit::issue_refresh_token(&principal.into())?)
}

/// Exchanges a refresh token for a new access token (`ttl_secs = 0`: default).
///
/// ```no_run
/// # fn main() -> Result<(), baton_sdk::HostError> {
/// let access = baton_sdk::auth::refresh("eyJ…refresh", 0)?;
/// # Ok(())
/// # }
/// ```
pub fn refresh(refresh_token: &str, ttl_secs: u32) -> Result<String, HostError> {
    Ok(wit::refresh(refresh_token, ttl_secs)?)
}

/// Revokes an access or refresh token at once.
///
/// ```no_run
/// # fn main() -> Result<(), baton_sdk::HostError> {
/// baton_sdk::auth::revoke_token("eyJ…")?; // logout
/// # Ok(())
/// # }
/// ```
pub fn revoke_token(token: &str) -> Result<(), HostError> {
    Ok(wit::revoke_token(token)?)
}

/// The default access-token lifetime, in seconds.
///
/// ```no_run
/// let expires_in = baton_sdk::auth::token_lifetime(); // seconds, for login replies
/// ```
pub fn token_lifetime() -> u32 {
    wit::token_lifetime()
}
