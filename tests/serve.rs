//! The server as a newcomer meets it: defaults, routing, limits, durability,
//! and refusal to start on bad handlers or manifests.

mod support;

use serde_json::Value;
use support::*;

#[test]
fn serve_with_no_arguments_uses_the_embedded_manifest_and_cwd_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_baton"));
    cmd.current_dir(dir.path());
    let server = Server::spawn(cmd, dir.path().join("baton-data"));
    assert_eq!(server.base, "https://127.0.0.1:8143");
    assert!(dir.path().join("baton-data/tls/ca.pem").is_file());
    // `baton token` (run where the server runs) + `curl -k` is all a client needs.
    let (ok, token, err) = run_cli(
        {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_baton"));
            c.arg("token").current_dir(dir.path());
            c
        },
        None,
    );
    assert!(ok, "{err}");
    let insecure = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let resp = insecure
        .get("https://localhost:8143/orchestrator/v1/")
        .header("X-Authentication", token.trim())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().unwrap();
    assert_eq!(
        body["commands"]["deploy"]["id"],
        "https://localhost:8143/orchestrator/v1/command/deploy"
    );
    // Without the token: 401 in the orchestrator's error shape.
    let resp = insecure
        .get("https://localhost:8143/orchestrator/v1/inventory")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["kind"], "puppetlabs.orchestrator/not-authenticated");
    // The generated CA verifies the server for 127.0.0.1 and localhost.
    assert_eq!(server.get_status("/admin/v1/healthz"), 200);
}

#[test]
fn unknown_path_is_404_json_with_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &manifest(ORCHESTRATOR));
    let resp = server
        .anonymous()
        .get(server.url("/nothing/here"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = resp.json().unwrap();
    assert_eq!(body["error"]["kind"], "not-found");
    assert_eq!(body["error"]["request_id"], id.as_str());
    // A mount is matched on segment boundaries only.
    let resp = server
        .anonymous()
        .get(server.url("/orchestrator/v10"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[test]
fn body_over_the_limit_is_413_in_the_apis_error_shape() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(&format!(
        "{ORCHESTRATOR}[handler.limits]\nmax_body_bytes = 1024\n"
    ));
    let server = Server::start(dir.path(), &m);
    let big = format!("{{\"facts\": {{\"blob\": \"{}\"}}}}", "x".repeat(4096));
    let resp = server
        .client()
        .put(server.url("/orchestrator/v1/inventory/nodes/web-1"))
        .body(big)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["kind"], "puppetlabs.orchestrator/payload-too-large");
    // Nothing was stored.
    let resp = server
        .client()
        .get(server.url("/orchestrator/v1/inventory/nodes/web-1"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[test]
fn kv_data_survives_restart_and_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(ORCHESTRATOR);
    let server = Server::start(dir.path(), &m);
    for n in ["web-1", "web-2", "db-1"] {
        let resp = server
            .client()
            .put(server.url(&format!("/orchestrator/v1/inventory/nodes/{n}")))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201);
    }
    // Acknowledged writes are durable: kill -9 right after the replies.
    server.kill9();
    let server = Server::start(dir.path(), &m);
    let body: Value = server
        .client()
        .get(server.url("/orchestrator/v1/inventory"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let names: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db-1", "web-1", "web-2"]);
    drop(server);
    // And a clean restart keeps them too.
    let server = Server::start(dir.path(), &m);
    let resp = server
        .client()
        .get(server.url("/orchestrator/v1/inventory/nodes/db-1"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn a_file_that_is_not_a_component_stops_startup_naming_the_handler() {
    let dir = tempfile::tempdir().unwrap();
    let handler = |file: &str| {
        manifest(&format!(
            "[[handler]]\nname = \"broken\"\nwasm = \"{file}\"\nmount = \"/b\"\n"
        ))
    };
    std::fs::write(dir.path().join("garbage.wasm"), b"this is not wasm").unwrap();
    std::fs::write(dir.path().join("m1.toml"), handler("garbage.wasm")).unwrap();
    let err = serve_manifest_fails(dir.path(), "m1.toml");
    assert!(err.contains("handler `broken`"), "{err}");
    assert!(err.contains("not a WebAssembly component"), "{err}");

    // A core module is adapted (wasm32-wasip1 builds are served), but one
    // that does not provide the world is refused, naming what is missing.
    std::fs::write(dir.path().join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(dir.path().join("m2.toml"), handler("core.wasm")).unwrap();
    let err = serve_manifest_fails(dir.path(), "m2.toml");
    assert!(err.contains("handler `broken`"), "{err}");
    assert!(err.contains("no export `handle`"), "{err}");

    // A missing file is named.
    std::fs::write(dir.path().join("m3.toml"), handler("absent.wasm")).unwrap();
    let err = serve_manifest_fails(dir.path(), "m3.toml");
    assert!(err.contains("absent.wasm"), "{err}");
}

#[test]
fn a_component_that_does_not_satisfy_the_world_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    // An empty component: valid, but it exports no `handle`.
    std::fs::write(dir.path().join("empty.wasm"), b"\0asm\x0d\0\x01\0").unwrap();
    std::fs::write(
        dir.path().join("m.toml"),
        manifest("[[handler]]\nname = \"hollow\"\nwasm = \"empty.wasm\"\nmount = \"/h\"\n"),
    )
    .unwrap();
    let err = serve_manifest_fails(dir.path(), "m.toml");
    assert!(err.contains("handler `hollow`"), "{err}");
    assert!(
        err.contains("does not satisfy the baton:api/handler world"),
        "{err}"
    );
}

#[test]
fn a_bad_manifest_is_refused_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[limits]\nmemory_mib = \"lots\"\n",
    )
    .unwrap();
    let err = serve_fails(&["--manifest", path.to_str().unwrap()]);
    assert!(err.contains("bad.toml"), "{err}");
    assert!(err.contains("memory_mib"), "{err}");
}
