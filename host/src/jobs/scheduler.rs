//! The scheduler: one task that starts ready jobs within the global,
//! per-handler and per-graph limits, and moves graphs on (succeeded, failed,
//! rolled back, cancelled) as their jobs end. Its decisions come from the
//! in-memory [`super::index`], so each costs the same however many jobs
//! wait or however large a graph is.

use super::engine::{JobEngine, JobError};
use super::exec::CancelFlag;
use super::index::Blocked;
use super::model::{GraphState, JobState, now_ms};
use crate::store::{RunLimits, Started};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A job whose start could not be written is tried again this much later.
const RETRY_START_MS: u64 = 1000;
/// A job whose start found a limit reached across replicas (jobs other
/// replicas run) is tried again this much later.
const RETRY_AT_LIMIT_MS: u64 = 200;

impl JobEngine {
    /// Starts every ready job that may start now; returns how long the
    /// scheduler may sleep before a retry becomes due.
    ///
    /// Jobs are claimed in the index under its lock (so the limits hold),
    /// then marked running in the store without the lock, then handed to
    /// their attempts.
    pub(super) async fn dispatch(self: &Arc<Self>) -> Duration {
        let mut wait = Duration::from_secs(1);
        let Some(app) = self.app() else {
            return wait;
        };
        let now = now_ms();
        let max = self.config.max_running;
        let mut to_skip = Blocked::new();
        let mut claims = Vec::new();
        {
            let mut s = self.sched();
            if let Some(due) = s.index.promote_due(now) {
                wait = wait.min(Duration::from_millis(due.saturating_sub(now)));
            }
            let handlers = s.index.handlers_with_work();
            // One job per handler per round, so that no handler starves another.
            let mut claimed_any = true;
            while claimed_any && s.index.running() < max {
                claimed_any = false;
                for h in &handlers {
                    if s.index.running() >= max {
                        break;
                    }
                    let Some(slot) = app.registry.get(h) else {
                        while let Some(id) = s.index.claim(h) {
                            to_skip.push((id, format!("the handler `{h}` is not mounted")));
                        }
                        continue;
                    };
                    if s.index.running_of(h) >= slot.limits.max_running_jobs {
                        continue;
                    }
                    let Some(id) = s.index.claim(h) else {
                        continue;
                    };
                    claimed_any = true;
                    claims.push((id, slot));
                }
            }
        }
        for (id, slot) in claims {
            if self.start_claimed(id, slot, now, &mut to_skip).await {
                wait = wait.min(Duration::from_millis(RETRY_AT_LIMIT_MS));
            }
        }
        if !to_skip.is_empty() {
            let engine = self.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.skip_all(to_skip).await {
                    tracing::error!("cancelling jobs that cannot run failed: {e}");
                }
            });
        }
        wait
    }

    /// Marks claimed job `id` running in the store and starts its attempt;
    /// a job that ended meanwhile (a cancel) goes to `to_skip`'s path, one
    /// that cannot be written, or that would pass a limit across
    /// replicas, is put back for a later try (`true`: a limit).
    async fn start_claimed(
        self: &Arc<Self>,
        id: Arc<str>,
        slot: Arc<crate::runtime::registry::HandlerSlot>,
        now: u64,
        to_skip: &mut Blocked,
    ) -> bool {
        let claimed = AtomicBool::new(false);
        let limits = RunLimits {
            handler: &slot.name,
            handler_max: slot.limits.max_running_jobs,
            global_max: self.config.max_running,
        };
        let started = self
            .store
            .start(
                &id,
                &|j| {
                    claimed.store(j.state == JobState::Queued, Ordering::Relaxed);
                    if j.state != JobState::Queued {
                        return vec![];
                    }
                    j.state = JobState::Running;
                    j.attempts += 1;
                    j.started_at_ms = Some(now_ms());
                    j.cancel_requested = false;
                    vec![(
                        "started".into(),
                        format!(
                            "attempt {} of {}",
                            j.attempts,
                            j.max_attempts + j.interrupted
                        ),
                    )]
                },
                limits,
            )
            .await;
        let mut s = self.sched();
        match started {
            Ok(Started::AtLimit) => {
                s.index.unclaim(&id, now + RETRY_AT_LIMIT_MS, now);
                return true;
            }
            Ok(Started::Changed(job)) if claimed.load(Ordering::Relaxed) => {
                let flag = Arc::new(CancelFlag::default());
                s.index.set_cancel(&id, flag.clone());
                tokio::spawn(self.clone().run_attempt(*job, slot, flag));
            }
            Ok(Started::Changed(job)) if job.state.is_final() => {
                // Ended meanwhile (a cancel): its own path reports it.
                to_skip.extend(s.index.finished(&id, job.state, 0, now));
            }
            Ok(found) => {
                let state = match found {
                    Started::Changed(j) => j.state,
                    _ => JobState::Cancelled,
                };
                tracing::error!(job = %id, "a queued job was {} in the store", state.as_str());
                s.index.unclaim(&id, now + RETRY_START_MS, now);
            }
            Err(e) => {
                tracing::error!(job = %id, "starting a job failed: {e}");
                s.index.unclaim(&id, now + RETRY_START_MS, now);
            }
        }
        false
    }

    /// Cancels queued jobs that can never run, saying why, and whatever
    /// depends on them; then moves their graphs on.
    pub(super) async fn skip_all(self: &Arc<Self>, blocked: Blocked) -> Result<(), JobError> {
        if blocked.is_empty() {
            return Ok(());
        }
        for g in self.cancel_queued(blocked).await? {
            self.check_graph(&g).await?;
        }
        Ok(())
    }

    /// Cancels each queued job of `work` (and, transitively, the jobs that
    /// depend on one), in the store and then in the index; returns the
    /// graphs touched.
    async fn cancel_queued(
        self: &Arc<Self>,
        mut work: Blocked,
    ) -> Result<BTreeSet<String>, JobError> {
        let mut graphs = BTreeSet::new();
        while !work.is_empty() {
            let mut cancelled = Vec::with_capacity(work.len());
            for (id, why) in &work {
                let job = self
                    .store
                    .update(id, &|j| {
                        if j.state != JobState::Queued {
                            return vec![];
                        }
                        j.state = JobState::Cancelled;
                        j.finished_at_ms = Some(now_ms());
                        j.error = Some(why.clone());
                        vec![("cancelled".into(), why.clone())]
                    })
                    .await?;
                if let Some(j) = job
                    && j.state == JobState::Cancelled
                {
                    graphs.extend(j.graph);
                    cancelled.push(id.clone());
                }
            }
            self.store.commit().await?;
            let now = now_ms();
            let mut s = self.sched();
            work = cancelled
                .iter()
                .flat_map(|id| s.index.finished(id, JobState::Cancelled, 0, now))
                .collect();
            drop(s);
            for id in &cancelled {
                self.job_changed(id);
            }
        }
        Ok(graphs)
    }

    /// Moves graph `id` on once its jobs allow: succeeded when all did; when
    /// one failed or was cancelled, the queued ones are cancelled (once) and,
    /// once nothing runs, the graph fails, is rolled back, or is cancelled.
    /// O(1) except for that one cancellation, which reads the graph's job list.
    pub(super) async fn check_graph(self: &Arc<Self>, id: &str) -> Result<(), JobError> {
        let seen = {
            let mut s = self.sched();
            match s.index.graph(id) {
                None => None, // not running (or already ended)
                Some(g) if g.succeeded >= g.total => {
                    s.index.remove_graph(id);
                    Some(None)
                }
                Some(g) => g
                    .cause
                    .clone()
                    .map(|cause| Some((cause, s.index.stop_graph(id)))),
            }
        };
        let (cause, first_stop) = match seen {
            None => return Ok(()),
            Some(None) => {
                self.store
                    .update_graph(id, &|g| {
                        if g.state == GraphState::Running {
                            g.state = GraphState::Succeeded;
                        }
                    })
                    .await?;
                self.store.commit().await?;
                return Ok(());
            }
            Some(Some(c)) => c,
        };
        let (cause_id, cause_state) = cause;
        let by_failure = cause_state == JobState::Failed;
        if first_stop {
            let jobs = self
                .store
                .graph(id)
                .await?
                .map(|g| g.jobs)
                .unwrap_or_default();
            let reason = format!("job {cause_id} of its graph ended {}", cause_state.as_str());
            let queued: Blocked = {
                let s = self.sched();
                if !by_failure {
                    // A cancelled graph stops its running jobs too.
                    for j in &jobs {
                        if let Some(flag) = s.index.cancel_flag(j) {
                            flag.cancel();
                        }
                    }
                }
                jobs.iter()
                    .filter(|j| s.index.is_queued(j))
                    .map(|j| (Arc::from(j.as_str()), reason.clone()))
                    .collect()
            };
            self.cancel_queued(queued).await?;
        }
        {
            let mut s = self.sched();
            match s.index.graph(id) {
                Some(g) if g.running() == 0 => s.index.remove_graph(id),
                _ => return Ok(()), // a running job's end calls back here
            }
        }
        let next = match (
            by_failure,
            self.store.graph(id).await?.is_some_and(|g| g.rollback),
        ) {
            (true, true) => GraphState::RollingBack,
            (true, false) => GraphState::Failed,
            (false, _) => GraphState::Cancelled,
        };
        self.store.update_graph(id, &|g| g.state = next).await?;
        self.store.commit().await?;
        if next == GraphState::RollingBack {
            self.start_rollback(id);
        }
        Ok(())
    }
}
