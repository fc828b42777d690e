//! The job engine's storage interface: jobs, their events and graphs, and
//! the schedules that spawn jobs on a timer.
//!
//! The engine reaches its records only through [`JobStore`]; the sled
//! backend is [`super::SledJobStore`]. Every change to a job and the events
//! it produces are atomic to readers and across a crash (one transaction,
//! or the record written last as the commit point), so a crash never
//! leaves a state without its event or a gap in a job's event sequence.

use crate::jobs::model::{EventRecord, GraphRecord, JobRecord, ScheduleRecord};
use std::future::Future;
use std::pin::Pin;

/// A storage failure of the job engine.
#[derive(Debug, thiserror::Error)]
#[error("the job store failed: {0}")]
pub struct JobStoreError(pub String);

impl From<super::StoreError> for JobStoreError {
    fn from(e: super::StoreError) -> Self {
        JobStoreError(e.to_string())
    }
}

/// Events to append: (kind, message).
pub type NewEvents = Vec<(String, String)>;

/// What [`JobStore::commit`] returns.
pub type CommitFuture<'a> = Pin<Box<dyn Future<Output = Result<(), JobStoreError>> + Send + 'a>>;

/// Durable storage of jobs, events and graphs.
///
/// Writes are visible at once and durable after the next
/// [`JobStore::commit`], which concurrent writers share (group commit).
pub trait JobStore: Send + Sync + 'static {
    /// Inserts new jobs (each with its `queued` event, seq 1) and their
    /// graph, atomically.
    fn insert(&self, jobs: &[JobRecord], graph: Option<&GraphRecord>) -> Result<(), JobStoreError>;

    /// Applies `f` to job `id` and appends the events it returns, in one
    /// atomic write; a job that becomes `succeeded` is also recorded in its
    /// graph's completion order. `None` when there is no such job. `f` may
    /// run more than once (on conflicts): it must only change what it is given.
    fn update(
        &self,
        id: &str,
        f: &dyn Fn(&mut JobRecord) -> NewEvents,
    ) -> Result<Option<JobRecord>, JobStoreError>;

    /// Applies `f` to graph `id`.
    fn update_graph(
        &self,
        id: &str,
        f: &dyn Fn(&mut GraphRecord),
    ) -> Result<Option<GraphRecord>, JobStoreError>;

    /// Job `id`.
    fn get(&self, id: &str) -> Result<Option<JobRecord>, JobStoreError>;

    /// Graph `id`.
    fn graph(&self, id: &str) -> Result<Option<GraphRecord>, JobStoreError>;

    /// Every graph.
    fn graphs(&self) -> Result<Vec<GraphRecord>, JobStoreError>;

    /// The jobs of graph `id` that succeeded, in the order they did.
    fn completed(&self, graph: &str) -> Result<Vec<String>, JobStoreError>;

    /// Jobs after `start_after` (oldest first) for which `keep` holds, at most `limit`.
    fn scan(
        &self,
        start_after: Option<&str>,
        limit: usize,
        keep: &mut dyn FnMut(&JobRecord) -> bool,
    ) -> Result<Vec<JobRecord>, JobStoreError>;

    /// Events of `job` (a record just read) with `after < seq ≤
    /// job.last_seq`, at most `limit`: the record bounds them, so an event
    /// written by a change a crash cut short is never read.
    fn events(
        &self,
        job: &JobRecord,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, JobStoreError>;

    /// Every schedule, by handler and name.
    fn schedules(&self) -> Result<Vec<ScheduleRecord>, JobStoreError>;

    /// Creates or replaces the schedule `(s.handler, s.name)`.
    fn put_schedule(&self, s: &ScheduleRecord) -> Result<(), JobStoreError>;

    /// Removes a schedule; whether it existed.
    fn delete_schedule(&self, handler: &str, name: &str) -> Result<bool, JobStoreError>;

    /// One tick, atomically: if the stored schedule still has `due_ms` as
    /// its next tick (and `next`'s creation time: it was not replaced), stores `next` and inserts `job` (as [`JobStore::insert`]
    /// does), and removes the jobs of `expired` that have ended (outside
    /// graphs) with their events. `false` when the schedule changed or
    /// another tick got there first: a tick spawns its job exactly once.
    fn fire(
        &self,
        next: &ScheduleRecord,
        due_ms: u64,
        job: Option<&JobRecord>,
        expired: &[String],
    ) -> Result<bool, JobStoreError>;

    /// Returns once every write made before the call is durable.
    fn commit(&self) -> CommitFuture<'_>;
}
