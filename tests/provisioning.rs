//! The provisioning API (specs/provisioning.md) on its own plain-HTTP
//! listener: batches run in dependency order, roll back in reverse, cancel;
//! workflows become tasks running the CLI; login with MFA; the envelope.
//!
//! The CLI here is a `sh -c` script that appends `start …`/`end …` lines to
//! a log file, so the order the real processes ran in is on disk.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use support::*;

/// The test CLI: logs start and end of every call; an argument `fail` makes
/// it exit 1, an argument `slow` makes it say `waiting …` and sleep (until
/// killed), an argument `once` does so only the first time it runs.
const SCRIPT: &str = r#"echo "start $*" >> "$LOG"; sleep 0.2; case " $* " in *" fail "*) echo "refused: fail" >&2; exit 1;; *" slow "*) echo "waiting $*" >> "$LOG"; sleep 600;; *" once "*) if [ ! -e "$LOG.once" ]; then : > "$LOG.once"; echo "waiting $*" >> "$LOG"; sleep 600; fi;; esac; echo "end $*" >> "$LOG"; echo "done: $*""#;

fn prov_manifest(log: &Path) -> String {
    let args = serde_json::to_string(&json!(["-c", SCRIPT, "provisioning"])).unwrap();
    let env = serde_json::to_string(&json!({"PATH": "/usr/bin:/bin", "LOG": log})).unwrap();
    format!(
        r#"[[listener]]
address = "127.0.0.1:0"
exclude = ["provisioning"]

[[listener]]
address = "127.0.0.1:0"
mounts = ["provisioning"]

{handler}[handler.config]
cli = "sh"
cli_args = '{args}'
cli_env = '{env}'
"#,
        handler = shipped_handler_without_config("provisioning")
    )
}

/// A client of the provisioning listener with a bearer token (or none).
struct Api {
    base: String,
    http: reqwest::blocking::Client,
    token: Option<String>,
}

impl Api {
    fn new(server: &Server, token: Option<String>) -> Api {
        Api {
            base: server.listener_url(1),
            http: server.anonymous(),
            token,
        }
    }

    fn send(&self, method: &str, path: &str, body: Option<&[u8]>) -> (u16, Value) {
        let mut rb = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_vec());
        }
        let resp = rb.send().unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"));
        // Every reply is the envelope.
        assert!(v["success"].is_boolean(), "{method} {path}: {v}");
        assert_eq!(v["success"], status < 400, "{method} {path}: {v}");
        assert!(v.get("data").is_some() && v.get("error").is_some(), "{v}");
        (status, v)
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, None)
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send("POST", path, Some(body.to_string().as_bytes()))
    }

    /// Polls `path` until `done(data)` (generous deadline).
    fn wait(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        poll(&format!("{path} to get there"), || {
            let (status, v) = self.get(path);
            assert_eq!(status, 200, "{v}");
            if done(&v["data"]) {
                Ok(v["data"].clone())
            } else {
                Err(v.to_string())
            }
        })
    }

    fn wait_batch(&self, id: &str) -> Value {
        self.wait(&format!("/batch/operations/{id}"), |b| {
            matches!(
                b["status"].as_str(),
                Some("Completed" | "Failed" | "Cancelled" | "RolledBack")
            )
        })
    }
}

fn start(dir: &Path) -> (Server, Api, std::path::PathBuf) {
    let log = dir.join("cli.log");
    std::fs::write(&log, "").unwrap();
    let server = Server::start(dir, &prov_manifest(&log));
    let api = Api::new(&server, Some(server.admin_token()));
    (server, api, log)
}

fn log_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn position(lines: &[String], pred: impl Fn(&str) -> bool) -> Vec<usize> {
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| pred(l))
        .map(|(i, _)| i)
        .collect()
}

fn multi_cloud(rollback: bool) -> Value {
    json!({
        "name": "multi_cloud_deployment",
        "version": "1.0.0",
        "storage_backend": "surrealdb",
        "parallel_limit": 2,
        "rollback_enabled": rollback,
        "infra": "production",
        "operations": [
            {"id": "upcloud_servers", "type": "server_batch", "provider": "upcloud", "dependencies": [],
             "server_configs": [{"name": "web-01", "plan": "1xCPU-2 GB", "zone": "de-fra1"},
                                {"name": "web-02", "plan": "1xCPU-2 GB", "zone": "us-nyc1"}]},
            {"id": "aws_taskservs", "type": "taskserv_batch", "provider": "aws",
             "dependencies": ["upcloud_servers"], "taskservs": ["kubernetes", "cilium"]}
        ]
    })
}

#[test]
fn multi_cloud_batch_completes_with_taskservs_after_the_servers() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api, log) = start(dir.path());
    let (status, v) = api.post("/batch/execute", &multi_cloud(true));
    assert_eq!(status, 200, "{v}");
    let id = v["data"].as_str().unwrap().to_string();
    let b = api.wait_batch(&id);
    assert_eq!(b["status"], "Completed", "{b}");
    assert_eq!(b["name"], "multi_cloud_deployment");
    assert_eq!(b["storage_backend"], "surrealdb");
    assert_eq!(
        b["progress"],
        json!({"completed": 4, "total": 4, "percent": 100})
    );
    let ops = b["operations"].as_array().unwrap();
    assert!(ops.iter().all(|o| o["status"] == "Completed"), "{b}");

    // The processes' own record: both servers ended before any taskserv started.
    let lines = log_lines(&log);
    let server_ends = position(&lines, |l| l.starts_with("end servers create"));
    let taskserv_starts = position(&lines, |l| l.starts_with("start taskserv create"));
    assert_eq!(
        (server_ends.len(), taskserv_starts.len()),
        (2, 2),
        "{lines:#?}"
    );
    assert!(
        server_ends.iter().max() < taskserv_starts.iter().min(),
        "{lines:#?}"
    );
    // And the API's timestamps agree.
    assert!(
        ops[1]["started_at"].as_str() >= ops[0]["completed_at"].as_str(),
        "{b}"
    );

    // Each item is a task linked to the batch, running the CLI's command.
    let web1 = ops[0]["task_ids"][0].as_str().unwrap();
    let (status, t) = api.get(&format!("/tasks/{web1}"));
    assert_eq!(status, 200);
    let t = &t["data"];
    assert_eq!(t["command"], "provisioning servers create");
    assert_eq!(
        t["args"],
        json!([
            "--infra",
            "production",
            "--provider",
            "upcloud",
            "--server",
            "web-01",
            "--plan",
            "1xCPU-2 GB",
            "--zone",
            "de-fra1"
        ])
    );
    assert_eq!(t["status"], "Completed");
    assert_eq!(t["batch_id"], id.as_str());
    assert!(
        t["output"]
            .as_str()
            .unwrap()
            .contains("done: servers create"),
        "{t}"
    );
    let k8s = ops[1]["task_ids"][0].as_str().unwrap();
    let (_, t) = api.get(&format!("/tasks/{k8s}"));
    assert_eq!(t["data"]["dependencies"], json!([ops[0]["task_ids"][1]]));

    // Listed, newest first.
    let (_, list) = api.get("/batch/operations");
    assert_eq!(list["data"][0]["id"], id.as_str());
    let (_, tasks) = api.get("/tasks?limit=2");
    let tasks = tasks["data"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0]["id"], ops[1]["task_ids"][1]);
}

/// The most processes the log shows running at once.
fn most_at_once(lines: &[String]) -> usize {
    let (mut now, mut most) = (0usize, 0usize);
    for l in lines {
        if l.starts_with("start") {
            now += 1;
            most = most.max(now);
        } else if l.starts_with("end") {
            now -= 1;
        }
    }
    most
}

#[test]
fn parallel_limit_caps_the_operations_running_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api, log) = start(dir.path());
    for limit in [1, 2] {
        std::fs::write(&log, "").unwrap();
        let ops: Vec<Value> = (0..4)
            .map(|i| {
                json!({"id": format!("op{i}"), "type": "server_batch", "provider": "upcloud",
                       "server_configs": [{"name": format!("s{i}-a")}, {"name": format!("s{i}-b")}]})
            })
            .collect();
        let (status, v) = api.post(
            "/batch/execute",
            &json!({"name": "wide", "parallel_limit": limit, "operations": ops}),
        );
        assert_eq!(status, 200, "{v}");
        let b = api.wait_batch(v["data"].as_str().unwrap());
        assert_eq!(b["status"], "Completed", "{b}");
        assert_eq!(b["parallel_limit"], limit);
        let lines = log_lines(&log);
        assert_eq!(lines.len(), 16, "{lines:#?}");
        assert!(most_at_once(&lines) <= limit, "limit {limit}: {lines:#?}");
        // Items of one operation run in order.
        for i in 0..4 {
            let a = position(&lines, |l| {
                l.starts_with("end") && l.contains(&format!("s{i}-a"))
            });
            let b = position(&lines, |l| {
                l.starts_with("start") && l.contains(&format!("s{i}-b"))
            });
            assert!(a[0] < b[0], "{lines:#?}");
        }
    }
}

#[test]
fn a_failure_rolls_back_completed_operations_in_reverse_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api, log) = start(dir.path());
    let mut body = multi_cloud(true);
    body["operations"].as_array_mut().unwrap().push(json!({
        "id": "broken_servers", "type": "server_batch", "provider": "fail",
        "dependencies": ["aws_taskservs"], "server_configs": [{"name": "db-01"}]
    }));
    let (status, v) = api.post("/batch/execute", &body);
    assert_eq!(status, 200, "{v}");
    let b = api.wait_batch(v["data"].as_str().unwrap());
    assert_eq!(b["status"], "RolledBack", "{b}");
    let st: Vec<&str> = b["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(st, ["RolledBack", "RolledBack", "Failed"], "{b}");
    let err = b["operations"][2]["error"].as_str().unwrap();
    assert!(
        err.contains("exited with code 1") && err.contains("refused: fail"),
        "{err}"
    );

    let lines = log_lines(&log);
    let undone: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("end") && l.contains(" delete "))
        .cloned()
        .collect();
    let order: Vec<&str> = undone
        .iter()
        .map(|l| {
            ["cilium", "kubernetes", "web-02", "web-01"]
                .into_iter()
                .find(|n| l.contains(n))
                .unwrap_or("?")
        })
        .collect();
    assert_eq!(
        order,
        ["cilium", "kubernetes", "web-02", "web-01"],
        "{lines:#?}"
    );
    assert!(
        undone[2].starts_with("end servers delete") && undone[2].contains("--yes"),
        "{undone:?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("db-01") && l.contains("delete"))
    );

    // Without rollback the same failure just fails the batch; nothing is undone.
    let mut body = body.clone();
    body["rollback_enabled"] = json!(false);
    let before = log_lines(&log).len();
    let (_, v) = api.post("/batch/execute", &body);
    let b = api.wait_batch(v["data"].as_str().unwrap());
    assert_eq!(b["status"], "Failed", "{b}");
    let after = log_lines(&log);
    assert!(
        !after[before..].iter().any(|l| l.contains(" delete ")),
        "{after:#?}"
    );
}

#[test]
fn cancel_stops_a_running_batch_and_nothing_pending_starts() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api, log) = start(dir.path());
    let body = json!({
        "name": "slow", "rollback_enabled": true, "parallel_limit": 1,
        "operations": [
            {"id": "servers", "type": "server_batch", "provider": "upcloud", "server_configs": [{"name": "slow"}]},
            {"id": "k8s", "type": "taskserv_batch", "provider": "aws", "dependencies": ["servers"], "taskservs": ["kubernetes"]}
        ]
    });
    let (_, v) = api.post("/batch/execute", &body);
    let id = v["data"].as_str().unwrap().to_string();
    let b = api.wait(&format!("/batch/operations/{id}"), |b| {
        b["operations"][0]["status"] == "Running"
    });
    let running = b["operations"][0]["task_ids"][0]
        .as_str()
        .unwrap()
        .to_string();
    // Wait until the process itself runs.
    poll("the CLI to start", || {
        let lines = log_lines(&log);
        let started = lines.iter().any(|l| l.starts_with("start servers create"));
        if started {
            Ok(())
        } else {
            Err(lines.join("\n"))
        }
    });
    let (status, v) = api.post(&format!("/batch/operations/{id}/cancel"), &json!({}));
    assert_eq!(status, 200, "{v}");
    let b = api.wait_batch(&id);
    assert_eq!(b["status"], "Cancelled", "{b}");
    let (_, t) = api.get(&format!("/tasks/{running}"));
    assert_eq!(t["data"]["status"], "Cancelled", "{t}");
    assert_eq!(b["operations"][1]["status"], "Cancelled");
    let lines = log_lines(&log);
    assert!(
        !lines.iter().any(|l| l.starts_with("end")),
        "killed: {lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("taskserv")),
        "pending ran: {lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("delete")),
        "no rollback on cancel"
    );
    let (status, v) = api.post(&format!("/batch/operations/{id}/cancel"), &json!({}));
    assert_eq!(status, 409, "{v}");
}

#[test]
fn a_batch_survives_kill_9_and_its_interrupted_task_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let (server, api, log) = start(dir.path());
    let body = json!({
        "name": "crashy", "rollback_enabled": true,
        "operations": [
            {"id": "web", "type": "server_batch", "provider": "upcloud", "server_configs": [{"name": "web-01"}]},
            {"id": "db", "type": "server_batch", "provider": "upcloud", "dependencies": ["web"],
             "server_configs": [{"name": "once"}, {"name": "db-02"}]}
        ]
    });
    let (_, v) = api.post("/batch/execute", &body);
    let id = v["data"].as_str().unwrap().to_string();
    poll("the interrupted task to start", || {
        let lines = log_lines(&log);
        let started = lines.iter().any(|l| l.starts_with("waiting"));
        if started {
            Ok(())
        } else {
            Err(lines.join("\n"))
        }
    });
    server.kill9();

    // Restarted on the same data: a restart is not the batch's failure. The
    // interrupted task's process was killed and the task ran again as a new
    // attempt; the queued one still ran; nothing was rolled back.
    let server = Server::start(dir.path(), &prov_manifest(&log));
    let api = Api::new(&server, Some(server.admin_token()));
    let b = api.wait_batch(&id);
    assert_eq!(b["status"], "Completed", "{b}");
    for op in b["operations"].as_array().unwrap() {
        assert_eq!(op["status"], "Completed", "{b}");
    }
    let lines = log_lines(&log);
    let runs = |what: &str| {
        lines
            .iter()
            .filter(|l| l.starts_with(what) && l.contains("once"))
            .count()
    };
    assert_eq!(runs("start servers create"), 2, "{lines:#?}");
    assert_eq!(runs("end servers create"), 1, "{lines:#?}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("end servers create") && l.contains("db-02"))
            .count(),
        1,
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.contains("delete")), "{lines:#?}");
    server.wait_log("killed the process group an interrupted attempt left behind");
}

#[test]
fn workflows_become_tasks_running_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, api, _log) = start(dir.path());
    let (status, v) = api.post(
        "/workflows/servers/create",
        &json!({"infra": "production", "settings": "config.ncl", "check_mode": true, "wait": true}),
    );
    assert_eq!(status, 200, "{v}");
    let id = v["data"].as_str().unwrap().to_string();
    let t = api.wait(&format!("/tasks/{id}"), |t| t["status"] == "Completed");
    assert_eq!(t["command"], "provisioning servers create");
    assert_eq!(
        t["args"],
        json!([
            "--infra",
            "production",
            "--settings",
            "config.ncl",
            "--check",
            "--wait"
        ])
    );
    assert_eq!(
        t["output"],
        "done: servers create --infra production --settings config.ncl --check --wait\n"
    );
    assert!(t["started_at"].is_string() && t["completed_at"].is_string());

    let (_, v) = api.post(
        "/workflows/taskserv/create",
        &json!({"operation": "create", "taskserv": "kubernetes", "infra": "fail"}),
    );
    let failed = v["data"].as_str().unwrap().to_string();
    let t = api.wait(&format!("/tasks/{failed}"), |t| t["status"] == "Failed");
    assert_eq!(t["command"], "provisioning taskserv create kubernetes");
    assert!(
        t["error"].as_str().unwrap().contains("exited with code 1"),
        "{t}"
    );
    let (_, v) = api.post(
        "/workflows/cluster/create",
        &json!({"operation": "create", "cluster_type": "buildkit", "infra": "production"}),
    );
    let cluster = v["data"].as_str().unwrap().to_string();
    api.wait(&format!("/tasks/{cluster}"), |t| t["status"] == "Completed");

    let (_, l) = api.get("/tasks?status=Failed");
    let ids: Vec<&str> = l["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [failed.as_str()]);
    let (_, l) = api.get("/tasks?limit=1&offset=1");
    assert_eq!(l["data"][0]["id"], failed.as_str(), "newest first");
    let (_, l) = api.get("/tasks");
    assert_eq!(l["data"].as_array().unwrap().len(), 3);

    // Bad input: the envelope with an error naming the field or id.
    let cases = [
        ("GET", "/tasks?limit=0", None, 400, "limit"),
        ("GET", "/tasks?limit=1001", None, 400, "limit"),
        ("GET", "/tasks?status=Done", None, 400, "status"),
        ("GET", "/tasks/not-a-uuid", None, 400, "not a UUID"),
        (
            "GET",
            "/tasks/0190f0c2-0000-7000-8000-000000000001",
            None,
            404,
            "no task",
        ),
        (
            "GET",
            "/batch/operations/0190f0c2-0000-7000-8000-000000000001",
            None,
            404,
            "no batch",
        ),
        (
            "POST",
            "/workflows/servers/create",
            Some(&b"{not json"[..]),
            400,
            "not valid JSON",
        ),
        (
            "POST",
            "/workflows/servers/create",
            Some(&br#"{"infra": 5}"#[..]),
            400,
            "infra",
        ),
        (
            "POST",
            "/workflows/servers/create",
            Some(&br#"{"wait": true}"#[..]),
            400,
            "infra",
        ),
        (
            "POST",
            "/workflows/servers/create",
            Some(&br#"{"infra": "--rm"}"#[..]),
            400,
            "infra",
        ),
        (
            "POST",
            "/batch/execute",
            Some(&br#"{"name": "x", "operations": 1}"#[..]),
            400,
            "operations",
        ),
    ];
    for (method, path, body, want, needle) in cases {
        let (status, v) = api.send(method, path, body);
        assert_eq!(status, want, "{method} {path}: {v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{path}: {v}");
    }
    // An invalid graph is refused before anything runs.
    let mut cyclic = multi_cloud(true);
    cyclic["operations"][0]["dependencies"] = json!(["aws_taskservs"]);
    let (status, v) = api.post("/batch/execute", &cyclic);
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("cycle"), "{v}");
    // Batch bodies refuse unknown fields, as workflow bodies do (issue 19,
    // item 11): a misspelt `rollback_enable` must not silently mean false.
    let mut misspelt = multi_cloud(true);
    misspelt["rollback_enable"] = json!(true);
    let (status, v) = api.post("/batch/execute", &misspelt);
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `rollback_enable`"),
        "{v}"
    );
    let mut misspelt = multi_cloud(true);
    misspelt["operations"][0]["dependencys"] = json!([]);
    let (status, v) = api.post("/batch/execute", &misspelt);
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `dependencys`"),
        "{v}"
    );
    // Names that read as something else are refused.
    for name in ["nightly\u{202e}txt.sh", "a\u{0}b", "../../etc"] {
        let mut odd = multi_cloud(true);
        odd["name"] = json!(name);
        let (status, v) = api.post("/batch/execute", &odd);
        assert_eq!(status, 400, "{name:?}: {v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("field `name` must not"),
            "{v}"
        );
    }
    // A huge bad value is named, not echoed back whole.
    let mut huge = multi_cloud(true);
    huge["x".repeat(200_000)] = json!(1);
    let (status, v) = api.post("/batch/execute", &huge);
    assert_eq!(status, 400, "{}", &v.to_string()[..200]);
    assert!(
        v.to_string().len() < 2_000,
        "reply of {} bytes",
        v.to_string().len()
    );
    let mut unknown = multi_cloud(true);
    unknown["operations"][1]["type"] = json!("dns_batch");
    let (status, v) = api.post("/batch/execute", &unknown);
    assert_eq!(status, 400);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("operation `aws_taskservs`"),
        "{v}"
    );
    let (_, l) = api.get("/tasks");
    assert_eq!(l["data"].as_array().unwrap().len(), 3, "nothing ran");
    let (_, l) = api.get("/batch/operations");
    assert_eq!(l["data"], json!([]));
}

#[path = "provisioning/auth.rs"]
mod auth;
