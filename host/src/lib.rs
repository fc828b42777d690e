//! Baton: an orchestration API server whose endpoints are sandboxed
//! WebAssembly components.
//!
//! The crate is organised one concern per module: [`manifest`] (what to
//! serve), [`store`] (sled behind a trait), [`runtime`] (wasmtime, handler
//! versions, per-request instances), [`host_calls`] (the WIT interfaces),
//! [`server`] (axum, routing, errors) and [`app`] (wiring them together).

pub mod added_mounts;
pub mod app;
pub mod auth;
pub mod builtin;
pub mod cli;
pub mod deploy;
pub mod host_calls;
pub mod jobs;
pub mod manifest;
pub mod runtime;
pub mod server;
pub mod store;
