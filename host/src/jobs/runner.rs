//! Running jobs: one attempt in a fresh instance, its result, rollbacks of a
//! failed graph (reverse completion order), `exec` on behalf of a job, and
//! recovery of jobs a crash interrupted.

use super::engine::{JobEngine, JobError};
use super::exec::{self, CancelFlag, ExecError, ExecOutput, ExecRequest, Stream};
use super::model::{GraphState, JobRecord, JobState, now_ms};
use crate::host_calls::jobs::{JobRun, JobsState};
use crate::runtime::bindings::types::JobContext;
use crate::runtime::registry::HandlerSlot;
use crate::telemetry::traces;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

impl JobEngine {
    /// Runs one attempt of `job` (already marked running) and records the result.
    pub(super) async fn run_attempt(
        self: Arc<Self>,
        job: JobRecord,
        slot: Arc<HandlerSlot>,
        cancel: Arc<CancelFlag>,
    ) {
        let span = tracing::info_span!(
            parent: None,
            "job",
            id = %job.id,
            handler = %job.handler,
            kind = %job.kind,
            attempt = job.attempts,
            trace_id = tracing::field::Empty,
            otel.name = tracing::field::Empty,
        );
        traces::begin_job(&span, &job.kind, job.traceparent.as_deref());
        let result = self
            .invoke(&job, &slot, cancel, false)
            .instrument(span.clone())
            .await;
        let _e = span.enter();
        match &result {
            Ok(_) => tracing::info!("job attempt succeeded"),
            Err(e) => {
                traces::fail(&span, e);
                tracing::warn!("job attempt failed: {e}")
            }
        }
        drop(_e);
        if let Err(e) = self.finish(&job.id, result).await {
            tracing::error!(job = %job.id, "recording a job's result failed: {e}");
        }
    }

    /// Calls the handler's `run-job` for `job` in a fresh instance.
    async fn invoke(
        self: &Arc<Self>,
        job: &JobRecord,
        slot: &HandlerSlot,
        cancel: Arc<CancelFlag>,
        rollback: bool,
    ) -> Result<Vec<u8>, String> {
        let Some(app) = self.app() else {
            return Err("the server is shutting down".into());
        };
        let timeout = Duration::from_millis(job.timeout_ms.unwrap_or(slot.limits.job_timeout_ms));
        let ctx = JobContext {
            id: job.id.clone(),
            kind: job.kind.clone(),
            input: job.input.clone(),
            attempt: job.attempts.max(1),
            rollback,
            labels: job.labels.clone(),
        };
        let state = JobsState::for_job(
            self.clone(),
            slot.name.clone(),
            JobRun {
                id: job.id.clone(),
                cancel: cancel.clone(),
                allow: Arc::new(slot.capabilities.exec.clone()),
                deadline: Instant::now() + timeout,
            },
        );
        let version = slot.current();
        match app
            .runtime
            .run_job(slot, &version, ctx, state, timeout, cancel)
            .await
        {
            Ok(out) => out,
            Err(e) => Err(e.to_string()),
        }
    }

    /// Records the end of an attempt: succeeded, retry later, failed or cancelled.
    async fn finish(
        self: &Arc<Self>,
        id: &str,
        result: Result<Vec<u8>, String>,
    ) -> Result<(), JobError> {
        let now = now_ms();
        let job = self
            .store
            .update(id, &|j| {
                j.live_process = None;
                if j.cancel_requested {
                    j.state = JobState::Cancelled;
                    j.finished_at_ms = Some(now);
                    j.error = Some("cancelled".into());
                    return vec![(
                        "cancelled".into(),
                        format!("attempt {} was cancelled", j.attempts),
                    )];
                }
                match &result {
                    Ok(out) => {
                        j.state = JobState::Succeeded;
                        j.output = Some(out.clone());
                        j.error = None;
                        j.finished_at_ms = Some(now);
                        vec![(
                            "succeeded".into(),
                            format!("attempt {} succeeded", j.attempts),
                        )]
                    }
                    Err(e) if j.attempts.saturating_sub(j.interrupted) < j.max_attempts => {
                        let delay = self.backoff_ms(j.attempts);
                        j.state = JobState::Queued;
                        j.not_before_ms = now + delay;
                        j.error = Some(e.clone());
                        vec![(
                            "retry".into(),
                            format!("attempt {} failed: {e}; retrying in {delay} ms", j.attempts),
                        )]
                    }
                    Err(e) => {
                        j.state = JobState::Failed;
                        j.error = Some(e.clone());
                        j.finished_at_ms = Some(now);
                        vec![(
                            "failed".into(),
                            format!("attempt {} failed: {e}", j.attempts),
                        )]
                    }
                }
            })
            .await?
            .ok_or_else(|| JobError::NotFound(id.to_string()))?;
        self.store.commit().await?;
        let blocked = self
            .sched()
            .index
            .finished(id, job.state, job.not_before_ms, now_ms());
        self.skip_all(blocked).await?;
        if let Some(g) = &job.graph {
            self.check_graph(g).await?;
        }
        self.job_changed(id);
        self.wake.notify_one();
        Ok(())
    }

    /// Starts the rollback task of graph `id` unless one runs already.
    pub(super) fn start_rollback(self: &Arc<Self>, id: &str) {
        if !self.sched().rolling_back.insert(id.to_string()) {
            return;
        }
        let engine = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            if let Err(e) = engine.roll_back(&id).await {
                tracing::error!(graph = %id, "rolling back failed: {e}");
            }
            engine.sched().rolling_back.remove(&id);
        });
    }

    /// Runs the handler's job code in rollback mode for every completed job
    /// of graph `id`, last completed first; the graph ends rolled back, or
    /// failed when a rollback failed.
    async fn roll_back(self: &Arc<Self>, id: &str) -> Result<(), JobError> {
        let completed = self.store.completed(id).await?;
        let mut all_ok = true;
        for job_id in completed.iter().rev() {
            let Some(job) = self.store.get(job_id).await? else {
                continue;
            };
            if job.state != JobState::Succeeded {
                continue; // rolled back before a restart
            }
            let Some(slot) = self.app().and_then(|a| a.registry.get(&job.handler)) else {
                return Err(JobError::Invalid(format!(
                    "the handler `{}` is not mounted",
                    job.handler
                )));
            };
            self.event(
                job_id,
                "rollback-started",
                "undoing this job because its graph failed",
            )
            .await?;
            let result = self.invoke(&job, &slot, Arc::default(), true).await;
            let ok = result.is_ok();
            all_ok &= ok;
            self.store
                .update(job_id, &|j| match &result {
                    Ok(_) => {
                        j.state = JobState::RolledBack;
                        vec![("rolled-back".into(), "rolled back".into())]
                    }
                    Err(e) => {
                        j.error = Some(format!("rollback failed: {e}"));
                        vec![("rollback-failed".into(), format!("rollback failed: {e}"))]
                    }
                })
                .await?;
            self.store.commit().await?;
            self.job_changed(job_id);
        }
        let end = if all_ok {
            GraphState::RolledBack
        } else {
            GraphState::Failed
        };
        self.store.update_graph(id, &|g| g.state = end).await?;
        self.store.commit().await?;
        Ok(())
    }

    /// Runs an allow-listed command for running job `run`, recording its
    /// process (for crash cleanup) and its output lines as events.
    pub async fn exec(
        self: &Arc<Self>,
        run: &JobRun,
        req: ExecRequest,
    ) -> Result<ExecOutput, ExecError> {
        let span = tracing::debug_span!("exec", program = %req.program);
        self.exec_in_span(run, req).instrument(span).await
    }

    async fn exec_in_span(
        self: &Arc<Self>,
        run: &JobRun,
        mut req: ExecRequest,
    ) -> Result<ExecOutput, ExecError> {
        let path = exec::resolve(&req.program, &run.allow)?;
        let left = run.deadline.saturating_duration_since(Instant::now());
        req.timeout = req.timeout.min(left);
        let argv = std::iter::once(req.program.as_str())
            .chain(req.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let _ = self.event(&run.id, "exec", &argv).await;
        // What the job wrote so far (its kv writes too) is durable before
        // the command acts on the world: a crash from here on cannot
        // leave the world ahead of the record of it.
        if let Err(e) = self.store.commit().await {
            tracing::error!(job = %run.id, "flushing before a command failed: {e}");
        }
        // The process and its output lines reach the store in the order
        // they happened, through one writer task.
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let lines = tx.clone();
        let writer = tokio::spawn(self.clone().record_exec(run.id.clone(), rx));
        let out = exec::run(
            &path,
            req,
            run.cancel.clone(),
            move |p| {
                let _ = tx.send(ExecNote::Started(p));
            },
            move |stream, line| {
                let kind = match stream {
                    Stream::Stdout => "stdout",
                    Stream::Stderr => "stderr",
                };
                let _ = lines.send(ExecNote::Line(kind, line.to_string()));
            },
        )
        .await;
        // Every note is sent once `run` returns (its callbacks are dropped).
        let _ = writer.await;
        let _ = self.set_live_process(&run.id, None).await;
        let summary = match &out {
            Ok(o) if o.timed_out => "killed: it ran past its timeout".to_string(),
            Ok(o) => match o.exit_code {
                Some(c) => format!("exit code {c}"),
                None => "killed by a signal".to_string(),
            },
            Err(e) => e.to_string(),
        };
        let _ = self.event(&run.id, "exit", &summary).await;
        out
    }
}

/// What a running command reports, in order.
enum ExecNote {
    /// The process started.
    Started(super::model::LiveProcess),
    /// A line of its output: (stream, text).
    Line(&'static str, String),
}

impl JobEngine {
    /// Writes `notes` of job `id`'s command as they come: its live process
    /// (made durable at once, so that recovery after a crash finds it) and
    /// its output lines as events.
    async fn record_exec(
        self: Arc<Self>,
        id: String,
        mut notes: tokio::sync::mpsc::UnboundedReceiver<ExecNote>,
    ) {
        while let Some(note) = notes.recv().await {
            match note {
                ExecNote::Started(p) => {
                    let _ = self.set_live_process(&id, Some(p)).await;
                    if let Err(err) = self.store.commit().await {
                        tracing::error!("flushing a job's live process failed: {err}");
                    }
                }
                ExecNote::Line(kind, line) => {
                    let _ = self.event(&id, kind, &line).await;
                }
            }
        }
    }
}
