//! Hot swap against the real binary: twenty swaps under a continuous client
//! loop with zero failed requests, refused components, rollback, the compile
//! cache across restarts, the watched file, and `baton deploy`.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::*;

fn component(name: &str) -> Vec<u8> {
    std::fs::read(test_components().join(format!("{name}.wasm"))).unwrap()
}

/// A manifest serving greeter v1 from a file of the test's own directory.
fn greeter(dir: &Path) -> (String, PathBuf) {
    let handlers = dir.join("handlers");
    std::fs::create_dir_all(&handlers).unwrap();
    let file = handlers.join("greeter.wasm");
    std::fs::write(&file, component("greeter_v1")).unwrap();
    let m = manifest(&format!(
        "[[handler]]\nname = \"greeter\"\nwasm = \"{}\"\nmount = \"/greeter\"\npolicy = \"public\"\n",
        file.display()
    ));
    (m, file)
}

fn version(server: &Server) -> String {
    let v: Value = client()
        .get(server.url("/greeter/hello"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["version"].as_str().unwrap().to_string()
}

fn put(server: &Server, bytes: Vec<u8>) -> (u16, Value) {
    let resp = server
        .client()
        .put(server.url("/admin/v1/handlers/greeter"))
        .body(bytes)
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

#[test]
fn twenty_swaps_under_a_client_loop_fail_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = greeter(dir.path());
    let server = Server::start(dir.path(), &m);
    let (v1, v2) = (component("greeter_v1"), component("greeter_v2"));
    let stop = Arc::new(AtomicBool::new(false));
    let url = server.url("/greeter/hello");
    let loops: Vec<_> = (0..2)
        .map(|_| {
            let (stop, url) = (stop.clone(), url.clone());
            std::thread::spawn(move || {
                let c = client();
                let mut seen = Vec::new();
                // Bounded: at most this many requests per loop.
                for _ in 0..20_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let resp = c.get(&url).send().unwrap();
                    let status = resp.status().as_u16();
                    let body: Value = resp.json().unwrap_or(Value::Null);
                    seen.push((status, body["version"].as_str().unwrap_or("").to_string()));
                }
                seen
            })
        })
        .collect();
    for i in 0..20 {
        let bytes = if i % 2 == 0 { v2.clone() } else { v1.clone() };
        let (status, body) = put(&server, bytes);
        assert_eq!(status, 200, "{body}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The last swap installed v1: from now on only v1 answers.
    for _ in 0..50 {
        assert_eq!(version(&server), "v1");
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    let mut saw = std::collections::HashSet::new();
    for l in loops {
        for (status, v) in l.join().unwrap() {
            assert_eq!(status, 200, "a request failed during a swap");
            assert!(
                v == "v1" || v == "v2",
                "answer from no known version: {v:?}"
            );
            saw.insert(v);
            total += 1;
        }
    }
    assert!(total > 40, "the client loops barely ran ({total} requests)");
    assert_eq!(saw.len(), 2, "both versions answered during the swaps");
}

#[test]
fn a_refused_component_is_422_and_the_old_version_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = greeter(dir.path());
    let server = Server::start(dir.path(), &m);
    let empty_module = b"\0asm\x01\0\0\0".to_vec();
    // A core module importing `env.foo`, which neither WASI nor the world provides.
    let mut foreign = b"\0asm\x01\0\0\0".to_vec();
    foreign.extend_from_slice(&[0x01, 0x04, 0x01, 0x60, 0x00, 0x00]);
    foreign.extend_from_slice(&[
        0x02, 0x0b, 0x01, 0x03, b'e', b'n', b'v', 0x03, b'f', b'o', b'o', 0x00, 0x00,
    ]);
    for (bytes, says) in [
        (b"definitely not wasm".to_vec(), "magic"),
        (empty_module, "no export `handle`"),
        (foreign, "WASI preview-1 adapter"),
        (component("greeter_v1")[..200].to_vec(), "compile"),
    ] {
        let (status, body) = put(&server, bytes);
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["kind"], "component-rejected");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(says),
            "{body}"
        );
        assert_eq!(version(&server), "v1");
    }
    let list: Value = server.get_json("/admin/v1/handlers");
    let h = &list["handlers"][0];
    assert_eq!(h["name"], "greeter");
    assert!(
        h["last_rejected"]["reason"]
            .as_str()
            .unwrap()
            .contains("compile"),
        "{h}"
    );
    server.wait_log("component refused");
    // Unknown handlers and empty bodies are explained.
    let resp = server
        .client()
        .put(server.url("/admin/v1/handlers/ghost"))
        .body(component("greeter_v2"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404);
    let (status, _) = put(&server, Vec::new());
    assert_eq!(status, 400);
}

#[test]
fn rollback_restores_earlier_versions() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = greeter(dir.path());
    let server = Server::start(dir.path(), &m);
    let (status, v2) = put(&server, component("greeter_v2"));
    assert_eq!(status, 200);
    assert_eq!(version(&server), "v2");
    let rollback = |body: Option<Value>| {
        let mut req = server
            .client()
            .post(server.url("/admin/v1/handlers/greeter/rollback"));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().unwrap();
        (
            resp.status().as_u16(),
            resp.json::<Value>().unwrap_or(Value::Null),
        )
    };
    assert_eq!(rollback(None).0, 200);
    assert_eq!(version(&server), "v1");
    let sha_v2 = v2["version"].as_str().unwrap();
    assert_eq!(rollback(Some(json!({"version": &sha_v2[..12]}))).0, 200);
    assert_eq!(version(&server), "v2");
    let (status, body) = rollback(Some(json!({"version": "0123456789abcdef"})));
    assert_eq!(status, 404, "{body}");
    let (status, _) = rollback(Some(json!({"version": "ab"})));
    assert_eq!(status, 404);
    let list: Value = server.get_json("/admin/v1/handlers");
    assert_eq!(list["handlers"][0]["versions"].as_array().unwrap().len(), 2);
}

#[test]
fn a_restart_serves_the_last_deployed_version_from_the_compile_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (m, file) = greeter(dir.path());
    let server = Server::start(dir.path(), &m);
    assert_eq!(put(&server, component("greeter_v2")).0, 200);
    server.kill9();
    let server = Server::start(dir.path(), &m);
    assert_eq!(version(&server), "v2");
    server.wait_log_line("`handler loaded` with `cached=true`", |l| {
        l.contains("handler loaded") && l.contains("cached=true")
    });
    let list: Value = server.get_json("/admin/v1/handlers");
    assert_eq!(list["handlers"][0]["current"]["compiled_from_cache"], true);
    drop(server);
    // A manifest file changed while the server was down wins over the deploy.
    std::fs::write(&file, component("greeter_v1")).unwrap();
    let other = with_custom_section(&component("greeter_v1"), "edited-offline");
    std::fs::write(&file, other).unwrap();
    let server = Server::start(dir.path(), &m);
    assert_eq!(version(&server), "v1");
}

#[test]
fn writing_the_watched_file_swaps_the_handler() {
    let dir = tempfile::tempdir().unwrap();
    let (m, file) = greeter(dir.path());
    let server = Server::start(dir.path(), &m);
    assert_eq!(version(&server), "v1");
    // Write in place, the way `cp` does.
    std::fs::write(&file, component("greeter_v2")).unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    while version(&server) != "v2" {
        assert!(
            Instant::now() < end,
            "the new file was never served:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let list: Value = server.get_json("/admin/v1/handlers");
    assert_eq!(list["handlers"][0]["versions"][0]["source"], "watch");
    // A broken file is refused; the last good version keeps serving.
    std::fs::write(&file, b"garbage").unwrap();
    server.wait_log("not deployed");
    assert_eq!(version(&server), "v2");
}

#[test]
fn a_busy_log_file_beside_the_component_does_not_hold_up_its_swap() {
    // `baton serve ... 2>> baton.log` in the manifest's directory: every
    // write to the log was a change in a watched directory, and writes more
    // often than the 300 ms debounce kept a new component from ever loading.
    let dir = tempfile::tempdir().unwrap();
    let (m, file) = greeter(dir.path());
    let server = Server::start(dir.path(), &m);
    assert_eq!(version(&server), "v1");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let log = dir.path().join("baton.log");
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::File::create(log).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                writeln!(f, "a log line").unwrap();
                f.flush().unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    std::fs::write(&file, component("greeter_v2")).unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    while version(&server) != "v2" && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(version(&server), "v2", "{}", server.log());
}

#[test]
fn baton_deploy_uploads_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = greeter(dir.path());
    let server = Server::start(dir.path(), &m);
    let v2 = test_components().join("greeter_v2.wasm");
    let (ok, out, err) = server.cli(
        &[
            "deploy",
            "greeter",
            v2.to_str().unwrap(),
            "--server",
            &server.base,
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("greeter now runs "), "{out}");
    assert_eq!(version(&server), "v2");
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"junk").unwrap();
    let (ok, _, err) = server.cli(
        &[
            "deploy",
            "greeter",
            junk.to_str().unwrap(),
            "--server",
            &server.base,
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("422"), "{err}");
    assert_eq!(version(&server), "v2");
}

#[test]
fn a_changed_manifest_is_applied_on_sighup_and_a_bad_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = greeter(dir.path());
    let server = Server::start(dir.path(), &m);
    let manifest_path = dir.path().join("baton.toml");
    let v2 = dir.path().join("handlers/greeter2.wasm");
    std::fs::write(&v2, component("greeter_v2")).unwrap();
    let wait_status = |path: &str, want: u16| {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let status = client()
                .get(server.url(path))
                .send()
                .unwrap()
                .status()
                .as_u16();
            if status == want {
                return;
            }
            assert!(
                Instant::now() < end,
                "{path} never answered {want}:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // A second handler, and a policy change on the first.
    let grown = format!(
        "{}\n[[handler]]\nname = \"greeter2\"\nwasm = \"{}\"\nmount = \"/greeter2\"\npolicy = \"public\"\n",
        m.replace("policy = \"public\"", "policy = \"authenticated\""),
        v2.display()
    );
    std::fs::write(&manifest_path, &grown).unwrap();
    server.hangup();
    wait_status("/greeter2/hello", 200);
    wait_status("/greeter/hello", 401);
    // An invalid manifest is refused; everything keeps serving as it was.
    std::fs::write(&manifest_path, "[[listener]]\naddress = \"nowhere\"\n").unwrap();
    server.hangup();
    server.wait_log("manifest rejected");
    assert_eq!(
        client()
            .get(server.url("/greeter2/hello"))
            .send()
            .unwrap()
            .status(),
        200
    );
    // Removing the handler unmounts it.
    std::fs::write(&manifest_path, &m).unwrap();
    server.hangup();
    wait_status("/greeter2/hello", 404);
    wait_status("/greeter/hello", 200);
}

#[test]
fn a_handler_mounted_through_the_admin_api_survives_reloads_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = greeter(dir.path());
    let server = Server::start(dir.path(), &m);
    let put_to = |path: &str, bytes: Vec<u8>| {
        let resp = server
            .client()
            .put(server.url(path))
            .body(bytes)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().unwrap_or(Value::Null))
    };
    let fresh = |server: &Server| -> (u16, Value) {
        let resp = client().get(server.url("/fresh/hello")).send().unwrap();
        (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
    };
    let (status, body) = put_to(
        "/admin/v1/handlers/fresh?mount=/fresh&policy=public&memory_mib=32",
        component("greeter_v2"),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(fresh(&server).1["version"], "v2");
    // The same name again is a new version of it.
    assert_eq!(
        put_to("/admin/v1/handlers/fresh", component("greeter_v1")).0,
        200
    );
    assert_eq!(fresh(&server).1["version"], "v1");
    for (path, status) in [
        ("/admin/v1/handlers/other?mount=/fresh", 409),
        ("/admin/v1/handlers/other?mount=nope", 400),
        ("/admin/v1/handlers/other?mount=/admin/v1/x", 400),
        (
            "/admin/v1/handlers/other?mount=/z&policy=Not%20A%20Policy",
            400,
        ),
        ("/admin/v1/handlers/other?mount=/z&memory_mib=0", 400),
        ("/admin/v1/handlers/other?mount=/z&bogus=1", 400),
        ("/admin/v1/handlers/admin?mount=/z", 400),
        ("/admin/v1/handlers/other", 404),
    ] {
        let (got, body) = put_to(path, component("greeter_v2"));
        assert_eq!(got, status, "{path}: {body}");
    }
    assert_eq!(
        client()
            .get(server.url("/z/hello"))
            .send()
            .unwrap()
            .status(),
        404,
        "nothing was mounted by the refusals"
    );
    // A manifest reload leaves it mounted; so does a crash.
    server.hangup();
    server.wait_log("manifest reloaded");
    assert_eq!(fresh(&server).0, 200);
    server.kill9();
    let server = Server::start(dir.path(), &m);
    let (status, body) = fresh(&server);
    assert_eq!(status, 200);
    assert_eq!(body["version"], "v1");
}

#[test]
fn a_wasip1_core_module_is_adapted_into_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = greeter(dir.path());
    let server = Server::start(dir.path(), &m);
    assert_eq!(put(&server, component("greeter_v2")).0, 200);
    let module = wasip1_module("greeter_v1");
    assert_eq!(
        &module[4..8],
        &[1, 0, 0, 0],
        "a core module, not a component"
    );
    let (status, body) = put(&server, module);
    assert_eq!(status, 200, "{body}");
    assert_eq!(version(&server), "v1");
}

/// The unsigned LEB128 encoding of `v`.
fn leb128(mut v: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// A component holding a component holding … `depth` levels deep (12
/// bytes a level), written outside-in without copying.
fn nested_component(depth: usize) -> Vec<u8> {
    const PREAMBLE: &[u8] = b"\0asm\x0d\0\x01\0";
    let mut sizes = vec![PREAMBLE.len(); depth + 1];
    for k in (0..depth).rev() {
        sizes[k] = PREAMBLE.len() + 1 + leb128(sizes[k + 1]).len() + sizes[k + 1];
    }
    let mut out = Vec::with_capacity(sizes[0]);
    for size in &sizes[1..] {
        out.extend_from_slice(PREAMBLE);
        out.push(4); // a component section
        out.extend(leb128(*size));
    }
    out.extend_from_slice(PREAMBLE);
    out
}

/// A core module of `n` empty functions (4 bytes each).
fn module_of_empty_functions(n: usize) -> Vec<u8> {
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    let mut section = |id: u8, body: Vec<u8>| {
        m.push(id);
        m.extend(leb128(body.len()));
        m.extend(body);
    };
    section(1, vec![1, 0x60, 0, 0]);
    let mut funcs = leb128(n);
    funcs.resize(funcs.len() + n, 0);
    section(3, funcs);
    let mut code = leb128(n);
    for _ in 0..n {
        code.extend([2, 0, 0x0b]);
    }
    section(10, code);
    m
}

#[test]
fn hostile_components_are_refused_before_compilation_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = greeter(dir.path());
    let server = Server::start(dir.path(), &m);
    // Before the limits, 5,000 levels took 870 MB to refuse and 100,000
    // took all the machine had; 200,001 empty functions took 54 s and
    // 1.7 GB. Now each is refused by a streaming pass before wasmtime.
    for (bytes, says) in [
        (nested_component(5_000), "max_nesting"),
        (nested_component(100_000), "max_nesting"),
        (module_of_empty_functions(200_001), "max_functions"),
    ] {
        for path in [
            "/admin/v1/handlers/greeter",
            "/admin/v1/handlers/hostile?mount=/hostile",
        ] {
            let resp = server
                .client()
                .put(server.url(path))
                .body(bytes.clone())
                .send()
                .unwrap();
            assert_eq!(resp.status(), 422, "{path}");
            let body: Value = resp.json().unwrap();
            assert_eq!(body["error"]["kind"], "component-rejected");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(says), "{message}");
            assert!(message.contains("before it was compiled"), "{message}");
        }
        assert_eq!(version(&server), "v1");
    }
    // The limits are the manifest's: a smaller function limit refuses the
    // shipped greeter itself, naming the key.
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = greeter(dir.path());
    std::fs::write(
        dir.path().join("small.toml"),
        format!("[components]\nmax_functions = 10\n{m}"),
    )
    .unwrap();
    let err = serve_manifest_fails(dir.path(), "small.toml");
    assert!(err.contains("max_functions"), "{err}");
}

#[test]
fn mounts_with_dot_segments_escapes_or_control_characters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (m, _) = greeter(dir.path());
    let server = Server::start(dir.path(), &m);
    for mount in [
        "/x/../admin/v1",
        "/x/..",
        "/x/./y",
        "/x%2500",
        "/x%252e%252e",
        "/x%00",
        "/a%5Cb",
        "/a%01b",
        "/a//b",
        "/a/",
    ] {
        let resp = server
            .client()
            .put(server.url(&format!(
                "/admin/v1/handlers/evil?mount={mount}&policy=public"
            )))
            .body(component("greeter_v2"))
            .send()
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().unwrap_or(Value::Null);
        assert_eq!(status, 400, "{mount}: {body}");
        assert_eq!(body["error"]["kind"], "bad-request", "{mount}");
    }
    let list: Value = server.get_json("/admin/v1/handlers");
    assert_eq!(list["handlers"].as_array().unwrap().len(), 1, "{list}");
}
