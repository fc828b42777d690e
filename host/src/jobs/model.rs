//! What the job engine stores: jobs, graphs and events, as JSON in sled.

use serde::{Deserialize, Serialize};

/// The state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobState {
    /// Waiting for its dependencies, a free slot, or its retry time.
    Queued,
    /// An attempt is running.
    Running,
    /// Done; `output` holds the result.
    Succeeded,
    /// Out of attempts, or a dependency failed; `error` says why.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
    /// Succeeded, then undone when its graph failed.
    RolledBack,
}

impl JobState {
    /// Whether the job will not run again (`succeeded` may still be rolled back).
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }

    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::RolledBack,
    ];

    /// The name used in the API and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::RolledBack => "rolled-back",
        }
    }

    /// Parses [`JobState::as_str`].
    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// The last progress a job reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// What it is doing.
    pub message: String,
    /// Units done.
    pub done: u32,
    /// Units in all.
    pub total: u32,
}

/// A process a running job started, so that a restart after a crash can
/// kill it before the job runs again (never twice at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveProcess {
    /// Its pid, which is also its process group id.
    pub pid: i32,
    /// Its start time in clock ticks since boot (`/proc/<pid>/stat`), which
    /// tells it apart from a later process that reused the pid.
    pub start_time: u64,
    /// The machine's boot (see [`crate::jobs::exec::this_boot`]): a replica
    /// taking over a job never kills a process of another machine. 0 in
    /// records written before replicas.
    #[serde(default)]
    pub boot: u64,
}

/// One job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// UUIDv7: ids sort by creation time.
    pub id: String,
    /// The handler that spawned it and runs it.
    pub handler: String,
    /// What `run-job` dispatches on.
    pub kind: String,
    /// Where it is.
    pub state: JobState,
    /// The input given at spawn time.
    #[serde(with = "b64")]
    pub input: Vec<u8>,
    /// The result of the successful attempt.
    #[serde(default, with = "b64_opt")]
    pub output: Option<Vec<u8>>,
    /// Why it failed (or how its rollback failed).
    pub error: Option<String>,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts cut short by a server stop (not counted against
    /// `max_attempts`: a restart is never the job's failure).
    #[serde(default)]
    pub interrupted: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Wall clock per attempt, when the spawner set one.
    pub timeout_ms: Option<u64>,
    /// Labels given at spawn time.
    pub labels: Vec<(String, String)>,
    /// Ids of jobs that must succeed first.
    pub depends_on: Vec<String>,
    /// The graph it belongs to.
    pub graph: Option<String>,
    /// The last progress reported.
    pub progress: Option<Progress>,
    /// Milliseconds since the epoch.
    pub created_at_ms: u64,
    /// When the latest attempt started.
    pub started_at_ms: Option<u64>,
    /// When it reached a final state.
    pub finished_at_ms: Option<u64>,
    /// A retry waits until then.
    pub not_before_ms: u64,
    /// The seq of its last event.
    pub last_seq: u64,
    /// A cancel was asked for while it ran.
    pub cancel_requested: bool,
    /// The process its running attempt started, if one is alive.
    pub live_process: Option<LiveProcess>,
    /// The W3C `traceparent` of the span that spawned it, when traces are
    /// on: each attempt's span is that span's child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// Where a graph is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GraphState {
    /// Jobs are queued or running.
    Running,
    /// Every job succeeded.
    Succeeded,
    /// A job failed; the rest were cancelled (no rollback asked).
    Failed,
    /// A job failed; completed jobs are being rolled back.
    RollingBack,
    /// A job failed and every completed job was rolled back.
    RolledBack,
    /// A job was cancelled; the rest were cancelled too.
    Cancelled,
}

/// A graph of jobs spawned together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphRecord {
    /// UUIDv7.
    pub id: String,
    /// The spawning handler.
    pub handler: String,
    /// Its jobs, in spec order.
    pub jobs: Vec<String>,
    /// Jobs of this graph running at once (0 = no limit of its own).
    pub parallel_limit: u32,
    /// Whether a failure rolls back completed jobs.
    pub rollback: bool,
    /// Where it is.
    pub state: GraphState,
    /// Jobs in the order they succeeded, in records written before the
    /// store kept that order beside the graph ([`crate::store::JobStore::completed`]
    /// is the whole order; rollback runs it backwards).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub completed: Vec<String>,
}

/// One event of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// 1, 2, 3… per job.
    pub seq: u64,
    /// Milliseconds since the epoch.
    pub at_ms: u64,
    /// e.g. `started`, `stdout`, `succeeded`.
    pub kind: String,
    /// Human text.
    pub message: String,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(serde::de::Error::custom)
    }
}

mod b64_opt {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&base64::engine::general_purpose::STANDARD.encode(v)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => base64::engine::general_purpose::STANDARD
                .decode(s)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// A schedule: jobs spawned by the host at the times `timing` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    /// The handler whose jobs it spawns.
    pub handler: String,
    /// Unique among the handler's schedules.
    pub name: String,
    /// When it fires.
    pub timing: crate::manifest::schedule::When,
    /// The kind of the jobs it spawns.
    pub kind: String,
    /// Their input.
    #[serde(with = "b64")]
    pub input: Vec<u8>,
    /// Their wall clock per attempt.
    pub timeout_ms: Option<u64>,
    /// Their attempts (0 = 1).
    pub max_attempts: u32,
    /// Their labels (besides `schedule` = the name).
    pub labels: Vec<(String, String)>,
    /// Declared in the manifest, which owns it (rather than created at run time).
    pub from_manifest: bool,
    /// When it was created: intervals count from here.
    pub created_at_ms: u64,
    /// The next tick; `None` when it never fires again.
    pub next_at_ms: Option<u64>,
    /// The last tick.
    pub last_at_ms: Option<u64>,
    /// The job the last tick that spawned one spawned.
    pub last_job: Option<String>,
    /// Ticks that spawned nothing because the previous job had not ended.
    pub skipped: u64,
    /// How many of its jobs are kept once finished.
    #[serde(default = "default_keep_jobs")]
    pub keep_jobs: u32,
    /// The jobs it spawned that are kept, oldest first.
    #[serde(default)]
    pub recent: Vec<String>,
}

fn default_keep_jobs() -> u32 {
    crate::manifest::schedule::DEFAULT_KEEP_JOBS
}
