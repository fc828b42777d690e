//! One node's run, executed by the job engine (`run-job` of kind
//! [`NODE_RUN`]): mark the node running, `exec` the configured command,
//! record its exit code and output, end the job if it was the last node.

use crate::agent::{DEFAULT_AGENT, DEFAULT_TASK, Template, Values};
use crate::errors::OrchError;
use crate::lifecycle;
use crate::model::{JobType, NodeState, RunResult};
use crate::options;
use crate::store;
use baton_sdk::jobs::{self, Command};
use baton_sdk::{Job, config};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The engine job kind of a node run.
pub const NODE_RUN: &str = "node-run";

/// A node run's input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRun {
    /// The orchestrator job's name.
    pub job: u64,
    /// The node to run on.
    pub node: String,
    /// How the node is reached, when the request's `targets` names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
}

/// Runs one node of a job. Errors only when the run could not be recorded;
/// a failing command is a recorded result, not an error, so that the other
/// nodes of the job still run.
pub fn run_node(job: &Job) -> Result<Vec<u8>, String> {
    let input: NodeRun = serde_json::from_slice(&job.input)
        .map_err(|e| format!("node-run input is not valid: {e}"))?;
    run(&input, job.attempt > 1).map_err(|e| e.to_string())
}

fn run(input: &NodeRun, rerun: bool) -> Result<Vec<u8>, OrchError> {
    let Some(job) = store::job(input.job)? else {
        return Ok(b"the job no longer exists".to_vec());
    };
    let node = input.node.as_str();
    if !lifecycle::start_node(&job, node, rerun)? {
        return Ok(b"skipped: the node was not ready (the job was stopped)".to_vec());
    }
    let params = job
        .options
        .get("params")
        .map(|p| p.to_string())
        .unwrap_or_else(|| "{}".into());
    let values = Values {
        node,
        environment: &job.environment,
        noop: job.options["noop"].as_bool().unwrap_or(false),
        task: job.task.as_deref().unwrap_or(""),
        params: &params,
        transport: input
            .transport
            .as_deref()
            .unwrap_or(options::AGENT_TRANSPORT),
    };
    let rc = match RunConfig::load(job.kind) {
        Ok(rc) => rc,
        Err(e) => {
            let msg = format!("{node}: the command could not be built: {e}");
            lifecycle::finish_node(&job, node, NodeState::Running, NodeState::Failed, msg, None)?;
            return Ok(Vec::new());
        }
    };
    let template = &rc.template;
    let args = template.args(&values);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = Command::new(template.program(), &argv);
    for (k, v) in &rc.env {
        cmd = cmd.env(k, v);
    }
    cmd.timeout_ms = options::node_timeout_ms(rc.timeout_ms, job.options["timeout"].as_u64());
    let (state, message, result) = match jobs::exec(&cmd) {
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            let result = RunResult {
                exit_code: out.exit_code,
                output: format!("{stdout}{stderr}"),
                stdout,
                stderr,
                truncated: out.truncated,
                timed_out: out.timed_out,
            };
            let what = what(&job.task);
            match (out.exit_code, out.timed_out) {
                (Some(0), false) => (
                    NodeState::Finished,
                    format!("Finished {what} on {node} - Success!"),
                    result,
                ),
                (_, true) => (
                    NodeState::Failed,
                    format!("{what} on {node} ran past its time limit and was killed"),
                    result,
                ),
                (Some(code), _) => (
                    NodeState::Failed,
                    format!("{what} on {node} failed with exit code {code}"),
                    result,
                ),
                (None, _) => (
                    NodeState::Failed,
                    format!("{what} on {node} was killed by a signal"),
                    result,
                ),
            }
        }
        Err(e) => {
            let msg = format!("{node}: `{}` could not run: {e}", template.program());
            lifecycle::finish_node(&job, node, NodeState::Running, NodeState::Failed, msg, None)?;
            return Ok(Vec::new());
        }
    };
    let code = result.exit_code;
    lifecycle::finish_node(&job, node, NodeState::Running, state, message, Some(result))?;
    Ok(
        serde_json::to_vec(&serde_json::json!({ "node": node, "exit_code": code }))
            .unwrap_or_default(),
    )
}

fn what(task: &Option<String>) -> String {
    match task {
        Some(t) => format!("task {t}"),
        None => "puppet run".into(),
    }
}

/// How node runs of one kind are executed, from `[handler.config]`.
pub struct RunConfig {
    /// `agent_command` or `task_command`.
    pub template: Template,
    /// `agent_env`: the only environment variables commands get.
    pub env: Vec<(String, String)>,
    /// `agent_timeout_ms`: each command's wall clock (default: the
    /// server's `[jobs] exec_timeout_ms`).
    pub timeout_ms: Option<u64>,
}

impl RunConfig {
    /// Reads and checks the config for jobs of `kind`.
    pub fn load(kind: JobType) -> Result<RunConfig, OrchError> {
        let (key, default) = match kind {
            JobType::Deploy => ("agent_command", DEFAULT_AGENT),
            JobType::Task => ("task_command", DEFAULT_TASK),
        };
        let text = config::get(key).unwrap_or_else(|| default.to_string());
        let template = Template::parse(key, &text).map_err(|msg| config_error(key, msg))?;
        let env = match config::get("agent_env") {
            None => Vec::new(),
            Some(t) => serde_json::from_str::<BTreeMap<String, String>>(&t)
                .map_err(|e| {
                    config_error(
                        "agent_env",
                        format!("[handler.config] agent_env is not a JSON object of strings: {e}"),
                    )
                })?
                .into_iter()
                .collect(),
        };
        let timeout_ms = match config::get("agent_timeout_ms") {
            None => None,
            Some(t) => Some(t.trim().parse::<u64>().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                config_error(
                    "agent_timeout_ms",
                    format!("[handler.config] agent_timeout_ms is `{t}`, not a positive number of milliseconds"),
                )
            })?),
        };
        Ok(RunConfig {
            template,
            env,
            timeout_ms,
        })
    }
}

fn config_error(key: &str, msg: String) -> OrchError {
    OrchError::new(500, "configuration-error", msg).details(serde_json::json!({ "config": key }))
}
