//! Jobs that record how many of them run at once, for the tests of the
//! job limits (`tests/fleet.rs`, `tests/replicas.rs`), included with
//! `#[path]` so that other test binaries do not compile them.
#![allow(dead_code)]

use super::support::*;
use serde_json::{Value, json};
use std::path::Path;

/// A `sh` script that records, in directory `$1`, how many copies of it run
/// at once (`max`), holding each run for 50 ms. A `mkdir` lock makes the
/// count exact.
pub const TRACKER: &str = r#"d=$1; lock() { until mkdir "$d/lock" 2>/dev/null; do sleep 0.001; done; }; lock; n=$(( $(cat "$d/n" 2>/dev/null || echo 0) + 1 )); echo $n > "$d/n"; m=$(cat "$d/max" 2>/dev/null || echo 0); [ "$n" -gt "$m" ] && echo $n > "$d/max"; rmdir "$d/lock"; sleep 0.05; lock; echo $(( $(cat "$d/n") - 1 )) > "$d/n"; rmdir "$d/lock""#;

pub fn max_at_once(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("max"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

pub fn tracked_dir(root: &Path, name: &str) -> std::path::PathBuf {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn jobber(name: &str, max_running_jobs: u32) -> String {
    let wasm = test_components().join("jobber.wasm");
    format!(
        "[[handler]]\nname = \"{name}\"\nwasm = \"{}\"\nmount = \"/{name}\"\npolicy = \"public\"\n\
         [handler.capabilities]\nexec = [\"sh\"]\n[handler.limits]\nmax_running_jobs = {max_running_jobs}\n\n",
        wasm.display()
    )
}

pub fn tracked_spec(dir: &Path) -> Value {
    json!({"kind": "exec", "input": {"program": "sh", "args": ["-c", TRACKER, "tracker", dir]}})
}

pub fn post_ok(server: &Server, path: &str, body: Value) -> Value {
    let resp = client().post(server.url(path)).json(&body).send().unwrap();
    assert_eq!(resp.status(), 202, "{path}");
    resp.json().unwrap()
}

pub fn wait_succeeded(server: &Server, mount: &str, id: &str) {
    poll(&format!("job {id} to succeed"), || {
        let j: Value = client()
            .get(server.url(&format!("/{mount}/jobs/{id}")))
            .send()
            .unwrap()
            .json()
            .unwrap();
        match j["state"].as_str() {
            Some("succeeded") => Ok(()),
            Some("queued" | "running") => Err(j.to_string()),
            _ => panic!("job {id} did not succeed: {j}"),
        }
    });
}
