//! Client conformance for the orchestrator API: what the real clients send,
//! replayed over HTTPS to the real `baton` binary, and exactly the fields
//! and statuses those clients read.
//!
//! Sources read (quoted per test):
//! - puppetlabs/orchestrator_client-ruby, tag 0.7.2 (commit 3ad43d0):
//!   `lib/orchestrator_client.rb` (Faraday with `Content-Type`,
//!   `X-Authentication`, `User-Agent` on every request, bodies as Ruby
//!   `to_json`; `get` accepts only 200, `post` 200 or 202),
//!   `lib/orchestrator_client/{command,jobs,job}.rb`.
//! - puppetlabs/bolt at commit 878b1e5 (version 4.0.1-rc.001, after tag
//!   4.0.0): `lib/bolt/transport/orch.rb` (`process_run_results`,
//!   `unwrap_bolt_result`), `lib/bolt/transport/orch/connection.rb`
//!   (`build_request`, `User-Agent: Bolt/VERSION`), `lib/bolt/result.rb`
//!   (`for_command` reads `exit_code`, `stdout`, `stderr`).
//! - The seeds' curl examples (PE docs "Forming orchestrator API requests",
//!   two versions), run with the real curl, verbatim but for host, port
//!   and token.

#[path = "support/orchestrator.rs"]
mod orch;
mod support;

use orch::*;
use serde_json::{Value, json};
use std::process::Command;
use support::*;

/// Headers net/http adds under Faraday (orchestrator_client-ruby 0.7.2).
const RUBY_ACCEPT: [(&str, &str); 2] = [
    ("accept", "*/*"),
    ("accept-encoding", "gzip;q=1.0,deflate;q=0.6,identity;q=0.3"),
];
/// orchestrator_client-ruby's own User-Agent (`config.rb` defaults).
const CLIENT_UA: &str = "OrchestratorRubyClient/0.7.2";
/// Bolt's (`connection.rb`: `"Bolt/#{VERSION}"`, `lib/bolt/version.rb`).
const BOLT_UA: &str = "Bolt/4.0.1-rc.001";
/// orchestrator_client's `Job::DONE_EVENTS` and `Job::DONE_STATES`.
const DONE_EVENTS: [&str; 2] = ["job_aborted", "job_finished"];
const DONE_STATES: [&str; 3] = ["stopped", "finished", "failed"];

/// A task command that behaves like Bolt's `bolt_shim::command` would on a
/// node: output on both streams; nodes named `bad*` exit 3; the task
/// `sleepy` sleeps; it prints the node's transport.
const TASK: &str = r#"["sh", "-c", "case \"$2\" in sleepy) sleep 30;; esac; echo \"out-$1 via $4\"; echo \"err-$1\" >&2; case \"$1\" in bad*) exit 3;; esac", "task", "{node}", "{task}", "{params}", "{transport}"]"#;

fn manifest(agent: &str) -> String {
    format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\ntls = \"self-signed\"\n\n{ORCHESTRATOR}\
         [handler.capabilities]\nexec = [\"sh\"]\n[handler.limits]\nmax_running_jobs = 16\n\
         [handler.config]\nagent_command = '''{agent}'''\ntask_command = '''{TASK}'''\n"
    )
}

/// One request as orchestrator_client-ruby builds it: `path` relative to
/// `service-url/orchestrator/v1/`, the client's three headers plus
/// net/http's, `body` as `to_json` writes it (compact). (status, JSON).
fn ruby(
    server: &Server,
    ua: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = server
        .anonymous()
        .request(
            method.parse().unwrap(),
            server.url(&format!("/orchestrator/v1/{path}")),
        )
        .header("content-type", "application/json")
        .header("x-authentication", token)
        .header("user-agent", ua);
    for (k, v) in RUBY_ACCEPT {
        req = req.header(k, v);
    }
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    let json =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"));
    (status, json)
}

/// `OrchestratorClient#post` (command/deploy, command/task, command/stop):
/// 200 or 202, then `result['job']['name']` and `['id']`.
fn start(server: &Server, ua: &str, path: &str, body: &str) -> (String, String) {
    let (status, reply) = ruby(server, ua, &server.admin_token(), "POST", path, Some(body));
    assert!(
        status == 202 || status == 200,
        "{path} {body}: {status} {reply}"
    );
    let name = reply["job"]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("{reply}"));
    let id = reply["job"]["id"].as_str().unwrap();
    assert_eq!(id, server.url(&format!("/orchestrator/v1/jobs/{name}")));
    (name.to_string(), id.to_string())
}

/// `Job#wait`: `GET jobs/N` (200 only) until `state` is in `DONE_STATES`,
/// then `GET jobs/N/report`. Returns (job, report).
fn wait(server: &Server, ua: &str, name: &str) -> (Value, Value) {
    let token = server.admin_token();
    let job = poll(&format!("job {name} to be done"), || {
        let (status, job) = ruby(server, ua, &token, "GET", &format!("jobs/{name}"), None);
        assert_eq!(status, 200, "{job}");
        match job["state"].as_str() {
            Some(s) if DONE_STATES.contains(&s) => Ok(job),
            _ => Err(job.to_string()),
        }
    });
    let (status, report) = ruby(
        server,
        ua,
        &token,
        "GET",
        &format!("jobs/{name}/report"),
        None,
    );
    assert_eq!(status, 200, "{report}");
    for item in report["items"].as_array().unwrap() {
        assert!(
            item["node"].is_string() && item["state"].is_string(),
            "{item}"
        );
    }
    (job, report)
}

/// `Job#each_event`: `GET jobs/N/events` without `start` (the gem computes
/// `start` from `next-events` but never sends it) until a page holds one
/// of `DONE_EVENTS`. Returns that page's items.
fn each_event(server: &Server, name: &str) -> Vec<Value> {
    let token = server.admin_token();
    poll(&format!("a terminal event of job {name}"), || {
        let (status, page) = ruby(
            server,
            CLIENT_UA,
            &token,
            "GET",
            &format!("jobs/{name}/events"),
            None,
        );
        assert_eq!(status, 200, "{page}");
        assert!(page["next-events"]["event"].is_string(), "{page}");
        let items = page["items"].as_array().unwrap().clone();
        if items
            .iter()
            .any(|e| DONE_EVENTS.contains(&e["type"].as_str().unwrap_or("")))
        {
            Ok(items)
        } else {
            Err(page.to_string())
        }
    })
}

fn terminal_events(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .filter_map(|e| e["type"].as_str())
        .filter(|t| DONE_EVENTS.contains(t))
        .collect()
}

/// bolt 878b1e5, `connection.rb` `build_request` + `orchestrator_client.rb`
/// `run_task` (start, wait, `nodes['items']`), read as `orch.rb`
/// `process_run_results` and `result.rb` `for_command` read them.
#[test]
fn bolt_run_command_body_with_null_noop_and_environment_runs_and_reads_results() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &manifest(r#"["sh", "-c", "true"]"#));
    // Bolt's hash, in its key order, through Ruby's `to_json`.
    let body = r#"{"task":"bolt_shim::command","environment":null,"noop":null,"params":{"command":"uptime"},"scope":{"nodes":["web-1.example.com","bad-1.example.com"]}}"#;
    let (name, _) = start(&server, BOLT_UA, "command/task", body);
    let (job, _) = wait(&server, BOLT_UA, &name);
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["environment"]["name"], "production");
    let (status, nodes) = ruby(
        &server,
        BOLT_UA,
        &server.admin_token(),
        "GET",
        &format!("jobs/{name}/nodes"),
        None,
    );
    assert_eq!(status, 200);
    let items = nodes["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{nodes}");

    let ok = node(items, "web-1.example.com");
    assert_eq!(ok["state"], "finished");
    let r = &ok["result"];
    assert!(r.get("_error").is_none(), "{r}");
    assert_eq!(r["exit_code"], 0, "{r}");
    assert_eq!(r["stdout"], "out-web-1.example.com via pcp\n");
    assert_eq!(r["stderr"], "err-web-1.example.com\n");

    let bad = node(items, "bad-1.example.com");
    assert_eq!(bad["state"], "failed");
    let e = &bad["result"]["_error"];
    assert!(
        e["kind"].is_string() && e["msg"].is_string() && e["details"].is_object(),
        "{bad}"
    );
    assert_eq!(e["details"]["exit_code"], 3);
    assert_eq!(bad["result"]["exit_code"], 3);
    assert_eq!(bad["result"]["stdout"], "out-bad-1.example.com via pcp\n");
}

/// bolt 878b1e5 `build_request` with `--noop` and a description: `noop`
/// true, `environment` from `task-environment`.
#[test]
fn bolt_task_body_with_noop_and_description_is_accepted_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &manifest(r#"["sh", "-c", "true"]"#));
    let body = r#"{"task":"package","environment":"staging","noop":true,"params":{"action":"status","name":"openssl"},"scope":{"nodes":["web-1"]},"description":"check openssl"}"#;
    let (name, _) = start(&server, BOLT_UA, "command/task", body);
    let (job, _) = wait(&server, BOLT_UA, &name);
    assert_eq!(job["state"], "finished", "{job}");
    assert_eq!(job["options"]["noop"], true);
    assert_eq!(job["environment"]["name"], "staging");
    assert_eq!(job["description"], "check openssl");
    let r = &nodes(&server, &name)[0]["result"];
    // A task that prints no JSON object: its stdout is `_output` (Bolt's message).
    assert_eq!(r["_output"], "out-web-1 via pcp\n", "{r}");
}

/// orchestrator_client-ruby 0.7.2 `Command#deploy` + `Job#each_event` +
/// `Job#wait`: a job that finishes ends its events with `job_finished`.
#[test]
fn client_deploy_events_end_with_job_finished_and_wait_returns_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &manifest(r#"["sh", "-c", "echo ran $1", "a", "{node}"]"#),
    );
    let (name, _) = start(
        &server,
        CLIENT_UA,
        "command/deploy",
        r#"{"environment":"production","scope":{"nodes":["web-1","web-2"]},"noop":null,"concurrency":null}"#,
    );
    let items = each_event(&server, &name);
    assert_eq!(terminal_events(&items), ["job_finished"]);
    assert_eq!(items.last().unwrap()["type"], "job_finished");
    let (job, report) = wait(&server, CLIENT_UA, &name);
    assert_eq!(job["state"], "finished");
    assert_eq!(report["items"].as_array().unwrap().len(), 2);
    // `Jobs#all(limit)`: `jobs?limit=1`.
    let (status, all) = ruby(
        &server,
        CLIENT_UA,
        &server.admin_token(),
        "GET",
        "jobs?limit=1",
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "{all}");
}

/// The same for a job that fails: PE ends it with `job_finished` too.
#[test]
fn a_failed_job_ends_its_events_with_a_terminal_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &manifest(r#"["sh", "-c", "exit 4"]"#));
    let (name, _) = start(
        &server,
        CLIENT_UA,
        "command/deploy",
        r#"{"environment":"production","scope":{"nodes":["web-1"]}}"#,
    );
    let items = each_event(&server, &name);
    assert_eq!(terminal_events(&items), ["job_finished"]);
    let (job, _) = wait(&server, CLIENT_UA, &name);
    assert_eq!(job["state"], "failed");
    let n = &nodes(&server, &name)[0];
    assert_eq!(n["result"]["_error"]["details"]["exit_code"], 4, "{n}");
}

/// orchestrator_client-ruby 0.7.2 `Command#stop(job_number)` sends
/// `{"job" => "#{job_number}"}`; a stopped job ends with `job_aborted`.
#[test]
fn a_stopped_job_ends_its_events_with_job_aborted() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, log) = (dir.path().join("gate"), dir.path().join("runs.log"));
    let server = Server::start(dir.path(), &manifest(&gated_agent(&gate, &log)));
    let (name, _) = start(
        &server,
        CLIENT_UA,
        "command/deploy",
        r#"{"environment":"production","scope":{"nodes":["n1","n2","n3"]},"concurrency":1}"#,
    );
    wait_running(&server, &name, 1);
    let (status, reply) = ruby(
        &server,
        CLIENT_UA,
        &server.admin_token(),
        "POST",
        "command/stop",
        Some(&format!(r#"{{"job":"{name}"}}"#)),
    );
    assert!(status == 202 || status == 200, "{reply}");
    assert_eq!(reply["job"]["name"], name.as_str());
    std::fs::write(&gate, "").unwrap();
    let items = each_event(&server, &name);
    assert_eq!(terminal_events(&items), ["job_aborted"]);
    assert_eq!(items.last().unwrap()["type"], "job_aborted");
    let (job, _) = wait(&server, CLIENT_UA, &name);
    assert_eq!(job["state"], "stopped");
    assert_eq!(job["node_states"]["skipped"], 2, "{job}");
}

/// PE docs, POST /command/stop: `"force": true` ends the runs in progress
/// too. The doc's example lacks a comma; this is its intended body.
#[test]
fn force_stop_ends_running_nodes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, log) = (dir.path().join("gate"), dir.path().join("runs.log"));
    let server = Server::start(dir.path(), &manifest(&gated_agent(&gate, &log)));
    let (name, _) = start(
        &server,
        CLIENT_UA,
        "command/deploy",
        r#"{"environment":"production","scope":{"nodes":["n1","n2"]},"concurrency":1}"#,
    );
    wait_running(&server, &name, 1);
    let (status, reply) = post(
        &server,
        "/command/stop",
        json!({"job": name, "force": true}),
    );
    assert_eq!(status, 202, "{reply}");
    // The gate never opens: only force can end the running node.
    let items = each_event(&server, &name);
    assert_eq!(terminal_events(&items), ["job_aborted"]);
    let j = job(&server, &name);
    assert_eq!(j["state"], "stopped");
    assert_eq!(
        (
            j["node_states"]["failed"].clone(),
            j["node_states"]["skipped"].clone()
        ),
        (json!(1), json!(1)),
        "{j}"
    );
    let ran = nodes(&server, &name)
        .into_iter()
        .find(|n| n["state"] == "failed")
        .unwrap();
    assert!(
        ran["result"]["_error"]["msg"]
            .as_str()
            .unwrap()
            .contains("force"),
        "{ran}"
    );
    // `force: null` is a plain stop; other types are refused.
    let (status, _) = post(
        &server,
        "/command/stop",
        json!({"job": name, "force": null}),
    );
    assert_eq!(status, 202);
    let (status, reply) = post(
        &server,
        "/command/stop",
        json!({"job": name, "force": "yes"}),
    );
    assert_eq!(
        (status, reply["kind"].clone()),
        (400, json!("puppetlabs.orchestrator/validation-error"))
    );
}

/// PE docs, POST /command/task: `timeout` (seconds per node) ends a run
/// that takes longer; `targets` names nodes reached over SSH or WinRM.
#[test]
fn task_timeout_and_targets_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &manifest(r#"["sh", "-c", "true"]"#));
    let (name, _) = start(
        &server,
        CLIENT_UA,
        "command/task",
        r#"{"task":"sleepy","params":{},"scope":{"nodes":["web-1"]},"timeout":1}"#,
    );
    let (j, _) = wait(&server, CLIENT_UA, &name);
    assert_eq!(j["state"], "failed", "{j}");
    assert_eq!(j["options"]["timeout"], 1);
    let r = &nodes(&server, &name)[0]["result"];
    assert_eq!(r["timed_out"], true, "{r}");
    assert_eq!(r["_error"]["kind"], "puppetlabs.orchestrator/node-timeout");

    let body = r#"{"task":"echo","params":{},"scope":{"nodes":["web-1","web-2"]},"targets":[{"hostnames":["web-2"],"transport":"ssh","user":"root","password":"hunter2"}]}"#;
    let (name, _) = start(&server, CLIENT_UA, "command/task", body);
    let (j, _) = wait(&server, CLIENT_UA, &name);
    assert_eq!(j["state"], "finished", "{j}");
    let items = nodes(&server, &name);
    assert_eq!(
        node(&items, "web-1")["result"]["stdout"],
        "out-web-1 via pcp\n"
    );
    assert_eq!(
        node(&items, "web-2")["result"]["stdout"],
        "out-web-2 via ssh\n"
    );
    assert_eq!(j["options"]["targets"][0]["user"], "root");
    assert!(!j.to_string().contains("hunter2"), "{j}");

    for (bad, needle) in [
        (
            json!({"task": "echo", "params": {}, "scope": {"nodes": ["a"]}, "targets": [{"hostnames": ["b"], "transport": "ssh"}]}),
            "not in the job's scope",
        ),
        (
            json!({"task": "echo", "params": {}, "scope": {"nodes": ["a"]}, "targets": [{"hostnames": ["a"], "transport": "telnet"}]}),
            "transport",
        ),
        (
            json!({"task": "echo", "params": {}, "scope": {"nodes": ["a"]}, "timeout": 0}),
            "timeout",
        ),
        (
            json!({"environment": "production", "scope": {"nodes": ["a"]}, "timeout": "soon"}),
            "invalid type",
        ),
    ] {
        let path = if bad.get("task").is_some() {
            "/command/task"
        } else {
            "/command/deploy"
        };
        let (status, reply) = post(&server, path, bad.clone());
        assert_eq!(status, 400, "{bad}: {reply}");
        assert_eq!(reply["kind"], "puppetlabs.orchestrator/validation-error");
        assert!(
            reply["msg"].as_str().unwrap().contains(needle),
            "{bad}: {reply}"
        );
    }
}

/// What the client reads from a refusal (`ApiError.make_error_from_response`:
/// a JSON body with `kind` and `msg`): 401 without or with a wrong token.
#[test]
fn wrong_or_missing_tokens_are_401_in_the_orchestrator_shape() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &manifest(r#"["sh", "-c", "true"]"#));
    for token in ["not-a-token", "eyJhbGciOiJIUzI1NiJ9.e30.e30"] {
        let (status, body) = ruby(&server, CLIENT_UA, token, "GET", "jobs", None);
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["kind"], "puppetlabs.orchestrator/not-authenticated");
        assert!(body["msg"].is_string());
    }
    let resp = server
        .anonymous()
        .get(server.url("/orchestrator/v1/jobs"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["kind"], "puppetlabs.orchestrator/not-authenticated");
    // Unknown jobs: `UnknownJob` by its kind.
    let (status, body) = ruby(
        &server,
        CLIENT_UA,
        &server.admin_token(),
        "GET",
        "jobs/99",
        None,
    );
    assert_eq!(
        (status, body["kind"].clone()),
        (404, json!("puppetlabs.orchestrator/unknown-job"))
    );
}

/// Seed 000 (PE docs, "Forming orchestrator API requests"), verbatim.
const SEED_000: [&str; 3] = [
    r#"auth_header="X-Authentication: $(puppet-access show)"
uri="https://$(puppet config print server):8143/orchestrator/v1/jobs"
curl --insecure --header "$auth_header" "$uri""#,
    r#"type_header='Content-Type: application/json'
auth_header="X-Authentication: $(puppet-access show)"
uri="https://$(puppet config print server):8143/orchestrator/v1/command/deploy"
data='{"environment": "production", "scope" : { "node_group" : "00000000-0000-4000-8000-000000000000" }}'
curl --insecure --header "$type_header" --header "$auth_header" --request POST "$uri" --data "$data""#,
    r#"auth_header="X-Authentication: $(puppet-access show)"
uri="https://$(puppet config print server):8143/orchestrator/v1/jobs/81"
curl --insecure --header "$auth_header" "$uri""#,
];

/// Seed 001 (the older version of that page), verbatim.
const SEED_001: [&str; 3] = [
    r#"curl -k -X GET https://<HOSTNAME>:<PORT>/orchestrator/v1/jobs -H 'X-Authentication:<TOKEN>'"#,
    r#"curl -k -H 'X-Authentication:<TOKEN>' https://<HOSTNAME>:<PORT>/orchestrator/v1/command/deploy -X POST -d '{"environment":"production"}' -H "Content-Type: application/json""#,
    r#"curl -k -X GET https://<HOSTNAME>:<PORT>/orchestrator/v1/jobs/81 -H 'X-Authentication:<TOKEN>'"#,
];

/// Runs a seed's shell lines with the real curl; only the server, port,
/// token and (for job 81) the job name are substituted. (status, JSON).
fn seed_curl(script: &str, server: &Server, token: &str, job: &str) -> (u16, Value) {
    let hostport = server.base.trim_start_matches("https://");
    let (host, port) = hostport.split_once(':').unwrap();
    let script = script
        .replace("$(puppet-access show)", token)
        .replace("$(puppet config print server):8143", hostport)
        .replace("<HOSTNAME>", host)
        .replace("<PORT>", port)
        .replace("<TOKEN>", token)
        .replace("/jobs/81", &format!("/jobs/{job}"))
        .replace("\ncurl ", "\n/usr/bin/curl -sS -w '\\n%{http_code}' ");
    let script = match script.strip_prefix("curl ") {
        Some(rest) => format!("/usr/bin/curl -sS -w '\\n%{{http_code}}' {rest}"),
        None => script,
    };
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (
        status.parse().unwrap(),
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}

#[test]
fn seed_000_curl_examples_work_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &manifest(r#"["sh", "-c", "true"]"#));
    add_nodes(&server, &["web-1.example.com"]);
    let token = server.admin_token();
    let (status, list) = seed_curl(SEED_000[0], &server, &token, "");
    assert_eq!((status, list["items"].clone()), (200, json!([])), "{list}");
    let (status, reply) = seed_curl(SEED_000[1], &server, &token, "");
    assert_eq!(status, 202, "{reply}");
    let name = reply["job"]["name"].as_str().unwrap().to_string();
    assert_eq!(
        reply["job"]["id"],
        server.url(&format!("/orchestrator/v1/jobs/{name}"))
    );
    let done = wait_final(&server, &name);
    let (status, j) = seed_curl(SEED_000[2], &server, &token, &name);
    assert_eq!(status, 200);
    assert_eq!(
        (j["name"].clone(), j["state"].clone()),
        (json!(name), done["state"].clone())
    );
    assert_eq!(j["state"], "finished", "{j}");
}

#[test]
fn seed_001_curl_examples_work_verbatim_and_deploy_the_whole_environment() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &manifest(r#"["sh", "-c", "true"]"#));
    add_nodes(&server, &["web-1.example.com", "db-1.example.com"]);
    let token = server.admin_token();
    let (status, list) = seed_curl(SEED_001[0], &server, &token, "");
    assert_eq!(status, 200, "{list}");
    // No scope: the whole environment (every node of the inventory).
    let (status, reply) = seed_curl(SEED_001[1], &server, &token, "");
    assert_eq!(status, 202, "{reply}");
    let name = reply["job"]["name"].as_str().unwrap().to_string();
    assert_eq!(
        reply["job"]["id"],
        server.url(&format!("/orchestrator/v1/jobs/{name}"))
    );
    wait_final(&server, &name);
    let (status, j) = seed_curl(SEED_001[2], &server, &token, &name);
    assert_eq!(status, 200);
    assert_eq!(j["state"], "finished", "{j}");
    assert_eq!(j["node_count"], 2);
}
