//! The scheduler: one task that starts queued jobs whose dependencies
//! succeeded, within the global, per-handler and per-graph limits, and moves
//! graphs on (succeeded, failed, rolled back, cancelled) as their jobs end.

use super::engine::{JobEngine, JobError};
use super::exec::CancelFlag;
use super::model::{GraphState, JobRecord, JobState, now_ms};
use std::sync::Arc;
use std::time::Duration;

impl JobEngine {
    /// Starts every queued job that may start now; returns how long the
    /// scheduler may sleep before something becomes due.
    pub(super) fn dispatch(self: &Arc<Self>) -> Duration {
        let mut wait = Duration::from_secs(1);
        let Some(app) = self.app() else {
            return wait;
        };
        let now = now_ms();
        let mut to_cancel: Vec<(String, String)> = Vec::new();
        let mut s = self.sched();
        let pending: Vec<String> = s.pending.iter().cloned().collect();
        for id in pending {
            if s.running.len() >= self.config.max_running as usize {
                break;
            }
            let job = match self.store.get(&id) {
                Ok(Some(j)) if j.state == JobState::Queued => j,
                Ok(_) => {
                    s.pending.remove(&id);
                    continue;
                }
                Err(e) => {
                    tracing::error!(job = %id, "reading a queued job failed: {e}");
                    continue;
                }
            };
            if job.not_before_ms > now {
                wait = wait.min(Duration::from_millis(job.not_before_ms - now));
                continue;
            }
            match self.dependencies(&job) {
                Deps::Ready => {}
                Deps::Waiting => continue,
                Deps::Failed(why) => {
                    to_cancel.push((id.clone(), why));
                    continue;
                }
            }
            let Some(slot) = app.registry.get(&job.handler) else {
                to_cancel.push((
                    id.clone(),
                    format!("the handler `{}` is not mounted", job.handler),
                ));
                continue;
            };
            if s.per_handler.get(&job.handler).copied().unwrap_or(0) >= slot.limits.max_running_jobs
            {
                continue;
            }
            if let Some(g) = &job.graph {
                match self.store.graph(g) {
                    Ok(Some(graph)) if graph.state == GraphState::Running => {
                        let running = s.per_graph.get(g).copied().unwrap_or(0);
                        if graph.parallel_limit > 0 && running >= graph.parallel_limit {
                            continue;
                        }
                    }
                    _ => {
                        to_cancel.push((id.clone(), "its graph stopped".into()));
                        continue;
                    }
                }
            }
            let started = self.store.update(&id, |j, _| {
                j.state = JobState::Running;
                j.attempts += 1;
                j.started_at_ms = Some(now_ms());
                j.cancel_requested = false;
                vec![(
                    "started".into(),
                    format!("attempt {} of {}", j.attempts, j.max_attempts),
                )]
            });
            let job = match started {
                Ok(Some(j)) => j,
                other => {
                    tracing::error!(job = %id, "starting a job failed: {other:?}");
                    continue;
                }
            };
            let flag = Arc::new(CancelFlag::default());
            s.pending.remove(&id);
            s.running.insert(id.clone(), flag.clone());
            *s.per_handler.entry(job.handler.clone()).or_default() += 1;
            if let Some(g) = &job.graph {
                *s.per_graph.entry(g.clone()).or_default() += 1;
            }
            tokio::spawn(self.clone().run_attempt(job, slot, flag));
        }
        drop(s);
        if !to_cancel.is_empty() {
            let engine = self.clone();
            tokio::spawn(async move {
                for (id, why) in to_cancel {
                    if let Err(e) = engine.skip(&id, &why).await {
                        tracing::error!(job = %id, "cancelling a job that cannot run failed: {e}");
                    }
                }
            });
        }
        wait
    }

    fn dependencies(&self, job: &JobRecord) -> Deps {
        for d in &job.depends_on {
            match self.store.get(d) {
                Ok(Some(dep)) => match dep.state {
                    JobState::Succeeded => {}
                    JobState::Queued | JobState::Running => return Deps::Waiting,
                    other => {
                        return Deps::Failed(format!("dependency {d} ended {}", other.as_str()));
                    }
                },
                Ok(None) => return Deps::Failed(format!("dependency {d} does not exist")),
                Err(_) => return Deps::Waiting,
            }
        }
        Deps::Ready
    }

    /// Cancels queued job `id` that can never run, saying why.
    pub(super) async fn skip(self: &Arc<Self>, id: &str, why: &str) -> Result<(), JobError> {
        let job = self.store.update(id, |j, _| {
            if j.state != JobState::Queued {
                return vec![];
            }
            j.state = JobState::Cancelled;
            j.finished_at_ms = Some(now_ms());
            j.error = Some(why.to_string());
            vec![("cancelled".into(), why.to_string())]
        })?;
        self.store.flush().await?;
        self.sched().pending.remove(id);
        if let Some(g) = job.and_then(|j| j.graph) {
            self.check_graph(&g).await?;
        }
        self.changed.notify_waiters();
        Ok(())
    }

    /// Moves graph `id` on once its jobs allow: succeeded when all did; when
    /// one failed or was cancelled, the queued ones are cancelled and, once
    /// nothing runs, the graph fails, is rolled back, or is cancelled.
    pub(super) async fn check_graph(self: &Arc<Self>, id: &str) -> Result<(), JobError> {
        let Some(g) = self.store.graph(id)? else {
            return Ok(());
        };
        if g.state != GraphState::Running {
            return Ok(());
        }
        let mut jobs = Vec::with_capacity(g.jobs.len());
        for j in &g.jobs {
            if let Some(job) = self.store.get(j)? {
                jobs.push(job);
            }
        }
        if jobs.iter().all(|j| j.state == JobState::Succeeded) {
            self.store
                .update_graph(id, |g| g.state = GraphState::Succeeded)?;
            self.store.flush().await?;
            return Ok(());
        }
        let failed = jobs.iter().find(|j| j.state == JobState::Failed);
        let cancelled = jobs.iter().find(|j| j.state == JobState::Cancelled);
        let Some(cause) = failed.or(cancelled) else {
            return Ok(());
        };
        let reason = format!(
            "job {} of its graph ended {}",
            cause.id,
            cause.state.as_str()
        );
        for j in jobs.iter().filter(|j| j.state == JobState::Queued) {
            self.store.update(&j.id, |j, _| {
                if j.state != JobState::Queued {
                    return vec![];
                }
                j.state = JobState::Cancelled;
                j.finished_at_ms = Some(now_ms());
                j.error = Some(reason.clone());
                vec![("cancelled".into(), reason.clone())]
            })?;
            self.sched().pending.remove(&j.id);
        }
        let by_failure = failed.is_some();
        if !by_failure {
            // A cancelled graph stops its running jobs too.
            let s = self.sched();
            for j in jobs.iter().filter(|j| j.state == JobState::Running) {
                if let Some(flag) = s.running.get(&j.id) {
                    flag.cancel();
                }
            }
        }
        if jobs.iter().any(|j| j.state == JobState::Running) {
            self.store.flush().await?;
            return Ok(()); // their finish calls back here
        }
        let next = match (by_failure, g.rollback) {
            (true, true) => GraphState::RollingBack,
            (true, false) => GraphState::Failed,
            (false, _) => GraphState::Cancelled,
        };
        self.store.update_graph(id, |g| g.state = next)?;
        self.store.flush().await?;
        if next == GraphState::RollingBack {
            self.start_rollback(id);
        }
        Ok(())
    }
}

enum Deps {
    Ready,
    Waiting,
    Failed(String),
}
