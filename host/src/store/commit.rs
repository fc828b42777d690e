//! Group commit: writers that need durability at the same moment share one
//! flush.
//!
//! A writer makes its change, then awaits [`GroupCommit::commit`], which
//! returns once a flush that *started after the call* has finished. While a
//! flush runs, every writer that arrives waits for the next one, which then
//! covers all of them: under load one fsync serves many writers, and an idle
//! writer still gets its own flush at once. Nothing is acknowledged before the
//! flush that covers it.

use super::StoreError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The durable-write step of a backend (e.g. sled's `Db::flush`).
pub type FlushFn = dyn Fn() -> Result<(), StoreError> + Send + Sync;

/// Shares flushes between concurrent writers of one database.
pub struct GroupCommit {
    flush: Arc<FlushFn>,
    state: Mutex<State>,
    done: watch::Sender<Flushed>,
    /// `false`: every commit flushes on its own (the baseline the
    /// benchmarks compare against; `BATON_GROUP_COMMIT=off`).
    grouped: bool,
    /// Commits asked for and flushes made so far.
    counts: [AtomicU64; 2],
}

struct State {
    /// Tickets handed out so far (one per commit call).
    requested: u64,
    /// Whether the flusher task is running.
    flushing: bool,
}

#[derive(Clone)]
struct Flushed {
    /// Every ticket up to this one is covered by a finished flush.
    covered: u64,
    /// How that flush ended.
    result: Result<(), String>,
}

impl GroupCommit {
    /// A group commit over `flush`, grouped unless `BATON_GROUP_COMMIT=off`.
    pub fn new(flush: Arc<FlushFn>) -> Arc<GroupCommit> {
        let grouped = !matches!(
            std::env::var("BATON_GROUP_COMMIT").as_deref(),
            Ok("off" | "0" | "false")
        );
        Self::with_grouping(flush, grouped)
    }

    /// As [`GroupCommit::new`], with grouping chosen by the caller.
    pub fn with_grouping(flush: Arc<FlushFn>, grouped: bool) -> Arc<GroupCommit> {
        let (done, _) = watch::channel(Flushed {
            covered: 0,
            result: Ok(()),
        });
        Arc::new(GroupCommit {
            flush,
            state: Mutex::new(State {
                requested: 0,
                flushing: false,
            }),
            done,
            grouped,
            counts: [AtomicU64::new(0), AtomicU64::new(0)],
        })
    }

    /// (commits asked for, flushes made) so far: how many writers each
    /// flush served.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.counts[0].load(Ordering::Relaxed),
            self.counts[1].load(Ordering::Relaxed),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns once every write made before this call is durable.
    pub async fn commit(self: &Arc<Self>) -> Result<(), StoreError> {
        self.counts[0].fetch_add(1, Ordering::Relaxed);
        if !self.grouped {
            self.counts[1].fetch_add(1, Ordering::Relaxed);
            let flush = self.flush.clone();
            return tokio::task::spawn_blocking(move || flush())
                .await
                .map_err(|e| StoreError::Backend(format!("the flush task failed: {e}")))?;
        }
        let mut rx = self.done.subscribe();
        let (ticket, start) = {
            let mut s = self.lock();
            s.requested += 1;
            let start = !s.flushing;
            s.flushing = true;
            (s.requested, start)
        };
        if start {
            tokio::spawn(self.clone().flusher());
        }
        loop {
            {
                let seen = rx.borrow_and_update();
                if seen.covered >= ticket {
                    return seen.result.clone().map_err(StoreError::Backend);
                }
            }
            if rx.changed().await.is_err() {
                return Err(StoreError::Backend("the store closed".into()));
            }
        }
    }

    /// Flushes until no ticket is left uncovered.
    async fn flusher(self: Arc<Self>) {
        loop {
            // Let the tasks that are ready to run first make their writes
            // and take their tickets: under load this one yield lets a
            // flush cover several times more writers (13 → 60 per flush
            // in the trivial-jobs bench); when idle it costs a reschedule.
            tokio::task::yield_now().await;
            // Every ticket handed out so far was taken after its write, so
            // the flush below (which starts after this read) covers it.
            let target = self.lock().requested;
            self.counts[1].fetch_add(1, Ordering::Relaxed);
            let flush = self.flush.clone();
            let result = match tokio::task::spawn_blocking(move || flush()).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(e) => Err(format!("the flush task failed: {e}")),
            };
            if let Err(e) = &result {
                tracing::error!("flushing the store failed: {e}");
            }
            self.done.send_replace(Flushed {
                covered: target,
                result,
            });
            let mut s = self.lock();
            if s.requested == target {
                s.flushing = false;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    /// A flush that takes `ms` and counts itself.
    fn slow_flush(ms: u64, count: Arc<AtomicU64>) -> Arc<FlushFn> {
        Arc::new(move || {
            std::thread::sleep(Duration::from_millis(ms));
            count.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_share_flushes_and_each_waits_for_one() {
        let flushes = Arc::new(AtomicU64::new(0));
        let gc = GroupCommit::with_grouping(slow_flush(20, flushes.clone()), true);
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let gc = gc.clone();
                let flushes = flushes.clone();
                tokio::spawn(async move {
                    let before = flushes.load(Ordering::SeqCst);
                    gc.commit().await.unwrap();
                    // A flush finished after this writer arrived.
                    assert!(flushes.load(Ordering::SeqCst) > before);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let n = flushes.load(Ordering::SeqCst);
        assert!((1..64).contains(&n), "64 writers made {n} flushes");
    }

    #[tokio::test]
    async fn ungrouped_commits_flush_once_each() {
        let flushes = Arc::new(AtomicU64::new(0));
        let gc = GroupCommit::with_grouping(slow_flush(1, flushes.clone()), false);
        for _ in 0..5 {
            gc.commit().await.unwrap();
        }
        assert_eq!(flushes.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_failed_flush_fails_the_writers_it_covers_and_the_next_one_recovers() {
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let f = fail.clone();
        let gc = GroupCommit::with_grouping(
            Arc::new(move || {
                if f.load(Ordering::SeqCst) {
                    Err(StoreError::Backend("disk full".into()))
                } else {
                    Ok(())
                }
            }),
            true,
        );
        let e = gc.commit().await.unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        fail.store(false, Ordering::SeqCst);
        gc.commit().await.unwrap();
    }
}
