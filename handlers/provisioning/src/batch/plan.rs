//! A batch request checked before anything runs (ids, types, payloads,
//! dependencies, cycles) and planned as one task per item.
//!
//! Items of one operation run one after another (each waits for the one
//! before), and an operation's first item waits for the last item of every
//! operation it depends on. So at most one task per operation runs at a time,
//! and the job graph's parallel limit is exactly "operations at once".

use crate::cli::{Invocation, TaskSpec, check_value, common_args};
use crate::envelope::ApiError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Operations one batch may hold.
pub const MAX_OPERATIONS: usize = 100;
/// Tasks one batch may create in all.
pub const MAX_TASKS: usize = 1000;
/// Largest `parallel_limit`.
pub const MAX_PARALLEL: u32 = 100;
/// `parallel_limit` when absent.
pub const DEFAULT_PARALLEL: u32 = 4;

/// `POST /batch/execute`'s body.
#[derive(Debug, Deserialize)]
pub struct BatchRequest {
    /// The batch's name.
    pub name: String,
    /// Free-form version, recorded.
    #[serde(default)]
    pub version: Option<String>,
    /// Where the reference system kept state; accepted and recorded.
    #[serde(default)]
    pub storage_backend: Option<String>,
    /// Operations running at once.
    #[serde(default)]
    pub parallel_limit: Option<u32>,
    /// Whether a failure rolls back the completed operations.
    #[serde(default)]
    pub rollback_enabled: bool,
    /// Defaults for every operation.
    #[serde(flatten)]
    pub defaults: Flags,
    /// The operations.
    pub operations: Vec<Operation>,
    /// Keys no field took (`deny_unknown_fields` does not work beside
    /// `flatten`); [`plan`] refuses the batch if there are any.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, serde::de::IgnoredAny>,
}

/// CLI flags a batch or an operation may set (an operation's win).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Flags {
    /// `--infra`.
    #[serde(default)]
    pub infra: Option<String>,
    /// `--settings`.
    #[serde(default)]
    pub settings: Option<String>,
    /// `--check`.
    #[serde(default)]
    pub check_mode: Option<bool>,
    /// `--wait`.
    #[serde(default)]
    pub wait: Option<bool>,
}

/// One operation of a batch.
#[derive(Debug, Deserialize)]
pub struct Operation {
    /// Unique within the batch.
    pub id: String,
    /// `server_batch`, `taskserv_batch` or `cluster_batch`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The cloud provider, passed as `--provider`.
    pub provider: String,
    /// Operations that must complete first.
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// `server_batch` items.
    #[serde(default)]
    pub server_configs: Option<Vec<ServerConfig>>,
    /// `taskserv_batch` items.
    #[serde(default)]
    pub taskservs: Option<Vec<Named>>,
    /// `cluster_batch` items.
    #[serde(default)]
    pub clusters: Option<Vec<Named>>,
    /// This operation's flags.
    #[serde(flatten)]
    pub flags: Flags,
    /// Keys no field took; refused like the batch's own.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, serde::de::IgnoredAny>,
}

/// A server to create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Its hostname.
    pub name: String,
    /// `--plan`.
    #[serde(default)]
    pub plan: Option<String>,
    /// `--zone`.
    #[serde(default)]
    pub zone: Option<String>,
}

/// A taskserv or cluster: `"kubernetes"` or `{"name": "kubernetes"}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Named {
    /// Just the name.
    Name(String),
    /// An object with a name.
    Object {
        /// The name.
        name: String,
    },
}

impl Named {
    fn name(&self) -> &str {
        match self {
            Named::Name(n) | Named::Object { name: n } => n,
        }
    }
}

/// An operation as recorded with its batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedOp {
    /// Its id.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its provider.
    pub provider: String,
    /// Its dependencies.
    pub dependencies: Vec<String>,
    /// Its items' names.
    pub items: Vec<String>,
    /// Its tasks' ids (filled in once spawned), one per item.
    #[serde(default)]
    pub task_ids: Vec<String>,
}

/// A checked batch: its operations and one task per item, in graph order.
#[derive(Debug)]
pub struct Plan {
    /// The operations.
    pub ops: Vec<PlannedOp>,
    /// `(operation index, task, dependency indices into `tasks`)`.
    pub tasks: Vec<(usize, TaskSpec, Vec<usize>)>,
    /// Operations at once.
    pub parallel_limit: u32,
}

fn op_error(op: &str, msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("operation `{op}`: {msg}"))
}

/// Checks `req` and plans its tasks (their `batch` is left for the caller).
pub fn plan(req: &BatchRequest) -> Result<Plan, ApiError> {
    if let Some(key) = req.unknown.keys().next() {
        return Err(ApiError::bad_request(format!(
            "unknown field `{}` in the batch",
            baton_sdk::http::clip(key)
        )));
    }
    if req.name.trim().is_empty() || req.name.len() > 256 {
        return Err(ApiError::bad_request(
            "field `name` must be 1-256 characters",
        ));
    }
    if let Some(why) = baton_sdk::http::display_name_problem(&req.name) {
        return Err(ApiError::bad_request(format!("field `name` {why}")));
    }
    for op in &req.operations {
        if let Some(key) = op.unknown.keys().next() {
            return Err(op_error(
                &op.id,
                format_args!("unknown field `{}`", baton_sdk::http::clip(key)),
            ));
        }
    }
    let parallel_limit = req.parallel_limit.unwrap_or(DEFAULT_PARALLEL);
    if !(1..=MAX_PARALLEL).contains(&parallel_limit) {
        return Err(ApiError::bad_request(format!(
            "field `parallel_limit` must be from 1 to {MAX_PARALLEL}, not {parallel_limit}"
        )));
    }
    if req.operations.is_empty() || req.operations.len() > MAX_OPERATIONS {
        return Err(ApiError::bad_request(format!(
            "field `operations` must hold 1 to {MAX_OPERATIONS} operations, not {}",
            req.operations.len()
        )));
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, op) in req.operations.iter().enumerate() {
        check_value(&format!("operations[{i}].id"), &op.id)?;
        if index.insert(op.id.as_str(), i).is_some() {
            return Err(op_error(&op.id, "the id is used by two operations"));
        }
    }
    let mut ops = Vec::with_capacity(req.operations.len());
    let mut invocations = Vec::with_capacity(req.operations.len());
    for op in &req.operations {
        for d in &op.dependencies {
            if !index.contains_key(d.as_str()) {
                return Err(op_error(
                    &op.id,
                    format!("depends on `{d}`, which is not an operation of this batch"),
                ));
            }
            if *d == op.id {
                return Err(op_error(&op.id, "depends on itself"));
            }
        }
        let (items, runs) = items_of(op, &req.defaults)?;
        ops.push(PlannedOp {
            id: op.id.clone(),
            kind: op.kind.clone(),
            provider: op.provider.clone(),
            dependencies: op.dependencies.clone(),
            items,
            task_ids: Vec::new(),
        });
        invocations.push(runs);
    }
    if let Some(cycle) = find_cycle(&ops, &index) {
        return Err(ApiError::bad_request(format!(
            "operations form a dependency cycle: {}",
            cycle.join(" → ")
        )));
    }
    let total: usize = invocations.iter().map(Vec::len).sum();
    if total > MAX_TASKS {
        return Err(ApiError::bad_request(format!(
            "the batch would create {total} tasks; at most {MAX_TASKS}"
        )));
    }
    // Task indices: operations in request order, items in order.
    let mut first = Vec::with_capacity(ops.len());
    let mut last = Vec::with_capacity(ops.len());
    let mut n = 0;
    for runs in &invocations {
        first.push(n);
        n += runs.len();
        last.push(n - 1);
    }
    let mut tasks = Vec::with_capacity(total);
    for (i, runs) in invocations.into_iter().enumerate() {
        for (k, (name, run, rollback)) in runs.into_iter().enumerate() {
            let deps = if k == 0 {
                ops[i]
                    .dependencies
                    .iter()
                    .map(|d| last[index[d.as_str()]])
                    .collect()
            } else {
                vec![first[i] + k - 1]
            };
            let spec = TaskSpec {
                name,
                run,
                rollback: Some(rollback),
                batch: None,
                operation: Some(ops[i].id.clone()),
            };
            tasks.push((i, spec, deps));
        }
    }
    Ok(Plan {
        ops,
        tasks,
        parallel_limit,
    })
}

type ItemRun = (String, Invocation, Invocation);

/// An item's name and its own `(flag, value)` pairs.
type Item = (String, Vec<(&'static str, String)>);

/// Each item's name, command and rollback command.
fn items_of(op: &Operation, defaults: &Flags) -> Result<(Vec<String>, Vec<ItemRun>), ApiError> {
    let infra = op.flags.infra.as_deref().or(defaults.infra.as_deref());
    let settings = op
        .flags
        .settings
        .as_deref()
        .or(defaults.settings.as_deref());
    let check = op.flags.check_mode.or(defaults.check_mode).unwrap_or(false);
    let wait = op.flags.wait.or(defaults.wait).unwrap_or(false);
    let field = |f: &str| format!("operation `{}` {f}", op.id);
    check_value(&field("provider"), &op.provider)?;
    if let Some(i) = infra {
        check_value(&field("infra"), i)?;
    }
    if let Some(s) = settings {
        check_value(&field("settings"), s)?;
    }
    let (payload, noun, verb): (Vec<Item>, &str, &str) = match op.kind.as_str() {
        "server_batch" => {
            let configs = op
                .server_configs
                .as_ref()
                .ok_or_else(|| op_error(&op.id, "a server_batch needs `server_configs`"))?;
            let mut out = Vec::new();
            for c in configs {
                let mut extra = vec![("--server", c.name.clone())];
                if let Some(p) = &c.plan {
                    extra.push(("--plan", p.clone()));
                }
                if let Some(z) = &c.zone {
                    extra.push(("--zone", z.clone()));
                }
                out.push((c.name.clone(), extra));
            }
            (out, "servers", "server_configs")
        }
        "taskserv_batch" => {
            let list = op
                .taskservs
                .as_ref()
                .ok_or_else(|| op_error(&op.id, "a taskserv_batch needs `taskservs`"))?;
            (
                list.iter()
                    .map(|t| (t.name().to_string(), vec![]))
                    .collect(),
                "taskserv",
                "taskservs",
            )
        }
        "cluster_batch" => {
            let list = op
                .clusters
                .as_ref()
                .ok_or_else(|| op_error(&op.id, "a cluster_batch needs `clusters`"))?;
            (
                list.iter()
                    .map(|t| (t.name().to_string(), vec![]))
                    .collect(),
                "cluster",
                "clusters",
            )
        }
        other => {
            return Err(op_error(
                &op.id,
                format!(
                    "unknown type `{other}`; expected server_batch, taskserv_batch or cluster_batch"
                ),
            ));
        }
    };
    if payload.is_empty() {
        return Err(op_error(&op.id, format!("`{verb}` is empty")));
    }
    let mut names = Vec::new();
    let mut runs = Vec::new();
    for (name, extra) in payload {
        check_value(&field(&format!("{verb} item")), &name)?;
        for (flag, v) in &extra {
            check_value(&field(flag.trim_start_matches('-')), v)?;
        }
        let mut flags: Vec<(&str, &str)> = vec![("--provider", op.provider.as_str())];
        flags.extend(extra.iter().map(|(f, v)| (*f, v.as_str())));
        let args = common_args(infra, settings, &flags, check, wait);
        // Undo with the same target; `--yes` because nobody is there to confirm.
        let mut undo: Vec<(&str, &str)> = vec![("--provider", op.provider.as_str())];
        if noun == "servers" {
            undo.push(("--server", name.as_str()));
        }
        let mut undo_args = common_args(infra, settings, &undo, check, wait);
        undo_args.push("--yes".into());
        let (run_cmd, undo_cmd) = if noun == "servers" {
            (
                vec!["servers".into(), "create".into()],
                vec!["servers".into(), "delete".into()],
            )
        } else {
            (
                vec![noun.to_string(), "create".into(), name.clone()],
                vec![noun.to_string(), "delete".into(), name.clone()],
            )
        };
        runs.push((
            format!("{}: {noun} create {name}", op.id),
            Invocation {
                command: run_cmd,
                args,
            },
            Invocation {
                command: undo_cmd,
                args: undo_args,
            },
        ));
        names.push(name);
    }
    Ok((names, runs))
}

/// A dependency cycle among `ops`, as operation ids (first repeated last).
fn find_cycle(ops: &[PlannedOp], index: &HashMap<&str, usize>) -> Option<Vec<String>> {
    // 0 = unvisited, 1 = on the path, 2 = done.
    fn visit(
        i: usize,
        ops: &[PlannedOp],
        index: &HashMap<&str, usize>,
        marks: &mut [u8],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[i] = 1;
        path.push(i);
        for d in &ops[i].dependencies {
            let j = index[d.as_str()];
            match marks[j] {
                1 => {
                    let from = path.iter().position(|&p| p == j).unwrap_or(0);
                    let mut c = path[from..].to_vec();
                    c.push(j);
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(j, ops, index, marks, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        marks[i] = 2;
        None
    }
    let mut marks = vec![0u8; ops.len()];
    for i in 0..ops.len() {
        if marks[i] == 0
            && let Some(c) = visit(i, ops, index, &mut marks, &mut Vec::new())
        {
            return Some(c.into_iter().map(|k| ops[k].id.clone()).collect());
        }
    }
    None
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
