//! Files handed to one `exec` (an SSH private key, a kubeconfig): written
//! into a fresh directory only the server's user can read (0700, files
//! 0600), named in argv and env through `{file:NAME}` placeholders, and
//! removed when the command ends however it ends (the [`PrivateDir`] is
//! dropped). Contents never reach logs or events; `Debug` shows lengths only.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Files one command may have.
pub const MAX_FILES: usize = 16;
/// Bytes all files of one command may hold together.
pub const MAX_FILES_BYTES: usize = 1024 * 1024;
/// Longest file name.
const MAX_NAME: usize = 64;

/// One file for a command.
#[derive(Clone, PartialEq, Eq)]
pub struct ExecFile {
    /// Its name in `{file:NAME}` (and on disk).
    pub name: String,
    /// Its bytes (secret: never printed).
    pub contents: Vec<u8>,
}

impl std::fmt::Debug for ExecFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExecFile({}, {} bytes)", self.name, self.contents.len())
    }
}

/// Why the files could not be prepared.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilesError {
    /// A bad name, a duplicate, too many or too large, or an unknown placeholder.
    #[error("{0}")]
    Invalid(String),
    /// Writing them failed.
    #[error("writing the command's files failed: {0}")]
    Io(String),
}

/// The directory holding one command's files; removed on drop.
#[derive(Debug)]
pub struct PrivateDir {
    dir: Option<PathBuf>,
    names: Vec<String>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Checks `files` without touching the disk.
pub fn validate(files: &[ExecFile]) -> Result<(), FilesError> {
    if files.len() > MAX_FILES {
        return Err(FilesError::Invalid(format!(
            "a command may have at most {MAX_FILES} files, not {}",
            files.len()
        )));
    }
    let total: usize = files.iter().map(|f| f.contents.len()).sum();
    if total > MAX_FILES_BYTES {
        return Err(FilesError::Invalid(format!(
            "a command's files may hold at most {MAX_FILES_BYTES} bytes together, not {total}"
        )));
    }
    for (i, f) in files.iter().enumerate() {
        if !valid_name(&f.name) {
            return Err(FilesError::Invalid(format!(
                "invalid command file name `{}`: use 1-{MAX_NAME} of A-Z a-z 0-9 . _ -",
                f.name
            )));
        }
        if files[..i].iter().any(|g| g.name == f.name) {
            return Err(FilesError::Invalid(format!(
                "command file `{}` is given twice",
                f.name
            )));
        }
    }
    Ok(())
}

impl PrivateDir {
    /// Writes `files` into a new directory under `root` (created 0700 if
    /// missing). With no files, nothing is created.
    pub fn create(root: &Path, files: &[ExecFile]) -> Result<PrivateDir, FilesError> {
        validate(files)?;
        let names = files.iter().map(|f| f.name.clone()).collect();
        if files.is_empty() {
            return Ok(PrivateDir { dir: None, names });
        }
        let io = |what: &str, p: &Path, e: std::io::Error| {
            FilesError::Io(format!("{what} {}: {e}", p.display()))
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| io("creating", root, e))?;
        let dir = root.join(uuid::Uuid::new_v4().simple().to_string());
        DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| io("creating", &dir, e))?;
        // From here on, drop removes whatever was written.
        let out = PrivateDir {
            dir: Some(dir.clone()),
            names,
        };
        for f in files {
            let path = dir.join(&f.name);
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| io("creating", &path, e))?;
            // No fsync: the file lives only as long as the command.
            file.write_all(&f.contents)
                .map_err(|e| io("writing", &path, e))?;
        }
        Ok(out)
    }

    /// The path of file `name`, if the command has it.
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        self.names.iter().any(|n| n == name).then(|| dir.join(name))
    }

    /// `text` with every `{file:NAME}` replaced by that file's path; an
    /// unknown `NAME` is an error naming it.
    pub fn substitute(&self, text: &str) -> Result<String, FilesError> {
        const OPEN: &str = "{file:";
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find(OPEN) {
            out.push_str(&rest[..start]);
            let after = &rest[start + OPEN.len()..];
            let Some(end) = after.find('}') else {
                return Err(FilesError::Invalid(format!(
                    "unterminated `{OPEN}` placeholder in `{text}`"
                )));
            };
            let name = &after[..end];
            let path = self.path(name).ok_or_else(|| {
                FilesError::Invalid(format!(
                    "`{{file:{name}}}` names no file of this command (files: {})",
                    if self.names.is_empty() {
                        "none".to_string()
                    } else {
                        self.names.join(", ")
                    }
                ))
            })?;
            out.push_str(&path.to_string_lossy());
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir
            && let Err(e) = std::fs::remove_dir_all(dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::error!(
                "removing a command's private files in {} failed: {e}",
                dir.display()
            );
        }
    }
}

/// Removes directories a stopped server left under `root` (at startup, when
/// no command runs yet).
pub fn remove_leftovers(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match std::fs::remove_dir_all(&path) {
            Ok(()) => tracing::warn!(
                "removed command files a stopped server left in {}",
                path.display()
            ),
            Err(e) => tracing::error!(
                "removing leftover command files in {} failed: {e}",
                path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn file(name: &str, contents: &[u8]) -> ExecFile {
        ExecFile {
            name: name.into(),
            contents: contents.to_vec(),
        }
    }

    #[test]
    fn files_are_private_substituted_and_removed_on_drop() {
        let root = tempfile::tempdir().unwrap();
        let files = PrivateDir::create(root.path(), &[file("key", b"SECRET")]).unwrap();
        let path = files.path("key").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"SECRET");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(
            files.substitute("-i {file:key} -o x").unwrap(),
            format!("-i {} -o x", path.display())
        );
        drop(files);
        assert!(!path.exists());
        assert!(!path.parent().unwrap().exists());
    }

    #[test]
    fn bad_names_duplicates_and_unknown_placeholders_are_invalid() {
        let root = tempfile::tempdir().unwrap();
        for bad in ["", "..", "a/b", "x y"] {
            assert!(matches!(
                PrivateDir::create(root.path(), &[file(bad, b"")]),
                Err(FilesError::Invalid(_))
            ));
        }
        assert!(matches!(
            PrivateDir::create(root.path(), &[file("a", b""), file("a", b"")]),
            Err(FilesError::Invalid(_))
        ));
        let files = PrivateDir::create(root.path(), &[file("key", b"k")]).unwrap();
        let err = files.substitute("{file:other}").unwrap_err();
        assert!(err.to_string().contains("{file:other}"), "{err}");
        assert!(files.substitute("{file:key").is_err());
        let none = PrivateDir::create(root.path(), &[]).unwrap();
        assert!(none.substitute("{file:key}").is_err());
        assert_eq!(none.substitute("plain").unwrap(), "plain");
    }

    #[test]
    fn debug_never_shows_contents() {
        assert_eq!(
            format!("{:?}", file("key", b"SECRET")),
            "ExecFile(key, 6 bytes)"
        );
    }

    #[test]
    fn leftovers_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let files = PrivateDir::create(root.path(), &[file("key", b"k")]).unwrap();
        let path = files.path("key").unwrap();
        std::mem::forget(files);
        remove_leftovers(root.path());
        assert!(!path.exists());
    }
}
