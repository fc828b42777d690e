//! Work that crosses a process's life: jobs recovered at start, jobs taken
//! over from a replica whose lease ran out (the same rule: an interrupted
//! attempt runs again as a new attempt), jobs parked on another replica's,
//! and notices of changes another replica made.

use super::engine::{JobEngine, JobError};
use super::exec;
use super::model::{GraphState, JobRecord, JobState, now_ms};
use crate::store::{Adopted, NewEvents};
use std::sync::Arc;
use std::time::Duration;

/// How often the watch looks for work to take over and parked jobs to index.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Every how many watches a shared store's schedules are read again.
const SCHEDULES_EVERY: u64 = 10;

impl JobEngine {
    /// At start: takes in the unfinished work this process is to run
    /// (all of it on a store of one process; its own and unowned work on
    /// a shared one).
    pub(super) async fn recover(self: &Arc<Self>) -> Result<(), JobError> {
        let adopted = self.store.adopt().await?;
        self.take_in(adopted).await
    }

    /// Takes in adopted work: kills processes left by interrupted attempts
    /// (on this machine), queues those jobs again as new attempts (a stop
    /// is never a job's failure), indexes the queued jobs and moves graphs
    /// on.
    async fn take_in(self: &Arc<Self>, adopted: Adopted) -> Result<(), JobError> {
        let Adopted {
            jobs: unfinished,
            graphs,
            from,
        } = adopted;
        let cause = if from.is_empty() {
            "a restart".to_string()
        } else {
            format!("the stop of replica {}", from.join(", "))
        };
        crate::metrics::jobs::seed(&unfinished);
        let mut queued = Vec::with_capacity(unfinished.len());
        let mut interrupted = 0;
        for job in unfinished {
            let job = if job.state == JobState::Running {
                if let Some(p) = job.live_process
                    && exec::kill_stale(p)
                {
                    tracing::warn!(job = %job.id, pid = p.pid, "killed the process group an interrupted attempt left behind");
                }
                interrupted += 1;
                match self
                    .store
                    .update(&job.id, &|j| interrupted_attempt(j, &cause))
                    .await?
                {
                    Some(j) => j,
                    None => continue,
                }
            } else {
                job
            };
            if job.state == JobState::Queued {
                queued.push(job);
            }
        }
        self.store.commit().await?;
        let mut rolling_back = Vec::new();
        let mut running_graphs = Vec::new();
        // Each running graph's tally is read before the index is locked.
        let mut tallies = Vec::new();
        for g in graphs {
            match g.state {
                GraphState::Running => {
                    let (mut succeeded, mut cause) = (0, None);
                    for j in &g.jobs {
                        let Some(job) = self.store.get(j).await? else {
                            continue;
                        };
                        match job.state {
                            JobState::Succeeded | JobState::RolledBack => succeeded += 1,
                            JobState::Failed => {
                                cause = Some((Arc::from(j.as_str()), JobState::Failed))
                            }
                            JobState::Cancelled if cause.is_none() => {
                                cause = Some((Arc::from(j.as_str()), JobState::Cancelled))
                            }
                            _ => {}
                        }
                    }
                    tallies.push((g, succeeded, cause));
                }
                GraphState::RollingBack => rolling_back.push(g.id),
                _ => {}
            }
        }
        {
            let mut s = self.sched();
            for (g, succeeded, cause) in tallies {
                s.index.add_graph(
                    &g.id,
                    &g.handler,
                    g.parallel_limit,
                    g.jobs.len(),
                    succeeded,
                    cause,
                );
                running_graphs.push(g.id);
            }
        }
        // A queued job of a graph that already ended can never run.
        let (orphans, queued): (Vec<_>, Vec<_>) = {
            let s = self.sched();
            queued.into_iter().partition(|j| {
                j.graph
                    .as_deref()
                    .is_some_and(|g| s.index.graph(g).is_none())
            })
        };
        let mut blocked: super::index::Blocked = orphans
            .iter()
            .map(|j| (Arc::from(j.id.as_str()), "its graph stopped".to_string()))
            .collect();
        blocked.extend(self.index_add(&queued, now_ms()).await);
        self.skip_all(blocked).await?;
        for g in running_graphs {
            self.check_graph(&g).await?;
        }
        for g in rolling_back {
            self.start_rollback(&g);
        }
        if interrupted > 0 {
            tracing::warn!(
                jobs = interrupted,
                "recovered jobs interrupted by {cause}: they run again"
            );
        }
        Ok(())
    }

    /// Starts the watch: every [`WATCH_EVERY`], on a shared store, takes
    /// over the work of replicas whose lease ran out (and now and then
    /// reads the schedules again); indexes the parked jobs whose
    /// dependencies ended.
    pub(super) fn start_watch(self: &Arc<Self>) {
        let engine = Arc::downgrade(self);
        let shared = self.store.shared();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(WATCH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for turn in 1u64.. {
                tick.tick().await;
                let Some(e) = engine.upgrade() else { return };
                if shared {
                    if turn % SCHEDULES_EVERY == 0
                        && let Err(err) = e.resync_schedules().await
                    {
                        tracing::warn!("reading the schedules again failed: {err}");
                    }
                    match e.store.adopt().await {
                        Ok(a) if a.jobs.is_empty() && a.graphs.is_empty() => {}
                        Ok(a) => {
                            if let Err(err) = e.take_in(a).await {
                                tracing::error!("taking over another replica's jobs failed: {err}");
                            }
                        }
                        Err(err) => tracing::warn!("looking for work to take over failed: {err}"),
                    }
                }
                if let Err(err) = e.unpark().await {
                    tracing::warn!("indexing parked jobs failed: {err}");
                }
            }
        });
    }

    /// Another replica changed job `id` (it ended, or a cancel was asked):
    /// wakes its waiters here; if this process holds the job, acts on it
    /// (stops its attempt, or takes a cancel of a queued job in); moves
    /// parked jobs on.
    pub async fn remote_change(self: &Arc<Self>, id: &str) {
        self.job_changed(id);
        let (queued, running, parked) = {
            let s = self.sched();
            (
                s.index.is_queued(id),
                s.index.cancel_flag(id),
                !s.parked.is_empty(),
            )
        };
        if (queued || running.is_some())
            && let Err(e) = self.held_changed(id, running).await
        {
            tracing::warn!(job = id, "acting on another replica's change failed: {e}");
        }
        if parked && let Err(e) = self.unpark().await {
            tracing::warn!("indexing parked jobs failed: {e}");
        }
    }

    async fn held_changed(
        self: &Arc<Self>,
        id: &str,
        running: Option<Arc<exec::CancelFlag>>,
    ) -> Result<(), JobError> {
        let Some(job) = self.store.get(id).await? else {
            return Ok(());
        };
        if let Some(flag) = running {
            if job.cancel_requested {
                flag.cancel();
            }
            return Ok(());
        }
        if !job.state.is_final() {
            return Ok(());
        }
        let blocked = {
            let mut s = self.sched();
            if s.index.is_queued(id) {
                s.index.finished(id, job.state, 0, now_ms())
            } else {
                Vec::new()
            }
        };
        self.skip_all(blocked).await?;
        if let Some(g) = &job.graph {
            self.check_graph(g).await?;
        }
        self.wake.notify_one();
        Ok(())
    }
}

/// Restarts after which a job interrupted every time fails (a job that
/// brings the server down must not do so forever).
pub const MAX_INTERRUPTIONS: u32 = 10;

/// The change recovery makes to a job whose attempt a stop cut short.
fn interrupted_attempt(j: &mut JobRecord, cause: &str) -> NewEvents {
    j.live_process = None;
    let attempt = j.attempts;
    if j.state != JobState::Running {
        return vec![];
    }
    if j.cancel_requested {
        j.state = JobState::Cancelled;
        j.finished_at_ms = Some(now_ms());
        j.error = Some("cancelled".into());
        return vec![(
            "cancelled".into(),
            format!("attempt {attempt} was cancelled; {cause} came meanwhile"),
        )];
    }
    j.interrupted += 1;
    if j.interrupted > MAX_INTERRUPTIONS {
        j.state = JobState::Failed;
        j.finished_at_ms = Some(now_ms());
        j.error = Some(format!(
            "interrupted by {} restarts in a row",
            j.interrupted
        ));
        return vec![
            (
                "interrupted".into(),
                format!("interrupted by {cause} during attempt {attempt}"),
            ),
            (
                "failed".into(),
                format!("interrupted by {} restarts; not run again", j.interrupted),
            ),
        ];
    }
    j.state = JobState::Queued;
    j.not_before_ms = 0;
    vec![(
        "interrupted".into(),
        format!("interrupted by {cause} during attempt {attempt}; it runs again as a new attempt"),
    )]
}
