//! The durable job engine: jobs and graphs spawned by handlers, stored in
//! sled, scheduled within global, per-handler and per-graph limits, run by
//! calling the spawning handler's `run-job` in a fresh sandboxed instance,
//! retried with backoff, cancelled (with their process groups), rolled back
//! in reverse order when a graph fails, and recovered after a crash.
//!
//! - [`model`]: what is stored. [`store`]: the sled trees and transactions.
//! - [`engine`]: the public API. [`scheduler`]: starting jobs, moving graphs on.
//! - [`runner`]: one attempt, rollbacks, recovery at start.
//! - [`graph`]: graph validation. [`exec`]: allow-listed processes.

pub mod engine;
pub mod exec;
pub mod exec_files;
pub mod graph;
pub mod model;
pub mod runner;
pub mod scheduler;
pub mod store;

pub use engine::{JobEngine, JobError, ListFilter, NewJob};
pub use exec::CancelFlag;
pub use model::{EventRecord, GraphRecord, GraphState, JobRecord, JobState};
