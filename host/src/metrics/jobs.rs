//! The job metrics (`baton_jobs`, `baton_jobs_finished_total`,
//! `baton_job_duration_seconds`), followed where every job change is
//! written: a [`JobStore`] wrapper that sees each job's state before and
//! after a write. Whatever the backend, the figures follow the store, which
//! is the source of truth; the engine is not touched.

use super::global;
use crate::jobs::model::{GraphRecord, JobRecord, JobState, ScheduleRecord};
use crate::store::{CommitFuture, JobStore, JobStoreError, NewEvents};
use std::cell::Cell;
use std::time::Duration;

/// A [`JobStore`] that records every job transition it writes.
pub struct MeteredJobStore<S> {
    inner: S,
}

impl<S: JobStore> MeteredJobStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
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

impl<S: JobStore> JobStore for MeteredJobStore<S> {
    fn insert(&self, jobs: &[JobRecord], graph: Option<&GraphRecord>) -> Result<(), JobStoreError> {
        self.inner.insert(jobs, graph)?;
        for job in jobs {
            if !job.state.is_final() {
                global().job_gauge(&job.handler, job.state, 1);
            }
        }
        Ok(())
    }

    fn update(
        &self,
        id: &str,
        f: &dyn Fn(&mut JobRecord) -> NewEvents,
    ) -> Result<Option<JobRecord>, JobStoreError> {
        // `f` may run more than once; the last run is the one written.
        let before = Cell::new(None);
        let out = self.inner.update(id, &|job| {
            before.set(Some(job.state));
            f(job)
        })?;
        if let (Some(before), Some(job)) = (before.get(), &out) {
            transition(before, job);
        }
        Ok(out)
    }

    fn update_graph(
        &self,
        id: &str,
        f: &dyn Fn(&mut GraphRecord),
    ) -> Result<Option<GraphRecord>, JobStoreError> {
        self.inner.update_graph(id, f)
    }

    fn get(&self, id: &str) -> Result<Option<JobRecord>, JobStoreError> {
        self.inner.get(id)
    }

    fn graph(&self, id: &str) -> Result<Option<GraphRecord>, JobStoreError> {
        self.inner.graph(id)
    }

    fn graphs(&self) -> Result<Vec<GraphRecord>, JobStoreError> {
        self.inner.graphs()
    }

    fn completed(&self, graph: &str) -> Result<Vec<String>, JobStoreError> {
        self.inner.completed(graph)
    }

    fn scan(
        &self,
        start_after: Option<&str>,
        limit: usize,
        keep: &mut dyn FnMut(&JobRecord) -> bool,
    ) -> Result<Vec<JobRecord>, JobStoreError> {
        self.inner.scan(start_after, limit, keep)
    }

    fn events(
        &self,
        job: &JobRecord,
        after: u64,
        limit: usize,
    ) -> Result<Vec<crate::jobs::model::EventRecord>, JobStoreError> {
        self.inner.events(job, after, limit)
    }

    fn schedules(&self) -> Result<Vec<ScheduleRecord>, JobStoreError> {
        self.inner.schedules()
    }

    fn put_schedule(&self, s: &ScheduleRecord) -> Result<(), JobStoreError> {
        self.inner.put_schedule(s)
    }

    fn delete_schedule(&self, handler: &str, name: &str) -> Result<bool, JobStoreError> {
        self.inner.delete_schedule(handler, name)
    }

    fn fire(
        &self,
        next: &ScheduleRecord,
        due_ms: u64,
        job: Option<&JobRecord>,
        expired: &[String],
    ) -> Result<bool, JobStoreError> {
        // Only ended jobs are removed: no gauge counts them.
        let fired = self.inner.fire(next, due_ms, job, expired)?;
        if fired && let Some(job) = job {
            global().job_gauge(&job.handler, job.state, 1);
        }
        Ok(fired)
    }

    fn commit(&self) -> CommitFuture<'_> {
        self.inner.commit()
    }
}
