//! Wiring: the store, the runtime and the registry built from a manifest.

use crate::auth::Auth;
use crate::builtin;
use crate::jobs::JobEngine;
use crate::manifest::Manifest;
use crate::metrics::jobs::MeteredJobStore;
use crate::runtime::cache::CompileCache;
use crate::runtime::registry::{HandlerSlot, HandlerVersion, Registry};
use crate::runtime::versions::{Source, VersionStore};
use crate::runtime::{LoadError, Runtime, RuntimeConfig, version_of};
use crate::store::postgres::Membership;
use crate::store::{Floor, KeyRing, KvStore, SledStore};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Instances alive at once across every handler (pool slots).
const POOL_INSTANCES: u32 = 256;

/// Everything a running server shares.
pub struct App {
    /// The manifest in force.
    pub manifest: Manifest,
    /// Where local state lives: everything on sled, only caches with a
    /// storage url.
    pub data_dir: PathBuf,
    /// The storage floor's backend.
    pub floor: Floor,
    /// Handler data, and every host concern kept as kv.
    pub store: Arc<dyn KvStore>,
    /// This server's place among the replicas of a PostgreSQL database.
    pub replica: Option<Membership>,
    /// The keys of encrypted kv buckets.
    pub keys: Arc<KeyRing>,
    /// Users, tokens, permissions.
    pub auth: Arc<Auth>,
    /// The durable job engine.
    pub jobs: Arc<JobEngine>,
    /// wasmtime and the host calls.
    pub runtime: Runtime,
    /// The mounted handlers.
    pub registry: Registry,
    /// Every version of every handler.
    pub versions: VersionStore,
    /// Compiled components on disk.
    pub compile_cache: CompileCache,
}

impl App {
    /// Opens the data dir, builds the runtime and loads every handler. Fails
    /// naming the handler and the reason if any handler cannot be loaded.
    pub async fn start(manifest: Manifest, data_dir: PathBuf) -> anyhow::Result<Arc<App>> {
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
        let keys = Arc::new(
            KeyRing::load(&manifest.storage, &data_dir)
                .context("loading the key of encrypted kv buckets ([storage] encryption_key)")?,
        );
        let url = crate::store::floor::configured_url(manifest.storage.url.as_deref());
        if url.is_some()
            && manifest.storage.encryption_key.is_none()
            && manifest
                .handlers
                .iter()
                .any(|h| !h.encrypted_buckets.is_empty())
        {
            bail!(
                "with a storage url, set `[storage] encryption_key`: a key generated in the data \
                 directory would be this machine's alone, and the database must never hold it"
            );
        }
        let floor = open_floor(&manifest, &data_dir, &keys, url.as_deref()).await?;
        let replica = match &floor {
            Floor::Postgres(p) => {
                let id = crate::store::postgres::replicas::replica_id(&data_dir)
                    .with_context(|| format!("keeping a replica id in {}", data_dir.display()))?;
                Some(p.join(&id, &host_name(), manifest.storage.lease()).await?)
            }
            Floor::Sled(_) => None,
        };
        tracing::info!(storage = %floor.describe(), "storage open");
        let store = floor.kv();
        if floor.is_shared() {
            crate::server::tls::share_generated_ca(store.as_ref(), &data_dir)
                .await
                .context("sharing the generated CA through the database")?;
        }
        let auth =
            Arc::new(Auth::open(&manifest, &data_dir, store.clone(), floor.is_shared()).await?);
        let jobs = JobEngine::open(
            Arc::new(MeteredJobStore::new(floor.jobs(replica.as_ref())?)),
            manifest.jobs,
        )?;
        jobs.set_files_root(data_dir.join("exec-files"));
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
                components: manifest.components,
            },
            store.clone(),
            keys.clone(),
            auth.clone(),
        )?;
        let versions = VersionStore::new(store.clone());
        let compile_cache = CompileCache::new(&data_dir.join("compiled"), runtime.engine())
            .with_context(|| format!("creating the compile cache in {}", data_dir.display()))?;
        let app = Arc::new(App {
            manifest,
            data_dir,
            floor,
            store,
            replica,
            keys,
            auth,
            jobs,
            runtime,
            registry: Registry::default(),
            versions,
            compile_cache,
        });
        crate::host_calls::secrets::check_readable(&app.manifest.handlers)?;
        for h in &app.manifest.handlers {
            let manifest_bytes = read_component(&h.wasm, &app.manifest.base_dir)
                .with_context(|| format!("handler `{}`", h.name))?;
            let manifest_sha = version_of(&manifest_bytes);
            // The last deployed version wins unless the manifest's component
            // changed since it was deployed.
            let deployed = match app.versions.current(&h.name).await? {
                Some(c) if c.manifest_sha256 == manifest_sha => {
                    app.versions.blob(&c.sha256).await?.map(|b| (b, c.sha256))
                }
                _ => None,
            };
            let recorded = deployed.is_some();
            let bytes = deployed.map_or(manifest_bytes, |(b, _)| b);
            let (version, bytes) = app.load_off_thread(bytes).await?;
            let version = version.with_context(|| format!("handler `{}` ({})", h.name, h.wasm))?;
            if !recorded {
                app.versions
                    .record(
                        &h.name,
                        &bytes,
                        &version.sha256,
                        Source::Manifest,
                        &manifest_sha,
                    )
                    .await?;
            }
            tracing::info!(
                handler = %h.name, mount = %h.mount, version = %&version.sha256[..12],
                bytes = version.size, cached = version.from_cache, "handler loaded"
            );
            let mut slot = HandlerSlot::new(h, app.manifest.limits_for(h), version);
            if !h.wasm.starts_with("builtin:") {
                slot.wasm_path = Some(app.manifest.base_dir.join(&h.wasm));
            }
            app.registry.insert(slot);
        }
        app.remount_added()
            .await
            .context("mounting the handlers added through the admin API")?;
        // Jobs start once every handler is mounted, so that recovered jobs
        // find theirs.
        app.jobs
            .start(Arc::downgrade(&app))
            .await
            .context("recovering the job engine")?;
        app.follow_replicas();
        Ok(app)
    }
}

impl App {
    /// Compiles `bytes` (through the compile cache) on a blocking thread,
    /// off the async workers; gives the bytes back with the result. `Err`
    /// only when that thread panicked.
    pub async fn load_off_thread(
        self: &Arc<Self>,
        bytes: Vec<u8>,
    ) -> Result<(Result<HandlerVersion, LoadError>, Vec<u8>), tokio::task::JoinError> {
        let app = self.clone();
        tokio::task::spawn_blocking(move || {
            (app.runtime.load(&bytes, Some(&app.compile_cache)), bytes)
        })
        .await
    }
}

/// This machine's name, for the replicas table.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Opens the storage floor and seals every handler's encrypted buckets.
/// On sled, when that sealed plain values or re-keyed old ones, the
/// database is rewritten so that their earlier forms are gone from disk.
async fn open_floor(
    manifest: &Manifest,
    data_dir: &Path,
    keys: &KeyRing,
    url: Option<&str>,
) -> anyhow::Result<Floor> {
    let dir = data_dir.join("db");
    let floor = Floor::open(url, manifest.storage.pool_size, &dir)
        .await
        .with_context(|| match url {
            Some(u) => format!(
                "opening the database {}",
                crate::store::postgres::redacted(u)
            ),
            None => format!("opening the database in {}", data_dir.display()),
        })?;
    let kv = floor.kv();
    for h in &manifest.handlers {
        seal_buckets(kv.as_ref(), keys, &h.name, &h.encrypted_buckets).await?;
    }
    if !crate::store::sealed::scrub_pending(kv.as_ref()).await? {
        return Ok(floor);
    }
    let Floor::Sled(store) = floor else {
        // PostgreSQL keeps earlier row versions until it vacuums them;
        // there is no log of ours to rewrite.
        crate::store::sealed::scrub_done(kv.as_ref()).await?;
        tracing::info!(
            "values sealed; PostgreSQL drops their earlier row versions when it vacuums"
        );
        return Ok(floor);
    };
    drop((kv, store));
    let started = std::time::Instant::now();
    crate::store::sled_rewrite::rewrite(&dir)
        .context("rewriting the database without the values sealed since")?;
    let store = SledStore::open(&dir)
        .with_context(|| format!("opening the database in {}", data_dir.display()))?;
    crate::store::sealed::scrub_done(&store).await?;
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        "database rewritten: no earlier form of a sealed value is left on disk"
    );
    Ok(Floor::Sled(Arc::new(store)))
}

/// Seals `handler`'s declared encrypted buckets (and opens those it no
/// longer declares), logging what changed.
pub(crate) async fn seal_buckets(
    store: &dyn KvStore,
    keys: &KeyRing,
    handler: &str,
    declared: &[String],
) -> anyhow::Result<()> {
    let changed = crate::store::sealed::sync_buckets(store, keys, handler, declared)
        .await
        .with_context(|| format!("handler `{handler}`: bringing its encrypted buckets in line"))?;
    for (bucket, done) in changed {
        tracing::info!(
            handler, bucket, sealed = done.sealed, rekeyed = done.rekeyed, opened = done.opened,
            key = %keys.current_id(), "encrypted bucket brought in line with the manifest"
        );
    }
    Ok(())
}

/// The bytes named by a manifest's `wasm` value: `builtin:<name>` or a path.
pub(crate) fn read_component(wasm: &str, base_dir: &Path) -> anyhow::Result<Vec<u8>> {
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
