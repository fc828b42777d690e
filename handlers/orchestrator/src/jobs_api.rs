//! Reading jobs: `GET /jobs`, `/jobs/{name}`, `/jobs/{name}/nodes`,
//! `/jobs/{name}/events`, `/jobs/{name}/report`.
//!
//! A job that has not ended is first brought up to date with the job
//! engine ([`lifecycle::reconcile`]), so a run lost to a crash or a time
//! limit shows as failed rather than running forever.

use crate::command::parse_job_name;
use crate::errors::OrchError;
use crate::lifecycle;
use crate::model::{JobRecord, JobType, NodeRecord, NodeState};
use crate::query::{Paging, number, number_u64, timestamp};
use crate::store;
use crate::tally;
use baton_sdk::time::now_millis;
use baton_sdk::{Request, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;

type Reply = Result<Response, OrchError>;

/// Most events one `GET /jobs/{name}/events` returns: a whole job's
/// (`job_running`, two per node, `job_stopping`, the end), because
/// orchestrator_client-ruby's `Job#each_event` asks without `start` every
/// time and stops only when the page holds the terminal event.
const MAX_EVENTS: u32 = 2 * crate::groups::MAX_GROUP_NODES as u32 + 3;

fn base(req: &Request) -> &str {
    req.base_url.trim_end_matches('/')
}

fn name_param(req: &Request) -> Result<u64, OrchError> {
    let raw = req.param("name").unwrap_or_default();
    parse_job_name(raw)
}

/// The job named in the path, brought up to date (without its scope,
/// which only the job's own reply shows: see [`store::with_scope`]).
fn load(req: &Request) -> Result<JobRecord, OrchError> {
    let name = name_param(req)?;
    let job = store::job(name)?.ok_or_else(|| lifecycle::unknown_job(&name.to_string()))?;
    lifecycle::reconcile(job)
}

/// `GET /jobs`.
pub fn list(req: &Request) -> Reply {
    let paging =
        Paging::from_request(req, &["name", "owner", "timestamp", "environment", "state"])?;
    let kind = match req.query_param("type").as_deref() {
        None => None,
        Some("deploy") => Some(JobType::Deploy),
        Some("task") => Some(JobType::Task),
        Some(other) => {
            return Err(OrchError::validation(format!(
                "`type` must be `deploy` or `task`, not `{other}`"
            ))
            .details(json!({ "field": "type", "value": other })));
        }
    };
    let task = req.query_param("task");
    if task.is_some() && kind == Some(JobType::Deploy) {
        return Err(
            OrchError::validation("`task` cannot be used with `type=deploy`")
                .details(json!({ "field": "task" })),
        );
    }
    let min_finish = timestamp(req, "min_finish_timestamp")?;
    let max_finish = timestamp(req, "max_finish_timestamp")?;

    let mut jobs = Vec::new();
    for job in store::all_jobs()? {
        let job = lifecycle::reconcile(job)?;
        let keep = kind.is_none_or(|k| k == job.kind)
            && task
                .as_ref()
                .is_none_or(|t| job.task.as_ref().is_some_and(|jt| jt.contains(t.as_str())))
            && min_finish.is_none_or(|m| {
                job.finished_ms
                    .is_some_and(|f| i128::from(f) >= i128::from(m))
            })
            && max_finish.is_none_or(|m| {
                job.finished_ms
                    .is_some_and(|f| i128::from(f) <= i128::from(m))
            });
        if keep {
            jobs.push(job);
        }
    }
    // Stored by name already; a stable sort keeps name order within ties.
    match paging.order_by.as_str() {
        "owner" => jobs.sort_by(|a, b| a.owner.login.cmp(&b.owner.login)),
        "timestamp" => jobs.sort_by_key(|j| j.changed_ms()),
        "environment" => jobs.sort_by(|a, b| a.environment.cmp(&b.environment)),
        "state" => jobs.sort_by_key(|j| j.state.as_str()),
        _ => {}
    }
    let (page, total) = paging.page(jobs);
    let now = now_millis();
    let mut items: Vec<Value> = Vec::with_capacity(page.len());
    for job in page {
        let counts = tally::node_states(&job)?;
        items.push(store::with_scope(job)?.to_json(base(req), &counts, now));
    }
    Ok(Response::json(
        200,
        &json!({
            "items": items,
            "pagination": {
                "limit": paging.limit,
                "offset": paging.offset,
                "order_by": paging.order_by,
                "order": if paging.desc { "desc" } else { "asc" },
                "total": total,
            },
        }),
    ))
}

/// `GET /jobs/{name}`.
pub fn get(req: &Request) -> Reply {
    let job = store::with_scope(load(req)?)?;
    let body = job.to_json(base(req), &tally::node_states(&job)?, now_millis());
    Ok(Response::json(200, &body))
}

/// The `next-events` link: where a follower continues.
fn next_events(req: &Request, name: u64, next: u64) -> Value {
    json!({
        "id": format!("{}/jobs/{name}/events?start={next}", base(req)),
        "event": next.to_string(),
    })
}

/// `GET /jobs/{name}/nodes`.
pub fn nodes(req: &Request) -> Reply {
    let paging = Paging::from_request(
        req,
        &[
            "name",
            "duration",
            "state",
            "start_timestamp",
            "finish_timestamp",
        ],
    )?;
    let state = match req.query_param("state") {
        None => None,
        Some(s) => Some(NodeState::parse(&s).ok_or_else(|| {
            let allowed: Vec<&str> = NodeState::ALL.iter().map(|s| s.as_str()).collect();
            OrchError::validation(format!(
                "`state` must be one of {}, not `{s}`",
                allowed.join(", ")
            ))
            .details(json!({ "field": "state", "value": s }))
        })?),
    };
    let job = load(req)?;
    let now = now_millis();
    let (page, total) = node_page(&job, &paging, state, now)?;
    let items: Vec<Value> = page.iter().map(|n| n.to_json(now, job.kind)).collect();
    Ok(Response::json(
        200,
        &json!({
            "next-events": next_events(req, job.name, store::next_event_id(job.name)?),
            "items": items,
            "pagination": {
                "limit": paging.limit,
                "offset": paging.offset,
                "total": total,
            },
        }),
    ))
}

/// One page of `job`'s nodes, optionally only those in `state`, and how
/// many there are. In name order (the default) an `indexed` job's page
/// costs its offset and limit in keys, however large the job; any other
/// order needs every node.
fn node_page(
    job: &JobRecord,
    paging: &Paging,
    state: Option<NodeState>,
    now: u64,
) -> Result<(Vec<NodeRecord>, usize), OrchError> {
    if job.indexed && paging.order_by == "name" && !paging.desc {
        let limit = paging.limit.unwrap_or(usize::MAX);
        // Skipping over the list's keys is cheap; a whole listing reads
        // the records in order instead of one by one.
        let page = match (state, paging.limit) {
            (None, None) => store::node_range(job.name, paging.offset, usize::MAX)?,
            _ => {
                let list = state.map_or(tally::ALL, |s| s.as_str());
                let names =
                    tally::listed(job.name, list, None, paging.offset.saturating_add(limit))?;
                tally::records(job.name, names.get(paging.offset..).unwrap_or_default())?
            }
        };
        let total = match state {
            None => job.node_count,
            Some(s) => tally::node_states(job)?
                .get(s.as_str())
                .copied()
                .unwrap_or(0),
        };
        return Ok((page, total as usize));
    }
    let mut nodes: Vec<NodeRecord> = store::nodes(job.name)?
        .into_iter()
        .filter(|n| state.is_none_or(|s| s == n.state))
        .collect();
    match paging.order_by.as_str() {
        "duration" => nodes.sort_by_key(|n| n.duration_ms(now)),
        "state" => nodes.sort_by_key(|n| n.state.as_str()),
        "start_timestamp" => nodes.sort_by_key(|n| n.start_ms),
        "finish_timestamp" => nodes.sort_by_key(|n| n.finish_ms),
        _ => {}
    }
    Ok(paging.page(nodes))
}

/// `GET /jobs/{name}/events?start=N`: events with id `>= N` in order.
pub fn events(req: &Request) -> Reply {
    let start = match req.query_param("start") {
        None => 1,
        Some(v) => number_u64("start", &v)?.max(1),
    };
    let limit = match req.query_param("limit") {
        None => MAX_EVENTS,
        Some(v) => (number("limit", &v)?.clamp(1, MAX_EVENTS as usize)) as u32,
    };
    let job = load(req)?;
    let events = store::events(job.name, start, limit)?;
    let next = events.last().map_or(start, |e| e.id + 1);
    let items: Vec<Value> = events.iter().map(|e| e.to_json()).collect();
    Ok(Response::json(
        200,
        &json!({ "next-events": next_events(req, job.name, next), "items": items }),
    ))
}

/// `GET /jobs/{name}/report`: per node its state, last change and event ids.
pub fn report(req: &Request) -> Reply {
    let job = load(req)?;
    let nodes = store::nodes(job.name)?;
    let mut by_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in store::all_events(job.name)? {
        if let Some(n) = e.node {
            by_node.entry(n).or_default().push(e.id.to_string());
        }
    }
    let items: Vec<Value> = nodes
        .iter()
        .map(|n| {
            json!({
                "node": n.name,
                "state": n.state.as_str(),
                "timestamp": baton_sdk::time::rfc3339(n.changed_ms),
                "events": by_node.remove(&n.name).unwrap_or_default(),
            })
        })
        .collect();
    Ok(Response::json(200, &json!({ "items": items })))
}
