//! # baton-sdk: write Baton handlers
//!
//! A Baton handler is a WebAssembly component (`wasm32-wasip2`) that answers
//! HTTP requests routed to its mount and runs the jobs it spawns. This crate
//! hides the raw WIT bindings behind a small, ordinary Rust API:
//!
//! ```no_run
//! use baton_sdk::{Handler, Request, Response, Router};
//!
//! struct Hello;
//!
//! impl Handler for Hello {
//!     fn handle(req: Request) -> Response {
//!         Router::new()
//!             .get("/hello/{name}", |req| {
//!                 let name = req.param("name").unwrap_or("world");
//!                 Response::json(200, &serde_json::json!({ "hello": name }))
//!             })
//!             .handle(req)
//!     }
//! }
//!
//! baton_sdk::export!(Hello);
//! ```
//!
//! Everything in [`http`] and [`router`] is plain Rust and can be unit-tested
//! natively; [`kv`], [`auth`], [`config`], [`secrets`], [`log`], [`jobs`] and [`outbound`]
//! call the host and only work inside a running component.

pub mod auth;
pub mod config;
pub mod error;
pub mod http;
pub mod jobs;
pub mod kv;
pub mod log;
pub mod openapi;
pub mod outbound;
pub mod router;
pub mod secrets;
pub mod time;

pub use error::HostError;
pub use http::{Principal, Request, Response};
pub use router::Router;

/// The generated WIT bindings. Handler code should not need them directly.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "handler",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "baton_sdk::bindings",
    });
}

/// A job handed to [`Handler::run_job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The job's id in the engine.
    pub id: String,
    /// The `kind` given at spawn time; dispatch on it.
    pub kind: String,
    /// The input given at spawn time.
    pub input: Vec<u8>,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// True when the engine asks the job to undo a completed run.
    pub rollback: bool,
    /// Labels given at spawn time.
    pub labels: Vec<(String, String)>,
}

/// What a handler component implements. Export it with [`export!`].
pub trait Handler {
    /// Answers one request. Called in a fresh instance for every request.
    fn handle(req: Request) -> Response;

    /// Runs (or, when `job.rollback` is set, undoes) a job this handler spawned.
    /// The default refuses: a handler that spawns no jobs needs nothing here.
    fn run_job(job: Job) -> Result<Vec<u8>, String> {
        Err(format!(
            "this handler does not run jobs (kind `{}`)",
            job.kind
        ))
    }
}

/// Glue used by [`export!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    use super::*;
    use crate::bindings::baton::api::types;

    pub fn handle<H: Handler>(req: types::Request) -> types::Response {
        H::handle(Request::from(req)).into()
    }

    pub fn run_job<H: Handler>(job: types::JobContext) -> Result<Vec<u8>, String> {
        H::run_job(Job {
            id: job.id,
            kind: job.kind,
            input: job.input,
            attempt: job.attempt,
            rollback: job.rollback,
            labels: job.labels,
        })
    }
}

/// Exports a type implementing [`Handler`] as this component's handler.
///
/// ```ignore
/// struct MyHandler;
/// impl baton_sdk::Handler for MyHandler { /* ... */ }
/// baton_sdk::export!(MyHandler);
/// ```
#[macro_export]
macro_rules! export {
    ($handler:ty) => {
        #[doc(hidden)]
        pub struct __BatonExport;

        impl $crate::bindings::Guest for __BatonExport {
            fn handle(
                req: $crate::bindings::baton::api::types::Request,
            ) -> $crate::bindings::baton::api::types::Response {
                $crate::__private::handle::<$handler>(req)
            }

            fn run_job(
                job: $crate::bindings::baton::api::types::JobContext,
            ) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
                $crate::__private::run_job::<$handler>(job)
            }
        }

        // The component's exports (`handle`, `run-job`) exist only in the
        // component: native builds (unit tests, the fuzz targets) may link
        // several handlers into one binary, where they would collide.
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::__export_world!(__BatonExport with_types_in $crate::bindings);
    };
}
