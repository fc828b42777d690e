//! The commands jobs run, from `[handler.config]`: each key holds an argv
//! as a JSON list of strings (never a shell string built from input). In
//! each argument `{address}`, `{remote_user}`, `{cluster}`, `{network}`,
//! `{network_type}`, `{container_manager}`, `{container_manager_type}` and
//! `{version}` become the values of the host and its cluster (all checked
//! on the way in: addresses, names, versions), and `{file:ssh_key}` the
//! path of a file holding the host's private key, which the host writes
//! readable only by the server's user and removes after the command.

use baton_sdk::config;
use baton_sdk::jobs::{self, Command};

/// The name of the private key's file in `{file:ssh_key}`.
pub const KEY_FILE: &str = "ssh_key";
/// `PATH` given to commands when `command_path` is not configured.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The values placeholders take, as (`name`, value) pairs.
pub type Vars = Vec<(&'static str, String)>;

/// The argv configured under `key`, placeholders replaced.
pub fn argv(key: &str, raw: Option<String>, vars: &Vars) -> Result<Vec<String>, String> {
    let raw = raw.ok_or_else(|| format!("no `{key}` in the handler's [handler.config]"))?;
    let list: Vec<String> = serde_json::from_str(&raw).map_err(|e| {
        format!("[handler.config] `{key}` must be a JSON list of strings (an argv): {e}")
    })?;
    if list.is_empty() || list[0].is_empty() {
        return Err(format!("[handler.config] `{key}` names no program"));
    }
    Ok(list
        .into_iter()
        .map(|arg| {
            vars.iter().fold(arg, |a, (name, value)| {
                a.replace(&format!("{{{name}}}"), value)
            })
        })
        .collect())
}

/// Runs the command configured under `key` with the host's private key as
/// `{file:ssh_key}`; returns its stdout, or why it failed (exit code and the
/// last line of stderr). Its output lines are the job's events.
pub fn run(key: &str, vars: &Vars, private_key: &[u8]) -> Result<String, String> {
    let argv = argv(key, config::get(key), vars)?;
    let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    let cmd = Command::new(&argv[0], &args)
        .env("PATH", &config::get_or("command_path", DEFAULT_PATH))
        .file(KEY_FILE, private_key.to_vec());
    let out = jobs::exec(&cmd).map_err(|e| format!("`{key}` could not run: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    if out.timed_out {
        return Err(format!("`{key}` ran past its timeout and was killed"));
    }
    match out.exit_code {
        Some(0) => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Some(code) => Err(format!("`{key}` exited with code {code}: {last}")),
        None => Err(format!("`{key}` was killed by a signal: {last}")),
    }
}

/// Facts an investigation reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Operating system.
    pub os: String,
    /// CPU count.
    pub cpus: i64,
    /// Memory in kB.
    pub memory: i64,
    /// Free space in kB.
    pub space: i64,
}

/// Reads `os=…`, `cpus=…`, `memory=…`, `space=…` lines (others are ignored).
pub fn parse_facts(stdout: &str) -> Result<Facts, String> {
    let find = |key: &str| {
        stdout.lines().rev().find_map(|l| {
            l.trim()
                .strip_prefix(key)
                .and_then(|r| r.strip_prefix('='))
                .map(|v| v.trim().to_string())
        })
    };
    let missing = |key: &str| format!("the investigation printed no `{key}=` line");
    let number = |key: &str| -> Result<i64, String> {
        let v = find(key).ok_or_else(|| missing(key))?;
        v.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("the investigation's `{key}` is `{v}`, not a whole number"))
    };
    let os = find("os")
        .filter(|o| !o.is_empty())
        .ok_or_else(|| missing("os"))?;
    Ok(Facts {
        os,
        cpus: number("cpus")?,
        memory: number("memory")?,
        space: number("space")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_fill_whole_arguments_and_parts() {
        let vars: Vars = vec![
            ("address", "10.0.0.5".into()),
            ("remote_user", "root".into()),
        ];
        let raw = r#"["ssh", "-i", "{file:ssh_key}", "{remote_user}@{address}", "uptime"]"#;
        let argv = argv("x", Some(raw.into()), &vars).unwrap();
        assert_eq!(
            argv,
            ["ssh", "-i", "{file:ssh_key}", "root@10.0.0.5", "uptime"]
        );
    }

    #[test]
    fn bad_config_says_which_key() {
        assert!(
            argv("deploy_command", None, &vec![])
                .unwrap_err()
                .contains("deploy_command")
        );
        assert!(
            argv("k", Some("ssh host".into()), &vec![])
                .unwrap_err()
                .contains("JSON list")
        );
        assert!(
            argv("k", Some("[]".into()), &vec![])
                .unwrap_err()
                .contains("no program")
        );
    }

    #[test]
    fn facts_are_read_from_key_value_lines() {
        let f = parse_facts("noise\nos=fedora\ncpus=4\nmemory=8000000\nspace=1000\n").unwrap();
        assert_eq!(
            f,
            Facts {
                os: "fedora".into(),
                cpus: 4,
                memory: 8_000_000,
                space: 1000
            }
        );
        assert!(
            parse_facts("os=x\ncpus=4\nmemory=1")
                .unwrap_err()
                .contains("space")
        );
        assert!(
            parse_facts("os=x\ncpus=four\nmemory=1\nspace=1")
                .unwrap_err()
                .contains("cpus")
        );
    }
}
