//! The job engine's API: spawn, graphs, get, list, cancel, events, progress,
//! and the scheduler task's loop (its decisions are in [`super::scheduler`]).

use super::graph;
use super::index::Blocked;
use super::index::Index;
use super::model::{GraphRecord, GraphState, JobRecord, JobState, Progress, now_ms};
use crate::app::App;
use crate::manifest::JobsConfig;
use crate::store::{JobStore, JobStoreError};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use tokio::sync::Notify;

/// Most jobs one list call returns.
pub const MAX_LIST: usize = 1000;
/// Attempts a job may ask for.
pub const MAX_ATTEMPTS: u32 = 100;
/// Jobs one graph may hold.
pub const MAX_GRAPH_JOBS: usize = 10_000;
/// How often [`JobEngine::wait`] reads a job again without a wake-up.
const WAIT_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Why a job call failed. Messages are safe to show to the caller.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No such job (for this handler).
    #[error("there is no job `{0}`")]
    NotFound(String),
    /// The job is already finished.
    #[error("{0}")]
    Conflict(String),
    /// Bad spec or graph.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] JobStoreError),
}

/// A job to spawn.
#[derive(Debug, Clone, Default)]
pub struct NewJob {
    /// What `run-job` dispatches on.
    pub kind: String,
    /// Its input.
    pub input: Vec<u8>,
    /// Job ids (spawn) or graph references (spawn-graph).
    pub depends_on: Vec<String>,
    /// Wall clock per attempt.
    pub timeout_ms: Option<u64>,
    /// Attempts allowed (0 = 1).
    pub max_attempts: u32,
    /// Labels.
    pub labels: Vec<(String, String)>,
}

/// Checks a job's kind, attempts and timeout.
pub(super) fn check_spec(spec: &NewJob) -> Result<(), JobError> {
    if spec.kind.is_empty() || spec.kind.len() > 256 {
        return Err(JobError::Invalid(
            "a job's `kind` must be 1 to 256 characters".into(),
        ));
    }
    if spec.max_attempts > MAX_ATTEMPTS {
        return Err(JobError::Invalid(format!(
            "max-attempts {} is more than {MAX_ATTEMPTS}",
            spec.max_attempts
        )));
    }
    if spec.timeout_ms == Some(0) {
        return Err(JobError::Invalid("timeout-ms must be at least 1".into()));
    }
    Ok(())
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this handler's.
    pub handler: Option<String>,
    /// Only in this state.
    pub state: Option<JobState>,
    /// Only of this kind.
    pub kind: Option<String>,
    /// Only with all these labels.
    pub labels: Vec<(String, String)>,
    /// Paging: after this id.
    pub start_after: Option<String>,
    /// At most this many (0 = 100, capped at [`MAX_LIST`]).
    pub limit: usize,
}

#[derive(Default)]
pub(super) struct Sched {
    /// The unfinished jobs, their queues and counts.
    pub index: Index,
    /// Graphs whose rollback task runs.
    pub rolling_back: HashSet<String>,
    /// Queued jobs that wait on a job another replica runs (or on such a
    /// job's dependents): indexed once those have ended.
    pub parked: Vec<JobRecord>,
}

/// The job engine of a server.
pub struct JobEngine {
    pub(super) store: Arc<dyn JobStore>,
    pub(super) config: JobsConfig,
    pub(super) app: OnceLock<Weak<App>>,
    pub(super) sched: Mutex<Sched>,
    pub(super) wake: Notify,
    /// Wake-ups of [`JobEngine::wait`] callers, per job.
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    /// Where commands' private files go (see [`JobEngine::set_files_root`]).
    files_root: OnceLock<std::path::PathBuf>,
    /// Every schedule (see [`super::schedules`]).
    pub(super) book: super::schedules::Book,
}

impl JobEngine {
    /// An engine over `store`. Nothing runs before [`JobEngine::start`].
    pub fn open(
        store: Arc<dyn JobStore>,
        config: JobsConfig,
    ) -> Result<Arc<JobEngine>, JobStoreError> {
        Ok(Arc::new(JobEngine {
            store,
            config,
            app: OnceLock::new(),
            sched: Mutex::new(Sched::default()),
            wake: Notify::new(),
            waiters: Mutex::new(HashMap::new()),
            files_root: OnceLock::new(),
            book: Default::default(),
        }))
    }

    /// Puts commands' private files under `root` (the data directory's
    /// `exec-files`), removing what a stopped server left there. Call once,
    /// before the engine starts; without it they go to the system temp dir.
    pub fn set_files_root(&self, root: std::path::PathBuf) {
        super::exec_files::remove_leftovers(&root);
        let _ = self.files_root.set(root);
    }

    /// Where commands' private files go.
    pub fn files_root(&self) -> std::path::PathBuf {
        self.files_root
            .get()
            .cloned()
            .unwrap_or_else(|| std::env::temp_dir().join("baton-exec-files"))
    }

    /// The `[jobs]` settings.
    pub fn config(&self) -> &JobsConfig {
        &self.config
    }

    pub(super) fn sched(&self) -> std::sync::MutexGuard<'_, Sched> {
        self.sched.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn app(&self) -> Option<Arc<App>> {
        self.app.get().and_then(Weak::upgrade)
    }

    /// Recovers jobs interrupted by a crash, then starts the scheduler
    /// (and, on a store that replicas share, the task that takes over the
    /// work of replicas that died).
    pub async fn start(self: &Arc<Self>, app: Weak<App>) -> Result<(), JobError> {
        let _ = self.app.set(app);
        self.recover().await?;
        self.start_schedules().await?;
        self.start_watch();
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(e) = engine.upgrade() else { return };
                let wait = e.dispatch().await;
                // Holding `e` while waiting (at most a second) is fine: the
                // loop ends at the next turn once the app is gone.
                let notified = e.wake.notified();
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        });
        Ok(())
    }

    /// A queued record of `spec`, spawned at `now` under the span whose
    /// W3C `traceparent` is given (one per spawn, however many jobs).
    pub(super) fn new_record(
        &self,
        handler: &str,
        spec: NewJob,
        now: u64,
        traceparent: Option<String>,
    ) -> Result<JobRecord, JobError> {
        check_spec(&spec)?;
        Ok(JobRecord {
            id: uuid::Uuid::now_v7().to_string(),
            handler: handler.to_string(),
            kind: spec.kind,
            state: JobState::Queued,
            input: spec.input,
            output: None,
            error: None,
            attempts: 0,
            interrupted: 0,
            max_attempts: spec.max_attempts.max(1),
            timeout_ms: spec.timeout_ms,
            labels: spec.labels,
            depends_on: spec.depends_on,
            graph: None,
            progress: None,
            created_at_ms: now,
            started_at_ms: None,
            finished_at_ms: None,
            not_before_ms: 0,
            last_seq: 0,
            cancel_requested: false,
            live_process: None,
            traceparent,
        })
    }

    /// Queues a job of `handler`; returns its id once it is on disk.
    pub async fn spawn(self: &Arc<Self>, handler: &str, spec: NewJob) -> Result<String, JobError> {
        for dep in &spec.depends_on {
            match self.store.get(dep).await? {
                Some(j) if j.handler == handler => {}
                _ => {
                    return Err(JobError::Invalid(format!(
                        "depends-on names `{dep}`, which is not a job of this handler"
                    )));
                }
            }
        }
        let now = now_ms();
        let traceparent = crate::telemetry::traces::current_traceparent();
        let job = self.new_record(handler, spec, now, traceparent)?;
        self.store.insert(std::slice::from_ref(&job), None).await?;
        self.store.commit().await?;
        self.enqueue(&job, now).await?;
        Ok(job.id)
    }

    /// Hands a job just stored (and committed) to the scheduler.
    pub(super) async fn enqueue(
        self: &Arc<Self>,
        job: &JobRecord,
        now: u64,
    ) -> Result<(), JobError> {
        let blocked = self.index_add(std::slice::from_ref(job), now).await;
        self.skip_all(blocked).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Validates and queues a graph; ids in spec order, once on disk.
    pub async fn spawn_graph(
        &self,
        handler: &str,
        specs: Vec<NewJob>,
        parallel_limit: u32,
        rollback: bool,
    ) -> Result<Vec<String>, JobError> {
        if specs.is_empty() || specs.len() > MAX_GRAPH_JOBS {
            return Err(JobError::Invalid(format!(
                "a graph needs 1 to {MAX_GRAPH_JOBS} jobs, not {}",
                specs.len()
            )));
        }
        let nodes: Vec<graph::Node<'_>> = specs
            .iter()
            .map(|s| graph::Node {
                name: s
                    .labels
                    .iter()
                    .find(|(k, _)| k == "node")
                    .map(|(_, v)| v.as_str()),
                depends_on: &s.depends_on,
            })
            .collect();
        let edges = graph::resolve(&nodes).map_err(JobError::Invalid)?;
        let now = now_ms();
        let graph_id = uuid::Uuid::now_v7().to_string();
        let traceparent = crate::telemetry::traces::current_traceparent();
        let mut jobs = Vec::with_capacity(specs.len());
        for spec in specs {
            let mut job = self.new_record(handler, spec, now, traceparent.clone())?;
            job.graph = Some(graph_id.clone());
            jobs.push(job);
        }
        let ids: Vec<String> = jobs.iter().map(|j| j.id.clone()).collect();
        for (job, deps) in jobs.iter_mut().zip(&edges) {
            job.depends_on = deps.iter().map(|&d| ids[d].clone()).collect();
        }
        let graph = GraphRecord {
            id: graph_id.clone(),
            handler: handler.to_string(),
            jobs: ids.clone(),
            parallel_limit,
            rollback,
            state: GraphState::Running,
            completed: Vec::new(),
        };
        self.store.insert(&jobs, Some(&graph)).await?;
        self.store.commit().await?;
        {
            let mut s = self.sched();
            s.index
                .add_graph(&graph_id, handler, parallel_limit, jobs.len(), 0, None);
            // Every dependency is inside the graph: nothing is looked up.
            let blocked = s.index.add(&jobs, now, &mut |_| None);
            debug_assert!(blocked.is_empty());
        }
        self.wake.notify_one();
        Ok(ids)
    }

    /// Job `id`, if it exists and (when `handler` is given) belongs to it.
    pub async fn get(
        &self,
        id: &str,
        handler: Option<&str>,
    ) -> Result<Option<JobRecord>, JobError> {
        Ok(self
            .store
            .get(id)
            .await?
            .filter(|j| handler.is_none_or(|h| h == j.handler)))
    }

    /// The stored state of job `id` (a dependency outside the index);
    /// `None` when it does not exist or cannot be read.
    pub(super) async fn stored_state(&self, id: &str) -> Option<JobState> {
        self.store.get(id).await.ok().flatten().map(|j| j.state)
    }

    /// Adds `jobs` (stored and committed) to the index; returns those that
    /// can never run. The index asks about each dependency it does not
    /// hold, which has ended: its state is read from the store first, and
    /// read again if the dependency was still unfinished then (it ended
    /// between that read and the index's lock). A dependency still
    /// unfinished after that runs on another replica: the jobs waiting on
    /// it are parked until it ends (see [`JobEngine::unpark`]).
    pub(super) async fn index_add(&self, jobs: &[JobRecord], now: u64) -> Blocked {
        let inside: HashSet<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        let outside: Vec<&str> = jobs
            .iter()
            .flat_map(|j| &j.depends_on)
            .map(String::as_str)
            .filter(|d| !inside.contains(d))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut states: HashMap<String, JobState> = HashMap::new();
        let mut ask: Vec<&str> = outside.clone();
        for pass in 0.. {
            for d in ask {
                match self.stored_state(d).await {
                    Some(state) => states.insert(d.to_string(), state),
                    None => states.remove(d),
                };
            }
            let mut s = self.sched();
            ask = outside
                .iter()
                .copied()
                .filter(|d| !s.index.holds(d))
                .filter(|d| states.get(*d).is_none_or(|st| !st.is_final()))
                .collect();
            if ask.is_empty() {
                return s.index.add(jobs, now, &mut |d| states.get(d).copied());
            }
            if pass == 1 {
                // Unfinished elsewhere (a missing one is not in `states`).
                let elsewhere: HashSet<&str> = ask
                    .iter()
                    .copied()
                    .filter(|d| states.contains_key(*d))
                    .collect();
                let (park, add) = waiting_on(jobs, &elsewhere);
                s.parked.extend(park);
                return s.index.add(&add, now, &mut |d| states.get(d).copied());
            }
        }
        unreachable!("the second pass returns")
    }

    /// Indexes the parked jobs whose dependencies elsewhere have ended (or
    /// cancels them, when one did not succeed).
    pub(super) async fn unpark(self: &Arc<Self>) -> Result<(), JobError> {
        let parked = std::mem::take(&mut self.sched().parked);
        if parked.is_empty() {
            return Ok(());
        }
        let mut still = Vec::with_capacity(parked.len());
        for job in parked {
            // Cancelled (or taken elsewhere) while parked: nothing to index.
            match self.store.get(&job.id).await? {
                Some(j) if j.state == JobState::Queued => still.push(j),
                _ => self.job_changed(&job.id),
            }
        }
        let blocked = self.index_add(&still, now_ms()).await;
        self.skip_all(blocked).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Graph `id`.
    pub async fn graph(&self, id: &str) -> Result<Option<GraphRecord>, JobError> {
        Ok(self.store.graph(id).await?)
    }

    /// Jobs matching `f`, oldest first.
    pub async fn list(&self, f: &ListFilter) -> Result<Vec<JobRecord>, JobError> {
        let limit = match f.limit {
            0 => 100,
            n => n.min(MAX_LIST),
        };
        Ok(self
            .store
            .scan(f.start_after.as_deref(), limit, &|j| {
                f.handler.as_ref().is_none_or(|h| *h == j.handler)
                    && f.state.is_none_or(|s| s == j.state)
                    && f.kind.as_ref().is_none_or(|k| *k == j.kind)
                    && f.labels.iter().all(|l| j.labels.contains(l))
            })
            .await?)
    }

    /// Events of job `id` after `after` (limit 0 = 100, capped at 1000).
    pub async fn events(
        &self,
        id: &str,
        handler: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<super::EventRecord>, JobError> {
        let Some(job) = self.get(id, handler).await? else {
            return Err(JobError::NotFound(id.to_string()));
        };
        let limit = match limit {
            0 => 100,
            n => n.min(MAX_LIST),
        };
        Ok(self.store.events(&job, after, limit).await?)
    }

    /// Cancels job `id` (of `handler`, when given): a queued job at once, a
    /// running one by killing its process group and interrupting its instance.
    pub async fn cancel(
        self: &Arc<Self>,
        id: &str,
        handler: Option<&str>,
    ) -> Result<JobRecord, JobError> {
        let Some(job) = self.get(id, handler).await? else {
            return Err(JobError::NotFound(id.to_string()));
        };
        if job.state.is_final() {
            return Err(JobError::Conflict(format!(
                "job `{id}` already ended: {}",
                job.state.as_str()
            )));
        }
        let updated = self
            .store
            .update(id, &|j| match j.state {
                JobState::Queued => {
                    j.state = JobState::Cancelled;
                    j.finished_at_ms = Some(now_ms());
                    j.error = Some("cancelled".into());
                    vec![("cancelled".into(), "cancelled before it ran".into())]
                }
                JobState::Running if !j.cancel_requested => {
                    j.cancel_requested = true;
                    vec![(
                        "cancel-requested".into(),
                        "stopping the running attempt".into(),
                    )]
                }
                _ => vec![],
            })
            .await?
            .ok_or_else(|| JobError::NotFound(id.to_string()))?;
        self.store.commit().await?;
        let blocked = {
            let mut s = self.sched();
            if let Some(flag) = s.index.cancel_flag(id) {
                flag.cancel();
            }
            if updated.state == JobState::Cancelled {
                s.index.finished(id, JobState::Cancelled, 0, now_ms())
            } else {
                Vec::new()
            }
        };
        self.skip_all(blocked).await?;
        if let Some(g) = &updated.graph {
            self.check_graph(g).await?;
        }
        if !self.sched().index.holds(id) && !updated.state.is_final() {
            // Running on another replica: its owner stops it.
            self.store.announce(id).await?;
        }
        self.job_changed(id);
        self.wake.notify_one();
        Ok(updated)
    }

    /// Waits until job `id` is in a final state and returns it.
    pub async fn wait(&self, id: &str) -> Result<JobRecord, JobError> {
        loop {
            let notify = self
                .waiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(id.to_string())
                .or_default()
                .clone();
            let changed = notify.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.store.get(id).await? {
                Some(j) if j.state.is_final() => return Ok(j),
                Some(_) => {}
                None => return Err(JobError::NotFound(id.to_string())),
            }
            // Another replica's job ends with a notice (`remote_change`);
            // reading again now and then covers a notice lost meanwhile.
            let _ = tokio::time::timeout(WAIT_RECHECK, changed).await;
        }
    }

    /// Wakes the callers waiting on job `id` (its state changed).
    pub(super) fn job_changed(&self, id: &str) {
        let notify = self
            .waiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(n) = notify {
            n.notify_waiters();
        }
    }

    /// Records progress of running job `id`.
    pub async fn progress(
        &self,
        id: &str,
        message: &str,
        done: u32,
        total: u32,
    ) -> Result<(), JobError> {
        self.store
            .update(id, &|j| {
                j.progress = Some(Progress {
                    message: message.to_string(),
                    done,
                    total,
                });
                vec![("progress".into(), format!("{done}/{total} {message}"))]
            })
            .await?;
        Ok(())
    }

    /// Appends an event to job `id`.
    pub async fn event(&self, id: &str, kind: &str, message: &str) -> Result<(), JobError> {
        self.store
            .update(id, &|_| vec![(kind.to_string(), message.to_string())])
            .await?;
        Ok(())
    }

    /// Records (or clears) the live process of running job `id`.
    pub async fn set_live_process(
        &self,
        id: &str,
        p: Option<super::model::LiveProcess>,
    ) -> Result<(), JobError> {
        self.store
            .update(id, &|j| {
                j.live_process = p;
                vec![]
            })
            .await?;
        Ok(())
    }

    /// The retry delay after `attempts` failed attempts.
    pub(super) fn backoff_ms(&self, attempts: u32) -> u64 {
        let factor = 1u64 << attempts.saturating_sub(1).min(20);
        self.config
            .retry_backoff_ms
            .saturating_mul(factor)
            .min(self.config.max_backoff_ms)
    }
}

/// Splits `jobs` into those that wait on a job of `elsewhere`, directly or
/// through other jobs of `jobs`, and the rest.
fn waiting_on(jobs: &[JobRecord], elsewhere: &HashSet<&str>) -> (Vec<JobRecord>, Vec<JobRecord>) {
    let mut waiting: HashSet<&str> = HashSet::new();
    loop {
        let before = waiting.len();
        for j in jobs {
            if j.depends_on
                .iter()
                .any(|d| elsewhere.contains(d.as_str()) || waiting.contains(d.as_str()))
            {
                waiting.insert(j.id.as_str());
            }
        }
        if waiting.len() == before {
            break;
        }
    }
    let waiting: HashSet<String> = waiting.into_iter().map(str::to_string).collect();
    jobs.iter().cloned().partition(|j| waiting.contains(&j.id))
}
