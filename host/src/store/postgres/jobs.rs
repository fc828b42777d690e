//! The job engine's records in PostgreSQL (tables `jobs`, `job_events`,
//! `job_graphs`, `job_graph_done`, `job_schedules`).
//!
//! A change to a job is one transaction that locks its row
//! (`SELECT … FOR UPDATE`), so changes to one job are serialised across
//! every replica, `f` runs once, and its events are numbered without gaps.
//! Every write is durable when it returns.

use super::PgStore;
use super::replicas::{Member, Membership, take_over};
use crate::jobs::model::{EventRecord, GraphRecord, JobRecord, JobState, ScheduleRecord, now_ms};
use crate::store::jobs::{
    Adopted, GraphChange, JobChange, JobFilter, JobStore, JobStoreError, RunLimits, Started,
    decode, encode, last_successes, queued,
};
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Transaction};
use std::sync::Arc;

/// Jobs read per round trip while a scan filters them.
const SCAN_PAGE: i64 = 500;

/// The advisory lock under which a job's start counts the running jobs
/// (so that two replicas never both take the last free place).
const RUN_LIMITS_LOCK: i64 = 0x4261_746f_6e5f_726c;

/// The channel on which replicas hear of jobs (see `0003_replicas.sql`).
pub const JOBS_CHANNEL: &str = "baton_jobs";

/// The job store of a PostgreSQL database.
#[derive(Clone)]
pub struct PgJobStore {
    pool: PgPool,
    /// The replica this store works for: the owner of the jobs it inserts.
    /// `None`: a store that owns nothing (tools, tests of the store).
    member: Option<Arc<Member>>,
}

impl PgStore {
    /// The job engine's store in this database, working for `replica`.
    pub fn job_store(&self, replica: Option<&Membership>) -> PgJobStore {
        PgJobStore {
            pool: self.pool.clone(),
            member: replica.map(Membership::member),
        }
    }
}

impl PgJobStore {
    fn owner(&self) -> Option<&str> {
        self.member.as_deref().map(|m| &*m.id)
    }
}

fn failed(e: sqlx::Error) -> JobStoreError {
    JobStoreError::from(super::failed(e))
}

fn decoded<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, JobStoreError> {
    decode(what, bytes).map_err(JobStoreError::new)
}

/// Row `id` of `table` (`jobs` or `job_graphs`), decoded as a `what`
/// record and locked until `tx` ends.
async fn locked<T: serde::de::DeserializeOwned>(
    tx: &mut Transaction<'_, Postgres>,
    table: &str,
    what: &str,
    id: &str,
) -> Result<Option<T>, JobStoreError> {
    let row: Option<Vec<u8>> = sqlx::query_scalar(&format!(
        "SELECT record FROM {table} WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(failed)?;
    row.map(|bytes| decoded(what, &bytes)).transpose()
}

/// Inserts `jobs` (each as queued, with its first event) in `tx`.
async fn insert_jobs(
    tx: &mut Transaction<'_, Postgres>,
    jobs: &[JobRecord],
    owner: Option<&str>,
) -> Result<(), sqlx::Error> {
    let mut ids = Vec::with_capacity(jobs.len());
    let mut handlers = Vec::with_capacity(jobs.len());
    let mut states = Vec::with_capacity(jobs.len());
    let mut graphs = Vec::with_capacity(jobs.len());
    let mut records = Vec::with_capacity(jobs.len());
    let mut events = Vec::with_capacity(jobs.len());
    for job in jobs {
        let (job, event) = queued(job);
        ids.push(job.id.clone());
        handlers.push(job.handler.clone());
        states.push(job.state.as_str());
        graphs.push(job.graph.clone());
        records.push(encode(&job));
        events.push(encode(&event));
    }
    sqlx::query(
        "INSERT INTO jobs (id, handler, state, graph, record, owner) \
         SELECT *, $6 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[])",
    )
    .bind(&ids)
    .bind(&handlers)
    .bind(&states)
    .bind(&graphs)
    .bind(&records)
    .bind(owner)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO job_events (job, seq, record) \
         SELECT id, 1, record FROM UNNEST($1::text[], $2::bytea[]) AS e (id, record)",
    )
    .bind(&ids)
    .bind(&events)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl JobStore for PgJobStore {
    async fn insert(
        &self,
        jobs: &[JobRecord],
        graph: Option<&GraphRecord>,
    ) -> Result<(), JobStoreError> {
        let mut tx = self.pool.begin().await.map_err(failed)?;
        insert_jobs(&mut tx, jobs, self.owner())
            .await
            .map_err(failed)?;
        if let Some(g) = graph {
            sqlx::query("INSERT INTO job_graphs (id, record, owner) VALUES ($1, $2, $3)")
                .bind(&g.id)
                .bind(encode(g))
                .bind(self.owner())
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        tx.commit().await.map_err(failed)
    }

    async fn update(&self, id: &str, f: JobChange<'_>) -> Result<Option<JobRecord>, JobStoreError> {
        let mut tx = self.pool.begin().await.map_err(failed)?;
        let Some(job) = locked::<JobRecord>(&mut tx, "jobs", "job", id).await? else {
            return Ok(None);
        };
        let job = change(&mut tx, job, f).await?;
        tx.commit().await.map_err(failed)?;
        Ok(Some(job))
    }

    async fn update_graph(
        &self,
        id: &str,
        f: GraphChange<'_>,
    ) -> Result<Option<GraphRecord>, JobStoreError> {
        let mut tx = self.pool.begin().await.map_err(failed)?;
        let Some(mut g) = locked::<GraphRecord>(&mut tx, "job_graphs", "graph", id).await? else {
            return Ok(None);
        };
        f(&mut g);
        sqlx::query("UPDATE job_graphs SET record = $2 WHERE id = $1")
            .bind(id)
            .bind(encode(&g))
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(Some(g))
    }

    async fn get(&self, id: &str) -> Result<Option<JobRecord>, JobStoreError> {
        let row: Option<Vec<u8>> = sqlx::query_scalar("SELECT record FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed)?;
        row.map(|b| decoded("job", &b)).transpose()
    }

    async fn graph(&self, id: &str) -> Result<Option<GraphRecord>, JobStoreError> {
        let row: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT record FROM job_graphs WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(failed)?;
        row.map(|b| decoded("graph", &b)).transpose()
    }

    async fn graphs(&self) -> Result<Vec<GraphRecord>, JobStoreError> {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar("SELECT record FROM job_graphs ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(failed)?;
        rows.iter().map(|b| decoded("graph", b)).collect()
    }

    async fn completed(&self, graph: &str) -> Result<Vec<String>, JobStoreError> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT job FROM job_graph_done WHERE graph = $1 ORDER BY n")
                .bind(graph)
                .fetch_all(&self.pool)
                .await
                .map_err(failed)?;
        Ok(last_successes(rows))
    }

    async fn scan(
        &self,
        start_after: Option<&str>,
        limit: usize,
        keep: JobFilter<'_>,
    ) -> Result<Vec<JobRecord>, JobStoreError> {
        let mut out = Vec::new();
        let mut after = start_after.map(str::to_string);
        while out.len() < limit {
            let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
                "SELECT id, record FROM jobs WHERE ($1::text IS NULL OR id > $1) \
                 ORDER BY id LIMIT $2",
            )
            .bind(after.as_deref())
            .bind(SCAN_PAGE)
            .fetch_all(&self.pool)
            .await
            .map_err(failed)?;
            let Some((last, _)) = rows.last() else {
                break;
            };
            after = Some(last.clone());
            let full = rows.len() as i64 == SCAN_PAGE;
            for (_, bytes) in rows {
                let job: JobRecord = decoded("job", &bytes)?;
                if keep(&job) {
                    out.push(job);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            if !full {
                break;
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
        if after >= job.last_seq {
            return Ok(Vec::new());
        }
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT record FROM job_events WHERE job = $1 AND seq > $2 AND seq <= $3 \
             ORDER BY seq LIMIT $4",
        )
        .bind(&job.id)
        .bind(after.min(i64::MAX as u64) as i64)
        .bind(job.last_seq as i64)
        .bind(limit.min(i64::MAX as usize) as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        rows.iter().map(|b| decoded("event", b)).collect()
    }

    async fn schedules(&self) -> Result<Vec<ScheduleRecord>, JobStoreError> {
        let rows: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT record FROM job_schedules ORDER BY handler, name")
                .fetch_all(&self.pool)
                .await
                .map_err(failed)?;
        rows.iter().map(|b| decoded("schedule", b)).collect()
    }

    async fn put_schedule(&self, s: &ScheduleRecord) -> Result<(), JobStoreError> {
        sqlx::query(
            "INSERT INTO job_schedules (handler, name, record) VALUES ($1, $2, $3) \
             ON CONFLICT (handler, name) DO UPDATE SET record = excluded.record",
        )
        .bind(&s.handler)
        .bind(&s.name)
        .bind(encode(s))
        .execute(&self.pool)
        .await
        .map_err(failed)?;
        Ok(())
    }

    async fn delete_schedule(&self, handler: &str, name: &str) -> Result<bool, JobStoreError> {
        let done = sqlx::query("DELETE FROM job_schedules WHERE handler = $1 AND name = $2")
            .bind(handler)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(failed)?;
        Ok(done.rows_affected() > 0)
    }

    async fn fire(
        &self,
        next: &ScheduleRecord,
        due_ms: u64,
        job: Option<&JobRecord>,
        expired: &[String],
    ) -> Result<bool, JobStoreError> {
        let mut tx = self.pool.begin().await.map_err(failed)?;
        let row: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT record FROM job_schedules WHERE handler = $1 AND name = $2 FOR UPDATE",
        )
        .bind(&next.handler)
        .bind(&next.name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed)?;
        let Some(bytes) = row else {
            return Ok(false);
        };
        let stored: ScheduleRecord = decoded("schedule", &bytes)?;
        // A schedule replaced meanwhile has another creation time.
        if stored.next_at_ms != Some(due_ms) || stored.created_at_ms != next.created_at_ms {
            return Ok(false);
        }
        sqlx::query("UPDATE job_schedules SET record = $3 WHERE handler = $1 AND name = $2")
            .bind(&next.handler)
            .bind(&next.name)
            .bind(encode(next))
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        if let Some(job) = job {
            insert_jobs(&mut tx, std::slice::from_ref(job), self.owner())
                .await
                .map_err(failed)?;
        }
        if !expired.is_empty() {
            // Only ended jobs outside graphs go; their events go with them.
            sqlx::query(
                "DELETE FROM jobs WHERE id = ANY($1) AND graph IS NULL \
                 AND state NOT IN ('queued', 'running')",
            )
            .bind(expired)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        }
        tx.commit().await.map_err(failed)?;
        Ok(true)
    }

    /// Every write is durable when it returns.
    async fn commit(&self) -> Result<(), JobStoreError> {
        Ok(())
    }

    fn shared(&self) -> bool {
        true
    }

    async fn adopt(&self) -> Result<Adopted, JobStoreError> {
        let Some(member) = &self.member else {
            return Err(JobStoreError::new(
                "a job store that works for no replica cannot run jobs",
            ));
        };
        let (jobs, graphs, from) = take_over(member).await?;
        Ok(Adopted {
            jobs: jobs
                .iter()
                .map(|b| decoded("job", b))
                .collect::<Result<_, _>>()?,
            graphs: graphs
                .iter()
                .map(|b| decoded("graph", b))
                .collect::<Result<_, _>>()?,
            from,
        })
    }

    async fn start(
        &self,
        id: &str,
        f: JobChange<'_>,
        limits: RunLimits<'_>,
    ) -> Result<Started, JobStoreError> {
        let mut tx = self.pool.begin().await.map_err(failed)?;
        let Some(job) = locked::<JobRecord>(&mut tx, "jobs", "job", id).await? else {
            return Ok(Started::Missing);
        };
        if job.state == JobState::Queued {
            // Starters wait for one another here; each then counts the
            // running jobs that those before it committed.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(RUN_LIMITS_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            let (all, of_handler): (i64, i64) = sqlx::query_as(
                "SELECT count(*), count(*) FILTER (WHERE handler = $1) \
                 FROM jobs WHERE state = 'running'",
            )
            .bind(limits.handler)
            .fetch_one(&mut *tx)
            .await
            .map_err(failed)?;
            if all >= i64::from(limits.global_max) || of_handler >= i64::from(limits.handler_max) {
                return Ok(Started::AtLimit);
            }
        }
        let job = change(&mut tx, job, f).await?;
        tx.commit().await.map_err(failed)?;
        Ok(Started::Changed(Box::new(job)))
    }

    async fn announce(&self, id: &str) -> Result<(), JobStoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(JOBS_CHANNEL)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(failed)?;
        Ok(())
    }
}

/// Applies `f` to `job` (locked in `tx`) and writes it with the events it
/// returns; a job that becomes `succeeded` is recorded in its graph's
/// completion order.
async fn change(
    tx: &mut Transaction<'_, Postgres>,
    mut job: JobRecord,
    f: JobChange<'_>,
) -> Result<JobRecord, JobStoreError> {
    let id = job.id.clone();
    let was_succeeded = job.state == JobState::Succeeded;
    let events = f(&mut job);
    let now = now_ms();
    let mut seqs = Vec::with_capacity(events.len());
    let mut records = Vec::with_capacity(events.len());
    for (kind, message) in events {
        job.last_seq += 1;
        seqs.push(job.last_seq as i64);
        records.push(encode(&EventRecord {
            seq: job.last_seq,
            at_ms: now,
            kind,
            message,
        }));
    }
    if !seqs.is_empty() {
        sqlx::query(
            "INSERT INTO job_events (job, seq, record) \
             SELECT $1, seq, record FROM UNNEST($2::bigint[], $3::bytea[]) AS e (seq, record)",
        )
        .bind(&id)
        .bind(&seqs)
        .bind(&records)
        .execute(&mut **tx)
        .await
        .map_err(failed)?;
    }
    if let Some(g) = &job.graph
        && !was_succeeded
        && job.state == JobState::Succeeded
    {
        sqlx::query("INSERT INTO job_graph_done (graph, job) VALUES ($1, $2)")
            .bind(g)
            .bind(&id)
            .execute(&mut **tx)
            .await
            .map_err(failed)?;
    }
    sqlx::query("UPDATE jobs SET state = $2, record = $3 WHERE id = $1")
        .bind(&id)
        .bind(job.state.as_str())
        .bind(encode(&job))
        .execute(&mut **tx)
        .await
        .map_err(failed)?;
    Ok(job)
}
