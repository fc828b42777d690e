//! The job engine's records in sled: trees `jobs`, `job-events` (keys
//! `id \0 seq`), `job-graphs` and `job-graph-done` (keys `graph \0 n`, the
//! order in which a graph's jobs succeeded), `job-schedules` (keys
//! `handler \0 name`).
//!
//! **The job record is the commit point.** A change to one job writes its
//! new events (and its completion entry) first and the record last, with
//! plain writes under an in-process lock of that job, not a sled
//! transaction: each sled transaction seals and writes the log buffer
//! twice (`pin_log`: a `pwrite` and a `sync_file_range` each, four I/Os a
//! write), which made a trivial job cost six disk writes before any
//! flush. sled recovers a prefix of its log, so after a crash a record is
//! never ahead of its events; events past the record's `last_seq` (written
//! by a change the crash cut short) are never read, and the next change
//! writes over them. Several jobs at once (a graph) and a schedule's tick
//! with the job it spawns stay sled transactions.

use super::commit::GroupCommit;
use super::jobs::{
    GraphChange, JobChange, JobFilter, JobStore, JobStoreError, decode, encode, last_successes,
    queued,
};
use crate::jobs::model::{EventRecord, GraphRecord, JobRecord, JobState, ScheduleRecord, now_ms};
use sled::Transactional;
use sled::transaction::TransactionalTree;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

impl From<sled::Error> for JobStoreError {
    fn from(e: sled::Error) -> Self {
        JobStoreError::new(e.to_string())
    }
}

impl From<TransactionError<String>> for JobStoreError {
    fn from(e: TransactionError<String>) -> Self {
        match e {
            TransactionError::Abort(m) => JobStoreError::new(m),
            TransactionError::Storage(e) => JobStoreError::new(e.to_string()),
        }
    }
}

/// The job engine's trees in a sled database.
#[derive(Clone)]
pub struct SledJobStore {
    jobs: sled::Tree,
    events: sled::Tree,
    graphs: sled::Tree,
    done: sled::Tree,
    schedules: sled::Tree,
    /// The database, for its id generator.
    db: sled::Db,
    commit: Arc<GroupCommit>,
    /// Serialises changes to one job (striped by id).
    locks: Arc<[Mutex<()>; LOCK_STRIPES]>,
}

/// How many locks the jobs are spread over.
const LOCK_STRIPES: usize = 64;

impl SledJobStore {
    /// The stripe that serialises changes to job `id`.
    fn stripe(id: &str) -> usize {
        let mut h = std::hash::DefaultHasher::new();
        id.hash(&mut h);
        (h.finish() % LOCK_STRIPES as u64) as usize
    }

    /// Holds stripe `i` (a poisoned lock only means a panic elsewhere: the
    /// store itself is still consistent).
    fn hold(&self, i: usize) -> MutexGuard<'_, ()> {
        self.locks[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds the lock of job `id`.
    fn lock(&self, id: &str) -> MutexGuard<'_, ()> {
        self.hold(Self::stripe(id))
    }

    /// Holds the locks of every job in `ids`, taken in stripe order.
    fn lock_all<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Vec<MutexGuard<'_, ()>> {
        let stripes: BTreeSet<usize> = ids.map(Self::stripe).collect();
        stripes.into_iter().map(|i| self.hold(i)).collect()
    }
}

fn schedule_key(handler: &str, name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(handler.len() + name.len() + 1);
    k.extend_from_slice(handler.as_bytes());
    k.push(0);
    k.extend_from_slice(name.as_bytes());
    k
}

/// Writes a new job and its `queued` event (seq 1) inside a transaction.
fn insert_job(tj: &TransactionalTree, te: &TransactionalTree, job: &JobRecord) -> TxResult<()> {
    let (job, ev) = queued(job);
    te.insert(event_key(&job.id, 1), encode(&ev))?;
    tj.insert(job.id.as_bytes(), encode(&job))?;
    Ok(())
}

/// Removes job `id` and its events inside a transaction, if it has ended
/// and is not part of a graph (whose completion order names it).
fn remove_ended(tj: &TransactionalTree, te: &TransactionalTree, id: &str) -> TxResult<()> {
    let Some(bytes) = tj.get(id.as_bytes())? else {
        return Ok(());
    };
    let job: JobRecord = decode("job", &bytes).map_err(ConflictableTransactionError::Abort)?;
    if !job.state.is_final() || job.graph.is_some() {
        return Ok(());
    }
    for seq in 1..=job.last_seq {
        te.remove(event_key(id, seq))?;
    }
    tj.remove(id.as_bytes())?;
    Ok(())
}

fn event_key(id: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.len() + 9);
    k.extend_from_slice(id.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

type TxResult<T> = Result<T, ConflictableTransactionError<String>>;

impl SledJobStore {
    /// Opens the trees in `db`; durability goes through `commit`, shared
    /// with every other writer of `db`.
    pub fn open(db: &sled::Db, commit: Arc<GroupCommit>) -> Result<Self, JobStoreError> {
        Ok(SledJobStore {
            jobs: db.open_tree("jobs")?,
            events: db.open_tree("job-events")?,
            graphs: db.open_tree("job-graphs")?,
            done: db.open_tree("job-graph-done")?,
            schedules: db.open_tree("job-schedules")?,
            db: db.clone(),
            commit,
            locks: Arc::new(std::array::from_fn(|_| Mutex::new(()))),
        })
    }
}

#[async_trait::async_trait]
impl JobStore for SledJobStore {
    async fn insert(
        &self,
        jobs: &[JobRecord],
        graph: Option<&GraphRecord>,
    ) -> Result<(), JobStoreError> {
        if let ([job], None) = (jobs, graph) {
            // A new id: its event first, then the record that makes it visible.
            let _held = self.lock(&job.id);
            let (record, event) = queued(job);
            self.events.insert(event_key(&job.id, 1), encode(&event))?;
            self.jobs.insert(job.id.as_bytes(), encode(&record))?;
            return Ok(());
        }
        (&self.jobs, &self.events, &self.graphs).transaction(|(tj, te, tg)| {
            for job in jobs {
                insert_job(tj, te, job)?;
            }
            if let Some(g) = graph {
                tg.insert(g.id.as_bytes(), encode(g))?;
            }
            Ok(())
        })?;
        Ok(())
    }

    async fn update(&self, id: &str, f: JobChange<'_>) -> Result<Option<JobRecord>, JobStoreError> {
        let _held = self.lock(id);
        let Some(bytes) = self.jobs.get(id.as_bytes())? else {
            return Ok(None);
        };
        let mut job: JobRecord = decode("job", &bytes).map_err(JobStoreError::new)?;
        let was_succeeded = job.state == JobState::Succeeded;
        let events = f(&mut job);
        let now = now_ms();
        for (kind, message) in events {
            job.last_seq += 1;
            let ev = EventRecord {
                seq: job.last_seq,
                at_ms: now,
                kind,
                message,
            };
            self.events
                .insert(event_key(id, job.last_seq), encode(&ev))?;
        }
        if let Some(g) = &job.graph
            && !was_succeeded
            && job.state == JobState::Succeeded
        {
            // sled's ids only grow, so keys sort in completion order. A
            // crash before the record below leaves this entry for a job
            // that runs again: `completed` keeps its last entry only.
            let n = self.db.generate_id()?;
            self.done.insert(event_key(g, n), id.as_bytes())?;
        }
        // The commit point: the change and its events become visible.
        self.jobs.insert(id.as_bytes(), encode(&job))?;
        Ok(Some(job))
    }

    async fn update_graph(
        &self,
        id: &str,
        f: GraphChange<'_>,
    ) -> Result<Option<GraphRecord>, JobStoreError> {
        let out = self.graphs.transaction(|tg| {
            let Some(bytes) = tg.get(id.as_bytes())? else {
                return Ok(None);
            };
            let mut g: GraphRecord =
                decode("graph", &bytes).map_err(ConflictableTransactionError::Abort)?;
            f(&mut g);
            tg.insert(id.as_bytes(), encode(&g))?;
            TxResult::Ok(Some(g))
        })?;
        Ok(out)
    }

    async fn get(&self, id: &str) -> Result<Option<JobRecord>, JobStoreError> {
        match self.jobs.get(id.as_bytes())? {
            Some(b) => Ok(Some(decode("job", &b).map_err(JobStoreError::new)?)),
            None => Ok(None),
        }
    }

    async fn graph(&self, id: &str) -> Result<Option<GraphRecord>, JobStoreError> {
        match self.graphs.get(id.as_bytes())? {
            Some(b) => Ok(Some(decode("graph", &b).map_err(JobStoreError::new)?)),
            None => Ok(None),
        }
    }

    async fn graphs(&self) -> Result<Vec<GraphRecord>, JobStoreError> {
        self.graphs
            .iter()
            .map(|kv| {
                let (_, v) = kv?;
                decode("graph", &v).map_err(JobStoreError::new)
            })
            .collect()
    }

    async fn completed(&self, graph: &str) -> Result<Vec<String>, JobStoreError> {
        // Graphs written before the completion tree existed kept the order
        // in the record itself.
        let mut out = self
            .graph(graph)
            .await?
            .map(|g| g.completed)
            .unwrap_or_default();
        let mut prefix = graph.as_bytes().to_vec();
        prefix.push(0);
        for kv in self.done.scan_prefix(prefix) {
            let (_, v) = kv?;
            out.push(String::from_utf8_lossy(&v).into_owned());
        }
        Ok(last_successes(out))
    }

    async fn scan(
        &self,
        start_after: Option<&str>,
        limit: usize,
        keep: JobFilter<'_>,
    ) -> Result<Vec<JobRecord>, JobStoreError> {
        let iter = match start_after {
            Some(after) => {
                let mut from = after.as_bytes().to_vec();
                from.push(0);
                self.jobs.range(from..)
            }
            None => self.jobs.iter(),
        };
        let mut out = Vec::new();
        for kv in iter {
            if out.len() >= limit {
                break;
            }
            let (_, v) = kv?;
            let job: JobRecord = decode("job", &v).map_err(JobStoreError::new)?;
            if keep(&job) {
                out.push(job);
            }
        }
        Ok(out)
    }

    async fn events(
        &self,
        job: &JobRecord,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, JobStoreError> {
        // Only up to the record's last event: any later one was written by
        // a change a crash cut short (see the module's doc).
        if after >= job.last_seq {
            return Ok(Vec::new());
        }
        let from = event_key(&job.id, after + 1);
        let to = event_key(&job.id, job.last_seq);
        self.events
            .range(from..=to)
            .take(limit)
            .map(|kv| {
                let (_, v) = kv?;
                decode("event", &v).map_err(JobStoreError::new)
            })
            .collect()
    }

    async fn schedules(&self) -> Result<Vec<ScheduleRecord>, JobStoreError> {
        self.schedules
            .iter()
            .map(|kv| {
                let (_, v) = kv?;
                decode("schedule", &v).map_err(JobStoreError::new)
            })
            .collect()
    }

    async fn put_schedule(&self, s: &ScheduleRecord) -> Result<(), JobStoreError> {
        self.schedules
            .insert(schedule_key(&s.handler, &s.name), encode(s))?;
        Ok(())
    }

    async fn delete_schedule(&self, handler: &str, name: &str) -> Result<bool, JobStoreError> {
        Ok(self
            .schedules
            .remove(schedule_key(handler, name))?
            .is_some())
    }

    async fn fire(
        &self,
        next: &ScheduleRecord,
        due_ms: u64,
        job: Option<&JobRecord>,
        expired: &[String],
    ) -> Result<bool, JobStoreError> {
        let key = schedule_key(&next.handler, &next.name);
        let _held = self.lock_all(expired.iter().map(String::as_str));
        let fired = (&self.schedules, &self.jobs, &self.events).transaction(|(ts, tj, te)| {
            let Some(bytes) = ts.get(&key)? else {
                return Ok(false);
            };
            let stored: ScheduleRecord =
                decode("schedule", &bytes).map_err(ConflictableTransactionError::Abort)?;
            // A schedule replaced meanwhile has another creation time.
            if stored.next_at_ms != Some(due_ms) || stored.created_at_ms != next.created_at_ms {
                return Ok(false);
            }
            ts.insert(key.as_slice(), encode(next))?;
            if let Some(job) = job {
                insert_job(tj, te, job)?;
            }
            for id in expired {
                remove_ended(tj, te, id)?;
            }
            TxResult::Ok(true)
        })?;
        Ok(fired)
    }

    async fn commit(&self) -> Result<(), JobStoreError> {
        Ok(self.commit.commit().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> JobRecord {
        serde_json::from_value(serde_json::json!({
            "id": id, "handler": "h", "kind": "tick", "state": "queued", "input": "",
            "output": null, "error": null, "attempts": 0, "max_attempts": 1,
            "timeout_ms": null, "labels": [], "depends_on": [], "graph": null,
            "progress": null, "created_at_ms": 1, "started_at_ms": null,
            "finished_at_ms": null, "not_before_ms": 0, "last_seq": 0,
            "cancel_requested": false, "live_process": null,
        }))
        .unwrap()
    }

    /// Events of job `id` as the engine reads them (bounded by its record).
    async fn events_of(
        store: &SledJobStore,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Vec<EventRecord> {
        let job = store.get(id).await.unwrap().expect("the job exists");
        store.events(&job, after, limit).await.unwrap()
    }

    fn open_store() -> (tempfile::TempDir, SledJobStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let store = SledJobStore::open(&db, GroupCommit::new(Arc::new(|| Ok(())))).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn events_a_cut_short_change_left_are_never_read_and_are_written_over() {
        let (_dir, store) = open_store();
        store.insert(&[job("j")], None).await.unwrap();
        // A change a crash cut short: its event reached the log, the
        // record (the commit point, written last) did not.
        let stray = EventRecord {
            seq: 2,
            at_ms: 1,
            kind: "succeeded".into(),
            message: "never happened".into(),
        };
        store
            .events
            .insert(event_key("j", 2), encode(&stray))
            .unwrap();
        async fn kinds(s: &SledJobStore) -> Vec<String> {
            events_of(s, "j", 0, 100)
                .await
                .into_iter()
                .map(|e| e.kind)
                .collect()
        }
        assert_eq!(kinds(&store).await, ["queued"]);
        assert!(events_of(&store, "j", 1, 100).await.is_empty());
        store
            .update("j", &|j| {
                j.state = JobState::Running;
                vec![("started".into(), "attempt 1".into())]
            })
            .await
            .unwrap();
        assert_eq!(kinds(&store).await, ["queued", "started"]);
    }

    #[tokio::test]
    async fn a_success_recorded_twice_counts_once_in_completion_order() {
        let (_dir, store) = open_store();
        let in_graph = |id: &str| {
            let mut j = job(id);
            j.graph = Some("g".into());
            j
        };
        store
            .insert(&[in_graph("a"), in_graph("b")], None)
            .await
            .unwrap();
        async fn succeed(store: &SledJobStore, id: &str) {
            store
                .update(id, &|j| {
                    j.state = JobState::Succeeded;
                    vec![("succeeded".into(), "ok".into())]
                })
                .await
                .unwrap();
        }
        // `a`'s first success was cut short after its completion entry;
        // it ran again and succeeded after `b`.
        let n = store.db.generate_id().unwrap();
        store
            .done
            .insert(event_key("g", n), b"a".as_slice())
            .unwrap();
        succeed(&store, "b").await;
        succeed(&store, "a").await;
        assert_eq!(store.completed("g").await.unwrap(), ["b", "a"]);
    }
}
