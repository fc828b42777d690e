//! Client conformance of the provisioning API: every request of its REST
//! reference (design seed 003, "REST API Reference", dated 2026-01-14),
//! written onto the wire as the document writes it — method, path,
//! `Content-Type: application/json`, `Authorization: Bearer <jwt>`, the
//! bodies byte for byte (only HTTP framing added: `Host`,
//! `Content-Length`) — to the real `baton` binary running the shipped
//! default manifest (plain HTTP listener of its own), and each reply
//! checked against the fields and types the document shows.

mod support;
#[path = "conformance/wire.rs"]
mod wire;

use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use support::*;

/// The credentials of the seed's login example, used as the admin's.
const SEED_LOGIN: &str =
    "{\n \"username\": \"admin\",\n \"password\": \"password\",\n \"mfa_code\": \"123456\"\n}";

/// The shipped default manifest, both listeners on ephemeral ports.
fn default_manifest() -> String {
    let text = std::fs::read_to_string(root().join("host/baton.toml")).unwrap();
    text.replace("address = \"127.0.0.1:8143\"", "address = \"127.0.0.1:0\"")
        .replace("address = \"127.0.0.1:9090\"", "address = \"127.0.0.1:0\"")
}

/// The default manifest served with the admin password `password`.
struct Api {
    /// The server, killed when the test ends.
    _server: Server,
    /// `127.0.0.1:PORT` of the provisioning listener.
    addr: String,
}

impl Api {
    fn start(dir: &Path) -> Api {
        let path = dir.join("baton.toml");
        std::fs::write(&path, default_manifest()).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_baton"));
        cmd.arg("serve")
            .arg("--manifest")
            .arg(&path)
            .arg("--data")
            .arg(dir.join("data"))
            .env("BATON_ADMIN_PASSWORD", "password");
        let mut server = Server::spawn_without_admin_password(cmd, dir.join("data"));
        server.manifest = Some(path);
        let addr = wire::authority(&server.listener_url(1));
        Api {
            _server: server,
            addr,
        }
    }

    /// `METHOD path` with the document's headers (`Content-Type` with a
    /// body, the bearer token when given) and `body` byte for byte.
    fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if let Some(t) = token {
            req += &format!("Authorization: Bearer {t}\r\n");
        }
        if let Some(b) = body {
            req += &format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            );
        }
        req += "\r\n";
        req += body.unwrap_or_default();
        let r = wire::exchange(&self.addr, None, req.as_bytes());
        let v = r.json();
        // The envelope of every reply.
        assert_eq!(v["success"], json!(r.status < 400), "{method} {path}: {v}");
        assert!(v.get("data").is_some() && v.get("error").is_some(), "{v}");
        (r.status, v)
    }

    /// Logs in with the seed's body; the access token.
    fn login(&self) -> String {
        let (status, v) = self.send("POST", "/auth/login", None, Some(SEED_LOGIN));
        assert_eq!(status, 200, "{v}");
        v["data"]["access_token"].as_str().unwrap().to_string()
    }

    /// Polls `GET /tasks/{id}` until the task has ended.
    fn finished_task(&self, token: &str, id: &str) -> Value {
        poll(&format!("task {id} to end"), || {
            let (status, v) = self.send("GET", &format!("/tasks/{id}"), Some(token), None);
            assert_eq!(status, 200, "{v}");
            match v["data"]["status"].as_str() {
                Some("Completed" | "Failed" | "Cancelled") => Ok(v["data"].clone()),
                _ => Err(v.to_string()),
            }
        })
    }
}

fn is_uuid(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 36
            && s.chars().enumerate().all(|(i, c)| {
                if [8, 13, 18, 23].contains(&i) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            })
    })
}

fn is_time(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() >= 20 && s.as_bytes()[10] == b'T' && s.ends_with('Z'))
}

/// A task as the seed's `GET /tasks` and `GET /tasks/{id}` show one: every
/// field, each with the seed's type.
fn check_task_shape(t: &Value) {
    assert!(is_uuid(&t["id"]), "id: {t}");
    assert!(t["name"].is_string(), "name: {t}");
    assert!(t["command"].is_string(), "command: {t}");
    assert!(
        t["args"]
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string)),
        "args: {t}"
    );
    assert!(t["dependencies"].is_array(), "dependencies: {t}");
    assert!(
        ["Pending", "Running", "Completed", "Failed", "Cancelled"]
            .contains(&t["status"].as_str().unwrap_or("")),
        "status: {t}"
    );
    assert!(is_time(&t["created_at"]), "created_at: {t}");
    for k in ["started_at", "completed_at"] {
        assert!(t[k].is_null() || is_time(&t[k]), "{k}: {t}");
    }
    for k in ["output", "error"] {
        assert!(t[k].is_null() || t[k].is_string(), "{k}: {t}");
        assert!(t.get(k).is_some(), "{k} missing: {t}");
    }
}

// Seed 003: "Getting Access Token" (POST /auth/login with username, password
// and mfa_code), "GET /health", "GET /tasks", "GET /tasks/{id}", and the three
// "Workflow Submission" bodies, verbatim.
#[test]
fn seed_003_login_health_tasks_and_workflows() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());

    let (status, v) = api.send("GET", "/health", None, None);
    assert_eq!(status, 200);
    assert_eq!(
        (&v["success"], &v["data"]),
        (&json!(true), &json!("Orchestrator is healthy"))
    );

    // The login body as written: a user without a second factor may send mfa_code.
    let (status, v) = api.send("POST", "/auth/login", None, Some(SEED_LOGIN));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["token_type"], "Bearer");
    assert!(
        v["data"]["refresh_token"].is_string() && v["data"]["expires_in"].is_u64(),
        "{v}"
    );
    let token = v["data"]["access_token"].as_str().unwrap().to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    let workflows = [
        (
            "/workflows/servers/create",
            "{\n \"infra\": \"production\",\n \"settings\": \"config.ncl\",\n \"check_mode\": false,\n \"wait\": true\n}",
            "provisioning servers create",
        ),
        (
            "/workflows/taskserv/create",
            "{\n \"operation\": \"create\",\n \"taskserv\": \"kubernetes\",\n \"infra\": \"production\",\n \"settings\": \"config.ncl\",\n \"check_mode\": false,\n \"wait\": true\n}",
            "provisioning taskserv create kubernetes",
        ),
        (
            "/workflows/cluster/create",
            "{\n \"operation\": \"create\",\n \"cluster_type\": \"buildkit\",\n \"infra\": \"production\",\n \"settings\": \"config.ncl\",\n \"check_mode\": false,\n \"wait\": true\n}",
            "provisioning cluster create buildkit",
        ),
    ];
    let mut ids = Vec::new();
    for (path, body, command) in workflows {
        let (status, v) = api.send("POST", path, Some(&token), Some(body));
        assert_eq!(status, 200, "{path}: {v}");
        assert!(is_uuid(&v["data"]), "{path}: data is the task id: {v}");
        let id = v["data"].as_str().unwrap().to_string();
        let t = api.finished_task(&token, &id);
        check_task_shape(&t);
        assert_eq!(t["status"], "Completed", "{t}");
        assert_eq!(t["command"], command);
        assert_eq!(
            t["args"],
            json!([
                "--infra",
                "production",
                "--settings",
                "config.ncl",
                "--wait"
            ])
        );
        assert_eq!(t["dependencies"], json!([]));
        assert!(
            is_time(&t["started_at"]) && is_time(&t["completed_at"]),
            "{t}"
        );
        assert!(
            t["output"]
                .as_str()
                .unwrap()
                .contains(&format!("would run: {command}")),
            "{t}"
        );
        assert_eq!(t["error"], Value::Null);
        ids.push(id);
    }

    let (status, v) = api.send("GET", "/tasks", Some(&token), None);
    assert_eq!(status, 200);
    let listed = v["data"].as_array().unwrap();
    for t in listed {
        check_task_shape(t);
    }
    for id in &ids {
        assert!(
            listed.iter().any(|t| t["id"] == id.as_str()),
            "{id} not in {v}"
        );
    }
    // The documented query parameters.
    let (status, v) = api.send(
        "GET",
        "/tasks?status=Completed&limit=2&offset=1",
        Some(&token),
        None,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 2, "{v}");

    // Refusals: no token, a wrong password, a second factor that is wrong.
    let (status, v) = api.send("GET", "/tasks", None, None);
    assert_eq!((status, &v["success"]), (401, &json!(false)));
    let wrong = SEED_LOGIN.replace("\"password\": \"password\"", "\"password\": \"passw0rd\"");
    let (status, _) = api.send("POST", "/auth/login", None, Some(&wrong));
    assert_eq!(status, 401);
}

/// Seed 003's `POST /batch/execute` body. The seed breaks off inside the
/// second operation, after `"provider": "aws",`; everything up to there is
/// as written (including `"plan": "1xCPU-2 GB"`), and it is completed with
/// that operation's dependency and its taskservs.
const SEED_BATCH: &str = concat!(
    "{\n \"name\": \"multi_cloud_deployment\",\n \"version\": \"1.0.0\",\n \"storage_backend\": \"surrealdb\",\n",
    " \"parallel_limit\": 5,\n \"rollback_enabled\": true,\n \"operations\": [\n {\n \"id\": \"upcloud_servers\",\n",
    " \"type\": \"server_batch\",\n \"provider\": \"upcloud\",\n \"dependencies\": [],\n \"server_configs\": [\n",
    " {\"name\": \"web-01\", \"plan\": \"1xCPU-2 GB\", \"zone\": \"de-fra1\"},\n",
    " {\"name\": \"web-02\", \"plan\": \"1xCPU-2 GB\", \"zone\": \"us-nyc1\"}\n ]\n },\n {\n \"id\": \"aws_taskservs\",\n",
    " \"type\": \"taskserv_batch\",\n \"provider\": \"aws\",\n",
    // ↑ the seed ends here; the rest completes the document.
    " \"dependencies\": [\"upcloud_servers\"],\n \"taskservs\": [\"kubernetes\", \"cilium\"]\n }\n ]\n}"
);

// Seed 003: "POST /batch/execute" (its body as written, "1xCPU-2 GB" included),
// then the batch's status through GET /batch/operations and /batch/operations/{id}.
#[test]
fn seed_003_batch_with_its_values_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::start(dir.path());
    let token = api.login();

    let (status, v) = api.send("POST", "/batch/execute", Some(&token), Some(SEED_BATCH));
    assert_eq!(status, 200, "{v}");
    let id = v["data"].as_str().unwrap().to_string();
    assert!(is_uuid(&v["data"]), "{v}");
    let batch = poll("the batch to end", || {
        let (status, v) = api.send(
            "GET",
            &format!("/batch/operations/{id}"),
            Some(&token),
            None,
        );
        assert_eq!(status, 200, "{v}");
        if v["data"]["status"] == "Completed" || v["data"]["status"] == "Failed" {
            Ok(v["data"].clone())
        } else {
            Err(v.to_string())
        }
    });
    assert_eq!(batch["status"], "Completed", "{batch}");
    assert_eq!(batch["version"], "1.0.0");
    assert_eq!(batch["storage_backend"], "surrealdb");

    // `1xCPU-2 GB` reached the CLI as one argument, after `--plan`.
    let (_, v) = api.send("GET", "/tasks?limit=1000", Some(&token), None);
    let tasks = v["data"].as_array().unwrap();
    let servers: Vec<&Value> = tasks
        .iter()
        .filter(|t| t["command"] == "provisioning servers create")
        .collect();
    assert_eq!(servers.len(), 2, "{v}");
    for t in servers {
        check_task_shape(t);
        let args: Vec<&str> = t["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let plan = args
            .iter()
            .position(|a| *a == "--plan")
            .expect("a --plan argument");
        assert_eq!(args[plan + 1], "1xCPU-2 GB", "{t}");
        assert!(
            t["output"]
                .as_str()
                .unwrap()
                .contains("--plan 1xCPU-2 GB --zone"),
            "{t}"
        );
    }

    let (status, v) = api.send("GET", "/batch/operations", Some(&token), None);
    assert_eq!(status, 200);
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["id"] == id.as_str()),
        "{v}"
    );

    // What does matter is still refused: a value that would read as a flag,
    // a control character, an empty name.
    for (from, to, field) in [
        (
            "\"plan\": \"1xCPU-2 GB\", \"zone\": \"de-fra1\"",
            "\"plan\": \"--force\", \"zone\": \"de-fra1\"",
            "plan",
        ),
        (
            "\"zone\": \"us-nyc1\"",
            "\"zone\": \"us-nyc1\\nmore\"",
            "zone",
        ),
        (
            "\"name\": \"web-01\"",
            "\"name\": \"\"",
            "server_configs item",
        ),
    ] {
        let body = SEED_BATCH.replacen(from, to, 1);
        assert_ne!(body, SEED_BATCH);
        let (status, v) = api.send("POST", "/batch/execute", Some(&token), Some(&body));
        assert_eq!(status, 400, "{to}: {v}");
        assert!(v["error"].as_str().unwrap().contains(field), "{to}: {v}");
    }
}
