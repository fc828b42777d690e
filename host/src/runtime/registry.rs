//! Mounted handlers: which slot serves a path, and which version a slot
//! currently runs. Versions are swapped atomically (`ArcSwap`): a request
//! keeps the version it started with.

use super::bindings::HandlerPre;
use super::state::HostState;
use super::warm::WarmPool;
use crate::host_calls::http::OutboundPolicy;
use crate::manifest::{AccessRules, Capabilities, ErrorStyle, HandlerSpec, Limits};
use crate::metrics::HandlerMetrics;
use arc_swap::ArcSwap;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::Semaphore;

/// One compiled, type-checked version of a handler component.
pub struct HandlerVersion {
    /// sha256 of the component bytes, lower-case hex.
    pub sha256: String,
    /// Size of the component in bytes.
    pub size: usize,
    /// Imports resolved once; instantiating from it is cheap.
    pub pre: HandlerPre<HostState>,
    /// When this version was loaded.
    pub loaded_at: SystemTime,
    /// Whether the compiled code came from the on-disk cache.
    pub from_cache: bool,
}

/// A mounted handler: its settings and its current version.
pub struct HandlerSlot {
    /// The handler's name (also its kv namespace).
    pub name: Arc<str>,
    /// The path prefix it serves.
    pub mount: String,
    /// Its effective limits.
    pub limits: Limits,
    /// The shape of host-generated errors on its mount.
    pub errors: ErrorStyle,
    /// Its `config` table.
    pub config: Arc<BTreeMap<String, String>>,
    /// Where its secrets come from.
    pub secrets: crate::host_calls::secrets::Secrets,
    /// Who may call which route.
    pub access: AccessRules,
    /// What it may do beyond its own storage.
    pub capabilities: Capabilities,
    /// Buckets whose values are stored encrypted.
    pub encrypted_buckets: Arc<[String]>,
    /// Where its outbound HTTP may go, and its limits.
    pub outbound: Arc<OutboundPolicy>,
    /// Bounds the instances running at once.
    pub permits: Arc<Semaphore>,
    /// The manifest's `wasm` when it is a file (watched for changes).
    pub wasm_path: Option<std::path::PathBuf>,
    /// The last component refused for this slot, and why.
    pub last_rejection: std::sync::Mutex<Option<Rejection>>,
    /// Idle instances for reuse, when the manifest opts in (`warm_instances`).
    pub warm: Option<WarmPool>,
    /// The handles of its metric series.
    pub metrics: Arc<HandlerMetrics>,
    current: ArcSwap<HandlerVersion>,
}

/// A component refused for a slot.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rejection {
    /// sha256 of the refused bytes.
    pub sha256: String,
    /// Why.
    pub reason: String,
    /// Milliseconds since the epoch.
    pub at_ms: u64,
}

/// `spec`'s outbound HTTP policy; a CA file that cannot be read (it was
/// when the manifest was checked) is logged and left out, so HTTPS to
/// places only it vouches for fails verification.
fn outbound_policy(spec: &HandlerSpec, limits: &Limits) -> OutboundPolicy {
    let caps = &spec.capabilities;
    OutboundPolicy::new(&spec.name, &caps.http, caps.http_ca_file.as_deref(), limits)
        .or_else(|e| {
            tracing::error!(handler = %spec.name, "{e}; outbound HTTPS trusts the system's roots only");
            OutboundPolicy::new(&spec.name, &caps.http, None, limits)
        })
        .unwrap_or_else(|e| {
            tracing::error!(handler = %spec.name, "{e}; no outbound HTTP");
            OutboundPolicy::nowhere(&spec.name)
        })
}

impl HandlerSlot {
    /// A slot for `spec` with effective `limits`, running `version`.
    pub fn new(spec: &HandlerSpec, limits: Limits, version: HandlerVersion) -> Self {
        Self::with_current(spec, limits, Arc::new(version))
    }

    /// A slot for `spec` running a version another slot already runs
    /// (a manifest reload changing settings, not code).
    pub fn with_current(spec: &HandlerSpec, limits: Limits, version: Arc<HandlerVersion>) -> Self {
        let metrics = crate::metrics::global();
        metrics.serving(&spec.name, &version.sha256);
        HandlerSlot {
            name: Arc::from(spec.name.as_str()),
            mount: spec.mount.clone(),
            limits,
            errors: spec.errors,
            config: Arc::new(spec.config.clone()),
            secrets: Arc::new(spec.secrets.clone()),
            access: spec.access(),
            capabilities: spec.capabilities.clone(),
            encrypted_buckets: spec.encrypted_buckets.clone().into(),
            outbound: Arc::new(outbound_policy(spec, &limits)),
            wasm_path: None,
            last_rejection: std::sync::Mutex::new(None),
            permits: Arc::new(Semaphore::new(limits.max_concurrent as usize)),
            warm: spec
                .warm_instances
                .map(|w| WarmPool::new(w, limits.max_concurrent)),
            metrics: metrics.handler(&spec.name),
            current: ArcSwap::new(version),
        }
    }

    /// Remembers that `sha256` was refused for `reason`.
    pub fn reject(&self, sha256: &str, reason: &str) {
        *self
            .last_rejection
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Rejection {
            sha256: sha256.to_string(),
            reason: reason.to_string(),
            at_ms: crate::jobs::model::now_ms(),
        });
    }

    /// The last refusal, if any.
    pub fn rejection(&self) -> Option<Rejection> {
        self.last_rejection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The version new requests run.
    pub fn current(&self) -> Arc<HandlerVersion> {
        self.current.load_full()
    }

    /// Makes `version` the one new requests run; in-flight requests finish on theirs.
    pub fn swap(&self, version: HandlerVersion) -> Arc<HandlerVersion> {
        crate::metrics::global().serving(&self.name, &version.sha256);
        self.current.swap(Arc::new(version))
    }

    /// If `path` is under this slot's mount, the rest of it (starting with `/`).
    pub fn strip_mount<'p>(&self, path: &'p str) -> Option<&'p str> {
        strip_mount(&self.mount, path)
    }
}

/// If `path` is `mount` or below it (on a segment boundary), the rest of it,
/// starting with `/`.
pub fn strip_mount<'p>(mount: &str, path: &'p str) -> Option<&'p str> {
    if mount == "/" {
        return Some(path);
    }
    let rest = path.strip_prefix(mount)?;
    if rest.is_empty() {
        Some("/")
    } else if rest.starts_with('/') {
        Some(rest)
    } else {
        None
    }
}

/// Every mounted handler, longest mount first.
#[derive(Default)]
pub struct Registry {
    slots: ArcSwap<Vec<Arc<HandlerSlot>>>,
}

impl Registry {
    /// Adds (or replaces, by name) a slot.
    pub fn insert(&self, slot: HandlerSlot) {
        let slot = Arc::new(slot);
        self.slots.rcu(|slots| {
            let mut next: Vec<Arc<HandlerSlot>> = slots
                .iter()
                .filter(|s| s.name != slot.name)
                .cloned()
                .collect();
            next.push(slot.clone());
            next.sort_by_key(|s| std::cmp::Reverse(s.mount.len()));
            next
        });
    }

    /// Removes the slot named `name`; in-flight requests keep their `Arc`.
    pub fn remove(&self, name: &str) -> bool {
        let mut removed = false;
        self.slots.rcu(|slots| {
            let next: Vec<Arc<HandlerSlot>> =
                slots.iter().filter(|s| &*s.name != name).cloned().collect();
            removed = next.len() != slots.len();
            next
        });
        removed
    }

    /// The slot named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<HandlerSlot>> {
        self.slots.load().iter().find(|s| &*s.name == name).cloned()
    }

    /// Every slot, longest mount first.
    pub fn all(&self) -> Vec<Arc<HandlerSlot>> {
        self.slots.load().as_ref().clone()
    }

    /// The slot whose mount is the longest prefix of `path` (on a segment
    /// boundary) among those `allowed` (all when `None`), and the path below it.
    pub fn route(
        &self,
        path: &str,
        allowed: Option<&[String]>,
    ) -> Option<(Arc<HandlerSlot>, String)> {
        self.route_where(path, |name| {
            allowed.is_none_or(|names| names.iter().any(|n| n == name))
        })
    }

    /// Like [`Registry::route`], among the slots whose name `serves` accepts.
    pub fn route_where(
        &self,
        path: &str,
        serves: impl Fn(&str) -> bool,
    ) -> Option<(Arc<HandlerSlot>, String)> {
        let slots = self.slots.load();
        slots.iter().filter(|s| serves(&s.name)).find_map(|s| {
            s.strip_mount(path)
                .map(|rest| (s.clone(), rest.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::strip_mount;

    #[test]
    fn mounts_match_on_segment_boundaries() {
        assert_eq!(
            strip_mount("/orchestrator/v1", "/orchestrator/v1"),
            Some("/")
        );
        assert_eq!(
            strip_mount("/orchestrator/v1", "/orchestrator/v1/"),
            Some("/")
        );
        assert_eq!(
            strip_mount("/orchestrator/v1", "/orchestrator/v1/jobs/8"),
            Some("/jobs/8")
        );
        assert_eq!(strip_mount("/orchestrator/v1", "/orchestrator/v10"), None);
        assert_eq!(strip_mount("/orchestrator/v1", "/other"), None);
        assert_eq!(strip_mount("/", "/health"), Some("/health"));
    }
}
