//! The `baton` command line.

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
}

/// `baton serve`.
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// The manifest to serve; default: the one compiled into the binary.
    #[arg(long, env = "BATON_MANIFEST")]
    pub manifest: Option<PathBuf>,
    /// The data directory; default: `[storage] data` of the manifest, else `./baton-data`.
    #[arg(long, env = "BATON_DATA")]
    pub data: Option<PathBuf>,
}

/// Parses the command line and runs it.
pub fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args),
    }
}

fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let manifest = match &args.manifest {
        Some(path) => Manifest::load(path)?,
        None => Manifest::embedded(),
    };
    let data_dir = args
        .data
        .or_else(|| manifest.storage.data.clone())
        .unwrap_or_else(|| PathBuf::from("baton-data"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("baton")
        .build()?;
    runtime.block_on(async move {
        let app = App::start(manifest, data_dir).await?;
        crate::server::run(app, shutdown_signal()).await
    })
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
