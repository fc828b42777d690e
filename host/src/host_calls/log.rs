//! `baton:api/log`: guest log lines into `tracing`, tagged with handler and request id.

use crate::runtime::bindings::log::{self, Level};
use crate::runtime::state::HostState;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// Longest message logged; longer ones are cut.
const MAX_MESSAGE: usize = 8192;

/// Per-instance log state: who is logging.
pub struct LogState {
    handler: Arc<str>,
    request_id: Arc<str>,
}

impl LogState {
    /// State for `handler` serving `request_id`.
    pub fn new(handler: Arc<str>, request_id: Arc<str>) -> Self {
        LogState {
            handler,
            request_id,
        }
    }
}

/// Registers `baton:api/log`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    log::add_to_linker::<HostState, HasSelf<LogState>>(linker, |s| &mut s.log)
}

impl log::Host for LogState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let mut end = message.len().min(MAX_MESSAGE);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let m = &message[..end];
        let (h, r) = (&*self.handler, &*self.request_id);
        match level {
            Level::Trace => {
                tracing::trace!(target: "baton::guest", handler = h, request_id = r, "{m}")
            }
            Level::Debug => {
                tracing::debug!(target: "baton::guest", handler = h, request_id = r, "{m}")
            }
            Level::Info => {
                tracing::info!(target: "baton::guest", handler = h, request_id = r, "{m}")
            }
            Level::Warn => {
                tracing::warn!(target: "baton::guest", handler = h, request_id = r, "{m}")
            }
            Level::Error => {
                tracing::error!(target: "baton::guest", handler = h, request_id = r, "{m}")
            }
        }
        Ok(())
    }
}
