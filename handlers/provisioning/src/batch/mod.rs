//! Batches: a DAG of operations run as one job graph of the engine
//! (`spawn-graph` with the batch's parallel limit and rollback flag).
//! `POST /batch/execute`, `GET /batch/operations`, `GET
//! /batch/operations/{id}`, `POST /batch/operations/{id}/cancel`.

pub mod plan;
pub mod status;

use crate::cli::TASK_KIND;
use crate::envelope::{ApiError, Reply, body, ok};
use crate::tasks::parse_uuid;
use baton_sdk::jobs::{self, JobInfo, JobSpec, JobState};
use baton_sdk::kv::Bucket;
use baton_sdk::{HostError, Request, time};
use plan::{BatchRequest, PlannedOp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const BATCHES: &str = "batches";
const COUNTERS: &str = "counters";

/// A batch as stored in kv (its tasks' states live in the job engine).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// UUIDv7.
    pub id: String,
    /// Its name.
    pub name: String,
    /// As given.
    pub version: Option<String>,
    /// As given.
    pub storage_backend: Option<String>,
    /// Operations at once.
    pub parallel_limit: u32,
    /// Whether a failure rolls back.
    pub rollback_enabled: bool,
    /// Its operations with their task ids.
    pub operations: Vec<PlannedOp>,
    /// Milliseconds since the epoch.
    pub created_at_ms: u64,
    /// Set by cancel.
    #[serde(default)]
    pub cancel_requested: bool,
}

/// A new UUIDv7: the time now and a counter kept in kv (unique per server,
/// without needing a random source in the sandbox).
fn new_id() -> Result<String, ApiError> {
    let n = Bucket::open(COUNTERS).increment("batch", 1)?;
    let mut tail = [0u8; 10];
    tail[2..].copy_from_slice(&n.to_be_bytes());
    Ok(
        uuid::Builder::from_unix_timestamp_millis(time::now_millis(), &tail)
            .into_uuid()
            .hyphenated()
            .to_string(),
    )
}

/// `POST /batch/execute`: checks the whole batch, then queues its tasks.
pub fn execute(req: &Request) -> Reply {
    let r: BatchRequest = body(&req.body)?;
    let mut plan = plan::plan(&r)?;
    let id = new_id()?;
    let mut specs = Vec::with_capacity(plan.tasks.len());
    for (op, task, deps) in &mut plan.tasks {
        task.batch = Some(id.clone());
        let input = serde_json::to_vec(task).map_err(|e| ApiError::new(500, e.to_string()))?;
        let mut spec = JobSpec::new(TASK_KIND, input)
            .label("batch", &id)
            .label("operation", &plan.ops[*op].id);
        for d in deps.iter() {
            spec = spec.after(&d.to_string());
        }
        specs.push(spec);
    }
    let ids = jobs::spawn_graph(&specs, plan.parallel_limit, r.rollback_enabled)?;
    let mut operations = plan.ops;
    for ((op, _, _), task_id) in plan.tasks.iter().zip(&ids) {
        operations[*op].task_ids.push(task_id.clone());
    }
    let record = BatchRecord {
        id: id.clone(),
        name: r.name,
        version: r.version,
        storage_backend: r.storage_backend,
        parallel_limit: plan.parallel_limit,
        rollback_enabled: r.rollback_enabled,
        operations,
        created_at_ms: time::now_millis(),
        cancel_requested: false,
    };
    if let Err(e) = Bucket::open(BATCHES).set_json(&id, &record) {
        // Without its record nobody could follow or cancel the batch: stop it.
        for t in &ids {
            let _ = jobs::cancel(t);
        }
        return Err(e.into());
    }
    baton_sdk::log::info(&format!(
        "batch {id} `{}` queued with {} tasks",
        record.name,
        ids.len()
    ));
    Ok(ok(200, &id))
}

/// The batch's tasks as the engine has them now.
fn tasks_of(b: &BatchRecord) -> Result<Vec<JobInfo>, ApiError> {
    let mut out = Vec::new();
    for id in b.operations.iter().flat_map(|o| &o.task_ids) {
        if let Some(j) = jobs::get(id)? {
            out.push(j);
        }
    }
    Ok(out)
}

fn load(req: &Request) -> Result<BatchRecord, ApiError> {
    let id = parse_uuid("id", req.param("id").unwrap_or_default())?;
    Bucket::open(BATCHES)
        .get_json::<BatchRecord>(&id)?
        .ok_or_else(|| ApiError::not_found(format!("there is no batch `{id}`")))
}

/// `GET /batch/operations?limit=&offset=`: newest first.
pub fn list(req: &Request) -> Reply {
    let (limit, offset) = crate::tasks::page(req)?;
    let all = Bucket::open(BATCHES).scan_all_json::<BatchRecord>("")?;
    let mut out: Vec<Value> = Vec::new();
    for (_, b) in all.iter().rev().skip(offset).take(limit) {
        out.push(status::view(b, &tasks_of(b)?));
    }
    Ok(ok(200, &out))
}

/// `GET /batch/operations/{id}`.
pub fn get(req: &Request) -> Reply {
    let b = load(req)?;
    Ok(ok(200, &status::view(&b, &tasks_of(&b)?)))
}

/// `POST /batch/operations/{id}/cancel`: running tasks are stopped (their
/// processes killed), queued ones never start; no rollback runs.
pub fn cancel(req: &Request) -> Reply {
    let mut b = load(req)?;
    let jobs_now = tasks_of(&b)?;
    let now = status::view(&b, &jobs_now);
    let st = now["status"].as_str().unwrap_or_default();
    if status::is_final(st) {
        return Err(ApiError::new(
            409,
            format!("batch `{}` already ended: {st}", b.id),
        ));
    }
    if st == "RollingBack" {
        // A task failed: the engine rolls back once the running ones end,
        // and cancelling now would leave that half done.
        return Err(ApiError::new(
            409,
            format!(
                "batch `{}` is rolling back after a failure; it cannot be cancelled",
                b.id
            ),
        ));
    }
    b.cancel_requested = true;
    Bucket::open(BATCHES).set_json(&b.id, &b)?;
    // Running ones first, so that none of them ends as a failure (which
    // would start a rollback) when the queued ones are cancelled.
    let mut order: Vec<&JobInfo> = jobs_now.iter().filter(|j| !j.state.is_final()).collect();
    order.sort_by_key(|j| j.state != JobState::Running);
    for j in order {
        match jobs::cancel(&j.id) {
            Ok(()) | Err(HostError::Conflict) | Err(HostError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(ok(200, &status::view(&b, &tasks_of(&b)?)))
}
