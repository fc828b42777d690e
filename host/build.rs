//! Builds the shipped handlers in `handlers/` for wasm32-wasip2 and writes
//! `builtin_handlers.rs`, which embeds them in the binary.
//!
//! This is a cargo inside a cargo: the inner build gets its own target
//! directory and an environment cleaned of the outer build's variables.

#[path = "src/wasm_target.rs"]
mod wasm_target;

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let handlers = root.join("handlers");

    for p in [
        "host/src/wasm_target.rs",
        "handlers/Cargo.toml",
        "handlers/Cargo.lock",
        "guest-sdk",
        "wit",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    let names = handler_names(&handlers);
    for n in &names {
        println!("cargo:rerun-if-changed={}", handlers.join(n).display());
    }

    ensure_target();
    // target/<profile>/build/baton-<hash>/out → target/wasm-handlers
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("wasm-handlers"))
        .unwrap_or_else(|| out_dir.join("wasm-handlers"));
    build_workspace(&handlers.join("Cargo.toml"), &target_dir);

    let mut generated = String::from(
        "/// `(name, component bytes)` of every shipped handler.\npub const BUILTIN_HANDLERS: &[(&str, &[u8])] = &[\n",
    );
    for n in &names {
        let artifact = target_dir
            .join(TARGET)
            .join("release")
            .join(format!("{}.wasm", n.replace('-', "_")));
        let copy = out_dir.join(format!("{n}.wasm"));
        // A new file, never a rewrite in place: a build tree whose files are
        // hard links (a copied `target/`) must not change another's handler.
        let _ = std::fs::remove_file(&copy);
        std::fs::copy(&artifact, &copy).unwrap_or_else(|e| {
            panic!(
                "the handler `{n}` was built but {} is missing: {e}",
                artifact.display()
            )
        });
        generated.push_str(&format!(
            "    ({n:?}, include_bytes!({:?})),\n",
            copy.display().to_string()
        ));
    }
    generated.push_str("];\n");
    let list = out_dir.join("builtin_handlers.rs");
    let _ = std::fs::remove_file(&list);
    std::fs::write(list, generated).unwrap();
}

/// The member crates of the handlers workspace (each a folder with a Cargo.toml).
fn handler_names(handlers: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(handlers)
        .unwrap_or_else(|e| panic!("reading {}: {e}", handlers.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Makes sure the wasm32-wasip2 standard library is installed, installing it
/// with rustup when possible; otherwise fails saying exactly what to run.
fn ensure_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    if !wasm_target::is_installed(&rustc, TARGET) {
        println!("cargo:warning=installing the {TARGET} target with rustup");
    }
    if let Err(e) = wasm_target::ensure(&rustc, TARGET) {
        panic!("{e}");
    }
}

fn build_workspace(manifest: &Path, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--locked",
        "--target",
        TARGET,
        "--manifest-path",
    ])
    .arg(manifest)
    .arg("--target-dir")
    .arg(target_dir);
    // A clean environment: nothing of the outer (host) build may leak in.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let keep = key == "CARGO_HOME" || key == "CARGO_NET_OFFLINE";
        if (key.starts_with("CARGO_") && !keep)
            || key.starts_with("RUSTC")
            || key.starts_with("RUSTDOC")
            || key == "RUSTFLAGS"
            || key == "DEBUG"
            || key == "OPT_LEVEL"
            || key == "PROFILE"
            || key == "TARGET"
            || key == "HOST"
            || key == "OUT_DIR"
            || key == "NUM_JOBS"
            || key.contains("MAKEFLAGS")
        {
            cmd.env_remove(key.as_ref());
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo to build the handlers: {e}"));
    if !status.success() {
        panic!(
            "building the handlers failed ({status}); reproduce with:\n    \
             cargo build --release --target {TARGET} --manifest-path {}",
            manifest.display()
        );
    }
}
