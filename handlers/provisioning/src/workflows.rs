//! `POST /workflows/servers/create`, `/workflows/taskserv/create` and
//! `/workflows/cluster/create`: each becomes one task running the
//! provisioning CLI with the request's flags.

use crate::cli::{Invocation, TASK_KIND, TaskSpec, check_value, common_args};
use crate::envelope::{ApiError, Reply, body, ok};
use baton_sdk::Request;
use baton_sdk::jobs::{self, JobSpec};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServersCreate {
    infra: String,
    #[serde(default)]
    settings: Option<String>,
    #[serde(default)]
    check_mode: bool,
    #[serde(default)]
    wait: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskservCreate {
    #[serde(default = "create")]
    operation: String,
    taskserv: String,
    infra: String,
    #[serde(default)]
    settings: Option<String>,
    #[serde(default)]
    check_mode: bool,
    #[serde(default)]
    wait: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterCreate {
    #[serde(default = "create")]
    operation: String,
    cluster_type: String,
    infra: String,
    #[serde(default)]
    settings: Option<String>,
    #[serde(default)]
    check_mode: bool,
    #[serde(default)]
    wait: bool,
}

fn create() -> String {
    "create".into()
}

fn check_common(infra: &str, settings: Option<&str>) -> Result<(), ApiError> {
    check_value("infra", infra)?;
    if let Some(s) = settings {
        check_value("settings", s)?;
    }
    Ok(())
}

/// The task a `servers/create` body asks for.
pub(crate) fn servers_task(b: &[u8]) -> Result<TaskSpec, ApiError> {
    let r: ServersCreate = body(b)?;
    check_common(&r.infra, r.settings.as_deref())?;
    let name = format!("servers create ({})", r.infra);
    let command = vec!["servers".into(), "create".into()];
    Ok(workflow_task(
        name,
        command,
        &r.infra,
        r.settings.as_deref(),
        r.check_mode,
        r.wait,
    ))
}

/// The task a `taskserv/create` body asks for.
pub(crate) fn taskserv_task(b: &[u8]) -> Result<TaskSpec, ApiError> {
    let r: TaskservCreate = body(b)?;
    check_value("operation", &r.operation)?;
    check_value("taskserv", &r.taskserv)?;
    check_common(&r.infra, r.settings.as_deref())?;
    let name = format!("taskserv {} {} ({})", r.operation, r.taskserv, r.infra);
    let command = vec!["taskserv".into(), r.operation, r.taskserv];
    Ok(workflow_task(
        name,
        command,
        &r.infra,
        r.settings.as_deref(),
        r.check_mode,
        r.wait,
    ))
}

/// The task a `cluster/create` body asks for.
pub(crate) fn cluster_task(b: &[u8]) -> Result<TaskSpec, ApiError> {
    let r: ClusterCreate = body(b)?;
    check_value("operation", &r.operation)?;
    check_value("cluster_type", &r.cluster_type)?;
    check_common(&r.infra, r.settings.as_deref())?;
    let name = format!("cluster {} {} ({})", r.operation, r.cluster_type, r.infra);
    let command = vec!["cluster".into(), r.operation, r.cluster_type];
    Ok(workflow_task(
        name,
        command,
        &r.infra,
        r.settings.as_deref(),
        r.check_mode,
        r.wait,
    ))
}

/// A workflow's task: `command` with the common `--infra`, `--settings`,
/// `--check` and `--wait` arguments, outside any batch, with no rollback.
fn workflow_task(
    name: String,
    command: Vec<String>,
    infra: &str,
    settings: Option<&str>,
    check_mode: bool,
    wait: bool,
) -> TaskSpec {
    TaskSpec {
        name,
        run: Invocation {
            command,
            args: common_args(Some(infra), settings, &[], check_mode, wait),
        },
        rollback: None,
        batch: None,
        operation: None,
    }
}

fn spawn(workflow: &str, spec: TaskSpec) -> Reply {
    let input = serde_json::to_vec(&spec).map_err(|e| ApiError::new(500, e.to_string()))?;
    let id = jobs::spawn(&JobSpec::new(TASK_KIND, input).label("workflow", workflow))?;
    Ok(ok(200, &id))
}

/// `POST /workflows/servers/create`.
pub fn servers(req: &Request) -> Reply {
    spawn("servers/create", servers_task(&req.body)?)
}

/// `POST /workflows/taskserv/create`.
pub fn taskserv(req: &Request) -> Reply {
    spawn("taskserv/create", taskserv_task(&req.body)?)
}

/// `POST /workflows/cluster/create`.
pub fn cluster(req: &Request) -> Reply {
    spawn("cluster/create", cluster_task(&req.body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_create_maps_flags_to_the_cli() {
        let t = servers_task(
            br#"{"infra": "production", "settings": "config.ncl", "check_mode": true, "wait": true}"#,
        )
        .unwrap();
        assert_eq!(t.run.command, ["servers", "create"]);
        assert_eq!(
            t.run.args,
            [
                "--infra",
                "production",
                "--settings",
                "config.ncl",
                "--check",
                "--wait"
            ]
        );
        let t = servers_task(br#"{"infra": "staging"}"#).unwrap();
        assert_eq!(t.run.args, ["--infra", "staging"]);
    }

    #[test]
    fn taskserv_and_cluster_name_their_target() {
        let t =
            taskserv_task(br#"{"operation": "create", "taskserv": "kubernetes", "infra": "prod"}"#)
                .unwrap();
        assert_eq!(t.run.command, ["taskserv", "create", "kubernetes"]);
        let t = cluster_task(br#"{"cluster_type": "buildkit", "infra": "prod", "wait": true}"#)
            .unwrap();
        assert_eq!(t.run.command, ["cluster", "create", "buildkit"]);
        assert_eq!(t.run.args, ["--infra", "prod", "--wait"]);
    }

    #[test]
    fn bad_bodies_name_the_field() {
        let cases: [(&[u8], &str); 6] = [
            (br#"{}"#, "infra"),
            (br#"{"infra": 7}"#, "infra"),
            (br#"{"infra": "p", "check_mode": "yes"}"#, "check_mode"),
            (br#"{"infra": "--yes"}"#, "infra"),
            (br#"{"infra": "p", "settings": "a\nb"}"#, "settings"),
            (br#"{"infra": "p", "extra": 1}"#, "extra"),
        ];
        for (b, field) in cases {
            let e = servers_task(b).unwrap_err();
            assert_eq!(e.status, 400);
            assert!(e.message.contains(field), "{field}: {}", e.message);
        }
        let e = taskserv_task(br#"{"infra": "p"}"#).unwrap_err();
        assert!(e.message.contains("taskserv"), "{}", e.message);
    }
}
