//! The embedded sled backend.
//!
//! All handler key-value data lives in one tree, `kv`, under keys
//! `namespace \0 bucket \0 key`, so that a multi-bucket `apply` is one atomic
//! sled batch and a bucket scan is a prefix scan.

use super::{
    CountOp, Expect, GroupCommit, KvStore, MAX_SCAN, SledJobStore, StoreError, WriteOp, add,
    check_entry, check_ns, counter,
};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use std::path::Path;
use std::sync::Arc;

/// A sled database on disk.
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    kv: sled::Tree,
    commit: Arc<GroupCommit>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

/// The tree [`SledStore::probe_write`] writes to.
const PROBE_TREE: &str = "readiness-probe";

/// A sled failure as the store's.
pub(super) fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Whether sled could not open a database because another handle (or
/// process) holds its lock; sled reports that as `Other`, naming the OS
/// error.
fn held_lock(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock
        || io.to_string().contains("could not acquire lock"))
}

/// Opens (creating if needed) the sled database in `dir`.
///
/// A database whose lock is held is retried for up to five seconds: a
/// server restarted right after a `kill -9` may find the lock still held by
/// a command the dead server had started (its fork had not yet reached
/// `exec`, which closes the descriptor), and a `Db` just dropped in this
/// process holds it until sled's flusher thread has noticed.
pub(super) fn open_db(dir: &Path) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::Config::new().path(dir).open() {
            Ok(db) => return Ok(db),
            Err(e) if held_lock(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => {
                return Err(StoreError::Backend(format!(
                    "opening {}: {e}",
                    dir.display()
                )));
            }
        }
    }
}

/// Why an `apply_if` transaction ended without writing.
enum NotApplied {
    /// An expectation did not hold.
    Unmet,
    /// A counter could not be changed; the message says why.
    Invalid(String),
}

fn bucket_prefix(ns: &str, bucket: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(ns.len() + bucket.len() + 2);
    k.extend_from_slice(ns.as_bytes());
    k.push(0);
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k
}

pub(super) fn full_key(ns: &str, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError> {
    check_ns(ns)?;
    check_entry(bucket, key, None)?;
    let mut k = bucket_prefix(ns, bucket);
    k.extend_from_slice(key.as_bytes());
    Ok(k)
}

impl SledStore {
    /// Opens (creating if needed) the database in `dir` (see [`open_db`]).
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        super::sled_rewrite::recover(dir)?;
        Self::from_db(open_db(dir)?)
    }

    /// Opens the database in `dir` without waiting for its lock: a command
    /// beside a running server learns at once that the server holds it
    /// ([`StoreError::Unavailable`]).
    /// (A rewrite interrupted by a crash is left to the next server start.)
    pub fn open_unwaiting(dir: &Path) -> Result<SledStore, StoreError> {
        match sled::Config::new().path(dir).open() {
            Ok(db) => Self::from_db(db),
            Err(e) if held_lock(&e) => Err(StoreError::Unavailable(format!(
                "{} is in use by another process",
                dir.display()
            ))),
            Err(e) => Err(StoreError::Backend(format!(
                "opening {}: {e}",
                dir.display()
            ))),
        }
    }

    /// The store of a database already open.
    fn from_db(db: sled::Db) -> Result<SledStore, StoreError> {
        let kv = db.open_tree("kv").map_err(backend)?;
        super::sled_legacy::adopt(&db, &kv)?;
        let flushed = db.clone();
        let commit = GroupCommit::new(Arc::new(move || {
            let started = std::time::Instant::now();
            let result = flushed.flush().map(drop).map_err(backend);
            crate::metrics::global().store_flushed(started.elapsed());
            result
        }));
        Ok(SledStore { db, kv, commit })
    }

    /// The underlying database, for other concerns' trees.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Makes every write so far durable at once, without waiting for
    /// other writers (at shutdown).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(backend)?;
        Ok(())
    }

    /// Writes the readiness probe (a 4 KiB record in its own tree, so that
    /// each probe needs fresh space on disk) and waits until it is durable:
    /// `Ok` only when the store can take a write right now.
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        let probes = self.db.open_tree(PROBE_TREE).map_err(backend)?;
        let mut record = vec![0u8; 4096];
        let stamp = crate::jobs::model::now_ms().to_be_bytes();
        for chunk in record.chunks_mut(stamp.len()) {
            chunk.copy_from_slice(&stamp[..chunk.len()]);
        }
        probes.insert(b"probe", record).map_err(backend)?;
        self.commit().await
    }

    /// (commits asked for, flushes made) so far.
    pub fn commit_counts(&self) -> (u64, u64) {
        self.commit.counts()
    }

    /// The job engine's records in this database (sharing its group commit).
    pub fn job_store(&self) -> Result<SledJobStore, StoreError> {
        SledJobStore::open(&self.db, self.commit.clone())
            .map_err(|e| StoreError::Backend(e.to_string()))
    }
}

#[async_trait::async_trait]
impl KvStore for SledStore {
    async fn get(&self, ns: &str, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let k = full_key(ns, bucket, key)?;
        Ok(self.kv.get(k).map_err(backend)?.map(|v| v.to_vec()))
    }

    async fn set(&self, ns: &str, bucket: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        check_entry(bucket, key, Some(value))?;
        let k = full_key(ns, bucket, key)?;
        self.kv.insert(k, value).map_err(backend)?;
        Ok(())
    }

    async fn delete(&self, ns: &str, bucket: &str, key: &str) -> Result<bool, StoreError> {
        let k = full_key(ns, bucket, key)?;
        Ok(self.kv.remove(k).map_err(backend)?.is_some())
    }

    async fn compare_and_swap(
        &self,
        ns: &str,
        bucket: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        check_entry(bucket, key, new)?;
        let k = full_key(ns, bucket, key)?;
        Ok(self
            .kv
            .compare_and_swap(k, expected, new)
            .map_err(backend)?
            .is_ok())
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
        let base = bucket_prefix(ns, bucket);
        let mut scan_prefix = base.clone();
        scan_prefix.extend_from_slice(prefix.as_bytes());
        let limit = limit.min(MAX_SCAN);
        let iter = match start_after {
            Some(after) => {
                let mut from = base.clone();
                from.extend_from_slice(after.as_bytes());
                // The smallest key strictly greater than `from`.
                from.push(0);
                let lower = if from > scan_prefix {
                    from
                } else {
                    scan_prefix.clone()
                };
                self.kv.range(lower..)
            }
            None => self.kv.range(scan_prefix.clone()..),
        };
        let mut out = Vec::new();
        for item in iter {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(backend)?;
            if !k.starts_with(&scan_prefix) {
                break;
            }
            let key = String::from_utf8_lossy(&k[base.len()..]).into_owned();
            out.push((key, v.to_vec()));
        }
        Ok(out)
    }

    async fn increment(
        &self,
        ns: &str,
        bucket: &str,
        key: &str,
        delta: i64,
    ) -> Result<i64, StoreError> {
        let k = full_key(ns, bucket, key)?;
        loop {
            let current = self.kv.get(&k).map_err(backend)?;
            let next = add(
                counter(current.as_deref(), bucket, key)?,
                delta,
                bucket,
                key,
            )?;
            let swapped = self
                .kv
                .compare_and_swap(&k, current.as_deref(), Some(next.to_string().as_bytes()))
                .map_err(backend)?;
            if swapped.is_ok() {
                return Ok(next);
            }
        }
    }

    async fn apply(&self, ns: &str, ops: &[WriteOp]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for op in ops {
            check_entry(&op.bucket, &op.key, op.value.as_deref())?;
            let k = full_key(ns, &op.bucket, &op.key)?;
            match &op.value {
                Some(v) => batch.insert(k, v.as_slice()),
                None => batch.remove(k),
            }
        }
        self.kv.apply_batch(batch).map_err(backend)
    }

    async fn apply_if(
        &self,
        ns: &str,
        expect: &[Expect],
        writes: &[WriteOp],
        counts: &[CountOp],
    ) -> Result<Option<Vec<i64>>, StoreError> {
        let expect = expect
            .iter()
            .map(|e| Ok((full_key(ns, &e.bucket, &e.key)?, e.value.as_deref())))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let writes = writes
            .iter()
            .map(|w| {
                check_entry(&w.bucket, &w.key, w.value.as_deref())?;
                Ok((full_key(ns, &w.bucket, &w.key)?, w.value.as_deref()))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let counts = counts
            .iter()
            .map(|c| Ok((full_key(ns, &c.bucket, &c.key)?, c)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let out = self.kv.transaction(|tx| {
            let invalid = |e: StoreError| {
                ConflictableTransactionError::Abort(NotApplied::Invalid(e.to_string()))
            };
            for (k, value) in &expect {
                if tx.get(k.as_slice())?.as_deref() != *value {
                    return Err(ConflictableTransactionError::Abort(NotApplied::Unmet));
                }
            }
            for (k, value) in &writes {
                match value {
                    Some(v) => tx.insert(k.as_slice(), *v)?,
                    None => tx.remove(k.as_slice())?,
                };
            }
            let mut values = Vec::with_capacity(counts.len());
            for (k, c) in &counts {
                let current = tx.get(k.as_slice())?;
                let value = counter(current.as_deref(), &c.bucket, &c.key).map_err(invalid)?;
                let next = add(value, c.delta, &c.bucket, &c.key).map_err(invalid)?;
                tx.insert(k.as_slice(), next.to_string().as_bytes())?;
                values.push(next);
            }
            Ok(values)
        });
        match out {
            Ok(values) => Ok(Some(values)),
            Err(TransactionError::Abort(NotApplied::Unmet)) => Ok(None),
            Err(TransactionError::Abort(NotApplied::Invalid(m))) => Err(StoreError::Invalid(m)),
            Err(TransactionError::Storage(e)) => Err(backend(e)),
        }
    }

    async fn commit(&self) -> Result<(), StoreError> {
        self.commit.commit().await
    }
}

#[cfg(test)]
mod tests {
    use super::open_db;

    #[test]
    fn a_database_whose_lock_is_let_go_soon_opens() {
        let dir = tempfile::tempdir().unwrap();
        let held = open_db(dir.path()).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(held);
        });
        // Held for 300 ms by another handle: waited for, not refused.
        let db = open_db(dir.path()).unwrap();
        release.join().unwrap();
        drop(db);
    }
}
