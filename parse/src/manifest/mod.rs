//! `baton.toml`: listeners (and their TLS), storage, auth, limits and
//! handlers (with their route policies and capabilities).
//!
//! Every field has a default and the binary embeds [`DEFAULT_MANIFEST`], so
//! `baton serve` with no flags works anywhere. A bad manifest is reported with
//! the file, the key and what was expected.

pub mod access;
pub mod observability;
pub mod outbound;
pub mod public_url;
pub mod schedule;
pub mod secrets;
pub mod security;
pub mod storage;

pub use access::{AccessRules, Capabilities, Policy, RouteRule};
pub use observability::{METRICS_READ, MetricsConfig, OtlpProtocol, TelemetryConfig};
pub use security::{AuthConfig, ClientCa, GENERATED_CLIENT_CA, JwtAlgorithm, TlsSource, TlsSpec};
pub use storage::{Storage, check_encrypted_buckets};

use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The manifest compiled into the binary, used when no `--manifest` is given.
pub const DEFAULT_MANIFEST: &str = include_str!("../../../host/baton.toml");

/// The name shown for the embedded manifest in error messages.
pub const DEFAULT_MANIFEST_NAME: &str = "<embedded baton.toml>";

/// A manifest that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("{file}: cannot read the manifest: {source}")]
    Read {
        /// The manifest path.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or a field has the wrong type or an unknown name.
    #[error("{file}: {message}")]
    Parse {
        /// The manifest path.
        file: String,
        /// toml's message, which names the key, line and column.
        message: String,
    },
    /// The TOML is well-formed but a value is unusable.
    #[error("{file}: `{key}`: {message}")]
    Invalid {
        /// The manifest path.
        file: String,
        /// The dotted key at fault, e.g. `handler[0].mount`.
        key: String,
        /// What was expected.
        message: String,
    },
}

/// The whole manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Where data lives.
    #[serde(default)]
    pub storage: Storage,
    /// Default limits for every handler.
    #[serde(default)]
    pub limits: Limits,
    /// Tokens, roles and login limits.
    #[serde(default)]
    pub auth: AuthConfig,
    /// The job engine.
    #[serde(default)]
    pub jobs: JobsConfig,
    /// What a component may contain before it is compiled.
    #[serde(default)]
    pub components: crate::limits::ComponentLimits,
    /// Who may read the metrics.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Where traces go (none: no traces).
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// The sockets the server listens on.
    #[serde(default, rename = "listener")]
    pub listeners: Vec<Listener>,
    /// The mounted handlers.
    #[serde(default, rename = "handler")]
    pub handlers: Vec<HandlerSpec>,
    /// Where the manifest came from, for messages and relative paths.
    #[serde(skip)]
    pub source: String,
    /// The folder relative `wasm` paths are resolved against.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// `[limits]` and `[handler.limits]`: per-handler resource limits.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear-memory cap per instance, in MiB.
    pub memory_mib: u32,
    /// Wall-clock deadline for one request, in milliseconds.
    pub request_timeout_ms: u64,
    /// Wall-clock deadline for one job attempt, in milliseconds.
    pub job_timeout_ms: u64,
    /// Instances of this handler running at once; further requests wait
    /// until the request deadline, then get 503.
    pub max_concurrent: u32,
    /// Largest accepted request body, in bytes (larger → 413).
    pub max_body_bytes: u64,
    /// Jobs of this handler running at once.
    pub max_running_jobs: u32,
    /// Outbound HTTP: longest wait for a connection (and TLS), in milliseconds.
    pub http_connect_timeout_ms: u64,
    /// Outbound HTTP: longest a request may take from sending to the last
    /// byte of the response, in milliseconds (never past the calling
    /// request's or job's own deadline).
    pub http_timeout_ms: u64,
    /// Outbound HTTP: largest response body, in bytes.
    pub http_max_response_bytes: u64,
    /// Outbound HTTP: requests one request or job attempt may send.
    pub http_max_requests: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mib: 64,
            request_timeout_ms: 10_000,
            job_timeout_ms: 600_000,
            max_concurrent: 64,
            max_body_bytes: 1024 * 1024,
            max_running_jobs: 8,
            http_connect_timeout_ms: 5_000,
            http_timeout_ms: 30_000,
            http_max_response_bytes: 16 * 1024 * 1024,
            http_max_requests: 100,
        }
    }
}

/// `[jobs]`: the job engine's global settings.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Jobs running at once across every handler.
    pub max_running: u32,
    /// Delay before the first retry; doubled for each further attempt.
    pub retry_backoff_ms: u64,
    /// Longest delay between attempts.
    pub max_backoff_ms: u64,
    /// Default wall clock of one `exec` when the command gives none.
    pub exec_timeout_ms: u64,
    /// stdout and stderr kept per `exec`, each, in bytes.
    pub exec_output_bytes: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            max_running: 32,
            retry_backoff_ms: 1000,
            max_backoff_ms: 60_000,
            exec_timeout_ms: 300_000,
            exec_output_bytes: 1024 * 1024,
        }
    }
}

/// Largest per-instance memory a manifest may grant.
pub const MAX_MEMORY_MIB: u32 = 4096;

/// Partial limits in `[handler.limits]`; unset fields fall back to `[limits]`.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// See [`Limits::memory_mib`].
    pub memory_mib: Option<u32>,
    /// See [`Limits::request_timeout_ms`].
    pub request_timeout_ms: Option<u64>,
    /// See [`Limits::job_timeout_ms`].
    pub job_timeout_ms: Option<u64>,
    /// See [`Limits::max_concurrent`].
    pub max_concurrent: Option<u32>,
    /// See [`Limits::max_body_bytes`].
    pub max_body_bytes: Option<u64>,
    /// See [`Limits::max_running_jobs`].
    pub max_running_jobs: Option<u32>,
    /// See [`Limits::http_connect_timeout_ms`].
    pub http_connect_timeout_ms: Option<u64>,
    /// See [`Limits::http_timeout_ms`].
    pub http_timeout_ms: Option<u64>,
    /// See [`Limits::http_max_response_bytes`].
    pub http_max_response_bytes: Option<u64>,
    /// See [`Limits::http_max_requests`].
    pub http_max_requests: Option<u32>,
}

impl LimitOverrides {
    /// These overrides applied on top of `base`.
    pub fn over(&self, base: Limits) -> Limits {
        Limits {
            memory_mib: self.memory_mib.unwrap_or(base.memory_mib),
            request_timeout_ms: self.request_timeout_ms.unwrap_or(base.request_timeout_ms),
            job_timeout_ms: self.job_timeout_ms.unwrap_or(base.job_timeout_ms),
            max_concurrent: self.max_concurrent.unwrap_or(base.max_concurrent),
            max_body_bytes: self.max_body_bytes.unwrap_or(base.max_body_bytes),
            max_running_jobs: self.max_running_jobs.unwrap_or(base.max_running_jobs),
            http_connect_timeout_ms: self
                .http_connect_timeout_ms
                .unwrap_or(base.http_connect_timeout_ms),
            http_timeout_ms: self.http_timeout_ms.unwrap_or(base.http_timeout_ms),
            http_max_response_bytes: self
                .http_max_response_bytes
                .unwrap_or(base.http_max_response_bytes),
            http_max_requests: self.http_max_requests.unwrap_or(base.http_max_requests),
        }
    }
}

/// `[[listener]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    /// `ip:port`, e.g. `127.0.0.1:8143`.
    pub address: String,
    /// Names of the handlers served here (and `admin` for the admin API);
    /// absent = every handler and the admin API.
    pub mounts: Option<Vec<String>>,
    /// Names of handlers (or `admin`) this listener does not serve, when
    /// `mounts` is absent: e.g. a handler mounted at `/` that has a listener
    /// of its own. Handlers added later are still served.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Absent: plain HTTP. `"self-signed"` or `{ cert, key, client_ca? }`: HTTPS.
    pub tls: Option<TlsSpec>,
    /// Longest a client may take to send a request head, in milliseconds
    /// (HTTP/1.1; the connection is closed beyond it).
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Longest a connection may stay silent with no request in flight
    /// before it is closed, in milliseconds.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Connections open at once; further clients wait in the accept queue.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Where clients reach this listener, e.g. `https://baton.example.com:8143`:
    /// the base of every absolute URL in replies. Absent: the request's
    /// `Host` when it is a plain `host[:port]`, else the bound address.
    pub public_url: Option<String>,
}

fn default_header_read_timeout_ms() -> u64 {
    10_000
}

fn default_idle_timeout_ms() -> u64 {
    120_000
}

fn default_max_connections() -> u32 {
    4096
}

/// The name under which a listener's `mounts` lists the admin API.
pub const ADMIN_MOUNT_NAME: &str = "admin";

/// Where the admin API is served.
pub const ADMIN_MOUNT: &str = "/admin/v1";

impl Listener {
    /// Whether this listener serves the mount named `name`.
    pub fn serves(&self, name: &str) -> bool {
        serves(self.mounts.as_deref(), &self.exclude, name)
    }
}

/// Whether a listener with `mounts` (`None` = all) and `exclude` serves `name`.
pub fn serves(mounts: Option<&[String]>, exclude: &[String], name: &str) -> bool {
    mounts.is_none_or(|ms| ms.iter().any(|m| m == name)) && !exclude.iter().any(|m| m == name)
}

/// The JSON shape of errors the host itself produces for a handler's mount
/// (413, 500, 504…), so that clients see their API's own error format.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorStyle {
    /// `{"error": {"kind", "message", "request_id"}}`.
    #[default]
    Baton,
    /// `{"kind": "puppetlabs.orchestrator/<kind>", "msg", "details"}`.
    Puppet,
    /// `{"error": "<message>"}`; missing or wrong credentials are 403, as
    /// commissaire-http answers them.
    Commissaire,
    /// `{"success": false, "data": null, "error": "<message>"}`.
    Envelope,
    /// `{"Code": "error", "Msg": "<message>"}` (PGO's untagged, embedded `Status`).
    Pgo,
}

/// `[[handler]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerSpec {
    /// Unique name; also the kv namespace.
    pub name: String,
    /// A path to a `.wasm` component, or `builtin:<name>`.
    pub wasm: String,
    /// The path prefix served, e.g. `/orchestrator/v1`, or `/`.
    pub mount: String,
    /// The shape of host-generated errors on this mount.
    #[serde(default)]
    pub errors: ErrorStyle,
    /// Overrides of `[limits]`.
    #[serde(default)]
    pub limits: LimitOverrides,
    /// Strings the handler reads with `config.get`.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// Secrets the handler reads with `secrets.get`, by name: where each
    /// comes from (the server's environment or a file), never the value.
    #[serde(default)]
    pub secrets: BTreeMap<String, secrets::SecretSource>,
    /// Buckets whose values are stored encrypted (keys stay readable):
    /// sealed with `[storage] encryption_key` and bound to their key.
    #[serde(default)]
    pub encrypted_buckets: Vec<String>,
    /// The policy of requests no `[[handler.route]]` matches.
    #[serde(default = "default_policy")]
    pub policy: Policy,
    /// Per-route policies, first match wins.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteRule>,
    /// What the handler may do beyond its own storage.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Jobs the host spawns on a timer (`[[handler.schedule]]`).
    #[serde(default, rename = "schedule")]
    pub schedules: Vec<schedule::ScheduleSpec>,
    /// Opt-in for trusted handlers: reuse warm instances across requests.
    /// Absent (the default): a fresh instance for every request.
    pub warm_instances: Option<WarmInstances>,
}

/// `[handler.warm_instances]`: requests reuse idle instances instead of
/// instantiating afresh. What this gives up: a request can see what an
/// earlier request of the same handler left in the instance's memory (globals,
/// caches, a leaked secret), so a handler bug can leak data between callers.
/// Host state (the caller, kv writes, deadlines, logs) is still per request,
/// and an instance is retired after `max_requests` or on any trap.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WarmInstances {
    /// Requests one instance serves before it is retired (default 1000).
    #[serde(default = "default_warm_max_requests")]
    pub max_requests: u32,
    /// Idle instances kept for reuse (default 8); each holds a pool slot.
    pub max_idle: Option<u32>,
}

fn default_warm_max_requests() -> u32 {
    1000
}

fn default_policy() -> Policy {
    Policy::Authenticated
}

impl HandlerSpec {
    /// The handler's access rules.
    pub fn access(&self) -> AccessRules {
        AccessRules {
            policy: self.policy.clone(),
            routes: self.routes.clone(),
        }
    }
}

impl Manifest {
    /// Parses and validates manifest text; `source` names it in errors and
    /// `base_dir` anchors relative paths.
    pub fn parse(text: &str, source: &str, base_dir: &Path) -> Result<Manifest, ManifestError> {
        let mut manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            file: source.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        manifest.source = source.to_string();
        manifest.base_dir = base_dir.to_path_buf();
        // Relative CA files are the manifest folder's.
        for h in &mut manifest.handlers {
            if let Some(ca) = &mut h.capabilities.http_ca_file {
                *ca = base_dir.join(&*ca);
            }
            for source in h.secrets.values_mut() {
                source.resolve(base_dir);
            }
        }
        manifest.storage.resolve(base_dir);
        manifest.validate()?;
        Ok(manifest)
    }

    /// Reads and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            file: file.clone(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Manifest::parse(&text, &file, &base)
    }

    /// The embedded default manifest.
    pub fn embedded() -> Manifest {
        Manifest::parse(DEFAULT_MANIFEST, DEFAULT_MANIFEST_NAME, Path::new("."))
            .expect("the embedded manifest is valid (checked by tests)")
    }

    /// The effective limits of `handler`.
    pub fn limits_for(&self, handler: &HandlerSpec) -> Limits {
        handler.limits.over(self.limits)
    }

    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ManifestError {
        ManifestError::Invalid {
            file: self.source.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// `path` as given in the manifest, relative to the manifest's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        self.base_dir.join(path)
    }

    fn validate(&self) -> Result<(), ManifestError> {
        self.validate_limits("limits", &self.limits)?;
        let c = &self.components;
        if c.max_bytes == 0
            || c.max_nesting == 0
            || c.max_functions == 0
            || c.max_types == 0
            || c.max_function_bytes == 0
        {
            return Err(self.invalid("components", "every limit must be at least 1"));
        }
        self.auth
            .check()
            .map_err(|(key, msg)| self.invalid(key, msg))?;
        self.telemetry
            .check()
            .map_err(|(key, msg)| self.invalid(key, msg))?;
        self.storage
            .check()
            .map_err(|(key, msg)| self.invalid(key, msg))?;
        if self.listeners.is_empty() {
            return Err(self.invalid("listener", "at least one [[listener]] is required"));
        }
        let mut names = HashSet::new();
        let mut mounts = HashSet::new();
        for (i, h) in self.handlers.iter().enumerate() {
            let key = |field: &str| format!("handler[{i}].{field}");
            if h.name.is_empty()
                || !h
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(self.invalid(
                    key("name"),
                    format!(
                        "`{}` must be non-empty ASCII letters, digits, `-` or `_`",
                        h.name
                    ),
                ));
            }
            if h.name == ADMIN_MOUNT_NAME {
                return Err(self.invalid(
                    key("name"),
                    "`admin` is reserved for the admin API; choose another name",
                ));
            }
            if h.mount == ADMIN_MOUNT || strip_mount_prefix(ADMIN_MOUNT, &h.mount) {
                return Err(self.invalid(
                    key("mount"),
                    format!("`{}` is inside the admin API's {ADMIN_MOUNT}", h.mount),
                ));
            }
            for (j, p) in h.capabilities.exec.iter().enumerate() {
                if p.is_empty() || p.contains(char::is_whitespace) {
                    return Err(self.invalid(
                        format!("handler[{i}].capabilities.exec[{j}]"),
                        format!("`{p}` must be a program name or path without spaces (arguments are given at run time)"),
                    ));
                }
            }
            for (name, source) in &h.secrets {
                source
                    .check(name)
                    .map_err(|m| self.invalid(format!("handler[{i}].secrets.{name}"), m))?;
            }
            check_encrypted_buckets(&h.encrypted_buckets).map_err(|(j, m)| {
                self.invalid(format!("handler[{i}].encrypted_buckets[{j}]"), m)
            })?;
            for (j, s) in h.schedules.iter().enumerate() {
                s.check()
                    .map_err(|m| self.invalid(format!("handler[{i}].schedule[{j}]"), m))?;
                if h.schedules[..j].iter().any(|o| o.name() == s.name()) {
                    return Err(self.invalid(
                        format!("handler[{i}].schedule[{j}].name"),
                        format!(
                            "`{}` names two schedules (a name defaults to the kind)",
                            s.name()
                        ),
                    ));
                }
            }
            for (j, g) in h.capabilities.http.iter().enumerate() {
                outbound::HttpGrant::parse(g)
                    .map_err(|m| self.invalid(format!("handler[{i}].capabilities.http[{j}]"), m))?;
            }
            for (j, r) in h.routes.iter().enumerate() {
                r.check()
                    .map_err(|m| self.invalid(format!("handler[{i}].route[{j}].path"), m))?;
            }
            if !names.insert(h.name.as_str()) {
                return Err(self.invalid(key("name"), format!("`{}` is used twice", h.name)));
            }
            validate_mount(&h.mount).map_err(|m| self.invalid(key("mount"), m))?;
            if !mounts.insert(h.mount.as_str()) {
                return Err(self.invalid(key("mount"), format!("`{}` is mounted twice", h.mount)));
            }
            if h.wasm.is_empty() {
                return Err(self.invalid(key("wasm"), "expected a path or `builtin:<name>`"));
            }
            let limits = self.limits_for(h);
            self.validate_limits(&key("limits"), &limits)?;
            if let Some(w) = h.warm_instances {
                if w.max_requests == 0 || w.max_idle == Some(0) {
                    return Err(self.invalid(
                        key("warm_instances"),
                        "max_requests and max_idle must be at least 1 (remove the table for a fresh instance per request)",
                    ));
                }
                // Idle instances hold pool slots that other handlers need.
                let max_concurrent = limits.max_concurrent;
                if w.max_idle.is_some_and(|n| n > max_concurrent) {
                    return Err(self.invalid(
                        key("warm_instances.max_idle"),
                        format!("at most the handler's max_concurrent ({max_concurrent})"),
                    ));
                }
            }
        }
        for (i, l) in self.listeners.iter().enumerate() {
            if let Some(url) = &l.public_url
                && !public_url::is_valid(url)
            {
                return Err(self.invalid(
                    format!("listener[{i}].public_url"),
                    format!(
                        "`{url}` is not a base URL such as `https://baton.example.com:8143` \
                         (http or https, a host and an optional port, no path, query or user)"
                    ),
                ));
            }
            if l.address.parse::<SocketAddr>().is_err() {
                return Err(self.invalid(
                    format!("listener[{i}].address"),
                    format!("`{}` is not an `ip:port` address", l.address),
                ));
            }
            for m in l.mounts.iter().flatten() {
                if m != ADMIN_MOUNT_NAME && !names.contains(m.as_str()) {
                    return Err(self.invalid(
                        format!("listener[{i}].mounts"),
                        format!("no [[handler]] is named `{m}`"),
                    ));
                }
            }
            if l.header_read_timeout_ms == 0 || l.idle_timeout_ms == 0 || l.max_connections == 0 {
                return Err(self.invalid(
                    format!("listener[{i}]"),
                    "header_read_timeout_ms, idle_timeout_ms and max_connections must be at least 1",
                ));
            }
            if l.mounts.is_some() && !l.exclude.is_empty() {
                return Err(self.invalid(
                    format!("listener[{i}].exclude"),
                    "give either `mounts` (what is served) or `exclude` (what is not), not both",
                ));
            }
            for m in &l.exclude {
                if m != ADMIN_MOUNT_NAME && !names.contains(m.as_str()) {
                    return Err(self.invalid(
                        format!("listener[{i}].exclude"),
                        format!("no [[handler]] is named `{m}`"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_limits(&self, key: &str, l: &Limits) -> Result<(), ManifestError> {
        if l.memory_mib == 0 || l.memory_mib > MAX_MEMORY_MIB {
            return Err(self.invalid(
                format!("{key}.memory_mib"),
                format!("{} is out of range 1..={MAX_MEMORY_MIB}", l.memory_mib),
            ));
        }
        if l.request_timeout_ms == 0 || l.job_timeout_ms == 0 {
            return Err(self.invalid(key, "timeouts must be at least 1 ms"));
        }
        if l.max_concurrent == 0 {
            return Err(self.invalid(format!("{key}.max_concurrent"), "must be at least 1"));
        }
        if l.max_running_jobs == 0 {
            return Err(self.invalid(format!("{key}.max_running_jobs"), "must be at least 1"));
        }
        if l.http_connect_timeout_ms == 0 || l.http_timeout_ms == 0 {
            return Err(self.invalid(key, "http timeouts must be at least 1 ms"));
        }
        Ok(())
    }
}

/// Whether `path` lies below `prefix` on a segment boundary.
fn strip_mount_prefix(prefix: &str, path: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|r| r.starts_with('/'))
}

/// Why `mount` cannot be a handler's mount, if it cannot.
pub fn check_mount(mount: &str) -> Result<(), String> {
    validate_mount(mount)?;
    if mount == ADMIN_MOUNT || strip_mount_prefix(ADMIN_MOUNT, mount) {
        return Err(format!("`{mount}` is inside the admin API's {ADMIN_MOUNT}"));
    }
    Ok(())
}

/// Why `l` is unusable, if it is (the checks of `[limits]`).
pub fn check_limits(l: &Limits) -> Result<(), String> {
    if l.memory_mib == 0 || l.memory_mib > MAX_MEMORY_MIB {
        return Err(format!(
            "memory_mib {} is out of range 1..={MAX_MEMORY_MIB}",
            l.memory_mib
        ));
    }
    if l.request_timeout_ms == 0 || l.job_timeout_ms == 0 {
        return Err("timeouts must be at least 1 ms".into());
    }
    if l.max_concurrent == 0 || l.max_running_jobs == 0 {
        return Err("max_concurrent and max_running_jobs must be at least 1".into());
    }
    if l.http_connect_timeout_ms == 0 || l.http_timeout_ms == 0 {
        return Err("http timeouts must be at least 1 ms".into());
    }
    Ok(())
}

/// A mount is `/` or `/`-separated segments, each a plain name: no empty,
/// `.` or `..` segment, no `%` (a mount is matched against the decoded
/// path, so an escape in it would match nothing or, decoded, something
/// else), no backslash, NUL or other control character, and none of
/// `? # { }` or spaces.
fn validate_mount(mount: &str) -> Result<(), String> {
    if mount == "/" {
        return Ok(());
    }
    let Some(rest) = mount.strip_prefix('/') else {
        return Err(format!(
            "`{}` must start with `/` (or be exactly `/`)",
            mount.escape_debug()
        ));
    };
    for segment in rest.split('/') {
        let why = match segment {
            "" => "an empty segment (`//` or a trailing `/`)",
            "." | ".." => "a `.` or `..` segment",
            s if s.contains('%') => "a `%` escape",
            s if s.chars().any(|c| c == '\\' || c.is_control()) => {
                "a backslash or control character"
            }
            s if s.contains(['?', '#', '{', '}', ' ']) => "`?`, `#`, `{`, `}` or a space",
            _ => continue,
        };
        return Err(format!(
            "`{}` must be a plain path: it has {why}",
            mount.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, "test.toml", Path::new("."))
    }

    const LISTENER: &str = "[[listener]]\naddress = \"127.0.0.1:0\"\n";

    #[test]
    fn embedded_manifest_is_valid() {
        let m = Manifest::embedded();
        assert!(m.handlers.iter().any(|h| h.name == "orchestrator"));
    }

    #[test]
    fn defaults_fill_every_limit() {
        let m = parse(&format!(
            "{LISTENER}[[handler]]\nname = \"a\"\nwasm = \"a.wasm\"\nmount = \"/a\"\n[handler.limits]\nmemory_mib = 8\n"
        ))
        .unwrap();
        let l = m.limits_for(&m.handlers[0]);
        assert_eq!(l.memory_mib, 8);
        assert_eq!(l.request_timeout_ms, Limits::default().request_timeout_ms);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse(&format!("{LISTENER}[storage]\ndatadir = \"x\"\n")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("test.toml:"), "{msg}");
        assert!(msg.contains("datadir"), "{msg}");
    }

    #[test]
    fn a_public_url_with_a_path_or_credentials_is_refused() {
        for bad in ["https://x/api", "https://u:p@x", "baton.example"] {
            let err = parse(&format!("{LISTENER}public_url = \"{bad}\"\n")).unwrap_err();
            assert!(err.to_string().contains("listener[0].public_url"), "{err}");
        }
        parse(&format!(
            "{LISTENER}public_url = \"https://baton.example:8143\"\n"
        ))
        .unwrap();
    }

    #[test]
    fn wrong_type_is_named() {
        let err = parse(&format!("{LISTENER}[limits]\nmemory_mib = \"lots\"\n")).unwrap_err();
        assert!(err.to_string().contains("memory_mib"), "{err}");
    }

    #[test]
    fn bad_mount_and_duplicates_are_refused() {
        let h = |name: &str, mount: &str| {
            format!("[[handler]]\nname = \"{name}\"\nwasm = \"x.wasm\"\nmount = \"{mount}\"\n")
        };
        let err = parse(&format!("{LISTENER}{}", h("a", "nope"))).unwrap_err();
        assert!(err.to_string().contains("handler[0].mount"), "{err}");
        let err = parse(&format!("{LISTENER}{}{}", h("a", "/x"), h("a", "/y"))).unwrap_err();
        assert!(err.to_string().contains("handler[1].name"), "{err}");
        let err = parse(&format!("{LISTENER}{}{}", h("a", "/x"), h("b", "/x"))).unwrap_err();
        assert!(err.to_string().contains("mounted twice"), "{err}");
        for bad in [
            "/x/../admin/v1",
            "/x/./y",
            "/x%00",
            "/a%2e%2e",
            "/x/",
            "/a\\\\b",
        ] {
            let err = parse(&format!("{LISTENER}{}", h("a", bad))).unwrap_err();
            assert!(
                err.to_string().contains("plain path") || err.to_string().contains("segment"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn listener_must_name_known_handlers_and_parse() {
        let err = parse("[[listener]]\naddress = \"localhost\"\n").unwrap_err();
        assert!(err.to_string().contains("listener[0].address"), "{err}");
        let err =
            parse("[[listener]]\naddress = \"127.0.0.1:1\"\nmounts = [\"ghost\"]\n").unwrap_err();
        assert!(err.to_string().contains("ghost"), "{err}");
        assert!(parse("").unwrap_err().to_string().contains("listener"));
    }

    #[test]
    fn listener_exclude_hides_named_handlers_only() {
        let h = |name: &str, mount: &str| {
            format!("[[handler]]\nname = \"{name}\"\nwasm = \"x.wasm\"\nmount = \"{mount}\"\n")
        };
        let m = parse(&format!(
            "[[listener]]\naddress = \"127.0.0.1:0\"\nexclude = [\"root\"]\n{}{}",
            h("root", "/"),
            h("a", "/a")
        ))
        .unwrap();
        let l = &m.listeners[0];
        assert!(!l.serves("root"));
        assert!(l.serves("a") && l.serves(ADMIN_MOUNT_NAME) && l.serves("added-later"));
        let err =
            parse("[[listener]]\naddress = \"127.0.0.1:1\"\nexclude = [\"ghost\"]\n").unwrap_err();
        assert!(err.to_string().contains("listener[0].exclude"), "{err}");
        let err = parse(&format!(
            "[[listener]]\naddress = \"127.0.0.1:1\"\nmounts = [\"a\"]\nexclude = [\"a\"]\n{}",
            h("a", "/a")
        ))
        .unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
    }

    #[test]
    fn memory_out_of_range_is_refused() {
        let err = parse(&format!("{LISTENER}[limits]\nmemory_mib = 0\n")).unwrap_err();
        assert!(err.to_string().contains("limits.memory_mib"), "{err}");
    }

    #[test]
    fn tls_accepts_self_signed_or_files_and_explains_the_rest() {
        let m = parse("[[listener]]\naddress = \"127.0.0.1:0\"\ntls = \"self-signed\"\n").unwrap();
        assert_eq!(
            m.listeners[0].tls.as_ref().unwrap().source,
            TlsSource::SelfSigned
        );
        let m = parse(
            "[[listener]]\naddress = \"127.0.0.1:0\"\ntls = { cert = \"c.pem\", key = \"k.pem\", client_ca = \"ca.pem\" }\n",
        )
        .unwrap();
        let tls = m.listeners[0].tls.as_ref().unwrap();
        assert!(matches!(tls.source, TlsSource::Files { .. }));
        assert!(tls.client_ca.is_some());
        let err = parse("[[listener]]\naddress = \"127.0.0.1:0\"\ntls = \"yes\"\n").unwrap_err();
        assert!(err.to_string().contains("self-signed"), "{err}");
        let err = parse("[[listener]]\naddress = \"127.0.0.1:0\"\ntls = { cert = \"c.pem\" }\n")
            .unwrap_err();
        assert!(err.to_string().contains("both `cert` and `key`"), "{err}");
    }

    #[test]
    fn client_ca_self_signed_names_the_generated_ca() {
        let m = parse(
            "[[listener]]\naddress = \"127.0.0.1:0\"\ntls = { self_signed = true, client_ca = \"self-signed\" }\n",
        )
        .unwrap();
        let tls = m.listeners[0].tls.as_ref().unwrap();
        assert_eq!(tls.source, TlsSource::SelfSigned);
        assert_eq!(tls.client_ca, Some(ClientCa::Generated));
        let err = parse(
            "[[listener]]\naddress = \"127.0.0.1:0\"\ntls = { cert = \"c.pem\", key = \"k.pem\", client_ca = \"self-signed\" }\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("self_signed = true"), "{err}");
    }

    #[test]
    fn routes_policies_and_auth_are_checked() {
        let h = "[[handler]]\nname = \"a\"\nwasm = \"a.wasm\"\nmount = \"/a\"\n";
        let m = parse(&format!(
            "{LISTENER}{h}policy = \"public\"\n[[handler.route]]\npath = \"/x/*\"\nmethods = [\"POST\"]\npolicy = \"jobs:write\"\n"
        ))
        .unwrap();
        let rules = m.handlers[0].access();
        assert_eq!(rules.policy_for("GET", "/x/1"), &Policy::Public);
        assert_eq!(
            rules.policy_for("POST", "/x/1"),
            &Policy::Permission("jobs:write".into())
        );
        let err = parse(&format!("{LISTENER}{h}policy = \"Everyone\"\n")).unwrap_err();
        assert!(err.to_string().contains("not a policy"), "{err}");
        let err = parse(&format!(
            "{LISTENER}{h}[[handler.route]]\npath = \"/a/*/b\"\npolicy = \"public\"\n"
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("handler[0].route[0].path"),
            "{err}"
        );
        let err = parse(&format!("{LISTENER}[auth]\nalgorithm = \"RS256\"\n")).unwrap_err();
        assert!(err.to_string().contains("private_key"), "{err}");
        let err = parse(&format!("{LISTENER}[auth]\nalgorithm = \"none\"\n")).unwrap_err();
        assert!(err.to_string().contains("algorithm"), "{err}");
        let err = parse(&format!(
            "{LISTENER}[[handler]]\nname = \"admin\"\nwasm = \"a.wasm\"\nmount = \"/z\"\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("reserved"), "{err}");
        let err = parse(&format!(
            "{LISTENER}[[handler]]\nname = \"z\"\nwasm = \"a.wasm\"\nmount = \"/admin/v1/x\"\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("admin API"), "{err}");
    }

    #[test]
    fn warm_instances_are_bounded() {
        let handler = |table: &str| {
            format!(
                "[[listener]]\naddress = \"127.0.0.1:1\"\n[[handler]]\nname = \"h\"\nwasm = \"builtin:h\"\nmount = \"/h\"\n[handler.limits]\nmax_concurrent = 4\n[handler.warm_instances]\n{table}"
            )
        };
        assert!(parse(&handler("max_idle = 4\n")).is_ok());
        let err = parse(&handler("max_idle = 5\n")).unwrap_err().to_string();
        assert!(err.contains("warm_instances.max_idle"), "{err}");
        let err = parse(&handler("max_requests = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("warm_instances"), "{err}");
    }
}
