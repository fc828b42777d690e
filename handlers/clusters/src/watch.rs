//! The watcher (Commissaire's `watcher` service): a scheduled job
//! (`[[handler.schedule]] kind = "watch-hosts"` in the manifest) that checks
//! every `active` or `inactive` host again with `investigate_command`. A
//! host that answers gets its facts and `last_check` refreshed and is
//! `active`; one whose check fails gets `last_check` moved on and becomes
//! `inactive`, until a later check succeeds. Hosts still being brought in
//! (investigating, bootstrapping) or failed are left to their own job.

use crate::bootstrap;
use crate::commands;
use crate::store::{self, Change, Host};
use baton_sdk::{Job, jobs, time};

/// The job kind the schedule spawns.
pub const KIND: &str = "watch-hosts";

/// Statuses the watcher checks.
const WATCHED: [&str; 2] = ["active", "inactive"];

/// Runs one round over every watched host; the output counts them.
pub fn run(_job: &Job) -> Result<Vec<u8>, String> {
    let hosts: Vec<Host> = store::all(store::HOSTS).map_err(|e| e.to_string())?;
    let watched: Vec<&Host> = hosts
        .iter()
        .filter(|h| WATCHED.contains(&h.status.as_str()))
        .collect();
    let (mut up, mut down) = (0, 0);
    for (i, host) in watched.iter().enumerate() {
        jobs::progress(
            &format!("checking {}", host.address),
            i as u32,
            watched.len() as u32,
        );
        match check(&host.address) {
            Ok(()) => up += 1,
            Err(why) => {
                baton_sdk::log::warn(&format!("host {} is inactive: {why}", host.address));
                down += 1;
            }
        }
    }
    Ok(format!("{up} active, {down} inactive").into_bytes())
}

/// Checks one host and records what was found.
fn check(address: &str) -> Result<(), String> {
    let (creds, key) = bootstrap::creds(address)?;
    let vars = bootstrap::vars(address, &creds)?;
    let found = commands::run("investigate_command", &vars, &key)
        .and_then(|out| commands::parse_facts(&out));
    let checked = time::now_rfc3339();
    store::update::<Host, ()>(store::HOSTS, address, |cur| match cur {
        // Only a host still watched: not deleted, re-added or failed meanwhile.
        Some(mut h) if WATCHED.contains(&h.status.as_str()) => {
            match &found {
                Ok(facts) => {
                    h.found(facts, &checked);
                    h.status = "active".into();
                }
                Err(_) => {
                    h.last_check = checked.clone();
                    h.status = "inactive".into();
                }
            }
            Ok((Change::Put(h), ()))
        }
        _ => Ok((Change::Keep, ())),
    })
    .map_err(|e| e.message)?;
    found.map(drop)
}
