//! Makes sure a WebAssembly standard library (`wasm32-wasip2`,
//! `wasm32-wasip1`) is installed for the toolchain in use, installing it
//! with rustup when it is missing, so that a machine with only rustup and
//! the pinned toolchain builds and tests Baton with no step by hand.
//!
//! Shared by `build.rs` (the shipped handlers, wasip2) and the test
//! support code (test components, wasip1 and wasip2); it uses only `std`.

use std::path::Path;
use std::process::Command;

/// Whether `target`'s standard library is installed for `rustc`.
pub fn is_installed(rustc: &str, target: &str) -> bool {
    Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .is_some_and(|root| Path::new(&root).join("lib/rustlib").join(target).is_dir())
}

/// Installs `target` with rustup unless it is there; `Err` says exactly
/// what to run when that is not possible.
pub fn ensure(rustc: &str, target: &str) -> Result<(), String> {
    if is_installed(rustc, target) {
        return Ok(());
    }
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", target]);
    // The toolchain cargo was started with (rust-toolchain.toml's), not
    // rustup's default.
    if let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") {
        cmd.args(["--toolchain", &toolchain]);
    }
    let ran = cmd.status();
    if ran.as_ref().is_ok_and(|s| s.success()) && is_installed(rustc, target) {
        return Ok(());
    }
    let why = match ran {
        Ok(s) => format!("`rustup target add {target}` failed ({s})"),
        Err(e) => format!("rustup could not be run ({e})"),
    };
    Err(format!(
        "\n\nBaton needs the {target} target, which is not installed and could not be \
         installed automatically: {why}.\nRun:\n\n    rustup target add {target}\n\nthen build again.\n"
    ))
}
