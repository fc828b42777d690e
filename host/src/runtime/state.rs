//! What one wasmtime `Store` holds: one field per capability, plus WASI and
//! the memory limiter.

use super::guest_output::GuestOutput;
use crate::host_calls::{
    auth::AuthState, config::ConfigState, http::OutboundState, jobs::JobsState, kv::KvState,
    log::LogState, secrets::SecretsState,
};
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Per-instance state: lives exactly as long as one request or job attempt.
pub struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    /// Enforces the handler's memory cap and remembers a refusal.
    pub limiter: MemoryLimiter,
    /// When the epoch callback traps the guest.
    pub deadline: Instant,
    /// Set when the job this instance runs is cancelled: traps the guest too.
    pub cancel: Option<std::sync::Arc<crate::jobs::CancelFlag>>,
    /// `kv` host calls.
    pub kv: KvState,
    /// `config` host calls.
    pub config: ConfigState,
    /// `secrets` host calls.
    pub secrets: SecretsState,
    /// `log` host calls.
    pub log: LogState,
    /// `jobs` host calls.
    pub jobs: JobsState,
    /// `auth` host calls.
    pub auth: AuthState,
    /// `wasi:http` outbound requests: the grant, limits and count.
    pub outbound: OutboundState,
    pub(crate) http: wasmtime_wasi_http::WasiHttpCtx,
    /// The guest's stdout and stderr, retagged for each request a warm
    /// instance serves.
    pub(crate) output: [GuestOutput; 2],
}

/// The part of [`HostState`] that belongs to one request (or job attempt).
pub(crate) struct RequestScope {
    pub deadline: Instant,
    pub cancel: Option<std::sync::Arc<crate::jobs::CancelFlag>>,
    pub kv: KvState,
    pub log: LogState,
    pub jobs: JobsState,
    pub auth: AuthState,
    pub outbound: OutboundState,
    pub trace_id: std::sync::Arc<str>,
}

impl HostState {
    /// Points a warm instance's state at its next request: deadline, caller,
    /// kv write flag, log and output tags, jobs state. The handler's config,
    /// WASI context and resource table stay as they are.
    pub(crate) fn begin(&mut self, scope: RequestScope) {
        self.deadline = scope.deadline;
        self.cancel = scope.cancel;
        self.kv = scope.kv;
        self.log = scope.log;
        self.jobs = scope.jobs;
        self.auth = scope.auth;
        self.outbound = scope.outbound;
        self.limiter.refused = false;
        for o in &self.output {
            o.begin(scope.trace_id.clone());
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_http::WasiHttpView for HostState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Caps linear memory per instance and records whether a growth was refused,
/// so that the resulting trap can be reported as memory exhaustion.
#[derive(Debug)]
pub struct MemoryLimiter {
    /// The cap in bytes.
    pub max_bytes: usize,
    /// Set once a `memory.grow` beyond the cap was refused.
    pub refused: bool,
}

/// Most table elements an instance may have.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
