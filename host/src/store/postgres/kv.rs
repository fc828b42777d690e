//! Handler key-value data in the `kv` table.
//!
//! Single-key operations are one statement each, atomic at READ COMMITTED
//! (a conditional UPDATE re-checks its condition on the row it waited
//! for). `apply` is one transaction. `apply_if` locks the rows it expects
//! (`FOR UPDATE`) before it writes; when it expects a key to be absent it
//! runs SERIALIZABLE instead. Either is tried again when PostgreSQL reports
//! a deadlock or a serialization failure.

use super::{PgStore, failed};
use crate::store::{
    CountOp, Expect, KvStore, MAX_SCAN, StoreError, WriteOp, check_entry, check_ns,
};
use sqlx::{Postgres, Row, Transaction};
use std::time::Duration;

/// Attempts at an `apply_if` that keeps meeting concurrent writers.
const MAX_ATTEMPTS: u32 = 100;

const UPSERT: &str = "INSERT INTO kv (ns, bucket, key, value) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (ns, bucket, key) DO UPDATE SET value = excluded.value";
const DELETE: &str = "DELETE FROM kv WHERE ns = $1 AND bucket = $2 AND key = $3";
const SELECT: &str = "SELECT value FROM kv WHERE ns = $1 AND bucket = $2 AND key = $3";
const SELECT_FOR_UPDATE: &str =
    "SELECT value FROM kv WHERE ns = $1 AND bucket = $2 AND key = $3 FOR UPDATE";
/// Adds $4 to the counter (absent = 0) and returns the new value.
const INCREMENT: &str = "INSERT INTO kv (ns, bucket, key, value) \
     VALUES ($1, $2, $3, convert_to($4::bigint::text, 'UTF8')) \
     ON CONFLICT (ns, bucket, key) \
     DO UPDATE SET value = convert_to((baton_counter(kv.value) + $4::bigint)::text, 'UTF8') \
     RETURNING baton_counter(value)";

/// A failed counter statement as the store's error: the value is not a
/// counter, or the sum does not fit.
fn count_failed(e: sqlx::Error, bucket: &str, key: &str) -> StoreError {
    let code = e
        .as_database_error()
        .and_then(|d| d.code().map(|c| c.into_owned()));
    match code.as_deref() {
        Some("22P02") => {
            StoreError::Invalid(format!("`{bucket}/{key}` does not hold a decimal counter"))
        }
        Some("22003") => {
            StoreError::Invalid(format!("`{bucket}/{key}` would overflow a 64-bit counter"))
        }
        _ => failed(e),
    }
}

/// Whether `e` says the transaction lost a race and may be tried again.
fn retryable(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "40001" || c == "40P01")
}

/// The smallest byte string greater than every one starting with `prefix`,
/// or `None` when there is none (empty, or all 0xFF).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn check_key(ns: &str, bucket: &str, key: &str) -> Result<(), StoreError> {
    check_ns(ns)?;
    check_entry(bucket, key, None)
}

/// Why an `apply_if` attempt did not commit.
enum Outcome {
    /// An expectation did not hold: nothing written.
    Unmet,
    /// The writes are in; these are the counters' values.
    Applied(Vec<i64>),
}

impl PgStore {
    async fn write_ops(
        tx: &mut Transaction<'_, Postgres>,
        ns: &str,
        ops: &[WriteOp],
    ) -> Result<(), sqlx::Error> {
        for op in ops {
            let q = match &op.value {
                Some(v) => sqlx::query(UPSERT)
                    .bind(ns)
                    .bind(&op.bucket)
                    .bind(op.key.as_bytes())
                    .bind(v),
                None => sqlx::query(DELETE)
                    .bind(ns)
                    .bind(&op.bucket)
                    .bind(op.key.as_bytes()),
            };
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// One SERIALIZABLE attempt at `apply_if`.
    async fn try_apply_if(
        &self,
        ns: &str,
        expect: &[Expect],
        writes: &[WriteOp],
        counts: &[CountOp],
    ) -> Result<Result<Outcome, StoreError>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // Expected values that exist are locked where they are read (in
        // key order, so two batches cannot wait on each other forever),
        // and nothing can change them before the commit. An expected
        // absence has no row to lock: only then does the transaction run
        // SERIALIZABLE, which catches an insert made meanwhile.
        let absence = expect.iter().any(|e| e.value.is_none());
        if absence {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                .execute(&mut *tx)
                .await?;
        }
        let mut ordered: Vec<&Expect> = expect.iter().collect();
        ordered.sort_by(|a, b| (&a.bucket, &a.key).cmp(&(&b.bucket, &b.key)));
        let read = if absence { SELECT } else { SELECT_FOR_UPDATE };
        for e in ordered {
            let now: Option<Vec<u8>> = sqlx::query_scalar(read)
                .bind(ns)
                .bind(&e.bucket)
                .bind(e.key.as_bytes())
                .fetch_optional(&mut *tx)
                .await?;
            if now != e.value {
                tx.rollback().await?;
                return Ok(Ok(Outcome::Unmet));
            }
        }
        Self::write_ops(&mut tx, ns, writes).await?;
        let mut values = Vec::with_capacity(counts.len());
        for c in counts {
            let row = sqlx::query(INCREMENT)
                .bind(ns)
                .bind(&c.bucket)
                .bind(c.key.as_bytes())
                .bind(c.delta)
                .fetch_one(&mut *tx)
                .await;
            match row {
                Ok(row) => values.push(row.try_get::<i64, _>(0)?),
                Err(e) if retryable(&e) => return Err(e),
                Err(e) => return Ok(Err(count_failed(e, &c.bucket, &c.key))),
            }
        }
        tx.commit().await?;
        Ok(Ok(Outcome::Applied(values)))
    }
}

#[async_trait::async_trait]
impl KvStore for PgStore {
    async fn get(&self, ns: &str, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(ns, bucket, key)?;
        sqlx::query_scalar(SELECT)
            .bind(ns)
            .bind(bucket)
            .bind(key.as_bytes())
            .fetch_optional(&self.pool)
            .await
            .map_err(failed)
    }

    async fn set(&self, ns: &str, bucket: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_ns(ns)?;
        check_entry(bucket, key, Some(value))?;
        sqlx::query(UPSERT)
            .bind(ns)
            .bind(bucket)
            .bind(key.as_bytes())
            .bind(value)
            .execute(&self.pool)
            .await
            .map_err(failed)?;
        Ok(())
    }

    async fn delete(&self, ns: &str, bucket: &str, key: &str) -> Result<bool, StoreError> {
        check_key(ns, bucket, key)?;
        let done = sqlx::query(DELETE)
            .bind(ns)
            .bind(bucket)
            .bind(key.as_bytes())
            .execute(&self.pool)
            .await
            .map_err(failed)?;
        Ok(done.rows_affected() > 0)
    }

    async fn compare_and_swap(
        &self,
        ns: &str,
        bucket: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        check_ns(ns)?;
        check_entry(bucket, key, new)?;
        let key = key.as_bytes();
        let q = match (expected, new) {
            (None, None) => {
                let absent: bool = sqlx::query_scalar(
                    "SELECT NOT EXISTS (SELECT 1 FROM kv WHERE ns = $1 AND bucket = $2 AND key = $3)",
                )
                .bind(ns)
                .bind(bucket)
                .bind(key)
                .fetch_one(&self.pool)
                .await
                .map_err(failed)?;
                return Ok(absent);
            }
            (None, Some(n)) => sqlx::query(
                "INSERT INTO kv (ns, bucket, key, value) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (ns, bucket, key) DO NOTHING",
            )
            .bind(ns)
            .bind(bucket)
            .bind(key)
            .bind(n),
            (Some(e), Some(n)) => sqlx::query(
                "UPDATE kv SET value = $5 WHERE ns = $1 AND bucket = $2 AND key = $3 AND value = $4",
            )
            .bind(ns)
            .bind(bucket)
            .bind(key)
            .bind(e)
            .bind(n),
            (Some(e), None) => sqlx::query(
                "DELETE FROM kv WHERE ns = $1 AND bucket = $2 AND key = $3 AND value = $4",
            )
            .bind(ns)
            .bind(bucket)
            .bind(key)
            .bind(e),
        };
        let done = q.execute(&self.pool).await.map_err(failed)?;
        Ok(done.rows_affected() == 1)
    }

    async fn scan(
        &self,
        ns: &str,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        check_ns(ns)?;
        check_entry(bucket, prefix, None)?;
        let limit = limit.min(MAX_SCAN) as i64;
        let rows = sqlx::query(
            "SELECT key, value FROM kv WHERE ns = $1 AND bucket = $2 AND key >= $3 \
             AND ($4::bytea IS NULL OR key < $4) AND ($5::bytea IS NULL OR key > $5) \
             ORDER BY key LIMIT $6",
        )
        .bind(ns)
        .bind(bucket)
        .bind(prefix.as_bytes())
        .bind(prefix_end(prefix.as_bytes()))
        .bind(start_after.map(str::as_bytes))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(failed)?;
        rows.into_iter()
            .map(|r| {
                let key: Vec<u8> = r.try_get(0)?;
                Ok((String::from_utf8_lossy(&key).into_owned(), r.try_get(1)?))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(failed)
    }

    async fn increment(
        &self,
        ns: &str,
        bucket: &str,
        key: &str,
        delta: i64,
    ) -> Result<i64, StoreError> {
        check_key(ns, bucket, key)?;
        sqlx::query_scalar(INCREMENT)
            .bind(ns)
            .bind(bucket)
            .bind(key.as_bytes())
            .bind(delta)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| count_failed(e, bucket, key))
    }

    async fn apply(&self, ns: &str, ops: &[WriteOp]) -> Result<(), StoreError> {
        check_ns(ns)?;
        for op in ops {
            check_entry(&op.bucket, &op.key, op.value.as_deref())?;
        }
        let mut tx = self.pool.begin().await.map_err(failed)?;
        Self::write_ops(&mut tx, ns, ops).await.map_err(failed)?;
        tx.commit().await.map_err(failed)
    }

    async fn apply_if(
        &self,
        ns: &str,
        expect: &[Expect],
        writes: &[WriteOp],
        counts: &[CountOp],
    ) -> Result<Option<Vec<i64>>, StoreError> {
        check_ns(ns)?;
        for e in expect {
            check_entry(&e.bucket, &e.key, None)?;
        }
        for w in writes {
            check_entry(&w.bucket, &w.key, w.value.as_deref())?;
        }
        for c in counts {
            check_entry(&c.bucket, &c.key, None)?;
        }
        for attempt in 1..=MAX_ATTEMPTS {
            match self.try_apply_if(ns, expect, writes, counts).await {
                Ok(Ok(Outcome::Applied(values))) => return Ok(Some(values)),
                Ok(Ok(Outcome::Unmet)) => return Ok(None),
                Ok(Err(e)) => return Err(e),
                Err(e) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                    // Spread the retries of writers that collided.
                    let jitter = rand::random::<u64>() % (1 + u64::from(attempt.min(10)));
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                }
                Err(e) => return Err(failed(e)),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Every statement is durable when it returns (PostgreSQL commits it,
    /// and groups concurrent commits' WAL flushes itself).
    async fn commit(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn a_prefix_ends_at_its_last_byte_below_0xff_plus_one() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
