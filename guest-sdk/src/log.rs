//! Logging into the host's log, tagged with the handler and the request id.
//!
//! ```no_run
//! baton_sdk::log::info("deploy accepted");
//! ```

use crate::bindings::baton::api::log::{Level, log};

/// Logs at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message)
}
/// Logs at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message)
}
/// Logs at info level.
pub fn info(message: &str) {
    log(Level::Info, message)
}
/// Logs at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message)
}
/// Logs at error level.
pub fn error(message: &str) {
    log(Level::Error, message)
}
