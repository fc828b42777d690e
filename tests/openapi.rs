//! Every shipped API's OpenAPI document, checked against the running server
//! by schemathesis (issue 19): the real `baton` binary serves the shipped
//! manifest (`host/baton.toml`) on ephemeral ports, each API publishes its
//! document at `{mount}/openapi.json` without credentials, and schemathesis
//! (pinned, installed from PyPI into a venv under the target directory on
//! first use) generates requests from it with a fixed seed and a bounded
//! number of examples per operation. Any finding fails the test: a 5xx, a
//! status the document does not list, a reply whose body, headers or
//! content type the document does not describe.
//!
//! `BATON_SCHEMATHESIS_EXAMPLES=N` raises the examples per operation and
//! `BATON_SCHEMATHESIS_SEED=S` changes the seed (for longer runs by hand).

#[path = "support/orchestrator.rs"]
mod orchestrator_support;
mod support;

use orchestrator_support::shipped_manifest;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use support::*;

/// The schemathesis release the checks are pinned to.
const SCHEMATHESIS: &str = "4.32.5";

/// What schemathesis checks: the issue's "no 5xx, every reply conforms to
/// the document, every status is documented".
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";

/// Examples per operation in CI: enough to reach every operation's
/// documented statuses, few enough to keep the suite short.
const DEFAULT_EXAMPLES: &str = "12";

/// The `st` program of a venv holding the pinned schemathesis, installing
/// it on first use. Fails (never skips) when it cannot be installed.
fn schemathesis() -> PathBuf {
    static ST: OnceLock<PathBuf> = OnceLock::new();
    ST.get_or_init(|| {
        let venv =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("schemathesis-{SCHEMATHESIS}"));
        let st = venv.join("bin/st");
        let installed = venv.join("installed");
        if installed.exists() && st.exists() {
            return st;
        }
        let _ = std::fs::remove_dir_all(&venv);
        let run = |cmd: &mut Command, what: &str| {
            let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(
                out.status.success(),
                "{what} failed ({}):\n{}\n{}\nschemathesis is installed from PyPI; it needs \
                 python3 with venv and pip, and a network path to PyPI",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "python3 -m venv",
        );
        run(
            Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &format!("schemathesis=={SCHEMATHESIS}"),
            ]),
            "pip install schemathesis",
        );
        std::fs::write(&installed, SCHEMATHESIS).unwrap();
        st
    })
    .clone()
}

/// The shipped manifest served, with a dedicated admin user (so that
/// whatever schemathesis does to users leaves the bootstrap admin alone)
/// and that user's token.
fn serve() -> (tempfile::TempDir, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &shipped_manifest());
    server.put_user(
        "schemathesis",
        serde_json::json!({"password": "schemathesis-password", "roles": ["admin"]}),
    );
    let token = server.token("schemathesis");
    (dir, server, token)
}

/// Runs schemathesis on the document at `doc_url` and fails, showing its
/// report, on any finding.
fn check(server: &Server, doc_url: &str, token: &str) {
    check_with(server, doc_url, token, &[]);
}

/// [`check`], with `hooks_env` in the environment of schemathesis (and so
/// of `tests/schemathesis_hooks.py`).
fn check_with(server: &Server, doc_url: &str, token: &str, hooks_env: &[(&str, &str)]) {
    let work = tempfile::tempdir().unwrap();
    let examples =
        std::env::var("BATON_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| DEFAULT_EXAMPLES.into());
    let seed = std::env::var("BATON_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into());
    let ca = server.data.join("tls/ca.pem");
    let mut cmd = Command::new(schemathesis());
    cmd.current_dir(work.path())
        .env("NO_COLOR", "1")
        .env(
            "SCHEMATHESIS_HOOKS",
            root().join("tests/schemathesis_hooks.py"),
        )
        .args(["--no-color", "run", doc_url, "--checks", CHECKS])
        .args(["--seed", &seed, "--max-examples", &examples])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--generation-database", "none"])
        .args(["--generation-with-security-parameters", "false"])
        // One worker: CPython 3.11 can fail parsing code in two threads at
        // once (gh-106905), which crashed a run inside schemathesis.
        .args(["--request-timeout", "30", "--workers", "1"])
        .arg("--tls-verify")
        .arg(if doc_url.starts_with("https:") {
            ca.display().to_string()
        } else {
            "true".into()
        })
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .envs(hooks_env.iter().copied());
    let out = cmd.output().expect("running schemathesis");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Shown with `--nocapture`, and by the harness when the test fails.
    println!("{report}");
    assert!(
        out.status.success(),
        "schemathesis found problems with {doc_url} ({}):\n{report}\n--- server log ---\n{}",
        out.status,
        tail(&server.log(), 80)
    );
    // A run that tested nothing would pass too: make sure it ran.
    assert!(
        report.contains("passed") || report.contains("Passed"),
        "schemathesis ran no operation on {doc_url}:\n{report}"
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The document of the API mounted at `mount` on listener `listener`, as
/// an anonymous client reads it: public, JSON, OpenAPI 3.1, `servers`
/// pointing where it is served.
fn public_document(server: &Server, listener: usize, mount: &str) -> String {
    let base = server.listener_url(listener);
    let url = format!("{}{mount}/openapi.json", base.trim_end_matches('/'));
    let resp = server.anonymous().get(&url).send().unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    let doc: serde_json::Value = resp.json().unwrap();
    assert_eq!(doc["openapi"], "3.1.0", "{url}");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() > 1, "{url} documents no API routes");
    url
}

#[test]
fn the_admin_api_conforms_to_its_openapi_document() {
    let (_dir, server, token) = serve();
    // Jobs to list, show and cancel: a deploy's node runs.
    orchestrator_support::add_nodes(&server, &["web-1", "web-2"]);
    let (status, reply) = orchestrator_support::post(
        &server,
        "/command/deploy",
        serde_json::json!({"environment": "production", "scope": {"nodes": ["web-1", "web-2"]}}),
    );
    assert_eq!(status, 202, "{reply}");
    let url = public_document(&server, 0, "/admin/v1");
    check(&server, &url, &token);
}

#[test]
fn the_provisioning_api_conforms_to_its_openapi_document() {
    let (_dir, server, token) = serve();
    let base = server.listener_url(1);
    // Logging out revokes the caller's token, which would make the rest of
    // the run 401s that test nothing: the hooks give every logout a fresh
    // access token of its own, from this refresh token.
    let login: serde_json::Value = server
        .anonymous()
        .post(format!("{}/auth/login", base.trim_end_matches('/')))
        .json(&serde_json::json!({"username": "schemathesis", "password": "schemathesis-password"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let refresh = login["data"]["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no refresh token: {login}"))
        .to_string();
    // Something for every read to find: a task and a batch.
    let api = server.anonymous();
    let post = |path: &str, body: serde_json::Value| {
        let resp = api
            .post(format!("{}{path}", base.trim_end_matches('/')))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}: {}", resp.text().unwrap());
    };
    post(
        "/workflows/servers/create",
        serde_json::json!({"infra": "production", "wait": true}),
    );
    post(
        "/batch/execute",
        serde_json::json!({"name": "web", "operations": [
            {"id": "servers", "type": "server_batch", "provider": "upcloud",
             "server_configs": [{"name": "web-01"}]}]}),
    );
    let url = public_document(&server, 1, "");
    check_with(
        &server,
        &url,
        &token,
        &[("BATON_SCHEMATHESIS_REFRESH_TOKEN", &refresh)],
    );
    // The run's own token still works: no logout revoked it.
    let resp = api
        .get(format!("{}/tasks", base.trim_end_matches('/')))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "the run's token was revoked");
}

#[test]
fn the_pgo_api_conforms_to_its_openapi_document() {
    let (_dir, server, token) = serve();
    let url = public_document(&server, 0, "/pgo");
    check(&server, &url, &token);
}

#[test]
fn the_orchestrator_api_conforms_to_its_openapi_document() {
    let (_dir, server, token) = serve();
    // Something to read from the start: nodes, a group, a finished deploy.
    orchestrator_support::add_nodes(&server, &["web-1", "web-2"]);
    let resp = server
        .client()
        .put(server.url("/orchestrator/v1/node_groups/3f2c1a9e-0b1d-4c6e-9f00-1234567890ab"))
        .json(&serde_json::json!({"name": "web", "rule": {"nodes": ["web-1"]}}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let name = orchestrator_support::deploy(
        &server,
        serde_json::json!({"environment": "production", "scope": {"nodes": ["web-1", "web-2"]}}),
    );
    orchestrator_support::wait_final(&server, &name);
    let url = public_document(&server, 0, "/orchestrator/v1");
    check(&server, &url, &token);
}

#[test]
fn the_clusters_api_conforms_to_its_openapi_document() {
    let (_dir, server, token) = serve();
    // Something to read from the start: a network, a cluster, a host in it.
    let c = server.client();
    let put = |path: &str, body: serde_json::Value| {
        let resp = c
            .put(server.url(&format!("/api/v0{path}")))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201, "PUT {path}");
    };
    put("/network/net1", serde_json::json!({"type": "flannel_etcd"}));
    put("/cluster/c1", serde_json::json!({"network": "net1"}));
    put(
        "/host/10.0.0.1",
        serde_json::json!({"ssh_priv_key": "S0VZ", "cluster": "c1"}),
    );
    let url = public_document(&server, 0, "/api/v0");
    check(&server, &url, &token);
}
