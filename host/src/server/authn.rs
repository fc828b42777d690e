//! The auth step of the request path, before any Wasm runs: take the
//! credential from the headers (or the client certificate), authenticate it,
//! and enforce the route's policy.

use super::errors::HostError;
use super::listen::ConnInfo;
use crate::auth::{Auth, AuthError, Credential, Principal};
use crate::manifest::{ErrorStyle, Policy};
use crate::metrics::AuthFailure;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use base64::Engine as _;

/// The credential a request carries: `X-Authentication: <token>`, then
/// `Authorization: Bearer <token>` or `Basic <base64(user:pass)>`.
/// `Ok(None)` when there is none; `Err` with the reason when it is garbage.
pub fn credential(headers: &HeaderMap) -> Result<Option<Credential>, String> {
    if let Some(v) = headers.get("x-authentication") {
        let token = v
            .to_str()
            .map_err(|_| "the X-Authentication header is not text".to_string())?
            .trim();
        if token.is_empty() {
            return Err("the X-Authentication header is empty".into());
        }
        return Ok(Some(Credential::Token(token.to_string())));
    }
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| "the Authorization header is not text".to_string())?
        .trim();
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(Some(Credential::Token(rest.to_string())));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or("the Basic credentials are not base64 of `user:password`")?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or("the Basic credentials are not base64 of `user:password`")?;
        return Ok(Some(Credential::Basic {
            user: user.to_string(),
            password: password.to_string(),
        }));
    }
    Err("the Authorization header must be `Bearer <token>` or `Basic <credentials>`".into())
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
            Some(cn) => auth.principal_for_certificate(cn).map_err(|e| {
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

/// The request headers as the guest sees them: Basic passwords are redacted.
pub fn guest_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let value = match v.to_str() {
                Ok(visible_ascii) => visible_ascii.to_string(),
                Err(_) => String::from_utf8_lossy(v.as_bytes()).into_owned(),
            };
            let redact = k == header::AUTHORIZATION
                && value
                    .get(..6)
                    .is_some_and(|s| s.eq_ignore_ascii_case("basic "));
            let value = if redact {
                "Basic [redacted]".to_string()
            } else {
                value
            };
            (k.as_str().to_string(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn every_header_form_is_read() {
        assert_eq!(
            credential(&headers(&[("x-authentication", b"abc")])).unwrap(),
            Some(Credential::Token("abc".into()))
        );
        assert_eq!(
            credential(&headers(&[("authorization", b"bearer xyz")])).unwrap(),
            Some(Credential::Token("xyz".into()))
        );
        assert_eq!(
            credential(&headers(&[("authorization", b"Basic YW5uOnB3OmQ=")])).unwrap(),
            Some(Credential::Basic {
                user: "ann".into(),
                password: "pw:d".into()
            })
        );
        assert_eq!(credential(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn garbage_is_explained() {
        for bad in [
            ("authorization", &b"Basic !!!"[..]),
            ("authorization", b"Basic bm9jb2xvbg=="),
            ("authorization", b"Digest x"),
            ("authorization", b"Bearer"),
            ("x-authentication", b"  "),
            ("x-authentication", b"\xff\xfe"),
        ] {
            assert!(credential(&headers(&[bad])).is_err(), "{bad:?}");
        }
    }

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

    #[test]
    fn basic_passwords_never_reach_the_guest() {
        let h = headers(&[("authorization", b"Basic YW5uOnB3"), ("x-a", b"1")]);
        let g = guest_headers(&h);
        assert!(g.contains(&("authorization".into(), "Basic [redacted]".into())));
        assert!(g.contains(&("x-a".into(), "1".into())));
    }
}
