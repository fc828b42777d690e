//! Exercises the `auth` host calls the way a login endpoint would.

use baton_sdk::{HostError, Handler, Request, Response, Router, auth};
use serde::Deserialize;
use serde_json::json;

struct AuthProbe;

#[derive(Deserialize)]
struct Login {
    username: String,
    password: String,
    mfa_code: Option<String>,
}

#[derive(Deserialize)]
struct Refresh {
    refresh_token: String,
}

fn host_error(e: HostError) -> Response {
    match e {
        HostError::Denied(m) => Response::error(401, &m),
        HostError::RateLimited(s) => {
            Response::error(429, &format!("retry in {s} s")).with_header("retry-after", &s.to_string())
        }
        HostError::Invalid(m) => Response::error(400, &m),
        other => Response::error(500, &other.to_string()),
    }
}

fn bearer(req: &Request) -> Option<String> {
    req.header("x-authentication").map(str::to_string).or_else(|| {
        req.header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string)
    })
}

impl Handler for AuthProbe {
    fn handle(req: Request) -> Response {
        Router::new()
            .get("/whoami", |req| {
                let perm = req.query_param("perm").unwrap_or_default();
                let p = req.principal.as_ref().map(|p| {
                    json!({"subject": p.subject, "roles": p.roles, "namespaces": p.namespaces})
                });
                Response::json(200, &json!({"principal": p, "check": auth::check(&perm)}))
            })
            .get("/headers", |req| Response::json(200, &req.headers))
            .post("/login", |req| {
                let login: Login = req.json()?;
                let p = match auth::verify_password(&login.username, &login.password, login.mfa_code.as_deref()) {
                    Ok(p) => p,
                    Err(e) => return Ok::<_, Response>(host_error(e)),
                };
                let access = auth::issue_token(&p, 0).map_err(host_error)?;
                let refresh = auth::issue_refresh_token(&p).map_err(host_error)?;
                Ok(Response::json(200, &json!({
                    "access_token": access,
                    "refresh_token": refresh,
                    "token_type": "Bearer",
                    "expires_in": auth::token_lifetime(),
                })))
            })
            .post("/refresh", |req| {
                let r: Refresh = req.json()?;
                let access = auth::refresh(&r.refresh_token, 0).map_err(host_error)?;
                Ok::<_, Response>(Response::json(200, &json!({"access_token": access})))
            })
            .post("/logout", |req| {
                let Some(token) = bearer(req) else {
                    return Response::error(400, "no token");
                };
                match auth::revoke_token(&token) {
                    Ok(()) => Response::new(204),
                    Err(e) => host_error(e),
                }
            })
            .handle(req)
    }
}

baton_sdk::export!(AuthProbe);
