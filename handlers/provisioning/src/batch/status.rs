//! A batch's and each operation's status and progress, derived from the
//! states of their tasks (the engine's jobs), so they can never disagree.

use super::BatchRecord;
use crate::tasks::status_name;
use baton_sdk::jobs::{JobInfo, JobState};
use baton_sdk::time;
use serde_json::{Value, json};

/// What the status of a set of tasks is, given how its batch is set up.
pub fn derive(
    states: &[JobState],
    rollback_enabled: bool,
    cancel_requested: bool,
    rollback_failed: bool,
) -> &'static str {
    let any = |s: JobState| states.contains(&s);
    let active = any(JobState::Queued) || any(JobState::Running);
    if states.is_empty() {
        return "Pending";
    }
    if cancel_requested {
        return if active { "Cancelling" } else { "Cancelled" };
    }
    if states.iter().all(|s| *s == JobState::Succeeded) {
        return "Completed";
    }
    if any(JobState::Failed) {
        if !rollback_enabled {
            return if active { "Running" } else { "Failed" };
        }
        if active || (any(JobState::Succeeded) && !rollback_failed) {
            return "RollingBack";
        }
        return if rollback_failed {
            "Failed"
        } else {
            "RolledBack"
        };
    }
    if any(JobState::Cancelled) {
        return if active { "Running" } else { "Cancelled" };
    }
    if any(JobState::RolledBack) && !active {
        return "RolledBack";
    }
    if states.iter().all(|s| *s == JobState::Queued) {
        return "Pending";
    }
    "Running"
}

/// Whether a status will not change any more.
pub fn is_final(status: &str) -> bool {
    matches!(status, "Completed" | "Failed" | "Cancelled" | "RolledBack")
}

/// The status of one operation from its own tasks.
fn op_status(jobs: &[&JobInfo]) -> &'static str {
    if jobs.is_empty() {
        return "Pending";
    }
    let states: Vec<JobState> = jobs.iter().map(|j| j.state).collect();
    let any = |s: JobState| states.contains(&s);
    if any(JobState::Running) {
        return "Running";
    }
    if any(JobState::Failed) {
        return "Failed";
    }
    if rollback_failed(jobs) {
        return "RollbackFailed";
    }
    if any(JobState::RolledBack) {
        return if any(JobState::Succeeded) {
            "RollingBack"
        } else {
            "RolledBack"
        };
    }
    if states.iter().all(|s| *s == JobState::Succeeded) {
        return "Completed";
    }
    if any(JobState::Cancelled) {
        return "Cancelled";
    }
    if any(JobState::Succeeded) {
        return "Running";
    }
    status_name(JobState::Queued)
}

/// A completed task whose rollback failed (the engine keeps it succeeded
/// and records why).
fn rollback_failed(jobs: &[&JobInfo]) -> bool {
    jobs.iter().any(|j| {
        j.state == JobState::Succeeded
            && j.error
                .as_deref()
                .is_some_and(|e| e.starts_with("rollback failed"))
    })
}

fn progress(jobs: &[&JobInfo]) -> Value {
    let total = jobs.len();
    let done = jobs
        .iter()
        .filter(|j| matches!(j.state, JobState::Succeeded | JobState::RolledBack))
        .count();
    let percent = (done * 100).checked_div(total).unwrap_or(0);
    json!({ "completed": done, "total": total, "percent": percent })
}

fn started(jobs: &[&JobInfo]) -> Option<String> {
    jobs.iter()
        .filter_map(|j| j.started_at_ms)
        .min()
        .map(time::rfc3339)
}

fn ended(jobs: &[&JobInfo], status: &str) -> Option<String> {
    if !is_final(status) {
        return None;
    }
    jobs.iter()
        .filter_map(|j| j.finished_at_ms)
        .max()
        .map(time::rfc3339)
}

/// The batch as the API shows it, with `jobs` its tasks (any order; missing
/// ones are left out).
pub fn view(b: &BatchRecord, jobs: &[JobInfo]) -> Value {
    let by_id = |id: &String| jobs.iter().find(|j| j.id == *id);
    let all: Vec<&JobInfo> = b
        .operations
        .iter()
        .flat_map(|o| o.task_ids.iter().filter_map(by_id))
        .collect();
    let states: Vec<JobState> = all.iter().map(|j| j.state).collect();
    let status = derive(
        &states,
        b.rollback_enabled,
        b.cancel_requested,
        rollback_failed(&all),
    );
    let operations: Vec<Value> = b
        .operations
        .iter()
        .map(|o| {
            let mine: Vec<&JobInfo> = o.task_ids.iter().filter_map(by_id).collect();
            let st = op_status(&mine);
            let error = mine.iter().find_map(|j| match j.state {
                JobState::Failed => j.error.clone(),
                JobState::Succeeded => j.error.clone().filter(|e| e.starts_with("rollback failed")),
                _ => None,
            });
            json!({
                "id": o.id,
                "type": o.kind,
                "provider": o.provider,
                "dependencies": o.dependencies,
                "items": o.items,
                "status": st,
                "progress": progress(&mine),
                "task_ids": o.task_ids,
                "tasks": mine.iter().map(|j| json!({"id": j.id, "status": status_name(j.state)})).collect::<Vec<_>>(),
                "started_at": started(&mine),
                "completed_at": ended(&mine, if st == "RollingBack" { "" } else { st }),
                "error": error,
            })
        })
        .collect();
    json!({
        "id": b.id,
        "name": b.name,
        "version": b.version,
        "storage_backend": b.storage_backend,
        "parallel_limit": b.parallel_limit,
        "rollback_enabled": b.rollback_enabled,
        "status": status,
        "progress": progress(&all),
        "created_at": time::rfc3339(b.created_at_ms),
        "started_at": started(&all),
        "completed_at": ended(&all, status),
        "operations": operations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    #[test]
    fn batch_status_follows_its_tasks() {
        assert_eq!(derive(&[Queued, Queued], false, false, false), "Pending");
        assert_eq!(
            derive(&[Succeeded, Running, Queued], false, false, false),
            "Running"
        );
        assert_eq!(
            derive(&[Succeeded, Succeeded], true, false, false),
            "Completed"
        );
        // Failure without rollback: queued ones were cancelled.
        assert_eq!(
            derive(&[Succeeded, Failed, Cancelled], false, false, false),
            "Failed"
        );
        assert_eq!(
            derive(&[Succeeded, Failed, Running], false, false, false),
            "Running"
        );
        // With rollback: rolling back until every completed task is undone.
        assert_eq!(
            derive(&[Succeeded, Failed, Cancelled], true, false, false),
            "RollingBack"
        );
        assert_eq!(
            derive(&[RolledBack, Succeeded, Failed], true, false, false),
            "RollingBack"
        );
        assert_eq!(
            derive(
                &[RolledBack, RolledBack, Failed, Cancelled],
                true,
                false,
                false
            ),
            "RolledBack"
        );
        assert_eq!(
            derive(&[RolledBack, Succeeded, Failed], true, false, true),
            "Failed"
        );
        // Cancelled by the user.
        assert_eq!(
            derive(&[Succeeded, Running, Cancelled], true, true, false),
            "Cancelling"
        );
        assert_eq!(
            derive(&[Succeeded, Cancelled, Cancelled], true, true, false),
            "Cancelled"
        );
        assert!(is_final("RolledBack") && !is_final("RollingBack") && !is_final("Cancelling"));
    }
}
