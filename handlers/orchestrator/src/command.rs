//! The commands: `POST /command/deploy`, `/command/task`, `/command/stop`.
//!
//! A deploy or task becomes one orchestrator job (a sequential name from
//! kv `increment`) and one job-engine job per node, queued together as a
//! graph whose parallel limit is the request's `concurrency`. Each engine
//! job runs [`crate::run::run_node`].

use crate::errors::OrchError;
use crate::groups::{self, MAX_GROUP_NODES};
use crate::inventory::validate_name;
use crate::lifecycle;
use crate::model::{Event, JobRecord, JobState, JobType, NodeRecord, Owner, StatusEntry};
use crate::options::{self, Target};
use crate::run::{NODE_RUN, NodeRun, RunConfig};
use crate::store;
use baton_sdk::jobs::{self, JobSpec};
use baton_sdk::time::now_millis;
use baton_sdk::{Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

type Reply = Result<Response, OrchError>;

/// The target of a command: exactly one key.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nodes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    node_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query: Option<Value>,
}

/// `POST /command/deploy`'s body (the Puppet orchestrator's fields; an
/// optional one may be `null`, see [`options::parse`]).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeployBody {
    pub(crate) environment: String,
    /// Absent: the whole environment, i.e. every node of the inventory
    /// (the older orchestrator API deploys `{"environment": "production"}`).
    #[serde(default = "whole_environment")]
    pub(crate) scope: Scope,
    /// Seconds each node's run may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default)]
    noop: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    no_noop: Option<bool>,
    #[serde(default)]
    concurrency: Option<u32>,
    #[serde(default)]
    debug: bool,
    #[serde(default)]
    trace: bool,
    #[serde(default)]
    evaltrace: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    enforce_environment: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    filetimeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http_connect_timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http_keepalive_timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    http_read_timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ordering: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    skip_tags: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tags: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    use_cached_catalog: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    usecacheonfailure: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    userdata: Option<Map<String, Value>>,
}

/// `POST /command/task`'s body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskBody {
    #[serde(default = "production")]
    environment: String,
    task: String,
    #[serde(default)]
    params: Map<String, Value>,
    pub(crate) scope: Scope,
    /// Seconds the task may take on each node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout: Option<u64>,
    /// Nodes reached over SSH or WinRM, with their connection keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) targets: Option<Vec<Target>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default)]
    noop: bool,
    #[serde(default)]
    concurrency: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    userdata: Option<Map<String, Value>>,
}

fn whole_environment() -> Scope {
    Scope {
        node_group: Some(groups::ALL_NODES.to_string()),
        ..Scope::default()
    }
}

fn production() -> String {
    "production".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StopBody {
    job: Value,
    /// Also end the runs in progress at once.
    #[serde(default)]
    force: bool,
}

/// Checks a Puppet environment name: letters, digits and `_`.
pub fn validate_environment(env: &str) -> Result<(), OrchError> {
    let ok = !env.is_empty()
        && env.len() <= 255
        && env.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(OrchError::validation(format!(
            "invalid environment `{env}`: use letters, digits and `_`"
        ))
        .details(json!({ "field": "environment", "value": env })))
    }
}

/// Checks a task name: `module` or `module::task`, lower case.
pub fn validate_task(task: &str) -> Result<(), OrchError> {
    let part = |p: &str| {
        p.starts_with(|c: char| c.is_ascii_lowercase())
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    let parts: Vec<&str> = task.split("::").collect();
    if task.len() <= 255 && parts.len() <= 2 && parts.iter().all(|p| part(p)) {
        Ok(())
    } else {
        Err(OrchError::validation(format!(
            "invalid task name `{task}`: expected `module` or `module::task` in lower case"
        ))
        .details(json!({ "field": "task", "value": task })))
    }
}

fn validate_concurrency(c: Option<u32>) -> Result<(), OrchError> {
    if c == Some(0) {
        return Err(OrchError::validation("`concurrency` must be at least 1")
            .details(json!({ "field": "concurrency", "value": 0 })));
    }
    Ok(())
}

/// The nodes `scope` names, sorted and without duplicates.
pub fn resolve_scope(scope: &Scope) -> Result<Vec<String>, OrchError> {
    let mut keys = Vec::new();
    if scope.nodes.is_some() {
        keys.push("nodes");
    }
    if scope.node_group.is_some() {
        keys.push("node_group");
    }
    if scope.query.is_some() {
        keys.push("query");
    }
    if keys.len() != 1 {
        return Err(OrchError::validation(format!(
            "`scope` must have exactly one of `nodes`, `node_group` or `query`; it has {}",
            if keys.is_empty() {
                "none".to_string()
            } else {
                keys.join(" and ")
            }
        ))
        .details(json!({ "field": "scope", "keys": keys })));
    }
    let mut nodes = if let Some(list) = &scope.nodes {
        for n in list {
            validate_name(n)?;
        }
        list.clone()
    } else if let Some(id) = &scope.node_group {
        groups::validate_id(id)?;
        groups::resolve(id)?.ok_or_else(|| groups::unknown_group(id))?
    } else {
        return Err(OrchError::validation(
            "`scope.query` (PuppetDB queries) is not supported by Baton; name `nodes` or a `node_group`",
        )
        .details(json!({ "field": "scope.query" })));
    };
    nodes.sort();
    nodes.dedup();
    if nodes.is_empty() {
        return Err(OrchError::new(
            400,
            "empty-target",
            "the scope names no nodes; there is nothing to run on",
        )
        .details(json!({ "scope": scope })));
    }
    if nodes.len() > MAX_GROUP_NODES {
        return Err(OrchError::validation(format!(
            "the scope names {} nodes; one job runs on at most {MAX_GROUP_NODES}",
            nodes.len()
        ))
        .details(json!({ "field": "scope" })));
    }
    Ok(nodes)
}

/// What [`create_job`] needs from a deploy or a task.
struct NewJob {
    kind: JobType,
    environment: String,
    task: Option<String>,
    description: String,
    concurrency: Option<u32>,
    timeout_ms: Option<u64>,
    options: Value,
    nodes: Vec<String>,
    /// node → transport, for the nodes `targets` names.
    transports: BTreeMap<String, String>,
}

impl Scope {
    /// Whether resolving this scope reads the store (it names a node group);
    /// every other scope is resolved, or refused, from the body alone.
    pub(crate) fn reads_store(&self) -> bool {
        self.node_group.is_some() && self.nodes.is_none() && self.query.is_none()
    }
}

/// A deploy body, read and checked before anything is looked up.
pub(crate) fn read_deploy(bytes: &[u8]) -> Result<DeployBody, OrchError> {
    let body: DeployBody = options::parse(bytes)?;
    validate_environment(&body.environment)?;
    validate_concurrency(body.concurrency)?;
    options::validate_timeout(body.timeout)?;
    if body.noop && body.no_noop == Some(true) {
        return Err(
            OrchError::validation("`noop` and `no_noop` cannot both be true")
                .details(json!({ "field": "no_noop" })),
        );
    }
    Ok(body)
}

/// A task body, read and checked before anything is looked up.
pub(crate) fn read_task(bytes: &[u8]) -> Result<TaskBody, OrchError> {
    let body: TaskBody = options::parse(bytes)?;
    validate_environment(&body.environment)?;
    validate_task(&body.task)?;
    validate_concurrency(body.concurrency)?;
    options::validate_timeout(body.timeout)?;
    Ok(body)
}

/// `POST /command/deploy`.
pub fn deploy(req: &Request) -> Reply {
    let body = read_deploy(&req.body)?;
    let run = RunConfig::load(JobType::Deploy)?;
    let nodes = resolve_scope(&body.scope)?;
    let options = to_options(&body)?;
    create_job(
        req,
        NewJob {
            kind: JobType::Deploy,
            environment: body.environment.clone(),
            task: None,
            description: body.description.clone().unwrap_or_default(),
            concurrency: body.concurrency,
            timeout_ms: options::node_timeout_ms(run.timeout_ms, body.timeout),
            options,
            nodes,
            transports: BTreeMap::new(),
        },
    )
}

/// `POST /command/task`.
pub fn task(req: &Request) -> Reply {
    let mut body = read_task(&req.body)?;
    let run = RunConfig::load(JobType::Task)?;
    let nodes = resolve_scope(&body.scope)?;
    let transports = match body.targets.as_mut() {
        Some(targets) => options::check_targets(targets, &nodes)?,
        None => BTreeMap::new(),
    };
    let options = to_options(&body)?;
    create_job(
        req,
        NewJob {
            kind: JobType::Task,
            environment: body.environment.clone(),
            task: Some(body.task.clone()),
            description: body.description.clone().unwrap_or_default(),
            concurrency: body.concurrency,
            timeout_ms: options::node_timeout_ms(run.timeout_ms, body.timeout),
            options,
            nodes,
            transports,
        },
    )
}

pub(crate) fn to_options<T: Serialize>(body: &T) -> Result<Value, OrchError> {
    serde_json::to_value(body)
        .map_err(|e| OrchError::new(500, "internal-error", format!("encoding options: {e}")))
}

fn create_job(req: &Request, new: NewJob) -> Reply {
    let name = store::next_job_name()?;
    let now = now_millis();
    let login = req
        .principal
        .as_ref()
        .map(|p| p.subject.clone())
        .unwrap_or_else(|| "anonymous".into());
    // Created and started in one go: `job_running` is the job's first
    // event because it is written before any node run can start.
    let job = JobRecord {
        name,
        kind: new.kind,
        options: new.options,
        owner: Owner {
            login: login.clone(),
            id: login,
        },
        description: new.description,
        environment: new.environment,
        task: new.task,
        state: JobState::Running,
        status: vec![
            StatusEntry {
                state: JobState::New,
                enter_ms: now,
                exit_ms: Some(now),
            },
            StatusEntry {
                state: JobState::Running,
                enter_ms: now,
                exit_ms: None,
            },
        ],
        node_count: new.nodes.len() as u64,
        created_ms: now,
        finished_ms: None,
        final_node_states: None,
        stop_logged: false,
        indexed: true,
    };
    let nodes: Vec<NodeRecord> = new
        .nodes
        .iter()
        .map(|n| NodeRecord::ready(n, now))
        .collect();
    store::create(&job, &nodes)?;
    let msg = format!(
        "Started {} job {name} on {} nodes in environment {}",
        job.kind.as_str(),
        job.node_count,
        job.environment
    );
    store::append_event(name, Event::new("job_running", None, msg, now))?;
    let timeout = new.timeout_ms;
    let specs: Vec<JobSpec> = new
        .nodes
        .iter()
        .map(|node| {
            let input = serde_json::to_vec(&NodeRun {
                job: name,
                node: node.clone(),
                transport: new.transports.get(node).cloned(),
            })
            .unwrap_or_default();
            let spec = JobSpec::new(NODE_RUN, input)
                .label("orchestrator-job", &name.to_string())
                .label("target", node);
            // Leave the run a minute beyond its command's own limit to record the result.
            match timeout {
                Some(ms) => spec.timeout_ms(ms.saturating_add(60_000)),
                None => spec,
            }
        })
        .collect();
    let ids = match jobs::spawn_graph(&specs, new.concurrency.unwrap_or(0), false) {
        Ok(ids) => ids,
        Err(e) => {
            let _ = store::remove(&job, &nodes);
            return Err(OrchError::new(
                503,
                "job-engine-error",
                format!("the job engine did not accept the job: {e}"),
            ));
        }
    };
    let ids: BTreeMap<String, String> = new.nodes.iter().cloned().zip(ids).collect();
    crate::tally::set_engine_ids(&job, &ids)?;
    let url = format!("{}/jobs/{name}", req.base_url.trim_end_matches('/'));
    Ok(Response::json(
        202,
        &json!({ "job": { "id": url, "name": name.to_string() } }),
    ))
}

/// Parses a job name from the API: a positive integer (string or number).
pub fn parse_job_name(raw: &str) -> Result<u64, OrchError> {
    raw.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        OrchError::validation(format!(
            "job `{raw}` is not a job name (a positive integer)"
        ))
        .details(json!({ "field": "job", "value": raw }))
    })
}

/// A stop body: the job's name, as given, and `force`.
pub(crate) fn read_stop(bytes: &[u8]) -> Result<(u64, String, bool), OrchError> {
    let body: StopBody = options::parse(bytes)?;
    let raw = match &body.job {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(OrchError::validation(format!(
                "`job` must be a job name such as \"81\", not {other}"
            ))
            .details(json!({ "field": "job" })));
        }
    };
    Ok((parse_job_name(&raw)?, raw, body.force))
}

/// `POST /command/stop` with `{"job": "81"}`: nodes not yet started are
/// skipped; running ones finish, or with `"force": true` are ended at once.
/// Answers with the job's node counts.
pub fn stop(req: &Request) -> Reply {
    let (name, raw, force) = read_stop(&req.body)?;
    let job = lifecycle::stop(name, force)?.ok_or_else(|| lifecycle::unknown_job(&raw))?;
    let counts = crate::tally::node_states(&job)?;
    let url = format!("{}/jobs/{name}", req.base_url.trim_end_matches('/'));
    Ok(Response::json(
        202,
        &json!({ "job": {
            "id": url,
            "name": name.to_string(),
            "state": job.state.as_str(),
            "nodes": counts,
        }}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(v: Value) -> Scope {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn scope_needs_exactly_one_key() {
        let e = resolve_scope(&scope(json!({}))).unwrap_err();
        let r: Response = e.into();
        assert_eq!(r.status, 400);
        assert!(r.body_json()["msg"].as_str().unwrap().contains("none"));
        let e = resolve_scope(&scope(json!({"nodes": ["a"], "node_group": "x"}))).unwrap_err();
        let r: Response = e.into();
        assert!(
            r.body_json()["msg"]
                .as_str()
                .unwrap()
                .contains("nodes and node_group")
        );
    }

    #[test]
    fn node_lists_are_checked_sorted_and_deduplicated() {
        let nodes = resolve_scope(&scope(json!({"nodes": ["b", "a", "b"]}))).unwrap();
        assert_eq!(nodes, ["a", "b"]);
        let r: Response = resolve_scope(&scope(json!({"nodes": []})))
            .unwrap_err()
            .into();
        assert_eq!(
            r.body_json()["kind"],
            "puppetlabs.orchestrator/empty-target"
        );
        let r: Response = resolve_scope(&scope(json!({"nodes": ["No Way"]})))
            .unwrap_err()
            .into();
        assert_eq!(r.status, 400);
        let r: Response = resolve_scope(&scope(json!({"query": ["from", "nodes"]})))
            .unwrap_err()
            .into();
        assert!(
            r.body_json()["msg"]
                .as_str()
                .unwrap()
                .contains("not supported")
        );
    }

    #[test]
    fn deploy_bodies_name_what_is_wrong() {
        let err = |body: &str| -> String {
            let req = Request::new("POST", "/command/deploy").with_body(body.to_string());
            let r = deploy(&req);
            let r: Response = r.unwrap_err().into();
            assert_eq!(r.status, 400, "{body}");
            r.body_json()["msg"].as_str().unwrap().to_string()
        };
        assert!(err(r#"{"scope": {"nodes": ["a"]}}"#).contains("missing field `environment`"));
        assert!(err(r#"{"environment": 1, "scope": {}}"#).contains("invalid type"));
        assert!(
            err(r#"{"environment": "production", "scope": {"nodes": ["a"]}, "colour": 1}"#)
                .contains("unknown field `colour`")
        );
        assert!(
            err(r#"{"environment": "production", "scope": {"nodes": ["a"], "bogus": 1}}"#)
                .contains("unknown field `bogus`")
        );
        assert!(
            err(r#"{"environment": "prod env", "scope": {"nodes": ["a"]}}"#)
                .contains("invalid environment")
        );
        assert!(
            err(r#"{"environment": "production", "scope": {"nodes": ["a"]}, "concurrency": 0}"#)
                .contains("concurrency")
        );
        assert!(
            err(r#"{"environment": "production", "scope": {"nodes": ["a"]}, "concurrency": -1}"#)
                .contains("invalid value")
        );
    }

    #[test]
    fn task_names_and_job_names() {
        assert!(validate_task("package").is_ok());
        assert!(validate_task("package::install").is_ok());
        assert!(validate_task("Package").is_err());
        assert!(validate_task("a::b::c").is_err());
        assert!(validate_task("").is_err());
        assert_eq!(parse_job_name("81").unwrap(), 81);
        assert!(parse_job_name("0").is_err());
        assert!(parse_job_name("x1").is_err());
    }
}
