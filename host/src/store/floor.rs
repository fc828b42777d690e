//! The storage floor a server runs on: one backend for every concern,
//! chosen by `[storage] url` (or `BATON_STORAGE_URL`): none is the
//! embedded sled database in the data directory; `postgres://…` is a
//! PostgreSQL database that any number of replicas share.

use super::postgres::Membership;
use super::{JobStore, KvStore, PgStore, SledStore, StoreError};
use std::path::Path;
use std::sync::Arc;

/// The environment variable that overrides `[storage] url`.
pub const STORAGE_URL_ENV: &str = "BATON_STORAGE_URL";

/// The backend state is kept in.
#[derive(Clone)]
pub enum Floor {
    /// sled in the data directory (the default).
    Sled(Arc<SledStore>),
    /// A PostgreSQL database.
    Postgres(PgStore),
}

/// The storage url in force: the environment's, else the manifest's.
pub fn configured_url(manifest_url: Option<&str>) -> Option<String> {
    match std::env::var(STORAGE_URL_ENV) {
        Ok(u) if !u.trim().is_empty() => Some(u.trim().to_string()),
        _ => manifest_url.map(str::to_string),
    }
}

impl Floor {
    /// Opens the floor: PostgreSQL at `url` with a pool of `pool_size`
    /// (waiting, with backoff, while it cannot be reached), or sled in `dir`.
    pub async fn open(
        url: Option<&str>,
        pool_size: Option<u32>,
        dir: &Path,
    ) -> Result<Floor, StoreError> {
        match url {
            Some(url) => Ok(Floor::Postgres(
                PgStore::connect_with(url, pool_size.unwrap_or(super::postgres::DEFAULT_POOL_SIZE))
                    .await?,
            )),
            None => Ok(Floor::Sled(Arc::new(SledStore::open(dir)?))),
        }
    }

    /// Handler data (and every host concern kept as kv).
    pub fn kv(&self) -> Arc<dyn KvStore> {
        match self {
            Floor::Sled(s) => s.clone(),
            Floor::Postgres(p) => Arc::new(p.clone()),
        }
    }

    /// The job engine's records, for `replica` on a shared floor.
    pub fn jobs(&self, replica: Option<&Membership>) -> Result<Arc<dyn JobStore>, StoreError> {
        Ok(match self {
            Floor::Sled(s) => Arc::new(s.job_store()?),
            Floor::Postgres(p) => Arc::new(p.job_store(replica)),
        })
    }

    /// Where the state is, for logs (a url without its password).
    pub fn describe(&self) -> String {
        match self {
            Floor::Sled(_) => "sled".to_string(),
            Floor::Postgres(p) => p.url().to_string(),
        }
    }

    /// Whether replicas may share this floor.
    pub fn is_shared(&self) -> bool {
        matches!(self, Floor::Postgres(_))
    }

    /// Writes a readiness probe and waits until it is durable: `Ok` only
    /// when the store can take a write right now.
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        match self {
            Floor::Sled(s) => s.probe_write().await,
            Floor::Postgres(p) => {
                let stamp = crate::jobs::model::now_ms().to_string();
                p.set("baton:probe", "probe", "probe", stamp.as_bytes())
                    .await?;
                p.commit().await
            }
        }
    }

    /// Makes every write durable before the process ends.
    pub fn flush(&self) -> Result<(), StoreError> {
        match self {
            Floor::Sled(s) => s.flush(),
            Floor::Postgres(_) => Ok(()),
        }
    }
}
