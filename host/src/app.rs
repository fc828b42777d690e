//! Wiring: the store, the runtime and the registry built from a manifest.

use crate::auth::Auth;
use crate::builtin;
use crate::jobs::JobEngine;
use crate::manifest::Manifest;
use crate::runtime::registry::{HandlerSlot, Registry};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::store::SledStore;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Instances alive at once across every handler (pool slots).
const POOL_INSTANCES: u32 = 256;

/// Everything a running server shares.
pub struct App {
    /// The manifest in force.
    pub manifest: Manifest,
    /// Where sled and generated secrets live.
    pub data_dir: PathBuf,
    /// The sled database.
    pub store: Arc<SledStore>,
    /// Users, tokens, permissions.
    pub auth: Arc<Auth>,
    /// The durable job engine.
    pub jobs: Arc<JobEngine>,
    /// wasmtime and the host calls.
    pub runtime: Runtime,
    /// The mounted handlers.
    pub registry: Registry,
}

impl App {
    /// Opens the data dir, builds the runtime and loads every handler. Fails
    /// naming the handler and the reason if any handler cannot be loaded.
    pub async fn start(manifest: Manifest, data_dir: PathBuf) -> anyhow::Result<Arc<App>> {
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
        let store = Arc::new(
            SledStore::open(&data_dir.join("db"))
                .with_context(|| format!("opening the database in {}", data_dir.display()))?,
        );
        let auth = Arc::new(Auth::open(&manifest, &data_dir, store.db())?);
        let jobs = JobEngine::open(store.db(), manifest.jobs)?;
        let max_memory_mib = manifest
            .handlers
            .iter()
            .map(|h| manifest.limits_for(h).memory_mib)
            .chain([manifest.limits.memory_mib])
            .max()
            .unwrap_or(64);
        let runtime = Runtime::new(
            RuntimeConfig {
                max_instances: POOL_INSTANCES,
                max_memory_bytes: max_memory_mib as usize * 1024 * 1024,
            },
            store.clone(),
            auth.clone(),
        )?;
        let app = Arc::new(App {
            manifest,
            data_dir,
            store,
            auth,
            jobs,
            runtime,
            registry: Registry::default(),
        });
        for h in &app.manifest.handlers {
            let bytes = read_component(&h.wasm, &app.manifest.base_dir)
                .with_context(|| format!("handler `{}`", h.name))?;
            let loader = app.clone();
            let version = tokio::task::spawn_blocking(move || loader.runtime.load(&bytes))
                .await?
                .with_context(|| format!("handler `{}` ({})", h.name, h.wasm))?;
            tracing::info!(
                handler = %h.name, mount = %h.mount, version = %&version.sha256[..12],
                bytes = version.size, "handler loaded"
            );
            app.registry
                .insert(HandlerSlot::new(h, app.manifest.limits_for(h), version));
        }
        // Jobs start once every handler is mounted, so that recovered jobs
        // find theirs.
        app.jobs
            .start(Arc::downgrade(&app))
            .await
            .context("recovering the job engine")?;
        Ok(app)
    }
}

/// The bytes named by a manifest's `wasm` value: `builtin:<name>` or a path.
fn read_component(wasm: &str, base_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(name) = wasm.strip_prefix("builtin:") {
        return match builtin::get(name) {
            Some(bytes) => Ok(bytes.to_vec()),
            None => bail!(
                "there is no builtin handler `{name}`; builtins are: {}",
                builtin::names().collect::<Vec<_>>().join(", ")
            ),
        };
    }
    let path = base_dir.join(wasm);
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}
