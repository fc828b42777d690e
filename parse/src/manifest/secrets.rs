//! `[handler.secrets]`: values a handler reads through `baton:api/secrets`,
//! taken from the server's environment or from files, never from the
//! manifest itself (so the manifest can be shared and versioned).

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where one secret comes from: exactly one of `env` or `file`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// An environment variable of the server process.
    pub env: Option<String>,
    /// A file (relative paths are the manifest folder's); its whole
    /// contents, a final newline removed.
    pub file: Option<PathBuf>,
}

/// A secret that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The variable is not set (or not UTF-8).
    #[error("the environment variable `{0}` is not set")]
    MissingEnv(String),
    /// The file could not be read.
    #[error("reading {path}: {why}")]
    File {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
}

impl SecretSource {
    /// Checks the entry `name`; on error, why.
    pub fn check(&self, name: &str) -> Result<(), String> {
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
        if !name_ok {
            return Err(format!(
                "`{name}` is not a secret name: 1 to 64 letters, digits, `_`, `-` or `.`"
            ));
        }
        match (&self.env, &self.file) {
            (Some(v), None) if !v.is_empty() && !v.contains('=') && !v.contains('\0') => Ok(()),
            (None, Some(f)) if !f.as_os_str().is_empty() => Ok(()),
            (Some(_), None) => Err(format!("secret `{name}`: `env` must be a variable name")),
            _ => Err(format!(
                "secret `{name}` needs exactly one of `env = \"VAR\"` or `file = \"/path\"`"
            )),
        }
    }

    /// Makes a relative `file` the manifest folder's.
    pub fn resolve(&mut self, base_dir: &Path) {
        if let Some(f) = &mut self.file {
            *f = base_dir.join(&*f);
        }
    }

    /// Reads the value now.
    pub fn read(&self) -> Result<Vec<u8>, SecretError> {
        if let Some(var) = &self.env {
            return std::env::var_os(var)
                .map(|v| v.into_encoded_bytes())
                .ok_or_else(|| SecretError::MissingEnv(var.clone()));
        }
        let path = self.file.as_deref().unwrap_or(Path::new(""));
        let mut bytes = std::fs::read(path).map_err(|e| SecretError::File {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        Ok(bytes)
    }

    /// Where it comes from, for messages (never the value).
    pub fn describe(&self) -> String {
        match (&self.env, &self.file) {
            (Some(v), _) => format!("environment variable `{v}`"),
            (_, Some(f)) => format!("file {}", f.display()),
            _ => "nowhere".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &str) -> SecretSource {
        SecretSource {
            env: Some(v.into()),
            file: None,
        }
    }

    #[test]
    fn exactly_one_source_and_a_plain_name() {
        assert!(env("PUPPETDB_TOKEN").check("puppetdb_token").is_ok());
        let file = SecretSource {
            env: None,
            file: Some("k.pem".into()),
        };
        assert!(file.check("ssh-key").is_ok());
        let both = SecretSource {
            env: Some("A".into()),
            file: Some("b".into()),
        };
        assert!(both.check("x").unwrap_err().contains("exactly one"));
        let neither = SecretSource {
            env: None,
            file: None,
        };
        assert!(neither.check("x").unwrap_err().contains("exactly one"));
        assert!(env("A=B").check("x").is_err());
        for bad in ["", "a b", "a/b", &"x".repeat(65)] {
            assert!(env("A").check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn files_lose_one_final_newline_and_missing_sources_say_where() {
        let dir = std::env::temp_dir().join(format!("baton-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("s"), b"line1\nline2\r\n").unwrap();
        let mut f = SecretSource {
            env: None,
            file: Some("s".into()),
        };
        f.resolve(&dir);
        assert_eq!(f.read().unwrap(), b"line1\nline2");
        let missing = SecretSource {
            env: None,
            file: Some(dir.join("none")),
        };
        assert!(missing.read().unwrap_err().to_string().contains("none"));
        let unset = env("BATON_TEST_SURELY_UNSET_VARIABLE");
        assert!(
            unset
                .read()
                .unwrap_err()
                .to_string()
                .contains("BATON_TEST_SURELY_UNSET_VARIABLE")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
