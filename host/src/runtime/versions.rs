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
        self.db.flush()?;
        Ok(())
    }
}
