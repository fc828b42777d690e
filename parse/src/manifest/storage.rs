//! `[storage]`: where state lives, and the keys that seal encrypted kv
//! buckets (`[[handler]] encrypted_buckets`).

use super::secrets::SecretSource;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The default `[storage] lease_ms`.
pub const DEFAULT_LEASE_MS: u64 = 10_000;

/// `[storage]`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// The data directory; `--data` overrides it; default `./baton-data`.
    pub data: Option<PathBuf>,
    /// A PostgreSQL database to keep every piece of state in
    /// (`postgres://user:pass@host:port/db`, TLS as its `sslmode` says);
    /// `BATON_STORAGE_URL` overrides it. Absent: sled in the data
    /// directory, which then holds everything.
    pub url: Option<String>,
    /// With a url: how long a replica's claim on its jobs lasts without
    /// renewal (it renews every third of it). When a replica dies, another
    /// takes its jobs over within this and a second. Default 10,000;
    /// 1,000 to 600,000.
    pub lease_ms: Option<u64>,
    /// With a url: connections one process keeps open at most. Default 48;
    /// 2 to 1,000.
    pub pool_size: Option<u32>,
    /// The key that seals encrypted buckets: 32 bytes as 64 hex digits, from
    /// a file or an environment variable. Absent: `<data>/kv-encryption.key`,
    /// generated on first start.
    pub encryption_key: Option<SecretSource>,
    /// Keys that sealed values before `encryption_key` did. Values under
    /// them stay readable and are sealed again under `encryption_key` at
    /// start, after which they can be removed (key rotation).
    #[serde(default)]
    pub previous_encryption_keys: Vec<SecretSource>,
}

impl Storage {
    /// Makes relative key files the manifest folder's.
    pub fn resolve(&mut self, base_dir: &Path) {
        for source in self
            .encryption_key
            .iter_mut()
            .chain(self.previous_encryption_keys.iter_mut())
        {
            source.resolve(base_dir);
        }
    }

    /// The lease in force (see [`Storage::lease_ms`]).
    pub fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.lease_ms.unwrap_or(DEFAULT_LEASE_MS))
    }

    /// Checks the settings and key sources; on error, the key at fault and why.
    pub fn check(&self) -> Result<(), (String, String)> {
        if let Some(ms) = self.lease_ms
            && !(1_000..=600_000).contains(&ms)
        {
            return Err((
                "storage.lease_ms".into(),
                format!("{ms} is outside 1000 to 600000 (milliseconds)"),
            ));
        }
        if let Some(n) = self.pool_size
            && !(2..=1_000).contains(&n)
        {
            return Err((
                "storage.pool_size".into(),
                format!("{n} is outside 2 to 1000 (connections)"),
            ));
        }
        if let Some(source) = &self.encryption_key {
            source
                .check("encryption_key")
                .map_err(|m| ("storage.encryption_key".to_string(), m))?;
        }
        for (i, source) in self.previous_encryption_keys.iter().enumerate() {
            source
                .check("previous_encryption_keys")
                .map_err(|m| (format!("storage.previous_encryption_keys[{i}]"), m))?;
        }
        Ok(())
    }
}

/// Checks a handler's `encrypted_buckets`; on error, the index at fault and why.
pub fn check_encrypted_buckets(buckets: &[String]) -> Result<(), (usize, String)> {
    for (i, b) in buckets.iter().enumerate() {
        if b.is_empty() || b.len() > 128 || b.contains('\0') {
            return Err((
                i,
                format!("`{b}` is not a bucket name: 1 to 128 bytes without NUL"),
            ));
        }
        if buckets[..i].contains(b) {
            return Err((i, format!("`{b}` is listed twice")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_lists_refuse_empty_long_and_repeated_names() {
        assert!(check_encrypted_buckets(&["creds".into(), "keys".into()]).is_ok());
        assert_eq!(check_encrypted_buckets(&["".into()]).unwrap_err().0, 0);
        let twice = check_encrypted_buckets(&["a".into(), "b".into(), "a".into()]).unwrap_err();
        assert_eq!(twice.0, 2);
        assert!(twice.1.contains("twice"));
        assert!(check_encrypted_buckets(&["x".repeat(129)]).is_err());
    }

    #[test]
    fn key_sources_need_exactly_one_place() {
        let mut s = Storage {
            encryption_key: Some(SecretSource {
                env: None,
                file: None,
            }),
            ..Storage::default()
        };
        let (key, why) = s.check().unwrap_err();
        assert_eq!(key, "storage.encryption_key");
        assert!(why.contains("exactly one"), "{why}");
        let lease = Storage {
            lease_ms: Some(500),
            ..Storage::default()
        };
        assert_eq!(lease.check().unwrap_err().0, "storage.lease_ms");
        let pool = Storage {
            pool_size: Some(1),
            ..Storage::default()
        };
        assert_eq!(pool.check().unwrap_err().0, "storage.pool_size");
        assert_eq!(Storage::default().lease().as_millis(), 10_000);
        s.encryption_key = Some(SecretSource {
            env: None,
            file: Some("kv.key".into()),
        });
        s.previous_encryption_keys = vec![SecretSource {
            env: Some("A=B".into()),
            file: None,
        }];
        assert_eq!(
            s.check().unwrap_err().0,
            "storage.previous_encryption_keys[0]"
        );
        s.resolve(Path::new("/etc/baton"));
        assert_eq!(
            s.encryption_key.unwrap().file.unwrap(),
            PathBuf::from("/etc/baton/kv.key")
        );
    }
}
