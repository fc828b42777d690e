//! The cluster API's jobs over HTTPS: a host whose investigation fails,
//! deploys that move host by host (asserted on the recorded sequence of
//! states, released by the test one host at a time), a failing host that
//! stops a rollout, a cancelled run that does not block the next, and the
//! watcher's schedule that marks hosts inactive and active again.

mod support;

use serde_json::{Value, json};
use support::clusters::*;

#[test]
fn the_watcher_marks_a_host_inactive_while_it_does_not_answer_and_active_again() {
    let dir = tempfile::tempdir().unwrap();
    let down = dir.path().join("down");
    std::fs::create_dir(&down).unwrap();
    // A host "answers" unless a file named after it is in `down`.
    let investigate = format!(
        r#"["sh", "-c", "if [ -e {}/$1 ]; then echo \"ssh: connect to host $1 port 22: Connection timed out\" >&2; exit 255; fi; echo os=fedora; echo cpus=2; echo memory=2048; echo space=$(date +%s%N)", "investigate", "{{address}}"]"#,
        down.display()
    );
    // The shipped schedule, every second instead of every minute.
    let server = start(
        dir.path(),
        &[
            ("investigate_command", investigate),
            ("interval", "1s".into()),
        ],
    );
    setup_cluster(&server, "c");
    add_active_hosts(&server, "c", &["10.4.0.1", "10.4.0.2"]);
    let first = ok(&server, "GET", "/host/10.4.0.1", None, 200);
    let rechecked = wait_for(&server, "/host/10.4.0.1", "checked again", |h| {
        h["last_check"] != first["last_check"] && h["space"] != first["space"]
    });
    assert_eq!(rechecked["status"], "active");

    std::fs::write(down.join("10.4.0.2"), "").unwrap();
    let h = wait_for(&server, "/host/10.4.0.2", "inactive", |h| {
        h["status"] == "inactive"
    });
    let status = ok(&server, "GET", "/host/10.4.0.2/status", None, 200);
    assert_eq!(status["host"]["status"], "inactive", "{status}");
    assert_eq!(status["host"]["last_check"], h["last_check"]);
    let c = ok(&server, "GET", "/cluster/c", None, 200);
    assert_eq!(c["status"], "degraded", "{c}");
    assert_eq!(
        c["hosts"],
        json!({"total": 2, "available": 1, "unavailable": 1})
    );
    // A host that stays down is checked again (last_check moves on).
    wait_for(&server, "/host/10.4.0.2", "checked again while down", |x| {
        x["status"] == "inactive" && x["last_check"] != h["last_check"]
    });

    std::fs::remove_file(down.join("10.4.0.2")).unwrap();
    wait_for(&server, "/host/10.4.0.2", "active again", |h| {
        h["status"] == "active"
    });
    let c = ok(&server, "GET", "/cluster/c", None, 200);
    assert_eq!(c["status"], "ok", "{c}");
    server.wait_log("host 10.4.0.2 is inactive: `investigate_command` exited with code 255");
}

#[test]
fn a_host_whose_investigation_fails_ends_failed_with_the_reason_in_its_job() {
    let dir = tempfile::tempdir().unwrap();
    let investigate = r#"["sh", "-c", "echo \"ssh: connect to host $1 port 22: No route to host\" >&2; exit 255", "investigate", "{address}"]"#;
    let server = start(
        dir.path(),
        &[("investigate_command", investigate.to_string())],
    );
    setup_cluster(&server, "c");
    let h = ok(
        &server,
        "PUT",
        "/host/10.9.9.9",
        Some(json!({"ssh_priv_key": b64("K"), "cluster": "c"})),
        201,
    );
    assert_eq!(h["status"], "investigating");
    let h = wait_for(&server, "/host/10.9.9.9", "ended", |h| {
        !matches!(
            h["status"].as_str(),
            Some("investigating" | "bootstrapping")
        )
    });
    assert_eq!(h["status"], "failed", "{h}");
    assert_eq!(h["cpus"], -1);
    let job = server.get_json(&format!("/admin/v1/jobs/{}", h["job"].as_str().unwrap()));
    assert_eq!(job["state"], "failed");
    let events = serde_json::to_string(&job_events(&server, job["id"].as_str().unwrap())).unwrap();
    assert!(events.contains("No route to host"), "{events}");
    assert!(events.contains("exited with code 255"), "{events}");
    let c = ok(&server, "GET", "/cluster/c", None, 200);
    assert_eq!(
        c["hosts"],
        json!({"total": 1, "available": 0, "unavailable": 1})
    );
    assert_eq!(
        ok(&server, "GET", "/host/10.9.9.9/status", None, 200)["host"]["status"],
        "failed"
    );
}

#[test]
fn a_deploy_moves_host_by_host_and_a_second_one_meanwhile_is_409() {
    let dir = tempfile::tempdir().unwrap();
    let gates = dir.path().join("gates");
    std::fs::create_dir(&gates).unwrap();
    // Each host's deploy waits until the test drops a file named after it.
    let deploy = format!(
        r#"["sh", "-c", "while [ ! -e \"$1/$2\" ]; do sleep 0.02; done; echo deployed $3 on $2", "deploy", "{}", "{{address}}", "{{version}}"]"#,
        gates.display()
    );
    let server = start(dir.path(), &[("deploy_command", deploy)]);
    setup_cluster(&server, "c");
    let order = ["10.0.0.3", "10.0.0.1", "10.0.0.2"];
    add_active_hosts(&server, "c", &order);
    ok(
        &server,
        "PUT",
        "/cluster/c/deploy",
        Some(json!({"version": "7.2.6"})),
        201,
    );

    // Record every distinct (in_process, deployed) state seen while
    // releasing the hosts one by one.
    let mut seen: Vec<(Value, Value)> = Vec::new();
    let mut record = |s: &Value| {
        let state = (s["in_process"].clone(), s["deployed"].clone());
        if seen.last() != Some(&state) {
            seen.push(state);
        }
    };
    for (i, host) in order.iter().enumerate() {
        let s = wait_for(&server, "/cluster/c/deploy", "running the next host", |s| {
            s["in_process"] == json!([host])
        });
        record(&s);
        assert_eq!(s["deployed"], json!(order[..i]), "{s}");
        assert_eq!(s["status"], "in_process");
        assert!(s["finished_at"].is_null());
        if i == 0 {
            let e = ok(
                &server,
                "PUT",
                "/cluster/c/deploy",
                Some(json!({"version": "7.2.7"})),
                409,
            );
            assert!(e["error"].as_str().unwrap().contains("in process"), "{e}");
        }
        std::fs::write(gates.join(host), b"").unwrap();
        let s = wait_for(&server, "/cluster/c/deploy", "done with the host", |s| {
            s["deployed"].as_array().unwrap().len() == i + 1
        });
        record(&s);
    }
    let s = wait_for(&server, "/cluster/c/deploy", "finished", |s| {
        s["status"] != "in_process"
    });
    record(&s);
    assert_eq!(s["status"], "finished");
    assert!(s["finished_at"].is_string());
    // One host at a time, in member order; never two in process at once.
    for (in_process, deployed) in &seen {
        assert!(in_process.as_array().unwrap().len() <= 1, "{seen:?}");
        let n = deployed.as_array().unwrap().len();
        assert_eq!(deployed, &json!(order[..n]), "{seen:?}");
    }
    let mut started: Vec<Value> = seen.iter().filter_map(|(p, _)| p.get(0).cloned()).collect();
    started.dedup();
    assert_eq!(
        started,
        order.iter().map(|h| json!(h)).collect::<Vec<_>>(),
        "{seen:?}"
    );
    // And now a new deploy may start.
    ok(
        &server,
        "PUT",
        "/cluster/c/deploy",
        Some(json!({"version": "7.2.8"})),
        201,
    );
}

#[test]
fn a_failing_host_stops_the_rollout_and_a_cancelled_one_does_not_block_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let gates = dir.path().join("gates");
    std::fs::create_dir(&gates).unwrap();
    let deploy = r#"["sh", "-c", "if [ \"$1\" = 10.0.0.2 ]; then echo 'rpm-ostree: no such ref' >&2; exit 3; fi", "deploy", "{address}"]"#;
    let restart = format!(
        r#"["sh", "-c", "while [ ! -e \"$1/$2\" ]; do sleep 0.02; done", "restart", "{}", "{{address}}"]"#,
        gates.display()
    );
    let server = start(
        dir.path(),
        &[
            ("deploy_command", deploy.to_string()),
            ("restart_command", restart),
        ],
    );
    setup_cluster(&server, "c");
    let order = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];
    add_active_hosts(&server, "c", &order);

    ok(
        &server,
        "PUT",
        "/cluster/c/deploy",
        Some(json!({"version": "7.2.6"})),
        201,
    );
    let s = wait_for(&server, "/cluster/c/deploy", "ended", |s| {
        s["status"] != "in_process"
    });
    assert_eq!(s["status"], "failed", "{s}");
    assert_eq!(s["deployed"], json!(["10.0.0.1"]));
    assert_eq!(s["failed"], json!(["10.0.0.2"]));
    assert_eq!(s["in_process"], json!([]));
    assert!(s["finished_at"].is_string());
    let failed_job = s["jobs"][1].as_str().unwrap();
    let events = serde_json::to_string(&job_events(&server, failed_job)).unwrap();
    assert!(
        events.contains("no such ref") && events.contains("exited with code 3"),
        "{events}"
    );
    // The third host never ran.
    let third = server.get_json(&format!(
        "/admin/v1/jobs/{}",
        s["jobs"][2].as_str().unwrap()
    ));
    assert_eq!(third["state"], "cancelled", "{third}");

    // A restart whose running job is cancelled ends failed and frees the cluster.
    ok(&server, "PUT", "/cluster/c/restart", Some(json!({})), 201);
    let s = wait_for(&server, "/cluster/c/restart", "running", |s| {
        s["in_process"] == json!(["10.0.0.1"])
    });
    let id = s["jobs"][0].as_str().unwrap();
    ok(&server, "PUT", "/cluster/c/restart", Some(json!({})), 409);
    let resp = server
        .client()
        .post(server.url(&format!("/admin/v1/jobs/{id}/cancel")))
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text());
    let s = wait_for(&server, "/cluster/c/restart", "ended", |s| {
        s["status"] != "in_process"
    });
    assert_eq!(s["status"], "failed", "{s}");
    assert_eq!(s["restarted"], json!([]));
    assert_eq!(s["failed"], json!(["10.0.0.1"]));
    for a in order {
        std::fs::write(gates.join(a), b"").unwrap();
    }
    ok(&server, "PUT", "/cluster/c/restart", Some(json!({})), 201);
    let s = wait_for(&server, "/cluster/c/restart", "ended", |s| {
        s["status"] != "in_process"
    });
    assert_eq!(s["status"], "finished", "{s}");
    assert_eq!(s["restarted"], json!(order));
}
