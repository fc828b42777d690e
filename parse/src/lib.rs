//! The host's readers of untrusted bytes, apart from wasmtime: the manifest
//! ([`manifest`]), the `[components]` pre-check that decides which bytes
//! reach wasmtime's compiler ([`limits`]), JWT verification ([`tokens`]) and
//! the credentials of request headers ([`credentials`]).
//!
//! They live in a crate of their own so that `fuzz/` can build them with
//! coverage instrumentation without compiling wasmtime and cranelift. The
//! `baton` crate re-exports every module at its old path
//! (`baton::manifest`, `baton::runtime::limits`, `baton::auth::tokens`).

pub mod credentials;
pub mod limits;
pub mod manifest;
pub mod tokens;

use std::path::Path;

/// Creates `path` readable only by its owner (0600) and writes `bytes`.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
