//! `baton:api/auth`: the caller's permissions for every handler; password
//! checks and tokens only for handlers whose manifest entry grants
//! `issue_tokens` (login endpoints).

use crate::auth::tokens::TokenKind;
use crate::auth::{Auth, AuthError, Principal};
use crate::metrics::AuthFailure;
use crate::runtime::bindings::{auth, types};
use crate::runtime::state::HostState;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// Per-instance auth state: who is calling and what the handler may do.
pub struct AuthState {
    auth: Arc<Auth>,
    caller: Option<Principal>,
    remote: IpAddr,
    can_issue_tokens: bool,
}

impl AuthState {
    /// State for a request from `remote` by `caller`.
    pub fn new(
        auth: Arc<Auth>,
        caller: Option<&types::Principal>,
        remote_addr: &str,
        can_issue_tokens: bool,
    ) -> Self {
        AuthState {
            auth,
            caller: caller.map(|p| Principal {
                subject: p.subject.clone(),
                roles: p.roles.clone(),
                namespaces: p.namespaces.clone(),
            }),
            remote: remote_addr
                .parse::<std::net::SocketAddr>()
                .map(|a| a.ip())
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            can_issue_tokens,
        }
    }

    fn allowed(&self) -> Result<(), types::Error> {
        if self.can_issue_tokens {
            Ok(())
        } else {
            Err(types::Error::Denied(
                "this handler may not verify passwords or issue tokens: grant `issue_tokens = true` in its [handler.capabilities]".into(),
            ))
        }
    }
}

/// The principal as the guest sees it.
pub fn to_wit_principal(p: &Principal) -> types::Principal {
    types::Principal {
        subject: p.subject.clone(),
        roles: p.roles.clone(),
        namespaces: p.namespaces.clone(),
    }
}

/// Counts a refused login in `baton_auth_failures_total`.
fn count_refusal(e: &AuthError) {
    let reason = match e {
        AuthError::RateLimited(_) => AuthFailure::RateLimited,
        AuthError::Unauthenticated(_) | AuthError::Invalid(_) => AuthFailure::Invalid,
        AuthError::Internal(_) | AuthError::Unavailable(_) => return,
    };
    crate::metrics::global().auth_failure(reason);
}

fn to_wit_error(e: AuthError) -> types::Error {
    match e {
        AuthError::Unauthenticated(m) => types::Error::Denied(m),
        AuthError::RateLimited(s) => types::Error::RateLimited(s.min(u32::MAX as u64) as u32),
        AuthError::Invalid(m) => types::Error::Invalid(m),
        AuthError::Internal(m) => types::Error::Internal(m),
        AuthError::Unavailable(m) => types::Error::Unavailable(m),
    }
}

/// Registers `baton:api/auth`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    auth::add_to_linker::<HostState, HasSelf<AuthState>>(linker, |s| &mut s.auth)
}

type Res<T> = wasmtime::Result<Result<T, types::Error>>;

impl auth::Host for AuthState {
    async fn check(&mut self, permission: String) -> wasmtime::Result<bool> {
        Ok(self
            .caller
            .as_ref()
            .is_some_and(|p| self.auth.grants(p, &permission)))
    }

    async fn verify_password(
        &mut self,
        username: String,
        password: String,
        otp: Option<String>,
    ) -> Res<types::Principal> {
        if let Err(e) = self.allowed() {
            return Ok(Err(e));
        }
        Ok(self
            .auth
            .verify_password(&username, &password, otp.as_deref(), self.remote)
            .await
            .map(|p| to_wit_principal(&p))
            .map_err(|e| {
                count_refusal(&e);
                to_wit_error(e)
            }))
    }

    async fn issue_token(&mut self, p: types::Principal, ttl_secs: u32) -> Res<String> {
        if let Err(e) = self.allowed() {
            return Ok(Err(e));
        }
        Ok(self
            .auth
            .issue(&p.subject, TokenKind::Access, ttl_secs.into())
            .await
            .map_err(to_wit_error))
    }

    async fn issue_refresh_token(&mut self, p: types::Principal) -> Res<String> {
        if let Err(e) = self.allowed() {
            return Ok(Err(e));
        }
        Ok(self
            .auth
            .issue(&p.subject, TokenKind::Refresh, 0)
            .await
            .map_err(to_wit_error))
    }

    async fn refresh(&mut self, refresh_token: String, ttl_secs: u32) -> Res<String> {
        if let Err(e) = self.allowed() {
            return Ok(Err(e));
        }
        Ok(self
            .auth
            .refresh(&refresh_token, ttl_secs.into())
            .await
            .map_err(to_wit_error))
    }

    async fn revoke_token(&mut self, token: String) -> Res<()> {
        if let Err(e) = self.allowed() {
            return Ok(Err(e));
        }
        Ok(self.auth.revoke(&token).await.map_err(to_wit_error))
    }

    async fn token_lifetime(&mut self) -> wasmtime::Result<u32> {
        Ok(self.auth.config().token_lifetime_secs)
    }
}
