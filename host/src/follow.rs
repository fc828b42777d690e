//! Keeping a replica in step with the others on a shared database: the
//! notices they send (see [`crate::store::postgres::notices`]) reach the
//! job engine at once, and the host concerns this process keeps in memory
//! (each handler's serving version, the handlers added through the admin
//! API, parsed user records) are read again when their namespace changed,
//! and every [`RESYNC_EVERY`] in any case, in case a notice was lost.

use crate::added_mounts::MOUNTS_NS;
use crate::app::App;
use crate::auth::users::AUTH_NS;
use crate::runtime::versions::VERSIONS_NS;
use crate::store::Floor;
use crate::store::postgres::notices::Notice;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// How often everything kept is read again without a notice.
const RESYNC_EVERY: Duration = Duration::from_secs(10);

/// Which kept concerns must be read again.
#[derive(Default, Clone, Copy)]
struct Stale {
    versions: bool,
    mounts: bool,
    users: bool,
}

impl Stale {
    const ALL: Stale = Stale {
        versions: true,
        mounts: true,
        users: true,
    };

    fn any(&self) -> bool {
        self.versions || self.mounts || self.users
    }
}

/// What the notice task hands the resync task.
#[derive(Default)]
struct Pending {
    stale: Mutex<Stale>,
    wake: Notify,
}

impl Pending {
    fn mark(&self, f: impl FnOnce(&mut Stale)) {
        f(&mut self.stale.lock().unwrap_or_else(|e| e.into_inner()));
        self.wake.notify_one();
    }

    fn take(&self) -> Stale {
        std::mem::take(&mut *self.stale.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl App {
    /// On a shared database, starts following the other replicas' changes
    /// (nothing to follow on sled, which one process owns).
    pub fn follow_replicas(self: &Arc<Self>) {
        let Floor::Postgres(pg) = &self.floor else {
            return;
        };
        let mut notices = pg.notices();
        let pending = Arc::new(Pending::default());
        let app = Arc::downgrade(self);
        let marks = pending.clone();
        tokio::spawn(async move {
            while let Some(notice) = notices.recv().await {
                let Some(app) = app.upgrade() else { return };
                match notice {
                    Notice::Job(id) => app.jobs.remote_change(&id).await,
                    Notice::Changed(ns) => marks.mark(|s| match ns.as_str() {
                        VERSIONS_NS => s.versions = true,
                        MOUNTS_NS => s.mounts = true,
                        AUTH_NS => s.users = true,
                        _ => {}
                    }),
                    Notice::Resync => marks.mark(|s| *s = Stale::ALL),
                }
            }
        });
        tokio::spawn(resync_loop(Arc::downgrade(self), pending));
    }
}

/// Reads again what is marked stale, as marks come and every
/// [`RESYNC_EVERY`].
async fn resync_loop(app: Weak<App>, pending: Arc<Pending>) {
    loop {
        let woken = tokio::time::timeout(RESYNC_EVERY, pending.wake.notified()).await;
        let stale = match woken {
            Ok(()) => pending.take(),
            Err(_) => Stale::ALL,
        };
        let Some(app) = app.upgrade() else { return };
        if !stale.any() {
            continue;
        }
        if stale.users {
            app.auth.forget_cached_users();
        }
        if stale.mounts
            && let Err(e) = app.mount_added_elsewhere().await
        {
            tracing::warn!("mounting handlers added on another replica failed: {e:#}");
        }
        if stale.versions {
            app.resync_versions().await;
        }
    }
}

impl App {
    /// Serves, for every handler, the version the database says is
    /// current (deployed or rolled back on another replica).
    pub async fn resync_versions(self: &Arc<Self>) {
        for slot in self.registry.all() {
            let current = match self.versions.current(&slot.name).await {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(handler = %slot.name, "reading the current version failed: {e}");
                    continue;
                }
            };
            if current.sha256 == slot.current().sha256 {
                continue;
            }
            let bytes = match self.versions.blob(&current.sha256).await {
                Ok(Some(b)) => b,
                Ok(None) => continue, // its parts are still being written
                Err(e) => {
                    tracing::warn!(handler = %slot.name, "reading a version failed: {e}");
                    continue;
                }
            };
            match self.load_off_thread(bytes).await.map(|(loaded, _)| loaded) {
                Ok(Ok(version)) => {
                    let old = slot.swap(version);
                    tracing::info!(
                        handler = %slot.name, from = %&old.sha256[..12],
                        to = %&current.sha256[..12],
                        "handler swapped: another replica deployed this version"
                    );
                }
                Ok(Err(e)) => tracing::error!(
                    handler = %slot.name, version = %&current.sha256[..12],
                    "a version deployed on another replica does not load here: {e:#}"
                ),
                Err(e) => tracing::error!(handler = %slot.name, "loading a version: {e}"),
            }
        }
    }
}
