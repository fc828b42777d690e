//! Rewriting a sled database into a fresh directory, so that no earlier
//! version of any value survives in its log.
//!
//! sled is log-structured: a value overwritten in place stays readable in
//! old log segments until sled happens to reclaim them. When plain values
//! of a bucket are sealed (a bucket newly declared encrypted), the server
//! rewrites the database at start so that a copy of the data directory
//! holds no plain text. The rewrite goes to `db.rewrite`, then the
//! directories are swapped (`db` → `db.old`, `db.rewrite` → `db`) and the
//! old one removed; [`recover`] finishes or undoes a swap a crash cut short.

use super::StoreError;
use super::sled_store::{backend, open_db};
use std::path::{Path, PathBuf};

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{what} {}: {e}", path.display()))
}

/// Brings `dir` back to one whole database after a rewrite that a crash
/// interrupted: a finished swap loses its leftover, an unfinished one is
/// undone (the rewrite then runs again, as its marker is still set).
pub fn recover(dir: &Path) -> Result<(), StoreError> {
    let (old, new) = (sibling(dir, ".old"), sibling(dir, ".rewrite"));
    if old.exists() {
        if dir.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| io("removing", &old, e))?;
        } else {
            std::fs::rename(&old, dir).map_err(|e| io("restoring", &old, e))?;
        }
    }
    if new.exists() {
        std::fs::remove_dir_all(&new).map_err(|e| io("removing", &new, e))?;
    }
    Ok(())
}

/// Copies every tree of the (closed) database in `dir` into a fresh one and
/// puts it in `dir`'s place. sled's id generator continues past the old one's.
pub fn rewrite(dir: &Path) -> Result<(), StoreError> {
    recover(dir)?;
    let (old, new) = (sibling(dir, ".old"), sibling(dir, ".rewrite"));
    {
        let src = open_db(dir)?;
        let dst = open_db(&new)?;
        for name in src.tree_names() {
            let (from, to) = (
                src.open_tree(&name).map_err(backend)?,
                dst.open_tree(&name).map_err(backend)?,
            );
            let mut batch = sled::Batch::default();
            for (n, entry) in from.iter().enumerate() {
                let (k, v) = entry.map_err(backend)?;
                batch.insert(k, v);
                if n % 10_000 == 9_999 {
                    to.apply_batch(std::mem::take(&mut batch))
                        .map_err(backend)?;
                }
            }
            to.apply_batch(batch).map_err(backend)?;
        }
        let last = src.generate_id().map_err(backend)?;
        while dst.generate_id().map_err(backend)? < last {}
        dst.flush().map_err(backend)?;
    }
    std::fs::rename(dir, &old).map_err(|e| io("moving aside", dir, e))?;
    std::fs::rename(&new, dir).map_err(|e| io("moving into place", &new, e))?;
    if let Some(parent) = dir.parent()
        && let Ok(d) = std::fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    std::fs::remove_dir_all(&old).map_err(|e| io("removing", &old, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_contain(dir: &Path, needle: &[u8]) -> bool {
        std::fs::read_dir(dir).unwrap().any(|e| {
            let p = e.unwrap().path();
            if p.is_dir() {
                files_contain(&p, needle)
            } else {
                let bytes = std::fs::read(&p).unwrap();
                bytes.windows(needle.len()).any(|w| w == needle)
            }
        })
    }

    #[test]
    fn a_rewrite_keeps_every_tree_and_id_and_drops_overwritten_values() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("db");
        let last_id;
        {
            let db = sled::open(&dir).unwrap();
            let t = db.open_tree("kv").unwrap();
            for i in 0..25_000u32 {
                t.insert(i.to_be_bytes(), b"OVERWRITTEN-PLAINTEXT".as_slice())
                    .unwrap();
            }
            db.flush().unwrap();
            for i in 0..25_000u32 {
                t.insert(i.to_be_bytes(), b"sealed".as_slice()).unwrap();
            }
            db.insert(b"default-tree", b"kept".as_slice()).unwrap();
            last_id = db.generate_id().unwrap();
            db.flush().unwrap();
        }
        assert!(files_contain(&dir, b"OVERWRITTEN-PLAINTEXT"));
        rewrite(&dir).unwrap();
        assert!(!files_contain(&dir, b"OVERWRITTEN-PLAINTEXT"));
        assert!(!sibling(&dir, ".old").exists());
        let db = open_db(&dir).unwrap();
        let t = db.open_tree("kv").unwrap();
        assert_eq!(t.len(), 25_000);
        assert_eq!(&*t.get(7u32.to_be_bytes()).unwrap().unwrap(), b"sealed");
        assert_eq!(&*db.get(b"default-tree").unwrap().unwrap(), b"kept");
        assert!(db.generate_id().unwrap() > last_id);
    }

    #[test]
    fn recovery_undoes_a_half_swap_and_drops_leftovers() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("db");
        {
            let db = sled::open(&dir).unwrap();
            db.insert(b"k", b"v".as_slice()).unwrap();
            db.flush().unwrap();
        }
        // A crash after `db` was moved aside, before the new one moved in.
        std::fs::rename(&dir, sibling(&dir, ".old")).unwrap();
        std::fs::create_dir(sibling(&dir, ".rewrite")).unwrap();
        recover(&dir).unwrap();
        assert!(!sibling(&dir, ".rewrite").exists());
        let db = open_db(&dir).unwrap();
        assert_eq!(&*db.get(b"k").unwrap().unwrap(), b"v");
        drop(db);
        // A crash after the swap, before the old one was removed.
        std::fs::create_dir(sibling(&dir, ".old")).unwrap();
        recover(&dir).unwrap();
        assert!(!sibling(&dir, ".old").exists());
        assert!(dir.exists());
    }
}
