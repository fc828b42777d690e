//! Handlers mounted through the admin API (`PUT /admin/v1/handlers/{name}
//! ?mount=/path`) rather than the manifest: kept in sled so that they are
//! mounted again after a restart, with the version they last ran.

use crate::app::App;
use crate::deploy::DeployError;
use crate::manifest::{ErrorStyle, HandlerSpec, LimitOverrides, Policy, check_limits, check_mount};
use crate::runtime::registry::{HandlerSlot, HandlerVersion};
use crate::runtime::version_of;
use crate::runtime::versions::Source;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A handler mounted through the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedMount {
    /// Its name (and kv namespace).
    pub name: String,
    /// The path prefix it serves.
    pub mount: String,
    /// `public`, `authenticated` or a permission, for every route.
    pub policy: String,
    /// The shape of host-generated errors.
    pub errors: ErrorStyle,
    /// Overrides of `[limits]`.
    pub limits: LimitOverrides,
}

impl AddedMount {
    /// The handler spec it stands for (no capabilities: grant those in the manifest).
    pub fn spec(&self) -> Result<HandlerSpec, String> {
        Ok(HandlerSpec {
            name: self.name.clone(),
            wasm: format!("admin:{}", self.name),
            mount: self.mount.clone(),
            errors: self.errors,
            limits: self.limits,
            config: Default::default(),
            secrets: Default::default(),
            encrypted_buckets: Vec::new(),
            schedules: Vec::new(),
            policy: Policy::parse(&self.policy)?,
            routes: Vec::new(),
            capabilities: Default::default(),
            // Components uploaded at run time are not trusted with reuse.
            warm_instances: None,
        })
    }
}

fn tree(app: &App) -> sled::Result<sled::Tree> {
    app.store.db().open_tree("added-mounts")
}

/// Every handler added through the admin API.
pub fn all(app: &App) -> sled::Result<Vec<AddedMount>> {
    tree(app)?
        .iter()
        .values()
        .map(|v| v.map(|v| serde_json::from_slice(&v).expect("added mounts decode")))
        .collect()
}

/// Whether `name` was added through the admin API.
pub fn is_added(app: &App, name: &str) -> bool {
    tree(app)
        .ok()
        .and_then(|t| t.contains_key(name).ok())
        .unwrap_or(false)
}

impl App {
    /// Mounts a new handler `m` running `bytes`, without a restart.
    pub async fn mount_new(
        self: &Arc<Self>,
        m: AddedMount,
        bytes: Vec<u8>,
    ) -> Result<Arc<HandlerVersion>, DeployError> {
        let invalid = |msg: String| DeployError::Invalid(msg);
        let spec = m.spec().map_err(invalid)?;
        if spec.name.is_empty()
            || spec.name == crate::manifest::ADMIN_MOUNT_NAME
            || !spec
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(format!(
                "`{}` is not a usable handler name: ASCII letters, digits, `-` or `_`, not `admin`",
                spec.name
            )));
        }
        check_mount(&spec.mount).map_err(invalid)?;
        let limits = self.manifest.limits_for(&spec);
        check_limits(&limits).map_err(invalid)?;
        if let Some(other) = self.registry.all().iter().find(|s| s.mount == spec.mount) {
            return Err(DeployError::Conflict(format!(
                "`{}` already serves {}",
                other.name, spec.mount
            )));
        }
        let sha = version_of(&bytes);
        let app = self.clone();
        let (loaded, bytes) = tokio::task::spawn_blocking(move || {
            (app.runtime.load(&bytes, Some(&app.compile_cache)), bytes)
        })
        .await
        .map_err(|e| DeployError::Storage(e.to_string()))?;
        let version = loaded.map_err(|e| DeployError::Rejected(e.to_string()))?;
        self.versions
            .record(&spec.name, &bytes, &sha, Source::Admin, "")
            .map_err(|e| DeployError::Storage(e.to_string()))?;
        let t = tree(self).map_err(|e| DeployError::Storage(e.to_string()))?;
        t.insert(
            m.name.as_bytes(),
            serde_json::to_vec(&m).expect("serialises"),
        )
        .and_then(|_| t.flush())
        .map_err(|e| DeployError::Storage(e.to_string()))?;
        self.registry
            .insert(HandlerSlot::new(&spec, limits, version));
        tracing::info!(handler = %spec.name, mount = %spec.mount, "handler mounted through the admin API");
        Ok(self
            .registry
            .get(&spec.name)
            .expect("just inserted")
            .current())
    }

    /// Mounts again, at start, the handlers added through the admin API
    /// (those the manifest now defines itself are left to the manifest).
    pub async fn remount_added(self: &Arc<Self>) -> anyhow::Result<()> {
        for m in all(self)? {
            if self.registry.get(&m.name).is_some() {
                tracing::warn!(handler = %m.name, "the manifest now defines this handler; its admin mount is ignored");
                continue;
            }
            // Kept by an older version that accepted any mount syntax.
            if let Err(why) = check_mount(&m.mount) {
                tracing::warn!(handler = %m.name, "not mounted again: {why}");
                continue;
            }
            let spec = m.spec().map_err(anyhow::Error::msg)?;
            let Some(current) = self.versions.current(&m.name)? else {
                continue;
            };
            let Some(bytes) = self.versions.blob(&current.sha256)? else {
                continue;
            };
            let app = self.clone();
            let version = tokio::task::spawn_blocking(move || {
                app.runtime.load(&bytes, Some(&app.compile_cache))
            })
            .await??;
            let limits = self.manifest.limits_for(&spec);
            self.registry
                .insert(HandlerSlot::new(&spec, limits, version));
            tracing::info!(handler = %m.name, mount = %m.mount, "handler mounted again (added through the admin API)");
        }
        Ok(())
    }
}
