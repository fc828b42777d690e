//! `baton:api/jobs`: spawn and inspect the handler's own jobs; inside a
//! running job, report progress and `exec` allow-listed commands.

use crate::jobs::exec::{ExecError, ExecRequest};
use crate::jobs::exec_files::ExecFile;
use crate::jobs::{CancelFlag, JobEngine, JobError, JobRecord, JobState, ListFilter, NewJob};
use crate::runtime::bindings::{jobs, types};
use crate::runtime::state::HostState;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;
use wasmtime::component::{HasSelf, Linker};

/// The job an instance runs, when it runs one.
#[derive(Clone)]
pub struct JobRun {
    /// The job's id.
    pub id: String,
    /// Set when the job is cancelled.
    pub cancel: Arc<CancelFlag>,
    /// Programs the handler may exec.
    pub allow: Arc<Vec<String>>,
    /// When the attempt's wall clock ends.
    pub deadline: Instant,
}

/// Per-instance jobs state.
pub struct JobsState {
    engine: Arc<JobEngine>,
    handler: Arc<str>,
    run: Option<JobRun>,
}

impl JobsState {
    /// State for an instance serving a request of `handler`.
    pub fn for_request(engine: Arc<JobEngine>, handler: Arc<str>) -> Self {
        JobsState {
            engine,
            handler,
            run: None,
        }
    }

    /// State for an instance running job `run` of `handler`.
    pub fn for_job(engine: Arc<JobEngine>, handler: Arc<str>, run: JobRun) -> Self {
        JobsState {
            engine,
            handler,
            run: Some(run),
        }
    }
}

/// Registers `baton:api/jobs`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    jobs::add_to_linker::<HostState, HasSelf<JobsState>>(linker, |s| &mut s.jobs)
}

type Res<T> = wasmtime::Result<Result<T, types::Error>>;

fn wit_error(e: JobError) -> types::Error {
    match e {
        JobError::NotFound(_) => types::Error::NotFound,
        JobError::Conflict(m) => types::Error::Invalid(m),
        JobError::Invalid(m) => types::Error::Invalid(m),
        JobError::Storage(e) if e.is_unavailable() => {
            tracing::warn!("job engine: {e}");
            types::Error::Unavailable(e.to_string())
        }
        JobError::Storage(e) => {
            tracing::error!("job engine: {e}");
            types::Error::Internal(e.to_string())
        }
    }
}

/// The engine's form of a `job-spec`.
pub(super) fn new_job(s: jobs::JobSpec) -> NewJob {
    NewJob {
        kind: s.kind,
        input: s.input,
        depends_on: s.depends_on,
        timeout_ms: s.timeout_ms,
        max_attempts: s.max_attempts,
        labels: s.labels,
    }
}

fn wit_state(s: JobState) -> jobs::JobState {
    match s {
        JobState::Queued => jobs::JobState::Queued,
        JobState::Running => jobs::JobState::Running,
        JobState::Succeeded => jobs::JobState::Succeeded,
        JobState::Failed => jobs::JobState::Failed,
        JobState::Cancelled => jobs::JobState::Cancelled,
        JobState::RolledBack => jobs::JobState::RolledBack,
    }
}

fn from_wit_state(s: jobs::JobState) -> JobState {
    match s {
        jobs::JobState::Queued => JobState::Queued,
        jobs::JobState::Running => JobState::Running,
        jobs::JobState::Succeeded => JobState::Succeeded,
        jobs::JobState::Failed => JobState::Failed,
        jobs::JobState::Cancelled => JobState::Cancelled,
        jobs::JobState::RolledBack => JobState::RolledBack,
    }
}

fn info(j: JobRecord) -> jobs::JobInfo {
    jobs::JobInfo {
        id: j.id,
        handler: j.handler,
        kind: j.kind,
        state: wit_state(j.state),
        input: j.input,
        output: j.output,
        error: j.error,
        attempts: j.attempts,
        max_attempts: j.max_attempts,
        labels: j.labels,
        depends_on: j.depends_on,
        graph: j.graph,
        progress: j.progress.map(|p| jobs::JobProgress {
            message: p.message,
            done: p.done,
            total: p.total,
        }),
        created_at_ms: j.created_at_ms,
        started_at_ms: j.started_at_ms,
        finished_at_ms: j.finished_at_ms,
    }
}

impl jobs::Host for JobsState {
    async fn spawn(&mut self, spec: jobs::JobSpec) -> Res<String> {
        Ok(self
            .engine
            .spawn(&self.handler, new_job(spec))
            .instrument(tracing::debug_span!("jobs.spawn"))
            .await
            .map_err(wit_error))
    }

    async fn spawn_graph(
        &mut self,
        specs: Vec<jobs::JobSpec>,
        parallel_limit: u32,
        rollback_on_failure: bool,
    ) -> Res<Vec<String>> {
        let specs_len = specs.len();
        let specs = specs.into_iter().map(new_job).collect();
        Ok(self
            .engine
            .spawn_graph(&self.handler, specs, parallel_limit, rollback_on_failure)
            .instrument(tracing::debug_span!("jobs.spawn-graph", jobs = specs_len))
            .await
            .map_err(wit_error))
    }

    async fn get(&mut self, id: String) -> Res<Option<jobs::JobInfo>> {
        Ok(self
            .engine
            .get(&id, Some(&self.handler))
            .instrument(tracing::debug_span!("jobs.get", job = %id))
            .await
            .map(|j| j.map(info))
            .map_err(wit_error))
    }

    async fn list(&mut self, filter: jobs::JobFilter) -> Res<Vec<jobs::JobInfo>> {
        let f = ListFilter {
            handler: Some(self.handler.to_string()),
            state: filter.state.map(from_wit_state),
            kind: filter.kind,
            labels: filter.labels,
            start_after: filter.start_after,
            limit: filter.limit as usize,
        };
        Ok(self
            .engine
            .list(&f)
            .instrument(tracing::debug_span!("jobs.list"))
            .await
            .map(|js| js.into_iter().map(info).collect())
            .map_err(wit_error))
    }

    async fn cancel(&mut self, id: String) -> Res<()> {
        Ok(self
            .engine
            .cancel(&id, Some(&self.handler))
            .instrument(tracing::debug_span!("jobs.cancel", job = %id))
            .await
            .map(|_| ())
            .map_err(|e| match e {
                JobError::Conflict(_) => types::Error::Conflict,
                other => wit_error(other),
            }))
    }

    async fn events(&mut self, id: String, after: u64, limit: u32) -> Res<Vec<jobs::JobEvent>> {
        Ok(self
            .engine
            .events(&id, Some(&self.handler), after, limit as usize)
            .instrument(tracing::debug_span!("jobs.events", job = %id))
            .await
            .map(|evs| {
                evs.into_iter()
                    .map(|e| jobs::JobEvent {
                        seq: e.seq,
                        at_ms: e.at_ms,
                        kind: e.kind,
                        message: e.message,
                    })
                    .collect()
            })
            .map_err(wit_error))
    }

    async fn schedule(&mut self, spec: jobs::ScheduleSpec) -> Res<jobs::ScheduleInfo> {
        Ok(self
            .engine
            .schedule(&self.handler, super::schedules::new_schedule(spec))
            .await
            .map(super::schedules::info)
            .map_err(wit_error))
    }

    async fn unschedule(&mut self, name: String) -> Res<bool> {
        Ok(self
            .engine
            .unschedule(&self.handler, &name)
            .await
            .map_err(wit_error))
    }

    async fn schedules(&mut self) -> Res<Vec<jobs::ScheduleInfo>> {
        Ok(Ok(self
            .engine
            .schedules(Some(&self.handler))
            .into_iter()
            .map(super::schedules::info)
            .collect()))
    }

    async fn progress(&mut self, message: String, done: u32, total: u32) -> wasmtime::Result<()> {
        if let Some(run) = &self.run
            && let Err(e) = self.engine.progress(&run.id, &message, done, total).await
        {
            tracing::error!(job = %run.id, "recording progress failed: {e}");
        }
        Ok(())
    }

    async fn exec(&mut self, cmd: jobs::Command) -> Res<jobs::CommandOutput> {
        let Some(run) = &self.run else {
            return Ok(Err(types::Error::Invalid(
                "exec is only available inside a running job (run-job)".into(),
            )));
        };
        let config = self.engine.config();
        let req = ExecRequest {
            program: cmd.program,
            args: cmd.args,
            env: cmd.env,
            stdin: cmd.stdin,
            timeout: Duration::from_millis(cmd.timeout_ms.unwrap_or(config.exec_timeout_ms)),
            output_cap: config.exec_output_bytes as usize,
            files: cmd
                .files
                .into_iter()
                .map(|f| ExecFile {
                    name: f.name,
                    contents: f.contents,
                })
                .collect(),
            files_root: self.engine.files_root(),
        };
        Ok(match self.engine.exec(run, req).await {
            Ok(o) => Ok(jobs::CommandOutput {
                exit_code: o.exit_code,
                stdout: o.stdout,
                stderr: o.stderr,
                truncated: o.truncated,
                timed_out: o.timed_out,
            }),
            Err(e @ ExecError::NotAllowed(_)) => Err(types::Error::Denied(e.to_string())),
            Err(e @ ExecError::Spawn(..)) => Err(types::Error::Invalid(e.to_string())),
            Err(e @ ExecError::Cancelled) => Err(types::Error::Unavailable(e.to_string())),
            Err(ExecError::Invalid(m)) => Err(types::Error::Invalid(m)),
            Err(ExecError::Io(m)) => {
                tracing::error!("exec: {m}");
                Err(types::Error::Internal(m))
            }
        })
    }
}
