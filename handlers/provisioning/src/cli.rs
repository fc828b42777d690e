//! The provisioning CLI: what a task asks it to do (a subcommand and its
//! arguments), how the manifest's `[handler.config]` says to run it, and the
//! job body that runs it through `exec`.
//!
//! Config keys (all optional):
//! - `cli`: the program `exec` runs (default `provisioning`); it must be in
//!   the handler's `[handler.capabilities] exec` list.
//! - `cli_args`: a JSON array of arguments put before the subcommand (e.g. a
//!   `sh -c` script that prints what production would do).
//! - `cli_name`: how tasks show the program in `command` (default `provisioning`).
//! - `cli_env`: a JSON object, the whole environment of the process.

use crate::envelope::ApiError;
use baton_sdk::jobs::{self, Command};
use baton_sdk::{Job, config};
use serde::{Deserialize, Serialize};

/// One call of the CLI: `<cli> <command…> <args…>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invocation {
    /// Subcommand words, e.g. `["servers", "create"]`.
    pub command: Vec<String>,
    /// Flags and values, e.g. `["--infra", "production", "--wait"]`.
    pub args: Vec<String>,
}

/// Everything a task job needs; stored as the job's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// What the task is, for people.
    pub name: String,
    /// What it runs.
    #[serde(flatten)]
    pub run: Invocation,
    /// What undoes it when its batch rolls back.
    #[serde(default)]
    pub rollback: Option<Invocation>,
    /// The batch it belongs to.
    #[serde(default)]
    pub batch: Option<String>,
    /// Its operation in that batch.
    #[serde(default)]
    pub operation: Option<String>,
}

/// The kind of every task job.
pub const TASK_KIND: &str = "task";

/// Longest name, infra, provider or settings value accepted, in characters.
const MAX_VALUE: usize = 253;

/// Checks a value that becomes one CLI argument. The CLI runs through
/// `exec` with argv, never a shell, so spaces, quotes, `;` or `$` in a value
/// are just characters of that one argument (`"plan": "1xCPU-2 GB"` of the
/// reference docs is `--plan` followed by `1xCPU-2 GB`). What is refused is
/// what could change the command: a value starting with `-` (it would read
/// as a flag of its own), control characters (NUL cannot be in argv;
/// newlines would forge log lines), an empty or blank value, and more than
/// 253 characters.
pub fn check_value(field: &str, value: &str) -> Result<(), ApiError> {
    let why = if value.trim().is_empty() {
        Some("must not be empty".to_string())
    } else if value.chars().count() > MAX_VALUE {
        Some(format!("must be at most {MAX_VALUE} characters"))
    } else if value.starts_with('-') {
        Some("must not start with `-` (it would be read as a flag)".to_string())
    } else if value.chars().any(char::is_control) {
        Some("must not contain control characters such as newlines".to_string())
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(ApiError::bad_request(format!(
            "field `{field}`: `{}` {why}",
            value.escape_debug()
        ))),
    }
}

/// The common flags: `--infra I [--settings S] [--check] [--wait]`, with
/// `extra` (flag, value) pairs after `--settings`.
pub fn common_args(
    infra: Option<&str>,
    settings: Option<&str>,
    extra: &[(&str, &str)],
    check_mode: bool,
    wait: bool,
) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(i) = infra {
        args.extend(["--infra".to_string(), i.to_string()]);
    }
    if let Some(s) = settings {
        args.extend(["--settings".to_string(), s.to_string()]);
    }
    for (flag, value) in extra {
        args.extend([flag.to_string(), value.to_string()]);
    }
    if check_mode {
        args.push("--check".into());
    }
    if wait {
        args.push("--wait".into());
    }
    args
}

/// How the manifest says to run the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    /// The program `exec` runs.
    pub program: String,
    /// Arguments before the subcommand.
    pub prefix: Vec<String>,
    /// How tasks show the program.
    pub name: String,
    /// The process environment.
    pub env: Vec<(String, String)>,
}

impl Cli {
    /// The CLI from `config` values (`get` returns a key's value).
    pub fn from_values(get: impl Fn(&str) -> Option<String>) -> Result<Cli, String> {
        let prefix = match get("cli_args") {
            Some(text) => serde_json::from_str::<Vec<String>>(&text).map_err(|e| {
                format!("[handler.config] cli_args must be a JSON array of strings: {e}")
            })?,
            None => Vec::new(),
        };
        let env = match get("cli_env") {
            Some(text) => serde_json::from_str::<std::collections::BTreeMap<String, String>>(&text)
                .map_err(|e| {
                    format!("[handler.config] cli_env must be a JSON object of strings: {e}")
                })?
                .into_iter()
                .collect(),
            None => Vec::new(),
        };
        Ok(Cli {
            program: get("cli").unwrap_or_else(|| "provisioning".into()),
            prefix,
            name: get("cli_name").unwrap_or_else(|| "provisioning".into()),
            env,
        })
    }

    /// The CLI of this handler's manifest entry.
    pub fn configured() -> Result<Cli, String> {
        Cli::from_values(config::get)
    }

    /// How a task shows `inv`'s command, e.g. `provisioning servers create`.
    pub fn display(name: &str, inv: &Invocation) -> String {
        std::iter::once(name)
            .chain(inv.command.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The argv `exec` runs for `inv`.
    pub fn command(&self, inv: &Invocation) -> Command {
        let mut cmd = Command::new(&self.program, &[]);
        cmd.args = self
            .prefix
            .iter()
            .chain(&inv.command)
            .chain(&inv.args)
            .cloned()
            .collect();
        cmd.env = self.env.clone();
        cmd
    }
}

/// The job body of a task: runs its command (or, in a rollback, its
/// rollback command); stdout is the output, a non-zero exit an error.
pub fn run_task(job: &Job) -> Result<Vec<u8>, String> {
    let spec: TaskSpec = serde_json::from_slice(&job.input)
        .map_err(|e| format!("the task's stored input does not decode: {e}"))?;
    let cli = Cli::configured()?;
    let inv = if job.rollback {
        match &spec.rollback {
            Some(r) => r,
            None => return Ok(b"nothing to roll back".to_vec()),
        }
    } else {
        &spec.run
    };
    let shown = format!("{} {}", Cli::display(&cli.name, inv), inv.args.join(" "));
    let shown = shown.trim_end();
    jobs::progress(shown, 0, 1);
    let out = jobs::exec(&cli.command(inv)).map_err(|e| format!("`{shown}` did not run: {e}"))?;
    if out.exit_code == Some(0) && !out.timed_out {
        jobs::progress(shown, 1, 1);
        return Ok(out.stdout);
    }
    let how = match (out.timed_out, out.exit_code) {
        (true, _) => "ran past its timeout and was killed".to_string(),
        (false, Some(c)) => format!("exited with code {c}"),
        (false, None) => "was killed by a signal".to_string(),
    };
    let detail = tail(if out.stderr.is_empty() {
        &out.stdout
    } else {
        &out.stderr
    });
    Err(if detail.is_empty() {
        format!("`{shown}` {how}")
    } else {
        format!("`{shown}` {how}: {detail}")
    })
}

/// The last 2 KiB of `bytes` as trimmed text.
fn tail(bytes: &[u8]) -> String {
    let from = bytes.len().saturating_sub(2048);
    String::from_utf8_lossy(&bytes[from..]).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_smuggle_flags_but_may_hold_spaces() {
        // argv, never a shell: these are each one ordinary argument.
        for ok in [
            "production",
            "conf/settings.ncl",
            "1xCPU-2 GB",
            "x;rm -rf /",
            "$(id)",
            "it's \"quoted\"",
            "zürich-1",
            &"a".repeat(253),
        ] {
            assert!(check_value("plan", ok).is_ok(), "{ok}");
        }
        for bad in ["", "   ", "--yes", "-x", "a\nb", "nul\0", &"a".repeat(254)] {
            let e = check_value("infra", bad).unwrap_err();
            assert!(e.message.contains("field `infra`"), "{}", e.message);
        }
    }

    #[test]
    fn common_args_follow_the_cli() {
        assert_eq!(
            common_args(
                Some("production"),
                Some("config.ncl"),
                &[("--provider", "aws")],
                true,
                true
            ),
            [
                "--infra",
                "production",
                "--settings",
                "config.ncl",
                "--provider",
                "aws",
                "--check",
                "--wait"
            ]
        );
        assert!(common_args(None, None, &[], false, false).is_empty());
    }

    #[test]
    fn the_configured_cli_wraps_the_subcommand() {
        let cli = Cli::from_values(|k| match k {
            "cli" => Some("sh".into()),
            "cli_args" => Some(r#"["-c", "echo \"$@\"", "provisioning"]"#.into()),
            "cli_env" => Some(r#"{"PATH": "/usr/bin:/bin"}"#.into()),
            _ => None,
        })
        .unwrap();
        let inv = Invocation {
            command: vec!["servers".into(), "create".into()],
            args: vec!["--infra".into(), "prod".into()],
        };
        let cmd = cli.command(&inv);
        assert_eq!(cmd.program, "sh");
        assert_eq!(
            cmd.args,
            [
                "-c",
                "echo \"$@\"",
                "provisioning",
                "servers",
                "create",
                "--infra",
                "prod"
            ]
        );
        assert_eq!(cmd.env, [("PATH".to_string(), "/usr/bin:/bin".to_string())]);
        assert_eq!(Cli::display(&cli.name, &inv), "provisioning servers create");
        let err = Cli::from_values(|k| (k == "cli_args").then(|| "-c".to_string())).unwrap_err();
        assert!(err.contains("cli_args"), "{err}");
    }

    #[test]
    fn task_specs_round_trip_as_job_input() {
        let spec = TaskSpec {
            name: "web".into(),
            run: Invocation {
                command: vec!["servers".into(), "create".into()],
                args: vec![],
            },
            rollback: Some(Invocation {
                command: vec!["servers".into(), "delete".into()],
                args: vec![],
            }),
            batch: Some("b".into()),
            operation: Some("op".into()),
        };
        let bytes = serde_json::to_vec(&spec).unwrap();
        assert_eq!(serde_json::from_slice::<TaskSpec>(&bytes).unwrap(), spec);
    }
}
