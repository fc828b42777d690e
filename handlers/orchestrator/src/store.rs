//! The orchestrator's kv layout and its concurrency rules.
//!
//! Buckets: `seq` (the job-name counter), `jobs` (`<name>` → [`JobRecord`]),
//! `job-nodes` (`<name>/<node>` → [`NodeRecord`]), `events`
//! (`<name>/<id>` → [`Event`]), `event-heads` (`<name>` → highest event id
//! written, a hint), `engine-ids` (`<name>` → node → job-engine id),
//! `logged-ends` (`<name>` → nodes whose end event is written, a hint),
//! `job-scopes` (`<name>` → the job's `options.scope`, kept apart so that
//! the record every node run reads stays small however many nodes the
//! scope names; [`with_scope`] puts it back for replies); and, kept in step
//! with the node records by [`crate::tally`], `node-tallies`, `node-states`
//! and `engine-id`. Names
//! and ids are zero-padded so that keys sort numerically.
//!
//! Node runs execute concurrently and a stop request may arrive at any time,
//! so every change of a record is a compare-and-swap of the whole record
//! (retried on conflict), and every state change is made once: whoever swaps
//! a node out of `ready` or `running` owns that transition and writes its
//! event. Events are appended by claiming the next free key with a
//! compare-and-swap, so ids have no gaps and a reader always sees a prefix.

use crate::errors::OrchError;
use crate::model::{Event, JobRecord, NodeRecord};
use baton_sdk::kv::{Bucket, Write};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

const SEQ: &str = "seq";
const JOBS: &str = "jobs";
/// Node records, `<job>/<node>`.
pub const NODES: &str = "job-nodes";
const EVENTS: &str = "events";
const HEADS: &str = "event-heads";
const ENGINE: &str = "engine-ids";
const ENDED: &str = "logged-ends";
const SCOPES: &str = "job-scopes";
/// Compare-and-swap attempts before giving up on a hot record.
pub const MAX_TRIES: usize = 10_000;

/// The key of job `name`.
pub fn job_key(name: u64) -> String {
    format!("{name:012}")
}

/// The key of node `node` of job `job`.
pub fn node_key(job: u64, node: &str) -> String {
    format!("{job:012}/{node}")
}

fn event_key(job: u64, id: u64) -> String {
    format!("{job:012}/{id:012}")
}

/// The next job name: 1, 2, 3… never reused.
pub fn next_job_name() -> Result<u64, OrchError> {
    let n = Bucket::open(SEQ).increment("jobs", 1)?;
    u64::try_from(n).map_err(|_| OrchError::new(500, "internal-error", "job counter overflowed"))
}

/// Job `name`, without its `options.scope` (see [`with_scope`]).
pub fn job(name: u64) -> Result<Option<JobRecord>, OrchError> {
    Ok(Bucket::open(JOBS).get_json(&job_key(name))?)
}

/// `job` with its `options.scope` back in place, for replies.
pub fn with_scope(mut job: JobRecord) -> Result<JobRecord, OrchError> {
    let scope: Option<serde_json::Value> = Bucket::open(SCOPES).get_json(&job_key(job.name))?;
    if let (Some(scope), Some(options)) = (scope, job.options.as_object_mut()) {
        options.insert("scope".into(), scope);
    }
    Ok(job)
}

/// Every job, by name.
pub fn all_jobs() -> Result<Vec<JobRecord>, OrchError> {
    Ok(Bucket::open(JOBS)
        .scan_all_json::<JobRecord>("")?
        .into_iter()
        .map(|(_, j)| j)
        .collect())
}

/// The nodes of job `name`, by node name.
pub fn nodes(name: u64) -> Result<Vec<NodeRecord>, OrchError> {
    Ok(Bucket::open(NODES)
        .scan_all_json::<NodeRecord>(&format!("{name:012}/"))?
        .into_iter()
        .map(|(_, n)| n)
        .collect())
}

/// Up to `limit` nodes of job `name` by node name, after skipping `offset`.
pub fn node_range(name: u64, offset: usize, limit: usize) -> Result<Vec<NodeRecord>, OrchError> {
    let bucket = Bucket::open(NODES);
    let prefix = format!("{name:012}/");
    scan_range(&bucket, &prefix, None, offset.saturating_add(limit))?
        .iter()
        .skip(offset)
        .map(|(key, bytes)| decode(&bucket, key, bytes))
        .collect()
}

/// Writes a new job (its scope apart) and its nodes in one atomic batch.
pub fn create(job: &JobRecord, nodes: &[NodeRecord]) -> Result<(), OrchError> {
    let (jobs, node_bucket) = (Bucket::open(JOBS), Bucket::open(NODES));
    let mut lean = job.clone();
    let scope = lean.options.as_object_mut().and_then(|o| o.remove("scope"));
    let mut writes = vec![jobs.write_json(&job_key(job.name), &lean)?];
    if let Some(scope) = scope {
        writes.push(Bucket::open(SCOPES).write_json(&job_key(job.name), &scope)?);
    }
    for n in nodes {
        writes.push(node_bucket.write_json(&node_key(job.name, &n.name), n)?);
    }
    if job.indexed {
        writes.extend(crate::tally::initial_writes(job, nodes));
    }
    baton_sdk::kv::apply(writes)?;
    Ok(())
}

/// Removes a job that could not be queued, with its nodes and its first event.
pub fn remove(job: &JobRecord, nodes: &[NodeRecord]) -> Result<(), OrchError> {
    let (jobs, node_bucket) = (Bucket::open(JOBS), Bucket::open(NODES));
    let mut writes = vec![
        jobs.write_delete(&job_key(job.name)),
        Bucket::open(EVENTS).write_delete(&event_key(job.name, 1)),
        Bucket::open(HEADS).write_delete(&job_key(job.name)),
        Bucket::open(SCOPES).write_delete(&job_key(job.name)),
    ];
    for n in nodes {
        writes.push(node_bucket.write_delete(&node_key(job.name, &n.name)));
    }
    if job.indexed {
        writes.extend(
            crate::tally::initial_writes(job, nodes)
                .into_iter()
                .map(|w| Write { value: None, ..w }),
        );
    }
    baton_sdk::kv::apply(writes)?;
    Ok(())
}

/// Counts one more node of job `name` whose end is logged; returns the count.
/// Only a hint for when to check whether the job ended (a crash between
/// logging and counting leaves it short; readers check in full).
pub fn count_logged_end(name: u64) -> Result<u64, OrchError> {
    let n = Bucket::open(ENDED).increment(&job_key(name), 1)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Records the job-engine id of each node of job `name`.
pub fn set_engine_ids(name: u64, ids: &BTreeMap<String, String>) -> Result<(), OrchError> {
    Ok(Bucket::open(ENGINE).set_json(&job_key(name), ids)?)
}

/// The job-engine id of each node of job `name` (empty until queued).
pub fn engine_ids(name: u64) -> Result<BTreeMap<String, String>, OrchError> {
    Ok(Bucket::open(ENGINE)
        .get_json(&job_key(name))?
        .unwrap_or_default())
}

/// Changes job `name` with `f`, which returns `None` to leave it as it is.
/// Returns the record as written (or as found) and `f`'s answer.
pub fn update_job<R>(
    name: u64,
    f: impl FnMut(&mut JobRecord) -> Option<R>,
) -> Result<Option<(JobRecord, Option<R>)>, OrchError> {
    update(&Bucket::open(JOBS), &job_key(name), f)
}

fn update<T: Serialize + DeserializeOwned, R>(
    bucket: &Bucket,
    key: &str,
    mut f: impl FnMut(&mut T) -> Option<R>,
) -> Result<Option<(T, Option<R>)>, OrchError> {
    for _ in 0..MAX_TRIES {
        let Some(old) = bucket.get(key)? else {
            return Ok(None);
        };
        let mut value: T = decode(bucket, key, &old)?;
        let Some(answer) = f(&mut value) else {
            return Ok(Some((value, None)));
        };
        let new = encode(&value)?;
        if bucket.compare_and_swap(key, Some(&old), Some(&new))? {
            return Ok(Some((value, Some(answer))));
        }
    }
    Err(OrchError::new(
        500,
        "internal-error",
        format!("{}/{key} kept changing; try again", bucket.name()),
    ))
}

/// Appends `event` to job `name`; returns its id.
pub fn append_event(name: u64, mut event: Event) -> Result<u64, OrchError> {
    let (events, heads) = (Bucket::open(EVENTS), Bucket::open(HEADS));
    let head_key = job_key(name);
    // Every id up to the head is taken; claim the first free one after it.
    let head: u64 = heads.get_json(&head_key)?.unwrap_or(0);
    let mut id = head + 1;
    loop {
        event.id = id;
        if events.compare_and_swap(&event_key(name, id), None, Some(&encode(&event)?))? {
            break;
        }
        id += 1;
    }
    // Move the hint forward (never back).
    for _ in 0..MAX_TRIES {
        let raw = heads.get(&head_key)?;
        let current: u64 = match &raw {
            Some(b) => decode(&heads, &head_key, b)?,
            None => 0,
        };
        if current >= id
            || heads.compare_and_swap(&head_key, raw.as_deref(), Some(&encode(&id)?))?
        {
            break;
        }
    }
    Ok(id)
}

/// Up to `limit` entries of `bucket` under `prefix`, in key order,
/// strictly after key `after`: the host caps one scan, so this pages.
pub fn scan_range(
    bucket: &Bucket,
    prefix: &str,
    mut after: Option<String>,
    limit: usize,
) -> Result<Vec<(String, Vec<u8>)>, OrchError> {
    let mut out = Vec::new();
    while out.len() < limit {
        let want = (limit - out.len()).min(500) as u32;
        let page = bucket.scan(prefix, after.as_deref(), want)?;
        let full = page.len() == want as usize;
        after = page.last().map(|(k, _)| k.clone());
        out.extend(page);
        if !full {
            break;
        }
    }
    Ok(out)
}

/// Events of job `name` with id `>= start`, at most `limit`.
pub fn events(name: u64, start: u64, limit: u32) -> Result<Vec<Event>, OrchError> {
    let bucket = Bucket::open(EVENTS);
    let after = (start > 1).then(|| event_key(name, start - 1));
    scan_range(&bucket, &format!("{name:012}/"), after, limit as usize)?
        .iter()
        .map(|(key, bytes)| decode::<Event>(&bucket, key, bytes))
        .collect()
}

/// The id the next event of job `name` gets: one past the head hint,
/// moved past any event written after it (a few keys, not a scan).
pub fn next_event_id(name: u64) -> Result<u64, OrchError> {
    let head: u64 = Bucket::open(HEADS).get_json(&job_key(name))?.unwrap_or(0);
    let mut next = head + 1;
    loop {
        let later = events(name, next, 100)?;
        match later.last() {
            Some(e) => next = e.id + 1,
            None => return Ok(next),
        }
    }
}

/// Every event of job `name`.
pub fn all_events(name: u64) -> Result<Vec<Event>, OrchError> {
    Ok(Bucket::open(EVENTS)
        .scan_all_json::<Event>(&format!("{name:012}/"))?
        .into_iter()
        .map(|(_, e)| e)
        .collect())
}

/// Decodes stored record `bucket/key`.
pub fn decode<T: DeserializeOwned>(
    bucket: &Bucket,
    key: &str,
    bytes: &[u8],
) -> Result<T, OrchError> {
    serde_json::from_slice(bytes).map_err(|e| {
        OrchError::new(
            500,
            "internal-error",
            format!("stored record {}/{key} is unreadable: {e}", bucket.name()),
        )
    })
}

/// Encodes a record for storing.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, OrchError> {
    serde_json::to_vec(value)
        .map_err(|e| OrchError::new(500, "internal-error", format!("encoding a record: {e}")))
}
