//! The job that brings a new host in: investigate it (`investigate_command`
//! prints its facts), then bootstrap it into its cluster
//! (`bootstrap_command`). The host's status follows: investigating →
//! bootstrapping → active, or failed with the reason as the job's error.

use crate::clusters;
use crate::commands::{self, Vars};
use crate::errors::ApiError;
use crate::resources::{MANAGER, NETWORK};
use crate::store::{self, Change, Creds, Host};
use base64::Engine;
use baton_sdk::jobs::{self, JobSpec};
use baton_sdk::{Job, time};
use serde_json::{Value, json};

/// The job kind.
pub const KIND: &str = "bootstrap-host";

/// Starts the job for the host at `address`; returns its id.
pub fn start(address: &str) -> Result<String, ApiError> {
    let spec = JobSpec::new(KIND, json!({ "address": address }).to_string().into_bytes())
        .label("host", address);
    Ok(jobs::spawn(&spec)?)
}

/// Applies `f` to the host if it is still the one this job was started
/// for (not deleted, nor re-added with another job).
fn set(job: &str, address: &str, f: impl Fn(&mut Host)) -> Result<(), String> {
    store::update::<Host, ()>(store::HOSTS, address, |cur| match cur {
        Some(mut h) if h.job.as_deref().is_none_or(|j| j == job) => {
            f(&mut h);
            Ok((Change::Put(h), ()))
        }
        _ => Ok((Change::Keep, ())),
    })
    .map_err(|e| e.message)
}

/// The host's credentials, the private key decoded.
pub fn creds(address: &str) -> Result<(Creds, Vec<u8>), String> {
    let creds = store::get::<Creds>(store::CREDS, address)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!("no credentials for host {address}; register it with PUT /host/{address}")
        })?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(&creds.ssh_priv_key)
        .map_err(|e| format!("the stored key of host {address} is not base64: {e}"))?;
    Ok((creds, key))
}

/// The placeholders' values for a host (and its cluster, if it has one).
pub fn vars(address: &str, creds: &Creds) -> Result<Vars, String> {
    let mut vars: Vars = vec![
        ("address", address.to_string()),
        ("remote_user", creds.remote_user.clone()),
    ];
    let cluster = clusters::of_host(address).map_err(|e| e.message)?;
    let (mut name, mut network, mut net_type, mut manager, mut cm_type) = (
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    );
    if let Some(c) = cluster {
        name = c.name;
        net_type = NETWORK.get(&c.network).map(|n| n.kind).unwrap_or_default();
        network = c.network;
        if let Some(m) = c.container_manager {
            cm_type = MANAGER.get(&m).map(|r| r.kind).unwrap_or_default();
            manager = m;
        }
    }
    vars.extend([
        ("cluster", name),
        ("network", network),
        ("network_type", net_type),
        ("container_manager", manager),
        ("container_manager_type", cm_type),
    ]);
    Ok(vars)
}

/// Runs the job.
pub fn run(job: &Job) -> Result<Vec<u8>, String> {
    let input: Value =
        serde_json::from_slice(&job.input).map_err(|e| format!("bad job input: {e}"))?;
    let address = input["address"].as_str().unwrap_or_default().to_string();
    if store::get::<Host>(store::HOSTS, &address)
        .map_err(|e| e.to_string())?
        .is_none()
    {
        return Ok(b"the host was deleted before its bootstrap ran".to_vec());
    }
    match steps(job, &address) {
        Ok(()) => Ok(format!("host {address} is active").into_bytes()),
        Err(reason) => {
            set(&job.id, &address, |h| h.status = "failed".into())?;
            Err(reason)
        }
    }
}

fn steps(job: &Job, address: &str) -> Result<(), String> {
    let (creds, key) = creds(address)?;
    set(&job.id, address, |h| h.status = "investigating".into())?;
    jobs::progress(&format!("investigating {address}"), 0, 2);
    let vars = vars(address, &creds)?;
    let out = commands::run("investigate_command", &vars, &key)
        .map_err(|e| format!("investigating {address} failed: {e}"))?;
    let facts =
        commands::parse_facts(&out).map_err(|e| format!("investigating {address} failed: {e}"))?;
    let checked = time::now_rfc3339();
    set(&job.id, address, |h| {
        h.found(&facts, &checked);
        h.status = "bootstrapping".into();
    })?;
    jobs::progress(&format!("bootstrapping {address}"), 1, 2);
    // The cluster may have been chosen while the investigation ran.
    let vars = self::vars(address, &creds)?;
    commands::run("bootstrap_command", &vars, &key)
        .map_err(|e| format!("bootstrapping {address} failed: {e}"))?;
    set(&job.id, address, |h| h.status = "active".into())?;
    jobs::progress(&format!("{address} is active"), 2, 2);
    Ok(())
}
