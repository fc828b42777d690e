//! `baton deploy NAME FILE.wasm`: upload a component to a running server's
//! admin API; it is compiled there and swapped in, or refused with the reason.

use super::ServeArgs;
use super::client::{AdminClient, ServerArgs};
use anyhow::Context;
use std::path::PathBuf;

/// `baton deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The handler to replace.
    name: String,
    /// The component (`wasm32-wasip2`).
    file: PathBuf,
    #[command(flatten)]
    target: ServeArgs,
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs `baton deploy`.
pub fn run(args: DeployArgs) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let client = AdminClient::for_deployment(&args.target, &args.server)?;
    eprintln!(
        "uploading {} ({} bytes); the server compiles and checks it…",
        args.file.display(),
        bytes.len()
    );
    let reply = client.send_bytes(
        reqwest::Method::PUT,
        &format!("/handlers/{}", args.name),
        bytes,
    )?;
    let cached = reply["compiled_from_cache"].as_bool().unwrap_or(false);
    println!(
        "{} now runs {}{}",
        args.name,
        reply["version"].as_str().unwrap_or("?"),
        if cached {
            " (compiled code from the cache)"
        } else {
            ""
        }
    );
    Ok(())
}
