//! The handler's `[handler.config]` keys and their defaults.
//!
//! | key | default | what |
//! |---|---|---|
//! | `server_version` | `4.7.4` | the version every `ClientVersion` must equal |
//! | `provision_command` | — (required to create) | run with the manifest on stdin, e.g. `kubectl apply -f -` |
//! | `ready_command` | — (skipped) | run after provisioning until the cluster is ready |
//! | `teardown_command` | — (required to delete) | run with the manifest on stdin, e.g. `kubectl delete -f -` |
//! | `command_env` | — | `KEY=value` pairs given to every command, e.g. `KUBECONFIG=…` |
//! | `command_timeout_ms` | the job's limit | wall clock per command |
//! | `manifest_template` | [`DEFAULT_TEMPLATE`](crate::template::DEFAULT_TEMPLATE) | the rendered manifest |
//! | `default_image`, `default_image_tag`, `default_database`, `default_user`, `default_pvc_size` | see below | values of clusters that name none |
//!
//! Commands are split into argv like a POSIX shell splits words (quotes and
//! backslashes only); no shell runs unless the command names one. `{name}`
//! and `{namespace}` in an argument become the cluster's; the environment
//! also carries `PGO_CLUSTER`, `PGO_NAMESPACE`, `PGO_WORKFLOW_ID` and
//! `PGO_USER`.

use baton_sdk::config;

/// The server version when `server_version` is not configured.
pub const DEFAULT_VERSION: &str = "4.7.4";
/// Image of clusters that name no `CCPImage`.
pub const DEFAULT_IMAGE: &str =
    "registry.developers.crunchydata.com/crunchydata/crunchy-postgres-ha";
/// Tag of clusters that name no `CCPImageTag`.
pub const DEFAULT_IMAGE_TAG: &str = "centos8-13.4-4.7.4";
/// Database of clusters that name none.
pub const DEFAULT_DATABASE: &str = "userdb";
/// User of clusters that name none.
pub const DEFAULT_USER: &str = "testuser";
/// Primary storage of clusters that name none.
pub const DEFAULT_PVC_SIZE: &str = "1Gi";

/// The version every request's `ClientVersion` must equal.
pub fn server_version() -> String {
    config::get("server_version")
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_VERSION.to_string())
}

/// The value of `key`, or `default` when absent or empty.
pub fn or_default(key: &str, default: &str) -> String {
    config::get(key)
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// The argv of the command configured at `key`; `Ok(None)` when not configured.
pub fn command(key: &str) -> Result<Option<Vec<String>>, String> {
    match config::get(key) {
        None => Ok(None),
        Some(text) => parse_command(key, &text),
    }
}

/// Splits a configured command into argv; empty text means "not configured".
pub fn parse_command(key: &str, text: &str) -> Result<Option<Vec<String>>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    shlex::split(text).map(Some).ok_or_else(|| {
        format!("[handler.config] {key} has an unclosed quote or a trailing backslash")
    })
}

/// The `KEY=value` pairs of `command_env`.
pub fn command_env() -> Result<Vec<(String, String)>, String> {
    parse_env(&config::get("command_env").unwrap_or_default())
}

/// Parses `KEY=value KEY2='two words'` into pairs.
pub fn parse_env(text: &str) -> Result<Vec<(String, String)>, String> {
    let words = shlex::split(text)
        .ok_or("[handler.config] command_env has an unclosed quote or a trailing backslash")?;
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!(
                "[handler.config] command_env: `{w}` is not KEY=value"
            )),
        })
        .collect()
}

/// Wall clock per command, when configured.
pub fn command_timeout_ms() -> Option<u64> {
    config::get("command_timeout_ms").and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_like_shell_words_without_a_shell() {
        assert_eq!(
            parse_command("k", "kubectl apply -f -").unwrap().unwrap(),
            ["kubectl", "apply", "-f", "-"]
        );
        assert_eq!(
            parse_command("k", r#"sh -c 'echo "$PGO_CLUSTER"; cat'"#)
                .unwrap()
                .unwrap(),
            ["sh", "-c", r#"echo "$PGO_CLUSTER"; cat"#]
        );
        assert_eq!(parse_command("k", "  ").unwrap(), None);
        assert!(
            parse_command("provision_command", "sh -c 'x")
                .unwrap_err()
                .contains("provision_command")
        );
    }

    #[test]
    fn env_pairs_are_key_value() {
        assert_eq!(
            parse_env("KUBECONFIG=/etc/k PATH='/usr/bin:/bin'").unwrap(),
            [
                ("KUBECONFIG".to_string(), "/etc/k".to_string()),
                ("PATH".to_string(), "/usr/bin:/bin".to_string())
            ]
        );
        assert!(parse_env("oops").unwrap_err().contains("`oops`"));
        assert!(parse_env("").unwrap().is_empty());
    }
}
