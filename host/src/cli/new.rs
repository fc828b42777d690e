//! `baton new NAME`: a handler crate that uses only `baton-sdk`, with a
//! router, a kv example, a job example, unit tests and a README. The SDK and
//! the WIT are written next to it, so it builds with
//! `cargo build --release --target wasm32-wasip2` and nothing else.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};

/// `baton new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The crate (and handler) name: lower-case letters, digits, `-`, `_`.
    name: String,
    /// Where to create it; default `./NAME`.
    #[arg(long)]
    path: Option<PathBuf>,
}

const TEMPLATE: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../templates/handler/Cargo.toml.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/handler/src/lib.rs.tmpl"),
    ),
    (
        "README.md",
        include_str!("../../templates/handler/README.md.tmpl"),
    ),
    (".gitignore", "/target\n"),
    ("wit/baton.wit", include_str!("../../../wit/baton.wit")),
    ("sdk/Cargo.toml", SDK_MANIFEST),
    (
        "sdk/src/lib.rs",
        include_str!("../../../guest-sdk/src/lib.rs"),
    ),
    (
        "sdk/src/auth.rs",
        include_str!("../../../guest-sdk/src/auth.rs"),
    ),
    (
        "sdk/src/config.rs",
        include_str!("../../../guest-sdk/src/config.rs"),
    ),
    (
        "sdk/src/error.rs",
        include_str!("../../../guest-sdk/src/error.rs"),
    ),
    (
        "sdk/src/http.rs",
        include_str!("../../../guest-sdk/src/http.rs"),
    ),
    (
        "sdk/src/jobs.rs",
        include_str!("../../../guest-sdk/src/jobs.rs"),
    ),
    (
        "sdk/src/kv.rs",
        include_str!("../../../guest-sdk/src/kv.rs"),
    ),
    (
        "sdk/src/log.rs",
        include_str!("../../../guest-sdk/src/log.rs"),
    ),
    (
        "sdk/src/openapi.rs",
        include_str!("../../../guest-sdk/src/openapi.rs"),
    ),
    (
        "sdk/src/outbound.rs",
        include_str!("../../../guest-sdk/src/outbound.rs"),
    ),
    (
        "sdk/src/router.rs",
        include_str!("../../../guest-sdk/src/router.rs"),
    ),
    (
        "sdk/src/secrets.rs",
        include_str!("../../../guest-sdk/src/secrets.rs"),
    ),
    (
        "sdk/src/time.rs",
        include_str!("../../../guest-sdk/src/time.rs"),
    ),
];

/// The vendored SDK's manifest (the workspace one inherits fields it cannot
/// have outside this repository).
const SDK_MANIFEST: &str = r#"[package]
name = "baton-sdk"
version = "0.1.0"
description = "Write Baton handlers (vendored by `baton new`)"
edition = "2024"
publish = false

[dependencies]
serde = { version = "1", features = ["derive"] }
serde_json = "1"
wit-bindgen = "0.46"
wasip2 = "1"
"#;

fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Writes the crate for `name` into `dir` (which must not exist or be empty).
pub fn scaffold(name: &str, dir: &Path) -> anyhow::Result<()> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok || name.len() > 64 {
        bail!(
            "`{name}` is not a usable name: start with a lower-case letter; then lower-case letters, digits, `-` or `_`"
        );
    }
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} exists and is not empty; choose another --path",
            dir.display()
        );
    }
    let file = name.replace('-', "_");
    let ty = type_name(name);
    for (rel, text) in TEMPLATE {
        let text = text
            .replace("{{name}}", name)
            .replace("{{Type}}", &ty)
            .replace("{{file}}", &file);
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("template paths have a parent"))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Runs `baton new`.
pub fn run(args: NewArgs) -> anyhow::Result<()> {
    let dir = args
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    scaffold(&args.name, &dir)?;
    let file = args.name.replace('-', "_");
    println!("created {} in {}", args.name, dir.display());
    println!("next:");
    println!("  cd {}", dir.display());
    println!("  cargo test");
    println!("  cargo build --release --target wasm32-wasip2");
    println!(
        "  baton deploy {} target/wasm32-wasip2/release/{file}.wasm --mount /{}",
        args.name, args.name
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_types_and_bad_names_are_refused() {
        assert_eq!(type_name("my-first_handler"), "MyFirstHandler");
        let dir = tempfile::tempdir().unwrap();
        assert!(scaffold("Bad Name", &dir.path().join("x")).is_err());
        scaffold("hello-world", &dir.path().join("hw")).unwrap();
        let lib = std::fs::read_to_string(dir.path().join("hw/src/lib.rs")).unwrap();
        assert!(
            lib.contains("struct HelloWorld;") && !lib.contains("{{"),
            "{lib}"
        );
        assert!(dir.path().join("hw/sdk/src/router.rs").is_file());
        assert!(
            scaffold("again", &dir.path().join("hw"))
                .unwrap_err()
                .to_string()
                .contains("not empty")
        );
    }

    #[test]
    fn the_scaffold_carries_every_file_of_the_sdk() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/src");
        for entry in std::fs::read_dir(src).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let copied = format!("sdk/src/{name}");
            assert!(
                TEMPLATE.iter().any(|(path, _)| *path == copied),
                "guest-sdk/src/{name} is missing from the scaffold's files"
            );
        }
    }
}
