//! The job engine at fleet scale, through the real orchestrator and jobber
//! handlers: a 2,000-node deploy ends with one final state per node and
//! gapless events; the global, per-handler and per-graph limits are never
//! exceeded; `kill -9` during a deploy or a batch is never a failure; every
//! acknowledged kv write survives `kill -9` under 8 concurrent writers.

#[path = "support/orchestrator.rs"]
mod orchestrator;
mod support;
#[path = "support/tracked.rs"]
mod tracked;

use orchestrator::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use support::*;
use tracked::*;

#[test]
fn a_2000_node_deploy_ends_with_one_final_state_per_node_and_gapless_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &manifest_with_agent(r#"["sh", "-c", "echo ok $1", "agent", "{node}"]"#),
    );
    let names = node_names(2000);
    let name = deploy(
        &server,
        json!({"environment": "production", "scope": {"nodes": names}}),
    );
    let job = wait_final_counting(&server, &name, 2000);
    assert_eq!(job["state"], "finished", "{job}");
    assert_eq!(job["node_count"], 2000);
    assert_every_node_finished_once(&server, &name, &names);
}

#[test]
fn global_per_handler_and_per_graph_limits_are_never_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let track = dir.path().join("track");
    // Three handlers allowing 3 each (9), under a global limit of 5.
    let server = Server::start(
        dir.path(),
        &manifest(&format!(
            "[jobs]\nmax_running = 5\n\n{}{}{}",
            jobber("one", 3),
            jobber("two", 3),
            jobber("three", 3)
        )),
    );
    let global = tracked_dir(&track, "global");
    let per_handler = tracked_dir(&track, "one");
    let graph = tracked_dir(&track, "graph");
    let mut ids = Vec::new();
    for mount in ["one", "two", "three"] {
        for _ in 0..12 {
            let body = post_ok(&server, &format!("/{mount}/spawn"), tracked_spec(&global));
            ids.push((mount, body["id"].as_str().unwrap().to_string()));
        }
    }
    for (mount, id) in &ids {
        wait_succeeded(&server, mount, id);
    }
    assert_eq!(
        max_at_once(&global),
        5,
        "the global limit (5) was not reached or was exceeded"
    );

    // One handler alone: its own limit (3) holds, and is reached.
    let ids: Vec<String> = (0..12)
        .map(|_| {
            post_ok(&server, "/one/spawn", tracked_spec(&per_handler))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for id in &ids {
        wait_succeeded(&server, "one", id);
    }
    assert_eq!(max_at_once(&per_handler), 3, "the per-handler limit (3)");

    // Two graphs of 10 with a parallel limit of 2 each, in handler `two`.
    let g1 = tracked_dir(&graph, "g1");
    let g2 = tracked_dir(&graph, "g2");
    let mut ids = Vec::new();
    for g in [&g1, &g2] {
        let specs: Vec<Value> = (0..10)
            .map(|i| {
                let mut spec = tracked_spec(g);
                spec["node"] = json!(format!("n{i}"));
                spec
            })
            .collect();
        let body = post_ok(
            &server,
            "/two/graph",
            json!({"specs": specs, "parallel": 2, "rollback": false}),
        );
        for id in body["ids"].as_array().unwrap() {
            ids.push(id.as_str().unwrap().to_string());
        }
    }
    for id in &ids {
        wait_succeeded(&server, "two", id);
    }
    assert_eq!(max_at_once(&g1), 2, "graph 1's parallel limit (2)");
    assert_eq!(max_at_once(&g2), 2, "graph 2's parallel limit (2)");
}

/// An orchestrator whose agent command takes 20 ms, so that a kill lands
/// while nodes run.
fn slow_agent_manifest() -> String {
    manifest_with_agent(r#"["sh", "-c", "sleep 0.02; echo ok $1", "agent", "{node}"]"#)
}

#[test]
fn kill_9_during_a_2000_node_deploy_resumes_and_the_job_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let m = slow_agent_manifest();
    let server = Server::start(dir.path(), &m);
    let names = node_names(2000);
    let name = deploy(
        &server,
        json!({"environment": "production", "scope": {"nodes": names}}),
    );
    wait_job(&server, &name, "part done", |j| {
        j["node_states"]["finished"].as_u64().unwrap_or(0) >= 100
    });
    server.kill9();

    let server = Server::start(dir.path(), &m);
    let job = wait_final_counting(&server, &name, 2000);
    assert_eq!(job["state"], "finished", "{job}");
    assert_every_node_finished_once(&server, &name, &names);
    let again = all_events(&server, &name)
        .iter()
        .filter(|e| {
            e["type"] == "node_running"
                && e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("interrupted by a restart")
        })
        .count();
    assert!(again >= 1, "no node was running when the server was killed");
}

#[test]
fn every_acknowledged_kv_write_survives_kill_9_under_8_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest_with_agent(r#"["sh", "-c", "true"]"#);
    let server = Server::start(dir.path(), &m);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let c = server.client();
            let base = server.url("/orchestrator/v1/inventory/nodes/");
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let node = format!("w{w}-n{i}");
                    let sent = c
                        .put(format!("{base}{node}"))
                        .json(&json!({"facts": {"writer": w, "seq": i}}))
                        .send();
                    match sent {
                        Ok(r) if r.status().is_success() => acked.push((node, i)),
                        _ => break, // the server died mid-request: not acknowledged
                    }
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    server.kill9();
    stop.store(true, Ordering::SeqCst);
    let acked: Vec<(String, u64)> = writers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(
        acked.len() >= 8,
        "only {} writes were acknowledged",
        acked.len()
    );

    let server = Server::start(dir.path(), &m);
    let c = server.client();
    for (node, seq) in &acked {
        let r = c
            .get(server.url(&format!("/orchestrator/v1/inventory/nodes/{node}")))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "acknowledged write of {node} lost");
        let v: Value = r.json().unwrap();
        assert_eq!(v["facts"]["seq"], *seq, "{v}");
    }
}
