//! Logging into the host's log, tagged with the handler and the request id.
//!
//! ```no_run
//! baton_sdk::log::info("deploy accepted");
//! ```

use crate::bindings::baton::api::log::{Level, log};

/// Logs at trace level.
///
/// ```no_run
/// baton_sdk::log::trace("entering the planner");
/// ```
pub fn trace(message: &str) {
    log(Level::Trace, message)
}
/// Logs at debug level.
///
/// ```no_run
/// baton_sdk::log::debug("scope resolved to 3 nodes");
/// ```
pub fn debug(message: &str) {
    log(Level::Debug, message)
}
/// Logs at info level.
///
/// ```no_run
/// baton_sdk::log::info("deploy 81 accepted");
/// ```
pub fn info(message: &str) {
    log(Level::Info, message)
}
/// Logs at warn level.
///
/// ```no_run
/// baton_sdk::log::warn("the `type` field is deprecated; ignored");
/// ```
pub fn warn(message: &str) {
    log(Level::Warn, message)
}
/// Logs at error level.
///
/// ```no_run
/// baton_sdk::log::error("the inventory could not be read");
/// ```
pub fn error(message: &str) {
    log(Level::Error, message)
}
