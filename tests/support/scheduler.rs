//! The scheduling handler (`tests/components/jobber`) as the schedule
//! tests use it (`tests/schedules.rs`, `tests/replicas.rs`), included with
//! `#[path]` so that other test binaries do not compile it.
#![allow(dead_code)]

use super::support::*;

/// A manifest mounting the jobber at `/jobber` (public, may run `sleep`),
/// followed by `extra` (its schedules, or other tables).
pub fn schedules_manifest(extra: &str) -> String {
    let wasm = test_components().join("jobber.wasm");
    manifest(&format!(
        "[[handler]]\nname = \"jobber\"\nwasm = \"{}\"\nmount = \"/jobber\"\npolicy = \"public\"\n\
         [handler.capabilities]\nexec = [\"sleep\"]\n{extra}",
        wasm.display()
    ))
}

/// Runs of the scheduled jobs of `name` so far (the jobber counts them in
/// kv, which replicas share).
pub fn ticks(server: &Server, name: &str) -> u64 {
    server.get_json("/jobber/ticks")[name]
        .as_str()
        .map_or(0, |n| n.parse().unwrap())
}
