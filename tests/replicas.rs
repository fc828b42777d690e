//! Several `baton serve` replicas on one PostgreSQL database (a private
//! server, tests/support/postgres.rs), each with its own data directory:
//! one state and one token for all; a deploy, a user change and a
//! revocation on one reach the other within 2 s; `kill -9` of the replica
//! running a 300-node deploy leaves it to the other, which finishes it with
//! every node once and gapless events; limits hold across replicas; a
//! force stop through one replica ends the run in progress on the other; a
//! schedule made through one fires once per tick, and on the other after
//! `kill -9` of the first.

#[path = "support/orchestrator.rs"]
mod orch;
#[path = "support/scheduler.rs"]
mod scheduler;
mod support;
#[path = "support/tracked.rs"]
mod tracked;

use orch::*;
use scheduler::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;
use tracked::*;

/// The orchestrator (agent `agent`) and greeter v1 (from `dir`), keeping
/// state at `url` with a lease of `lease_ms`.
fn replica_manifest(dir: &Path, url: &str, agent: &str, lease_ms: u64) -> String {
    let greeter = dir.join("greeter.wasm");
    if !greeter.exists() {
        std::fs::copy(test_components().join("greeter_v1.wasm"), &greeter).unwrap();
    }
    format!(
        "{}\n[[handler]]\nname = \"greeter\"\nwasm = \"{}\"\nmount = \"/greeter\"\npolicy = \"public\"\n\
         \n[storage]\nurl = \"{url}\"\nlease_ms = {lease_ms}\n",
        manifest_with_agent(agent),
        greeter.display()
    )
}

const QUICK_AGENT: &str = r#"["sh", "-c", "echo ran $1", "agent", "{node}"]"#;

/// Two replicas of one database: (their dirs, A, B).
fn two_replicas(agent: &str, lease_ms: u64) -> (tempfile::TempDir, Server, Server) {
    let url = support::postgres::database();
    let root = tempfile::tempdir().unwrap();
    let manifest = replica_manifest(root.path(), &url, agent, lease_ms);
    let (a, b) = start_two(root.path(), &manifest);
    (root, a, b)
}

/// Replicas A and B of `manifest`, with data directories `a` and `b` in
/// `root`.
fn start_two(root: &Path, manifest: &str) -> (Server, Server) {
    let (a_dir, b_dir) = (root.join("a"), root.join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    (
        Server::start(&a_dir, manifest),
        Server::start(&b_dir, manifest),
    )
}

/// Polls `check` every 50 ms for at most `limit`; how long it took.
fn within(limit: Duration, what: &str, mut check: impl FnMut() -> Result<(), String>) -> Duration {
    let start = Instant::now();
    loop {
        match check() {
            Ok(()) => return start.elapsed(),
            Err(last) if start.elapsed() > limit => {
                panic!("{what} did not happen within {limit:?}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn greeter_version(server: &Server) -> String {
    let v: Value = server
        .client()
        .get(server.url("/greeter/hello"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["version"].as_str().unwrap_or_default().to_string()
}

#[test]
fn two_replicas_serve_one_state_and_accept_each_others_tokens() {
    let (_root, a, b) = two_replicas(QUICK_AGENT, 10_000);
    // Each replica has its own id, kept in its data directory.
    let id = |s: &Server| std::fs::read_to_string(s.data.join("replica-id")).unwrap();
    assert_ne!(id(&a), id(&b));
    // A user made on A signs in on B; A's token works on B.
    a.put_user(
        "ann",
        json!({"password": "ann-password", "roles": ["viewer"]}),
    );
    assert_eq!(
        b.get_json("/admin/v1/users/ann")["roles"],
        json!(["viewer"])
    );
    let token = a.admin_token();
    let on_b = b.client_with_token(&token);
    let resp = on_b
        .get(b.url("/orchestrator/v1/inventory"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // A deploy through A is read through B; job names go on across replicas.
    let first = deploy(
        &a,
        json!({"environment": "production", "scope": {"nodes": ["n1", "n2"]}}),
    );
    assert_eq!(wait_final(&b, &first)["state"], "finished");
    let second = deploy(
        &b,
        json!({"environment": "production", "scope": {"nodes": ["n1"]}}),
    );
    assert_eq!(
        second.parse::<u64>().unwrap(),
        first.parse::<u64>().unwrap() + 1
    );
    assert_eq!(wait_final(&a, &second)["state"], "finished");
    assert_eq!(events(&a, &second), events(&b, &second));
}

#[test]
fn a_deploy_a_role_change_and_a_revocation_on_one_replica_reach_the_other_within_2_s() {
    let (_root, a, b) = two_replicas(QUICK_AGENT, 10_000);
    assert_eq!(greeter_version(&b), "v1");
    // A new version deployed through A is served by B.
    let v2 = std::fs::read(test_components().join("greeter_v2.wasm")).unwrap();
    let resp = a
        .client()
        .put(a.url("/admin/v1/handlers/greeter"))
        .body(v2)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let took = within(
        Duration::from_secs(2),
        "B serving v2",
        || match greeter_version(&b).as_str() {
            "v2" => Ok(()),
            other => Err(other.to_string()),
        },
    );
    eprintln!("B served the new version after {took:?}");
    // Rolled back on B: A serves v1 again.
    let resp = b
        .client()
        .post(b.url("/admin/v1/handlers/greeter/rollback"))
        .json(&json!({}))
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text());
    within(
        Duration::from_secs(2),
        "A serving v1 again",
        || match greeter_version(&a).as_str() {
            "v1" => Ok(()),
            other => Err(other.to_string()),
        },
    );

    // A user B has already read (and keeps parsed) loses a role on A.
    a.put_user(
        "ops",
        json!({"password": "ops-password", "roles": ["admin"]}),
    );
    let ops = b.token("ops");
    let on_b = b.client_with_token(&ops);
    let users = || on_b.get(b.url("/admin/v1/users")).send().unwrap().status();
    assert_eq!(users(), 200);
    a.put_user(
        "ops",
        json!({"password": "ops-password", "roles": ["viewer"]}),
    );
    within(
        Duration::from_secs(2),
        "B refusing the demoted user",
        || match users().as_u16() {
            403 => Ok(()),
            other => Err(other.to_string()),
        },
    );

    // A token revoked through A is refused by B.
    let token = a.token("admin");
    let on_b = b.client_with_token(&token);
    let inventory = || {
        on_b.get(b.url("/orchestrator/v1/inventory"))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(inventory(), 200);
    let resp = a
        .client()
        .post(a.url("/admin/v1/tokens/revoke"))
        .json(&json!({"token": token}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    within(
        Duration::from_secs(2),
        "B refusing the revoked token",
        || match inventory() {
            401 => Ok(()),
            other => Err(other.to_string()),
        },
    );
}

#[test]
fn kill_9_of_the_replica_running_a_300_node_deploy_leaves_it_to_the_other() {
    // 100 ms per node, 16 at once: the deploy takes seconds.
    let agent = r#"["sh", "-c", "sleep 0.1; echo ok $1", "agent", "{node}"]"#;
    let (_root, a, b) = two_replicas(agent, 2_000);
    let names = node_names(300);
    let name = deploy(
        &a,
        json!({"environment": "production", "scope": {"nodes": names}}),
    );
    wait_job(&b, &name, "part done", |j| {
        j["node_states"]["finished"].as_u64().unwrap_or(0) >= 30
    });
    a.kill9();
    let job = wait_final_counting(&b, &name, 300);
    assert_eq!(job["state"], "finished", "{job}");
    assert_every_node_finished_once(&b, &name, &names);
    b.wait_log("took over the work of replicas whose lease ran out");
    // B goes on serving new work.
    let next = deploy(
        &b,
        json!({"environment": "production", "scope": {"nodes": ["n1"]}}),
    );
    assert_eq!(wait_final(&b, &next)["state"], "finished");
}

#[test]
fn a_second_server_on_the_same_data_directory_is_refused() {
    let url = support::postgres::database();
    let root = tempfile::tempdir().unwrap();
    let manifest = replica_manifest(root.path(), &url, QUICK_AGENT, 10_000);
    let server = Server::start(root.path(), &manifest);
    let err = serve_fails(&[
        "--manifest",
        root.path().join("baton.toml").to_str().unwrap(),
        "--data",
        server.data.to_str().unwrap(),
    ]);
    assert!(
        err.contains("is already serving from") && err.contains("data directory of its own"),
        "{err}"
    );
}

#[test]
fn the_global_and_per_handler_limits_count_the_jobs_of_every_replica() {
    let url = support::postgres::database();
    let root = tempfile::tempdir().unwrap();
    let track = root.path().join("track");
    // Two handlers allowing 3 each under a global limit of 4, on each
    // replica: without limits across replicas, 8 and 6 would run at once.
    let m = format!(
        "{}\n[storage]\nurl = \"{url}\"\n",
        manifest(&format!(
            "[jobs]\nmax_running = 4\n\n{}{}",
            jobber("one", 3),
            jobber("two", 3)
        ))
    );
    let (a_dir, b_dir) = (root.path().join("a"), root.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let a = Server::start(&a_dir, &m);
    let b = Server::start(&b_dir, &m);
    let spawn_all = |mounts: &[&str], dir: &Path| {
        let mut ids = Vec::new();
        for i in 0..12 {
            for mount in mounts {
                let server = if i % 2 == 0 { &a } else { &b };
                let body = post_ok(server, &format!("/{mount}/spawn"), tracked_spec(dir));
                ids.push((mount.to_string(), body["id"].as_str().unwrap().to_string()));
            }
        }
        for (mount, id) in &ids {
            wait_succeeded(&a, mount, id);
        }
    };
    let global = tracked_dir(&track, "global");
    spawn_all(&["one", "two"], &global);
    assert_eq!(
        max_at_once(&global),
        4,
        "the global limit (4) across replicas"
    );
    let one = tracked_dir(&track, "one");
    spawn_all(&["one"], &one);
    assert_eq!(
        max_at_once(&one),
        3,
        "the handler's limit (3) across replicas"
    );
}

#[test]
fn a_force_stop_through_one_replica_ends_the_run_in_progress_on_the_other() {
    let root = tempfile::tempdir().unwrap();
    let (gate, log) = (root.path().join("gate"), root.path().join("runs.log"));
    let (_dirs, a, b) = two_replicas(&gated_agent(&gate, &log), 10_000);
    let name = deploy(
        &a,
        json!({"environment": "production", "scope": {"nodes": ["n1", "n2"]}, "concurrency": 1}),
    );
    wait_running(&b, &name, 1);
    let (status, reply) = post(&b, "/command/stop", json!({"job": name, "force": true}));
    assert_eq!(status, 202, "{reply}");
    let j = wait_final(&b, &name);
    assert_eq!(j["state"], "stopped", "{j}");
    assert_eq!(
        (
            j["node_states"]["failed"].clone(),
            j["node_states"]["skipped"].clone()
        ),
        (json!(1), json!(1)),
        "{j}"
    );
    // The agent A ran was killed: opened now, the gate ends nothing.
    std::fs::write(&gate, "").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let runs = std::fs::read_to_string(&log).unwrap();
    assert!(runs.contains("start n1") && !runs.contains("end"), "{runs}");
}

/// A run-time schedule made through A fires once per tick while both
/// replicas serve (never once per replica), and B fires it after A is
/// killed. The count is bounded from above only (a slow machine fires
/// fewer ticks, never more), so no timing is asserted.
#[test]
fn a_schedule_made_on_one_replica_fires_on_the_other_after_a_kill_9() {
    let url = support::postgres::database();
    let root = tempfile::tempdir().unwrap();
    let manifest = schedules_manifest(&format!("\n[storage]\nurl = \"{url}\"\nlease_ms = 2000\n"));
    let (a, b) = start_two(root.path(), &manifest);

    const EVERY_MS: u64 = 500;
    let made = Instant::now();
    let resp = client()
        .put(a.url("/jobber/schedules/beat"))
        .json(&json!({"every_ms": EVERY_MS, "job": {"kind": "tick"}}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // At most one run per period (and the first at once), whichever
    // replica fires it.
    let at_most = |n: u64| {
        let periods = made.elapsed().as_millis() as u64 / EVERY_MS;
        assert!(
            n <= periods + 2,
            "{n} runs in {periods} periods: a tick fired more than once"
        );
    };
    // Both serve for longer than B's schedule re-read (every 10 s).
    std::thread::sleep(Duration::from_secs(12));
    let before_kill = ticks(&b, "beat");
    assert!(before_kill >= 1, "the schedule never fired");
    at_most(before_kill);

    a.kill9();
    let after_kill = ticks(&b, "beat");
    poll("B firing the schedule A made", || {
        let n = ticks(&b, "beat");
        if n >= after_kill + 3 {
            Ok(())
        } else {
            Err(format!("{n} runs, {after_kill} when A was killed"))
        }
    });
    at_most(ticks(&b, "beat"));
    let listed = b.get_json("/jobber/schedules");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "beat"),
        "{listed}"
    );
}
