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
    // Kept until `main` returns: dropping it writes out the lines still queued.
    let _log_writer = init_tracing()?;
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args),
        Command::Token(args) => token::run(args),
        Command::User(args) => user::run(args),
        Command::Jobs(args) => jobs::run(args),
        Command::Deploy(args) => deploy::run(args),
        Command::Handlers(args) => deploy::list(args),
        Command::New(args) => new::run(args),
        Command::Cert(args) => cert::run(args),
    }
}

/// How log lines are written: `BATON_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    /// One human-readable line per event (the default).
    Text,
    /// One JSON object per line, with the event's fields and its spans'.
    Json,
}

impl LogFormat {
    fn from_env(value: Option<&str>) -> anyhow::Result<LogFormat> {
        match value.map(str::trim) {
            None | Some("" | "text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => {
                anyhow::bail!("BATON_LOG_FORMAT is `{other}`: expected `text` or `json`")
            }
        }
    }
}

/// Installs the log subscriber: `BATON_LOG` filters (default `info`),
/// `BATON_LOG_FORMAT` picks text or JSON, and every line goes to stderr
/// through a writer thread, so that no request waits on the write. The
/// writer thread buffers what it takes off the queue and writes once the
/// queue is empty: under load one `write` carries many lines instead of
/// one each. The returned guard flushes what is queued when dropped. The
/// queue does not drop lines: when it is full (128k lines) loggers wait.
fn init_tracing() -> anyhow::Result<tracing_appender::non_blocking::WorkerGuard> {
    use std::io::IsTerminal;
    let format = LogFormat::from_env(std::env::var("BATON_LOG_FORMAT").ok().as_deref())?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("baton-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
    Ok(guard)
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let (manifest, data_dir) = args.resolve()?;
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

/// Opens the sled database of a data directory for a CLI command, explaining
/// the lock error a running server causes.
pub(crate) fn open_db(data_dir: &std::path::Path) -> anyhow::Result<sled::Db> {
    let path = data_dir.join("db");
    if !path.exists() {
        anyhow::bail!(
            "{} has no database: start the server once (`baton serve --data {}`) or check `--data`",
            data_dir.display(),
            data_dir.display()
        );
    }
    sled::open(&path).map_err(|e| {
        if is_lock_error(&e) {
            anyhow::anyhow!(
                "the database in {} is in use by a running server; pass `--server URL` to go through its admin API",
                data_dir.display()
            )
        } else {
            anyhow::anyhow!("opening the database in {}: {e}", data_dir.display())
        }
    })
}

/// Whether sled failed because another process holds the database.
pub(crate) fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock
        || io.to_string().contains("lock"))
}
