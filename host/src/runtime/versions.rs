//! Every version of every handler, kept in sled so that rollback and
//! restarts need no file: the component bytes by sha256, each handler's
//! deploy history, and the version it serves now.

use serde::{Deserialize, Serialize};
use sled::Transactional;

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

/// The handler-version trees.
#[derive(Clone)]
pub struct VersionStore {
    db: sled::Db,
    blobs: sled::Tree,
    history: sled::Tree,
    current: sled::Tree,
}

/// Deploys kept per handler: rollback can reach any of them; older deploys
/// and the component bytes no kept deploy names are deleted, so a handler
/// swapped thousands of times keeps a bounded store (and cache).
pub const KEPT_DEPLOYS: usize = 20;

fn history_key(name: &str, seq: u64) -> Vec<u8> {
    let mut k = name.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

impl VersionStore {
    /// Opens the trees in `db`.
    pub fn open(db: &sled::Db) -> sled::Result<Self> {
        Ok(VersionStore {
            db: db.clone(),
            blobs: db.open_tree("handler-blobs")?,
            history: db.open_tree("handler-history")?,
            current: db.open_tree("handler-current")?,
        })
    }

    /// The bytes of version `sha256`.
    pub fn blob(&self, sha256: &str) -> sled::Result<Option<Vec<u8>>> {
        Ok(self.blobs.get(sha256.as_bytes())?.map(|v| v.to_vec()))
    }

    /// What `name` serves now.
    pub fn current(&self, name: &str) -> sled::Result<Option<Current>> {
        Ok(self
            .current
            .get(name.as_bytes())?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// The deploys of `name`, oldest first.
    pub fn history(&self, name: &str) -> sled::Result<Vec<Deploy>> {
        let mut prefix = name.as_bytes().to_vec();
        prefix.push(0);
        self.history
            .scan_prefix(prefix)
            .values()
            .map(|v| v.map(|v| serde_json::from_slice(&v).expect("deploy records decode")))
            .collect()
    }

    /// Records that `name` now serves `bytes` (stored if new), durably.
    pub fn record(
        &self,
        name: &str,
        bytes: &[u8],
        sha256: &str,
        source: Source,
        manifest_sha256: &str,
    ) -> sled::Result<()> {
        let seq = self.db.generate_id()?;
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
        let deploy = serde_json::to_vec(&deploy).expect("serialises");
        let current = serde_json::to_vec(&current).expect("serialises");
        (&self.blobs, &self.history, &self.current)
            .transaction(|(b, h, c)| {
                if b.get(sha256.as_bytes())?.is_none() {
                    b.insert(sha256.as_bytes(), bytes)?;
                }
                h.insert(history_key(name, seq), deploy.clone())?;
                c.insert(name.as_bytes(), current.clone())?;
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => e,
                sled::transaction::TransactionError::Abort(()) => {
                    sled::Error::Unsupported("aborted".into())
                }
            })?;
        self.prune(name)?;
        self.db.flush()?;
        Ok(())
    }

    /// Drops `name`'s deploys beyond the newest [`KEPT_DEPLOYS`], then every
    /// blob that no kept deploy and no current version of any handler names.
    fn prune(&self, name: &str) -> sled::Result<()> {
        let mut prefix = name.as_bytes().to_vec();
        prefix.push(0);
        let keys: Vec<sled::IVec> = self
            .history
            .scan_prefix(&prefix)
            .keys()
            .collect::<Result<_, _>>()?;
        let excess = keys.len().saturating_sub(KEPT_DEPLOYS);
        if excess == 0 {
            return Ok(());
        }
        for key in &keys[..excess] {
            self.history.remove(key)?;
        }
        let mut named = std::collections::HashSet::new();
        for v in self.history.iter().values() {
            if let Ok(d) = serde_json::from_slice::<Deploy>(&v?) {
                named.insert(d.sha256);
            }
        }
        for v in self.current.iter().values() {
            if let Ok(c) = serde_json::from_slice::<Current>(&v?) {
                named.insert(c.sha256);
            }
        }
        for key in self.blobs.iter().keys() {
            let key = key?;
            if !named.contains(std::str::from_utf8(&key).unwrap_or_default()) {
                self.blobs.remove(key)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(store: &VersionStore, name: &str, bytes: &[u8]) -> String {
        let sha = crate::runtime::version_of(bytes);
        store.record(name, bytes, &sha, Source::Admin, "").unwrap();
        sha
    }

    #[test]
    fn old_deploys_and_the_bytes_only_they_named_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = VersionStore::open(&sled::open(dir.path()).unwrap()).unwrap();
        let shared = record(&store, "other", b"shared");
        let first = record(&store, "a", b"shared");
        assert_eq!(first, shared);
        let mut shas = vec![first];
        for i in 0..KEPT_DEPLOYS + 5 {
            shas.push(record(&store, "a", format!("v{i}").as_bytes()));
        }
        let history = store.history("a").unwrap();
        assert_eq!(history.len(), KEPT_DEPLOYS);
        assert_eq!(history.last().unwrap().sha256, *shas.last().unwrap());
        assert_eq!(
            store.current("a").unwrap().unwrap().sha256,
            *shas.last().unwrap()
        );
        // The oldest of `a` are gone, bytes included, but what another
        // handler still names stays.
        assert!(store.blob(&shas[1]).unwrap().is_none());
        assert!(store.blob(&shared).unwrap().is_some());
        for kept in &history {
            assert!(
                store.blob(&kept.sha256).unwrap().is_some(),
                "{}",
                kept.sha256
            );
        }
        assert_eq!(store.history("other").unwrap().len(), 1);
    }
}
