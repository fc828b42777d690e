//! The opt-in warm-instance mode (`[handler.warm_instances]`) for trusted
//! handlers: instead of a fresh instance per request, a request takes an idle
//! instance of the same version, and gives it back when it answered cleanly.
//!
//! What stays per request: the caller, the kv write flag, the deadline, log
//! tags, jobs state (the host resets them before each call). What does not:
//! the guest's own memory, so globals and caches outlive the request. An
//! instance is retired after `max_requests` calls, on any trap or timeout,
//! and when its version is no longer the slot's current one.

use super::bindings::Handler;
use super::state::HostState;
use crate::manifest::WarmInstances;
use std::sync::Mutex;
use wasmtime::Store;

/// Idle instances kept when `max_idle` is not set.
const DEFAULT_MAX_IDLE: u32 = 8;

/// An instantiated handler between requests.
pub struct WarmInstance {
    /// sha256 of the version it was instantiated from.
    pub(super) version: String,
    pub(super) store: Store<HostState>,
    pub(super) handler: Handler,
    /// Requests served so far.
    pub(super) served: u32,
}

/// One slot's idle instances.
pub struct WarmPool {
    max_requests: u32,
    max_idle: usize,
    idle: Mutex<Vec<WarmInstance>>,
}

impl WarmPool {
    /// A pool with the manifest's settings for a handler allowed
    /// `max_concurrent` instances at once (the default `max_idle` stays below it).
    pub fn new(settings: WarmInstances, max_concurrent: u32) -> Self {
        let max_idle = settings
            .max_idle
            .unwrap_or(DEFAULT_MAX_IDLE.min(max_concurrent));
        WarmPool {
            max_requests: settings.max_requests.max(1),
            max_idle: max_idle.max(1) as usize,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle instance of `version`, if there is one. Idle instances of any
    /// other version are retired on the way.
    pub(super) fn take(&self, version: &str) -> Option<WarmInstance> {
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                match idle.pop() {
                    Some(w) if w.version == version => break Some(w),
                    Some(w) => stale.push(w),
                    None => break None,
                }
            }
        };
        drop(stale); // outside the lock: dropping a store frees its pool slot
        found
    }

    /// Returns an instance that served one more request cleanly; it is retired
    /// instead when it reached `max_requests` or the pool is full.
    pub(super) fn give_back(&self, instance: WarmInstance) {
        if instance.served >= self.max_requests {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push(instance);
        }
    }
}
