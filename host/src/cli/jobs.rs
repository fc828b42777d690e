//! `baton jobs list|show|cancel`: the job engine through the admin API of the
//! running server (see [`AdminClient::for_deployment`]).

use super::ServeArgs;
use super::client::{AdminClient, ServerArgs};
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

/// Runs `baton jobs …`.
pub fn run(args: JobsArgs) -> anyhow::Result<()> {
    let c = AdminClient::for_deployment(&args.target, &args.server)?;
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

/// Prints the events of job `id` after `after`; returns the last seq printed.
fn print_events(c: &AdminClient, id: &str, after: u64) -> anyhow::Result<u64> {
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
    Ok(reply["next_after"].as_u64().unwrap_or(after))
}

/// Prints the job's events as they arrive until it ends; fails unless it succeeded.
fn follow(c: &AdminClient, id: &str) -> anyhow::Result<()> {
    let mut after = 0u64;
    loop {
        after = print_events(c, id, after)?;
        let job = c.call(reqwest::Method::GET, &format!("/jobs/{id}"), None)?;
        let state = s(&job["state"]);
        if is_final(&state) {
            // Events written between the two calls.
            print_events(c, id, after)?;
            println!("job {id} {state}");
            if state == "succeeded" {
                return Ok(());
            }
            crate::telemetry::writer::flush();
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
