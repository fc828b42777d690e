//! The job engine through a real handler (`tests/components/jobber`): exec
//! of real processes, the allow-list, cancel, graphs in order within their
//! limit, rollback in reverse, retries, and `kill -9` in the middle of work.

mod support;

use serde_json::{Value, json};
use std::collections::BTreeMap;
use support::*;

fn jobber_manifest(max_running_jobs: u32) -> String {
    let wasm = test_components().join("jobber.wasm");
    manifest(&format!(
        "[jobs]\nretry_backoff_ms = 20\n\n[[handler]]\nname = \"jobber\"\nwasm = \"{}\"\nmount = \"/jobber\"\npolicy = \"public\"\n\
         [handler.capabilities]\nexec = [\"sh\", \"sleep\"]\n[handler.limits]\nmax_running_jobs = {max_running_jobs}\n",
        wasm.display()
    ))
}

fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let resp = client().post(server.url(path)).json(&body).send().unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn spawn(server: &Server, spec: Value) -> String {
    let (status, body) = post(server, "/jobber/spawn", spec);
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().unwrap().to_string()
}

fn job(server: &Server, id: &str) -> Value {
    client()
        .get(server.url(&format!("/jobber/jobs/{id}")))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

fn events(server: &Server, id: &str) -> Vec<Value> {
    let v: Value = client()
        .get(server.url(&format!("/jobber/jobs/{id}/events")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v.as_array().unwrap().clone()
}

/// Polls until `pred` holds for job `id` ([`poll`]).
fn wait_for(server: &Server, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    poll(&format!("job {id} to become {what}"), || {
        let j = job(server, id);
        if pred(&j) { Ok(j) } else { Err(j.to_string()) }
    })
}

fn is_final(j: &Value) -> bool {
    !matches!(j["state"].as_str(), Some("queued" | "running"))
}

fn wait_final(server: &Server, id: &str) -> Value {
    wait_for(server, id, "final", is_final)
}

fn exec_spec(program: &str, args: &[&str]) -> Value {
    json!({"kind": "exec", "input": {"program": program, "args": args}})
}

#[test]
fn a_failing_command_is_reported_with_its_output_and_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &jobber_manifest(4));
    let id = spawn(
        &server,
        exec_spec("sh", &["-c", "echo to-stdout; echo to-stderr >&2; exit 3"]),
    );
    let j = wait_final(&server, &id);
    assert_eq!(j["state"], "failed", "{j}");
    assert!(
        j["error"].as_str().unwrap().contains("exit code Some(3)"),
        "{j}"
    );
    let evs = events(&server, &id);
    let has = |kind: &str, msg: &str| {
        evs.iter()
            .any(|e| e["kind"] == kind && e["message"].as_str().unwrap().contains(msg))
    };
    assert!(has("exec", "sh -c"), "{evs:?}");
    assert!(has("stdout", "to-stdout"), "{evs:?}");
    assert!(has("stderr", "to-stderr"), "{evs:?}");
    assert!(has("exit", "exit code 3"), "{evs:?}");
    assert!(has("failed", "attempt 1 failed"), "{evs:?}");
    // Events are numbered 1, 2, 3… and start with `queued`.
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1);
    }
    assert_eq!(evs[0]["kind"], "queued");

    // The environment is only what the job gave.
    let id = spawn(
        &server,
        json!({"kind": "exec", "input": {"program": "sh", "args": ["-c", "echo ${HOME:-none} $ONLY"], "env": {"ONLY": "given"}}}),
    );
    let j = wait_final(&server, &id);
    assert_eq!(j["state"], "succeeded", "{j}");
    let out: Value = serde_json::from_str(j["output"].as_str().unwrap()).unwrap();
    assert_eq!(out["stdout"], "none given\n");
}

#[test]
fn commands_outside_the_allow_list_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &jobber_manifest(4));
    for program in ["rm", "/bin/sh", "bash", "sh -c"] {
        let id = spawn(&server, exec_spec(program, &["-rf", "/tmp/nothing"]));
        let j = wait_final(&server, &id);
        assert_eq!(j["state"], "failed");
        assert!(
            j["error"].as_str().unwrap().contains("allow-list"),
            "{program}: {j}"
        );
    }
}

fn processes_with_arg(arg: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| c.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
        .count()
}

#[test]
fn cancel_stops_a_running_command_and_its_process() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &jobber_manifest(4));
    // A distinctive duration lets the test find the process.
    let marker = "61.2345";
    let id = spawn(
        &server,
        exec_spec("sh", &["-c", &format!("sleep {marker}; echo never")]),
    );
    wait_for(&server, &id, "running its command", |_| {
        processes_with_arg(marker) > 0
    });
    let resp = client()
        .post(server.url(&format!("/jobber/jobs/{id}/cancel")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    let j = wait_final(&server, &id);
    assert_eq!(j["state"], "cancelled", "{j}");
    assert_eq!(processes_with_arg(marker), 0, "the sleep outlived its job");
    // Cancelling again is a conflict; unknown ids are 404.
    let resp = client()
        .post(server.url(&format!("/jobber/jobs/{id}/cancel")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 409);
    let resp = client()
        .post(server.url("/jobber/jobs/nope/cancel"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[test]
fn a_graph_runs_in_dependency_order_within_its_parallel_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &jobber_manifest(8));
    let step = |name: &str, after: &[&str]| json!({"kind": "step", "node": name, "after": after, "input": {"name": name, "sleep": "0.1"}});
    let specs = vec![
        step("a1", &[]),
        step("a2", &[]),
        step("a3", &[]),
        step("b1", &["a1", "a2"]),
        step("b2", &["a3"]),
        step("c", &["b1", "4"]),
    ];
    let (status, body) = post(
        &server,
        "/jobber/graph",
        json!({"specs": specs, "parallel": 2, "rollback": false}),
    );
    assert_eq!(status, 202, "{body}");
    for id in body["ids"].as_array().unwrap() {
        let j = wait_final(&server, id.as_str().unwrap());
        assert_eq!(j["state"], "succeeded", "{j}");
    }
    let order: BTreeMap<String, String> = client()
        .get(server.url("/jobber/order"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let at = |k: &str| -> u64 { order[k].parse().unwrap() };
    for (child, parents) in [
        ("b1", vec!["a1", "a2"]),
        ("b2", vec!["a3"]),
        ("c", vec!["b1", "b2"]),
    ] {
        for p in parents {
            assert!(
                at(&format!("end:{p}")) < at(&format!("start:{child}")),
                "{child} started before {p} ended: {order:?}"
            );
        }
    }
    let names = ["a1", "a2", "a3", "b1", "b2", "c"];
    let intervals: Vec<(u64, u64)> = names
        .iter()
        .map(|n| (at(&format!("start:{n}")), at(&format!("end:{n}"))))
        .collect();
    for &(s, _) in &intervals {
        let overlapping = intervals.iter().filter(|&&(a, b)| a <= s && s <= b).count();
        assert!(overlapping <= 2, "more than 2 steps ran at once: {order:?}");
    }
    // Invalid graphs are refused before anything runs.
    let bad = [
        (
            json!([{"kind": "step", "node": "x", "after": ["ghost"]}]),
            "ghost",
        ),
        (
            json!([{"kind": "step", "node": "x", "after": ["y"]}, {"kind": "step", "node": "y", "after": ["x"]}]),
            "cycle",
        ),
    ];
    for (specs, says) in bad {
        let (status, body) = post(
            &server,
            "/jobber/graph",
            json!({"specs": specs, "parallel": 1, "rollback": false}),
        );
        assert_eq!(status, 400, "{body}");
        assert!(body["error"].as_str().unwrap().contains(says), "{body}");
    }
    let all: Value = client()
        .get(server.url("/jobber/jobs?kind=step"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        all.as_array().unwrap().len(),
        6,
        "nothing of the invalid graphs was queued"
    );
}

#[test]
fn a_failed_graph_rolls_back_completed_jobs_in_reverse_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &jobber_manifest(8));
    let specs = json!([
        {"kind": "step", "node": "a", "input": {"name": "a"}},
        {"kind": "step", "node": "b", "after": ["a"], "input": {"name": "b"}},
        {"kind": "step", "node": "c", "after": ["b"], "input": {"name": "c", "fail": true}},
        {"kind": "step", "node": "d", "after": ["c"], "input": {"name": "d"}},
    ]);
    let (status, body) = post(
        &server,
        "/jobber/graph",
        json!({"specs": specs, "parallel": 1, "rollback": true}),
    );
    assert_eq!(status, 202, "{body}");
    let ids: Vec<String> = body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let a = wait_for(&server, &ids[0], "rolled back", |j| {
        j["state"] == "rolled-back"
    });
    assert_eq!(a["state"], "rolled-back");
    assert_eq!(job(&server, &ids[1])["state"], "rolled-back");
    assert_eq!(job(&server, &ids[2])["state"], "failed");
    assert_eq!(job(&server, &ids[3])["state"], "cancelled", "d never ran");
    let order: BTreeMap<String, String> = client()
        .get(server.url("/jobber/order"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(order["rollback:0001"], "b");
    assert_eq!(order["rollback:0002"], "a");
    assert!(!order.contains_key("start:d"));
    let evs = events(&server, &ids[0]);
    assert!(evs.iter().any(|e| e["kind"] == "rollback-started"));
    assert_eq!(evs.last().unwrap()["kind"], "rolled-back");
}

#[test]
fn failed_attempts_are_retried_and_traps_fail_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &jobber_manifest(4));
    let id = spawn(&server, json!({"kind": "flaky", "attempts": 2}));
    let j = wait_final(&server, &id);
    assert_eq!(j["state"], "succeeded", "{j}");
    assert_eq!(j["attempts"], 2);
    assert!(events(&server, &id).iter().any(|e| e["kind"] == "retry"));
    let id = spawn(&server, json!({"kind": "flaky", "attempts": 1}));
    assert_eq!(wait_final(&server, &id)["state"], "failed");
    let id = spawn(&server, json!({"kind": "trap"}));
    let j = wait_final(&server, &id);
    assert_eq!(j["state"], "failed");
    assert!(j["error"].as_str().unwrap().contains("trapped"), "{j}");
    // A job past its timeout is stopped.
    let id = spawn(
        &server,
        json!({"kind": "exec", "timeout_ms": 300, "input": {"program": "sleep", "args": ["30"]}}),
    );
    let j = wait_final(&server, &id);
    assert_eq!(j["state"], "failed", "{j}");
    // Bad specs are refused.
    let (status, body) = post(&server, "/jobber/spawn", json!({"kind": ""}));
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(
        &server,
        "/jobber/spawn",
        json!({"kind": "quick", "after": ["nope"]}),
    );
    assert_eq!(status, 400, "{body}");
    let (status, _) = post(
        &server,
        "/jobber/spawn",
        json!({"kind": "quick", "attempts": 1000}),
    );
    assert_eq!(status, 400);
}

#[test]
fn kill_9_in_the_middle_of_100_jobs_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let m = jobber_manifest(8);
    let server = Server::start(dir.path(), &m);
    let ids: Vec<String> = (0..100)
        .map(|i| {
            spawn(
                &server,
                json!({"kind": "exec", "attempts": 3, "labels": {"n": i.to_string()},
                "input": {"program": "sh", "args": ["-c", "sleep 0.2; echo done"]}}),
            )
        })
        .collect();
    // Some are running (and some finished) when the server dies.
    wait_for(&server, &ids[0], "started", |j| j["state"] != "queued");
    server.kill9();
    let server = Server::start(dir.path(), &m);
    let mut interrupted = 0;
    for id in &ids {
        let j = wait_final(&server, id);
        assert_eq!(j["state"], "succeeded", "{j}");
        let evs = events(&server, id);
        for (i, e) in evs.iter().enumerate() {
            assert_eq!(e["seq"], i as u64 + 1, "gap in the events of {id}: {evs:?}");
        }
        assert_eq!(evs[0]["kind"], "queued");
        assert_eq!(evs.last().unwrap()["kind"], "succeeded", "{evs:?}");
        if evs.iter().any(|e| e["kind"] == "interrupted") {
            interrupted += 1;
            assert!(j["attempts"].as_u64().unwrap() >= 2, "{j}");
        }
    }
    assert!(interrupted >= 1, "the kill came while no job ran");
    server.wait_log("recovered jobs interrupted");
}

#[test]
fn the_admin_api_and_baton_jobs_see_and_cancel_every_job() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &jobber_manifest(4));
    let quick = spawn(
        &server,
        json!({"kind": "quick", "input": {"hello": "world"}, "labels": {"team": "ops"}}),
    );
    let marker = "62.3456";
    let slow = spawn(&server, exec_spec("sleep", &[marker]));
    wait_final(&server, &quick);
    wait_for(&server, &slow, "running its command", |_| {
        processes_with_arg(marker) > 0
    });

    let admin = server.client();
    let list: Value = admin
        .get(server.url("/admin/v1/jobs?handler=jobber"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [quick.as_str(), slow.as_str()]);
    let one: Value = admin
        .get(server.url(&format!("/admin/v1/jobs/{quick}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(one["state"], "succeeded");
    assert_eq!(one["input"], json!({"hello": "world"}));
    assert_eq!(one["labels"], json!({"team": "ops"}));
    let resp = admin
        .get(server.url("/admin/v1/jobs?state=bogus"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = admin.get(server.url("/admin/v1/jobs/nope")).send().unwrap();
    assert_eq!(resp.status(), 404);
    let resp = server
        .anonymous()
        .get(server.url("/admin/v1/jobs"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);

    // The CLI signs its own admin token from the data directory.
    let url = server.base.clone();
    let (ok, out, err) = server.cli(&["jobs", "list", "--server", &url], None);
    assert!(ok, "{err}");
    assert!(out.contains(&quick) && out.contains(&slow), "{out}");
    let (ok, out, err) = server.cli(&["jobs", "show", &quick, "--wait", "--server", &url], None);
    assert!(ok, "{err}");
    assert!(
        out.contains("queued") && out.contains(&format!("job {quick} succeeded")),
        "{out}"
    );
    let (ok, out, _) = server.cli(&["jobs", "cancel", &slow, "--wait", "--server", &url], None);
    assert!(!ok, "a cancelled job is not a success");
    assert!(
        out.contains("cancel-requested") && out.contains(&format!("job {slow} cancelled")),
        "{out}"
    );
    assert_eq!(processes_with_arg(marker), 0);
    let resp = admin
        .post(server.url(&format!("/admin/v1/jobs/{slow}/cancel")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 409);
    let (ok, _, err) = server.cli(&["jobs", "show", "nope", "--server", &url], None);
    assert!(!ok);
    assert!(err.contains("404"), "{err}");
}

#[test]
fn many_trivial_jobs_at_once_all_finish() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = test_components().join("jobber.wasm");
    let m = manifest(&format!(
        "[jobs]\nmax_running = 64\n[[handler]]\nname = \"jobber\"\nwasm = \"{}\"\nmount = \"/jobber\"\npolicy = \"public\"\n\
         [handler.limits]\nmax_running_jobs = 64\n",
        wasm.display()
    ));
    let server = Server::start(dir.path(), &m);
    let ids: Vec<String> = (0..200)
        .map(|_| spawn(&server, json!({"kind": "quick"})))
        .collect();
    for id in &ids {
        assert_eq!(wait_final(&server, id)["state"], "succeeded");
    }
}
