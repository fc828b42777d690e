//! `baton:api/config`: the handler's `[handler.config]` table.

use crate::runtime::bindings::config;
use crate::runtime::state::HostState;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// Per-instance config state: a shared, read-only view of the handler's table.
pub struct ConfigState {
    values: Arc<BTreeMap<String, String>>,
}

impl ConfigState {
    /// State reading from `values`.
    pub fn new(values: Arc<BTreeMap<String, String>>) -> Self {
        ConfigState { values }
    }
}

/// Registers `baton:api/config`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    config::add_to_linker::<HostState, HasSelf<ConfigState>>(linker, |s| &mut s.config)
}

impl config::Host for ConfigState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.values.get(&key).cloned())
    }
}
