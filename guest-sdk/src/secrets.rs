//! Secrets the manifest gives this handler (`[handler.secrets]`): API
//! tokens, passwords, keys. The host reads them from its environment or
//! from files; they are not in `config`, and the host never logs them.

use crate::bindings::baton::api::secrets as wit;

/// The secret `name`'s bytes, or `None` when the manifest gives this
/// handler no such secret (or the host could not read it; its log says why).
///
/// ```no_run
/// let token = baton_sdk::secrets::get("puppetdb_token");
/// ```
pub fn get(name: &str) -> Option<Vec<u8>> {
    wit::get(name)
}

/// The secret `name` as text (`None` also when it is not UTF-8).
pub fn get_string(name: &str) -> Option<String> {
    get(name).and_then(|v| String::from_utf8(v).ok())
}
