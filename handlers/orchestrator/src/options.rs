//! Reading command bodies the way PE's orchestrator does: an optional key
//! given as `null` counts as absent (Bolt's orch transport sends
//! `"noop": null` and `"environment": null` when they are unset), and the
//! documented keys `timeout` and `targets` are understood.
//!
//! `targets` (tasks run over SSH or WinRM through PE's Bolt server) is a
//! list of objects, each naming `hostnames` and a `transport`. Baton reaches
//! every node through the configured command, so a target tells that
//! command which transport the node is reached by (`{transport}`); the
//! secrets a target may carry are never stored or shown.

use crate::errors::OrchError;
use crate::inventory::validate_name;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The transport of a node no target names: PE's agent protocol.
pub const AGENT_TRANSPORT: &str = "pcp";

/// Target keys whose values are secrets: replaced before anything is stored.
const SECRET_KEYS: [&str; 3] = ["password", "sudo-password", "private-key-content"];

/// What a redacted secret reads as.
pub const REDACTED: &str = "[redacted]";

/// The largest `timeout` accepted: a day, in seconds.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;

/// Parses a command body into `T`, after dropping every `null` value of the
/// top level, of `scope` and of each `targets` entry (PE accepts `null` for
/// an optional key; a required key given as `null` is then reported missing).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, OrchError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(OrchError::validation(
            "request body is empty; expected a JSON object",
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| OrchError::validation(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(mut top) = value else {
        return Err(OrchError::validation(format!(
            "request body must be a JSON object, not {}",
            baton_sdk::http::json_type_name(&value)
        )));
    };
    drop_nulls(&mut top);
    if let Some(Value::Object(scope)) = top.get_mut("scope") {
        drop_nulls(scope);
    }
    if let Some(Value::Array(targets)) = top.get_mut("targets") {
        for t in targets.iter_mut() {
            if let Value::Object(t) = t {
                drop_nulls(t);
            }
        }
    }
    serde_json::from_value(Value::Object(top))
        .map_err(|e| OrchError::validation(format!("invalid request body: {e}")))
}

fn drop_nulls(map: &mut Map<String, Value>) {
    map.retain(|_, v| !v.is_null());
}

/// Checks `timeout` (seconds): at least 1, at most [`MAX_TIMEOUT_SECS`].
pub fn validate_timeout(timeout: Option<u64>) -> Result<(), OrchError> {
    match timeout {
        Some(t) if t == 0 || t > MAX_TIMEOUT_SECS => Err(OrchError::validation(format!(
            "`timeout` must be between 1 and {MAX_TIMEOUT_SECS} seconds, not {t}"
        ))
        .details(json!({ "field": "timeout", "value": t }))),
        _ => Ok(()),
    }
}

/// The wall clock of one node's command: the smaller of the configured
/// limit and the request's `timeout` (seconds).
pub fn node_timeout_ms(configured: Option<u64>, timeout_secs: Option<u64>) -> Option<u64> {
    let requested = timeout_secs.map(|s| s.saturating_mul(1000));
    match (configured, requested) {
        (Some(c), Some(r)) => Some(c.min(r)),
        (c, r) => c.or(r),
    }
}

/// One entry of `targets`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// The nodes this entry describes.
    pub hostnames: Vec<String>,
    /// `ssh` or `winrm`.
    pub transport: String,
    /// Every other key (user, port, run-as, tmpdir, …), as given.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// Checks `targets` against the job's nodes and redacts its secrets.
/// Returns node → transport for the nodes a target names. Every hostname
/// must be one of `nodes` (the resolved scope) and appear in one entry only.
pub fn check_targets(
    targets: &mut [Target],
    nodes: &[String],
) -> Result<BTreeMap<String, String>, OrchError> {
    let mut by_node = BTreeMap::new();
    for (i, t) in targets.iter_mut().enumerate() {
        if !matches!(t.transport.as_str(), "ssh" | "winrm") {
            return Err(OrchError::validation(format!(
                "`targets[{i}].transport` must be `ssh` or `winrm`, not `{}`",
                t.transport
            ))
            .details(json!({ "field": format!("targets[{i}].transport") })));
        }
        if t.hostnames.is_empty() {
            return Err(
                OrchError::validation(format!("`targets[{i}].hostnames` names no host"))
                    .details(json!({ "field": format!("targets[{i}].hostnames") })),
            );
        }
        for h in &t.hostnames {
            validate_name(h)?;
            if nodes.binary_search(h).is_err() {
                return Err(OrchError::validation(format!(
                    "`targets[{i}]` names `{h}`, which is not in the job's scope; \
                     list it in `scope.nodes` too"
                ))
                .details(json!({ "field": format!("targets[{i}].hostnames"), "value": h })));
            }
            if by_node.insert(h.clone(), t.transport.clone()).is_some() {
                return Err(OrchError::validation(format!(
                    "`{h}` appears in more than one entry of `targets`"
                ))
                .details(json!({ "field": "targets", "value": h })));
            }
        }
        for key in SECRET_KEYS {
            if let Some(v) = t.rest.get_mut(key) {
                *v = json!(REDACTED);
            }
        }
    }
    Ok(by_node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        task: String,
        #[serde(default)]
        noop: bool,
        #[serde(default)]
        environment: Option<String>,
        #[serde(default)]
        scope: Map<String, Value>,
    }

    #[test]
    fn nulls_are_absent_keys() {
        let b: Body = parse(
            br#"{"task": "t", "noop": null, "environment": null, "scope": {"nodes": ["a"], "query": null}}"#,
        )
        .unwrap();
        assert_eq!(b.task, "t");
        assert!(!b.noop);
        assert_eq!(b.environment, None);
        assert_eq!(b.scope.len(), 1);
    }

    #[test]
    fn a_required_key_given_as_null_is_missing() {
        let e: crate::errors::OrchError = parse::<Body>(br#"{"task": null}"#).unwrap_err();
        assert!(e.to_string().contains("missing field `task`"), "{e}");
        for bad in [&b""[..], b"[1]", b"{"] {
            assert!(parse::<Body>(bad).is_err());
        }
    }

    #[test]
    fn timeouts_bound_the_configured_limit() {
        assert_eq!(node_timeout_ms(Some(60_000), Some(5)), Some(5_000));
        assert_eq!(node_timeout_ms(Some(1_000), Some(5)), Some(1_000));
        assert_eq!(node_timeout_ms(None, Some(2)), Some(2_000));
        assert_eq!(node_timeout_ms(Some(7), None), Some(7));
        assert!(validate_timeout(Some(0)).is_err());
        assert!(validate_timeout(Some(MAX_TIMEOUT_SECS + 1)).is_err());
        assert!(validate_timeout(Some(30)).is_ok());
    }

    #[test]
    fn targets_must_name_scope_nodes_and_lose_their_secrets() {
        let nodes = vec!["a".to_string(), "b".to_string()];
        let mut t: Vec<Target> = serde_json::from_value(json!([
            {"hostnames": ["a"], "transport": "ssh", "user": "root", "password": "hunter2"}
        ]))
        .unwrap();
        let map = check_targets(&mut t, &nodes).unwrap();
        assert_eq!(map["a"], "ssh");
        assert_eq!(t[0].rest["password"], REDACTED);
        assert_eq!(t[0].rest["user"], "root");
        let mut bad: Vec<Target> =
            serde_json::from_value(json!([{"hostnames": ["c"], "transport": "ssh"}])).unwrap();
        assert!(check_targets(&mut bad, &nodes).is_err());
        let mut bad: Vec<Target> =
            serde_json::from_value(json!([{"hostnames": ["a"], "transport": "pcp"}])).unwrap();
        assert!(check_targets(&mut bad, &nodes).is_err());
        let mut dup: Vec<Target> = serde_json::from_value(json!([
            {"hostnames": ["a"], "transport": "ssh"}, {"hostnames": ["a"], "transport": "winrm"}
        ]))
        .unwrap();
        assert!(check_targets(&mut dup, &nodes).is_err());
    }
}
