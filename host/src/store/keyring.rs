//! The keys that seal encrypted kv buckets, and the sealed value format.
//!
//! A sealed value is `BKV\x01`, the sealing key's id (the first 4 bytes of
//! the key's sha256), a random 24-byte nonce, then the XChaCha20-Poly1305
//! ciphertext and tag. The associated data is `namespace \0 bucket \0 key`,
//! so a sealed value copied to another key, bucket or handler does not open.

use crate::manifest::Storage;
use crate::manifest::secrets::SecretSource;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The first bytes of every sealed value.
pub const SEALED_MAGIC: &[u8; 4] = b"BKV\x01";
/// Bytes a sealed value adds to its plain text.
pub const SEAL_OVERHEAD: usize = 4 + 4 + 24 + 16;
/// The generated key's file in the data directory.
pub const GENERATED_KEY_FILE: &str = "kv-encryption.key";

/// A key that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The configured source could not be read.
    #[error("{0}")]
    Source(#[from] crate::manifest::secrets::SecretError),
    /// The key is not 64 hex digits.
    #[error("the key from {0} is not 32 bytes written as 64 hex digits")]
    Format(String),
    /// The generated key file could not be written.
    #[error("writing the generated key {path}: {why}")]
    Generate {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
}

/// Why a stored value did not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// The value does not start with [`SEALED_MAGIC`].
    #[error("it is not sealed")]
    NotSealed,
    /// No configured key has the value's key id.
    #[error(
        "it was sealed with key {0}, which is neither `encryption_key` nor one of \
         `previous_encryption_keys`"
    )]
    UnknownKey(String),
    /// The tag did not verify: a wrong key, or tampered or misplaced bytes.
    #[error("its authentication tag does not verify (tampered, or moved from another key)")]
    Forged,
}

struct Key {
    id: [u8; 4],
    cipher: XChaCha20Poly1305,
}

impl Key {
    fn new(bytes: &[u8; 32]) -> Key {
        let digest = Sha256::digest(bytes);
        Key {
            id: [digest[0], digest[1], digest[2], digest[3]],
            cipher: XChaCha20Poly1305::new(bytes.into()),
        }
    }
}

/// The current key, which seals, and earlier ones, which only open.
pub struct KeyRing {
    current: Key,
    previous: Vec<Key>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyRing(current: {})", self.current_id())
    }
}

/// 32 bytes from 64 hex digits (surrounding white space ignored).
fn parse_key(text: &[u8], from: &str) -> Result<[u8; 32], KeyError> {
    let text = std::str::from_utf8(text).map_err(|_| KeyError::Format(from.to_string()))?;
    let mut key = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut key).map_err(|_| KeyError::Format(from.to_string()))?;
    Ok(key)
}

fn read_key(source: &SecretSource) -> Result<[u8; 32], KeyError> {
    parse_key(&source.read()?, &source.describe())
}

/// Reads `path`, or writes a new random key there (readable by this user only).
fn generated_key(path: &Path) -> Result<[u8; 32], KeyError> {
    if path.exists() {
        let text = std::fs::read(path).map_err(|e| KeyError::Generate {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        return parse_key(&text, &format!("file {}", path.display()));
    }
    let key: [u8; 32] = XChaCha20Poly1305::generate_key(&mut OsRng).into();
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(format!("{}\n", hex::encode(key)).as_bytes())?;
        f.sync_all()
    };
    write().map_err(|e| KeyError::Generate {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    tracing::info!(file = %path.display(), "generated the kv encryption key");
    Ok(key)
}

impl KeyRing {
    /// The keys `[storage]` names; without `encryption_key`, the one in
    /// `data_dir` (generated on first use).
    pub fn load(storage: &Storage, data_dir: &Path) -> Result<KeyRing, KeyError> {
        let current = match &storage.encryption_key {
            Some(source) => read_key(source)?,
            None => generated_key(&data_dir.join(GENERATED_KEY_FILE))?,
        };
        let previous = storage
            .previous_encryption_keys
            .iter()
            .map(read_key)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeyRing::from_keys(&current, &previous))
    }

    /// A ring sealing with `current` and also opening with `previous`.
    pub fn from_keys(current: &[u8; 32], previous: &[[u8; 32]]) -> KeyRing {
        KeyRing {
            current: Key::new(current),
            previous: previous.iter().map(Key::new).collect(),
        }
    }

    /// The current key's id, as it shows in messages (8 hex digits).
    pub fn current_id(&self) -> String {
        hex::encode(self.current.id)
    }

    /// `plain` sealed under the current key, bound to `place`.
    pub fn seal(&self, place: &[u8], plain: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .current
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: place,
                },
            )
            .expect("XChaCha20-Poly1305 seals any length a kv value can have");
        let mut out = Vec::with_capacity(SEAL_OVERHEAD + plain.len());
        out.extend_from_slice(SEALED_MAGIC);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The plain text of `stored`, sealed at `place` under any known key.
    pub fn open(&self, place: &[u8], stored: &[u8]) -> Result<Vec<u8>, OpenError> {
        if stored.len() < SEAL_OVERHEAD || !stored.starts_with(SEALED_MAGIC) {
            return Err(OpenError::NotSealed);
        }
        let id = &stored[4..8];
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or_else(|| OpenError::UnknownKey(hex::encode(id)))?;
        let nonce = XNonce::from_slice(&stored[8..32]);
        key.cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &stored[32..],
                    aad: place,
                },
            )
            .map_err(|_| OpenError::Forged)
    }

    /// Whether `stored` is sealed under the current key (nothing to redo).
    pub fn sealed_by_current(&self, stored: &[u8]) -> bool {
        stored.len() >= SEAL_OVERHEAD
            && stored.starts_with(SEALED_MAGIC)
            && stored[4..8] == self.current.id
    }
}

/// What binds a sealed value to its place: `ns \0 bucket \0 key`.
pub fn place(ns: &str, bucket: &str, key: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(ns.len() + bucket.len() + key.len() + 2);
    p.extend_from_slice(ns.as_bytes());
    p.push(0);
    p.extend_from_slice(bucket.as_bytes());
    p.push(0);
    p.extend_from_slice(key.as_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_at_their_place_and_under_a_known_key() {
        let old = KeyRing::from_keys(&[1; 32], &[]);
        let ring = KeyRing::from_keys(&[2; 32], &[[1; 32]]);
        let here = place("clusters", "creds", "10.0.0.1");
        let sealed = ring.seal(&here, b"-----BEGIN KEY-----");
        assert!(sealed.starts_with(SEALED_MAGIC));
        assert_eq!(sealed.len(), 19 + SEAL_OVERHEAD);
        assert!(!sealed.windows(5).any(|w| w == b"BEGIN"));
        assert_eq!(ring.open(&here, &sealed).unwrap(), b"-----BEGIN KEY-----");
        assert!(ring.sealed_by_current(&sealed));
        // Two seals of one text differ (random nonces).
        assert_ne!(ring.seal(&here, b"x"), ring.seal(&here, b"x"));
        // Moved to another key: refused.
        let there = place("clusters", "creds", "10.0.0.2");
        assert_eq!(ring.open(&there, &sealed), Err(OpenError::Forged));
        // A flipped bit: refused.
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(ring.open(&here, &bad), Err(OpenError::Forged));
        // Under the previous key: opens, but is not current.
        let by_old = old.seal(&here, b"old");
        assert_eq!(ring.open(&here, &by_old).unwrap(), b"old");
        assert!(!ring.sealed_by_current(&by_old));
        // A ring without the sealing key names its id.
        let unknown = KeyRing::from_keys(&[3; 32], &[]);
        match unknown.open(&here, &sealed) {
            Err(OpenError::UnknownKey(id)) => assert_eq!(id, ring.current_id()),
            other => panic!("{other:?}"),
        }
        assert_eq!(ring.open(&here, b"plain"), Err(OpenError::NotSealed));
    }

    #[test]
    fn the_generated_key_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("baton-keyring-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let storage = Storage::default();
        let a = KeyRing::load(&storage, &dir).unwrap();
        let file = dir.join(GENERATED_KEY_FILE);
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = KeyRing::load(&storage, &dir).unwrap();
        assert_eq!(a.current_id(), b.current_id());
        std::fs::write(&file, "not hex\n").unwrap();
        let err = KeyRing::load(&storage, &dir).unwrap_err().to_string();
        assert!(err.contains("64 hex digits"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
