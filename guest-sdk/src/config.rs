//! The handler's `config` table from the manifest.

use crate::bindings::baton::api::config as wit;

/// The value of `key` in this handler's `[handler.config]`, if set.
///
/// ```no_run
/// let command = baton_sdk::config::get("agent_command").unwrap_or_default();
/// ```
pub fn get(key: &str) -> Option<String> {
    wit::get(key)
}

/// Like [`get`], with a default when the key is absent.
///
/// ```no_run
/// let version = baton_sdk::config::get_or("server_version", "4.7.4");
/// ```
pub fn get_or(key: &str, default: &str) -> String {
    get(key).unwrap_or_else(|| default.to_string())
}
