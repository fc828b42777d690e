//! A handler author's first minutes: `baton new`, `cargo build` to a
//! component, `baton deploy --mount` into a running server, call it, change
//! it, deploy again, see the new answer; the server never restarts.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

/// Builds the crate in `dir` the way its README says; returns the component.
fn build(dir: &Path) -> Vec<u8> {
    let target = root().join("target/scaffold");
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--target-dir",
    ])
    .arg(&target)
    .current_dir(dir);
    clean_cargo_env(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(target.join("wasm32-wasip2/release/hello_world.wasm")).unwrap()
}

#[test]
fn scaffold_build_deploy_change_redeploy_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &manifest(ORCHESTRATOR));
    let crate_dir = dir.path().join("hello-world");
    let mut new = std::process::Command::new(env!("CARGO_BIN_EXE_baton"));
    new.args(["new", "hello-world", "--path"]).arg(&crate_dir);
    let (ok, out, err) = run_cli(new, None);
    assert!(ok, "{err}");
    assert!(out.contains("baton deploy hello-world"), "{out}");

    build(&crate_dir);
    let wasm = root().join("target/scaffold/wasm32-wasip2/release/hello_world.wasm");
    let wasm = wasm.to_str().unwrap();
    let deploy = |extra: &[&str]| {
        let mut args = vec![
            "deploy",
            "hello-world",
            wasm,
            "--server",
            server.base.as_str(),
        ];
        args.extend_from_slice(extra);
        let (ok, out, err) = server.cli(&args, None);
        assert!(ok, "{err}");
        assert!(out.starts_with("hello-world now runs "), "{out}");
    };
    deploy(&["--mount", "/hello-world", "--policy", "public"]);
    let hello = || -> Value {
        client()
            .get(server.url("/hello-world/hello/ann"))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(hello(), json!({"hello": "ann", "from": "hello-world"}));

    // The kv and job examples work as generated.
    let resp = client()
        .put(server.url("/hello-world/notes/a"))
        .json(&json!({"text": "hi"}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    let note: Value = client()
        .get(server.url("/hello-world/notes/a"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(note["text"], "hi");
    let resp = client()
        .put(server.url("/hello-world/notes/b"))
        .json(&json!({"txt": 1}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400, "a wrong body names the field");
    let job: Value = client()
        .post(server.url("/hello-world/count"))
        .body("4")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = job["job"].as_str().unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let j: Value = server.get_json(&format!("/admin/v1/jobs/{id}"));
        if j["state"] == "succeeded" {
            assert_eq!(j["output"], "counted to 4");
            break;
        }
        assert!(Instant::now() < end, "{j}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The schedule example: every second, a `count` job labelled with it.
    let resp = client()
        .put(server.url("/hello-world/schedules/often"))
        .body("* * * * * *")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let scheduled = poll("a job of the schedule `often`", || {
        let jobs = server.get_json("/admin/v1/jobs?handler=hello-world&limit=1000");
        let text = jobs.to_string();
        if text.contains("\"often\"") && text.contains("counted to 3") {
            Ok(text)
        } else {
            Err(text)
        }
    });
    assert!(scheduled.contains("schedule"), "{scheduled}");
    let removed: Value = client()
        .delete(server.url("/hello-world/schedules/often"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(removed, json!({"removed": true}));
    let resp = client()
        .put(server.url("/hello-world/schedules/bad"))
        .body("every day")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);

    // Change the answer, rebuild, deploy again: the same server answers anew.
    let lib = crate_dir.join("src/lib.rs");
    let text = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(
        &lib,
        text.replace(
            "\"from\": \"hello-world\"",
            "\"from\": \"hello-world, changed\"",
        ),
    )
    .unwrap();
    build(&crate_dir);
    deploy(&[]);
    assert_eq!(hello()["from"], "hello-world, changed");
    // Both versions were swapped into the one running server.
    let log = server.wait_log("handler swapped");
    assert_eq!(log.matches("handler swapped").count(), 1, "{log}");

    let (ok, out, err) = server.cli(&["handlers", "--server", &server.base], None);
    assert!(ok, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("hello-world") && l.contains("/hello-world")),
        "{out}"
    );
}
