//! The jobs: `provision` runs `provision_command` (then `ready_command`, if
//! configured) with the cluster's manifest on stdin and marks the cluster
//! `ready`; `teardown` runs `teardown_command` and removes the record. Each
//! step is recorded on the cluster (`message`) and as job progress; a
//! failure marks the cluster `failed` with the command's exit and stderr.
//! A job changes the cluster only while it is in the state the job expects,
//! so a delete that overtakes provisioning is never undone.

use crate::cluster::{self, Cluster, State};
use crate::settings;
use baton_sdk::Job;
use baton_sdk::jobs::{self, Command, JobSpec};
use serde::{Deserialize, Serialize};

/// Kind of the job that provisions a cluster.
pub const PROVISION: &str = "provision";
/// Kind of the job that tears a cluster down.
pub const TEARDOWN: &str = "teardown";
/// Bytes of stderr kept in a failure message.
const STDERR_TAIL: usize = 600;

/// What a job works on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInput {
    /// The cluster's namespace.
    pub namespace: String,
    /// The cluster's name.
    pub name: String,
    /// `DeleteData` of the delete request.
    #[serde(default)]
    pub delete_data: bool,
    /// `DeleteBackups` of the delete request.
    #[serde(default)]
    pub delete_backups: bool,
}

impl JobInput {
    /// The input for cluster `name` in `namespace`.
    pub fn new(namespace: &str, name: &str) -> Self {
        JobInput {
            namespace: namespace.into(),
            name: name.into(),
            delete_data: false,
            delete_backups: false,
        }
    }
}

/// The job spec of `kind` for `input`, labelled with the cluster.
pub fn spec(kind: &str, input: &JobInput) -> JobSpec {
    let bytes = serde_json::to_vec(input).unwrap_or_default();
    JobSpec::new(kind, bytes)
        .label("namespace", &input.namespace)
        .label("cluster", &input.name)
}

/// Runs a job of this handler.
pub fn run(job: Job) -> Result<Vec<u8>, String> {
    let input: JobInput = serde_json::from_slice(&job.input)
        .map_err(|e| format!("the job's input is not a cluster reference: {e}"))?;
    let done = match job.kind.as_str() {
        PROVISION => provision(&job, &input)?,
        TEARDOWN => teardown(&job, &input)?,
        other => return Err(format!("unknown job kind `{other}`")),
    };
    Ok(done.into_bytes())
}

fn provision(job: &Job, input: &JobInput) -> Result<String, String> {
    let Some(c) = current(input, State::Creating)? else {
        return Ok("nothing to do: the cluster is gone or no longer being created".into());
    };
    let mut steps = vec![("provision_command", "provisioning")];
    if settings::command("ready_command")?.is_some() {
        steps.push(("ready_command", "waiting until ready"));
    }
    let total = steps.len() as u32;
    for (i, (key, what)) in steps.into_iter().enumerate() {
        let step = i as u32;
        jobs::progress(what, step, total);
        note(
            input,
            State::Creating,
            None,
            &format!("{what} (step {} of {total})", step + 1),
        )?;
        if let Err(msg) = run_command(key, &c, job, &[]) {
            note(input, State::Creating, Some(State::Failed), &msg)?;
            return Err(msg);
        }
    }
    jobs::progress("ready", total, total);
    note(input, State::Creating, Some(State::Ready), "ready")?;
    Ok(format!(
        "cluster {} in namespace {} is ready",
        input.name, input.namespace
    ))
}

fn teardown(job: &Job, input: &JobInput) -> Result<String, String> {
    let Some(c) = current(input, State::Deleting)? else {
        return Ok("nothing to do: the cluster is gone or no longer being deleted".into());
    };
    jobs::progress("tearing down", 0, 1);
    note(input, State::Deleting, None, "tearing down")?;
    let flags = [
        ("PGO_DELETE_DATA", input.delete_data.to_string()),
        ("PGO_DELETE_BACKUPS", input.delete_backups.to_string()),
    ];
    if let Err(msg) = run_command("teardown_command", &c, job, &flags) {
        let msg = format!("teardown failed: {msg}");
        note(input, State::Deleting, Some(State::Failed), &msg)?;
        return Err(msg);
    }
    cluster::remove_if(&input.namespace, &input.name, |c| {
        c.state == State::Deleting
    })
    .map_err(|e| e.to_string())?;
    jobs::progress("deleted", 1, 1);
    Ok(format!(
        "deleted cluster {} in namespace {}",
        input.name, input.namespace
    ))
}

/// The cluster, if it is in `state`.
fn current(input: &JobInput, state: State) -> Result<Option<Cluster>, String> {
    Ok(cluster::get(&input.namespace, &input.name)
        .map_err(|e| e.to_string())?
        .filter(|c| c.state == state))
}

/// Records `message` (and a new state) while the cluster is still in `while_in`.
fn note(input: &JobInput, while_in: State, to: Option<State>, message: &str) -> Result<(), String> {
    cluster::update(&input.namespace, &input.name, |c| {
        if c.state != while_in {
            return false;
        }
        c.state = to.unwrap_or(while_in);
        c.message = message.to_string();
        true
    })
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// Runs the command configured at `key` with the manifest on stdin.
fn run_command(
    key: &str,
    c: &Cluster,
    job: &Job,
    extra_env: &[(&str, String)],
) -> Result<(), String> {
    let argv = settings::command(key)?.ok_or_else(|| format!("[handler.config] has no `{key}`"))?;
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| format!("[handler.config] `{key}` is empty"))?;
    let mut env = settings::command_env()?;
    env.extend([
        ("PGO_CLUSTER".to_string(), c.name.clone()),
        ("PGO_NAMESPACE".to_string(), c.namespace.clone()),
        ("PGO_WORKFLOW_ID".to_string(), job.id.clone()),
        ("PGO_USER".to_string(), c.pgouser.clone()),
    ]);
    env.extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let cmd = Command {
        program: program.clone(),
        args: args.iter().map(|a| substitute(a, c)).collect(),
        env,
        stdin: Some(c.manifest.clone().into_bytes()),
        timeout_ms: settings::command_timeout_ms(),
        files: Vec::new(),
    };
    let out = jobs::exec(&cmd).map_err(|e| format!("`{program}` ({key}) did not run: {e}"))?;
    if out.timed_out {
        return Err(format!(
            "`{program}` ({key}) ran past its timeout and was stopped"
        ));
    }
    match out.exit_code {
        Some(0) => Ok(()),
        Some(code) => Err(format!(
            "`{program}` ({key}) exited with status {code}: {}",
            tail(&out.stderr)
        )),
        None => Err(format!("`{program}` ({key}) was killed by a signal")),
    }
}

/// `{name}` and `{namespace}` in a command argument.
pub fn substitute(arg: &str, c: &Cluster) -> String {
    arg.replace("{name}", &c.name)
        .replace("{namespace}", &c.namespace)
}

fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    if text.is_empty() {
        return "no output on stderr".into();
    }
    let start = text
        .char_indices()
        .rev()
        .nth(STDERR_TAIL)
        .map_or(0, |(i, _)| i);
    text[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_input_round_trips_and_labels_name_the_cluster() {
        let mut input = JobInput::new("pgouser1", "mycluster");
        input.delete_data = true;
        let spec = spec(TEARDOWN, &input);
        assert_eq!(spec.kind, "teardown");
        let back: JobInput = serde_json::from_slice(&spec.input).unwrap();
        assert_eq!(back, input);
        assert!(
            spec.labels
                .contains(&("cluster".into(), "mycluster".into()))
        );
    }

    #[test]
    fn stderr_tail_keeps_the_end() {
        assert_eq!(tail(b"  \n"), "no output on stderr");
        let long = format!("{}END", "x".repeat(2000));
        let t = tail(long.as_bytes());
        assert!(t.ends_with("END") && t.len() <= STDERR_TAIL + 1);
    }
}
