//! The durable job engine: jobs and graphs spawned by handlers, stored
//! durably, scheduled within global, per-handler and per-graph limits, run by
//! calling the spawning handler's `run-job` in a fresh sandboxed instance,
//! retried with backoff, cancelled (with their process groups), rolled back
//! in reverse order when a graph fails, and recovered after a crash.
//!
//! - [`model`]: what is stored, through [`crate::store::JobStore`].
//! - [`engine`]: the public API. [`scheduler`]: starting jobs, moving graphs
//!   on, from the in-memory [`index`] of unfinished jobs.
//! - [`runner`]: one attempt, rollbacks. [`takeover`]: recovery at start,
//!   work taken over from replicas that died, jobs waiting on other replicas.
//! - [`graph`]: graph validation. [`exec`]: allow-listed processes.
//! - [`schedules`]: jobs spawned on a timer (cron or interval).

pub mod engine;
pub mod exec;
pub mod exec_files;
pub mod graph;
pub mod index;
pub mod model;
pub mod runner;
pub mod scheduler;
pub mod schedules;
pub mod takeover;

pub use engine::{JobEngine, JobError, ListFilter, NewJob};
pub use exec::CancelFlag;
pub use model::{EventRecord, GraphRecord, GraphState, JobRecord, JobState, ScheduleRecord};
pub use schedules::NewSchedule;
