//! Notices from the other replicas (LISTEN): a job that ended or whose
//! cancel was asked (channel `baton_jobs`), and a host concern that changed
//! (channel `baton_changes`, the kv namespace), both sent by the triggers
//! and calls of `0003_replicas.sql` and [`super::PgJobStore`].

use super::{JOBS_CHANNEL, PgStore};
use sqlx::postgres::PgListener;
use std::time::Duration;
use tokio::sync::mpsc;

/// The channel of changes to host concerns kept as kv.
pub const CHANGES_CHANNEL: &str = "baton_changes";

/// What another replica (or this one) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Job `id` ended, or a cancel of it was asked.
    Job(String),
    /// A host concern's kv namespace (`baton:…`) changed.
    Changed(String),
    /// Notices may have been lost (the connection to the database was
    /// lost and made again): everything kept must be read again.
    Resync,
}

impl PgStore {
    /// Listens for notices until the receiver is dropped; reconnects by
    /// itself, sending [`Notice::Resync`] after each reconnection.
    pub fn notices(&self) -> mpsc::UnboundedReceiver<Notice> {
        let (tx, rx) = mpsc::unbounded_channel();
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut connected_before = false;
            loop {
                let mut listener = match PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!("listening for other replicas' changes: {e}");
                        if tx.is_closed() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if let Err(e) = listener.listen_all([JOBS_CHANNEL, CHANGES_CHANNEL]).await {
                    tracing::warn!("listening for other replicas' changes: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                if connected_before && tx.send(Notice::Resync).is_err() {
                    return;
                }
                connected_before = true;
                loop {
                    let notice = match listener.try_recv().await {
                        // The connection was lost; the next call makes it again.
                        Ok(None) => Notice::Resync,
                        Ok(Some(n)) if n.channel() == JOBS_CHANNEL => {
                            Notice::Job(n.payload().to_string())
                        }
                        Ok(Some(n)) => Notice::Changed(n.payload().to_string()),
                        Err(e) => {
                            tracing::warn!("listening for other replicas' changes: {e}");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            break;
                        }
                    };
                    if tx.send(notice).is_err() {
                        return;
                    }
                }
            }
        });
        rx
    }
}
