//! `baton jobs list|show|cancel`: the job engine through the admin API of the
//! running server (found from the manifest unless `--server` is given; an
//! admin token is signed from the data directory unless `--token` is given).

use super::ServeArgs;
use super::client::{AdminClient, ServerArgs};
use crate::auth::tokens::{TokenKeys, TokenKind};
use crate::manifest::{ADMIN_MOUNT_NAME, Manifest};
use crate::server::tls::{CA_CERT, TLS_DIR};
use anyhow::{Context, bail};
use serde_json::Value;
use std::time::Duration;

/// `baton jobs …`.
#[derive(Debug, clap::Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    target: ServeArgs,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Jobs across handlers, oldest first.
    List {
        /// Only this handler's.
        #[arg(long)]
        handler: Option<String>,
        /// Only in this state (queued, running, succeeded, failed, cancelled, rolled-back).
        #[arg(long)]
        state: Option<String>,
        /// At most this many (default 100, at most 1000).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// One job as JSON; with --wait, its events as they happen until it ends.
    Show {
        /// The job id.
        id: String,
        /// Follow the job's events until it ends; exit 1 unless it succeeded.
        #[arg(long)]
        wait: bool,
    },
    /// Cancel a job (its running command's process group is killed).
    Cancel {
        /// The job id.
        id: String,
        /// Wait until the job has stopped.
        #[arg(long)]
        wait: bool,
    },
}

/// Where the admin API of the deployment is, from its manifest.
fn local_server(manifest: &Manifest) -> anyhow::Result<String> {
    let l = manifest
        .listeners
        .iter()
        .find(|l| l.serves(ADMIN_MOUNT_NAME))
        .context("no [[listener]] of the manifest serves `admin`; pass --server")?;
    let scheme = if l.tls.is_some() { "https" } else { "http" };
    let addr: std::net::SocketAddr = l.address.parse()?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    if addr.port() == 0 {
        bail!("the admin listener's port is chosen at start (`:0`); pass --server");
    }
    Ok(format!("{scheme}://{host}:{}", addr.port()))
}

fn client(args: &JobsArgs) -> anyhow::Result<AdminClient> {
    let (manifest, data_dir) = args.target.resolve()?;
    let mut server = args.server.clone();
    if server.server.is_none() {
        server.server = Some(local_server(&manifest)?);
    }
    if server.token.is_none() {
        let keys = TokenKeys::load(&manifest, &data_dir, false)
            .context("no --token given and none can be signed here")?;
        let (token, _) = keys.issue(&manifest.auth.admin_user, TokenKind::Access, 600)?;
        server.token = Some(token);
    }
    AdminClient::new(&server, Some(data_dir.join(TLS_DIR).join(CA_CERT)))
}

/// Runs `baton jobs …`.
pub fn run(args: JobsArgs) -> anyhow::Result<()> {
    let c = client(&args)?;
    match &args.action {
        Action::List {
            handler,
            state,
            limit,
        } => {
            let mut query = Vec::new();
            if let Some(h) = handler {
                query.push(format!("handler={h}"));
            }
            if let Some(s) = state {
                query.push(format!("state={s}"));
            }
            if let Some(l) = limit {
                query.push(format!("limit={l}"));
            }
            let path = format!("/jobs?{}", query.join("&"));
            let reply = c.call(reqwest::Method::GET, &path, None)?;
            println!(
                "{:<36}  {:<11}  {:<14}  {:<16}  {:>8}  CREATED",
                "ID", "STATE", "HANDLER", "KIND", "ATTEMPTS"
            );
            for j in reply["items"].as_array().into_iter().flatten() {
                println!(
                    "{:<36}  {:<11}  {:<14}  {:<16}  {:>8}  {}",
                    s(&j["id"]),
                    s(&j["state"]),
                    s(&j["handler"]),
                    s(&j["kind"]),
                    format!("{}/{}", j["attempts"], j["max_attempts"]),
                    s(&j["created_at"])
                );
            }
        }
        Action::Show { id, wait } => {
            if *wait {
                return follow(&c, id);
            }
            let job = c.call(reqwest::Method::GET, &format!("/jobs/{id}"), None)?;
            println!("{}", serde_json::to_string_pretty(&job)?);
        }
        Action::Cancel { id, wait } => {
            let job = c.call(reqwest::Method::POST, &format!("/jobs/{id}/cancel"), None)?;
            println!("cancel requested: job {id} is {}", s(&job["state"]));
            if *wait {
                return follow(&c, id);
            }
        }
    }
    Ok(())
}

fn s(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

fn is_final(state: &str) -> bool {
    !matches!(state, "queued" | "running")
}

/// Prints the job's events as they arrive until it ends; fails unless it succeeded.
fn follow(c: &AdminClient, id: &str) -> anyhow::Result<()> {
    let mut after = 0u64;
    loop {
        let reply = c.call(
            reqwest::Method::GET,
            &format!("/jobs/{id}/events?after={after}"),
            None,
        )?;
        for e in reply["items"].as_array().into_iter().flatten() {
            println!(
                "{:>4}  {}  {:<16}  {}",
                e["seq"],
                s(&e["at"]),
                s(&e["kind"]),
                s(&e["message"])
            );
        }
        after = reply["next_after"].as_u64().unwrap_or(after);
        let job = c.call(reqwest::Method::GET, &format!("/jobs/{id}"), None)?;
        let state = s(&job["state"]);
        if is_final(&state) {
            // Events written between the two calls.
            let rest = c.call(
                reqwest::Method::GET,
                &format!("/jobs/{id}/events?after={after}"),
                None,
            )?;
            for e in rest["items"].as_array().into_iter().flatten() {
                println!(
                    "{:>4}  {}  {:<16}  {}",
                    e["seq"],
                    s(&e["at"]),
                    s(&e["kind"]),
                    s(&e["message"])
                );
            }
            println!("job {id} {state}");
            if state == "succeeded" {
                return Ok(());
            }
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
