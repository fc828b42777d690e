//! Replicas sharing one database (table `replicas`): each process joins
//! under an id, holds a lease on its work that it renews every third of
//! the lease, and takes over the work of replicas whose lease ran out.
//!
//! Times are the database's clock. Two rules keep a live replica's work
//! from being taken over: a replica takes over others only after its own
//! renewals have succeeded for a whole lease without a break (after an
//! outage of the database, every live replica has had a lease's time to
//! renew); and a replica that finds its lease gone (it was taken over while
//! cut off) stops at once, since its jobs now run elsewhere.

use super::{PgStore, failed};
use crate::store::StoreError;
use sqlx::postgres::PgPool;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// The exit status of a replica whose lease was taken over.
pub const LEASE_LOST_EXIT: i32 = 75;

/// This process's place among the replicas of a database.
pub struct Membership {
    inner: Arc<Member>,
}

/// What the renewal task and the job store share.
pub(super) struct Member {
    pub(super) pool: PgPool,
    pub(super) id: Arc<str>,
    pub(super) lease: Duration,
    /// Since when renewals have succeeded without a break; `None` after a
    /// failed one.
    healthy_since: Mutex<Option<Instant>>,
    /// Whether the work of this id's earlier life was adopted yet.
    pub(super) adopted_own: AtomicBool,
    /// Set by [`Membership::leave`]: renewals stop.
    left: AtomicBool,
    /// The connection holding the advisory lock on this id.
    _lock: tokio::sync::Mutex<sqlx::PgConnection>,
}

impl Member {
    /// Whether this replica may take over others now (see the module doc).
    pub(super) fn may_take_over(&self) -> bool {
        self.healthy_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() >= self.lease)
    }

    /// Renews the lease; `false` when the lease is gone (taken over).
    async fn renew(&self) -> Result<bool, StoreError> {
        let renewed = sqlx::query(
            "UPDATE replicas SET lease_until = now() + $2 * interval '1 millisecond' \
             WHERE id = $1",
        )
        .bind(&*self.id)
        .bind(self.lease.as_millis() as i64)
        .execute(&self.pool)
        .await
        .map_err(failed)?;
        Ok(renewed.rows_affected() == 1)
    }

    fn set_healthy(&self, healthy: bool) {
        let mut since = self.healthy_since.lock().unwrap_or_else(|e| e.into_inner());
        match (healthy, *since) {
            (true, None) => *since = Some(Instant::now()),
            (false, _) => *since = None,
            (true, Some(_)) => {}
        }
    }
}

impl PgStore {
    /// Joins the replicas of this database as `id` (kept in the data
    /// directory, so that a restarted server takes its own work back at
    /// once) on `host`, with `lease`; renews the lease in the background
    /// for as long as the membership lives. Refuses an id that a live
    /// process holds: two servers sharing one data directory.
    pub async fn join(
        &self,
        id: &str,
        host: &str,
        lease: Duration,
    ) -> Result<Membership, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(failed)?.detach();
        let got: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 7103))")
                .bind(format!("baton-replica:{id}"))
                .fetch_one(&mut conn)
                .await
                .map_err(failed)?;
        if !got {
            return Err(StoreError::Invalid(format!(
                "replica `{id}` is already serving from {}: each server needs a data \
                 directory of its own",
                self.shown
            )));
        }
        sqlx::query(
            "INSERT INTO replicas (id, host, lease_until) \
             VALUES ($1, $2, now() + $3 * interval '1 millisecond') \
             ON CONFLICT (id) DO UPDATE SET host = excluded.host, started_at = now(), \
             lease_until = excluded.lease_until",
        )
        .bind(id)
        .bind(host)
        .bind(lease.as_millis() as i64)
        .execute(&mut conn)
        .await
        .map_err(failed)?;
        let inner = Arc::new(Member {
            pool: self.pool.clone(),
            id: Arc::from(id),
            lease,
            healthy_since: Mutex::new(Some(Instant::now())),
            adopted_own: AtomicBool::new(false),
            left: AtomicBool::new(false),
            _lock: tokio::sync::Mutex::new(conn),
        });
        tokio::spawn(keep_renewing(Arc::downgrade(&inner)));
        tracing::info!(
            replica = id,
            lease_ms = lease.as_millis() as u64,
            "joined the replicas"
        );
        Ok(Membership { inner })
    }
}

/// Renews the lease every third of it (every second while renewals fail)
/// until the membership is dropped; exits the process when the lease is
/// gone.
async fn keep_renewing(member: Weak<Member>) {
    loop {
        let Some(m) = member.upgrade() else { return };
        if m.left.load(Ordering::Acquire) {
            return;
        }
        let wait = match m.renew().await {
            Ok(true) => {
                m.set_healthy(true);
                m.lease / 3
            }
            Ok(false) => {
                tracing::error!(
                    replica = %m.id,
                    "this replica's lease was taken over (it could not renew it in time): \
                     its jobs run on another replica now; stopping"
                );
                // `exit` skips destructors: write the lines out first.
                crate::telemetry::writer::flush();
                std::process::exit(LEASE_LOST_EXIT);
            }
            Err(e) => {
                m.set_healthy(false);
                tracing::warn!(replica = %m.id, "renewing the lease failed: {e}");
                Duration::from_secs(1).min(m.lease / 3)
            }
        };
        drop(m);
        tokio::time::sleep(wait).await;
    }
}

impl Membership {
    pub(super) fn member(&self) -> Arc<Member> {
        self.inner.clone()
    }

    /// Ends the lease now, so that other replicas take this one's work
    /// over at once (a clean stop of a server whose data directory may not
    /// come back).
    pub async fn leave(&self) -> Result<(), StoreError> {
        self.inner.left.store(true, Ordering::Release);
        sqlx::query("UPDATE replicas SET lease_until = now() WHERE id = $1")
            .bind(&*self.inner.id)
            .execute(&self.inner.pool)
            .await
            .map_err(failed)?;
        Ok(())
    }
}

/// A replica id: new for each data directory, then kept in it.
pub fn replica_id(data_dir: &std::path::Path) -> std::io::Result<String> {
    let path = data_dir.join("replica-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        Ok(_) => new_id(&path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => new_id(&path),
        Err(e) => Err(e),
    }
}

fn new_id(path: &std::path::Path) -> std::io::Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &id)?;
    std::fs::rename(&tmp, path)?;
    Ok(id)
}

/// Moves to `member` the unfinished jobs and the graphs of replicas whose
/// lease ran out (when `member` may take over) and, the first time, those
/// of its own id and those no replica owns; returns them with the replicas
/// taken over.
pub(super) async fn take_over(
    member: &Member,
) -> Result<(Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<String>), StoreError> {
    let first = !member.adopted_own.load(Ordering::Acquire);
    let take_dead = member.may_take_over();
    if !first && !take_dead {
        return Ok(Default::default());
    }
    let mut tx = member.pool.begin().await.map_err(failed)?;
    let dead: Vec<String> = if take_dead {
        sqlx::query_scalar(
            "SELECT id FROM replicas WHERE lease_until < now() AND id <> $1 \
             FOR UPDATE SKIP LOCKED",
        )
        .bind(&*member.id)
        .fetch_all(&mut *tx)
        .await
        .map_err(failed)?
    } else {
        Vec::new()
    };
    if !first && dead.is_empty() {
        return Ok(Default::default());
    }
    let unfinished = "state IN ('queued', 'running') AND";
    let jobs = move_owned(&mut tx, "jobs", unfinished, member, &dead, first).await?;
    let graphs = move_owned(&mut tx, "job_graphs", "", member, &dead, first).await?;
    sqlx::query("DELETE FROM replicas WHERE id = ANY($1)")
        .bind(&dead)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    member.adopted_own.store(true, Ordering::Release);
    if !dead.is_empty() {
        tracing::warn!(
            replicas = ?dead, jobs = jobs.len(),
            "took over the work of replicas whose lease ran out"
        );
    }
    Ok((jobs, graphs, dead))
}

/// Moves to `member` the rows of `table` (those `only` keeps) that `dead`
/// replicas own or, the `first` time, that it owns itself or nobody does;
/// their records.
async fn move_owned(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    table: &str,
    only: &str,
    member: &Member,
    dead: &[String],
    first: bool,
) -> Result<Vec<Vec<u8>>, StoreError> {
    sqlx::query_scalar(&format!(
        "UPDATE {table} SET owner = $1 WHERE {only} \
         (owner = ANY($2) OR ($3 AND (owner IS NULL OR owner = $1))) RETURNING record"
    ))
    .bind(&*member.id)
    .bind(dead)
    .bind(first)
    .fetch_all(&mut **tx)
    .await
    .map_err(failed)
}
