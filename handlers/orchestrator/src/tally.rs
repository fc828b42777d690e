//! Node transitions, and the tallies and lists that keep a job's reads
//! independent of its size.
//!
//! For a job whose record says `indexed` (every job this version creates),
//! each change of a node record is one `kv::apply_if`: the record is
//! swapped only if it is still what was read, and in the same atomic write
//! its entry in `node-states` moves (`<job>/<state>/<node>`, plus
//! `<job>/unlogged/<node>` while a final node's end event is not yet
//! written; `<job>/all/<node>` lists every node) and the counters in `node-tallies` follow (`<job>/<state>`, and
//! `<job>/logged` for nodes whose end is logged). A crash can therefore
//! never leave a tally out of step with the records: a read of a running
//! job costs a few keys, not a scan of every node, and the last node's end
//! is known exactly, not from a hint. Engine job ids are kept per node
//! (`engine-id`, `<job>/<node>`).
//!
//! Jobs created by an earlier version of the handler (no `indexed`) are
//! changed with a plain compare-and-swap and read by scanning, as before.

use crate::errors::OrchError;
use crate::model::{JobRecord, NodeRecord, NodeState, count_states};
use crate::store::{self, MAX_TRIES, decode, encode, node_key};
use baton_sdk::kv::{self, Bucket, Write};
use std::collections::BTreeMap;

const NODES: &str = store::NODES;
const TALLIES: &str = "node-tallies";
const LISTS: &str = "node-states";
const ENGINE_ID: &str = "engine-id";
/// The list of final nodes whose end event is not yet written.
const UNLOGGED: &str = "unlogged";
/// The list of every node of the job (its keys cost little to skip over,
/// unlike the node records, when a page starts at a large offset).
pub const ALL: &str = "all";
/// The counter of nodes whose end event is written.
const LOGGED: &str = "logged";

fn tally_key(job: u64, what: &str) -> String {
    format!("{job:012}/{what}")
}

fn list_prefix(job: u64, list: &str) -> String {
    format!("{job:012}/{list}/")
}

fn raw(bucket: &str, key: String, value: Option<Vec<u8>>) -> Write {
    Write {
        bucket: bucket.to_string(),
        key,
        value,
    }
}

fn unlogged(n: &NodeRecord) -> bool {
    n.state.is_final() && !n.end_logged
}

/// The writes that list a new job's nodes (all `ready`, and in the list
/// of every node, [`ALL`]) and set its tallies.
pub fn initial_writes(job: &JobRecord, nodes: &[NodeRecord]) -> Vec<Write> {
    let mut writes = Vec::with_capacity(2 * nodes.len() + 1);
    for n in nodes {
        for list in [n.state.as_str(), ALL] {
            let key = format!("{}{}", list_prefix(job.name, list), n.name);
            writes.push(raw(LISTS, key, Some(Vec::new())));
        }
    }
    let ready = nodes.iter().filter(|n| n.state == NodeState::Ready).count();
    writes.push(raw(
        TALLIES,
        tally_key(job.name, NodeState::Ready.as_str()),
        Some(ready.to_string().into_bytes()),
    ));
    writes
}

/// Swaps node record `old` (stored as `old_bytes`) for `new`, moving its
/// list entries and tallies with it. `None` when the record changed since
/// it was read; otherwise the counters' new values (the last is `logged`
/// when this swap logged the node's end).
fn swap(
    job: &JobRecord,
    old_bytes: &[u8],
    old: &NodeRecord,
    new: &NodeRecord,
) -> Result<Option<Vec<i64>>, OrchError> {
    let nodes = Bucket::open(NODES);
    let key = node_key(job.name, &new.name);
    let bytes = encode(new)?;
    if !job.indexed {
        let swapped = nodes.compare_and_swap(&key, Some(old_bytes), Some(&bytes))?;
        return Ok(swapped.then(Vec::new));
    }
    let tallies = Bucket::open(TALLIES);
    let entry = |list: &str| format!("{}{}", list_prefix(job.name, list), new.name);
    let mut writes = vec![raw(NODES, key.clone(), Some(bytes))];
    let mut counts = Vec::new();
    if old.state != new.state {
        writes.push(raw(LISTS, entry(old.state.as_str()), None));
        writes.push(raw(LISTS, entry(new.state.as_str()), Some(Vec::new())));
        counts.push(tallies.count(&tally_key(job.name, old.state.as_str()), -1));
        counts.push(tallies.count(&tally_key(job.name, new.state.as_str()), 1));
    }
    match (unlogged(old), unlogged(new)) {
        (false, true) => writes.push(raw(LISTS, entry(UNLOGGED), Some(Vec::new()))),
        (true, false) => {
            writes.push(raw(LISTS, entry(UNLOGGED), None));
            counts.push(tallies.count(&tally_key(job.name, LOGGED), 1));
        }
        _ => {}
    }
    Ok(kv::apply_if(
        vec![nodes.expect(&key, Some(old_bytes))],
        writes,
        counts,
    )?)
}

/// A node change: the record as written (or as found) and `f`'s answer
/// with the counters' new values, if `f` changed it.
type Change<R> = Option<(NodeRecord, Option<(R, Vec<i64>)>)>;

fn change<R>(
    job: &JobRecord,
    node: &str,
    mut f: impl FnMut(&mut NodeRecord) -> Option<R>,
) -> Result<Change<R>, OrchError> {
    let bucket = Bucket::open(NODES);
    let key = node_key(job.name, node);
    for _ in 0..MAX_TRIES {
        let Some(old_bytes) = bucket.get(&key)? else {
            return Ok(None);
        };
        let old: NodeRecord = decode(&bucket, &key, &old_bytes)?;
        let mut new = old.clone();
        let Some(answer) = f(&mut new) else {
            return Ok(Some((new, None)));
        };
        if let Some(counts) = swap(job, &old_bytes, &old, &new)? {
            return Ok(Some((new, Some((answer, counts)))));
        }
    }
    Err(OrchError::new(
        500,
        "internal-error",
        format!("{NODES}/{key} kept changing; try again"),
    ))
}

/// Changes node `node` of `job` with `f`, which returns `None` to leave it
/// as it is. Returns the record as written (or as found) and `f`'s answer.
pub fn update_node<R>(
    job: &JobRecord,
    node: &str,
    f: impl FnMut(&mut NodeRecord) -> Option<R>,
) -> Result<Option<(NodeRecord, Option<R>)>, OrchError> {
    Ok(change(job, node, f)?.map(|(n, a)| (n, a.map(|(r, _)| r))))
}

/// Marks the end event of final node `node` written. Returns how many of
/// the job's nodes are logged now if this call marked it (`None` if it was
/// already marked). For a job that is not `indexed` the count is a hint
/// that a crash can leave short.
pub fn mark_logged(job: &JobRecord, node: &str) -> Result<Option<u64>, OrchError> {
    let marked = change(job, node, |n| (!n.end_logged).then(|| n.end_logged = true))?;
    let Some((_, Some(((), counts)))) = marked else {
        return Ok(None);
    };
    if job.indexed {
        Ok(Some(counts.last().map_or(0, |c| (*c).max(0) as u64)))
    } else {
        store::count_logged_end(job.name).map(Some)
    }
}

/// Node counts per state of `job`, and how many nodes are logged. Frozen
/// counts for a job that ended; a few keys for an `indexed` job; a scan
/// otherwise.
pub fn counts(job: &JobRecord) -> Result<(BTreeMap<String, u64>, u64), OrchError> {
    if !job.indexed {
        let nodes = store::nodes(job.name)?;
        let logged = nodes
            .iter()
            .filter(|n| n.state.is_final() && n.end_logged)
            .count() as u64;
        return Ok((count_states(nodes.iter().map(|n| &n.state)), logged));
    }
    let mut counts = count_states([].iter());
    let mut logged = 0;
    let prefix = format!("{:012}/", job.name);
    for (key, bytes) in Bucket::open(TALLIES).scan(&prefix, None, 100)? {
        let what = &key[prefix.len()..];
        let n = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(0)
            .max(0) as u64;
        if what == LOGGED {
            logged = n;
        } else {
            counts.insert(what.to_string(), n);
        }
    }
    Ok((counts, logged))
}

/// The node counts a reply shows: frozen when the job ended, else current.
pub fn node_states(job: &JobRecord) -> Result<BTreeMap<String, u64>, OrchError> {
    match &job.final_node_states {
        Some(frozen) => Ok(frozen.clone()),
        None => Ok(counts(job)?.0),
    }
}

/// Names of the nodes of `indexed` job `job` in `list` (a state's name,
/// `unlogged` or [`ALL`]), in name order, strictly after `after`, at most `limit`.
pub fn listed(
    job: u64,
    list: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>, OrchError> {
    let prefix = list_prefix(job, list);
    let after = after.map(|a| format!("{prefix}{a}"));
    Ok(
        store::scan_range(&Bucket::open(LISTS), &prefix, after, limit)?
            .into_iter()
            .map(|(key, _)| key[prefix.len()..].to_string())
            .collect(),
    )
}

/// The names of `indexed` job `job`'s nodes in `list`, all of them.
pub fn all_listed(job: u64, list: &str) -> Result<Vec<String>, OrchError> {
    listed(job, list, None, usize::MAX)
}

/// The records of the nodes of job `job` named in `names`, in that order
/// (a name whose record is gone is passed over).
pub fn records(job: u64, names: &[String]) -> Result<Vec<NodeRecord>, OrchError> {
    names
        .iter()
        .filter_map(|n| node(job, n).transpose())
        .collect()
}

/// Node `node` of job `job`.
pub fn node(job: u64, node: &str) -> Result<Option<NodeRecord>, OrchError> {
    let bucket = Bucket::open(NODES);
    let key = node_key(job, node);
    match bucket.get(&key)? {
        None => Ok(None),
        Some(bytes) => decode(&bucket, &key, &bytes).map(Some),
    }
}

/// Records the job-engine id of each node of `job`.
pub fn set_engine_ids(job: &JobRecord, ids: &BTreeMap<String, String>) -> Result<(), OrchError> {
    if !job.indexed {
        return store::set_engine_ids(job.name, ids);
    }
    let writes = ids
        .iter()
        .map(|(node, id)| {
            raw(
                ENGINE_ID,
                node_key(job.name, node),
                Some(id.clone().into_bytes()),
            )
        })
        .collect();
    Ok(kv::apply(writes)?)
}

/// The job-engine ids of a job's nodes, looked up one node at a time
/// (`indexed` jobs) or from the job's one map (earlier jobs).
pub struct EngineIds {
    job: u64,
    map: Option<BTreeMap<String, String>>,
}

impl EngineIds {
    /// The lookup for `job`.
    pub fn of(job: &JobRecord) -> Result<EngineIds, OrchError> {
        let map = if job.indexed {
            None
        } else {
            Some(store::engine_ids(job.name)?)
        };
        Ok(EngineIds { job: job.name, map })
    }

    /// The engine id of node `node` (none until the job is queued).
    pub fn get(&self, node: &str) -> Result<Option<String>, OrchError> {
        if let Some(map) = &self.map {
            return Ok(map.get(node).cloned());
        }
        let id = Bucket::open(ENGINE_ID).get(&node_key(self.job, node))?;
        Ok(id.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }
}
