//! Jobs, graphs and events in three sled trees. Every change to a job and
//! the events it produces (and its graph, when it has one) are written in one
//! transaction, so a crash never leaves a state without its event or a gap
//! in the event sequence.

use super::model::{EventRecord, GraphRecord, JobRecord, now_ms};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

/// A storage failure of the job engine.
#[derive(Debug, thiserror::Error)]
#[error("the job store failed: {0}")]
pub struct JobStoreError(pub String);

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

/// Events to append: (kind, message).
pub type NewEvents = Vec<(String, String)>;

/// The job engine's trees.
#[derive(Clone)]
pub struct JobStore {
    db: sled::Db,
    jobs: sled::Tree,
    events: sled::Tree,
    graphs: sled::Tree,
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

impl JobStore {
    /// Opens the trees in `db`.
    pub fn open(db: &sled::Db) -> Result<Self, JobStoreError> {
        Ok(JobStore {
            db: db.clone(),
            jobs: db.open_tree("jobs")?,
            events: db.open_tree("job-events")?,
            graphs: db.open_tree("job-graphs")?,
        })
    }

    /// Makes every write so far durable.
    ///
    /// A blocking `flush` on a blocking thread, not `flush_async`: concurrent
    /// `flush_async` calls deadlock sled 0.34 (spacejam/sled#1308) — with many
    /// jobs ending at once the whole server hung, transactions waiting on
    /// flushes that waited on sled's busy I/O threads.
    pub async fn flush(&self) -> Result<(), JobStoreError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| JobStoreError(format!("the flush task failed: {e}")))??;
        Ok(())
    }

    /// Inserts new jobs (each with a `queued` event) and their graph, atomically.
    pub fn insert(
        &self,
        jobs: &[JobRecord],
        graph: Option<&GraphRecord>,
    ) -> Result<(), JobStoreError> {
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

    /// Applies `f` to job `id` (and its graph) and appends the events it
    /// returns, in one transaction. `None` when there is no such job. `f`
    /// may run more than once (on conflicts); it must only change what it is given.
    pub fn update<F>(&self, id: &str, f: F) -> Result<Option<JobRecord>, JobStoreError>
    where
        F: Fn(&mut JobRecord, Option<&mut GraphRecord>) -> NewEvents,
    {
        let out = (&self.jobs, &self.events, &self.graphs).transaction(|(tj, te, tg)| {
            let Some(bytes) = tj.get(id.as_bytes())? else {
                return Ok(None);
            };
            let mut job: JobRecord =
                decode("job", &bytes).map_err(ConflictableTransactionError::Abort)?;
            let mut graph: Option<GraphRecord> = match &job.graph {
                Some(g) => match tg.get(g.as_bytes())? {
                    Some(b) => {
                        Some(decode("graph", &b).map_err(ConflictableTransactionError::Abort)?)
                    }
                    None => None,
                },
                None => None,
            };
            let before_graph = graph.clone();
            let events = f(&mut job, graph.as_mut());
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
            tj.insert(id.as_bytes(), encode(&job))?;
            if let Some(g) = &graph
                && Some(g) != before_graph.as_ref()
            {
                tg.insert(g.id.as_bytes(), encode(g))?;
            }
            TxResult::Ok(Some(job))
        })?;
        Ok(out)
    }

    /// Applies `f` to graph `id` alone.
    pub fn update_graph<F>(&self, id: &str, f: F) -> Result<Option<GraphRecord>, JobStoreError>
    where
        F: Fn(&mut GraphRecord),
    {
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

    /// Job `id`.
    pub fn get(&self, id: &str) -> Result<Option<JobRecord>, JobStoreError> {
        match self.jobs.get(id.as_bytes())? {
            Some(b) => Ok(Some(decode("job", &b).map_err(JobStoreError)?)),
            None => Ok(None),
        }
    }

    /// Graph `id`.
    pub fn graph(&self, id: &str) -> Result<Option<GraphRecord>, JobStoreError> {
        match self.graphs.get(id.as_bytes())? {
            Some(b) => Ok(Some(decode("graph", &b).map_err(JobStoreError)?)),
            None => Ok(None),
        }
    }

    /// Every graph.
    pub fn graphs(&self) -> Result<Vec<GraphRecord>, JobStoreError> {
        self.graphs
            .iter()
            .map(|kv| {
                let (_, v) = kv?;
                decode("graph", &v).map_err(JobStoreError)
            })
            .collect()
    }

    /// Jobs after `start_after` (oldest first) for which `keep` holds, at most `limit`.
    pub fn scan(
        &self,
        start_after: Option<&str>,
        limit: usize,
        mut keep: impl FnMut(&JobRecord) -> bool,
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

    /// Events of `id` with `seq > after`, at most `limit`.
    pub fn events(
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
}
