//! The `baton` command line: `serve`, `token`, `user`, `jobs`, `deploy`,
//! `handlers`, `new`, `cert`.

mod cert;
mod client;
mod deploy;
mod jobs;
mod new;
mod token;
mod user;

use crate::app::App;
use crate::manifest::Manifest;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Baton: an orchestration API server whose endpoints are WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "baton", version, about)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the handlers of a manifest (the embedded default when none is given).
    Serve(ServeArgs),
    /// Print a valid access token and nothing else (like `puppet-access show`).
    Token(token::TokenArgs),
    /// Manage users: add, del, passwd, list.
    User(user::UserArgs),
    /// Inspect and cancel jobs of the running server: list, show [--wait], cancel.
    Jobs(jobs::JobsArgs),
    /// Replace (or, with --mount, add) a handler of the running server.
    Deploy(deploy::DeployArgs),
    /// List the running server's handlers: mount, version, last refusal.
    Handlers(deploy::HandlersArgs),
    /// Create a handler crate that builds to a component and deploys as is.
    New(new::NewArgs),
    /// Issue client certificates for mutual TLS from the generated CA.
    Cert(cert::CertArgs),
}

/// Which deployment a command works on: the manifest and the data directory.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServeArgs {
    /// The manifest; default: the one compiled into the binary.
    #[arg(long, env = "BATON_MANIFEST", global = true)]
    pub manifest: Option<PathBuf>,
    /// The data directory; default: `[storage] data` of the manifest, else `./baton-data`.
    #[arg(long, env = "BATON_DATA", global = true)]
    pub data: Option<PathBuf>,
}

impl ServeArgs {
    /// The manifest named (or the embedded one) and the data directory.
    pub fn resolve(&self) -> anyhow::Result<(Manifest, PathBuf)> {
        let manifest = match &self.manifest {
            Some(path) => Manifest::load(path)?,
            None => Manifest::embedded(),
        };
        let data_dir = self
            .data
            .clone()
            .or_else(|| manifest.storage.data.clone())
            .unwrap_or_else(|| PathBuf::from("baton-data"));
        Ok((manifest, data_dir))
    }
}

/// Parses the command line and runs it.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::default()));
    if let Command::Serve(args) = command {
        return serve(args);
    }
    // Kept until `main` returns: dropping it writes out the lines still queued.
    let _telemetry = crate::telemetry::init(None)?;
    match command {
        Command::Serve(_) => unreachable!("served above"),
        Command::Token(args) => token::run(args),
        Command::User(args) => user::run(args),
        Command::Jobs(args) => jobs::run(args),
        Command::Deploy(args) => deploy::run(args),
        Command::Handlers(args) => deploy::list(args),
        Command::New(args) => new::run(args),
        Command::Cert(args) => cert::run(args),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (manifest, data_dir) = args.resolve()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("baton")
        .build()?;
    // Logs and traces, with the runtime entered (an OTLP/gRPC exporter's
    // connection runs on it); dropped after serving and before the runtime,
    // so that queued lines are written and the last spans exported.
    let telemetry = {
        let _entered = runtime.enter();
        crate::telemetry::init(Some(&manifest.telemetry))?
    };
    let served = runtime.block_on(async move {
        let app = App::start(manifest, data_dir).await?;
        crate::server::run(app, shutdown_signal()).await
    });
    drop(telemetry);
    served
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Runs `f` to its end on the command's runtime: a CLI command reaches the
/// store through its async interface. One runtime serves every call, as a
/// database pool opened in one call is used in the next.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    if RUNTIME.get().is_none() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let _ = RUNTIME.set(rt);
    }
    Ok(RUNTIME.get().expect("set above").block_on(f))
}

/// The store a CLI command on `manifest`'s deployment reads and writes: the
/// database of `[storage] url` (or `BATON_STORAGE_URL`) when there is one,
/// else the data directory's (see [`open_store`]); and whether it is the
/// shared database.
pub(crate) fn open_kv(
    manifest: &crate::manifest::Manifest,
    data_dir: &std::path::Path,
) -> anyhow::Result<(std::sync::Arc<dyn crate::store::KvStore>, bool)> {
    Ok(
        match crate::store::floor::configured_url(manifest.storage.url.as_deref()) {
            Some(url) => (
                std::sync::Arc::new(block_on(crate::store::PgStore::connect(&url))??),
                true,
            ),
            None => (open_store(data_dir)?, false),
        },
    )
}

/// The store of a data directory for a CLI command, explaining the error a
/// running server (which holds the database) causes.
pub(crate) fn open_store(
    data_dir: &std::path::Path,
) -> anyhow::Result<std::sync::Arc<crate::store::SledStore>> {
    let path = data_dir.join("db");
    if !path.exists() {
        anyhow::bail!(
            "{} has no database: start the server once (`baton serve --data {}`) or check `--data`",
            data_dir.display(),
            data_dir.display()
        );
    }
    match crate::store::SledStore::open_unwaiting(&path) {
        Ok(store) => Ok(std::sync::Arc::new(store)),
        Err(crate::store::StoreError::Unavailable(_)) => anyhow::bail!(
            "the database in {} is in use by a running server; pass `--server URL` to go through its admin API",
            data_dir.display()
        ),
        Err(e) => anyhow::bail!("opening the database in {}: {e}", data_dir.display()),
    }
}
