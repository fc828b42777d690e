//! The durable job engine: spawn work that outlives the request.
//!
//! Jobs run in a fresh instance of the same component, through
//! [`Handler::run_job`](crate::Handler::run_job).

use crate::HostError;
use crate::bindings::baton::api::jobs as wit;

pub use wit::{
    Command, CommandOutput, JobEvent, JobFilter, JobInfo, JobProgress, JobSpec, JobState,
};

impl JobSpec {
    /// A spec with the given kind and input, one attempt, no dependencies.
    pub fn new(kind: &str, input: Vec<u8>) -> Self {
        JobSpec {
            kind: kind.to_string(),
            input,
            depends_on: Vec::new(),
            timeout_ms: None,
            max_attempts: 1,
            labels: Vec::new(),
        }
    }

    /// Allows `n` attempts (retried with backoff).
    pub fn attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// Limits each attempt to `ms` milliseconds.
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.timeout_ms = Some(ms);
        self
    }

    /// Adds a label; in a graph, the `node` label names the spec for `after`.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.to_string(), value.to_string()));
        self
    }

    /// Runs only after `dependency` succeeded: a job id for [`spawn`]; a
    /// `node` label or an index for [`spawn_graph`].
    pub fn after(mut self, dependency: &str) -> Self {
        self.depends_on.push(dependency.to_string());
        self
    }
}

impl Command {
    /// `program` with `args`, an empty environment, no stdin, the default timeout.
    pub fn new(program: &str, args: &[&str]) -> Self {
        Command {
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            stdin: None,
            timeout_ms: None,
        }
    }

    /// Adds an environment variable (the process gets no others).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
}

impl Default for JobFilter {
    fn default() -> Self {
        JobFilter {
            state: None,
            kind: None,
            labels: Vec::new(),
            start_after: None,
            limit: 0,
        }
    }
}

impl JobState {
    /// Whether the job will not run again.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// Queues a job; returns its id.
pub fn spawn(spec: &JobSpec) -> Result<String, HostError> {
    Ok(wit::spawn(spec)?)
}

/// Queues a dependency graph of jobs; returns their ids in the order given.
pub fn spawn_graph(
    specs: &[JobSpec],
    parallel_limit: u32,
    rollback_on_failure: bool,
) -> Result<Vec<String>, HostError> {
    Ok(wit::spawn_graph(
        specs,
        parallel_limit,
        rollback_on_failure,
    )?)
}

/// One job of this handler.
pub fn get(id: &str) -> Result<Option<JobInfo>, HostError> {
    Ok(wit::get(id)?)
}

/// This handler's jobs matching `filter`.
pub fn list(filter: &JobFilter) -> Result<Vec<JobInfo>, HostError> {
    Ok(wit::list(filter)?)
}

/// Cancels a job; its running command, if any, is killed.
pub fn cancel(id: &str) -> Result<(), HostError> {
    Ok(wit::cancel(id)?)
}

/// Events of a job after sequence number `after`, at most `limit`.
pub fn events(id: &str, after: u64, limit: u32) -> Result<Vec<JobEvent>, HostError> {
    Ok(wit::events(id, after, limit)?)
}

/// Inside a running job: reports progress.
pub fn progress(message: &str, done: u32, total: u32) {
    wit::progress(message, done, total)
}

/// Inside a running job: runs an allow-listed command (argv, never a shell).
pub fn exec(cmd: &Command) -> Result<CommandOutput, HostError> {
    Ok(wit::exec(cmd)?)
}
