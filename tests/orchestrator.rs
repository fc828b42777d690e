//! The orchestrator's commands over real HTTPS: the spec's curl calls
//! verbatim, noop and tasks, a failing node, stop, concurrency, a crash.
//! Node runs are real processes started through `exec`.

#[path = "support/orchestrator.rs"]
mod orch;
mod support;

use orch::*;
use serde_json::{Value, json};
use std::process::Command;
use support::*;

/// The three calls of specs/orchestrator.md, verbatim but for the address.
const SPEC_CALLS: [&str; 3] = [
    r#"curl -k -H "X-Authentication: $TOKEN" https://localhost:8143/orchestrator/v1/jobs"#,
    r#"curl -k -H "X-Authentication: $TOKEN" -H 'Content-Type: application/json' \
  -X POST https://localhost:8143/orchestrator/v1/command/deploy \
  -d '{"environment": "production", "scope": {"node_group": "00000000-0000-4000-8000-000000000000"}}'"#,
    r#"curl -k -H "X-Authentication: $TOKEN" https://localhost:8143/orchestrator/v1/jobs/81"#,
];

fn curl(call: &str, hostport: &str, token: &str) -> Value {
    let script = call.replace("localhost:8143", hostport);
    let out = Command::new("sh")
        .args(["-c", &script.replace("curl ", "/usr/bin/curl -sS ")])
        .env("TOKEN", token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn spec_curl_calls_deploy_to_all_nodes_and_the_job_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &shipped_manifest());
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let hostport = server.base.trim_start_matches("https://").to_string();
    add_nodes(&server, &["web-1.example.com", "db-1.example.com"]);
    let (ok, token, err) = server.cli(&["token"], None);
    assert!(ok, "{err}");
    let token = token.trim();

    let list = curl(SPEC_CALLS[0], &hostport, token);
    assert_eq!(list["items"], json!([]));
    assert_eq!(list["pagination"]["total"], 0);

    let reply = curl(SPEC_CALLS[1], &hostport, token);
    let url = format!("https://{hostport}/orchestrator/v1/jobs/1");
    assert_eq!(reply, json!({"job": {"id": url, "name": "1"}}));
    let reply = curl(SPEC_CALLS[1], &hostport, token);
    assert_eq!(reply["job"]["name"], "2", "names are sequential");

    // Follow the job URL (the third call, for this job's name) to the end.
    let third = SPEC_CALLS[2].replace("/jobs/81", "/jobs/1");
    let job = poll("the job to finish", || {
        let j = curl(&third, &hostport, token);
        assert_ne!(j["state"], "failed", "{j}");
        if j["state"] == "finished" {
            Ok(j)
        } else {
            Err(j.to_string())
        }
    });
    assert_eq!(job["id"], url);
    assert_eq!(job["type"], "deploy");
    assert_eq!(job["command"], "deploy");
    assert_eq!(job["environment"]["name"], "production");
    assert_eq!(job["options"]["environment"], "production");
    assert_eq!(job["options"]["scope"]["node_group"], ALL_NODES);
    assert_eq!(job["owner"]["login"], "admin");
    assert_eq!(job["node_count"], 2);
    assert_eq!(job["node_states"]["finished"], 2);
    let states: Vec<&str> = job["status"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["new", "running", "finished"]);
    assert!(job["finished_timestamp"].is_string());
    assert!(job["duration"].as_f64().unwrap() >= 0.0);
    for link in ["nodes", "report", "events"] {
        assert_eq!(job[link]["id"], format!("{url}/{link}"));
    }

    // Each node ran the shipped agent command: a real process, exit 0.
    let items = nodes(&server, "1");
    for n in ["web-1.example.com", "db-1.example.com"] {
        let item = node(&items, n);
        assert_eq!(item["state"], "finished");
        assert_eq!(item["result"]["exit_code"], 0);
        let out = item["result"]["output"].as_str().unwrap();
        assert!(
            out.contains("puppet agent run: changes are applied"),
            "{out}"
        );
        assert!(
            out.contains(&format!("ssh {n} puppet agent -t --environment production")),
            "{out}"
        );
        assert!(item["start_timestamp"].is_string() && item["duration"].is_number());
    }
    assert_events_complete_and_ordered(
        &events(&server, "1"),
        &["web-1.example.com", "db-1.example.com"],
        "job_finished",
    );
    let list = curl(SPEC_CALLS[0], &hostport, token);
    assert_eq!(list["pagination"]["total"], 2);
    assert_eq!(list["items"][0]["name"], "1");
}

#[test]
fn noop_and_tasks_reach_the_shipped_commands() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &shipped_manifest());
    let name = deploy(
        &server,
        json!({"environment": "staging", "noop": true, "scope": {"nodes": ["web-1"]}}),
    );
    assert_eq!(wait_final(&server, &name)["state"], "finished");
    let out = node(&nodes(&server, &name), "web-1")["result"]["output"].clone();
    let out = out.as_str().unwrap();
    assert!(out.contains("noop run: changes are only reported"), "{out}");
    assert!(out.contains("--environment staging --noop"), "{out}");
    assert_eq!(events(&server, &name)[1]["details"]["detail"]["noop"], true);

    let (status, reply) = post(
        &server,
        "/command/task",
        json!({"task": "package::install", "params": {"name": "nginx"},
               "scope": {"nodes": ["web-1", "web-2"]}, "description": "nginx everywhere"}),
    );
    assert_eq!(status, 202, "{reply}");
    let name = reply["job"]["name"].as_str().unwrap();
    let j = wait_final(&server, name);
    assert_eq!(j["state"], "finished", "{j}");
    assert_eq!(j["type"], "task");
    assert_eq!(j["options"]["task"], "package::install");
    assert_eq!(j["description"], "nginx everywhere");
    let out = node(&nodes(&server, name), "web-2")["result"]["output"].clone();
    let out = out.as_str().unwrap();
    assert!(out.contains("task package::install on node web-2"), "{out}");
    assert!(out.contains(r#"params: {"name":"nginx"}"#), "{out}");
    // Listing filters by type and by a part of the task's name.
    let tasks = server.get_json("/orchestrator/v1/jobs?type=task&task=install");
    assert_eq!(tasks["pagination"]["total"], 1);
    let deploys = server.get_json("/orchestrator/v1/jobs?type=deploy");
    assert_eq!(deploys["items"][0]["name"], "1");
    assert_eq!(deploys["pagination"]["total"], 1);
    // Finish-time filters take any RFC 3339 time, before 1970 too (such a
    // filter was refused as "not an RFC 3339 timestamp"; schemathesis).
    let since = server.get_json("/orchestrator/v1/jobs?min_finish_timestamp=1969-12-31T23:59:59Z");
    assert_eq!(since["pagination"]["total"], 2, "{since}");
    let until = server.get_json("/orchestrator/v1/jobs?max_finish_timestamp=0001-01-01T00:00:00Z");
    assert_eq!(until["pagination"]["total"], 0, "{until}");
}

#[test]
fn a_failing_node_fails_the_job_and_keeps_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let agent = r#"["sh", "-c", "echo agent on $1; if [ $1 = bad ]; then echo catalog broken >&2; exit 3; fi", "agent", "{node}"]"#;
    let server = Server::start(dir.path(), &manifest_with_agent(agent));
    let name = deploy(
        &server,
        json!({"environment": "production", "concurrency": 1,
               "scope": {"nodes": ["good-1", "bad", "good-2"]}}),
    );
    let j = wait_final(&server, &name);
    assert_eq!(j["state"], "failed", "{j}");
    assert_eq!(j["node_states"]["failed"], 1);
    assert_eq!(
        j["node_states"]["finished"], 2,
        "the other nodes still ran: {j}"
    );
    let items = nodes(&server, &name);
    let bad = node(&items, "bad");
    assert_eq!(bad["state"], "failed");
    assert_eq!(bad["result"]["exit_code"], 3);
    assert_eq!(bad["result"]["output"], "agent on bad\ncatalog broken\n");
    assert!(
        bad["details"]["message"]
            .as_str()
            .unwrap()
            .contains("exit code 3")
    );
    assert_eq!(
        node(&items, "good-2")["result"]["output"],
        "agent on good-2\n"
    );
    let failed = server.get_json(&format!("/orchestrator/v1/jobs/{name}/nodes?state=failed"));
    assert_eq!(failed["items"].as_array().unwrap().len(), 1);
    let evs = events(&server, &name);
    assert_events_complete_and_ordered(&evs, &["good-1", "bad", "good-2"], "job_finished");
    let failed_event = evs.iter().find(|e| e["type"] == "node_failed").unwrap();
    assert_eq!(failed_event["details"]["node"], "bad");
    assert_eq!(evs.last().unwrap()["details"]["detail"]["state"], "failed");

    // `start` resumes after what a follower saw; `next-events` says where.
    let tail = server.get_json(&format!("/orchestrator/v1/jobs/{name}/events?start=3"));
    let tail_items = tail["items"].as_array().unwrap();
    assert_eq!(tail_items[0]["id"], "3");
    assert_eq!(tail_items.len(), evs.len() - 2);
    let next = evs.len() + 1;
    assert_eq!(tail["next-events"]["event"], next.to_string());
    let more = server.get_json(&format!("/orchestrator/v1/jobs/{name}/events?start={next}"));
    assert_eq!(more["items"], json!([]));
    assert_eq!(more["next-events"]["event"], next.to_string());

    // The report: each node's state and its event ids.
    let report = server.get_json(&format!("/orchestrator/v1/jobs/{name}/report"));
    let bad_report = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["node"] == "bad")
        .unwrap()
        .clone();
    assert_eq!(bad_report["state"], "failed");
    let ids: Vec<&str> = evs
        .iter()
        .filter(|e| e["details"]["node"] == "bad")
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(bad_report["events"], json!(ids));
}

#[test]
fn stop_skips_the_nodes_not_started_and_lets_the_running_one_finish() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, log) = (dir.path().join("gate"), dir.path().join("runs.log"));
    let server = Server::start(dir.path(), &manifest_with_agent(&gated_agent(&gate, &log)));
    let name = deploy(
        &server,
        json!({"environment": "production", "concurrency": 1,
               "scope": {"nodes": ["n1", "n2", "n3", "n4"]}}),
    );
    wait_running(&server, &name, 1);
    let (status, reply) = post(&server, "/command/stop", json!({"job": name}));
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["job"]["state"], "stopping");
    assert_eq!(reply["job"]["nodes"]["skipped"], 3);
    assert_eq!(reply["job"]["nodes"]["running"], 1);
    assert_eq!(job(&server, &name)["state"], "stopping");

    std::fs::write(&gate, "").unwrap();
    let j = wait_final(&server, &name);
    assert_eq!(j["state"], "stopped", "{j}");
    assert_eq!(j["node_states"]["finished"], 1);
    assert_eq!(j["node_states"]["skipped"], 3);
    let items = nodes(&server, &name);
    let ran: Vec<&Value> = items.iter().filter(|n| n["state"] == "finished").collect();
    let ran_name = ran[0]["name"].as_str().unwrap().to_string();
    assert_eq!(ran[0]["result"]["output"], format!("ran {ran_name}\n"));
    for n in items.iter().filter(|n| n["state"] == "skipped") {
        assert!(
            n["result"].is_null() && n["start_timestamp"].is_null(),
            "{n}"
        );
        assert!(
            n["details"]["message"]
                .as_str()
                .unwrap()
                .contains("stopped")
        );
    }
    let evs = events(&server, &name);
    assert_events_complete_and_ordered(&evs, &["n1", "n2", "n3", "n4"], "job_aborted");
    assert!(evs.iter().any(|e| e["type"] == "job_stopping"));
    // Only the node that had started ever ran a process.
    let runs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(runs, format!("start {ran_name}\nend {ran_name}\n"));

    // Stopping again changes nothing; unknown and malformed jobs are refused.
    let (status, reply) = post(&server, "/command/stop", json!({"job": name}));
    assert_eq!(
        (status, reply["job"]["state"].clone()),
        (202, json!("stopped"))
    );
    let (status, reply) = post(&server, "/command/stop", json!({"job": "999"}));
    assert_eq!(status, 404);
    assert_eq!(reply["kind"], "puppetlabs.orchestrator/unknown-job");
    let (status, reply) = post(&server, "/command/stop", json!({"job": true}));
    assert_eq!(status, 400);
    assert!(reply["msg"].as_str().unwrap().contains("`job`"), "{reply}");
}

#[test]
fn concurrency_bounds_the_nodes_running_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, log) = (dir.path().join("gate"), dir.path().join("runs.log"));
    let server = Server::start(dir.path(), &manifest_with_agent(&gated_agent(&gate, &log)));
    let all: Vec<String> = (1..=6).map(|i| format!("n{i}")).collect();
    let name = deploy(
        &server,
        json!({"environment": "production", "concurrency": 2, "scope": {"nodes": all}}),
    );
    wait_running(&server, &name, 2);
    std::fs::write(&gate, "").unwrap();
    assert_eq!(wait_final(&server, &name)["state"], "finished");
    // Replay the processes' own start/end lines: never more than two at once.
    let runs = std::fs::read_to_string(&log).unwrap();
    let (mut now, mut most) = (0, 0);
    for line in runs.lines() {
        now += if line.starts_with("start") { 1 } else { -1 };
        most = most.max(now);
    }
    assert_eq!(runs.lines().count(), 12, "{runs}");
    assert_eq!(most, 2, "{runs}");
}

#[test]
fn a_run_interrupted_by_a_crash_runs_again_and_the_job_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, log) = (dir.path().join("gate"), dir.path().join("runs.log"));
    let manifest = manifest_with_agent(&gated_agent(&gate, &log));
    let server = Server::start(dir.path(), &manifest);
    let name = deploy(
        &server,
        json!({"environment": "production", "concurrency": 1,
               "scope": {"nodes": ["n1", "n2", "n3"]}}),
    );
    wait_running(&server, &name, 1);
    server.kill9();

    // A crash of the server is not a failure of the node: its run starts
    // again, the nodes not yet started still run, and the job finishes.
    let server = Server::start(dir.path(), &manifest);
    poll("the interrupted node to run again", || {
        let runs = std::fs::read_to_string(&log).unwrap();
        let starts = runs.lines().filter(|l| *l == "start n1").count();
        if starts == 2 { Ok(()) } else { Err(runs) }
    });
    std::fs::write(&gate, "").unwrap();
    let j = wait_final(&server, &name);
    assert_eq!(j["state"], "finished", "{j}");
    let items = nodes(&server, &name);
    assert!(items.iter().all(|n| n["state"] == "finished"), "{items:#?}");
    let evs = events(&server, &name);
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e["id"], (i + 1).to_string(), "{evs:#?}");
    }
    assert_eq!(evs.last().unwrap()["type"], "job_finished", "{evs:#?}");
    let of = |n: &str| -> Vec<&str> {
        evs.iter()
            .filter(|e| e["details"]["node"] == n)
            .map(|e| e["type"].as_str().unwrap())
            .collect()
    };
    assert_eq!(of("n1"), ["node_running", "node_running", "node_finished"]);
    assert_eq!(of("n2"), ["node_running", "node_finished"]);
    assert_eq!(of("n3"), ["node_running", "node_finished"]);
    assert!(
        evs.iter().any(|e| e["type"] == "node_running"
            && e["message"]
                .as_str()
                .unwrap()
                .contains("interrupted by a restart")),
        "{evs:#?}"
    );
    // The next job gets the next name (and runs through).
    std::fs::write(&gate, "").unwrap();
    let next = deploy(
        &server,
        json!({"environment": "production", "scope": {"nodes": ["n1"]}}),
    );
    assert_eq!(next, "2");
    assert_eq!(wait_final(&server, &next)["state"], "finished");
}

/// Rewrites job `name` in the stopped server's data directory the way the
/// handler before `crate::tally` stored it: no `indexed` flag, no tallies,
/// lists or per-node engine ids, one map of engine ids.
fn make_job_unindexed(data: &std::path::Path, name: &str) {
    let db = sled::open(data.join("db")).unwrap();
    let kv = db.open_tree("kv").unwrap();
    let key = |bucket: &str, k: &str| format!("orchestrator\0{bucket}\0{k}").into_bytes();
    let padded = format!("{:012}", name.parse::<u64>().unwrap());
    let mut record: Value =
        serde_json::from_slice(&kv.get(key("jobs", &padded)).unwrap().unwrap()).unwrap();
    assert_eq!(record["indexed"], true, "{record}");
    record.as_object_mut().unwrap().remove("indexed");
    kv.insert(key("jobs", &padded), serde_json::to_vec(&record).unwrap())
        .unwrap();
    let mut ids = serde_json::Map::new();
    for bucket in ["node-tallies", "node-states", "engine-id"] {
        let prefix = key(bucket, &format!("{padded}/"));
        for item in kv.scan_prefix(&prefix) {
            let (k, v) = item.unwrap();
            if bucket == "engine-id" {
                let node = String::from_utf8(k[prefix.len()..].to_vec()).unwrap();
                ids.insert(node, Value::String(String::from_utf8(v.to_vec()).unwrap()));
            }
            kv.remove(k).unwrap();
        }
    }
    assert_eq!(ids.len(), 3, "engine ids of the job's nodes");
    kv.insert(
        key("engine-ids", &padded),
        serde_json::to_vec(&ids).unwrap(),
    )
    .unwrap();
    db.flush().unwrap();
}

#[test]
fn a_job_stored_by_the_earlier_handler_still_runs_and_reads_right() {
    // A job in flight when the handler is upgraded was stored without
    // per-state tallies; it is changed and read the earlier way.
    let dir = tempfile::tempdir().unwrap();
    let (gate, log) = (dir.path().join("gate"), dir.path().join("runs.log"));
    let manifest = manifest_with_agent(&gated_agent(&gate, &log));
    let server = Server::start(dir.path(), &manifest);
    let name = deploy(
        &server,
        json!({"environment": "production", "concurrency": 1,
               "scope": {"nodes": ["n1", "n2", "n3"]}}),
    );
    wait_running(&server, &name, 1);
    server.kill9();
    make_job_unindexed(&dir.path().join("data"), &name);

    let server = Server::start(dir.path(), &manifest);
    let j = job(&server, &name);
    let counts = j["node_states"].as_object().unwrap();
    assert_eq!(
        counts.values().map(|v| v.as_u64().unwrap()).sum::<u64>(),
        3,
        "{j}"
    );
    std::fs::write(&gate, "").unwrap();
    let j = wait_final(&server, &name);
    assert_eq!(j["state"], "finished", "{j}");
    assert_eq!(j["node_states"]["finished"], 3, "{j}");
    let page = server.get_json(&format!(
        "/orchestrator/v1/jobs/{name}/nodes?state=finished&limit=1&offset=1"
    ));
    assert_eq!(page["items"][0]["name"], "n2", "{page}");
    assert_eq!(page["pagination"]["total"], 3, "{page}");
    let evs = events(&server, &name);
    assert_eq!(evs.last().unwrap()["type"], "job_finished", "{evs:#?}");
}
