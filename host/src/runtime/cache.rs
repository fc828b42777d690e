//! An on-disk cache of compiled components, keyed by the component's sha256
//! and the engine's compatibility hash (wasmtime version, target, settings),
//! so that restarts and re-deploys of known versions skip Cranelift.
//!
//! Loading a cached artifact is `unsafe` in wasmtime: the bytes are trusted
//! to be what `serialize` wrote. They live in the server's own data directory
//! (mode 0700) and are written atomically (temp file + rename); a file that
//! fails to load is deleted and the component compiled again.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The cache folder of one engine configuration.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// The cache for `engine` under `root` (created if missing).
    pub fn new(root: &Path, engine: &Engine) -> std::io::Result<CompileCache> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let dir = root.join(format!("{:016x}", h.finish()));
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700));
        }
        Ok(CompileCache { dir })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.cwasm"))
    }

    /// The cached compilation of `sha256`, if there is a usable one.
    pub fn get(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written by `put` below from
        // `Component::serialize` of this engine configuration (the folder
        // name is its compatibility hash), atomically, in the server's
        // private data directory.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), "dropping an unusable compiled artifact: {e:#}");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores the compilation of `sha256`; failures only cost a later recompile.
    pub fn put(&self, sha256: &str, component: &Component) {
        let result = component
            .serialize()
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                let tmp = self
                    .dir
                    .join(format!(".{sha256}.{}.tmp", std::process::id()));
                std::fs::write(&tmp, bytes)
                    .and_then(|_| std::fs::rename(&tmp, self.path(sha256)))
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            tracing::warn!(version = %sha256, "could not cache the compiled component: {e}");
        }
    }
}
