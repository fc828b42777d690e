//! Handlers mounted through the admin API (`PUT /admin/v1/handlers/{name}
//! ?mount=/path`) rather than the manifest: kept on the storage floor
//! (namespace [`MOUNTS_NS`]) so that they are mounted again after a
//! restart, with the version they last ran.

use crate::app::App;
use crate::deploy::DeployError;
use crate::manifest::{ErrorStyle, HandlerSpec, LimitOverrides, Policy, check_limits, check_mount};
use crate::runtime::registry::{HandlerSlot, HandlerVersion};
use crate::runtime::version_of;
use crate::runtime::versions::Source;
use crate::store::{StoreError, scan_all};
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

/// The store namespace of added mounts (`:` keeps handlers out).
pub const MOUNTS_NS: &str = "baton:mounts";
/// The bucket: handler name → [`AddedMount`] as JSON.
const ADDED: &str = "added";

/// Every handler added through the admin API.
pub async fn all(app: &App) -> Result<Vec<AddedMount>, StoreError> {
    scan_all(app.store.as_ref(), MOUNTS_NS, ADDED, "")
        .await?
        .into_iter()
        .map(|(name, v)| {
            serde_json::from_slice(&v).map_err(|_| {
                StoreError::Backend(format!("the added mount `{name}` does not decode"))
            })
        })
        .collect()
}

/// Whether `name` was added through the admin API.
pub async fn is_added(app: &App, name: &str) -> bool {
    app.store
        .get(MOUNTS_NS, ADDED, name)
        .await
        .is_ok_and(|v| v.is_some())
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
        let (loaded, bytes) = self
            .load_off_thread(bytes)
            .await
            .map_err(|e| DeployError::Storage(e.to_string()))?;
        let version = loaded.map_err(|e| DeployError::Rejected(e.to_string()))?;
        self.versions
            .record(&spec.name, &bytes, &sha, Source::Admin, "")
            .await
            .map_err(|e| DeployError::Storage(e.to_string()))?;
        let stored = serde_json::to_vec(&m).expect("serialises");
        self.store
            .set(MOUNTS_NS, ADDED, &m.name, &stored)
            .await
            .map_err(|e| DeployError::Storage(e.to_string()))?;
        self.store
            .commit()
            .await
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
        self.mount_added(true).await
    }

    /// Mounts the handlers added through the admin API on another replica
    /// since this one started or last looked.
    pub async fn mount_added_elsewhere(self: &Arc<Self>) -> anyhow::Result<()> {
        self.mount_added(false).await
    }

    /// Mounts the added handlers not mounted yet; `at_start`: warns of
    /// those the manifest defines itself.
    async fn mount_added(self: &Arc<Self>, at_start: bool) -> anyhow::Result<()> {
        for m in all(self).await? {
            if self.registry.get(&m.name).is_some() {
                if at_start {
                    tracing::warn!(handler = %m.name, "the manifest now defines this handler; its admin mount is ignored");
                }
                continue;
            }
            // Kept by an older version that accepted any mount syntax.
            if let Err(why) = check_mount(&m.mount) {
                tracing::warn!(handler = %m.name, "not mounted again: {why}");
                continue;
            }
            let spec = m.spec().map_err(anyhow::Error::msg)?;
            let Some(current) = self.versions.current(&m.name).await? else {
                continue;
            };
            let Some(bytes) = self.versions.blob(&current.sha256).await? else {
                continue;
            };
            let version = self.load_off_thread(bytes).await?.0?;
            let limits = self.manifest.limits_for(&spec);
            self.registry
                .insert(HandlerSlot::new(&spec, limits, version));
            tracing::info!(handler = %m.name, mount = %m.mount, at_start, "handler mounted (added through the admin API)");
        }
        Ok(())
    }
}
