//! Encrypted buckets: a [`KvStore`] that seals the values of a handler's
//! declared buckets on the way in and opens them on the way out, so that
//! the handler sees plain text and the disk holds only ciphertext.
//!
//! Keys stay readable (scans and prefixes work as before). Comparisons
//! (`compare_and_swap`, `apply_if`, counters) are of plain text: the value
//! is read and opened, compared, and the write is a compare-and-swap on the
//! exact stored bytes, retried if another writer got there first.

use super::keyring::{KeyRing, OpenError, SEAL_OVERHEAD, place};
use super::{CountOp, Expect, KvStore, MAX_SCAN, MAX_VALUE_LEN, StoreError, WriteOp};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Attempts at a read-compare-swap before giving up on a hot key.
const MAX_RETRIES: usize = 1000;

/// A handler's view of the store with some of its buckets encrypted.
pub struct SealedKv {
    inner: Arc<dyn KvStore>,
    keys: Arc<KeyRing>,
    buckets: Arc<[String]>,
}

impl SealedKv {
    /// `inner`, with the values of `buckets` sealed under `keys`.
    pub fn new(inner: Arc<dyn KvStore>, keys: Arc<KeyRing>, buckets: Arc<[String]>) -> Self {
        SealedKv {
            inner,
            keys,
            buckets,
        }
    }

    fn sealed(&self, bucket: &str) -> bool {
        self.buckets.iter().any(|b| b == bucket)
    }

    fn seal(&self, ns: &str, bucket: &str, key: &str, plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        if plain.len() > MAX_VALUE_LEN - SEAL_OVERHEAD {
            return Err(StoreError::Invalid(format!(
                "value is {} bytes; the limit in an encrypted bucket is {}",
                plain.len(),
                MAX_VALUE_LEN - SEAL_OVERHEAD
            )));
        }
        Ok(self.keys.seal(&place(ns, bucket, key), plain))
    }

    fn open(
        &self,
        ns: &str,
        bucket: &str,
        key: &str,
        stored: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        self.keys
            .open(&place(ns, bucket, key), stored)
            .map_err(|e| unopened(bucket, key, e))
    }

    /// The stored bytes and plain text at `key`.
    async fn read(&self, ns: &str, bucket: &str, key: &str) -> Result<Stored, StoreError> {
        let raw = self.inner.get(ns, bucket, key).await?;
        let plain = match &raw {
            Some(r) => Some(self.open(ns, bucket, key, r)?),
            None => None,
        };
        Ok(Stored { raw, plain })
    }

    /// Reads `key`, lets `decide` choose the new plain text (or refuse),
    /// and swaps it in if the stored bytes are still those read.
    async fn read_modify_write<T>(
        &self,
        ns: &str,
        bucket: &str,
        key: &str,
        mut decide: impl FnMut(Option<&[u8]>) -> Result<Decision<T>, StoreError>,
    ) -> Result<T, StoreError> {
        for _ in 0..MAX_RETRIES {
            let now = self.read(ns, bucket, key).await?;
            let (new, out) = match decide(now.plain.as_deref())? {
                Decision::Leave(out) => return Ok(out),
                Decision::Write(new, out) => (new, out),
            };
            let new = match new {
                Some(p) => Some(self.seal(ns, bucket, key, &p)?),
                None => None,
            };
            if self
                .inner
                .compare_and_swap(ns, bucket, key, now.raw.as_deref(), new.as_deref())
                .await?
            {
                return Ok(out);
            }
        }
        Err(contended(bucket, key))
    }
}

struct Stored {
    raw: Option<Vec<u8>>,
    plain: Option<Vec<u8>>,
}

enum Decision<T> {
    /// Change nothing; return this.
    Leave(T),
    /// Store this plain text (`None` deletes); return that.
    Write(Option<Vec<u8>>, T),
}

fn contended(bucket: &str, key: &str) -> StoreError {
    StoreError::Backend(format!(
        "`{bucket}/{key}` changed {MAX_RETRIES} times while being updated"
    ))
}

/// Why the value at `bucket/key` could not be opened.
fn unopened(bucket: &str, key: &str, e: OpenError) -> StoreError {
    StoreError::Backend(format!("encrypted `{bucket}/{key}` does not open: {e}"))
}

/// The decimal counter in `plain` (absent = 0) plus `delta`.
fn counted(plain: Option<&[u8]>, delta: i64, bucket: &str, key: &str) -> Result<i64, StoreError> {
    super::add(super::counter(plain, bucket, key)?, delta, bucket, key)
}

#[async_trait::async_trait]
impl KvStore for SealedKv {
    async fn get(&self, ns: &str, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.sealed(bucket) {
            return self.inner.get(ns, bucket, key).await;
        }
        Ok(self.read(ns, bucket, key).await?.plain)
    }

    async fn set(&self, ns: &str, bucket: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if !self.sealed(bucket) {
            return self.inner.set(ns, bucket, key, value).await;
        }
        let sealed = self.seal(ns, bucket, key, value)?;
        self.inner.set(ns, bucket, key, &sealed).await
    }

    async fn delete(&self, ns: &str, bucket: &str, key: &str) -> Result<bool, StoreError> {
        self.inner.delete(ns, bucket, key).await
    }

    async fn compare_and_swap(
        &self,
        ns: &str,
        bucket: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        if !self.sealed(bucket) {
            return self
                .inner
                .compare_and_swap(ns, bucket, key, expected, new)
                .await;
        }
        self.read_modify_write(ns, bucket, key, |now| {
            Ok(if now == expected {
                Decision::Write(new.map(<[u8]>::to_vec), true)
            } else {
                Decision::Leave(false)
            })
        })
        .await
    }

    async fn scan(
        &self,
        ns: &str,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let found = self
            .inner
            .scan(ns, bucket, prefix, start_after, limit)
            .await?;
        if !self.sealed(bucket) {
            return Ok(found);
        }
        found
            .into_iter()
            .map(|(k, v)| {
                let plain = self.open(ns, bucket, &k, &v)?;
                Ok((k, plain))
            })
            .collect()
    }

    async fn increment(
        &self,
        ns: &str,
        bucket: &str,
        key: &str,
        delta: i64,
    ) -> Result<i64, StoreError> {
        if !self.sealed(bucket) {
            return self.inner.increment(ns, bucket, key, delta).await;
        }
        self.read_modify_write(ns, bucket, key, |now| {
            let n = counted(now, delta, bucket, key)?;
            Ok(Decision::Write(Some(n.to_string().into_bytes()), n))
        })
        .await
    }

    async fn apply(&self, ns: &str, ops: &[WriteOp]) -> Result<(), StoreError> {
        let ops = ops
            .iter()
            .map(|o| self.sealed_write(ns, o))
            .collect::<Result<Vec<_>, _>>()?;
        self.inner.apply(ns, &ops).await
    }

    async fn apply_if(
        &self,
        ns: &str,
        expect: &[Expect],
        writes: &[WriteOp],
        counts: &[CountOp],
    ) -> Result<Option<Vec<i64>>, StoreError> {
        if !expect
            .iter()
            .map(|e| &e.bucket)
            .chain(writes.iter().map(|w| &w.bucket))
            .chain(counts.iter().map(|c| &c.bucket))
            .any(|b| self.sealed(b))
        {
            return self.inner.apply_if(ns, expect, writes, counts).await;
        }
        for _ in 0..MAX_RETRIES {
            match self.try_apply_if(ns, expect, writes, counts).await? {
                Attempt::Done(result) => return Ok(result),
                Attempt::Raced => continue,
            }
        }
        Err(StoreError::Backend(format!(
            "an encrypted apply-if raced other writers {MAX_RETRIES} times"
        )))
    }

    async fn commit(&self) -> Result<(), StoreError> {
        self.inner.commit().await
    }
}

enum Attempt {
    Done(Option<Vec<i64>>),
    /// An encrypted key changed between the read and the write.
    Raced,
}

impl SealedKv {
    fn sealed_write(&self, ns: &str, o: &WriteOp) -> Result<WriteOp, StoreError> {
        let value = match &o.value {
            Some(v) if self.sealed(&o.bucket) => Some(self.seal(ns, &o.bucket, &o.key, v)?),
            other => other.clone(),
        };
        Ok(WriteOp {
            bucket: o.bucket.clone(),
            key: o.key.clone(),
            value,
        })
    }

    /// The plain text at `key` if this is its first read in `read`, where
    /// its stored bytes are noted; `None` when it was read before.
    async fn load(
        &self,
        ns: &str,
        bucket: &str,
        key: &str,
        read: &mut BTreeMap<(String, String), Option<Vec<u8>>>,
    ) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        let at = (bucket.to_string(), key.to_string());
        if read.contains_key(&at) {
            return Ok(None);
        }
        let now = self.read(ns, bucket, key).await?;
        read.insert(at, now.raw);
        Ok(Some(now.plain))
    }

    /// One try: plain-text expectations and encrypted counters become
    /// expectations of the exact stored bytes, checked by the inner store.
    async fn try_apply_if(
        &self,
        ns: &str,
        expect: &[Expect],
        writes: &[WriteOp],
        counts: &[CountOp],
    ) -> Result<Attempt, StoreError> {
        // The stored bytes read, per encrypted key, and its plain text as
        // the batch leaves it.
        let mut read: BTreeMap<(String, String), Option<Vec<u8>>> = BTreeMap::new();
        let mut state: BTreeMap<(String, String), Option<Vec<u8>>> = BTreeMap::new();
        let mut written: Vec<(String, String)> = Vec::new();
        let mut inner_expect = Vec::new();
        for e in expect {
            if !self.sealed(&e.bucket) {
                inner_expect.push(e.clone());
                continue;
            }
            let at = (e.bucket.clone(), e.key.clone());
            let plain = match self.load(ns, &e.bucket, &e.key, &mut read).await? {
                Some(p) => {
                    state.insert(at.clone(), p.clone());
                    p
                }
                None => state.get(&at).cloned().flatten(),
            };
            if plain != e.value {
                return Ok(Attempt::Done(None));
            }
        }
        let mut inner_writes = Vec::new();
        for w in writes {
            if !self.sealed(&w.bucket) {
                inner_writes.push(w.clone());
                continue;
            }
            let at = (w.bucket.clone(), w.key.clone());
            state.insert(at.clone(), w.value.clone());
            written.push(at);
        }
        // Results: `Ok(n)` for an encrypted counter, `Err(i)` for the i-th
        // counter the inner store changes.
        let mut results: Vec<Result<i64, usize>> = Vec::with_capacity(counts.len());
        let mut inner_counts = Vec::new();
        for c in counts {
            if !self.sealed(&c.bucket) {
                results.push(Err(inner_counts.len()));
                inner_counts.push(c.clone());
                continue;
            }
            let at = (c.bucket.clone(), c.key.clone());
            if let Some(p) = self.load(ns, &c.bucket, &c.key, &mut read).await?
                && !state.contains_key(&at)
            {
                state.insert(at.clone(), p);
            }
            let n = counted(
                state.get(&at).and_then(|p| p.as_deref()),
                c.delta,
                &c.bucket,
                &c.key,
            )?;
            state.insert(at.clone(), Some(n.to_string().into_bytes()));
            written.push(at);
            results.push(Ok(n));
        }
        for ((bucket, key), raw) in &read {
            inner_expect.push(Expect {
                bucket: bucket.clone(),
                key: key.clone(),
                value: raw.clone(),
            });
        }
        written.sort();
        written.dedup();
        for (bucket, key) in written {
            let value = match state.remove(&(bucket.clone(), key.clone())).flatten() {
                Some(p) => Some(self.seal(ns, &bucket, &key, &p)?),
                None => None,
            };
            inner_writes.push(WriteOp { bucket, key, value });
        }
        match self
            .inner
            .apply_if(ns, &inner_expect, &inner_writes, &inner_counts)
            .await?
        {
            Some(inner_results) => Ok(Attempt::Done(Some(
                results
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|i| inner_results[i]))
                    .collect(),
            ))),
            None => {
                // A plain expectation failed, or an encrypted key moved
                // since it was read: only the second is worth another try.
                for ((bucket, key), raw) in &read {
                    if self.inner.get(ns, bucket, key).await? != *raw {
                        return Ok(Attempt::Raced);
                    }
                }
                Ok(Attempt::Done(None))
            }
        }
    }
}

/// What bringing a bucket in line with the manifest changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resealed {
    /// Plain values now sealed.
    pub sealed: usize,
    /// Values sealed under a previous key, now under the current one.
    pub rekeyed: usize,
    /// Sealed values now plain (the bucket is no longer declared encrypted).
    pub opened: usize,
}

/// Seals every value of `bucket` under the current key: plain ones (data
/// from before the bucket was declared encrypted) and those of previous
/// keys. A value sealed under a key the ring lacks stops it with an error
/// naming that key's id.
pub async fn reseal(
    store: &dyn KvStore,
    keys: &KeyRing,
    ns: &str,
    bucket: &str,
) -> Result<Resealed, StoreError> {
    rewrite_all(store, ns, bucket, |key, stored| {
        if keys.sealed_by_current(stored) {
            return Ok(None);
        }
        let (plain, count): (Vec<u8>, fn(&mut Resealed)) =
            match keys.open(&place(ns, bucket, key), stored) {
                Ok(p) => (p, |d| d.rekeyed += 1),
                Err(OpenError::NotSealed) => (stored.to_vec(), |d| d.sealed += 1),
                Err(e) => return Err(unopened(bucket, key, e)),
            };
        Ok(Some((keys.seal(&place(ns, bucket, key), &plain), count)))
    })
    .await
}

/// Opens every sealed value of `bucket` for good (it is no longer declared
/// encrypted).
pub async fn unseal(
    store: &dyn KvStore,
    keys: &KeyRing,
    ns: &str,
    bucket: &str,
) -> Result<Resealed, StoreError> {
    rewrite_all(store, ns, bucket, |key, stored| {
        match keys.open(&place(ns, bucket, key), stored) {
            Ok(plain) => Ok(Some((plain, |d: &mut Resealed| d.opened += 1))),
            Err(OpenError::NotSealed) => Ok(None),
            Err(e) => Err(unopened(bucket, key, e)),
        }
    })
    .await
}

/// A rewrite of one value, and what it counts as once swapped in.
type Rewrite = Option<(Vec<u8>, fn(&mut Resealed))>;

/// Passes every value of `bucket` to `change` and swaps in what it returns
/// (`None`: leave it), page by page; a value changed meanwhile is read
/// again. Counts each swap that took.
async fn rewrite_all(
    store: &dyn KvStore,
    ns: &str,
    bucket: &str,
    mut change: impl FnMut(&str, &[u8]) -> Result<Rewrite, StoreError>,
) -> Result<Resealed, StoreError> {
    let mut done = Resealed::default();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .scan(ns, bucket, "", after.as_deref(), MAX_SCAN)
            .await?;
        let Some((last, _)) = page.last() else {
            return Ok(done);
        };
        after = Some(last.clone());
        for (key, stored) in page {
            let mut stored = Some(stored);
            for attempt in 0.. {
                let Some(now) = stored else { break };
                let Some((new, count)) = change(&key, &now)? else {
                    break;
                };
                if store
                    .compare_and_swap(ns, bucket, &key, Some(&now), Some(&new))
                    .await?
                {
                    count(&mut done);
                    break;
                }
                if attempt == MAX_RETRIES {
                    return Err(contended(bucket, &key));
                }
                stored = store.get(ns, bucket, &key).await?;
            }
        }
    }
}

/// The namespace that records which buckets of which handler are sealed
/// (bucket = the handler, key = the bucket); `:` is never in a handler name.
const SEALED_RECORD: &str = "baton:sealed";

/// Where [`sync_buckets`] notes that values were sealed or re-keyed, so
/// that their earlier forms must be scrubbed from the backend's log.
const SCRUB: (&str, &str) = ("baton:scrub", "pending");

/// Whether sealed or re-keyed values await a scrub of the backend's log
/// (for sled: [`super::sled_rewrite::rewrite`] at start).
pub async fn scrub_pending(store: &dyn KvStore) -> Result<bool, StoreError> {
    Ok(store.get(SEALED_RECORD, SCRUB.0, SCRUB.1).await?.is_some())
}

/// Records that the scrub is done.
pub async fn scrub_done(store: &dyn KvStore) -> Result<(), StoreError> {
    store.delete(SEALED_RECORD, SCRUB.0, SCRUB.1).await?;
    store.commit().await
}

/// Brings `handler`'s buckets in line with its `declared` encrypted ones:
/// each declared bucket is sealed under the current key (plain values and
/// those of previous keys), and a bucket sealed before but no longer
/// declared is opened. Returns what changed, per bucket.
pub async fn sync_buckets(
    store: &dyn KvStore,
    keys: &KeyRing,
    handler: &str,
    declared: &[String],
) -> Result<Vec<(String, Resealed)>, StoreError> {
    let mut changed = Vec::new();
    let recorded: Vec<String> = store
        .scan(SEALED_RECORD, handler, "", None, MAX_SCAN)
        .await?
        .into_iter()
        .map(|(bucket, _)| bucket)
        .collect();
    let mut wrote = false;
    for bucket in declared {
        let done = reseal(store, keys, handler, bucket).await?;
        if !recorded.contains(bucket) {
            store.set(SEALED_RECORD, handler, bucket, b"1").await?;
            wrote = true;
        }
        if done.sealed + done.rekeyed > 0 {
            // Earlier forms of these values are still in the backend's log.
            store.set(SEALED_RECORD, SCRUB.0, SCRUB.1, b"1").await?;
        }
        if done != Resealed::default() {
            wrote = true;
            changed.push((bucket.clone(), done));
        }
    }
    for bucket in recorded {
        if declared.contains(&bucket) {
            continue;
        }
        let done = unseal(store, keys, handler, &bucket).await?;
        store.delete(SEALED_RECORD, handler, &bucket).await?;
        wrote = true;
        changed.push((bucket, done));
    }
    if wrote {
        store.commit().await?;
    }
    Ok(changed)
}

#[cfg(test)]
#[path = "sealed_tests.rs"]
mod tests;
