//! The auth step of the request path, before any Wasm runs: take the
//! credential from the headers (or the client certificate), authenticate it,
//! and enforce the route's policy.

use super::errors::HostError;
use super::listen::ConnInfo;
use crate::auth::{Auth, AuthError, Principal};
use crate::manifest::{ErrorStyle, Policy};
use crate::metrics::AuthFailure;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

pub use baton_parse::credentials::{credential, guest_headers};

/// 503 while the store cannot be reached: the client may retry shortly.
fn unavailable() -> HostError {
    HostError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "service-unavailable",
        "the server's database cannot be reached right now; retry shortly",
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from(1u32))
}

/// The caller of a request under `policy`: `None` on public routes, else an
/// authenticated principal holding the permission the policy names.
pub async fn authorize(
    auth: &Auth,
    headers: &HeaderMap,
    conn: &ConnInfo,
    policy: &Policy,
    style: ErrorStyle,
) -> Result<Option<Principal>, HostError> {
    if *policy == Policy::Public {
        return Ok(None);
    }
    let unauthenticated = |msg: String| not_authenticated(style, msg);
    let refused = |reason| crate::metrics::global().auth_failure(reason);
    let cred = credential(headers).map_err(|m| {
        refused(AuthFailure::Malformed);
        unauthenticated(m)
    })?;
    let principal = match cred {
        Some(cred) => auth
            .authenticate(&cred, conn.remote.ip())
            .await
            .map_err(|e| match e {
                AuthError::RateLimited(secs) => {
                    refused(AuthFailure::RateLimited);
                    HostError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "too-many-attempts",
                        e.to_string(),
                    )
                    .with_header(header::RETRY_AFTER, HeaderValue::from(secs))
                }
                AuthError::Unavailable(m) => {
                    tracing::warn!("authentication could not reach the store: {m}");
                    unavailable()
                }
                AuthError::Internal(m) => {
                    tracing::error!("authentication failed: {m}");
                    HostError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "auth-error",
                        "the credentials could not be checked; see the server log",
                    )
                }
                AuthError::Unauthenticated(m) | AuthError::Invalid(m) => {
                    refused(AuthFailure::Invalid);
                    unauthenticated(m)
                }
            })?,
        None => match &conn.peer_subject {
            Some(cn) => auth.principal_for_certificate(cn).await.map_err(|e| {
                if matches!(e, AuthError::Unavailable(_)) {
                    tracing::warn!("looking up the certificate's user: {e}");
                    return unavailable();
                }
                tracing::error!("looking up the certificate's user failed: {e}");
                HostError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "auth-error",
                    "the credentials could not be checked; see the server log",
                )
            })?,
            None => {
                refused(AuthFailure::Missing);
                return Err(unauthenticated(
                    "authentication required: send `X-Authentication: <token>`, `Authorization: Bearer <token>` or HTTP Basic credentials".into(),
                ));
            }
        },
    };
    if let Policy::Permission(p) = policy
        && !auth.grants(&principal, p)
    {
        refused(AuthFailure::Forbidden);
        return Err(HostError::new(
            StatusCode::FORBIDDEN,
            "not-permitted",
            format!(
                "`{}` lacks the permission `{p}` this request needs",
                principal.subject
            ),
        ));
    }
    Ok(Some(principal))
}

/// The refusal of a request without valid credentials, as the API family
/// answers it: 403 for Commissaire (commissaire-http's authentication
/// middleware answers 403 Forbidden, and commctl reads 403 as "The provided
/// credentials were incorrect"), 401 with a challenge for every other one.
pub fn not_authenticated(style: ErrorStyle, msg: String) -> HostError {
    let challenge = match style {
        ErrorStyle::Commissaire => {
            return HostError::new(StatusCode::FORBIDDEN, "not-authenticated", msg);
        }
        ErrorStyle::Pgo => r#"Basic realm="baton""#,
        _ => r#"Bearer realm="baton""#,
    };
    HostError::new(StatusCode::UNAUTHORIZED, "not-authenticated", msg).with_header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_commissaire_refuses_missing_credentials_with_403() {
        let e = not_authenticated(ErrorStyle::Commissaire, "no".into());
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        assert!(e.headers.is_empty());
        assert_eq!(e.body(ErrorStyle::Commissaire, "r")["error"], "no");
        for style in [
            ErrorStyle::Puppet,
            ErrorStyle::Pgo,
            ErrorStyle::Baton,
            ErrorStyle::Envelope,
        ] {
            let e = not_authenticated(style, "no".into());
            assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{style:?}");
            assert_eq!(e.headers[0].0, header::WWW_AUTHENTICATE);
        }
    }
}
