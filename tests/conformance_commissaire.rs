//! Client conformance for the Commissaire-style cluster API: every
//! subcommand of commctl 0.0.7 replayed as it builds its request, over
//! HTTPS to the real `baton` binary, read as commctl reads the reply; and
//! the example bodies of seed 002 (Commissaire's "REST Endpoints" doc),
//! byte for byte.
//!
//! Sources read:
//! - projectatomic/commctl at commit 5c6236f (setup.py version 0.0.7, the
//!   post-0.0.6 bump; never tagged): `src/commctl/cli.py` — `Client` (a
//!   requests Session with `Content-Type: application/json` and Basic auth,
//!   or a kubeconfig's `Authorization: Bearer`), `_put`/`_delete` send
//!   `json.dumps(data)` with `data={}` by default, `_handle_status` (204 →
//!   "No instance", 2xx → the JSON if truthy, else "Created NAME" on 201 or
//!   "Success", 403 → "The provided credentials were incorrect.", 404 → "No
//!   object found.", else an error), and one method per subcommand.
//! - projectatomic/commissaire-http at commit cc6f0e7: `handlers/__init__.py`
//!   (`JSONRPC_Handler`: PUT → 201 except the member routes, 200;
//!   unparseable body → 400), `handlers/clusters/__init__.py`
//!   (`create_cluster` falls back to the `default` network;
//!   `add_cluster_member` and `check_cluster_member` answer `[host]`,
//!   `delete_cluster_member` `[]`), `authentication/__init__.py` (403
//!   Forbidden on failed authentication).

mod support;

use serde_json::{Value, json};
use support::clusters::*;
use support::*;

/// What requests adds to every request of commctl's session.
const REQUESTS_HEADERS: [(&str, &str); 4] = [
    ("user-agent", "python-requests/2.31.0"),
    ("accept-encoding", "gzip, deflate"),
    ("accept", "*/*"),
    ("connection", "keep-alive"),
];

/// How commctl's `_handle_status` turns a reply into what it prints.
#[derive(Debug, Clone, PartialEq)]
enum Printed {
    /// A truthy JSON body.
    Data(Value),
    /// 201 with a falsy body: `Created NAME`.
    Created(String),
    /// Another 2xx with a falsy body.
    Success,
    /// 204.
    NoInstance,
    /// 403: "The provided credentials were incorrect."
    CredentialsIncorrect,
    /// 404: "No object found."
    NoObject,
    /// Anything else: an error naming the status.
    Error(u16, String),
}

impl Printed {
    /// What commctl prints (for data: the JSON, which it dumps as YAML).
    fn text(&self) -> String {
        match self {
            Printed::Data(v) => v.to_string(),
            Printed::Created(name) => format!("Created {name}"),
            Printed::Success => "Success".into(),
            Printed::NoInstance => "No instance".into(),
            Printed::CredentialsIncorrect => "The provided credentials were incorrect.".into(),
            Printed::NoObject => "No object found.".into(),
            Printed::Error(status, body) => format!("Unable to ... the object: {status} ({body})"),
        }
    }

    fn data(self) -> Value {
        match self {
            Printed::Data(v) => v,
            other => panic!("expected data, commctl would print {other:?}"),
        }
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Who commctl authenticates as: a `~/.commissaire.json` username and
/// password, or a kubeconfig token.
#[derive(Clone, Copy)]
enum Cred<'a> {
    Basic(&'a str, &'a str),
    Bearer(&'a str),
}

/// One call of commctl's `Client`: `body` is `json.dumps(data)` (Python's
/// separators `", "` and `": "`), `None` for GETs, which send no body.
fn commctl(
    server: &Server,
    cred: Cred<'_>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Printed {
    let mut req = server
        .anonymous()
        .request(method.parse().unwrap(), server.url(path))
        .header("content-type", "application/json");
    for (k, v) in REQUESTS_HEADERS {
        req = req.header(k, v);
    }
    req = match cred {
        Cred::Basic(u, p) => req.basic_auth(u, Some(p)),
        Cred::Bearer(t) => req.header("authorization", format!("Bearer {t}")),
    };
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    match status {
        204 => Printed::NoInstance,
        200..=299 => match serde_json::from_str::<Value>(&text) {
            Ok(v) if truthy(&v) => Printed::Data(v),
            _ if status == 201 => Printed::Created(path.rsplit('/').next().unwrap().to_string()),
            _ => Printed::Success,
        },
        403 => {
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert!(v["error"].is_string(), "Commissaire's shape: {text}");
            Printed::CredentialsIncorrect
        }
        404 => Printed::NoObject,
        s => Printed::Error(s, text),
    }
}

const ADMIN: Cred<'static> = Cred::Basic("admin", ADMIN_PASSWORD);

fn get(server: &Server, path: &str) -> Printed {
    commctl(server, ADMIN, "GET", path, None)
}
fn put(server: &Server, path: &str, body: &str) -> Printed {
    commctl(server, ADMIN, "PUT", path, Some(body))
}
fn delete(server: &Server, path: &str) -> Printed {
    commctl(server, ADMIN, "DELETE", path, Some("{}"))
}

/// commctl `host create ADDRESS KEYFILE -c CLUSTER`, then waits until the
/// host's bootstrap job made it active.
fn host_create(server: &Server, address: &str, cluster: &str) -> Value {
    let body = format!(
        r#"{{"ssh_priv_key": "{}", "cluster": "{cluster}"}}"#,
        b64("-----BEGIN KEY-----\n")
    );
    let host = put(server, &format!("/api/v0/host/{address}"), &body).data();
    assert_eq!(host["address"], address, "{host}");
    poll(&format!("host {address} to be active"), || {
        let h = get(server, &format!("/api/v0/host/{address}")).data();
        if h["status"] == "active" {
            Ok(())
        } else {
            Err(h.to_string())
        }
    });
    host
}

/// `cluster create` with commctl's defaults (`-t kubernetes -n default -c ''`)
/// on a fresh server, and the other `cluster` subcommands.
#[test]
fn commctl_cluster_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let c = put(
        &server,
        "/api/v0/cluster/c1",
        r#"{"type": "kubernetes", "network": "default", "container_manager": ""}"#,
    )
    .data();
    assert_eq!(
        (c["name"].clone(), c["network"].clone()),
        (json!("c1"), json!("default")),
        "{c}"
    );
    // `-n` naming a network that does not exist: commissaire falls back to `default`.
    let c = put(
        &server,
        "/api/v0/cluster/c2",
        r#"{"type": "host_only", "network": "nosuchnet", "container_manager": ""}"#,
    )
    .data();
    assert_eq!(c["network"], "default");
    let got = get(&server, "/api/v0/cluster/c1").data();
    for k in ["name", "status", "network", "container_manager"] {
        assert!(got.get(k).is_some(), "{k}: {got}");
    }
    assert_eq!(
        got["hosts"],
        json!({"total": 0, "available": 0, "unavailable": 0})
    );
    assert_eq!(
        get(&server, "/api/v0/clusters"),
        Printed::Data(json!(["c1", "c2"]))
    );

    host_create(&server, "10.1.0.1", "c1");
    let started = put(
        &server,
        "/api/v0/cluster/c1/deploy",
        r#"{"version": "7.2.6"}"#,
    )
    .data();
    assert_eq!(started["version"], "7.2.6", "{started}");
    let d = poll("the deploy to finish", || {
        let d = get(&server, "/api/v0/cluster/c1/deploy").data();
        if d["status"] == "finished" {
            Ok(d)
        } else {
            Err(d.to_string())
        }
    });
    assert_eq!(
        (d["deployed"].clone(), d["in_process"].clone()),
        (json!(["10.1.0.1"]), json!([])),
        "{d}"
    );
    assert!(
        d["started_at"].is_string() && d["finished_at"].is_string(),
        "{d}"
    );
    for (op, done) in [("restart", "restarted"), ("upgrade", "upgraded")] {
        let path = format!("/api/v0/cluster/c1/{op}");
        assert!(matches!(put(&server, &path, "{}"), Printed::Data(_)));
        let s = poll(&format!("the {op} to finish"), || {
            let s = get(&server, &path).data();
            if s["status"] == "finished" {
                Ok(s)
            } else {
                Err(s.to_string())
            }
        });
        assert_eq!(s[done], json!(["10.1.0.1"]), "{s}");
        assert!(
            s["in_process"].is_array() && s["started_at"].is_string(),
            "{s}"
        );
    }
    assert_eq!(delete(&server, "/api/v0/cluster/c2"), Printed::Success);
    assert_eq!(get(&server, "/api/v0/cluster/c2"), Printed::NoObject);
    assert_eq!(
        get(&server, "/api/v0/clusters"),
        Printed::Data(json!(["c1"]))
    );
}

/// Every `host` subcommand: create, get, status, list (all and per
/// cluster), join, unjoin, ssh (reads `ssh_priv_key` and `remote_user`),
/// delete.
#[test]
fn commctl_host_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    put(
        &server,
        "/api/v0/cluster/c1",
        r#"{"type": "kubernetes", "network": "default", "container_manager": ""}"#,
    )
    .data();
    put(
        &server,
        "/api/v0/cluster/c2",
        r#"{"type": "kubernetes", "network": "default", "container_manager": ""}"#,
    )
    .data();
    host_create(&server, "10.2.0.1", "c1");
    let h = get(&server, "/api/v0/host/10.2.0.1").data();
    for k in [
        "address",
        "status",
        "os",
        "cpus",
        "memory",
        "space",
        "last_check",
    ] {
        assert!(h.get(k).is_some(), "{k}: {h}");
    }
    let s = get(&server, "/api/v0/host/10.2.0.1/status").data();
    assert_eq!(
        (s["type"].clone(), s["host"]["status"].clone()),
        (json!("host_only"), json!("active")),
        "{s}"
    );
    let all = get(&server, "/api/v0/hosts").data();
    assert_eq!(all[0]["address"], "10.2.0.1", "{all}");
    assert_eq!(
        get(&server, "/api/v0/cluster/c1/hosts"),
        Printed::Data(json!(["10.2.0.1"]))
    );

    // join: the host in a list (commctl prints it); unjoin: `[]`, "Success".
    assert_eq!(
        put(&server, "/api/v0/cluster/c2/hosts/10.2.0.1", "{}"),
        Printed::Data(json!(["10.2.0.1"]))
    );
    assert_eq!(
        get(&server, "/api/v0/cluster/c2/hosts/10.2.0.1"),
        Printed::Data(json!(["10.2.0.1"]))
    );
    assert_eq!(
        delete(&server, "/api/v0/cluster/c2/hosts/10.2.0.1"),
        Printed::Success
    );
    assert_eq!(
        get(&server, "/api/v0/cluster/c2/hosts/10.2.0.1"),
        Printed::NoObject
    );
    assert_eq!(get(&server, "/api/v0/cluster/c2/hosts"), Printed::Success);

    // ssh: `result.get('ssh_priv_key') and result.get('remote_user')`.
    let creds = get(&server, "/api/v0/host/10.2.0.1/creds").data();
    assert_eq!(creds["ssh_priv_key"], b64("-----BEGIN KEY-----\n"));
    assert_eq!(creds["remote_user"], "root");
    // A user without `hosts:creds` gets no key.
    let ops = Cred::Basic("ops", OPS_PASSWORD);
    assert_eq!(
        commctl(&server, ops, "GET", "/api/v0/host/10.2.0.1/creds", None),
        Printed::CredentialsIncorrect
    );

    assert_eq!(delete(&server, "/api/v0/host/10.2.0.1"), Printed::Success);
    assert_eq!(get(&server, "/api/v0/host/10.2.0.1"), Printed::NoObject);
    assert_eq!(get(&server, "/api/v0/cluster/c1/hosts"), Printed::Success);
}

/// `network create|get|list|delete` and `container_manager
/// create|get|list|delete` with commctl's bodies (`-o KEY=VALUE`).
#[test]
fn commctl_network_and_container_manager_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    assert_eq!(
        get(&server, "/api/v0/networks"),
        Printed::Data(json!(["default"]))
    );
    assert_eq!(
        get(&server, "/api/v0/network/default").data()["type"],
        "flannel_etcd"
    );
    let n = put(
        &server,
        "/api/v0/network/n1",
        r#"{"type": "flannel_etcd", "options": {}}"#,
    )
    .data();
    assert_eq!(
        n,
        json!({"name": "n1", "type": "flannel_etcd", "options": {}})
    );
    put(
        &server,
        "/api/v0/network/n2",
        r#"{"type": "flannel_server", "options": {"address": "10.0.0.1:8080"}}"#,
    )
    .data();
    assert_eq!(
        get(&server, "/api/v0/network/n2").data()["options"]["address"],
        "10.0.0.1:8080"
    );
    assert_eq!(
        get(&server, "/api/v0/networks"),
        Printed::Data(json!(["default", "n1", "n2"]))
    );
    assert_eq!(delete(&server, "/api/v0/network/n2"), Printed::Success);
    assert_eq!(get(&server, "/api/v0/network/n2"), Printed::NoObject);

    let m = put(
        &server,
        "/api/v0/containermanager/prod",
        r#"{"type": "openshift", "options": {"server_url": "https://192.168.152.101:8443/"}}"#,
    )
    .data();
    assert_eq!(m["options"]["server_url"], "https://192.168.152.101:8443/");
    put(
        &server,
        "/api/v0/containermanager/k8s",
        r#"{"type": "kubernetes", "options": {}}"#,
    )
    .data();
    assert_eq!(
        get(&server, "/api/v0/containermanager/prod").data()["type"],
        "openshift"
    );
    assert_eq!(
        get(&server, "/api/v0/containermanagers"),
        Printed::Data(json!(["k8s", "prod"]))
    );
    // `cluster create -c prod`.
    let c = put(
        &server,
        "/api/v0/cluster/c1",
        r#"{"type": "kubernetes", "network": "n1", "container_manager": "prod"}"#,
    )
    .data();
    assert_eq!(
        (c["network"].clone(), c["container_manager"].clone()),
        (json!("n1"), json!("prod"))
    );
    assert_eq!(
        delete(&server, "/api/v0/containermanager/k8s"),
        Printed::Success
    );
    assert_eq!(
        get(&server, "/api/v0/containermanagers"),
        Printed::Data(json!(["prod"]))
    );
}

/// commctl maps 403 to "The provided credentials were incorrect."; Baton's
/// Commissaire API answers missing and wrong credentials with 403 (only
/// it: the orchestrator's stay 401, see `conformance_orchestrator.rs`). A
/// kubeconfig's token (`Authorization: Bearer`) works.
#[test]
fn wrong_credentials_are_403_which_commctl_reads_as_incorrect() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    for cred in [
        Cred::Basic("admin", "wrong"),
        Cred::Basic("nobody", "x"),
        Cred::Bearer("not-a-token"),
    ] {
        let printed = commctl(&server, cred, "GET", "/api/v0/clusters", None);
        assert_eq!(printed.text(), "The provided credentials were incorrect.");
        assert_eq!(
            commctl(
                &server,
                cred,
                "PUT",
                "/api/v0/cluster/c1",
                Some(r#"{"type": "kubernetes", "network": "default", "container_manager": ""}"#)
            ),
            Printed::CredentialsIncorrect
        );
    }
    let resp = server
        .anonymous()
        .get(server.url("/api/v0/clusters"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.json::<Value>().unwrap()["error"].is_string());
    // Nothing was created by the refused calls (`[]` prints "Success").
    let token = server.admin_token();
    assert_eq!(
        commctl(
            &server,
            Cred::Bearer(&token),
            "GET",
            "/api/v0/clusters",
            None
        ),
        Printed::Success
    );
}

/// Seed 002's example bodies, byte for byte (their line breaks included).
const SEED_CLUSTER_PUT: &str =
    "{\n\"container_manager\": \"prod_openshift\",\n\"network\": \"default\"\n}";
const SEED_MANAGER_PUT: &str = "{\n\"type\": \"openshift\",\n\"options\": {\n\"apiserver\": \"https://192.168.152.101:8080/api/\"\n},\n}";
const SEED_HOST_PUT: &str =
    "{\n\"cluster\": \"default\",\n\"remote_user\": \"root\",\n\"ssh_priv_key\": \"dGVzdAo...\"\n}";

#[test]
fn seed_002_example_bodies_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    // The doc's ContainerManager example ends in `},\n}`: not JSON, so 400
    // (commissaire-http's `get_params` fails the same way).
    match put(
        &server,
        "/api/v0/containermanager/prod_openshift",
        SEED_MANAGER_PUT,
    ) {
        Printed::Error(400, text) => {
            assert!(serde_json::from_str::<Value>(&text).unwrap()["error"].is_string())
        }
        other => panic!("{other:?}"),
    }
    let fixed = SEED_MANAGER_PUT.replace("},\n}", "}\n}");
    let m = put(&server, "/api/v0/containermanager/prod_openshift", &fixed).data();
    assert_eq!(
        m,
        json!({"name": "prod_openshift", "type": "openshift", "options": {"apiserver": "https://192.168.152.101:8080/api/"}})
    );

    let c = put(&server, "/api/v0/cluster/default", SEED_CLUSTER_PUT).data();
    assert_eq!(
        (c["container_manager"].clone(), c["network"].clone()),
        (json!("prod_openshift"), json!("default")),
        "{c}"
    );
    for k in ["name", "status", "network", "container_manager", "hosts"] {
        assert!(c.get(k).is_some(), "{k}: {c}");
    }

    // The Host example's key is elided (`dGVzdAo...`): Baton checks that a
    // key is base64 and names the field; the key it stands for works.
    match put(&server, "/api/v0/host/192.168.100.50", SEED_HOST_PUT) {
        Printed::Error(400, text) => {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["field"], "ssh_priv_key", "{v}");
        }
        other => panic!("{other:?}"),
    }
    let h = put(
        &server,
        "/api/v0/host/192.168.100.50",
        &SEED_HOST_PUT.replace("dGVzdAo...", "dGVzdAo="),
    )
    .data();
    for k in [
        "address",
        "status",
        "os",
        "cpus",
        "memory",
        "space",
        "last_check",
        "source",
    ] {
        assert!(h.get(k).is_some(), "{k}: {h}");
    }
    poll("the host to be active", || {
        let h = get(&server, "/api/v0/host/192.168.100.50").data();
        if h["status"] == "active" {
            Ok(())
        } else {
            Err(h.to_string())
        }
    });
    // Cluster Members (Individual), GET: the doc's example reply.
    assert_eq!(
        get(&server, "/api/v0/cluster/default/hosts/192.168.100.50"),
        Printed::Data(json!(["192.168.100.50"]))
    );
    let creds = get(&server, "/api/v0/host/192.168.100.50/creds").data();
    assert_eq!(
        creds,
        json!({"ssh_priv_key": "dGVzdAo=", "remote_user": "root"})
    );
    let s = get(&server, "/api/v0/host/192.168.100.50/status").data();
    assert_eq!(s["type"], "host_only");
    assert!(
        s["host"]["last_check"].is_string() && s["container_manager"].is_object(),
        "{s}"
    );
    let c = get(&server, "/api/v0/cluster/default").data();
    assert_eq!(
        c["hosts"],
        json!({"total": 1, "available": 1, "unavailable": 0}),
        "{c}"
    );
    assert_eq!(c["status"], "ok");
}
