//! The host side of each WIT interface, one file per interface. Each file owns
//! its per-instance state type, its `Host` trait impl and its linker
//! registration; [`add_to_linker`] registers them all.

pub mod auth;
pub mod config;
pub mod http;
pub mod jobs;
pub mod kv;
pub mod log;
pub mod schedules;
pub mod secrets;

use crate::runtime::bindings::types;
use crate::runtime::state::HostState;
use wasmtime::component::{HasSelf, Linker};

/// Registers WASI (no files, sockets or environment), `wasi:http` (outbound
/// requests within the handler's grant, [`http`]) and every Baton interface.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    types::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    kv::add_to_linker(linker)?;
    config::add_to_linker(linker)?;
    log::add_to_linker(linker)?;
    jobs::add_to_linker(linker)?;
    auth::add_to_linker(linker)?;
    secrets::add_to_linker(linker)?;
    Ok(())
}

impl types::Host for HostState {}
