//! The command a node run executes, from `[handler.config]`.
//!
//! `agent_command` (deploys) and `task_command` (tasks) are argv templates:
//! a JSON array of strings (`'["ssh", "{node}", "puppet", "agent", "-t"]'`)
//! or a plain string split on whitespace (`"ssh {node} puppet agent -t"`).
//! Placeholders in the arguments are replaced by the run's values:
//! `{node}`, `{environment}`, `{noop}` (`--noop` or `--no-noop`, both
//! understood by `puppet agent`), and for tasks `{task}` and `{params}` (the
//! parameters as JSON), and `{transport}` (`ssh` or `winrm` for a node the
//! request's `targets` names, else `pcp`). Each placeholder fills one argv element, so no
//! value is ever parsed by a shell. The program itself is taken literally
//! and must be listed in `[handler.capabilities] exec`.

/// The shipped deploy command: prints what a production agent run would do.
pub const DEFAULT_AGENT: &str = r#"["sh", "-c", "if [ \"$3\" = --noop ]; then mode='noop run: changes are only reported'; else mode='run: changes are applied'; fi; echo \"puppet agent $mode\"; echo \"node $1, environment $2\"; echo \"in production: ssh $1 puppet agent -t --environment $2 $3\"", "agent", "{node}", "{environment}", "{noop}"]"#;

/// The shipped task command: prints what a production task run would do.
pub const DEFAULT_TASK: &str = r#"["sh", "-c", "echo \"task $3 on node $1 (environment $2, $4)\"; echo \"params: $5\"", "task", "{node}", "{environment}", "{task}", "{noop}", "{params}"]"#;

/// Placeholders a template may use.
const PLACEHOLDERS: [&str; 6] = [
    "{node}",
    "{environment}",
    "{noop}",
    "{task}",
    "{params}",
    "{transport}",
];

/// A parsed argv template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    program: String,
    args: Vec<String>,
}

/// The values one run fills in.
#[derive(Debug, Clone, Default)]
pub struct Values<'a> {
    /// The node's name.
    pub node: &'a str,
    /// The Puppet environment.
    pub environment: &'a str,
    /// Whether this is a noop run.
    pub noop: bool,
    /// The task's name (tasks only).
    pub task: &'a str,
    /// The task's parameters as JSON (tasks only).
    pub params: &'a str,
    /// How the node is reached: `pcp`, `ssh` or `winrm`.
    pub transport: &'a str,
}

impl Template {
    /// Parses the template in config key `key`.
    pub fn parse(key: &str, text: &str) -> Result<Template, String> {
        let text = text.trim();
        let argv: Vec<String> = if text.starts_with('[') {
            serde_json::from_str(text).map_err(|e| {
                format!("[handler.config] {key} is not a JSON array of strings: {e}")
            })?
        } else {
            text.split_whitespace().map(str::to_string).collect()
        };
        let mut argv = argv.into_iter();
        let program = argv
            .next()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| format!("[handler.config] {key} names no program"))?;
        if PLACEHOLDERS.iter().any(|p| program.contains(p)) {
            return Err(format!(
                "[handler.config] {key}: the program `{program}` may not contain a placeholder"
            ));
        }
        Ok(Template {
            program,
            args: argv.collect(),
        })
    }

    /// The program to run.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The arguments with `v` filled in.
    pub fn args(&self, v: &Values<'_>) -> Vec<String> {
        let noop = if v.noop { "--noop" } else { "--no-noop" };
        self.args
            .iter()
            .map(|a| {
                a.replace("{node}", v.node)
                    .replace("{environment}", v.environment)
                    .replace("{noop}", noop)
                    .replace("{task}", v.task)
                    .replace("{transport}", v.transport)
                    // Last: the parameters are free text and may contain braces.
                    .replace("{params}", v.params)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_form_splits_on_whitespace() {
        let t = Template::parse("agent_command", "ssh {node} puppet agent -t {noop}").unwrap();
        assert_eq!(t.program(), "ssh");
        let v = Values {
            node: "web-1",
            noop: true,
            ..Values::default()
        };
        assert_eq!(t.args(&v), ["web-1", "puppet", "agent", "-t", "--noop"]);
    }

    #[test]
    fn values_fill_one_argument_each_and_never_split() {
        let t = Template::parse("k", r#"["echo", "{node}", "env={environment}"]"#).unwrap();
        let v = Values {
            node: "a; rm -rf /",
            environment: "prod uction",
            ..Values::default()
        };
        assert_eq!(t.args(&v), ["a; rm -rf /", "env=prod uction"]);
    }

    #[test]
    fn noop_is_a_puppet_flag_either_way() {
        let t = Template::parse("k", "puppet agent {noop}").unwrap();
        assert_eq!(t.args(&Values::default()), ["agent", "--no-noop"]);
    }

    #[test]
    fn bad_templates_name_the_key() {
        assert!(
            Template::parse("agent_command", "")
                .unwrap_err()
                .contains("agent_command")
        );
        assert!(
            Template::parse("agent_command", "[1, 2]")
                .unwrap_err()
                .contains("JSON array")
        );
        assert!(
            Template::parse("task_command", "{node} x")
                .unwrap_err()
                .contains("program")
        );
    }

    #[test]
    fn shipped_defaults_parse() {
        let t = Template::parse("agent_command", DEFAULT_AGENT).unwrap();
        assert_eq!(t.program(), "sh");
        assert!(
            t.args(&Values::default())
                .contains(&"--no-noop".to_string())
        );
        assert_eq!(
            Template::parse("task_command", DEFAULT_TASK)
                .unwrap()
                .program(),
            "sh"
        );
    }
}
