//! The job metrics (`baton_jobs`, `baton_jobs_finished_total`,
//! `baton_job_duration_seconds`), followed where every job change is
//! written: a [`JobStore`] wrapper that sees each job's state before and
//! after a write. Whatever the backend, the figures follow the store, which
//! is the source of truth; the engine is not touched.

use super::global;
use crate::jobs::model::{GraphRecord, JobRecord, JobState, ScheduleRecord};
use crate::store::{
    Adopted, GraphChange, JobChange, JobFilter, JobStore, JobStoreError, RunLimits, Started,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A [`JobStore`] that records every job transition it writes.
pub struct MeteredJobStore {
    inner: Arc<dyn JobStore>,
}

impl MeteredJobStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn JobStore>) -> Self {
        MeteredJobStore { inner }
    }
}

/// Counts jobs already in the store when the server starts (the engine's
/// recovery reads them): the unfinished-job gauges start from them.
pub fn seed(unfinished: &[JobRecord]) {
    for job in unfinished {
        global().job_gauge(&job.handler, job.state, 1);
    }
}

/// Records `job` having gone from `before` to its current state.
fn transition(before: JobState, job: &JobRecord) {
    let after = job.state;
    if before == after {
        return;
    }
    let m = global();
    if !before.is_final() {
        m.job_gauge(&job.handler, before, -1);
    }
    if !after.is_final() {
        m.job_gauge(&job.handler, after, 1);
        return;
    }
    // The duration is observed once: when the job first ends.
    let took = (!before.is_final()).then(|| {
        let end = job
            .finished_at_ms
            .unwrap_or_else(crate::jobs::model::now_ms);
        Duration::from_millis(end.saturating_sub(job.created_at_ms))
    });
    m.job_finished(&job.handler, after, took);
}

/// The state a job change found, so that its transition can be recorded
/// once the change is written. `f` may run more than once (on conflicts);
/// the last run is the one written.
#[derive(Default)]
struct StateSeen(Mutex<Option<JobState>>);

impl StateSeen {
    /// Runs `f` on `job`, noting the state it found.
    fn run(&self, f: JobChange<'_>, job: &mut JobRecord) -> crate::store::NewEvents {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(job.state);
        f(job)
    }

    /// Records the transition to `job` as written.
    fn record(&self, job: &JobRecord) {
        if let Some(before) = *self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            transition(before, job);
        }
    }
}

#[async_trait::async_trait]
impl JobStore for MeteredJobStore {
    async fn insert(
        &self,
        jobs: &[JobRecord],
        graph: Option<&GraphRecord>,
    ) -> Result<(), JobStoreError> {
        self.inner.insert(jobs, graph).await?;
        for job in jobs {
            if !job.state.is_final() {
                global().job_gauge(&job.handler, job.state, 1);
            }
        }
        Ok(())
    }

    async fn update(&self, id: &str, f: JobChange<'_>) -> Result<Option<JobRecord>, JobStoreError> {
        let seen = StateSeen::default();
        let out = self.inner.update(id, &|job| seen.run(f, job)).await?;
        if let Some(job) = &out {
            seen.record(job);
        }
        Ok(out)
    }

    async fn start(
        &self,
        id: &str,
        f: JobChange<'_>,
        limits: RunLimits<'_>,
    ) -> Result<Started, JobStoreError> {
        let seen = StateSeen::default();
        let out = self
            .inner
            .start(id, &|job| seen.run(f, job), limits)
            .await?;
        if let Started::Changed(job) = &out {
            seen.record(job);
        }
        Ok(out)
    }

    fn shared(&self) -> bool {
        self.inner.shared()
    }

    async fn adopt(&self) -> Result<Adopted, JobStoreError> {
        self.inner.adopt().await
    }

    async fn announce(&self, id: &str) -> Result<(), JobStoreError> {
        self.inner.announce(id).await
    }

    async fn update_graph(
        &self,
        id: &str,
        f: GraphChange<'_>,
    ) -> Result<Option<GraphRecord>, JobStoreError> {
        self.inner.update_graph(id, f).await
    }

    async fn get(&self, id: &str) -> Result<Option<JobRecord>, JobStoreError> {
        self.inner.get(id).await
    }

    async fn graph(&self, id: &str) -> Result<Option<GraphRecord>, JobStoreError> {
        self.inner.graph(id).await
    }

    async fn graphs(&self) -> Result<Vec<GraphRecord>, JobStoreError> {
        self.inner.graphs().await
    }

    async fn completed(&self, graph: &str) -> Result<Vec<String>, JobStoreError> {
        self.inner.completed(graph).await
    }

    async fn scan(
        &self,
        start_after: Option<&str>,
        limit: usize,
        keep: JobFilter<'_>,
    ) -> Result<Vec<JobRecord>, JobStoreError> {
        self.inner.scan(start_after, limit, keep).await
    }

    async fn events(
        &self,
        job: &JobRecord,
        after: u64,
        limit: usize,
    ) -> Result<Vec<crate::jobs::model::EventRecord>, JobStoreError> {
        self.inner.events(job, after, limit).await
    }

    async fn schedules(&self) -> Result<Vec<ScheduleRecord>, JobStoreError> {
        self.inner.schedules().await
    }

    async fn put_schedule(&self, s: &ScheduleRecord) -> Result<(), JobStoreError> {
        self.inner.put_schedule(s).await
    }

    async fn delete_schedule(&self, handler: &str, name: &str) -> Result<bool, JobStoreError> {
        self.inner.delete_schedule(handler, name).await
    }

    async fn fire(
        &self,
        next: &ScheduleRecord,
        due_ms: u64,
        job: Option<&JobRecord>,
        expired: &[String],
    ) -> Result<bool, JobStoreError> {
        // Only ended jobs are removed: no gauge counts them.
        let fired = self.inner.fire(next, due_ms, job, expired).await?;
        if fired && let Some(job) = job {
            global().job_gauge(&job.handler, job.state, 1);
        }
        Ok(fired)
    }

    async fn commit(&self) -> Result<(), JobStoreError> {
        self.inner.commit().await
    }
}
