//! The job engine's records in sled: trees `jobs`, `job-events` (keys
//! `id \0 seq`), `job-graphs` and `job-graph-done` (keys `graph \0 n`, the
//! order in which a graph's jobs succeeded), `job-schedules` (keys
//! `handler \0 name`). A job's change and its events are one transaction,
//! and so are a schedule's tick and the job it spawns.

use super::commit::GroupCommit;
use super::jobs::{CommitFuture, JobStore, JobStoreError, NewEvents};
use crate::jobs::model::{EventRecord, GraphRecord, JobRecord, JobState, ScheduleRecord, now_ms};
use sled::Transactional;
use sled::transaction::TransactionalTree;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use std::sync::Arc;

impl From<sled::Error> for JobStoreError {
    fn from(e: sled::Error) -> Self {
        JobStoreError(e.to_string())
    }
}

impl From<TransactionError<String>> for JobStoreError {
    fn from(e: TransactionError<String>) -> Self {
        match e {
            TransactionError::Abort(m) => JobStoreError(m),
            TransactionError::Storage(e) => JobStoreError(e.to_string()),
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
    commit: Arc<GroupCommit>,
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
    let mut job = job.clone();
    job.last_seq = 1;
    let message = match &job.graph {
        Some(g) => format!("queued in graph {g}"),
        None => "queued".to_string(),
    };
    let ev = EventRecord {
        seq: 1,
        at_ms: job.created_at_ms,
        kind: "queued".into(),
        message,
    };
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

fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("a stored {what} does not decode: {e}"))
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("job records always serialise")
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
            commit,
        })
    }
}

impl JobStore for SledJobStore {
    fn insert(&self, jobs: &[JobRecord], graph: Option<&GraphRecord>) -> Result<(), JobStoreError> {
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

    fn update(
        &self,
        id: &str,
        f: &dyn Fn(&mut JobRecord) -> NewEvents,
    ) -> Result<Option<JobRecord>, JobStoreError> {
        let out = (&self.jobs, &self.events, &self.done).transaction(|(tj, te, td)| {
            let Some(bytes) = tj.get(id.as_bytes())? else {
                return Ok(None);
            };
            let mut job: JobRecord =
                decode("job", &bytes).map_err(ConflictableTransactionError::Abort)?;
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
                te.insert(event_key(id, job.last_seq), encode(&ev))?;
            }
            if let Some(g) = &job.graph
                && !was_succeeded
                && job.state == JobState::Succeeded
            {
                // sled's ids only grow, so keys sort in completion order.
                let n = td.generate_id()?;
                td.insert(event_key(g, n), id.as_bytes())?;
            }
            tj.insert(id.as_bytes(), encode(&job))?;
            TxResult::Ok(Some(job))
        })?;
        Ok(out)
    }

    fn update_graph(
        &self,
        id: &str,
        f: &dyn Fn(&mut GraphRecord),
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

    fn get(&self, id: &str) -> Result<Option<JobRecord>, JobStoreError> {
        match self.jobs.get(id.as_bytes())? {
            Some(b) => Ok(Some(decode("job", &b).map_err(JobStoreError)?)),
            None => Ok(None),
        }
    }

    fn graph(&self, id: &str) -> Result<Option<GraphRecord>, JobStoreError> {
        match self.graphs.get(id.as_bytes())? {
            Some(b) => Ok(Some(decode("graph", &b).map_err(JobStoreError)?)),
            None => Ok(None),
        }
    }

    fn graphs(&self) -> Result<Vec<GraphRecord>, JobStoreError> {
        self.graphs
            .iter()
            .map(|kv| {
                let (_, v) = kv?;
                decode("graph", &v).map_err(JobStoreError)
            })
            .collect()
    }

    fn completed(&self, graph: &str) -> Result<Vec<String>, JobStoreError> {
        // Graphs written before the completion tree existed kept the order
        // in the record itself.
        let mut out = self.graph(graph)?.map(|g| g.completed).unwrap_or_default();
        let mut prefix = graph.as_bytes().to_vec();
        prefix.push(0);
        for kv in self.done.scan_prefix(prefix) {
            let (_, v) = kv?;
            out.push(String::from_utf8_lossy(&v).into_owned());
        }
        Ok(out)
    }

    fn scan(
        &self,
        start_after: Option<&str>,
        limit: usize,
        keep: &mut dyn FnMut(&JobRecord) -> bool,
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
            let (_, v) = kv?;
            let job: JobRecord = decode("job", &v).map_err(JobStoreError)?;
            if keep(&job) {
                out.push(job);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn events(
        &self,
        id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, JobStoreError> {
        let from = event_key(id, after.saturating_add(1));
        let to = event_key(id, u64::MAX);
        self.events
            .range(from..=to)
            .take(limit)
            .map(|kv| {
                let (_, v) = kv?;
                decode("event", &v).map_err(JobStoreError)
            })
            .collect()
    }

    fn schedules(&self) -> Result<Vec<ScheduleRecord>, JobStoreError> {
        self.schedules
            .iter()
            .map(|kv| {
                let (_, v) = kv?;
                decode("schedule", &v).map_err(JobStoreError)
            })
            .collect()
    }

    fn put_schedule(&self, s: &ScheduleRecord) -> Result<(), JobStoreError> {
        self.schedules
            .insert(schedule_key(&s.handler, &s.name), encode(s))?;
        Ok(())
    }

    fn delete_schedule(&self, handler: &str, name: &str) -> Result<bool, JobStoreError> {
        Ok(self
            .schedules
            .remove(schedule_key(handler, name))?
            .is_some())
    }

    fn fire(
        &self,
        next: &ScheduleRecord,
        due_ms: u64,
        job: Option<&JobRecord>,
        expired: &[String],
    ) -> Result<bool, JobStoreError> {
        let key = schedule_key(&next.handler, &next.name);
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

    fn commit(&self) -> CommitFuture<'_> {
        Box::pin(async move { Ok(self.commit.commit().await?) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::schedule::When;

    fn schedule(next: u64, created: u64) -> ScheduleRecord {
        ScheduleRecord {
            handler: "h".into(),
            name: "s".into(),
            timing: When::EveryMs(1000),
            kind: "tick".into(),
            input: Vec::new(),
            timeout_ms: None,
            max_attempts: 1,
            labels: Vec::new(),
            from_manifest: false,
            created_at_ms: created,
            next_at_ms: Some(next),
            last_at_ms: None,
            last_job: None,
            skipped: 0,
            keep_jobs: 100,
            recent: Vec::new(),
        }
    }

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

    #[test]
    fn a_tick_spawns_its_job_once_and_never_over_a_replaced_schedule() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let commit = GroupCommit::new(Arc::new(|| Ok(())));
        let store = SledJobStore::open(&db, commit).unwrap();
        store.put_schedule(&schedule(1000, 0)).unwrap();
        // Two tickers race for the tick due at 1000: one wins.
        assert!(
            store
                .fire(&schedule(2000, 0), 1000, Some(&job("a")), &[])
                .unwrap()
        );
        assert!(
            !store
                .fire(&schedule(2000, 0), 1000, Some(&job("b")), &[])
                .unwrap()
        );
        assert!(store.get("a").unwrap().is_some());
        assert!(store.get("b").unwrap().is_none());
        assert_eq!(store.events("a", 0, 10).unwrap()[0].kind, "queued");
        // Replaced meanwhile (a new creation time): the old tick writes nothing.
        store.put_schedule(&schedule(2000, 5)).unwrap();
        assert!(
            !store
                .fire(&schedule(3000, 0), 2000, Some(&job("c")), &[])
                .unwrap()
        );
        assert!(store.get("c").unwrap().is_none());
        assert_eq!(store.schedules().unwrap(), vec![schedule(2000, 5)]);
        assert!(store.delete_schedule("h", "s").unwrap());
        assert!(!store.fire(&schedule(3000, 5), 2000, None, &[]).unwrap());
        assert!(store.schedules().unwrap().is_empty());
    }

    #[test]
    fn a_tick_removes_only_ended_jobs_outside_graphs_with_their_events() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let store = SledJobStore::open(&db, GroupCommit::new(Arc::new(|| Ok(())))).unwrap();
        let mut in_graph = job("g");
        in_graph.graph = Some("graph".into());
        store
            .insert(&[job("done"), job("queued"), in_graph], None)
            .unwrap();
        for id in ["done", "g"] {
            store
                .update(id, &|j| {
                    j.state = JobState::Succeeded;
                    vec![("succeeded".into(), "ok".into())]
                })
                .unwrap();
        }
        store.put_schedule(&schedule(1000, 0)).unwrap();
        let expired: Vec<String> = ["done", "queued", "g", "nope"].map(String::from).to_vec();
        assert!(
            store
                .fire(&schedule(2000, 0), 1000, Some(&job("new")), &expired)
                .unwrap()
        );
        assert!(store.get("done").unwrap().is_none());
        assert!(store.events("done", 0, 10).unwrap().is_empty());
        assert!(store.get("queued").unwrap().is_some());
        assert_eq!(store.events("g", 0, 10).unwrap().len(), 2);
        assert!(store.get("new").unwrap().is_some());
    }
}
