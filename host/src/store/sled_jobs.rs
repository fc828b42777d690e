//! The job engine's records in sled: trees `jobs`, `job-events` (keys
//! `id \0 seq`), `job-graphs` and `job-graph-done` (keys `graph \0 n`, the
//! order in which a graph's jobs succeeded). A job's change and its events
//! are one transaction.

use super::commit::GroupCommit;
use super::jobs::{CommitFuture, JobStore, JobStoreError, NewEvents};
use crate::jobs::model::{EventRecord, GraphRecord, JobRecord, JobState, now_ms};
use sled::Transactional;
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
    commit: Arc<GroupCommit>,
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
            commit,
        })
    }
}

impl JobStore for SledJobStore {
    fn insert(&self, jobs: &[JobRecord], graph: Option<&GraphRecord>) -> Result<(), JobStoreError> {
        (&self.jobs, &self.events, &self.graphs).transaction(|(tj, te, tg)| {
            for job in jobs {
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

    fn commit(&self) -> CommitFuture<'_> {
        Box::pin(async move { Ok(self.commit.commit().await?) })
    }
}
