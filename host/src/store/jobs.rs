//! The job engine's storage interface: jobs, their events and graphs, and
//! the schedules that spawn jobs on a timer.
//!
//! The engine reaches its records only through [`JobStore`]; the sled
//! backend is [`super::SledJobStore`]. Every change to a job and the events
//! it produces are atomic to readers and across a crash (one transaction,
//! or the record written last as the commit point), so a crash never
//! leaves a state without its event or a gap in a job's event sequence.

use crate::jobs::model::{EventRecord, GraphRecord, JobRecord, ScheduleRecord};

/// A storage failure of the job engine.
#[derive(Debug, thiserror::Error)]
#[error("the job store failed: {0}")]
pub struct JobStoreError(pub String, pub Unavailable);

/// Whether a [`JobStoreError`] may pass by itself (the database cannot be
/// reached right now), so that callers answer 503 rather than 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unavailable(pub bool);

impl JobStoreError {
    /// A failure that waiting does not mend.
    pub fn new(message: impl Into<String>) -> Self {
        JobStoreError(message.into(), Unavailable(false))
    }

    /// Whether the store cannot be reached right now.
    pub fn is_unavailable(&self) -> bool {
        self.1.0
    }
}

impl From<super::StoreError> for JobStoreError {
    fn from(e: super::StoreError) -> Self {
        let unavailable = matches!(e, super::StoreError::Unavailable(_));
        JobStoreError(e.to_string(), Unavailable(unavailable))
    }
}

/// Events to append: (kind, message).
pub type NewEvents = Vec<(String, String)>;

/// A change to a job: applied to the record, it returns the events to append.
pub type JobChange<'a> = &'a (dyn Fn(&mut JobRecord) -> NewEvents + Send + Sync);

/// A change to a graph.
pub type GraphChange<'a> = &'a (dyn Fn(&mut GraphRecord) + Send + Sync);

/// Which jobs a scan keeps.
pub type JobFilter<'a> = &'a (dyn Fn(&JobRecord) -> bool + Send + Sync);

/// The limits a job's start must stay within across every process sharing
/// the store (a store of one process leaves them to the engine's index).
#[derive(Debug, Clone, Copy)]
pub struct RunLimits<'a> {
    /// The job's handler.
    pub handler: &'a str,
    /// Jobs of that handler running at once, at most.
    pub handler_max: u32,
    /// Jobs running at once, at most.
    pub global_max: u32,
}

/// What [`JobStore::start`] did.
#[derive(Debug)]
pub enum Started {
    /// The change was applied (it may have left a job that was no longer
    /// queued as it was); the record after it.
    Changed(Box<JobRecord>),
    /// The job is queued but a limit is reached across the processes
    /// sharing the store: nothing was written.
    AtLimit,
    /// There is no such job.
    Missing,
}

/// The unfinished work a process takes into its hands (see
/// [`JobStore::adopt`]).
#[derive(Debug, Default)]
pub struct Adopted {
    /// Unfinished jobs (queued or running).
    pub jobs: Vec<JobRecord>,
    /// Their graphs, in any state (the engine keeps the unfinished ones).
    pub graphs: Vec<GraphRecord>,
    /// The replicas whose work this was, when they were taken over.
    pub from: Vec<String>,
}

/// Durable storage of jobs, events and graphs.
///
/// Writes are visible at once and durable after the next
/// [`JobStore::commit`], which concurrent writers share (group commit).
/// Async so that a networked backend fits.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Inserts new jobs (each with its `queued` event, seq 1) and their
    /// graph, atomically.
    async fn insert(
        &self,
        jobs: &[JobRecord],
        graph: Option<&GraphRecord>,
    ) -> Result<(), JobStoreError>;

    /// Applies `f` to job `id` and appends the events it returns, in one
    /// atomic write; a job that becomes `succeeded` is also recorded in its
    /// graph's completion order. `None` when there is no such job. `f` may
    /// run more than once (on conflicts): it must only change what it is given.
    async fn update(&self, id: &str, f: JobChange<'_>) -> Result<Option<JobRecord>, JobStoreError>;

    /// Applies `f` to graph `id`.
    async fn update_graph(
        &self,
        id: &str,
        f: GraphChange<'_>,
    ) -> Result<Option<GraphRecord>, JobStoreError>;

    /// Job `id`.
    async fn get(&self, id: &str) -> Result<Option<JobRecord>, JobStoreError>;

    /// Graph `id`.
    async fn graph(&self, id: &str) -> Result<Option<GraphRecord>, JobStoreError>;

    /// Every graph.
    async fn graphs(&self) -> Result<Vec<GraphRecord>, JobStoreError>;

    /// The jobs of graph `id` that succeeded, in the order they did.
    async fn completed(&self, graph: &str) -> Result<Vec<String>, JobStoreError>;

    /// Jobs after `start_after` (oldest first) for which `keep` holds, at most `limit`.
    async fn scan(
        &self,
        start_after: Option<&str>,
        limit: usize,
        keep: JobFilter<'_>,
    ) -> Result<Vec<JobRecord>, JobStoreError>;

    /// Events of `job` (a record just read) with `after < seq ≤
    /// job.last_seq`, at most `limit`: the record bounds them, so an event
    /// written by a change a crash cut short is never read.
    async fn events(
        &self,
        job: &JobRecord,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, JobStoreError>;

    /// Every schedule, by handler and name.
    async fn schedules(&self) -> Result<Vec<ScheduleRecord>, JobStoreError>;

    /// Creates or replaces the schedule `(s.handler, s.name)`.
    async fn put_schedule(&self, s: &ScheduleRecord) -> Result<(), JobStoreError>;

    /// Removes a schedule; whether it existed.
    async fn delete_schedule(&self, handler: &str, name: &str) -> Result<bool, JobStoreError>;

    /// One tick, atomically: if the stored schedule still has `due_ms` as
    /// its next tick (and `next`'s creation time: it was not replaced), stores `next` and inserts `job` (as [`JobStore::insert`]
    /// does), and removes the jobs of `expired` that have ended (outside
    /// graphs) with their events. `false` when the schedule changed or
    /// another tick got there first: a tick spawns its job exactly once.
    async fn fire(
        &self,
        next: &ScheduleRecord,
        due_ms: u64,
        job: Option<&JobRecord>,
        expired: &[String],
    ) -> Result<bool, JobStoreError>;

    /// Returns once every write made before the call is durable.
    async fn commit(&self) -> Result<(), JobStoreError>;

    /// Whether other processes share this store (replicas): jobs are then
    /// owned, limits checked across processes, and changes announced.
    fn shared(&self) -> bool {
        false
    }

    /// The unfinished work this process is to run and was not given yet.
    /// A store of one process gives every unfinished job and every graph,
    /// once, at start. A shared store gives, atomically moved to this
    /// process: at the first call, the work of its own earlier life and
    /// work that no replica owns; at every call, the work of replicas
    /// whose lease ran out.
    async fn adopt(&self) -> Result<Adopted, JobStoreError> {
        Ok(Adopted {
            jobs: self
                .scan(None, usize::MAX, &|j| !j.state.is_final())
                .await?,
            graphs: self.graphs().await?,
            from: Vec::new(),
        })
    }

    /// Applies `f` (which marks a queued job running) to job `id` as
    /// [`JobStore::update`] does, unless the job is queued and `limits`
    /// are reached across the processes sharing the store.
    async fn start(
        &self,
        id: &str,
        f: JobChange<'_>,
        limits: RunLimits<'_>,
    ) -> Result<Started, JobStoreError> {
        let _ = limits;
        Ok(match self.update(id, f).await? {
            Some(job) => Started::Changed(Box::new(job)),
            None => Started::Missing,
        })
    }

    /// Tells every process sharing the store that job `id` changed in a
    /// way its owner must act on (a cancel requested elsewhere).
    async fn announce(&self, id: &str) -> Result<(), JobStoreError> {
        let _ = id;
        Ok(())
    }
}

/// A new job's record as stored (`last_seq` 1) and its `queued` event.
pub(super) fn queued(job: &JobRecord) -> (JobRecord, EventRecord) {
    let mut job = job.clone();
    job.last_seq = 1;
    let message = match &job.graph {
        Some(g) => format!("queued in graph {g}"),
        None => "queued".to_string(),
    };
    let ev = EventRecord {
        seq: 1,
        at_ms: job.created_at_ms,
        kind: "queued".into(),
        message,
    };
    (job, ev)
}

/// A graph's completion entries with each job kept at its last entry: a
/// job is listed twice only when a crash cut a success short and the job
/// ran again, and its last success is the one that stands.
pub(super) fn last_successes(entries: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::with_capacity(entries.len());
    let mut last_first: Vec<String> = entries
        .into_iter()
        .rev()
        .filter(|id| seen.insert(id.clone()))
        .collect();
    last_first.reverse();
    last_first
}

/// A stored record read back.
pub(super) fn decode<T: serde::de::DeserializeOwned>(
    what: &str,
    bytes: &[u8],
) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("a stored {what} does not decode: {e}"))
}

/// A record as stored (the engine's JSON).
pub(super) fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("job records always serialise")
}
