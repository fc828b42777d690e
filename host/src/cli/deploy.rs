//! `baton deploy NAME FILE.wasm [--mount /prefix]`: upload a component to a
//! running server's admin API; it is compiled there and swapped in (or
//! mounted, with `--mount`, when no handler has that name), or refused with
//! the reason. `baton handlers` lists what runs.

use super::ServeArgs;
use super::client::{AdminClient, ServerArgs};
use anyhow::Context;
use std::path::PathBuf;
use std::time::Instant;

/// `baton deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// The handler to replace (or to create, with --mount).
    name: String,
    /// The component (`wasm32-wasip2`).
    file: PathBuf,
    /// Mount a new handler at this prefix when none is named NAME.
    #[arg(long)]
    mount: Option<String>,
    /// The new handler's policy (with --mount): public, authenticated or a permission.
    #[arg(long, default_value = "authenticated")]
    policy: String,
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
    let mut path = format!("/handlers/{}", args.name);
    if let Some(m) = &args.mount {
        let enc = |s: &str| {
            s.replace('%', "%25")
                .replace('&', "%26")
                .replace(' ', "%20")
                .replace('?', "%3F")
        };
        path.push_str(&format!("?mount={}&policy={}", enc(m), enc(&args.policy)));
    }
    eprintln!(
        "uploading {} ({} bytes); the server compiles and checks it…",
        args.file.display(),
        bytes.len()
    );
    let started = Instant::now();
    let reply = client.send_bytes(reqwest::Method::PUT, &path, bytes)?;
    let cached = reply["compiled_from_cache"].as_bool().unwrap_or(false);
    println!(
        "{} now runs {} ({} ms{})",
        args.name,
        reply["version"].as_str().unwrap_or("?"),
        started.elapsed().as_millis(),
        if cached {
            ", compiled code from the cache"
        } else {
            ""
        }
    );
    Ok(())
}

/// `baton handlers`.
#[derive(Debug, clap::Args)]
pub struct HandlersArgs {
    #[command(flatten)]
    target: ServeArgs,
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs `baton handlers`.
pub fn list(args: HandlersArgs) -> anyhow::Result<()> {
    let client = AdminClient::for_deployment(&args.target, &args.server)?;
    let reply = client.call(reqwest::Method::GET, "/handlers", None)?;
    println!(
        "{:<16}  {:<24}  {:<12}  {:>8}  LAST REFUSED",
        "NAME", "MOUNT", "VERSION", "VERSIONS"
    );
    for h in reply["handlers"].as_array().into_iter().flatten() {
        let version = h["current"]["version"].as_str().unwrap_or("");
        let refused = h["last_rejected"]["reason"].as_str().unwrap_or("-");
        println!(
            "{:<16}  {:<24}  {:<12}  {:>8}  {}",
            h["name"].as_str().unwrap_or(""),
            h["mount"].as_str().unwrap_or(""),
            &version[..version.len().min(12)],
            h["versions"].as_array().map_or(0, Vec::len),
            refused
        );
    }
    Ok(())
}
