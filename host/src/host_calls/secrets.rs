//! `baton:api/secrets`: the handler's `[handler.secrets]`, read when asked
//! (so a rotated file or a changed environment is seen at the next call).
//! Values are never logged; a source that cannot be read is logged by
//! name and source, and the guest gets `none`.

use crate::manifest::HandlerSpec;
use crate::manifest::secrets::SecretSource;
use crate::runtime::bindings::secrets;
use crate::runtime::state::HostState;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// A handler's secrets, by name.
pub type Secrets = Arc<BTreeMap<String, SecretSource>>;

/// Per-instance secrets state: the handler's name and its sources.
pub struct SecretsState {
    handler: Arc<str>,
    secrets: Secrets,
}

impl SecretsState {
    /// State reading `secrets` for `handler`.
    pub fn new(handler: Arc<str>, secrets: Secrets) -> Self {
        SecretsState { handler, secrets }
    }
}

/// Registers `baton:api/secrets`.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    secrets::add_to_linker::<HostState, HasSelf<SecretsState>>(linker, |s| &mut s.secrets)
}

impl secrets::Host for SecretsState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Option<Vec<u8>>> {
        let Some(source) = self.secrets.get(&name) else {
            return Ok(None);
        };
        match source.read() {
            Ok(value) => Ok(Some(value)),
            Err(e) => {
                tracing::error!(handler = %self.handler, secret = %name, "reading the secret from {}: {e}", source.describe());
                Ok(None)
            }
        }
    }
}

/// Reads every secret of `handlers` once, so that a server does not start
/// (or reload) with a secret it cannot read; the error names the handler,
/// the secret and its source, never a value.
pub fn check_readable<'a>(
    handlers: impl IntoIterator<Item = &'a HandlerSpec>,
) -> anyhow::Result<()> {
    for h in handlers {
        for (name, source) in &h.secrets {
            if let Err(e) = source.read() {
                anyhow::bail!(
                    "handler `{}`: secret `{name}` ({}): {e}",
                    h.name,
                    source.describe()
                );
            }
        }
    }
    Ok(())
}
