//! The scheduler's in-memory index of unfinished jobs, so that dispatching a
//! job, ending one and moving a graph on each cost O(1) (amortised), however
//! long the queue or large the graph.
//!
//! - Ready jobs wait in FIFO order per handler. A graph's ready jobs wait in
//!   the graph's own FIFO, and the graph stands in its handler's queue as one
//!   unit while it is under its parallel limit, so a graph at its limit never
//!   blocks the jobs behind it.
//! - Each waiting job counts its unmet dependencies; each job lists its
//!   dependents, so an end touches only those.
//! - Running counts (global, per handler, per graph) and per-graph tallies
//!   (succeeded, the first failure) are kept as jobs move.
//!
//! The store stays the source of truth: the index is built from it at start
//! ([`super::runner`]'s recovery) and every change here follows a change
//! written there. Entries that leave a queue early (a cancelled ready job)
//! are skipped when reached.

use super::exec::CancelFlag;
use super::model::{JobRecord, JobState};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

/// Where an indexed job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Dependencies unmet.
    Waiting,
    /// A retry waiting for its time.
    Delayed(u64),
    /// In a ready queue.
    Ready,
    /// Claimed by the dispatcher or running.
    Running,
}

struct Entry {
    handler: Arc<str>,
    graph: Option<Arc<str>>,
    status: Status,
    unmet: u32,
    dependents: Vec<Arc<str>>,
    cancel: Option<Arc<CancelFlag>>,
}

/// One item of a handler's ready queue.
enum Unit {
    Job(Arc<str>),
    Graph(Arc<str>),
}

#[derive(Default)]
struct HandlerQueue {
    running: u32,
    units: VecDeque<Unit>,
}

/// What the index knows of a running graph.
pub struct GraphEntry {
    handler: Arc<str>,
    limit: u32,
    running: u32,
    ready: VecDeque<Arc<str>>,
    in_queue: bool,
    /// Jobs in the graph.
    pub total: usize,
    /// Jobs that succeeded.
    pub succeeded: usize,
    /// The first job that failed, or else the first cancelled: (id, state).
    pub cause: Option<(Arc<str>, JobState)>,
    /// Set once its queued jobs are being cancelled: none of them starts.
    pub stopping: bool,
}

impl GraphEntry {
    /// Jobs of the graph running now.
    pub fn running(&self) -> u32 {
        self.running
    }

    fn has_room(&self) -> bool {
        !self.stopping && (self.limit == 0 || self.running < self.limit)
    }
}

/// Why a job can never run: (id, reason).
pub type Blocked = Vec<(Arc<str>, String)>;

/// The index. See the module documentation.
#[derive(Default)]
pub struct Index {
    jobs: HashMap<Arc<str>, Entry>,
    handlers: HashMap<Arc<str>, HandlerQueue>,
    graphs: HashMap<Arc<str>, GraphEntry>,
    delayed: BTreeSet<(u64, Arc<str>)>,
    running: u32,
}

impl Index {
    /// Jobs running (or being started) across every handler.
    pub fn running(&self) -> u32 {
        self.running
    }

    /// Jobs of `handler` running (or being started).
    pub fn running_of(&self, handler: &str) -> u32 {
        self.handlers.get(handler).map_or(0, |h| h.running)
    }

    /// Unfinished jobs in the index (queued, delayed or running).
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether no job is unfinished.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Handlers that have ready work, in a stable order.
    pub fn handlers_with_work(&self) -> Vec<Arc<str>> {
        let mut v: Vec<Arc<str>> = self
            .handlers
            .iter()
            .filter(|(_, q)| !q.units.is_empty())
            .map(|(h, _)| h.clone())
            .collect();
        v.sort();
        v
    }

    /// Registers graph `id` of `handler` with `total` jobs, `succeeded` of
    /// which already did, and the failure (if any) that already stopped it.
    pub fn add_graph(
        &mut self,
        id: &str,
        handler: &str,
        limit: u32,
        total: usize,
        succeeded: usize,
        cause: Option<(Arc<str>, JobState)>,
    ) {
        self.graphs.insert(
            Arc::from(id),
            GraphEntry {
                handler: Arc::from(handler),
                limit,
                running: 0,
                ready: VecDeque::new(),
                in_queue: false,
                total,
                succeeded,
                cause,
                stopping: false,
            },
        );
    }

    /// The running graph `id`.
    pub fn graph(&self, id: &str) -> Option<&GraphEntry> {
        self.graphs.get(id)
    }

    /// Marks graph `id` stopping (its queued jobs never start); returns
    /// whether it was not already.
    pub fn stop_graph(&mut self, id: &str) -> bool {
        match self.graphs.get_mut(id) {
            Some(g) if !g.stopping => {
                g.stopping = true;
                true
            }
            _ => false,
        }
    }

    /// Forgets graph `id` (it ended).
    pub fn remove_graph(&mut self, id: &str) {
        self.graphs.remove(id);
    }

    /// Indexes queued jobs (a spawn, a graph, or everything at start).
    /// Dependencies outside `jobs` and outside the index are looked up with
    /// `state_of`; returns the jobs that can never run and why (the caller
    /// cancels them and reports each with [`Index::finished`]).
    pub fn add(
        &mut self,
        jobs: &[JobRecord],
        now: u64,
        state_of: &mut dyn FnMut(&str) -> Option<JobState>,
    ) -> Blocked {
        let mut ids = Vec::with_capacity(jobs.len());
        for j in jobs {
            let id: Arc<str> = Arc::from(j.id.as_str());
            let handler = self.handler_key(&j.handler);
            let graph = j.graph.as_deref().map(|g| self.graph_key(g));
            self.jobs.insert(
                id.clone(),
                Entry {
                    handler,
                    graph,
                    status: Status::Waiting,
                    unmet: 0,
                    dependents: Vec::new(),
                    cancel: None,
                },
            );
            ids.push(id);
        }
        let mut blocked = Blocked::new();
        for (j, id) in jobs.iter().zip(&ids) {
            let mut unmet = 0;
            let mut why = None;
            for d in &j.depends_on {
                if let Some(dep) = self.jobs.get_mut(d.as_str()) {
                    dep.dependents.push(id.clone());
                    unmet += 1;
                    continue;
                }
                match state_of(d) {
                    Some(JobState::Succeeded) => {}
                    Some(other) => why = Some(format!("dependency {d} ended {}", other.as_str())),
                    None => why = Some(format!("dependency {d} does not exist")),
                }
            }
            if let Some(e) = self.jobs.get_mut(id) {
                e.unmet = unmet;
            }
            match why {
                Some(why) => blocked.push((id.clone(), why)),
                None if unmet == 0 => self.release(id, j.not_before_ms, now),
                None => {}
            }
        }
        blocked
    }

    fn handler_key(&mut self, handler: &str) -> Arc<str> {
        match self.handlers.get_key_value(handler) {
            Some((k, _)) => k.clone(),
            None => {
                let k: Arc<str> = Arc::from(handler);
                self.handlers.insert(k.clone(), HandlerQueue::default());
                k
            }
        }
    }

    fn graph_key(&self, graph: &str) -> Arc<str> {
        match self.graphs.get_key_value(graph) {
            Some((k, _)) => k.clone(),
            None => Arc::from(graph),
        }
    }

    /// Makes job `id` (dependencies met) ready now, or at `not_before`.
    fn release(&mut self, id: &Arc<str>, not_before: u64, now: u64) {
        let Some(e) = self.jobs.get_mut(id) else {
            return;
        };
        if not_before > now {
            e.status = Status::Delayed(not_before);
            self.delayed.insert((not_before, id.clone()));
            return;
        }
        e.status = Status::Ready;
        let handler = e.handler.clone();
        match e.graph.clone() {
            Some(g) => {
                if let Some(ge) = self.graphs.get_mut(&g) {
                    ge.ready.push_back(id.clone());
                    if !ge.in_queue && ge.has_room() {
                        ge.in_queue = true;
                        self.queue(&handler).units.push_back(Unit::Graph(g));
                    }
                }
            }
            None => self.queue(&handler).units.push_back(Unit::Job(id.clone())),
        }
    }

    fn queue(&mut self, handler: &Arc<str>) -> &mut HandlerQueue {
        self.handlers.entry(handler.clone()).or_default()
    }

    /// Moves retries whose time has come to their ready queues; returns
    /// when the next one is due.
    pub fn promote_due(&mut self, now: u64) -> Option<u64> {
        while let Some((at, id)) = self.delayed.first().cloned() {
            if at > now {
                return Some(at);
            }
            self.delayed.pop_first();
            if matches!(self.jobs.get(&id), Some(e) if e.status == Status::Delayed(at)) {
                self.release(&id, 0, now);
            }
        }
        None
    }

    /// Claims the next ready job of `handler` (FIFO, within its graph's
    /// limit), counting it as running.
    pub fn claim(&mut self, handler: &str) -> Option<Arc<str>> {
        let (hkey, _) = self.handlers.get_key_value(handler)?;
        let hkey = hkey.clone();
        loop {
            let unit = self.handlers.get_mut(&hkey)?.units.pop_front()?;
            let id = match unit {
                Unit::Job(id) => {
                    if !matches!(self.jobs.get(&id), Some(e) if e.status == Status::Ready) {
                        continue; // left the queue early
                    }
                    id
                }
                Unit::Graph(g) => {
                    let Some(ge) = self.graphs.get_mut(&g) else {
                        continue;
                    };
                    ge.in_queue = false;
                    if !ge.has_room() {
                        continue; // back in the queue when a job of it ends
                    }
                    let mut found = None;
                    while let Some(id) = ge.ready.pop_front() {
                        if matches!(self.jobs.get(&id), Some(e) if e.status == Status::Ready) {
                            found = Some(id);
                            break;
                        }
                    }
                    let Some(id) = found else { continue };
                    ge.running += 1;
                    if !ge.ready.is_empty() && ge.has_room() {
                        ge.in_queue = true;
                        self.handlers
                            .get_mut(&hkey)?
                            .units
                            .push_back(Unit::Graph(g));
                    }
                    id
                }
            };
            let e = self.jobs.get_mut(&id)?;
            e.status = Status::Running;
            self.running += 1;
            self.handlers.get_mut(&hkey)?.running += 1;
            return Some(id);
        }
    }

    /// Records the cancel flag of claimed job `id`, now running.
    pub fn set_cancel(&mut self, id: &str, flag: Arc<CancelFlag>) {
        if let Some(e) = self.jobs.get_mut(id) {
            e.cancel = Some(flag);
        }
    }

    /// The cancel flag of running job `id`.
    pub fn cancel_flag(&self, id: &str) -> Option<Arc<CancelFlag>> {
        self.jobs.get(id).and_then(|e| e.cancel.clone())
    }

    /// Whether job `id` is indexed (it has not ended).
    pub fn holds(&self, id: &str) -> bool {
        self.jobs.contains_key(id)
    }

    /// Whether job `id` is indexed and not running (queued, waiting or delayed).
    pub fn is_queued(&self, id: &str) -> bool {
        matches!(self.jobs.get(id), Some(e) if e.status != Status::Running)
    }

    /// Records that job `id` is now in `state` (written to the store):
    /// back in the queue at `not_before` for a retry, otherwise final.
    /// Returns the dependents that can now never run. Idempotent: a job
    /// already gone from the index is ignored.
    pub fn finished(&mut self, id: &str, state: JobState, not_before: u64, now: u64) -> Blocked {
        let Some((key, e)) = self.jobs.get_key_value(id) else {
            return Blocked::new();
        };
        let key = key.clone();
        let (was_running, handler, graph) = (
            e.status == Status::Running,
            e.handler.clone(),
            e.graph.clone(),
        );
        if was_running {
            self.running = self.running.saturating_sub(1);
            if let Some(q) = self.handlers.get_mut(&handler) {
                q.running = q.running.saturating_sub(1);
            }
        }
        let mut requeue = None;
        if let Some(g) = &graph
            && let Some(ge) = self.graphs.get_mut(g)
        {
            if was_running {
                ge.running = ge.running.saturating_sub(1);
            }
            match state {
                JobState::Succeeded => ge.succeeded += 1,
                JobState::Failed if !matches!(ge.cause, Some((_, JobState::Failed))) => {
                    ge.cause = Some((key.clone(), state))
                }
                JobState::Cancelled if ge.cause.is_none() => ge.cause = Some((key.clone(), state)),
                _ => {}
            }
            if !ge.in_queue && !ge.ready.is_empty() && ge.has_room() {
                ge.in_queue = true;
                requeue = Some((ge.handler.clone(), g.clone()));
            }
        }
        if let Some((h, g)) = requeue {
            self.queue(&h).units.push_back(Unit::Graph(g));
        }
        if state == JobState::Queued {
            if let Some(e) = self.jobs.get_mut(&key) {
                e.status = Status::Waiting;
                e.cancel = None;
            }
            self.release(&key, not_before, now);
            return Blocked::new();
        }
        let Some(e) = self.jobs.remove(&key) else {
            return Blocked::new();
        };
        if let Status::Delayed(at) = e.status {
            self.delayed.remove(&(at, key.clone()));
        }
        let mut blocked = Blocked::new();
        for d in e.dependents {
            let Some(de) = self.jobs.get_mut(&d) else {
                continue;
            };
            if state == JobState::Succeeded {
                de.unmet = de.unmet.saturating_sub(1);
                if de.unmet == 0 && de.status == Status::Waiting {
                    self.release(&d, 0, now);
                }
            } else {
                blocked.push((d, format!("dependency {id} ended {}", state.as_str())));
            }
        }
        blocked
    }

    /// Gives claimed job `id` back (starting it failed): ready again at `at`.
    pub fn unclaim(&mut self, id: &str, at: u64, now: u64) {
        self.finished(id, JobState::Queued, at, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, handler: &str, graph: Option<&str>, deps: &[&str]) -> JobRecord {
        JobRecord {
            id: id.into(),
            handler: handler.into(),
            kind: "k".into(),
            state: JobState::Queued,
            input: vec![],
            output: None,
            error: None,
            attempts: 0,
            interrupted: 0,
            max_attempts: 1,
            timeout_ms: None,
            labels: vec![],
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            graph: graph.map(String::from),
            progress: None,
            created_at_ms: 0,
            started_at_ms: None,
            finished_at_ms: None,
            not_before_ms: 0,
            last_seq: 0,
            cancel_requested: false,
            live_process: None,
            traceparent: None,
        }
    }

    fn none(_: &str) -> Option<JobState> {
        None
    }

    #[test]
    fn ready_jobs_leave_in_fifo_order_per_handler() {
        let mut ix = Index::default();
        let jobs: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|i| job(i, "h", None, &[]))
            .collect();
        assert!(ix.add(&jobs, 0, &mut none).is_empty());
        let order: Vec<_> = std::iter::from_fn(|| ix.claim("h"))
            .map(|i| i.to_string())
            .collect();
        assert_eq!(order, ["a", "b", "c"]);
        assert_eq!(ix.running(), 3);
        assert_eq!(ix.running_of("h"), 3);
    }

    #[test]
    fn a_graph_at_its_limit_does_not_block_the_jobs_behind_it() {
        let mut ix = Index::default();
        ix.add_graph("g", "h", 1, 2, 0, None);
        let mut jobs = vec![
            job("g1", "h", Some("g"), &[]),
            job("g2", "h", Some("g"), &[]),
        ];
        jobs.push(job("solo", "h", None, &[]));
        ix.add(&jobs, 0, &mut none);
        assert_eq!(ix.claim("h").as_deref(), Some("g1"));
        assert_eq!(ix.claim("h").as_deref(), Some("solo"));
        assert_eq!(ix.claim("h"), None, "g2 waits for g1");
        ix.finished("g1", JobState::Succeeded, 0, 0);
        assert_eq!(ix.claim("h").as_deref(), Some("g2"));
        assert_eq!(ix.graph("g").unwrap().succeeded, 1);
    }

    #[test]
    fn dependents_wait_for_their_dependencies_and_are_blocked_by_a_failure() {
        let mut ix = Index::default();
        let jobs = vec![
            job("a", "h", None, &[]),
            job("b", "h", None, &["a"]),
            job("c", "h", None, &["b"]),
        ];
        ix.add(&jobs, 0, &mut none);
        assert_eq!(ix.claim("h").as_deref(), Some("a"));
        assert_eq!(ix.claim("h"), None);
        assert!(ix.finished("a", JobState::Succeeded, 0, 0).is_empty());
        assert_eq!(ix.claim("h").as_deref(), Some("b"));
        let blocked = ix.finished("b", JobState::Failed, 0, 0);
        assert_eq!(blocked.len(), 1);
        assert_eq!(&*blocked[0].0, "c");
        assert!(blocked[0].1.contains("ended failed"), "{}", blocked[0].1);
    }

    #[test]
    fn a_dependency_outside_the_index_is_looked_up() {
        let mut ix = Index::default();
        let mut state_of = |d: &str| match d {
            "done" => Some(JobState::Succeeded),
            "bad" => Some(JobState::Cancelled),
            _ => None,
        };
        let blocked = ix.add(
            &[
                job("x", "h", None, &["done"]),
                job("y", "h", None, &["bad"]),
                job("z", "h", None, &["gone"]),
            ],
            0,
            &mut state_of,
        );
        assert_eq!(ix.claim("h").as_deref(), Some("x"));
        let why: Vec<_> = blocked.iter().map(|(_, w)| w.as_str()).collect();
        assert_eq!(
            why,
            [
                "dependency bad ended cancelled",
                "dependency gone does not exist"
            ]
        );
    }

    #[test]
    fn a_retry_waits_for_its_time() {
        let mut ix = Index::default();
        ix.add(&[job("r", "h", None, &[])], 0, &mut none);
        assert_eq!(ix.claim("h").as_deref(), Some("r"));
        ix.finished("r", JobState::Queued, 500, 100);
        assert_eq!(ix.running(), 0);
        assert_eq!(ix.claim("h"), None);
        assert_eq!(ix.promote_due(400), Some(500));
        assert_eq!(ix.promote_due(500), None);
        assert_eq!(ix.claim("h").as_deref(), Some("r"));
    }

    #[test]
    fn a_cancelled_ready_job_is_skipped_and_finishing_twice_is_harmless() {
        let mut ix = Index::default();
        ix.add(
            &[job("a", "h", None, &[]), job("b", "h", None, &[])],
            0,
            &mut none,
        );
        ix.finished("a", JobState::Cancelled, 0, 0);
        ix.finished("a", JobState::Cancelled, 0, 0);
        assert_eq!(ix.claim("h").as_deref(), Some("b"));
        assert_eq!(ix.len(), 1);
        assert_eq!(ix.running(), 1);
    }

    #[test]
    fn a_stopping_graph_starts_nothing_more_and_keeps_its_first_failure() {
        let mut ix = Index::default();
        ix.add_graph("g", "h", 0, 3, 0, None);
        let jobs: Vec<_> = ["1", "2", "3"]
            .iter()
            .map(|i| job(i, "h", Some("g"), &[]))
            .collect();
        ix.add(&jobs, 0, &mut none);
        assert_eq!(ix.claim("h").as_deref(), Some("1"));
        ix.finished("1", JobState::Failed, 0, 0);
        assert!(ix.stop_graph("g"));
        assert!(!ix.stop_graph("g"));
        assert_eq!(ix.claim("h"), None);
        ix.finished("2", JobState::Cancelled, 0, 0);
        let g = ix.graph("g").unwrap();
        assert_eq!(
            g.cause.as_ref().map(|(i, s)| (&**i, *s)),
            Some(("1", JobState::Failed))
        );
    }
}
