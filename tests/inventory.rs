//! The orchestrator handler's metadata and inventory endpoints over real HTTP.

mod support;

use serde_json::{Value, json};
use support::*;

#[test]
fn inventory_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &manifest(ORCHESTRATOR));
    let c = server.client();
    let node = server.url("/orchestrator/v1/inventory/nodes/web-1.example.com");
    let resp = c
        .put(&node)
        .json(&json!({"facts": {"os": "debian"}}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = c.put(&node).send().unwrap();
    assert_eq!(resp.status(), 200, "replacing an existing node is 200");
    let body: Value = c.get(&node).send().unwrap().json().unwrap();
    assert_eq!(body["name"], "web-1.example.com");
    assert_eq!(body["connected"], true);

    let body: Value = c
        .post(server.url("/orchestrator/v1/inventory"))
        .json(&json!({"nodes": ["web-1.example.com", "ghost"]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(body["items"][0]["connected"], true);
    assert_eq!(
        body["items"][1],
        json!({"name": "ghost", "connected": false})
    );

    assert_eq!(c.delete(&node).send().unwrap().status(), 204);
    let resp = c.get(&node).send().unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["kind"], "puppetlabs.orchestrator/unknown-node");
    assert_eq!(c.delete(&node).send().unwrap().status(), 404);
}

#[test]
fn bad_input_gets_orchestrator_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &manifest(ORCHESTRATOR));
    let c = server.client();
    // Malformed JSON → 400 from the handler, naming the problem.
    let resp = c
        .post(server.url("/orchestrator/v1/inventory"))
        .body("{nope")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["kind"], "puppetlabs.orchestrator/validation-error");
    assert!(
        body["msg"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );
    // Wrong type and unknown fields are named.
    let body: Value = c
        .post(server.url("/orchestrator/v1/inventory"))
        .json(&json!({"nodes": "web-1"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        body["msg"].as_str().unwrap().contains("invalid type"),
        "{body}"
    );
    let body: Value = c
        .put(server.url("/orchestrator/v1/inventory/nodes/a"))
        .json(&json!({"fact": {}}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        body["msg"]
            .as_str()
            .unwrap()
            .contains("unknown field `fact`"),
        "{body}"
    );
    // Invalid node names and wrong methods.
    let resp = c
        .put(server.url("/orchestrator/v1/inventory/nodes/UPPER%20case"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = c
        .patch(server.url("/orchestrator/v1/inventory"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert!(resp.headers()["allow"].to_str().unwrap().contains("GET"));
}
