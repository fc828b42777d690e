//! Deploy, upgrade and restart of a cluster (`/cluster/{name}/deploy`,
//! `/upgrade`, `/restart`): a graph of one job per member host, at most
//! `parallelism` at once (default one host at a time), started in member
//! order. The status record moves hosts from `in_process` to
//! `deployed`/`upgraded`/`restarted` as their jobs end; the first failure
//! stops the hosts not yet started and leaves the status `failed`.

use crate::body::{self, Body};
use crate::bootstrap;
use crate::clusters;
use crate::commands;
use crate::errors::{ApiError, Reply};
use crate::store::{self, Change};
use baton_sdk::jobs::{self, JobSpec};
use baton_sdk::kv::Bucket;
use baton_sdk::{Job, Request, Response, config, time};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The job kind of one host's step.
pub const KIND: &str = "cluster-op";
/// A run whose jobs were never recorded is given up after this long.
const ORPHAN_AFTER_MS: u64 = 60_000;
/// Most hosts one run covers: the job engine's limit of jobs per graph.
const MAX_RUN_HOSTS: usize = 10_000;

/// One operation over a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// An OSTree deploy of a version.
    Deploy,
    /// An upgrade.
    Upgrade,
    /// A rolling restart.
    Restart,
}

impl Op {
    /// Its name in paths, keys and the config (`{op}_command`).
    pub fn name(self) -> &'static str {
        match self {
            Op::Deploy => "deploy",
            Op::Upgrade => "upgrade",
            Op::Restart => "restart",
        }
    }

    /// The status field listing the hosts done.
    fn done_field(self) -> &'static str {
        match self {
            Op::Deploy => "deployed",
            Op::Upgrade => "upgraded",
            Op::Restart => "restarted",
        }
    }

    fn parse(s: &str) -> Option<Op> {
        [Op::Deploy, Op::Upgrade, Op::Restart]
            .into_iter()
            .find(|o| o.name() == s)
    }
}

/// The status of the last run of an operation on a cluster.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OpRecord {
    /// Which run this is (jobs of earlier runs leave it alone).
    pub run: i64,
    /// `in_process`, `finished` or `failed`.
    pub status: String,
    /// The version deployed (deploy only).
    pub version: Option<String>,
    /// Hosts not started yet.
    pub pending: Vec<String>,
    /// Hosts whose job runs.
    pub in_process: Vec<String>,
    /// Hosts done, in the order they finished.
    pub done: Vec<String>,
    /// Hosts whose job failed.
    pub failed: Vec<String>,
    /// When the run started (ISO 8601).
    pub started_at: String,
    /// The same, in milliseconds since the epoch.
    #[serde(default)]
    pub started_ms: u64,
    /// When the last host finished.
    pub finished_at: Option<String>,
    /// The run's job ids, in member order.
    pub jobs: Vec<String>,
}

fn key(cluster: &str, op: Op) -> String {
    format!("{cluster}/{}", op.name())
}

fn view(cluster: &str, op: Op, r: &OpRecord) -> Value {
    let mut v = json!({
        "name": cluster,
        "status": r.status,
        op.done_field(): r.done,
        "in_process": r.in_process,
        "failed": r.failed,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "jobs": r.jobs,
    });
    if op == Op::Deploy {
        v["version"] = json!(r.version);
    }
    v
}

/// Ends `r` when nothing is left to run.
fn close_if_done(r: &mut OpRecord) {
    if r.status == "in_process" && r.pending.is_empty() && r.in_process.is_empty() {
        r.finished_at = Some(time::now_rfc3339());
        r.status = if r.failed.is_empty() {
            "finished"
        } else {
            "failed"
        }
        .into();
    }
}

/// The record with its status made true: a run whose jobs all ended while
/// hosts were left unfinished (cancelled, or the server stopped during a
/// last attempt) is `failed`, so that it does not block the next run.
fn settled(cluster: &str, op: Op) -> Result<Option<OpRecord>, ApiError> {
    let Some(r) = store::get::<OpRecord>(store::OPS, &key(cluster, op))? else {
        return Ok(None);
    };
    if r.status != "in_process" {
        return Ok(Some(r));
    }
    if r.jobs.is_empty() {
        // Its jobs are recorded right after they are queued; a run still
        // without them long after it started lost them to a crash.
        if time::now_millis().saturating_sub(r.started_ms) < ORPHAN_AFTER_MS {
            return Ok(Some(r));
        }
    }
    for id in &r.jobs {
        if jobs::get(id)?.is_some_and(|j| !j.state.is_final()) {
            return Ok(Some(r));
        }
    }
    store::update::<OpRecord, Option<OpRecord>>(store::OPS, &key(cluster, op), |cur| match cur {
        Some(mut c) if c.run == r.run && c.status == "in_process" => {
            let left: Vec<String> = c.in_process.drain(..).collect();
            c.failed.extend(left);
            c.pending.clear();
            c.finished_at = Some(time::now_rfc3339());
            c.status = "failed".into();
            Ok((Change::Put(c.clone()), Some(c)))
        }
        other => Ok((Change::Keep, other)),
    })
}

/// `GET /cluster/{name}/{op}`: the last run's status.
pub fn show(req: &Request, op: Op) -> Reply {
    let name = body::name_param(req, "name")?;
    clusters::get(&name)?;
    let r = settled(&name, op)?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no {} has been started on cluster `{name}`",
            op.name()
        ))
    })?;
    Ok(Response::json(200, &view(&name, op, &r)))
}

/// A `PUT /cluster/{name}/{op}` request: the cluster's name and, for a
/// deploy, the version.
pub(crate) fn read_start(req: &Request, op: Op) -> Result<(String, Option<String>), ApiError> {
    let name = body::name_param(req, "name")?;
    let b = Body::parse(req, if op == Op::Deploy { &["version"] } else { &[] })?;
    let version = match op {
        Op::Deploy => Some(body::version(&b.str("version")?)?),
        _ => None,
    };
    Ok((name, version))
}

/// `PUT /cluster/{name}/{op}`: starts a run (201); 409 while one is in
/// process, or when the cluster has more than [`MAX_RUN_HOSTS`] hosts.
pub fn start(req: &Request, op: Op) -> Reply {
    let (name, version) = read_start(req, op)?;
    let cluster = clusters::get(&name)?;
    if cluster.hosts.len() > MAX_RUN_HOSTS {
        return Err(ApiError::conflict(format!(
            "cluster `{name}` has {} hosts; a {} runs on at most {MAX_RUN_HOSTS}: split the cluster",
            cluster.hosts.len(),
            op.name()
        )));
    }
    settled(&name, op)?;
    let run = Bucket::open(store::OPS).increment("runs", 1)?;
    let mut record = OpRecord {
        run,
        status: "in_process".into(),
        version: version.clone(),
        pending: cluster.hosts.clone(),
        in_process: Vec::new(),
        done: Vec::new(),
        failed: Vec::new(),
        started_at: time::now_rfc3339(),
        started_ms: time::now_millis(),
        finished_at: None,
        jobs: Vec::new(),
    };
    close_if_done(&mut record);
    store::update::<OpRecord, ()>(store::OPS, &key(&name, op), |cur| match cur {
        Some(c) if c.status == "in_process" => Err(ApiError::conflict(format!(
            "a {} of cluster `{name}` is in process since {}; wait for it to finish",
            op.name(),
            c.started_at
        ))),
        _ => Ok((Change::Put(record.clone()), ())),
    })?;
    if !cluster.hosts.is_empty() {
        let parallel = config::get("parallelism")
            .and_then(|p| p.trim().parse::<u32>().ok())
            .unwrap_or(1)
            .max(1);
        let specs: Vec<JobSpec> = cluster
            .hosts
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let input = json!({ "cluster": name, "op": op.name(), "run": run, "host": host, "version": version });
                let spec = JobSpec::new(KIND, input.to_string().into_bytes())
                    .label("cluster", &name)
                    .label("op", op.name())
                    .label("host", host);
                // Host i waits for host i - parallelism: members start in order.
                match i.checked_sub(parallel as usize) {
                    Some(before) => spec.after(&before.to_string()),
                    None => spec,
                }
            })
            .collect();
        let ids = match jobs::spawn_graph(&specs, parallel, false) {
            Ok(ids) => ids,
            Err(e) => {
                store::update::<OpRecord, ()>(store::OPS, &key(&name, op), |cur| match cur {
                    Some(mut c) if c.run == run => {
                        c.failed = c.pending.drain(..).collect();
                        close_if_done(&mut c);
                        Ok((Change::Put(c), ()))
                    }
                    _ => Ok((Change::Keep, ())),
                })?;
                return Err(e.into());
            }
        };
        record =
            store::update::<OpRecord, OpRecord>(store::OPS, &key(&name, op), |cur| match cur {
                Some(mut c) if c.run == run => {
                    c.jobs = ids.clone();
                    Ok((Change::Put(c.clone()), c))
                }
                other => Ok((Change::Keep, other.unwrap_or_else(|| record.clone()))),
            })?;
    }
    Ok(Response::json(201, &view(&name, op, &record)))
}

/// One host's step of a run.
pub fn run(job: &Job) -> Result<Vec<u8>, String> {
    let input: Value =
        serde_json::from_slice(&job.input).map_err(|e| format!("bad job input: {e}"))?;
    let (cluster, host) = (
        input["cluster"].as_str().unwrap_or_default(),
        input["host"].as_str().unwrap_or_default(),
    );
    let op = Op::parse(input["op"].as_str().unwrap_or_default()).ok_or("bad job input: no op")?;
    let run = input["run"].as_i64().unwrap_or(-1);
    let k = key(cluster, op);
    // Claim the host: pending → in_process, unless the run moved on.
    let go = store::update::<OpRecord, bool>(store::OPS, &k, |cur| match cur {
        Some(mut r) if r.run == run && r.pending.iter().any(|h| h == host) => {
            r.pending.retain(|h| h != host);
            if r.status != "in_process" {
                close_if_done(&mut r);
                return Ok((Change::Put(r), false));
            }
            r.in_process.push(host.to_string());
            Ok((Change::Put(r), true))
        }
        _ => Ok((Change::Keep, false)),
    })
    .map_err(|e| e.message)?;
    if !go {
        return Ok(format!("{host} skipped: the {} run ended", op.name()).into_bytes());
    }
    let result = step(op, host, input["version"].as_str());
    store::update::<OpRecord, ()>(store::OPS, &k, |cur| match cur {
        Some(mut r) if r.run == run => {
            r.in_process.retain(|h| h != host);
            match &result {
                Ok(()) => r.done.push(host.to_string()),
                Err(_) => {
                    r.failed.push(host.to_string());
                    // Stop here: the hosts not started yet are left as they are.
                    r.pending.clear();
                }
            }
            close_if_done(&mut r);
            Ok((Change::Put(r), ()))
        }
        _ => Ok((Change::Keep, ())),
    })
    .map_err(|e| e.message)?;
    result.map(|()| format!("{} of {host} done", op.name()).into_bytes())
}

fn step(op: Op, host: &str, version: Option<&str>) -> Result<(), String> {
    let (creds, key) = bootstrap::creds(host)?;
    let mut vars = bootstrap::vars(host, &creds)?;
    vars.push(("version", version.unwrap_or_default().to_string()));
    jobs::progress(&format!("{} of {host}", op.name()), 0, 1);
    commands::run(&format!("{}_command", op.name()), &vars, &key)
        .map_err(|e| format!("{} of {host} failed: {e}", op.name()))?;
    Ok(())
}
