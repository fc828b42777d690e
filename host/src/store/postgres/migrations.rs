//! The PostgreSQL schema, as versioned migrations embedded in the binary and
//! applied at start by sqlx's [`Migrator`]: under an advisory lock (so that
//! replicas starting together apply each once), in order, each in its own
//! transaction; a migration edited after it was applied, or one the binary
//! does not know, stops the start with an error naming it.

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

/// Every migration: (version, description, SQL). Append only; never edit
/// one that has shipped.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "kv", include_str!("migrations/0001_kv.sql")),
    (2, "jobs", include_str!("migrations/0002_jobs.sql")),
    (3, "replicas", include_str!("migrations/0003_replicas.sql")),
];

/// The migrations compiled into this binary.
#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// The migrator of the embedded migrations.
pub(super) async fn migrator() -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded).await
}

/// The newest schema version this binary knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}
