//! Baton: an orchestration API server whose endpoints are sandboxed
//! WebAssembly components.
//!
//! The crate is organised one concern per module: [`manifest`] (what to
//! serve), [`store`] (sled behind a trait), [`runtime`] (wasmtime, handler
//! versions, per-request instances), [`host_calls`] (the WIT interfaces),
//! [`server`] (axum, routing, errors), [`metrics`] (what Prometheus
//! scrapes), [`telemetry`] (logs and traces) and [`app`] (wiring them together).

pub mod added_mounts;
pub mod app;
pub mod auth;
pub mod builtin;
pub mod cli;
pub mod deploy;
pub mod follow;
pub mod host_calls;
pub mod jobs;
/// `baton.toml` (moved to `baton-parse`, which builds without wasmtime so that it can be fuzzed).
pub use baton_parse::manifest;
pub mod metrics;
pub mod runtime;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod wasm_target;

/// mimalloc for the whole process (the server, its tests and benches):
/// with glibc's malloc, the threads of the runtime, the store's flushes and
/// sled's I/O waited on one another's arena locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Stops `std::backtrace::Backtrace::capture` from walking the stack, for the
/// whole process and whatever the caller's environment, by setting
/// `RUST_LIB_BACKTRACE=0` (which std reads before `RUST_BACKTRACE`).
///
/// wasmtime builds an error with a captured backtrace whenever an instance's
/// store is dropped; with `RUST_BACKTRACE=1` in the environment that capture
/// cost about 8 µs per request. Panic messages still follow `RUST_BACKTRACE`.
///
/// # Safety
/// It writes the environment: call it before any other thread exists.
pub unsafe fn disable_library_backtraces() {
    // SAFETY: the caller guarantees that no other thread reads the environment.
    unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") }
}
