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

/// A listener with the given connection settings, serving the admin API.
fn listener_with(settings: &str) -> String {
    format!("[[listener]]\naddress = \"127.0.0.1:0\"\n{settings}\n")
}

/// What the server does next on `tcp`: `Closed` (EOF or reset), `Reply`
/// (the first line), or `Silent` (nothing before the read timeout).
#[derive(Debug, PartialEq)]
enum Next {
    Closed,
    Reply(String),
    Silent,
}

fn next(tcp: &mut std::net::TcpStream) -> Next {
    use std::io::Read;
    let mut buf = [0u8; 1024];
    match tcp.read(&mut buf) {
        Ok(0) => Next::Closed,
        Ok(n) => Next::Reply(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        ),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Next::Silent
        }
        Err(_) => Next::Closed,
    }
}

fn connect(base: &str, read_timeout: std::time::Duration) -> std::net::TcpStream {
    let tcp = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    tcp.set_read_timeout(Some(read_timeout)).unwrap();
    tcp
}

#[test]
fn half_sent_heads_and_silent_connections_are_closed() {
    use std::io::Write;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &listener_with("header_read_timeout_ms = 300\nidle_timeout_ms = 600"),
    );
    // Bounded waits: before the timeouts, each of these stayed open forever.
    let patience = Duration::from_secs(30);
    let mut half = connect(&server.base, patience);
    half.write_all(b"GET /admin/v1/healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert_eq!(next(&mut half), Next::Closed, "a half-sent head");
    let mut silent = connect(&server.base, patience);
    assert_eq!(
        next(&mut silent),
        Next::Closed,
        "a connection that sends nothing"
    );
    // A kept-alive connection is served, then closed once idle.
    let mut kept = connect(&server.base, patience);
    kept.write_all(b"GET /admin/v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(next(&mut kept), Next::Reply("HTTP/1.1 200 OK".into()));
    assert_eq!(
        next(&mut kept),
        Next::Closed,
        "an idle kept-alive connection"
    );
    // HTTP/2 (prior knowledge): the preface, then silence.
    let mut h2 = connect(&server.base, patience);
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .unwrap();
    loop {
        match next(&mut h2) {
            Next::Reply(_) => continue, // SETTINGS and the like
            other => {
                assert_eq!(other, Next::Closed, "an idle HTTP/2 connection");
                break;
            }
        }
    }
    assert_eq!(server.get_status("/admin/v1/healthz"), 200);
}

#[test]
fn a_listener_serves_at_most_max_connections_at_once() {
    use std::io::Write;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &listener_with("max_connections = 2"));
    let open: Vec<_> = (0..2)
        .map(|_| connect(&server.base, Duration::from_secs(30)))
        .collect();
    // Make sure both were accepted (each answers a request).
    for mut tcp in open.iter().map(|t| t.try_clone().unwrap()) {
        tcp.write_all(b"GET /admin/v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(next(&mut tcp), Next::Reply("HTTP/1.1 200 OK".into()));
    }
    let mut third = connect(&server.base, Duration::from_secs(1));
    third
        .write_all(b"GET /admin/v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(
        next(&mut third),
        Next::Silent,
        "a third connection was served"
    );
    drop(open);
    third
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(next(&mut third), Next::Reply("HTTP/1.1 200 OK".into()));
}

/// PUT `path` over HTTP/2 (prior knowledge) declaring `declared` bytes and
/// sending 16 KiB of them; the reply's status and its whole body.
fn h2_put_partial(base: &str, path: &str, token: Option<&str>, declared: usize) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = base.trim_start_matches("http://").to_string();
    let path = path.to_string();
    let token = token.map(str::to_string);
    rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut client = client.ready().await.unwrap();
        let mut req = axum::http::Request::put(format!("http://x{path}"))
            .header("content-length", declared.to_string());
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let (resp, mut send) = client.send_request(req.body(()).unwrap(), false).unwrap();
        send.send_data(bytes::Bytes::from(vec![b' '; 16 * 1024]), false)
            .unwrap();
        let resp = resp.await.expect("the response head");
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("the whole response body, not a reset");
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        // The server is done with the stream; it says so with NO_ERROR,
        // not an error code (RFC 9113 §8.1).
        let reason = std::future::poll_fn(|cx| send.poll_reset(cx)).await;
        assert_eq!(reason.unwrap(), h2::Reason::NO_ERROR);
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    })
}

#[test]
fn http2_clients_read_the_whole_refusal_of_an_unread_admin_body() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &listener_with(""));
    let token = server.admin_token();
    for (token, want, kind) in [
        (Some(token.as_str()), 413, "payload-too-large"),
        (None, 401, "not-authenticated"),
    ] {
        let (status, body) = h2_put_partial(&server.base, "/admin/v1/users/bob", token, 1 << 20);
        assert_eq!(status, want, "{body}");
        assert_eq!(body["error"]["kind"], kind, "{body}");
    }
    assert_eq!(server.get_status("/admin/v1/healthz"), 200);
}
