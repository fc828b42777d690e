//! `POST /auth/login`, `/auth/refresh` and `/auth/logout` through the host's
//! `auth` calls (the manifest grants this handler `issue_tokens`): JWT access
//! tokens, refresh tokens, TOTP second factor, revocation.

use crate::envelope::{ApiError, Reply, body, ok};
use baton_sdk::{HostError, Request, Response, auth};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    username: String,
    password: String,
    #[serde(default)]
    mfa_code: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Refresh {
    refresh_token: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct Logout {
    #[serde(default)]
    refresh_token: Option<String>,
}

/// A failed credential check: 401 (429 with `retry-after` when rate-limited).
fn refused(e: HostError) -> Response {
    match e {
        HostError::Denied(m) => ApiError::new(401, m).into(),
        HostError::RateLimited(s) => Response::from(ApiError::new(
            429,
            format!("too many failed logins; retry in {s} s"),
        ))
        .with_header("retry-after", &s.to_string()),
        other => ApiError::from(other).into(),
    }
}

/// `POST /auth/login` with `{"username", "password", "mfa_code"?}`.
pub fn login(req: &Request) -> Result<Response, Response> {
    let l: Login = body(&req.body)?;
    let p =
        auth::verify_password(&l.username, &l.password, l.mfa_code.as_deref()).map_err(refused)?;
    let access = auth::issue_token(&p, 0).map_err(ApiError::from)?;
    let refresh = auth::issue_refresh_token(&p).map_err(ApiError::from)?;
    Ok(ok(
        200,
        &json!({
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": auth::token_lifetime(),
        }),
    ))
}

/// `POST /auth/refresh` with `{"refresh_token"}`: a new access token.
pub fn refresh(req: &Request) -> Result<Response, Response> {
    let r: Refresh = body(&req.body)?;
    let access = auth::refresh(&r.refresh_token, 0).map_err(refused)?;
    Ok(ok(
        200,
        &json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": auth::token_lifetime(),
        }),
    ))
}

/// The token the request was authenticated with: the host reads
/// `X-Authentication` first, then `Authorization: Bearer`, so this does too
/// (else a request carrying both would revoke a token it was not
/// authenticated with, or fail on garbage in the header the host ignored).
pub(crate) fn bearer(req: &Request) -> Option<String> {
    if let Some(v) = req.header("x-authentication") {
        return Some(v.trim().to_string());
    }
    req.header("authorization").and_then(|v| {
        v.get(..7)
            .filter(|p| p.eq_ignore_ascii_case("bearer "))
            .map(|_| v[7..].trim().to_string())
    })
}

/// `POST /auth/logout`: revokes the caller's token at once (and the refresh
/// token given in the body, if any).
pub fn logout(req: &Request) -> Reply {
    let Some(token) = bearer(req) else {
        return Err(ApiError::new(
            400,
            "logout revokes the bearer token of the request; send `Authorization: Bearer <token>`",
        ));
    };
    let extra: Logout = if req.body.iter().all(u8::is_ascii_whitespace) {
        Logout::default()
    } else {
        body(&req.body)?
    };
    auth::revoke_token(&token)?;
    if let Some(r) = extra.refresh_token {
        auth::revoke_token(&r).map_err(|e| match e {
            HostError::Denied(m) | HostError::Invalid(m) => {
                ApiError::bad_request(format!("field `refresh_token`: {m}"))
            }
            other => other.into(),
        })?;
    }
    Ok(ok(200, "Logged out"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_token_is_found_in_either_header() {
        let mut r = Request::new("POST", "/auth/logout");
        r.headers
            .push(("authorization".into(), "Bearer abc.def".into()));
        assert_eq!(bearer(&r).as_deref(), Some("abc.def"));
        let mut r = Request::new("POST", "/auth/logout");
        r.headers.push(("x-authentication".into(), "xyz".into()));
        assert_eq!(bearer(&r).as_deref(), Some("xyz"));
        assert_eq!(bearer(&Request::new("POST", "/auth/logout")), None);
    }

    #[test]
    fn the_bearer_token_is_the_one_the_host_authenticated() {
        // The host takes X-Authentication over Authorization.
        let mut r = Request::new("POST", "/auth/logout");
        r.headers
            .push(("authorization".into(), "Bearer not-the-credential".into()));
        r.headers
            .push(("x-authentication".into(), " the.real.token ".into()));
        assert_eq!(bearer(&r).as_deref(), Some("the.real.token"));
        // Basic credentials carry no token to revoke.
        let mut r = Request::new("POST", "/auth/logout");
        r.headers
            .push(("authorization".into(), "Basic [redacted]".into()));
        assert_eq!(bearer(&r), None);
    }

    #[test]
    fn login_bodies_are_checked_before_any_host_call() {
        for (b, field) in [
            (r#"{"password": "x"}"#, "username"),
            (r#"{"username": 1, "password": "x"}"#, "username"),
            (
                r#"{"username": "a", "password": "x", "mfa_code": 123456}"#,
                "mfa_code",
            ),
        ] {
            let resp = login(&Request::new("POST", "/auth/login").with_body(b)).unwrap_err();
            assert_eq!(resp.status, 400);
            assert!(
                resp.body_json()["error"].as_str().unwrap().contains(field),
                "{b}"
            );
        }
    }
}
