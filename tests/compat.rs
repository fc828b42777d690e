//! The WIT stays backward compatible: a handler built against the
//! wave-one contract (`tests/components/legacy-v0`, whose `wit/` is the
//! contract at commit 53a2082, before `kv.apply-if`, `secrets`, outbound
//! HTTP and schedules) is served by today's host, from the manifest and
//! through a hot swap, and its kv, jobs and config calls work.

mod support;

use serde_json::{Value, json};
use support::*;

fn legacy_manifest() -> String {
    let wasm = test_components().join("legacy_v0.wasm");
    manifest(&format!(
        "[[handler]]\nname = \"legacy\"\nwasm = \"{}\"\nmount = \"/legacy\"\npolicy = \"public\"\n\
         [handler.config]\ngreeting = \"hello\"\n",
        wasm.display()
    ))
}

fn exercise(server: &Server) {
    let resp = client()
        .put(server.url("/legacy/kv/a"))
        .body("stored by an old component")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "stored by an old component");
    assert_eq!(
        server.get_json("/legacy/config/greeting"),
        json!({"value": "hello"})
    );
    let spawned: Value = client()
        .post(server.url("/legacy/spawn"))
        .body("{\"n\": 1}")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = spawned["id"].as_str().unwrap().to_string();
    let job = poll("the old component's job to end", || {
        let j = server.get_json(&format!("/admin/v1/jobs/{id}"));
        if j["state"] == "succeeded" {
            Ok(j)
        } else {
            Err(j.to_string())
        }
    });
    assert_eq!(job["output"], json!({"n": 1}));
}

#[test]
fn a_component_built_against_the_wave_one_wit_is_served_and_swapped_in() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &legacy_manifest());
    exercise(&server);

    // A hot swap from today's world to the old one and back is accepted.
    let current = std::fs::read(test_components().join("jobber.wasm")).unwrap();
    let legacy = std::fs::read(test_components().join("legacy_v0.wasm")).unwrap();
    let admin = server.client();
    for bytes in [current, legacy] {
        let resp = admin
            .put(server.url("/admin/v1/handlers/legacy"))
            .body(bytes)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "{}", resp.text().unwrap());
    }
    exercise(&server);
}
