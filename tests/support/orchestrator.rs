//! Helpers of the orchestrator tests (`tests/orchestrator*.rs`), included
//! with `#[path]` so that other test binaries do not compile them.
#![allow(dead_code)]

use super::support::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
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

/// Every event of job `name`, following `next-events` page by page.
pub fn all_events(server: &Server, name: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    loop {
        let start = out.len() + 1;
        let page = server.get_json(&format!(
            "/orchestrator/v1/jobs/{name}/events?start={start}"
        ));
        let items = page["items"].as_array().unwrap().clone();
        if items.is_empty() {
            return out;
        }
        out.extend(items);
    }
}

/// Every node of job `name`, page by page.
pub fn all_nodes(server: &Server, name: &str) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    loop {
        let page = server.get_json(&format!(
            "/orchestrator/v1/jobs/{name}/nodes?limit=500&offset={}",
            out.len()
        ));
        let items = page["items"].as_array().unwrap().clone();
        if items.is_empty() {
            return out;
        }
        out.extend(items);
    }
}

pub fn node_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("node{i:05}.example.com")).collect()
}

/// Waits for job `name` to end, checking at every look that its node
/// counts (kept in step with the node records, never counted by scanning)
/// add up to its size.
pub fn wait_final_counting(server: &Server, name: &str, size: u64) -> Value {
    wait_job(server, name, "final with counts that add up", |j| {
        let counts = j["node_states"].as_object().expect("node_states");
        let sum: u64 = counts.values().map(|v| v.as_u64().unwrap()).sum();
        assert_eq!(sum, size, "node counts of a running job: {j}");
        matches!(j["state"].as_str(), Some("finished" | "failed" | "stopped"))
    })
}

/// Each node of `names` has exactly one final state, `finished`, and the
/// job's events are 1, 2, 3… with exactly one end event per node; the
/// job's counts say so, and a page of the nodes in one state is the right
/// slice with the right total.
pub fn assert_every_node_finished_once(server: &Server, name: &str, names: &[String]) {
    let job = job(server, name);
    assert_eq!(job["node_states"]["finished"], names.len(), "{job}");
    for other in ["ready", "running", "failed", "skipped"] {
        assert_eq!(job["node_states"][other], 0, "{job}");
    }
    let page = server.get_json(&format!(
        "/orchestrator/v1/jobs/{name}/nodes?state=finished&limit=7&offset=3"
    ));
    let got: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = names[3..10].iter().map(String::as_str).collect();
    assert_eq!(got, want);
    assert_eq!(page["pagination"]["total"], names.len());
    let none = server.get_json(&format!("/orchestrator/v1/jobs/{name}/nodes?state=failed"));
    assert_eq!(none["pagination"]["total"], 0);
    assert_eq!(none["items"], json!([]));
    let nodes = all_nodes(server, name);
    assert_eq!(nodes.len(), names.len());
    let states: BTreeMap<&str, &str> = nodes
        .iter()
        .map(|n| (n["name"].as_str().unwrap(), n["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states.len(), names.len(), "a node is listed twice");
    for n in names {
        assert_eq!(states.get(n.as_str()), Some(&"finished"), "node {n}");
    }
    let events = all_events(server, name);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["id"], (i + 1).to_string(), "gap before event {}", i + 1);
    }
    let mut ends: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for e in &events {
        let kind = e["type"].as_str().unwrap();
        if kind.starts_with("node_") && kind != "node_running" {
            ends.entry(e["details"]["node"].as_str().unwrap_or_default())
                .or_default()
                .push(kind);
        }
    }
    for n in names {
        assert_eq!(
            ends.get(n.as_str()).map(Vec::as_slice),
            Some(&["node_finished"][..]),
            "end events of {n}"
        );
    }
    assert_eq!(events.last().unwrap()["type"], "job_finished");
}
