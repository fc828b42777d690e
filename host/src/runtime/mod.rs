//! The wasmtime side: one engine with the pooling allocator, one linker with
//! every host call, handler versions compiled once (`HandlerPre`), and a fresh
//! sandboxed instance for every request.

pub mod bindings;
pub mod cache;
pub mod guest_output;
/// The `[components]` pre-check (in `baton-parse`, fuzzable without wasmtime).
pub use baton_parse::limits;
pub mod registry;
pub mod state;
pub mod versions;
pub mod warm;

use crate::auth::Auth;
use crate::host_calls::{
    self, auth::AuthState, config::ConfigState, http::OutboundState, jobs::JobsState, kv::KvState,
    log::LogState, secrets::SecretsState,
};
use crate::jobs::CancelFlag;
use crate::metrics::FailureKind;
use crate::store::sealed::SealedKv;
use crate::store::{KeyRing, KvStore};
use bindings::{HandlerPre, types};
use guest_output::{GuestOutput, Stream};
use registry::{HandlerSlot, HandlerVersion};
use sha2::{Digest, Sha256};
use state::{HostState, MemoryLimiter, RequestScope};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};
use warm::WarmInstance;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
    UpdateDeadline,
};
use wasmtime_wasi::WasiCtxBuilder;

/// How often the epoch advances; the granularity of wall-clock deadlines and
/// of yields from long-running guests back to the async executor.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Bytes of each pooled linear memory reset in place (not decommitted) when
/// an instance ends: a handler's stack, data and first heap pages.
const KEEP_RESIDENT_MEMORY: usize = 2 << 20;
/// Bytes of each pooled table reset in place when an instance ends.
const KEEP_RESIDENT_TABLE: usize = 64 << 10;
/// How many slot decommits are queued before one batch of `madvise` calls.
const DECOMMIT_BATCH: usize = 16;

/// Engine-wide sizing, taken from the manifest.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeConfig {
    /// Instances alive at once across all handlers (pool slots).
    pub max_instances: u32,
    /// The largest per-handler memory cap, in bytes (pool slot size).
    pub max_memory_bytes: usize,
    /// What a component may contain before it is compiled (`[components]`).
    pub components: limits::ComponentLimits,
}

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a WebAssembly component at all.
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    /// The bytes are past a `[components]` limit or not valid WebAssembly
    /// (found before anything was compiled).
    #[error("refused before it was compiled: {0}")]
    Limits(#[from] limits::LimitError),
    /// The component does not compile.
    #[error("does not compile: {0}")]
    Compile(String),
    /// The component's imports or exports do not match the `baton:api/handler` world.
    #[error("does not satisfy the baton:api/handler world: {0}")]
    World(String),
}

/// Why a request (or job) could not produce a response.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access…).
    #[error("the handler trapped: {0}")]
    Trap(String),
    /// The guest ran past its wall-clock deadline.
    #[error("the handler ran past its {0} ms deadline")]
    Timeout(u64),
    /// The guest tried to grow its memory past the cap.
    #[error("the handler exceeded its {0} MiB memory limit")]
    MemoryExhausted(u32),
    /// No instance slot was free before the deadline.
    #[error("the handler is at its concurrency limit")]
    Overloaded,
    /// The host failed to set up the instance.
    #[error("could not instantiate the handler: {0}")]
    Instantiate(String),
}

/// Who and what one instance runs for.
struct InstanceSetup<'a> {
    /// The request id, or `job:<id>`, for logs.
    trace_id: &'a str,
    /// Wall clock until the instance is interrupted.
    timeout: Duration,
    /// The authenticated caller.
    principal: Option<&'a types::Principal>,
    /// The caller's `ip:port` (empty for jobs).
    remote_addr: &'a str,
    /// The `jobs` host-call state.
    jobs: JobsState,
    /// Interrupts the instance when set.
    cancel: Option<Arc<CancelFlag>>,
}

/// The result of one `handle` call.
pub struct Outcome {
    /// What the guest answered.
    pub response: types::Response,
    /// Whether the guest wrote to kv (and the store must be flushed before replying).
    pub wrote: bool,
}

/// The engine, the linker and what every instance needs.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    store: Arc<dyn KvStore>,
    keys: Arc<KeyRing>,
    auth: Arc<Auth>,
    components: limits::ComponentLimits,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// Whether `bytes` are a core WebAssembly module (not a component).
fn is_core_module(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm") && bytes.get(4..8) == Some(&[1, 0, 0, 0])
}

/// Turns a `wasm32-wasip1` core module into a component with the WASI
/// preview-1 adapter (reactor flavour), using the component-type section
/// `wit-bindgen` left in the module. Modules with no such section, or whose
/// imports the adapter cannot provide, are refused with the reason.
fn adapt_core_module(bytes: &[u8]) -> Result<Vec<u8>, LoadError> {
    use wasi_preview1_component_adapter_provider::{
        WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
    };
    let refused = |e: anyhow::Error| {
        LoadError::NotAComponent(format!(
            "a core module (wasm32-wasip1?) that could not be made into a component with the WASI preview-1 adapter: {e:#}; build it with the baton SDK (which embeds the world), or for wasm32-wasip2"
        ))
    };
    wit_component::ComponentEncoder::default()
        .module(bytes)
        .map_err(refused)?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .map_err(refused)?
        .validate(true)
        .encode()
        .map_err(refused)
}

/// The sha256 of `bytes` as lower-case hex: a handler version's identity.
pub fn version_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Runtime {
    /// Builds the engine (pooling allocator, copy-on-write images, epoch
    /// interruption) and the linker, and starts the epoch ticker.
    pub fn new(
        config: RuntimeConfig,
        store: Arc<dyn KvStore>,
        keys: Arc<KeyRing>,
        auth: Arc<Auth>,
    ) -> anyhow::Result<Runtime> {
        let n = config.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 8)
            .total_stacks(n)
            .max_memory_size(config.max_memory_bytes)
            // A freed slot is reset in place instead of being handed back to
            // the kernel: the pages a request dirtied (found with the
            // PAGEMAP_SCAN ioctl where the kernel has it, Linux ≥ 6.7) are
            // rewritten from the image with memset, up to these sizes, so the
            // next instance in the slot takes no page faults there and no
            // `madvise` (with its TLB shootdowns) runs per request.
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLE)
            .pagemap_scan(wasmtime::Enabled::Auto)
            // What still needs `madvise` is decommitted in batches.
            .decommit_batch_size(DECOMMIT_BATCH);
        let mut cfg = Config::new();
        if std::env::var_os("BATON_PERFMAP").is_some_and(|v| v == "1") {
            // `perf` can then name guest functions (it reads /tmp/perf-PID.map).
            cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        cfg.wasm_component_model(true)
            // Handlers are plain request/response exports (no
            // component-model async): without the concurrent-task machinery
            // a store is cheaper to create and a call is a direct fiber call.
            .concurrency_support(false)
            .epoch_interruption(true)
            .memory_init_cow(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&cfg)?;
        let mut linker = Linker::new(&engine);
        host_calls::add_to_linker(&mut linker)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (weak_engine, stop) = (engine.weak(), ticker_stop.clone());
        std::thread::Builder::new()
            .name("baton-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })?;
        Ok(Runtime {
            engine,
            linker,
            store,
            keys,
            auth,
            components: config.components,
            ticker_stop,
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Checks `bytes` against the `[components]` limits and validates them,
    /// compiles them (or takes them from `cache`) and checks them against
    /// the world. CPU-heavy: call it off the async executor (`spawn_blocking`).
    pub fn load(
        &self,
        bytes: &[u8],
        cache: Option<&cache::CompileCache>,
    ) -> Result<HandlerVersion, LoadError> {
        if !bytes.starts_with(b"\0asm") {
            return Err(LoadError::NotAComponent(
                "the file does not start with the wasm magic bytes".into(),
            ));
        }
        // Before the cache too: the limits may have changed since.
        self.components.check(bytes)?;
        let sha256 = version_of(bytes);
        let cached = cache.and_then(|c| c.get(&self.engine, &sha256));
        let adapted;
        let component_bytes = if cached.is_none() && is_core_module(bytes) {
            adapted = adapt_core_module(bytes)?;
            adapted.as_slice()
        } else {
            bytes
        };
        let from_cache = cached.is_some();
        let component = match cached {
            Some(c) => c,
            None => {
                let c = self.compile(component_bytes)?;
                if let Some(cache) = cache {
                    cache.put(&sha256, &c);
                }
                c
            }
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::World(format!("{e:#}")))?;
        let pre = HandlerPre::new(pre).map_err(|e| LoadError::World(format!("{e:#}")))?;
        Ok(HandlerVersion {
            sha256,
            size: bytes.len(),
            pre,
            loaded_at: SystemTime::now(),
            from_cache,
        })
    }

    fn compile(&self, bytes: &[u8]) -> Result<Component, LoadError> {
        Component::new(&self.engine, bytes).map_err(|e| {
            // Core modules never get here: `load` adapts them first.
            let msg = format!("{e:#}");
            if !bytes.starts_with(b"\0asm") {
                LoadError::NotAComponent(format!(
                    "the file does not start with the wasm magic bytes ({msg})"
                ))
            } else {
                LoadError::Compile(msg)
            }
        })
    }

    /// The store as `slot`'s handler sees it: its encrypted buckets sealed.
    fn kv_for(&self, slot: &HandlerSlot) -> Arc<dyn KvStore> {
        if slot.encrypted_buckets.is_empty() {
            return self.store.clone();
        }
        Arc::new(SealedKv::new(
            self.store.clone(),
            self.keys.clone(),
            slot.encrypted_buckets.clone(),
        ))
    }

    /// The per-request part of an instance's state.
    fn request_scope(&self, slot: &HandlerSlot, setup: InstanceSetup<'_>) -> RequestScope {
        let handler: Arc<str> = slot.name.clone();
        let trace_id: Arc<str> = Arc::from(setup.trace_id);
        let deadline = Instant::now() + setup.timeout;
        RequestScope {
            deadline,
            outbound: OutboundState::new(slot.outbound.clone(), deadline, setup.cancel.clone()),
            cancel: setup.cancel,
            kv: KvState::new(self.kv_for(slot), handler.clone(), slot.metrics.clone()),
            log: LogState::new(handler, trace_id.clone()),
            jobs: setup.jobs,
            auth: AuthState::new(
                self.auth.clone(),
                setup.principal,
                setup.remote_addr,
                slot.capabilities.issue_tokens,
            ),
            trace_id,
        }
    }

    fn new_store(&self, slot: &HandlerSlot, setup: InstanceSetup<'_>) -> Store<HostState> {
        let scope = self.request_scope(slot, setup);
        let output = [Stream::Stdout, Stream::Stderr]
            .map(|s| GuestOutput::new(s, slot.name.clone(), scope.trace_id.clone()));
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(output[0].clone())
            .stderr(output[1].clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                max_bytes: slot.limits.memory_mib as usize * 1024 * 1024,
                refused: false,
            },
            deadline: scope.deadline,
            cancel: scope.cancel,
            kv: scope.kv,
            config: ConfigState::new(slot.config.clone()),
            secrets: SecretsState::new(slot.name.clone(), slot.secrets.clone()),
            log: scope.log,
            jobs: scope.jobs,
            auth: scope.auth,
            outbound: scope.outbound,
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            output,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            let data = ctx.data();
            let cancelled = data.cancel.as_ref().is_some_and(|c| c.is_cancelled());
            if cancelled || Instant::now() >= data.deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Instantiates `version` in a fresh store and drops it: a probe that the
    /// version can start (and the bench of instantiation alone).
    pub async fn instantiate_and_drop(
        &self,
        slot: &HandlerSlot,
        version: &HandlerVersion,
        jobs: JobsState,
    ) -> Result<(), InvokeError> {
        let setup = InstanceSetup {
            trace_id: "probe",
            timeout: Duration::from_millis(slot.limits.request_timeout_ms),
            principal: None,
            remote_addr: "",
            jobs,
            cancel: None,
        };
        let mut store = self.new_store(slot, setup);
        match version.pre.instantiate_async(&mut store).await {
            Ok(_) => Ok(()),
            Err(e) => Err(classify(
                &store,
                "instantiate",
                e,
                slot.limits.request_timeout_ms,
                slot.limits.memory_mib,
            )),
        }
    }

    /// Runs `run-job` for `job` in a fresh instance of `version`, within
    /// `timeout` (or until `cancel` is set). The guest's own `Err` is the
    /// inner error; traps, timeouts and memory exhaustion are the outer one.
    pub async fn run_job(
        &self,
        slot: &HandlerSlot,
        version: &HandlerVersion,
        job: types::JobContext,
        jobs: JobsState,
        timeout: Duration,
        cancel: Arc<CancelFlag>,
    ) -> Result<Result<Vec<u8>, String>, InvokeError> {
        let trace_id = format!("job:{}", job.id);
        let setup = InstanceSetup {
            trace_id: &trace_id,
            timeout,
            principal: None,
            remote_addr: "",
            jobs,
            cancel: Some(cancel),
        };
        let mut store = self.new_store(slot, setup);
        slot.metrics.instance(false);
        let result = async {
            let instance = version
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| ("instantiate", e))?;
            instance
                .call_run_job(&mut store, &job)
                .await
                .map_err(|e| ("run-job", e))
        }
        .await;
        match result {
            Ok(out) => Ok(out),
            Err((phase, e)) => Err(failed(
                slot,
                classify(
                    &store,
                    phase,
                    e,
                    timeout.as_millis() as u64,
                    slot.limits.memory_mib,
                ),
            )),
        }
    }

    /// Runs `req` through a fresh instance of `version`, within the slot's
    /// memory cap and deadline.
    pub async fn handle(
        &self,
        slot: &HandlerSlot,
        version: &HandlerVersion,
        req: &types::Request,
        jobs: JobsState,
    ) -> Result<Outcome, InvokeError> {
        let timeout_ms = slot.limits.request_timeout_ms;
        // A free permit is taken at once; only a handler at its limit waits
        // (and only then is a timer armed).
        let _permit = match slot.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => tokio::time::timeout(
                Duration::from_millis(timeout_ms),
                slot.permits.clone().acquire_owned(),
            )
            .await
            .map_err(|_| InvokeError::Overloaded)?
            .map_err(|_| InvokeError::Overloaded)?,
        };

        let setup = InstanceSetup {
            trace_id: &req.request_id,
            timeout: Duration::from_millis(timeout_ms),
            principal: req.principal.as_ref(),
            remote_addr: &req.remote_addr,
            jobs,
            cancel: None,
        };
        // A warm instance of this version when the slot keeps them, else a
        // fresh one.
        let (mut store, warm, served) =
            match slot.warm.as_ref().and_then(|p| p.take(&version.sha256)) {
                Some(w) => {
                    let mut store = w.store;
                    store.data_mut().begin(self.request_scope(slot, setup));
                    store.set_epoch_deadline(1);
                    (store, Some(w.handler), w.served)
                }
                None => (self.new_store(slot, setup), None, 0),
            };
        slot.metrics.instance(warm.is_some());
        let result = async {
            let instance = match warm {
                Some(instance) => instance,
                None => version
                    .pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(|e| ("instantiate", e))?,
            };
            let response = instance
                .call_handle(&mut store, req)
                .await
                .map_err(|e| ("handle", e))?;
            Ok((instance, response))
        }
        .await;
        match result {
            Ok((instance, response)) => {
                let wrote = store.data().kv.wrote;
                if let Some(pool) = &slot.warm {
                    pool.give_back(WarmInstance {
                        version: version.sha256.clone(),
                        store,
                        handler: instance,
                        served: served + 1,
                    });
                }
                Ok(Outcome { response, wrote })
            }
            // The store (and with it a warm instance) is dropped: a trap or
            // timeout always retires the instance.
            Err((phase, e)) => Err(failed(
                slot,
                classify(&store, phase, e, timeout_ms, slot.limits.memory_mib),
            )),
        }
    }
}

/// Counts `e` among `slot`'s failures and returns it.
fn failed(slot: &HandlerSlot, e: InvokeError) -> InvokeError {
    let kind = match &e {
        InvokeError::Trap(_) => FailureKind::Trap,
        InvokeError::Timeout(_) => FailureKind::Timeout,
        InvokeError::MemoryExhausted(_) => FailureKind::Memory,
        InvokeError::Instantiate(_) => FailureKind::Instantiate,
        InvokeError::Overloaded => return e,
    };
    slot.metrics.failure(kind);
    e
}

fn classify(
    store: &Store<HostState>,
    phase: &str,
    e: wasmtime::Error,
    timeout_ms: u64,
    memory_mib: u32,
) -> InvokeError {
    if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        InvokeError::Timeout(timeout_ms)
    } else if store.data().limiter.refused {
        InvokeError::MemoryExhausted(memory_mib)
    } else if phase == "instantiate" && e.downcast_ref::<Trap>().is_none() {
        InvokeError::Instantiate(format!("{e:#}"))
    } else {
        InvokeError::Trap(format!("{e:?}"))
    }
}
