//! Helpers for the cluster API's tests (`tests/clusters.rs`,
//! `tests/cluster_jobs.rs`): a server with the default manifest's clusters
//! handler on HTTPS, calls with HTTP Basic, polling.

use super::*;
use base64::Engine;
use serde_json::{Value, json};
use std::path::Path;

/// The default manifest's clusters handler ([`shipped_handler`]), with
/// `overrides` replacing config lines, on an HTTPS listener on an
/// ephemeral port.
pub fn clusters_manifest(overrides: &[(&str, String)]) -> String {
    let mut section = String::new();
    for line in shipped_handler("clusters").lines() {
        match overrides
            .iter()
            .find(|(k, _)| line.starts_with(&format!("{k} = ")))
        {
            Some((k, v)) => section.push_str(&format!("{k} = '''{v}'''\n")),
            None => {
                section.push_str(line);
                section.push('\n');
            }
        }
    }
    format!("[[listener]]\naddress = \"127.0.0.1:0\"\ntls = \"self-signed\"\n\n{section}")
}

pub const OPS_PASSWORD: &str = "operator-password";

/// A server with the clusters API and a user `ops` with the operator role.
pub fn start(dir: &Path, overrides: &[(&str, String)]) -> Server {
    let server = Server::start(dir, &clusters_manifest(overrides));
    assert!(server.base.starts_with("https://"), "{}", server.base);
    server.put_user(
        "ops",
        json!({"password": OPS_PASSWORD, "roles": ["operator"]}),
    );
    server
}

/// Calls the API as `user` with HTTP Basic (`curl -u`); (status, body).
pub fn call_as(
    server: &Server,
    user: (&str, &str),
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = server
        .anonymous()
        .request(
            method.parse().unwrap(),
            server.url(&format!("/api/v0{path}")),
        )
        .basic_auth(user.0, Some(user.1))
        .header("content-type", "application/json");
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub fn call(server: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    call_as(server, ("ops", OPS_PASSWORD), method, path, body)
}

pub fn ok(server: &Server, method: &str, path: &str, body: Option<Value>, want: u16) -> Value {
    let (status, v) = call(server, method, path, body);
    assert_eq!(status, want, "{method} {path}: {v}");
    v
}

pub fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Polls `GET path` until `pred` holds ([`poll`]).
pub fn wait_for(server: &Server, path: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    poll(&format!("{path} to become {what}"), || {
        let v = ok(server, "GET", path, None, 200);
        if pred(&v) { Ok(v) } else { Err(v.to_string()) }
    })
}

/// A job's events through the admin API.
pub fn job_events(server: &Server, id: &str) -> Vec<Value> {
    let v = server.get_json(&format!("/admin/v1/jobs/{id}/events?limit=1000"));
    v["items"].as_array().unwrap().clone()
}

pub fn setup_cluster(server: &Server, cluster: &str) {
    ok(
        server,
        "PUT",
        "/network/net1",
        Some(json!({"type": "flannel_etcd"})),
        201,
    );
    ok(
        server,
        "PUT",
        &format!("/cluster/{cluster}"),
        Some(json!({"network": "net1"})),
        201,
    );
}

/// Registers `addresses` as hosts of `cluster` (in that order) and waits
/// until every one is `active`.
pub fn add_active_hosts(server: &Server, cluster: &str, addresses: &[&str]) {
    for a in addresses {
        ok(
            server,
            "PUT",
            &format!("/host/{a}"),
            Some(json!({"ssh_priv_key": b64("K"), "cluster": cluster})),
            201,
        );
    }
    for a in addresses {
        wait_for(server, &format!("/host/{a}"), "active", |h| {
            h["status"] == "active"
        });
    }
}
