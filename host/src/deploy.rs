//! Hot swap: a new version of a mounted handler is compiled (or taken from
//! the compile cache) off the request path, recorded with every earlier
//! version in sled, and swapped in atomically; requests and jobs that
//! started on the old version finish on it. A component that does not
//! compile or does not satisfy the world is refused and the old version
//! keeps serving. New bytes come from the admin API, `baton deploy`, or a
//! changed file in a watched handler directory.

use crate::app::App;
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
        let app = self.clone();
        let (loaded, bytes) = tokio::task::spawn_blocking(move || {
            let v = app.runtime.load(&bytes, Some(&app.compile_cache));
            (v, bytes)
        })
        .await
        .map_err(|e| DeployError::Storage(e.to_string()))?;
        let version = match loaded {
            Ok(v) => v,
            Err(e) => {
                let reason = e.to_string();
                slot.reject(&sha, &reason);
                tracing::warn!(handler = name, version = %&sha[..12], "component refused; the previous version keeps serving: {reason}");
                return Err(DeployError::Rejected(reason));
            }
        };
        let manifest_sha = self
            .versions
            .current(name)
            .ok()
            .flatten()
            .map(|c| c.manifest_sha256)
            .unwrap_or_default();
        let versions = self.versions.clone();
        let (n, s) = (name.to_string(), sha.clone());
        tokio::task::spawn_blocking(move || versions.record(&n, &bytes, &s, source, &manifest_sha))
            .await
            .map_err(|e| DeployError::Storage(e.to_string()))?
            .map_err(|e| DeployError::Storage(e.to_string()))?;
        let old = slot.swap(version);
        let new = slot.current();
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
            .map_err(|e| DeployError::Storage(e.to_string()))?
            .ok_or_else(|| {
                DeployError::UnknownVersion(format!("the bytes of {target} are gone"))
            })?;
        self.deploy(name, bytes, Source::Rollback).await
    }

    /// Watches the files of file-backed handlers; a changed file is deployed
    /// once it has stopped changing (so half-written files are never loaded).
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
        if watched.is_empty() {
            return Ok(None);
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if let Ok(ev) = res
                    && (ev.kind.is_modify() || ev.kind.is_create())
                {
                    for p in ev.paths {
                        let _ = tx.send(p);
                    }
                }
            })?;
        let mut dirs: Vec<PathBuf> = watched
            .iter()
            .filter_map(|(_, p)| p.parent().map(|d| d.to_path_buf()))
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
