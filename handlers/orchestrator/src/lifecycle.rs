//! How jobs and their nodes move between states, and the events each move
//! writes.
//!
//! Node runs, stop requests and readers may act on one job at the same
//! time. Every transition is a compare-and-swap (see [`crate::store`]), so
//! exactly one actor makes it; that actor then writes its event and marks
//! the record "logged". A job ends only when every node is final *and*
//! logged (and, when stopping, its `job_stopping` is logged), so its final
//! event is always its last.
//!
//! A crash between a transition and its event leaves a record unlogged;
//! [`reconcile`] writes the missing event once the record has been
//! untouched for [`HEAL_AFTER_MS`].

use crate::errors::OrchError;
use crate::model::{Event, JobRecord, JobState, NodeRecord, NodeState, RunResult};
use crate::store;
use crate::tally::{self, EngineIds};
use baton_sdk::jobs;
use baton_sdk::time::now_millis;
use serde_json::json;

/// How long a transition may stay without its event before a reader
/// writes it (its actor is then taken to have died).
pub const HEAL_AFTER_MS: u64 = 60_000;

/// Marks node `node` of job `job` running, unless it is no longer ready
/// (the job was stopped). `rerun` (a later attempt of the node's engine
/// job: the server stopped during the first) takes over a node left
/// running, so that a restart is never the node's failure. Returns whether
/// the node may run.
pub fn start_node(job: &JobRecord, node: &str, rerun: bool) -> Result<bool, OrchError> {
    let now = now_millis();
    let started = tally::update_node(job, node, |n| {
        let again = rerun && n.state == NodeState::Running;
        (n.state == NodeState::Ready || again).then(|| {
            n.state = NodeState::Running;
            n.start_ms = Some(now);
            n.changed_ms = now;
            n.message = format!("Started {} on {node}", what(job));
            again
        })
    })?;
    let again = match &started {
        Some((_, Some(again))) => *again,
        Some((record, None)) => {
            // A later attempt finding the node ended but its end unlogged:
            // the first attempt died in between (a restart); log it now.
            if rerun && record.state.is_final() && !record.end_logged {
                heal_node_event(job, record, now)?;
            }
            return Ok(false);
        }
        None => return Ok(false),
    };
    let noop = job.options["noop"].as_bool().unwrap_or(false);
    let message = if again {
        format!(
            "Started {} on {node} again: its run was interrupted by a restart ...",
            what(job)
        )
    } else {
        format!("Started {} on {node} ...", what(job))
    };
    let event = Event::new("node_running", Some(node), message, now).with("noop", json!(noop));
    store::append_event(job.name, event)?;
    Ok(true)
}

/// "puppet run" or "task NAME".
pub fn what(job: &JobRecord) -> String {
    match &job.task {
        Some(t) => format!("task {t}"),
        None => "puppet run".to_string(),
    }
}

fn end_event(node: &NodeRecord, now: u64) -> Event {
    let kind = match (node.state, &node.result) {
        (NodeState::Finished, _) => "node_finished",
        (NodeState::Skipped, _) => "node_skipped",
        (_, Some(r)) if r.exit_code.is_some() || r.timed_out => "node_failed",
        _ => "node_errored",
    };
    let mut event = Event::new(kind, Some(&node.name), node.message.clone(), now);
    if let Some(r) = &node.result {
        event = event
            .with("exit_code", json!(r.exit_code))
            .with("timed_out", json!(r.timed_out));
    }
    event
}

/// Ends node `node` (from state `from`) in `state`, once; a later attempt
/// finds it changed and does nothing. Then ends the job if it was the last.
pub fn finish_node(
    job: &JobRecord,
    node: &str,
    from: NodeState,
    state: NodeState,
    message: String,
    result: Option<RunResult>,
) -> Result<(), OrchError> {
    let now = now_millis();
    let changed = tally::update_node(job, node, |n| {
        (n.state == from).then(|| {
            n.state = state;
            n.finish_ms = Some(now);
            n.changed_ms = now;
            n.message = message.clone();
            n.result = result.clone();
            n.end_logged = false;
        })
    })?;
    let Some((record, Some(()))) = changed else {
        return Ok(());
    };
    log_node_end(job, &record, now)
}

/// Writes the end event of `record` and marks it logged; the node that
/// brings the count of logged nodes to the job's size ends the job.
fn log_node_end(job: &JobRecord, record: &NodeRecord, now: u64) -> Result<(), OrchError> {
    store::append_event(job.name, end_event(record, now))?;
    if let Some(logged) = tally::mark_logged(job, &record.name)?
        && logged >= job.node_count
    {
        maybe_finish(job)?;
    }
    Ok(())
}

/// Ends `job` once every node ended and was logged: stopped if a stop
/// was asked for, failed if a node failed, finished otherwise. Safe to call
/// at any time, by anyone.
pub fn maybe_finish(job: &JobRecord) -> Result<(), OrchError> {
    let (counts, logged) = tally::counts(job)?;
    if logged < job.node_count {
        return Ok(());
    }
    let name = job.name;
    let failed = counts["failed"];
    let now = now_millis();
    let ended = store::update_job(name, |j| {
        if j.state.is_final() || (j.state == JobState::Stopping && !j.stop_logged) {
            return None;
        }
        let end = if j.state == JobState::Stopping {
            JobState::Stopped
        } else if failed > 0 {
            JobState::Failed
        } else {
            JobState::Finished
        };
        j.enter(end, now);
        j.final_node_states = Some(counts.clone());
        Some(end)
    })?;
    let Some((job, Some(end))) = ended else {
        return Ok(());
    };
    let total = job.node_count;
    let (kind, msg) = match end {
        // PE's terminal events are `job_finished` and `job_aborted`; clients
        // (orchestrator_client-ruby's `Job#each_event`) follow a job's
        // events until they see one of them.
        JobState::Stopped => (
            "job_aborted",
            format!(
                "Stopped: {} of {total} nodes skipped, {failed} failed",
                counts["skipped"]
            ),
        ),
        JobState::Failed => (
            "job_finished",
            format!("Finished: {failed} of {total} nodes failed"),
        ),
        _ => (
            "job_finished",
            format!("Finished: {total} of {total} nodes succeeded"),
        ),
    };
    let event = Event::new(kind, None, msg, now)
        .with("state", json!(end.as_str()))
        .with("node_states", json!(counts));
    store::append_event(name, event)?;
    Ok(())
}

/// `POST /command/stop`'s work: the job becomes `stopping`, its nodes that
/// have not started are skipped, and it ends `stopped` once the running
/// ones end. With `force`, the running ones are ended at once too: their
/// engine jobs are cancelled (which kills their commands) and they end
/// `failed`. Returns the job as it is afterwards, or `None` if unknown.
pub fn stop(name: u64, force: bool) -> Result<Option<JobRecord>, OrchError> {
    let now = now_millis();
    let stopping = store::update_job(name, |j| {
        (!j.state.is_final() && j.state != JobState::Stopping).then(|| {
            j.enter(JobState::Stopping, now);
            j.stop_logged = false;
        })
    })?;
    let Some((job, changed)) = stopping else {
        return Ok(None);
    };
    if changed.is_some() {
        log_stopping(name, now)?;
    }
    if !job.state.is_final() {
        let ids = if force {
            Some(EngineIds::of(&job)?)
        } else {
            None
        };
        for n in stop_candidates(&job, force)? {
            match n.state {
                NodeState::Ready => {
                    let msg = format!(
                        "Skipped {}: job {name} was stopped before it started",
                        n.name
                    );
                    finish_node(
                        &job,
                        &n.name,
                        NodeState::Ready,
                        NodeState::Skipped,
                        msg,
                        None,
                    )?;
                }
                NodeState::Running if force => {
                    if let Some(id) = ids.as_ref().map(|i| i.get(&n.name)).transpose()?.flatten()
                        && let Err(e) = jobs::cancel(&id)
                    {
                        baton_sdk::log::warn(&format!(
                            "job {name}: cancelling the run on {} failed: {e}",
                            n.name
                        ));
                    }
                    let msg = format!(
                        "{}: its run was ended because job {name} was stopped with force",
                        n.name
                    );
                    finish_node(
                        &job,
                        &n.name,
                        NodeState::Running,
                        NodeState::Failed,
                        msg,
                        None,
                    )?;
                }
                _ => {}
            }
        }
        maybe_finish(&job)?;
    }
    store::job(name)
}

/// The nodes a stop may end: those not started (and with `force` those
/// running), from the job's lists when it has them.
fn stop_candidates(job: &JobRecord, force: bool) -> Result<Vec<NodeRecord>, OrchError> {
    if !job.indexed {
        return store::nodes(job.name);
    }
    let mut names = tally::all_listed(job.name, NodeState::Ready.as_str())?;
    if force {
        names.extend(tally::all_listed(job.name, NodeState::Running.as_str())?);
    }
    tally::records(job.name, &names)
}

fn log_stopping(name: u64, now: u64) -> Result<(), OrchError> {
    let msg =
        format!("Stopping job {name}: nodes not yet started are skipped; running ones finish");
    store::append_event(name, Event::new("job_stopping", None, msg, now))?;
    store::update_job(name, |j| (!j.stop_logged).then(|| j.stop_logged = true))?;
    Ok(())
}

/// Brings `job` up to date with the job engine: a node whose engine job
/// ended without recording its end (a trap, the run's time limit, a
/// storage failure) ends `failed` (or `skipped` if it never started); an
/// event its actor died before writing is written. Returns the job as it
/// is afterwards.
///
/// It looks only at nodes running, at final nodes whose end event is not
/// logged, and (when nothing runs) at the first nodes waiting to start:
/// for an `indexed` job a few keys each, however large the job.
pub fn reconcile(job: JobRecord) -> Result<JobRecord, OrchError> {
    if job.state.is_final() {
        return Ok(job);
    }
    let now = now_millis();
    let stale = |changed_ms: u64| now.saturating_sub(changed_ms) > HEAL_AFTER_MS;
    let ids = EngineIds::of(&job)?;
    let pending = Pending::of(&job)?;
    for n in &pending.unlogged {
        if stale(n.changed_ms) {
            heal_node_event(&job, n, now)?;
        }
    }
    let mut progressing = false;
    for n in &pending.running {
        progressing |= check_run(&job, n, &ids)?;
    }
    // Nodes waiting to start need a look only when nothing runs, and then
    // only until one is found still queued in the engine (the rest wait
    // behind it).
    let mut after: Option<String> = None;
    while !progressing {
        let page = pending.ready(&job, after.as_deref(), 50)?;
        let Some(last) = page.last() else { break };
        after = Some(last.name.clone());
        for n in &page {
            if check_run(&job, n, &ids)? {
                progressing = true;
                break;
            }
        }
    }
    if job.state == JobState::Stopping && !job.stop_logged && stale(job.changed_ms()) {
        let written = store::all_events(job.name)?
            .iter()
            .any(|e| e.kind == "job_stopping");
        if written {
            store::update_job(job.name, |j| (!j.stop_logged).then(|| j.stop_logged = true))?;
        } else {
            log_stopping(job.name, now)?;
        }
    }
    maybe_finish(&job)?;
    Ok(store::job(job.name)?.unwrap_or(job))
}

/// Whether node `n`'s engine job is still queued or running (or cannot be
/// told: not yet recorded). One that ended without the node recording its
/// end ends the node: `skipped` if it never started, `failed` otherwise.
fn check_run(job: &JobRecord, n: &NodeRecord, ids: &EngineIds) -> Result<bool, OrchError> {
    // Listed as waiting or running, but it ended since: nothing to do.
    if n.state.is_final() {
        return Ok(false);
    }
    let Some(id) = ids.get(&n.name)? else {
        return Ok(true);
    };
    let why = match jobs::get(&id)? {
        None => "its run is no longer known to the job engine".to_string(),
        Some(i) if !i.state.is_final() => return Ok(true),
        Some(i) => match &i.error {
            Some(e) => format!("its run ended without a result: {e}"),
            None => format!("its run ended ({:?}) without a result", i.state),
        },
    };
    // Conditional on the state read: a run that recorded its own end in
    // the meantime keeps it.
    let to = match n.state {
        NodeState::Ready => NodeState::Skipped,
        _ => NodeState::Failed,
    };
    let msg = format!("{}: {why}", n.name);
    finish_node(job, &n.name, n.state, to, msg, None)?;
    Ok(false)
}

/// The nodes [`reconcile`] looks at: from the job's lists when it has
/// them, else from one scan of its nodes.
struct Pending {
    running: Vec<NodeRecord>,
    unlogged: Vec<NodeRecord>,
    /// Every node waiting to start, for a job without lists.
    scanned_ready: Option<Vec<NodeRecord>>,
}

impl Pending {
    fn of(job: &JobRecord) -> Result<Pending, OrchError> {
        if !job.indexed {
            let nodes = store::nodes(job.name)?;
            let pick = |f: &dyn Fn(&NodeRecord) -> bool| -> Vec<NodeRecord> {
                nodes.iter().filter(|n| f(n)).cloned().collect()
            };
            return Ok(Pending {
                running: pick(&|n| n.state == NodeState::Running),
                unlogged: pick(&|n| n.state.is_final() && !n.end_logged),
                scanned_ready: Some(pick(&|n| n.state == NodeState::Ready)),
            });
        }
        let records = |list: &str| tally::records(job.name, &tally::all_listed(job.name, list)?);
        Ok(Pending {
            running: records(NodeState::Running.as_str())?,
            unlogged: records("unlogged")?,
            scanned_ready: None,
        })
    }

    /// Up to `limit` nodes waiting to start, by name, after `after`.
    fn ready(
        &self,
        job: &JobRecord,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<NodeRecord>, OrchError> {
        if let Some(all) = &self.scanned_ready {
            return Ok(all
                .iter()
                .filter(|n| after.is_none_or(|a| n.name.as_str() > a))
                .take(limit)
                .cloned()
                .collect());
        }
        let names = tally::listed(job.name, NodeState::Ready.as_str(), after, limit)?;
        tally::records(job.name, &names)
    }
}

/// Writes the end event of final node `n` unless it is already in the log.
fn heal_node_event(job: &JobRecord, n: &NodeRecord, now: u64) -> Result<(), OrchError> {
    let name = job.name;
    let end_kinds = [
        "node_finished",
        "node_failed",
        "node_errored",
        "node_skipped",
    ];
    let written = store::all_events(name)?
        .iter()
        .any(|e| e.node.as_deref() == Some(&n.name) && end_kinds.contains(&e.kind.as_str()));
    if written {
        tally::mark_logged(job, &n.name)?;
        maybe_finish(job)
    } else {
        log_node_end(job, n, now)
    }
}

/// The 404 for a job name nobody created.
pub fn unknown_job(name: &str) -> OrchError {
    OrchError::new(404, "unknown-job", format!("no job named `{name}` exists"))
        .details(json!({ "job": name }))
}
