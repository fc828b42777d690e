//! The PostgreSQL backend, which any number of replicas share: a pool of
//! connections (sqlx, TLS as the url's `sslmode` says), the schema applied
//! by [`migrations`] at connect, and one file per concern.

mod jobs;
mod kv;
pub mod migrations;
pub mod notices;
pub mod replicas;

pub use jobs::{JOBS_CHANNEL, PgJobStore};
pub use replicas::Membership;

use super::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// Connections one process keeps open at most, unless `[storage]
/// pool_size` says otherwise.
pub const DEFAULT_POOL_SIZE: u32 = 48;
/// How long a caller waits for a free connection (or a new one) before the
/// database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest wait between two connection attempts at start.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A PostgreSQL database holding Baton's state.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    shown: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("url", &self.shown).finish()
    }
}

/// `url` as it can be shown: without its password.
pub fn redacted(url: &str) -> String {
    match PgConnectOptions::from_str(url) {
        Ok(o) => shown(&o),
        Err(_) => "(an unreadable postgres url)".into(),
    }
}

fn shown(o: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        o.get_username(),
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or(o.get_username())
    )
}

/// Whether `e` may pass by itself (the server is down, starting, or
/// unreachable), as opposed to a mistake that waiting does not mend
/// (a wrong password, a missing database, a bad certificate).
fn transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(d) => {
            // 57P01-57P03: the server shut down, crashed, or is starting
            // up; 53300: too many connections; 08xxx: connection exceptions.
            matches!(
                d.code().as_deref(),
                Some("57P01" | "57P02" | "57P03" | "53300")
            ) || d.code().is_some_and(|c| c.starts_with("08"))
        }
        _ => false,
    }
}

/// A driver error as the store's: unavailable when the database cannot be
/// reached, a backend failure otherwise.
pub(super) fn failed(e: sqlx::Error) -> StoreError {
    if transient(&e) {
        StoreError::Unavailable(format!("the database cannot be reached: {e}"))
    } else {
        StoreError::Backend(e.to_string())
    }
}

impl PgStore {
    /// Connects to `url` and brings its schema up to date. While the
    /// server cannot be reached, retries with backoff (logging each
    /// failure, the url shown without its password); a url that cannot be
    /// read, refused credentials or a schema this binary does not know
    /// fail at once.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        Self::connect_with(url, DEFAULT_POOL_SIZE).await
    }

    /// [`PgStore::connect`] with a pool of at most `pool_size` connections.
    pub async fn connect_with(url: &str, pool_size: u32) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Invalid(format!(
                "the storage url `{}` cannot be read: {e}",
                redacted(url)
            ))
        })?;
        let shown = shown(&options);
        let mut wait = Duration::from_millis(250);
        let pool = loop {
            let attempt = PgPoolOptions::new()
                .max_connections(pool_size)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options.clone())
                .await;
            match attempt {
                Ok(pool) => break pool,
                Err(e) if transient(&e) => {
                    tracing::warn!(
                        url = %shown, retry_in_ms = wait.as_millis() as u64,
                        "PostgreSQL cannot be reached: {e}"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    return Err(StoreError::Backend(format!("connecting to {shown}: {e}")));
                }
            }
        };
        let migrator = migrations::migrator()
            .await
            .map_err(|e| StoreError::Backend(format!("reading the embedded migrations: {e}")))?;
        migrator.run(&pool).await.map_err(|e| {
            StoreError::Backend(format!("bringing the schema of {shown} up to date: {e}"))
        })?;
        tracing::info!(url = %shown, schema = migrations::latest_version(), "PostgreSQL connected");
        Ok(PgStore { pool, shown })
    }

    /// The url connected to, without its password.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// The connection pool, for the other concerns' tables.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}
