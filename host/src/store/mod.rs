//! Storage behind traits, so that a networked backend can replace sled:
//! [`KvStore`] for handler data (keys live in namespaces, one per handler,
//! and buckets inside them), [`JobStore`] for the job engine, and
//! [`GroupCommit`], through which concurrent writers share a flush;
//! two backends: [`SledStore`] (embedded, the default) and [`PgStore`]
//! (PostgreSQL, shared by replicas);
//! [`sealed`] encrypts declared buckets on top of any [`KvStore`].

pub mod commit;
pub mod floor;
pub mod jobs;
pub mod keyring;
pub mod postgres;
pub mod sealed;
mod sled_jobs;
mod sled_legacy;
pub mod sled_rewrite;
mod sled_store;

pub use commit::GroupCommit;
pub use floor::Floor;
pub use jobs::{
    Adopted, GraphChange, JobChange, JobFilter, JobStore, JobStoreError, NewEvents, RunLimits,
    Started,
};
pub use keyring::KeyRing;
pub use postgres::{PgJobStore, PgStore};
pub use sled_jobs::SledJobStore;
pub use sled_store::SledStore;

/// Longest bucket name, in bytes.
pub const MAX_BUCKET_LEN: usize = 128;
/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;
/// Largest value, in bytes.
pub const MAX_VALUE_LEN: usize = 8 * 1024 * 1024;
/// Most entries one scan returns.
pub const MAX_SCAN: usize = 1000;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The caller's arguments are unusable; the message says why.
    #[error("{0}")]
    Invalid(String),
    /// The backend cannot be reached now (a database that is down or
    /// restarting); trying later may succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The backend failed.
    #[error("storage backend: {0}")]
    Backend(String),
}

/// One write of an atomic batch; `value = None` deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOp {
    /// The bucket written.
    pub bucket: String,
    /// The key written.
    pub key: String,
    /// The new value, or `None` to delete.
    pub value: Option<Vec<u8>>,
}

/// A condition of [`KvStore::apply_if`]: `key` holds exactly `value`
/// (`None` = absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// The bucket read.
    pub bucket: String,
    /// The key read.
    pub key: String,
    /// The value it must hold, or `None` for absent.
    pub value: Option<Vec<u8>>,
}

/// A counter change of [`KvStore::apply_if`], as [`KvStore::increment`] makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountOp {
    /// The bucket of the counter.
    pub bucket: String,
    /// The counter's key.
    pub key: String,
    /// What is added.
    pub delta: i64,
}

/// Namespaced key-value storage. Every method is atomic on its own.
///
/// Async so that a networked backend fits; the embedded one answers
/// without waiting (its writes land in memory and become durable at
/// [`KvStore::commit`]).
#[async_trait::async_trait]
pub trait KvStore: Send + Sync + 'static {
    /// The value at `key`.
    async fn get(&self, ns: &str, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores `value` at `key`.
    async fn set(&self, ns: &str, bucket: &str, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Deletes `key`; returns whether it existed.
    async fn delete(&self, ns: &str, bucket: &str, key: &str) -> Result<bool, StoreError>;
    /// Writes `new` (deletes on `None`) only if the value is `expected`
    /// (`None` = absent); returns whether it did.
    async fn compare_and_swap(
        &self,
        ns: &str,
        bucket: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StoreError>;
    /// Up to `limit` (capped at [`MAX_SCAN`]) entries whose key starts with
    /// `prefix`, in byte order, strictly after `start_after` when given.
    async fn scan(
        &self,
        ns: &str,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Adds `delta` to the decimal counter at `key` (absent = 0); returns the new value.
    async fn increment(
        &self,
        ns: &str,
        bucket: &str,
        key: &str,
        delta: i64,
    ) -> Result<i64, StoreError>;
    /// Applies every write or none.
    async fn apply(&self, ns: &str, ops: &[WriteOp]) -> Result<(), StoreError>;
    /// If every `expect` holds, applies `writes` and then `counts`, all
    /// atomically, and returns the counters' new values in order; if one
    /// does not hold, changes nothing and returns `None`.
    async fn apply_if(
        &self,
        ns: &str,
        expect: &[Expect],
        writes: &[WriteOp],
        counts: &[CountOp],
    ) -> Result<Option<Vec<i64>>, StoreError>;
    /// Returns once every write made before the call is durable (survives
    /// `kill -9` and power loss); concurrent callers share one flush.
    async fn commit(&self) -> Result<(), StoreError>;
}

/// Every entry of `bucket` in `ns` whose key starts with `prefix`, in key
/// order, read [`MAX_SCAN`] at a time.
pub async fn scan_all(
    store: &dyn KvStore,
    ns: &str,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    loop {
        let after = out.last().map(|(k, _)| k.as_str());
        let page = store.scan(ns, bucket, prefix, after, MAX_SCAN).await?;
        let full = page.len() == MAX_SCAN;
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

/// The value at `key`, or the one `make` builds, stored now if `key` is
/// still absent: processes that start together agree on the first value
/// written (compare-and-swap), and `make` runs only when nothing is stored.
pub async fn create_once<E: From<StoreError>>(
    store: &dyn KvStore,
    ns: &str,
    bucket: &str,
    key: &str,
    make: impl FnOnce() -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, E> {
    if let Some(stored) = store.get(ns, bucket, key).await? {
        return Ok(stored);
    }
    let fresh = make()?;
    if store
        .compare_and_swap(ns, bucket, key, None, Some(&fresh))
        .await?
    {
        store.commit().await?;
        tracing::info!(namespace = ns, bucket, key, "created in the shared store");
        return Ok(fresh);
    }
    // Another process wrote first: its value stands.
    Ok(store.get(ns, bucket, key).await?.ok_or_else(|| {
        StoreError::Backend(format!(
            "`{ns}/{bucket}/{key}` was created and then removed"
        ))
    })?)
}

/// Checks a namespace (a handler's name, or a host-owned one with `:`).
pub fn check_ns(ns: &str) -> Result<(), StoreError> {
    if ns.is_empty() || ns.contains('\0') {
        return Err(StoreError::Invalid(format!("bad namespace `{ns}`")));
    }
    Ok(())
}

/// Checks a bucket name, key and optional value against the limits.
pub fn check_entry(bucket: &str, key: &str, value: Option<&[u8]>) -> Result<(), StoreError> {
    if bucket.is_empty() || bucket.len() > MAX_BUCKET_LEN || bucket.contains('\0') {
        return Err(StoreError::Invalid(format!(
            "bucket name must be 1..={MAX_BUCKET_LEN} bytes without NUL (got {} bytes)",
            bucket.len()
        )));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(StoreError::Invalid(format!(
            "key is {} bytes; the limit is {MAX_KEY_LEN}",
            key.len()
        )));
    }
    if let Some(v) = value
        && v.len() > MAX_VALUE_LEN
    {
        return Err(StoreError::Invalid(format!(
            "value is {} bytes; the limit is {MAX_VALUE_LEN}",
            v.len()
        )));
    }
    Ok(())
}

/// The decimal counter in `bytes` (absent = 0), as `increment` keeps it.
pub fn counter(bytes: Option<&[u8]>, bucket: &str, key: &str) -> Result<i64, StoreError> {
    match bytes {
        None => Ok(0),
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| {
                StoreError::Invalid(format!("`{bucket}/{key}` does not hold a decimal counter"))
            }),
    }
}

/// `value + delta`, or why a 64-bit counter cannot hold it.
pub fn add(value: i64, delta: i64, bucket: &str, key: &str) -> Result<i64, StoreError> {
    value.checked_add(delta).ok_or_else(|| {
        StoreError::Invalid(format!("`{bucket}/{key}` would overflow a 64-bit counter"))
    })
}
