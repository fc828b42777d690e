//! Hot swap: a new version of a mounted handler is compiled (or taken from
//! the compile cache) off the request path, recorded with every earlier
//! version in sled, and swapped in atomically; requests and jobs that
//! started on the old version finish on it. A component that does not
//! compile or does not satisfy the world is refused and the old version
//! keeps serving. New bytes come from the admin API, `baton deploy`, or a
//! changed file in a watched handler directory.

use crate::app::App;
use crate::metrics::{self, SwapResult};
use crate::runtime::registry::HandlerVersion;
use crate::runtime::version_of;
use crate::runtime::versions::Source;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why a deploy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// No handler of that name is mounted.
    #[error("there is no handler `{0}`")]
    UnknownHandler(String),
    /// The component was refused; the old version keeps serving.
    #[error("{0}")]
    Rejected(String),
    /// No such version in the handler's history (rollback).
    #[error("{0}")]
    UnknownVersion(String),
    /// Bad name, mount or limits for a new handler.
    #[error("{0}")]
    Invalid(String),
    /// The mount is taken.
    #[error("{0}")]
    Conflict(String),
    /// Storage failed.
    #[error("storing the version failed: {0}")]
    Storage(String),
}

impl App {
    /// Compiles `bytes` and makes them `name`'s version; returns it.
    pub async fn deploy(
        self: &Arc<Self>,
        name: &str,
        bytes: Vec<u8>,
        source: Source,
    ) -> Result<Arc<HandlerVersion>, DeployError> {
        let slot = self
            .registry
            .get(name)
            .ok_or_else(|| DeployError::UnknownHandler(name.to_string()))?;
        let sha = version_of(&bytes);
        let current = slot.current();
        if current.sha256 == sha {
            return Ok(current);
        }
        let (loaded, bytes) = self
            .load_off_thread(bytes)
            .await
            .map_err(|e| DeployError::Storage(e.to_string()))?;
        let version = match loaded {
            Ok(v) => v,
            Err(e) => {
                let reason = e.to_string();
                slot.reject(&sha, &reason);
                metrics::global().swap(name, SwapResult::Rejected);
                tracing::warn!(handler = name, version = %&sha[..12], "component refused; the previous version keeps serving: {reason}");
                return Err(DeployError::Rejected(reason));
            }
        };
        // A deploy of the manifest's file updates the manifest's reference
        // version; every other deploy keeps it.
        let manifest_sha = if matches!(source, Source::Manifest | Source::Watch) {
            sha.clone()
        } else {
            self.versions
                .current(name)
                .await
                .ok()
                .flatten()
                .map(|c| c.manifest_sha256)
                .unwrap_or_default()
        };
        self.versions
            .record(name, &bytes, &sha, source, &manifest_sha)
            .await
            .map_err(|e| DeployError::Storage(e.to_string()))?;
        let old = slot.swap(version);
        let new = slot.current();
        let result = match source {
            Source::Rollback => SwapResult::RolledBack,
            _ => SwapResult::Deployed,
        };
        metrics::global().swap(name, result);
        tracing::info!(
            handler = name, from = %&old.sha256[..12], to = %&new.sha256[..12],
            cached = new.from_cache, ?source, "handler swapped"
        );
        Ok(new)
    }

    /// Redeploys an earlier version of `name`: `version` (a sha256 or a
    /// unique prefix of at least 8 characters) or, when `None`, the one
    /// served before the current.
    pub async fn rollback(
        self: &Arc<Self>,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<HandlerVersion>, DeployError> {
        let slot = self
            .registry
            .get(name)
            .ok_or_else(|| DeployError::UnknownHandler(name.to_string()))?;
        let history = self
            .versions
            .history(name)
            .await
            .map_err(|e| DeployError::Storage(e.to_string()))?;
        let current = slot.current().sha256.clone();
        let target = match version {
            Some(v) if v.len() >= 8 => {
                let matches: Vec<&str> = history
                    .iter()
                    .map(|d| d.sha256.as_str())
                    .filter(|s| s.starts_with(v))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                match matches.as_slice() {
                    [one] => one.to_string(),
                    [] => {
                        return Err(DeployError::UnknownVersion(format!(
                            "`{name}` never ran a version `{v}`"
                        )));
                    }
                    _ => {
                        return Err(DeployError::UnknownVersion(format!(
                            "`{v}` matches several versions of `{name}`; give more characters"
                        )));
                    }
                }
            }
            Some(v) => {
                return Err(DeployError::UnknownVersion(format!(
                    "`{v}` is too short: give the sha256 or at least its first 8 characters"
                )));
            }
            None => history
                .iter()
                .rev()
                .map(|d| d.sha256.clone())
                .find(|s| *s != current)
                .ok_or_else(|| {
                    DeployError::UnknownVersion(format!("`{name}` has no earlier version"))
                })?,
        };
        let bytes = self
            .versions
            .blob(&target)
            .await
            .map_err(|e| DeployError::Storage(e.to_string()))?
            .ok_or_else(|| {
                DeployError::UnknownVersion(format!("the bytes of {target} are gone"))
            })?;
        self.deploy(name, bytes, Source::Rollback).await
    }

    /// Watches the files of file-backed handlers and the manifest; a changed
    /// component is deployed, a changed manifest reloaded, once the file has
    /// stopped changing (so half-written files are never loaded).
    pub fn watch_handler_files(
        self: &Arc<Self>,
    ) -> anyhow::Result<Option<notify::RecommendedWatcher>> {
        use notify::Watcher;
        let watched: Vec<(String, PathBuf)> = self
            .registry
            .all()
            .iter()
            .filter_map(|s| s.wasm_path.clone().map(|p| (s.name.to_string(), p)))
            .collect();
        let manifest_file = (self.manifest.source != crate::manifest::DEFAULT_MANIFEST_NAME)
            .then(|| PathBuf::from(&self.manifest.source));
        if watched.is_empty() && manifest_file.is_none() {
            return Ok(None);
        }
        // Only events for these names go on: any other file in a watched
        // directory (a log the server's stderr is appended to, say) would
        // wake the debounce below at every write and, written more often
        // than every 300 ms, keep it from ever ending.
        let names: std::collections::HashSet<std::ffi::OsString> = watched
            .iter()
            .map(|(_, p)| p.as_path())
            .chain(manifest_file.as_deref())
            .filter_map(|p| p.file_name().map(ToOwned::to_owned))
            .collect();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if let Ok(ev) = res
                    && (ev.kind.is_modify() || ev.kind.is_create())
                {
                    for p in ev.paths {
                        if p.file_name().is_some_and(|n| names.contains(n)) {
                            let _ = tx.send(p);
                        }
                    }
                }
            })?;
        let mut dirs: Vec<PathBuf> = watched
            .iter()
            .map(|(_, p)| p.as_path())
            .chain(manifest_file.as_deref())
            .filter_map(|p| {
                p.parent().map(|d| {
                    if d.as_os_str().is_empty() {
                        PathBuf::from(".")
                    } else {
                        d.to_path_buf()
                    }
                })
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        for d in &dirs {
            watcher.watch(d, notify::RecursiveMode::NonRecursive)?;
            tracing::info!(dir = %d.display(), "watching for new handler components");
        }
        let app = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // Debounce: collect the burst, then wait until the files are quiet.
                let mut changed = vec![first];
                loop {
                    match tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
                        Ok(Some(p)) => changed.push(p),
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                let Some(app) = app.upgrade() else { return };
                if let Some(m) = &manifest_file
                    && changed.iter().any(|c| same_file(c, m))
                {
                    if let Err(e) = app.reload_manifest().await {
                        tracing::error!(
                            "manifest rejected; the running configuration stays: {e:#}"
                        );
                    }
                    continue;
                }
                for (name, path) in &watched {
                    let hit = changed.iter().any(|c| same_file(c, path));
                    if !hit {
                        continue;
                    }
                    let Ok(bytes) = std::fs::read(path) else {
                        continue;
                    };
                    match app.deploy(name, bytes, Source::Watch).await {
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(handler = %name, file = %path.display(), "not deployed: {e}")
                        }
                    }
                }
            }
        });
        Ok(Some(watcher))
    }
}

impl App {
    /// Re-reads the manifest file and applies its handlers: changed
    /// components are deployed, changed settings take effect, new handlers
    /// are mounted, removed ones unmounted. An invalid manifest changes
    /// nothing. Listener, auth, storage and job-engine settings need a restart.
    pub async fn reload_manifest(self: &Arc<Self>) -> anyhow::Result<()> {
        use crate::manifest::{DEFAULT_MANIFEST_NAME, Manifest};
        use crate::runtime::registry::HandlerSlot;
        if self.manifest.source == DEFAULT_MANIFEST_NAME {
            anyhow::bail!("the server runs the embedded manifest, which cannot change");
        }
        let path = std::path::PathBuf::from(&self.manifest.source);
        let new = Manifest::load(&path)?;
        crate::host_calls::secrets::check_readable(&new.handlers)?;
        for h in &new.handlers {
            crate::app::seal_buckets(
                self.store.as_ref(),
                &self.keys,
                &h.name,
                &h.encrypted_buckets,
            )
            .await?;
        }
        if crate::store::sealed::scrub_pending(self.store.as_ref()).await? {
            tracing::warn!(
                "values were sealed while serving; their earlier forms stay in the database's \
                 log until the next start rewrites it"
            );
        }
        for h in &new.handlers {
            let bytes = crate::app::read_component(&h.wasm, &new.base_dir)?;
            let sha = version_of(&bytes);
            let limits = new.limits_for(h);
            match self.registry.get(&h.name) {
                Some(slot) => {
                    let recorded = self
                        .versions
                        .current(&h.name)
                        .await?
                        .map(|c| c.manifest_sha256);
                    if recorded.as_deref() != Some(sha.as_str()) {
                        self.deploy(&h.name, bytes, Source::Manifest).await?;
                    }
                    let mut next = HandlerSlot::with_current(h, limits, slot.current());
                    next.wasm_path = slot.wasm_path.clone();
                    self.registry.insert(next);
                }
                None => {
                    let (v, bytes) = self.load_off_thread(bytes).await?;
                    let v = v.map_err(|e| anyhow::anyhow!("handler `{}`: {e}", h.name))?;
                    self.versions
                        .record(&h.name, &bytes, &v.sha256, Source::Manifest, &sha)
                        .await?;
                    self.registry.insert(HandlerSlot::new(h, limits, v));
                    tracing::info!(handler = %h.name, mount = %h.mount, "handler mounted by a manifest reload");
                }
            }
        }
        for slot in self.registry.all() {
            if !new.handlers.iter().any(|h| *h.name == *slot.name)
                && !crate::added_mounts::is_added(self, &slot.name).await
            {
                self.registry.remove(&slot.name);
                tracing::info!(handler = %slot.name, "handler unmounted by a manifest reload");
            }
        }
        self.jobs.sync_manifest(&new).await?;
        let restart_needed = new.listeners.len() != self.manifest.listeners.len()
            || new.auth != self.manifest.auth
            || new.jobs != self.manifest.jobs;
        if restart_needed {
            tracing::warn!(
                "listener, auth or job settings changed; they take effect at the next restart"
            );
        }
        tracing::info!(manifest = %path.display(), "manifest reloaded");
        Ok(())
    }
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => {
            a.file_name() == b.file_name()
                && a.parent().and_then(|p| p.canonicalize().ok())
                    == b.parent().and_then(|p| p.canonicalize().ok())
        }
    }
}
