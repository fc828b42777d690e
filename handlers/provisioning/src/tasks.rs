//! Tasks: one run of the provisioning CLI, kept as a job of the engine (the
//! task id is the job id). `GET /tasks` and `GET /tasks/{id}`.

use crate::cli::{Cli, TASK_KIND, TaskSpec};
use crate::envelope::{ApiError, Reply, ok};
use baton_sdk::jobs::{self, JobFilter, JobInfo, JobState};
use baton_sdk::{Request, time};
use serde_json::{Value, json};

/// Default and largest page of `GET /tasks`.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// The API's name for a job state.
pub fn status_name(s: JobState) -> &'static str {
    match s {
        JobState::Queued => "Pending",
        JobState::Running => "Running",
        JobState::Succeeded => "Completed",
        JobState::Failed => "Failed",
        JobState::Cancelled => "Cancelled",
        JobState::RolledBack => "RolledBack",
    }
}

/// The job state of an API status name, if it is one.
pub fn parse_status(s: &str) -> Option<JobState> {
    [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::RolledBack,
    ]
    .into_iter()
    .find(|st| status_name(*st).eq_ignore_ascii_case(s))
}

/// `id` as the canonical (lower-case, hyphenated) UUID, or a 400 naming `field`.
pub fn parse_uuid(field: &str, id: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| ApiError::bad_request(format!("`{field}` `{id}` is not a UUID")))
}

/// A task as the API shows it, or `None` when `job` is not a task.
pub fn view(job: &JobInfo, cli_name: &str) -> Option<Value> {
    if job.kind != TASK_KIND {
        return None;
    }
    let spec: TaskSpec = serde_json::from_slice(&job.input).ok()?;
    let at = |ms: Option<u64>| ms.map(time::rfc3339);
    let output = match job.state {
        JobState::Succeeded | JobState::RolledBack => job
            .output
            .as_ref()
            .map(|o| String::from_utf8_lossy(o).into_owned()),
        _ => None,
    };
    let error = match job.state {
        JobState::Queued | JobState::Running => None,
        _ => job.error.clone(),
    };
    let completed = job.finished_at_ms.filter(|_| job.state.is_final());
    Some(json!({
        "id": job.id,
        "name": spec.name,
        "command": Cli::display(cli_name, &spec.run),
        "args": spec.run.args,
        "dependencies": job.depends_on,
        "status": status_name(job.state),
        "created_at": time::rfc3339(job.created_at_ms),
        "started_at": at(job.started_at_ms),
        "completed_at": at(completed),
        "output": output,
        "error": error,
        "batch_id": spec.batch,
        "operation_id": spec.operation,
    }))
}

/// The name tasks show for the CLI (`cli_name`, default `provisioning`).
pub fn cli_name() -> String {
    baton_sdk::config::get_or("cli_name", "provisioning")
}

fn query_number(
    req: &Request,
    field: &str,
    min: usize,
    max: usize,
) -> Result<Option<usize>, ApiError> {
    let Some(raw) = req.query_param(field) else {
        return Ok(None);
    };
    match raw.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(ApiError::bad_request(format!(
            "query parameter `{field}` must be an integer from {min} to {max}, not `{raw}`"
        ))),
    }
}

/// `(status, limit, offset)` of a `GET /tasks` query.
pub fn list_query(req: &Request) -> Result<(Option<JobState>, usize, usize), ApiError> {
    let status = match req.query_param("status") {
        None => None,
        Some(s) => Some(parse_status(&s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "query parameter `status`: `{s}` is not one of Pending, Running, Completed, Failed, Cancelled, RolledBack"
            ))
        })?),
    };
    let (limit, offset) = page(req)?;
    Ok((status, limit, offset))
}

/// `(limit, offset)` of a list query: `limit` 1-1000 (default 50), `offset` ≥ 0.
pub fn page(req: &Request) -> Result<(usize, usize), ApiError> {
    let limit = query_number(req, "limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT);
    let offset = query_number(req, "offset", 0, u32::MAX as usize)?.unwrap_or(0);
    Ok((limit, offset))
}

/// Every task job in `state` (all when `None`), oldest first.
pub fn all_task_jobs(state: Option<JobState>) -> Result<Vec<JobInfo>, ApiError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = jobs::list(&JobFilter {
            state,
            kind: Some(TASK_KIND.into()),
            labels: Vec::new(),
            start_after: after.clone(),
            limit: MAX_LIMIT as u32,
        })?;
        let full = page.len() == MAX_LIMIT;
        after = page.last().map(|j| j.id.clone());
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

/// `GET /tasks?status=&limit=&offset=`: newest first.
pub fn list(req: &Request) -> Reply {
    let (status, limit, offset) = list_query(req)?;
    let name = cli_name();
    let tasks: Vec<Value> = all_task_jobs(status)?
        .iter()
        .rev()
        .filter_map(|j| view(j, &name))
        .skip(offset)
        .take(limit)
        .collect();
    Ok(ok(200, &tasks))
}

/// `GET /tasks/{id}`.
pub fn get(req: &Request) -> Reply {
    let raw = req.param("id").unwrap_or_default();
    let id = parse_uuid("id", raw)?;
    jobs::get(&id)?
        .and_then(|j| view(&j, &cli_name()))
        .map(|t| ok(200, &t))
        .ok_or_else(|| ApiError::not_found(format!("there is no task `{id}`")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Invocation;

    fn job(state: JobState) -> JobInfo {
        let spec = TaskSpec {
            name: "servers/create production".into(),
            run: Invocation {
                command: vec!["servers".into(), "create".into()],
                args: vec!["--infra".into(), "production".into(), "--check".into()],
            },
            rollback: None,
            batch: None,
            operation: None,
        };
        JobInfo {
            id: "0190f0c2-0000-7000-8000-000000000001".into(),
            handler: "provisioning".into(),
            kind: TASK_KIND.into(),
            state,
            input: serde_json::to_vec(&spec).unwrap(),
            output: Some(b"created\n".to_vec()),
            error: Some("exited with code 1".into()),
            attempts: 1,
            max_attempts: 1,
            labels: vec![],
            depends_on: vec![],
            graph: None,
            progress: None,
            created_at_ms: 0,
            started_at_ms: Some(1000),
            finished_at_ms: Some(2000),
        }
    }

    #[test]
    fn a_task_shows_the_cli_command_and_its_result() {
        let t = view(&job(JobState::Succeeded), "provisioning").unwrap();
        assert_eq!(t["command"], "provisioning servers create");
        assert_eq!(t["args"], json!(["--infra", "production", "--check"]));
        assert_eq!(t["status"], "Completed");
        assert_eq!(t["output"], "created\n");
        assert_eq!(t["completed_at"], "1970-01-01T00:00:02.000Z");
        let t = view(&job(JobState::Running), "provisioning").unwrap();
        assert_eq!(t["status"], "Running");
        assert_eq!(t["output"], Value::Null);
        assert_eq!(t["error"], Value::Null);
        assert_eq!(t["completed_at"], Value::Null);
        let t = view(&job(JobState::Failed), "provisioning").unwrap();
        assert_eq!(t["error"], "exited with code 1");
        let mut other = job(JobState::Queued);
        other.kind = "something-else".into();
        assert!(view(&other, "provisioning").is_none());
    }

    #[test]
    fn statuses_parse_case_insensitively() {
        assert_eq!(parse_status("Pending"), Some(JobState::Queued));
        assert_eq!(parse_status("completed"), Some(JobState::Succeeded));
        assert_eq!(parse_status("Done"), None);
    }

    #[test]
    fn limit_and_offset_are_checked() {
        let q = |s: &str| list_query(&Request::new("GET", "/tasks").with_query(s));
        assert_eq!(q("").unwrap(), (None, 50, 0));
        assert_eq!(
            q("limit=1000&offset=3&status=Failed").unwrap(),
            (Some(JobState::Failed), 1000, 3)
        );
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=x",
            "offset=-1",
            "status=Done",
        ] {
            let e = q(bad).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
            let field = bad.split('=').next().unwrap();
            assert!(e.message.contains(&format!("`{field}`")), "{}", e.message);
        }
    }

    #[test]
    fn ids_must_be_uuids() {
        assert_eq!(
            parse_uuid("id", "0190F0C2-0000-7000-8000-000000000001").unwrap(),
            "0190f0c2-0000-7000-8000-000000000001"
        );
        assert_eq!(parse_uuid("id", "42").unwrap_err().status, 400);
    }
}
