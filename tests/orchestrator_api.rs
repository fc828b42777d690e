//! The orchestrator's read side and edges over real HTTPS: paging while jobs
//! are created, node groups and All Nodes, errors, permissions.

#[path = "support/orchestrator.rs"]
mod orch;
mod support;

use orch::*;
use serde_json::{Value, json};
use support::*;

#[test]
fn paging_is_stable_while_jobs_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &manifest_with_agent(r#"["sh", "-c", "true"]"#));
    for _ in 0..5 {
        deploy(
            &server,
            json!({"environment": "production", "scope": {"nodes": ["a"]}}),
        );
    }
    let creator = {
        let client = server.client();
        let url = server.url("/orchestrator/v1/command/deploy");
        std::thread::spawn(move || {
            for _ in 0..15 {
                let resp = client
                    .post(&url)
                    .json(&json!({"environment": "production", "scope": {"nodes": ["a"]}}))
                    .send()
                    .unwrap();
                assert_eq!(resp.status(), 202);
            }
        })
    };
    let mut seen: Vec<u64> = Vec::new();
    let mut offset = 0;
    loop {
        let page = server.get_json(&format!("/orchestrator/v1/jobs?limit=2&offset={offset}"));
        let items = page["items"].as_array().unwrap();
        if items.is_empty() {
            break;
        }
        assert!(page["pagination"]["total"].as_u64().unwrap() >= 5);
        assert_eq!(page["pagination"]["limit"], 2);
        seen.extend(
            items
                .iter()
                .map(|j| j["name"].as_str().unwrap().parse::<u64>().unwrap()),
        );
        offset += items.len();
    }
    creator.join().unwrap();
    let expected: Vec<u64> = (1..=seen.len() as u64).collect();
    assert_eq!(seen, expected, "every job once, in order");
    assert!(seen.len() >= 5);
    // Descending order and ordering by another field.
    let desc = server.get_json("/orchestrator/v1/jobs?order=desc&limit=1");
    assert_eq!(desc["items"][0]["name"], "20");
    assert_eq!(desc["pagination"]["total"], 20);
    let by_state = server.get_json("/orchestrator/v1/jobs?order_by=state&offset=19");
    assert_eq!(by_state["items"].as_array().unwrap().len(), 1);
    // Numbers past 32 bits (the guest's usize) are numbers, not a 400
    // "must be a non-negative integer" (schemathesis): the most there is.
    let all = server.get_json("/orchestrator/v1/jobs?limit=4294967296");
    assert_eq!(all["items"].as_array().unwrap().len(), 20, "{all}");
    let past = server.get_json("/orchestrator/v1/jobs?offset=187760971602245451776");
    assert_eq!(past["items"], json!([]), "{past}");
    let none = server.get_json("/orchestrator/v1/jobs/1/events?start=6117351811");
    assert_eq!(none["items"], json!([]), "{none}");
}

#[test]
fn node_groups_resolve_and_all_nodes_follows_the_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &manifest_with_agent(r#"["sh", "-c", "echo $1", "x", "{node}"]"#),
    );
    let c = server.client();
    let all = server.get_json(&format!("/orchestrator/v1/node_groups/{ALL_NODES}"));
    assert_eq!(all["name"], "All Nodes");
    assert_eq!(all["nodes"], json!([]));
    // An empty inventory: the All Nodes deploy has no target.
    let (status, reply) = post(
        &server,
        "/command/deploy",
        json!({"environment": "production", "scope": {"node_group": ALL_NODES}}),
    );
    assert_eq!(status, 400);
    assert_eq!(reply["kind"], "puppetlabs.orchestrator/empty-target");

    add_nodes(&server, &["web-1", "web-2", "db-1"]);
    let all = server.get_json(&format!("/orchestrator/v1/node_groups/{ALL_NODES}"));
    assert_eq!(all["nodes"], json!(["db-1", "web-1", "web-2"]));
    let web = "3f2c1a9e-0b1d-4c6e-9f00-1234567890ab";
    let url = server.url(&format!("/orchestrator/v1/node_groups/{web}"));
    let body = json!({"name": "web", "rule": {"nodes": ["web-2", "web-1"]}});
    assert_eq!(c.put(&url).json(&body).send().unwrap().status(), 201);
    assert_eq!(c.put(&url).json(&body).send().unwrap().status(), 200);
    let list = server.get_json("/orchestrator/v1/node_groups");
    assert_eq!(list["items"][0]["id"], ALL_NODES);
    assert_eq!(list["items"][1]["nodes"], json!(["web-1", "web-2"]));

    let name = deploy(
        &server,
        json!({"environment": "production", "scope": {"node_group": web}}),
    );
    let j = wait_final(&server, &name);
    assert_eq!(
        (j["state"].clone(), j["node_count"].clone()),
        (json!("finished"), json!(2))
    );
    let name = deploy(
        &server,
        json!({"environment": "production", "scope": {"node_group": ALL_NODES}}),
    );
    assert_eq!(wait_final(&server, &name)["node_count"], 3);

    // All Nodes is built in; unknown groups are 404.
    let all_url = server.url(&format!("/orchestrator/v1/node_groups/{ALL_NODES}"));
    for resp in [
        c.put(&all_url).json(&body).send().unwrap(),
        c.delete(&all_url).send().unwrap(),
    ] {
        assert_eq!(resp.status(), 403);
        let b: Value = resp.json().unwrap();
        assert_eq!(b["kind"], "puppetlabs.orchestrator/not-permitted");
    }
    assert_eq!(c.delete(&url).send().unwrap().status(), 204);
    assert_eq!(c.delete(&url).send().unwrap().status(), 404);
    let (status, reply) = post(
        &server,
        "/command/deploy",
        json!({"environment": "production", "scope": {"node_group": web}}),
    );
    assert_eq!(status, 404);
    assert_eq!(reply["kind"], "puppetlabs.orchestrator/unknown-node-group");
    let bad = c
        .put(&url)
        .json(&json!({"name": "x", "rule": "some"}))
        .send()
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[test]
fn bad_requests_get_orchestrator_errors_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &manifest_with_agent(r#"["sh", "-c", "true"]"#));
    let cases = [
        (
            json!({"scope": {"nodes": ["a"]}}),
            "missing field `environment`",
        ),
        (
            json!({"environment": "production", "scope": {}}),
            "exactly one of",
        ),
        (
            json!({"environment": "production", "scope": {"nodes": ["a"], "node_group": ALL_NODES}}),
            "nodes and node_group",
        ),
        (
            json!({"environment": 7, "scope": {"nodes": ["a"]}}),
            "invalid type",
        ),
        (
            json!({"environment": "production", "scope": {"nodes": "a"}}),
            "invalid type",
        ),
        (
            json!({"environment": "production", "scope": {"nodes": ["a"]}, "concurrency": "2"}),
            "invalid type",
        ),
        (
            json!({"environment": "production", "scope": {"nodes": ["a"]}, "colour": "red"}),
            "unknown field `colour`",
        ),
        (
            json!({"environment": "production", "scope": {"query": ["from", "nodes"]}}),
            "not supported",
        ),
        (
            json!({"environment": "production", "scope": {"node_group": "web"}}),
            "UUID",
        ),
    ];
    for (body, needle) in cases {
        let (status, reply) = post(&server, "/command/deploy", body.clone());
        assert_eq!(status, 400, "{body} → {reply}");
        assert_eq!(
            reply["kind"], "puppetlabs.orchestrator/validation-error",
            "{reply}"
        );
        assert!(
            reply["msg"].as_str().unwrap().contains(needle),
            "{body} → {reply}"
        );
        assert!(reply["details"].is_object());
    }
    let (status, reply) = post(
        &server,
        "/command/deploy",
        json!({"environment": "production", "scope": {"nodes": []}}),
    );
    assert_eq!(
        (status, reply["kind"].clone()),
        (400, json!("puppetlabs.orchestrator/empty-target"))
    );
    let (status, reply) = post(
        &server,
        "/command/task",
        json!({"task": "Bad Task", "params": {}, "scope": {"nodes": ["a"]}}),
    );
    assert_eq!(status, 400);
    assert!(reply["msg"].as_str().unwrap().contains("task"), "{reply}");
    let resp = server
        .client()
        .post(server.url("/orchestrator/v1/command/deploy"))
        .body("{garbage")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    let reply: Value = resp.json().unwrap();
    assert!(
        reply["msg"].as_str().unwrap().contains("not valid JSON"),
        "{reply}"
    );

    for (path, status, kind) in [
        ("/jobs/42", 404, "unknown-job"),
        ("/jobs/42/nodes", 404, "unknown-job"),
        ("/jobs/42/events", 404, "unknown-job"),
        ("/jobs/42/report", 404, "unknown-job"),
        ("/jobs/forty-two", 400, "validation-error"),
        ("/jobs?limit=-1", 400, "validation-error"),
        ("/jobs?order_by=colour", 400, "validation-error"),
        ("/jobs?type=deploy&task=x", 400, "validation-error"),
        (
            "/jobs?min_finish_timestamp=yesterday",
            400,
            "validation-error",
        ),
    ] {
        let resp = server
            .client()
            .get(server.url(&format!("/orchestrator/v1{path}")))
            .send()
            .unwrap();
        assert_eq!(resp.status(), status, "{path}");
        let body: Value = resp.json().unwrap();
        assert_eq!(
            body["kind"],
            format!("puppetlabs.orchestrator/{kind}"),
            "{path}: {body}"
        );
    }
    // No job was created by any of these.
    assert_eq!(
        server.get_json("/orchestrator/v1/jobs")["pagination"]["total"],
        0
    );
    // Issue 19, item 11: an inventory node's body is an object (`[]` and
    // `"x"` are not nodes); a group's name may not carry control or
    // bidirectional characters or a `..` segment; a huge bad value is named
    // in the error, not echoed back whole.
    let c = server.client();
    for body in ["[]", "\"x\"", "7"] {
        let resp = c
            .put(server.url("/orchestrator/v1/inventory/nodes/web-1"))
            .body(body)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let reply: Value = resp.json().unwrap();
        assert!(
            reply["msg"].as_str().unwrap().contains("JSON object"),
            "{reply}"
        );
    }
    let resp = c
        .put(server.url("/orchestrator/v1/inventory/nodes/web-1"))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let group = "/orchestrator/v1/node_groups/6f1c7a2e-0d4b-4c3a-9f1e-2b8d5c6e7a10";
    for name in ["web\u{202e}gnp", "a\u{0}b", "prod/../x"] {
        let resp = c
            .put(server.url(group))
            .json(&json!({"name": name, "rule": "all"}))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 400, "{name:?}");
        let reply: Value = resp.json().unwrap();
        assert!(
            reply["msg"].as_str().unwrap().contains("`name` must not"),
            "{reply}"
        );
    }
    let huge = "9".repeat(200_000) + "x";
    let (status, reply) = post(&server, "/command/stop", json!({ "job": huge }));
    assert_eq!(status, 400);
    let text = reply.to_string();
    assert!(text.len() < 2_000, "a reply of {} bytes", text.len());
    assert!(
        reply["details"]["value"]
            .as_str()
            .unwrap()
            .ends_with("(200001 bytes)"),
        "{reply}"
    );
    // Without a token: 401 in the same shape.
    let resp = server
        .anonymous()
        .get(server.url("/orchestrator/v1/jobs"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[test]
fn a_viewer_may_read_jobs_but_not_start_or_stop_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &shipped_manifest());
    server.put_user(
        "vera",
        json!({"password": "viewer-password", "roles": ["viewer"]}),
    );
    let name = deploy(
        &server,
        json!({"environment": "production", "scope": {"nodes": ["a"]}}),
    );
    let viewer = server.client_with_token(&server.token("vera"));
    for path in ["/command/deploy", "/command/stop"] {
        let resp = viewer
            .post(server.url(&format!("/orchestrator/v1{path}")))
            .json(&json!({"environment": "production", "scope": {"nodes": ["a"]}, "job": name}))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 403, "{path}");
        let body: Value = resp.json().unwrap();
        assert_eq!(body["kind"], "puppetlabs.orchestrator/not-permitted");
    }
    let resp = viewer
        .get(server.url(&format!("/orchestrator/v1/jobs/{name}")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// The `id` of the orchestrator's `deploy` command link, asked with `host`
/// as the `Host` header.
fn deploy_link(server: &Server, host: &str) -> String {
    let resp = server
        .client()
        .get(server.url("/orchestrator/v1/"))
        .header(reqwest::header::HOST, host)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().unwrap();
    body["commands"]["deploy"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn absolute_urls_take_a_plain_host_header_or_the_listeners_public_url() {
    // Issue 19, item 11: the Host header was copied into every link.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &manifest_with_agent(r#"["sh", "-c", "true"]"#));
    let bound = server.base.clone();
    assert_eq!(
        deploy_link(&server, "baton.example.com:8143"),
        "https://baton.example.com:8143/orchestrator/v1/command/deploy"
    );
    for hostile in [
        "evil.example/\"><script>",
        "user@evil.example",
        "a b",
        "x:99999",
    ] {
        assert_eq!(
            deploy_link(&server, hostile),
            format!("{bound}/orchestrator/v1/command/deploy"),
            "Host: {hostile}"
        );
    }
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let manifest = manifest_with_agent(r#"["sh", "-c", "true"]"#).replacen(
        "address = \"127.0.0.1:0\"",
        "address = \"127.0.0.1:0\"\npublic_url = \"https://orchestrator.example/\"",
        1,
    );
    let server = Server::start(dir.path(), &manifest);
    assert_eq!(
        deploy_link(&server, "baton.example.com:8143"),
        "https://orchestrator.example/orchestrator/v1/command/deploy"
    );
}
