//! The shipped handlers, built from `handlers/` by `build.rs` and compiled
//! into the binary so that `baton serve` needs no files.

include!(concat!(env!("OUT_DIR"), "/builtin_handlers.rs"));

/// The component bytes of builtin handler `name` (`builtin:<name>` in a manifest).
pub fn get(name: &str) -> Option<&'static [u8]> {
    BUILTIN_HANDLERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, bytes)| *bytes)
}

/// The names of every builtin handler.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTIN_HANDLERS.iter().map(|(n, _)| *n)
}
