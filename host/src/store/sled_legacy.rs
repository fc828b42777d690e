//! Data directories from before the storage floor kept some concerns
//! (users, revocations, second factors, handler versions, added mounts) in
//! trees of their own; at open they move into the `kv` tree, under the
//! host's namespaces, where every backend keeps them.
//!
//! Each tree is copied, the copy flushed, and only then the tree dropped:
//! a crash in between leaves the tree, and the next open copies it again
//! (the same keys and values, so nothing changes twice).

use super::StoreError;
use super::sled_store::{backend, full_key};

use crate::runtime::versions::{BLOB_PART, VERSIONS_NS, blob_key, history_key};

/// How an old tree's entries are written into the store.
#[derive(Clone, Copy)]
enum Move {
    /// Same key and value, into this namespace and bucket.
    Into(&'static str, &'static str),
    /// Handler history: key `name \0 seq` (u64 big-endian).
    History,
    /// Component bytes by sha256, split into parts.
    Blobs,
}

/// Each old tree, and where it goes.
const MOVED: &[(&str, Move)] = &[
    ("users", Move::Into("baton:auth", "users")),
    ("revoked-tokens", Move::Into("baton:auth", "revoked")),
    ("totp-steps", Move::Into("baton:auth", "totp-steps")),
    ("added-mounts", Move::Into("baton:mounts", "added")),
    ("handler-current", Move::Into(VERSIONS_NS, "current")),
    ("handler-history", Move::History),
    ("handler-blobs", Move::Blobs),
];

/// The writes that put entry `(k, v)` of an old tree where `how` says.
fn moved_entry(how: Move, k: &[u8], v: &[u8], batch: &mut sled::Batch) -> Result<(), StoreError> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match how {
        Move::Into(ns, bucket) => batch.insert(full_key(ns, bucket, &text(k))?, v),
        Move::History => {
            let Some(split) = k.iter().position(|&b| b == 0) else {
                return Ok(());
            };
            let seq = <[u8; 8]>::try_from(&k[split + 1..])
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            let key = history_key(&text(&k[..split]), seq as i64);
            batch.insert(full_key(VERSIONS_NS, "history", &key)?, v);
        }
        Move::Blobs => {
            let sha = text(k);
            let parts: Vec<&[u8]> = if v.is_empty() {
                vec![&[]]
            } else {
                v.chunks(BLOB_PART).collect()
            };
            for (i, part) in parts.iter().enumerate() {
                batch.insert(full_key(VERSIONS_NS, "blobs", &blob_key(&sha, i))?, *part);
            }
            let count = parts.len().to_string();
            batch.insert(full_key(VERSIONS_NS, "blob-parts", &sha)?, count.as_bytes());
        }
    }
    Ok(())
}

/// Moves the records of every old tree of `db` into `kv`.
pub(super) fn adopt(db: &sled::Db, kv: &sled::Tree) -> Result<(), StoreError> {
    let names = db.tree_names();
    for &(tree, how) in MOVED {
        if !names.iter().any(|n| n.as_ref() == tree.as_bytes()) {
            continue;
        }
        let old = db.open_tree(tree).map_err(backend)?;
        let mut batch = sled::Batch::default();
        let mut entries = 0;
        for entry in old.iter() {
            let (k, v) = entry.map_err(backend)?;
            moved_entry(how, &k, &v, &mut batch)?;
            entries += 1;
        }
        if matches!(how, Move::History) {
            // Later deploys number on from sled's id generator, which the
            // old keys came from.
            let next = db.generate_id().map_err(backend)?;
            batch.insert(
                full_key(VERSIONS_NS, "seq", "deploys")?,
                next.to_string().as_bytes(),
            );
        }
        kv.apply_batch(batch).map_err(backend)?;
        db.flush().map_err(backend)?;
        db.drop_tree(tree).map_err(backend)?;
        db.flush().map_err(backend)?;
        tracing::info!(tree, entries, "moved an old tree into the store");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::runtime::versions::VersionStore;
    use crate::store::{KvStore, SledStore};

    #[tokio::test]
    async fn old_trees_move_into_the_store_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.open_tree("users").unwrap().insert("ann", "{}").unwrap();
            db.open_tree("revoked-tokens")
                .unwrap()
                .insert("jti-1", &7u64.to_be_bytes())
                .unwrap();
            let mut history_key = b"h1\0".to_vec();
            history_key.extend_from_slice(&42u64.to_be_bytes());
            db.open_tree("handler-history")
                .unwrap()
                .insert(
                    history_key,
                    r#"{"sha256":"abc","size":3,"at_ms":1,"source":"admin"}"#,
                )
                .unwrap();
            db.open_tree("handler-current")
                .unwrap()
                .insert("h1", r#"{"sha256":"abc","manifest_sha256":""}"#)
                .unwrap();
            db.open_tree("handler-blobs")
                .unwrap()
                .insert("abc", "wasm")
                .unwrap();
            db.flush().unwrap();
        }
        for _ in 0..2 {
            let s = SledStore::open(dir.path()).unwrap();
            assert_eq!(
                s.get("baton:auth", "users", "ann").await.unwrap().unwrap(),
                b"{}"
            );
            assert_eq!(
                s.get("baton:auth", "revoked", "jti-1")
                    .await
                    .unwrap()
                    .unwrap(),
                7u64.to_be_bytes()
            );
            assert!(!s.db().tree_names().iter().any(|n| n.as_ref() == b"users"));
            let versions = VersionStore::new(std::sync::Arc::new(s));
            assert_eq!(versions.blob("abc").await.unwrap().unwrap(), b"wasm");
            assert_eq!(versions.current("h1").await.unwrap().unwrap().sha256, "abc");
            assert_eq!(versions.history("h1").await.unwrap()[0].size, 3);
        }
    }
}
