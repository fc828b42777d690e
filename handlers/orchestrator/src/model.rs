//! What the orchestrator stores for a job: the job record, one record per
//! node in its scope, and its events. Plain data with their JSON views; the
//! kv access lives in [`crate::store`].

use baton_sdk::time::rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The state of an orchestrator job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Recorded; its node runs are being queued.
    New,
    /// Its node runs are queued or running.
    Running,
    /// A stop was asked for; nodes already running finish.
    Stopping,
    /// Stopped: the nodes that had not started were skipped.
    Stopped,
    /// Every node finished successfully.
    Finished,
    /// At least one node failed.
    Failed,
}

impl JobState {
    /// Whether the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Stopped | JobState::Finished | JobState::Failed
        )
    }

    /// The name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::New => "new",
            JobState::Running => "running",
            JobState::Stopping => "stopping",
            JobState::Stopped => "stopped",
            JobState::Finished => "finished",
            JobState::Failed => "failed",
        }
    }
}

/// The state of one node of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Queued; not started yet.
    Ready,
    /// Its command runs.
    Running,
    /// Its command exited 0.
    Finished,
    /// Its command failed, could not run, or its run was lost.
    Failed,
    /// It never started: the job was stopped first.
    Skipped,
}

impl NodeState {
    /// Every state, in the order the API lists them.
    pub const ALL: [NodeState; 5] = [
        NodeState::Ready,
        NodeState::Running,
        NodeState::Finished,
        NodeState::Failed,
        NodeState::Skipped,
    ];

    /// Whether the node will not change any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            NodeState::Finished | NodeState::Failed | NodeState::Skipped
        )
    }

    /// The name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Ready => "ready",
            NodeState::Running => "running",
            NodeState::Finished => "finished",
            NodeState::Failed => "failed",
            NodeState::Skipped => "skipped",
        }
    }

    /// Parses [`NodeState::as_str`].
    pub fn parse(s: &str) -> Option<NodeState> {
        NodeState::ALL.into_iter().find(|n| n.as_str() == s)
    }
}

/// What a job does on each node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobType {
    /// A Puppet agent run (`POST /command/deploy`).
    Deploy,
    /// A named task with parameters (`POST /command/task`).
    Task,
}

impl JobType {
    /// The name in the API (also the command's name).
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Deploy => "deploy",
            JobType::Task => "task",
        }
    }
}

/// The user who asked for a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The user name.
    pub login: String,
    /// The user's id (Baton identifies users by name).
    pub id: String,
}

/// One state a job entered: when, and when it left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEntry {
    /// The state entered.
    pub state: JobState,
    /// Milliseconds since the epoch.
    pub enter_ms: u64,
    /// When it left that state; `None` for the current one.
    pub exit_ms: Option<u64>,
}

/// An orchestrator job, stored under its zero-padded name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Its sequential number.
    pub name: u64,
    /// Deploy or task.
    pub kind: JobType,
    /// The request as accepted (environment, scope, noop, …).
    pub options: Value,
    /// Who asked for it.
    pub owner: Owner,
    /// The description given, or empty.
    pub description: String,
    /// The Puppet environment.
    pub environment: String,
    /// For tasks: the task's name.
    pub task: Option<String>,
    /// Where it is.
    pub state: JobState,
    /// Every state it entered, in order.
    pub status: Vec<StatusEntry>,
    /// Nodes in its scope.
    pub node_count: u64,
    /// Created (and started), ms since the epoch.
    pub created_ms: u64,
    /// When it reached a final state.
    pub finished_ms: Option<u64>,
    /// Node counts per state, frozen when the job ends.
    pub final_node_states: Option<BTreeMap<String, u64>>,
    /// The `job_stopping` event is written (the job may end `stopped`).
    #[serde(default)]
    pub stop_logged: bool,
    /// Its nodes are tallied and listed by state (see `crate::tally`), so
    /// reads need not scan them. Jobs created by an earlier version of this
    /// handler are not, and are read the slow way.
    #[serde(default)]
    pub indexed: bool,
}

impl JobRecord {
    /// Moves the job to `state` at `now`, closing the current status entry.
    pub fn enter(&mut self, state: JobState, now: u64) {
        if let Some(last) = self.status.last_mut() {
            last.exit_ms.get_or_insert(now);
        }
        self.status.push(StatusEntry {
            state,
            enter_ms: now,
            exit_ms: None,
        });
        self.state = state;
        if state.is_final() {
            self.finished_ms = Some(now);
        }
    }

    /// When the state last changed.
    pub fn changed_ms(&self) -> u64 {
        self.status
            .last()
            .map(|s| s.enter_ms)
            .unwrap_or(self.created_ms)
    }

    /// The job as the API shows it; `base` is the mount's absolute URL.
    pub fn to_json(&self, base: &str, node_states: &BTreeMap<String, u64>, now: u64) -> Value {
        let url = format!("{base}/jobs/{}", self.name);
        let end = self.finished_ms.unwrap_or(now);
        let status: Vec<Value> = self
            .status
            .iter()
            .map(|s| {
                json!({
                    "state": s.state.as_str(),
                    "enter_time": rfc3339(s.enter_ms),
                    "exit_time": s.exit_ms.map(rfc3339),
                })
            })
            .collect();
        json!({
            "id": url,
            "name": self.name.to_string(),
            "state": self.state.as_str(),
            "command": self.kind.as_str(),
            "type": self.kind.as_str(),
            "options": self.options,
            "owner": self.owner,
            "description": self.description,
            "environment": { "name": self.environment },
            "timestamp": rfc3339(self.changed_ms()),
            "created_timestamp": rfc3339(self.created_ms),
            "started_timestamp": rfc3339(self.created_ms),
            "finished_timestamp": self.finished_ms.map(rfc3339),
            "duration": seconds(end.saturating_sub(self.created_ms)),
            "node_count": self.node_count,
            "node_states": node_states,
            "status": status,
            "nodes": { "id": format!("{url}/nodes") },
            "report": { "id": format!("{url}/report") },
            "events": { "id": format!("{url}/events") },
        })
    }
}

/// What a node's command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResult {
    /// `None` when it was killed (timeout) or never ran.
    pub exit_code: Option<i32>,
    /// Its stdout followed by its stderr.
    pub output: String,
    /// Its stdout (empty in records written before it was kept apart).
    #[serde(default)]
    pub stdout: String,
    /// Its stderr (likewise).
    #[serde(default)]
    pub stderr: String,
    /// Output was cut at the server's cap.
    pub truncated: bool,
    /// It ran past its timeout and was killed.
    pub timed_out: bool,
}

/// One node of a job, stored under `<job>/<node>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's name.
    pub name: String,
    /// Where it is.
    pub state: NodeState,
    /// When its run started.
    pub start_ms: Option<u64>,
    /// When it reached a final state.
    pub finish_ms: Option<u64>,
    /// When its state last changed.
    pub changed_ms: u64,
    /// A sentence about its last change.
    pub message: String,
    /// Its command's result, once it ran.
    pub result: Option<RunResult>,
    /// The event of its final state is written (the job may end).
    #[serde(default)]
    pub end_logged: bool,
}

impl NodeRecord {
    /// A node queued at `now`.
    pub fn ready(name: &str, now: u64) -> Self {
        NodeRecord {
            name: name.to_string(),
            state: NodeState::Ready,
            start_ms: None,
            finish_ms: None,
            changed_ms: now,
            message: format!("{name} is queued"),
            result: None,
            end_logged: false,
        }
    }

    /// Seconds its run took (or has taken so far).
    pub fn duration_ms(&self, now: u64) -> Option<u64> {
        self.start_ms
            .map(|s| self.finish_ms.unwrap_or(now).saturating_sub(s))
    }

    /// The node as `GET /jobs/{name}/nodes` shows it; `kind` is its job's.
    pub fn to_json(&self, now: u64, kind: JobType) -> Value {
        json!({
            "name": self.name,
            "state": self.state.as_str(),
            "timestamp": rfc3339(self.changed_ms),
            "start_timestamp": self.start_ms.map(rfc3339),
            "finish_timestamp": self.finish_ms.map(rfc3339),
            "duration": self.duration_ms(now).map(seconds),
            "details": { "message": self.message },
            "result": self.result_json(kind),
        })
    }

    /// The node's `result`, shaped as Bolt's orch transport reads it
    /// (`process_run_results`): a task's own JSON object on stdout (else
    /// its stdout as `_output`), `stdout`, `stderr` and `exit_code` as a
    /// command run reports them, and for a failed node an `_error` with
    /// `kind`, `msg` and `details`. `null` while the node has not ended
    /// (and for skipped nodes, which Bolt recognises by their state).
    pub fn result_json(&self, kind: JobType) -> Value {
        if !matches!(self.state, NodeState::Finished | NodeState::Failed) {
            return Value::Null;
        }
        let mut out = Map::new();
        if let Some(r) = &self.result {
            if kind == JobType::Task {
                match serde_json::from_str::<Value>(r.stdout.trim()) {
                    Ok(Value::Object(own)) => out.extend(own),
                    _ => {
                        out.insert("_output".into(), json!(r.stdout));
                    }
                }
            }
            let ours = [
                ("stdout", json!(r.stdout)),
                ("stderr", json!(r.stderr)),
                ("exit_code", json!(r.exit_code)),
                ("output", json!(r.output)),
                ("truncated", json!(r.truncated)),
                ("timed_out", json!(r.timed_out)),
            ];
            for (k, v) in ours {
                out.entry(k).or_insert(v);
            }
        }
        if self.state == NodeState::Failed && !out.get("_error").is_some_and(Value::is_object) {
            out.insert("_error".into(), self.error_json(kind));
        }
        Value::Object(out)
    }

    fn error_json(&self, kind: JobType) -> Value {
        let r = self.result.as_ref();
        let error_kind = match (r, kind) {
            (None, _) => "puppetlabs.orchestrator/node-error",
            (Some(r), _) if r.timed_out => "puppetlabs.orchestrator/node-timeout",
            (Some(_), JobType::Task) => "puppetlabs.tasks/task-error",
            (Some(_), JobType::Deploy) => "puppetlabs.orchestrator/puppet-run-failed",
        };
        let mut details = Map::new();
        if let Some(r) = r {
            details.insert("exit_code".into(), json!(r.exit_code));
            details.insert("timed_out".into(), json!(r.timed_out));
        }
        json!({ "kind": error_kind, "msg": self.message, "details": details })
    }
}

/// One event of a job, stored under `<job>/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// 1, 2, 3… per job, without gaps.
    pub id: u64,
    /// `job_running`, `node_running`, `node_finished`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// Milliseconds since the epoch.
    pub at_ms: u64,
    /// The node it is about, if any.
    pub node: Option<String>,
    /// Human text.
    pub message: String,
    /// Structured detail.
    pub detail: Map<String, Value>,
}

impl Event {
    /// An event not yet numbered.
    pub fn new(kind: &str, node: Option<&str>, message: String, now: u64) -> Self {
        Event {
            id: 0,
            kind: kind.to_string(),
            at_ms: now,
            node: node.map(str::to_string),
            message,
            detail: Map::new(),
        }
    }

    /// This event with `key: value` in its detail.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.detail.insert(key.to_string(), value);
        self
    }

    /// The event as `GET /jobs/{name}/events` shows it.
    pub fn to_json(&self) -> Value {
        let mut details = Map::new();
        if let Some(n) = &self.node {
            details.insert("node".into(), json!(n));
        }
        details.insert("detail".into(), Value::Object(self.detail.clone()));
        json!({
            "id": self.id.to_string(),
            "type": self.kind,
            "timestamp": rfc3339(self.at_ms),
            "details": details,
            "message": self.message,
        })
    }
}

/// Milliseconds as (fractional) seconds.
pub fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Counts of `states` by name, every state present (0 when none).
pub fn count_states<'a>(states: impl Iterator<Item = &'a NodeState>) -> BTreeMap<String, u64> {
    let mut counts: BTreeMap<String, u64> = NodeState::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    for s in states {
        *counts.entry(s.as_str().to_string()).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> JobRecord {
        JobRecord {
            name: 81,
            kind: JobType::Deploy,
            options: json!({"environment": "production"}),
            owner: Owner {
                login: "admin".into(),
                id: "admin".into(),
            },
            description: String::new(),
            environment: "production".into(),
            task: None,
            state: JobState::New,
            status: vec![StatusEntry {
                state: JobState::New,
                enter_ms: 1000,
                exit_ms: None,
            }],
            node_count: 2,
            created_ms: 1000,
            finished_ms: None,
            final_node_states: None,
            stop_logged: false,
            indexed: true,
        }
    }

    #[test]
    fn entering_a_state_closes_the_previous_one() {
        let mut j = job();
        j.enter(JobState::Running, 2000);
        j.enter(JobState::Finished, 5000);
        assert_eq!(j.status[0].exit_ms, Some(2000));
        assert_eq!(j.status[1].exit_ms, Some(5000));
        assert_eq!(j.status[2].exit_ms, None);
        assert_eq!(j.finished_ms, Some(5000));
        let v = j.to_json("https://h:1/o/v1", &count_states([].iter()), 9000);
        assert_eq!(v["id"], "https://h:1/o/v1/jobs/81");
        assert_eq!(v["name"], "81");
        assert_eq!(v["duration"], 4.0);
        assert_eq!(v["status"][2]["state"], "finished");
        assert_eq!(v["events"]["id"], "https://h:1/o/v1/jobs/81/events");
        assert_eq!(v["environment"]["name"], "production");
    }

    #[test]
    fn counts_name_every_state() {
        let c = count_states([NodeState::Failed, NodeState::Failed].iter());
        assert_eq!(c["failed"], 2);
        assert_eq!(c["finished"], 0);
        assert_eq!(c.len(), NodeState::ALL.len());
    }

    fn ended(state: NodeState, stdout: &str, code: Option<i32>) -> NodeRecord {
        let mut n = NodeRecord::ready("web-1", 1000);
        n.state = state;
        n.message = "web-1 failed".into();
        n.result = code.map(|c| RunResult {
            exit_code: Some(c),
            output: format!("{stdout}err"),
            stdout: stdout.into(),
            stderr: "err".into(),
            truncated: false,
            timed_out: false,
        });
        n
    }

    #[test]
    fn results_carry_what_bolt_reads() {
        let ok = ended(NodeState::Finished, "hi\n", Some(0)).result_json(JobType::Task);
        assert_eq!(ok["stdout"], "hi\n");
        assert_eq!(ok["stderr"], "err");
        assert_eq!(ok["exit_code"], 0);
        assert_eq!(ok["_output"], "hi\n");
        assert!(ok.get("_error").is_none());
        let own = ended(NodeState::Finished, r#"{"exit_code": 3, "x": 1}"#, Some(0))
            .result_json(JobType::Task);
        assert_eq!(
            (own["x"].clone(), own["exit_code"].clone()),
            (json!(1), json!(3))
        );
        let bad = ended(NodeState::Failed, "", Some(2)).result_json(JobType::Task);
        assert_eq!(bad["_error"]["kind"], "puppetlabs.tasks/task-error");
        assert_eq!(bad["_error"]["msg"], "web-1 failed");
        assert_eq!(bad["_error"]["details"]["exit_code"], 2);
        let lost = ended(NodeState::Failed, "", None).result_json(JobType::Deploy);
        assert_eq!(lost["_error"]["kind"], "puppetlabs.orchestrator/node-error");
        assert!(
            ended(NodeState::Skipped, "", None)
                .result_json(JobType::Task)
                .is_null()
        );
    }
}
