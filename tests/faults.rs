//! A misbehaving guest ends its own request only: traps, endless loops and
//! memory bombs become JSON errors with the request id, and the server (and
//! other handlers) keep serving.

mod support;

use serde_json::Value;
use support::*;

fn faulty_manifest() -> String {
    let wasm = test_components().join("faulty.wasm");
    manifest(&format!(
        "{ORCHESTRATOR}\n[[handler]]\nname = \"faulty\"\nwasm = \"{}\"\nmount = \"/faulty\"\npolicy = \"public\"\n\
         [handler.limits]\nrequest_timeout_ms = 1500\nmemory_mib = 16\n[handler.config]\ngreeting = \"hi\"\n",
        wasm.display()
    ))
}

#[test]
fn a_trap_is_a_500_with_the_request_id_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &faulty_manifest());
    let resp = client().get(server.url("/faulty/trap")).send().unwrap();
    assert_eq!(resp.status(), 500);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = resp.json().unwrap();
    assert_eq!(body["error"]["kind"], "handler-error");
    assert_eq!(body["error"]["request_id"], id.as_str());
    // The guest's panic message reaches the log under the request id.
    server.wait_log_line("the trap message under its request id", |l| {
        l.contains("deliberate trap for the test") && l.contains(&id)
    });
    assert_eq!(server.get_status("/faulty/ok"), 200);
}

#[test]
fn an_endless_loop_is_a_504_and_other_handlers_keep_answering() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &faulty_manifest());
    let looping = {
        let url = server.url("/faulty/loop");
        std::thread::spawn(move || client().get(url).send().unwrap())
    };
    // While the loop spins, other requests are served.
    for _ in 0..5 {
        let resp = server
            .client()
            .get(server.url("/orchestrator/v1/"))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let resp = looping.join().unwrap();
    assert_eq!(resp.status(), 504);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["error"]["kind"], "handler-timeout");
    assert_eq!(server.get_status("/faulty/ok"), 200);
}

#[test]
fn growing_memory_past_the_cap_is_a_500() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &faulty_manifest());
    let resp = client().get(server.url("/faulty/grow")).send().unwrap();
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["error"]["kind"], "handler-memory");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("16 MiB")
    );
    assert_eq!(server.get_status("/faulty/ok"), 200);
}

#[test]
fn guest_output_config_and_unimplemented_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &faulty_manifest());
    let resp = client().get(server.url("/faulty/print")).send().unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    server.wait_log(&format!("guest says hello to {id}"));
    server.wait_log_line("stderr tagged with its request id", |l| {
        l.contains("guest warns on stderr") && l.contains(&id)
    });

    let body = server.get_json("/faulty/config/greeting");
    assert_eq!(body["value"], "hi");
    let body = server.get_json("/faulty/config/absent");
    assert_eq!(body["value"], Value::Null);

    // `exec` outside a job is a clear error, not a trap.
    let resp = client().get(server.url("/faulty/jobs")).send().unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("only available inside a running job"),
        "{body}"
    );
}

#[test]
fn handlers_have_separate_kv_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &faulty_manifest());
    let c = server.client();
    assert_eq!(
        c.put(server.url("/faulty/kv/web-1"))
            .body("mine")
            .send()
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        c.get(server.url("/faulty/kv/web-1"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "mine"
    );
    // The orchestrator's `nodes` bucket does not see the faulty handler's keys.
    let resp = c
        .get(server.url("/orchestrator/v1/inventory/nodes/web-1"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// `/count` of the faulty handler mounted twice: fresh (the default) and with
/// `[handler.warm_instances]`.
fn warm_manifest() -> String {
    let wasm = test_components().join("faulty.wasm");
    manifest(&format!(
        "[[handler]]\nname = \"fresh\"\nwasm = \"{w}\"\nmount = \"/fresh\"\n\n\
         [[handler]]\nname = \"warm\"\nwasm = \"{w}\"\nmount = \"/warm\"\n\
         [handler.warm_instances]\nmax_requests = 3\nmax_idle = 1\n",
        w = wasm.display()
    ))
}

fn count(c: &reqwest::blocking::Client, server: &Server, path: &str) -> (u64, Value) {
    let resp = c.get(server.url(path)).send().unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().unwrap();
    (body["count"].as_u64().unwrap(), body["caller"].clone())
}

#[test]
fn warm_instances_are_reused_then_retired_after_max_requests_and_on_a_trap() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &warm_manifest());
    let c = server.client();
    // The default: every request meets a new instance.
    for _ in 0..3 {
        assert_eq!(count(&c, &server, "/fresh/count").0, 1);
    }
    // Warm: one instance serves three requests, then a new one takes over.
    let served: Vec<u64> = (0..5)
        .map(|_| count(&c, &server, "/warm/count").0)
        .collect();
    assert_eq!(served, [1, 2, 3, 1, 2]);
    // A trap retires the instance it happened in.
    assert_eq!(
        c.get(server.url("/warm/trap")).send().unwrap().status(),
        500
    );
    assert_eq!(count(&c, &server, "/warm/count").0, 1);
}

#[test]
fn a_warm_instance_sees_each_requests_own_caller_and_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &warm_manifest());
    server.put_user(
        "bob",
        serde_json::json!({"password": "bob-password-1", "roles": ["viewer"]}),
    );
    let admin = server.client();
    let bob = server.client_with_token(&server.token("bob"));
    assert_eq!(count(&admin, &server, "/warm/count"), (1, "admin".into()));
    // Same instance, next caller: the host hands it bob, not the admin.
    assert_eq!(count(&bob, &server, "/warm/count"), (2, "bob".into()));
    // Without credentials the request is refused before the guest runs.
    let anon = server
        .anonymous()
        .get(server.url("/warm/count"))
        .send()
        .unwrap();
    assert_eq!(anon.status(), 401);
    assert_eq!(count(&admin, &server, "/warm/count"), (3, "admin".into()));

    // Guest output is tagged with the request that printed it.
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let resp = admin.get(server.url("/warm/print")).send().unwrap();
            assert_eq!(resp.status(), 200);
            resp.headers()["x-request-id"].to_str().unwrap().to_string()
        })
        .collect();
    for id in &ids {
        server.wait_log(&format!("guest says hello to {id}"));
        server.wait_log_line(&format!("stderr tagged with request {id}"), |l| {
            l.contains("guest warns on stderr") && l.contains(id.as_str())
        });
    }
}

#[test]
fn warm_instances_with_zero_requests_are_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baton.toml");
    std::fs::write(
        &path,
        warm_manifest().replace("max_requests = 3", "max_requests = 0"),
    )
    .unwrap();
    let err = serve_fails(&["--manifest", path.to_str().unwrap()]);
    assert!(err.contains("warm_instances"), "{err}");
}
