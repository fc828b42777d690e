//! Schedules, against the real binary and a real handler
//! (`tests/components/jobber`, which schedules through `baton_sdk::jobs`
//! and counts each run of a scheduled `tick` job in kv): run-time schedules
//! fire, survive `kill -9`, run a missed tick once after downtime, never
//! run two of their jobs at once, and stop when removed; manifest
//! schedules follow the manifest and cannot be changed by the handler; bad
//! timings are refused with the reason.

#[path = "support/scheduler.rs"]
mod scheduler;
mod support;

use scheduler::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::*;

fn put(server: &Server, name: &str, body: Value) -> (u16, Value) {
    let resp = client()
        .put(server.url(&format!("/jobber/schedules/{name}")))
        .json(&body)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn delete(server: &Server, name: &str) -> (u16, Value) {
    let resp = client()
        .delete(server.url(&format!("/jobber/schedules/{name}")))
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn schedule(server: &Server, name: &str) -> Value {
    let all = server.get_json("/jobber/schedules");
    all.as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

fn wait_ticks(server: &Server, name: &str, at_least: u64) -> u64 {
    poll(&format!("{at_least} runs of schedule {name}"), || {
        let n = ticks(server, name);
        if n >= at_least {
            Ok(n)
        } else {
            Err(format!("{n} runs"))
        }
    })
}

#[test]
fn runtime_schedules_fire_skip_while_busy_and_stop_when_removed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &schedules_manifest(""));
    let (status, info) = put(
        &server,
        "fast",
        json!({"every_ms": 300, "job": {"kind": "tick"}}),
    );
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["every_ms"], 300);
    assert_eq!(info["from_manifest"], false);
    assert!(info["next_at_ms"].as_u64().unwrap() > 0);
    wait_ticks(&server, "fast", 3);
    let s = schedule(&server, "fast");
    let last = s["last_job"].as_str().unwrap().to_string();
    let job = server.get_json(&format!("/jobber/jobs/{last}"));
    assert_eq!(job["kind"], "tick", "{job}");

    // Removed: it stops (one job already spawned may still finish).
    assert_eq!(delete(&server, "fast"), (200, json!({"removed": true})));
    assert_eq!(delete(&server, "fast"), (200, json!({"removed": false})));
    std::thread::sleep(Duration::from_millis(700));
    let after = ticks(&server, "fast");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(ticks(&server, "fast"), after, "ticks after unschedule");
    assert_eq!(schedule(&server, "fast"), Value::Null);

    // A job that outlasts the interval: ticks meanwhile spawn nothing.
    let (status, _) = put(
        &server,
        "slow",
        json!({"every_ms": 200, "job": {"kind": "tick", "input": {"sleep": "1"}}}),
    );
    assert_eq!(status, 200);
    let started = Instant::now();
    wait_ticks(&server, "slow", 2);
    let s = poll("skipped ticks", || {
        let s = schedule(&server, "slow");
        if s["skipped"].as_u64().unwrap() >= 3 {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    });
    let runs = ticks(&server, "slow");
    // Each run sleeps a second: never more runs than seconds (plus the one running).
    assert!(
        runs <= started.elapsed().as_secs() + 1,
        "{runs} runs in {:?}: {s}",
        started.elapsed()
    );
    delete(&server, "slow");

    // Bad timings and names are refused with the reason.
    for (name, body, why) in [
        (
            "c",
            json!({"cron": "61 * * * *", "job": {"kind": "tick"}}),
            "cron",
        ),
        (
            "c",
            json!({"cron": "not cron", "job": {"kind": "tick"}}),
            "cron",
        ),
        (
            "i",
            json!({"every_ms": 10, "job": {"kind": "tick"}}),
            "at least 100",
        ),
        (
            "a%20b",
            json!({"every_ms": 1000, "job": {"kind": "tick"}}),
            "schedule name",
        ),
        ("k", json!({"every_ms": 1000, "job": {"kind": ""}}), "kind"),
    ] {
        let (status, v) = put(&server, name, body);
        assert_eq!(status, 400, "{name}: {v}");
        assert!(v.to_string().contains(why), "{name}: {v}");
    }
    assert_eq!(server.get_json("/jobber/schedules"), json!([]));
}

#[test]
fn a_schedule_survives_kill_9_and_runs_a_missed_tick_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &schedules_manifest(""));
    let (status, _) = put(
        &server,
        "slowly",
        json!({"every_ms": 3000, "job": {"kind": "tick"}}),
    );
    assert_eq!(status, 200);
    wait_ticks(&server, "slowly", 1);
    server.kill9();
    // Three periods pass while the server is down.
    std::thread::sleep(Duration::from_millis(9500));
    let restarted = jobs_now_ms();
    let server = Server::start(dir.path(), &schedules_manifest(""));
    let n = wait_ticks(&server, "slowly", 2);
    let s = schedule(&server, "slowly");
    assert_eq!(n, 2, "the missed ticks ran once, not three times: {s}");
    assert!(s["last_at_ms"].as_u64().unwrap() >= restarted, "{s}");
    assert!(
        s["next_at_ms"].as_u64().unwrap() > s["last_at_ms"].as_u64().unwrap(),
        "{s}"
    );
    wait_ticks(&server, "slowly", 3);
}

fn jobs_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn manifest_schedules_follow_the_manifest_and_the_handler_cannot_change_them() {
    let dir = tempfile::tempdir().unwrap();
    let declared = "[[handler.schedule]]\nname = \"m\"\ninterval = \"300ms\"\nkind = \"tick\"\nkeep_jobs = 2\n\
                    [[handler.schedule]]\ncron = \"* * * * * *\"\nkind = \"tick\"\ninput = \"{}\"\n";
    let server = Server::start(dir.path(), &schedules_manifest(declared));
    wait_ticks(&server, "m", 2);
    // Named after its kind; six fields: every second.
    wait_ticks(&server, "tick", 2);
    // Only the last `keep_jobs` of its jobs are kept (a tick removes the
    // oldest in the same write that adds its own).
    wait_ticks(&server, "m", 5);
    let kept = server.get_json("/admin/v1/jobs?handler=jobber&kind=tick&limit=1000");
    let of_m = kept["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["labels"]["schedule"] == "m")
        .count();
    assert!((1..=2).contains(&of_m), "{of_m} jobs of m kept: {kept}");
    let s = schedule(&server, "m");
    assert_eq!(s["from_manifest"], true, "{s}");
    assert_eq!(s["every_ms"], 300);
    assert_eq!(schedule(&server, "tick")["cron"], "* * * * * *");
    // The operator's view: every handler's schedules.
    let admin = server.get_json("/admin/v1/schedules?handler=jobber");
    let items = admin["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{admin}");
    let m = items.iter().find(|s| s["name"] == "m").unwrap();
    assert_eq!(
        (&m["handler"], &m["kind"], &m["every_ms"]),
        (&json!("jobber"), &json!("tick"), &json!(300))
    );
    assert!(m["next_at"].as_str().unwrap().ends_with('Z'), "{m}");
    assert!(m["last_job"].is_string(), "{m}");
    assert_eq!(
        items.iter().find(|s| s["name"] == "tick").unwrap()["input"],
        json!({})
    );
    let (status, v) = delete(&server, "m");
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("manifest"), "{v}");
    let (status, _) = put(
        &server,
        "m",
        json!({"every_ms": 5000, "job": {"kind": "tick"}}),
    );
    assert_eq!(status, 400);

    // Reloaded without them: both stop.
    std::fs::write(dir.path().join("baton.toml"), schedules_manifest("")).unwrap();
    server.hangup();
    server.wait_log("manifest reloaded");
    assert_eq!(server.get_json("/jobber/schedules"), json!([]));
    std::thread::sleep(Duration::from_millis(1200));
    let after = ticks(&server, "m");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(ticks(&server, "m"), after);

    // A bad timing stops the start, naming the entry.
    let bad = schedules_manifest("[[handler.schedule]]\ncron = \"every day\"\nkind = \"tick\"\n");
    std::fs::write(dir.path().join("bad.toml"), bad).unwrap();
    let err = serve_manifest_fails(dir.path(), "bad.toml");
    assert!(err.contains("handler[0].schedule[0]"), "{err}");
    assert!(err.contains("every day"), "{err}");
}
