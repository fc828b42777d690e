//! Every version of every handler, kept on the storage floor so that
//! rollback and restarts need no file: the component bytes by sha256, each
//! handler's deploy history, and the version it serves now (namespace
//! [`VERSIONS_NS`]).

use crate::store::{KvStore, StoreError, WriteOp};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;

/// The store namespace of handler versions (`:` keeps handlers out).
pub const VERSIONS_NS: &str = "baton:versions";
/// Component bytes: `{sha256}/{part:05}` → up to [`BLOB_PART`] bytes.
const BLOBS: &str = "blobs";
/// The parts of each stored component: sha256 → how many (decimal).
const BLOB_PARTS: &str = "blob-parts";
/// Deploys: `{handler}/{seq:020}` → [`Deploy`] as JSON, in deploy order.
const HISTORY: &str = "history";
/// What each handler serves: name → [`Current`] as JSON.
const CURRENT: &str = "current";
/// The deploy counter: bucket and key.
const SEQ: (&str, &str) = ("seq", "deploys");
/// The largest part of a component's bytes (a value must stay under the
/// store's limit).
pub const BLOB_PART: usize = 4 * 1024 * 1024;

/// How a version arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The manifest's `wasm` (file or builtin).
    Manifest,
    /// `PUT /admin/v1/handlers/{name}` (or `baton deploy`).
    Admin,
    /// A changed file in a watched directory.
    Watch,
    /// A rollback to an earlier version.
    Rollback,
}

/// One deploy of a handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deploy {
    /// The version deployed.
    pub sha256: String,
    /// Its size in bytes.
    pub size: usize,
    /// Milliseconds since the epoch.
    pub at_ms: u64,
    /// How it arrived.
    pub source: Source,
}

/// What a handler serves now, and which manifest bytes it was deployed over
/// (a changed manifest file wins over earlier deploys at the next start).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Current {
    /// The version served.
    pub sha256: String,
    /// The sha256 of the manifest's component when this was recorded.
    pub manifest_sha256: String,
}

/// The handler versions in a store.
#[derive(Clone)]
pub struct VersionStore {
    store: Arc<dyn KvStore>,
}

/// Deploys kept per handler: rollback can reach any of them; older deploys
/// and the component bytes no kept deploy names are deleted, so a handler
/// swapped thousands of times keeps a bounded store (and cache).
pub const KEPT_DEPLOYS: usize = 20;

/// The history key of deploy `seq` of `name`.
pub fn history_key(name: &str, seq: i64) -> String {
    format!("{name}/{seq:020}")
}

/// The key of part `i` of the bytes of `sha256`.
pub fn blob_key(sha256: &str, i: usize) -> String {
    format!("{sha256}/{i:05}")
}

fn corrupt(what: &str, key: &str) -> StoreError {
    StoreError::Backend(format!("the stored {what} `{key}` does not decode"))
}

impl VersionStore {
    /// The versions kept in `store`.
    pub fn new(store: Arc<dyn KvStore>) -> Self {
        VersionStore { store }
    }

    /// Every entry of `bucket` whose key starts with `prefix`.
    async fn scan_all(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        crate::store::scan_all(self.store.as_ref(), VERSIONS_NS, bucket, prefix).await
    }

    /// The bytes of version `sha256`.
    pub async fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(parts) = self.store.get(VERSIONS_NS, BLOB_PARTS, sha256).await? else {
            return Ok(None);
        };
        let parts: usize = std::str::from_utf8(&parts)
            .ok()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| corrupt("part count", sha256))?;
        let mut bytes = Vec::new();
        for i in 0..parts {
            let key = blob_key(sha256, i);
            let part = self
                .store
                .get(VERSIONS_NS, BLOBS, &key)
                .await?
                .ok_or_else(|| corrupt("component part", &key))?;
            bytes.extend_from_slice(&part);
        }
        Ok(Some(bytes))
    }

    /// What `name` serves now.
    pub async fn current(&self, name: &str) -> Result<Option<Current>, StoreError> {
        Ok(self
            .store
            .get(VERSIONS_NS, CURRENT, name)
            .await?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// The deploys of `name`, oldest first.
    pub async fn history(&self, name: &str) -> Result<Vec<Deploy>, StoreError> {
        self.scan_all(HISTORY, &format!("{name}/"))
            .await?
            .into_iter()
            .map(|(k, v)| serde_json::from_slice(&v).map_err(|_| corrupt("deploy", &k)))
            .collect()
    }

    /// Records that `name` now serves `bytes` (stored if new), durably:
    /// the bytes, the deploy and the current version in one atomic write.
    pub async fn record(
        &self,
        name: &str,
        bytes: &[u8],
        sha256: &str,
        source: Source,
        manifest_sha256: &str,
    ) -> Result<(), StoreError> {
        let seq = self.store.increment(VERSIONS_NS, SEQ.0, SEQ.1, 1).await?;
        let deploy = Deploy {
            sha256: sha256.to_string(),
            size: bytes.len(),
            at_ms: crate::jobs::model::now_ms(),
            source,
        };
        let current = Current {
            sha256: sha256.to_string(),
            manifest_sha256: manifest_sha256.to_string(),
        };
        let write = |bucket: &str, key: String, value: Vec<u8>| WriteOp {
            bucket: bucket.to_string(),
            key,
            value: Some(value),
        };
        let mut ops = Vec::new();
        if self
            .store
            .get(VERSIONS_NS, BLOB_PARTS, sha256)
            .await?
            .is_none()
        {
            let parts: Vec<&[u8]> = if bytes.is_empty() {
                vec![&[]]
            } else {
                bytes.chunks(BLOB_PART).collect()
            };
            for (i, part) in parts.iter().enumerate() {
                ops.push(write(BLOBS, blob_key(sha256, i), part.to_vec()));
            }
            ops.push(write(
                BLOB_PARTS,
                sha256.to_string(),
                parts.len().to_string().into_bytes(),
            ));
        }
        ops.push(write(
            HISTORY,
            history_key(name, seq),
            serde_json::to_vec(&deploy).expect("serialises"),
        ));
        ops.push(write(
            CURRENT,
            name.to_string(),
            serde_json::to_vec(&current).expect("serialises"),
        ));
        self.store.apply(VERSIONS_NS, &ops).await?;
        self.prune(name).await?;
        self.store.commit().await
    }

    /// Drops `name`'s deploys beyond the newest [`KEPT_DEPLOYS`], then every
    /// component that no kept deploy and no current version of any handler
    /// names.
    async fn prune(&self, name: &str) -> Result<(), StoreError> {
        let deploys = self.scan_all(HISTORY, &format!("{name}/")).await?;
        let excess = deploys.len().saturating_sub(KEPT_DEPLOYS);
        if excess == 0 {
            return Ok(());
        }
        for (key, _) in &deploys[..excess] {
            self.store.delete(VERSIONS_NS, HISTORY, key).await?;
        }
        let mut named = HashSet::new();
        for (_, v) in self.scan_all(HISTORY, "").await? {
            if let Ok(d) = serde_json::from_slice::<Deploy>(&v) {
                named.insert(d.sha256);
            }
        }
        for (_, v) in self.scan_all(CURRENT, "").await? {
            if let Ok(c) = serde_json::from_slice::<Current>(&v) {
                named.insert(c.sha256);
            }
        }
        for (sha, parts) in self.scan_all(BLOB_PARTS, "").await? {
            if named.contains(&sha) {
                continue;
            }
            let parts: usize = std::str::from_utf8(&parts)
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let mut ops: Vec<WriteOp> = (0..parts)
                .map(|i| WriteOp {
                    bucket: BLOBS.into(),
                    key: blob_key(&sha, i),
                    value: None,
                })
                .collect();
            ops.push(WriteOp {
                bucket: BLOB_PARTS.into(),
                key: sha,
                value: None,
            });
            self.store.apply(VERSIONS_NS, &ops).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn record(store: &VersionStore, name: &str, bytes: &[u8]) -> String {
        let sha = crate::runtime::version_of(bytes);
        store
            .record(name, bytes, &sha, Source::Admin, "")
            .await
            .unwrap();
        sha
    }

    fn open(dir: &std::path::Path) -> VersionStore {
        VersionStore::new(Arc::new(crate::store::SledStore::open(dir).unwrap()))
    }

    #[tokio::test]
    async fn components_larger_than_a_part_come_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let big: Vec<u8> = (0..BLOB_PART * 2 + 17).map(|i| (i % 251) as u8).collect();
        let sha = record(&store, "a", &big).await;
        assert_eq!(store.blob(&sha).await.unwrap().unwrap(), big);
        assert_eq!(store.current("a").await.unwrap().unwrap().sha256, sha);
        assert!(store.blob("nope").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn old_deploys_and_the_bytes_only_they_named_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let shared = record(&store, "other", b"shared").await;
        let first = record(&store, "a", b"shared").await;
        assert_eq!(first, shared);
        let mut shas = vec![first];
        for i in 0..KEPT_DEPLOYS + 5 {
            shas.push(record(&store, "a", format!("v{i}").as_bytes()).await);
        }
        let history = store.history("a").await.unwrap();
        assert_eq!(history.len(), KEPT_DEPLOYS);
        assert_eq!(history.last().unwrap().sha256, *shas.last().unwrap());
        assert_eq!(
            store.current("a").await.unwrap().unwrap().sha256,
            *shas.last().unwrap()
        );
        // The oldest of `a` are gone, bytes included, but what another
        // handler still names stays.
        assert!(store.blob(&shas[1]).await.unwrap().is_none());
        assert!(store.blob(&shared).await.unwrap().is_some());
        for kept in &history {
            assert!(
                store.blob(&kept.sha256).await.unwrap().is_some(),
                "{}",
                kept.sha256
            );
        }
        assert_eq!(store.history("other").await.unwrap().len(), 1);
    }
}
