//! `baton:api/auth`: declared now; users, tokens and permissions arrive with
//! the auth issue. Until then `check` grants nothing and the rest answer
//! `unavailable`.

use super::unavailable;
use crate::runtime::bindings::{auth, types};
use crate::runtime::state::HostState;
use wasmtime::component::{HasSelf, Linker};

/// Per-instance auth state (empty until users and tokens land).
#[derive(Default)]
pub struct AuthState {}

/// Registers `baton:api/auth`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    auth::add_to_linker::<HostState, HasSelf<AuthState>>(linker, |s| &mut s.auth)
}

type Res<T> = wasmtime::Result<Result<T, types::Error>>;

impl auth::Host for AuthState {
    async fn check(&mut self, _permission: String) -> wasmtime::Result<bool> {
        Ok(false)
    }
    async fn verify_password(
        &mut self,
        _: String,
        _: String,
        _: Option<String>,
    ) -> Res<types::Principal> {
        Ok(Err(unavailable("password verification")))
    }
    async fn issue_token(&mut self, _: types::Principal, _: u32) -> Res<String> {
        Ok(Err(unavailable("token issuing")))
    }
    async fn revoke_token(&mut self, _: String) -> Res<()> {
        Ok(Err(unavailable("token revocation")))
    }
}
