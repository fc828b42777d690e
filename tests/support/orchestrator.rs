//! Helpers of the orchestrator tests (`tests/orchestrator*.rs`), included
//! with `#[path]` so that other test binaries do not compile them.
#![allow(dead_code)]

use super::support::*;
use serde_json::Value;
use std::path::Path;

pub const ALL_NODES: &str = "00000000-0000-4000-8000-000000000000";

/// The shipped default manifest (`host/baton.toml`), on an ephemeral port.
pub fn shipped_manifest() -> String {
    let text = std::fs::read_to_string(root().join("host/baton.toml")).unwrap();
    assert!(text.contains("address = \"127.0.0.1:8143\""));
    // Both fixed ports: another suite may be running the shipped manifest.
    text.replace("address = \"127.0.0.1:8143\"", "address = \"127.0.0.1:0\"")
        .replace("address = \"127.0.0.1:9090\"", "address = \"127.0.0.1:0\"")
}

/// An HTTPS orchestrator whose deploys run `agent` (a JSON argv template).
pub fn manifest_with_agent(agent: &str) -> String {
    format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\ntls = \"self-signed\"\n\n{ORCHESTRATOR}\
         [handler.capabilities]\nexec = [\"sh\"]\n[handler.limits]\nmax_running_jobs = 16\n\
         [handler.config]\nagent_command = '''{agent}'''\n"
    )
}

pub fn add_nodes(server: &Server, names: &[&str]) {
    let c = server.client();
    for n in names {
        let url = server.url(&format!("/orchestrator/v1/inventory/nodes/{n}"));
        assert!(c.put(url).send().unwrap().status().is_success());
    }
}

pub fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let resp = server
        .client()
        .post(server.url(&format!("/orchestrator/v1{path}")))
        .json(&body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

pub fn deploy(server: &Server, body: Value) -> String {
    let (status, reply) = post(server, "/command/deploy", body);
    assert_eq!(status, 202, "{reply}");
    reply["job"]["name"].as_str().unwrap().to_string()
}

pub fn job(server: &Server, name: &str) -> Value {
    server.get_json(&format!("/orchestrator/v1/jobs/{name}"))
}

/// Polls job `name` until `done` holds for it ([`poll`]).
pub fn wait_job(server: &Server, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    poll(&format!("job {name} to become {what}"), || {
        let j = job(server, name);
        if done(&j) { Ok(j) } else { Err(j.to_string()) }
    })
}

pub fn wait_final(server: &Server, name: &str) -> Value {
    wait_job(server, name, "final", |j| {
        matches!(j["state"].as_str(), Some("finished" | "failed" | "stopped"))
    })
}

pub fn events(server: &Server, name: &str) -> Vec<Value> {
    let body = server.get_json(&format!("/orchestrator/v1/jobs/{name}/events"));
    body["items"].as_array().unwrap().clone()
}

pub fn nodes(server: &Server, name: &str) -> Vec<Value> {
    let body = server.get_json(&format!("/orchestrator/v1/jobs/{name}/nodes"));
    body["items"].as_array().unwrap().clone()
}

pub fn node<'a>(items: &'a [Value], name: &str) -> &'a Value {
    items.iter().find(|n| n["name"] == name).unwrap()
}

/// Checks a finished job's events: ids 1, 2, 3… without gaps; `job_running`
/// first and the job's end last; per node, running before its end.
pub fn assert_events_complete_and_ordered(events: &[Value], nodes: &[&str], end: &str) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["id"], (i + 1).to_string(), "{events:#?}");
    }
    assert_eq!(events[0]["type"], "job_running", "{events:#?}");
    assert_eq!(events.last().unwrap()["type"], end, "{events:#?}");
    let ends = [
        "node_finished",
        "node_failed",
        "node_errored",
        "node_skipped",
    ];
    for n in nodes {
        let of_node: Vec<&str> = events
            .iter()
            .filter(|e| e["details"]["node"] == *n)
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        let last = of_node.last().unwrap();
        assert!(ends.contains(last), "{n}: {of_node:?}");
        assert_eq!(
            of_node.iter().filter(|t| ends.contains(t)).count(),
            1,
            "{n}: {of_node:?}"
        );
        if *last != "node_skipped" {
            assert_eq!(of_node, ["node_running", *last], "{n}");
        }
    }
}

/// An agent that blocks until the file `gate` exists, logging its start
/// and end lines to `log`.
pub fn gated_agent(gate: &Path, log: &Path) -> String {
    format!(
        r#"["sh", "-c", "echo start $1 >> \"$3\"; while [ ! -e \"$2\" ]; do sleep 0.02; done; echo end $1 >> \"$3\"; echo ran $1", "agent", "{{node}}", "{}", "{}"]"#,
        gate.display(),
        log.display()
    )
}

pub fn running_nodes(server: &Server, name: &str) -> usize {
    let body = server.get_json(&format!("/orchestrator/v1/jobs/{name}/nodes?state=running"));
    body["items"].as_array().unwrap().len()
}

pub fn wait_running(server: &Server, name: &str, n: usize) {
    poll(
        &format!("{n} nodes running at once"),
        || match running_nodes(server, name) {
            running if running >= n => Ok(()),
            running => Err(format!("{running} running")),
        },
    )
}
