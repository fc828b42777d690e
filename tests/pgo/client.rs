//! Helpers of the PGO tests: the documented request bodies, a server whose
//! `/pgo` is called with the real curl, manifests with observable commands.
#![allow(dead_code)]

use crate::support::{Server, poll, root, shipped_handler_without_config};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const CURL: &str = "/usr/bin/curl";
pub const ADMIN: &str = "admin:test-admin-password";

/// The create body of the PGO docs, with `version` as `ClientVersion`.
pub fn create_body(version: &str, ns: &str, name: &str) -> String {
    json!({ "ClientVersion": version, "Namespace": ns, "Name": name, "Series": 1 }).to_string()
}

pub fn select_body(version: &str, ns: &str, name: &str) -> String {
    json!({ "ClientVersion": version, "Namespace": ns, "Clustername": name }).to_string()
}

pub fn all_body(version: &str, ns: &str) -> String {
    json!({ "ClientVersion": version, "Namespace": ns, "AllFlag": true }).to_string()
}

/// A server whose PGO API is called with curl.
pub struct Pgo {
    pub server: Server,
    /// `PGO_APISERVER_URL`.
    pub url: String,
    /// `PGO_CA_CERT`.
    pub ca: PathBuf,
}

/// What one curl call gave: the HTTP status (0 when no HTTP reply came),
/// the JSON body (Null when none), and curl's own success.
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub curl_ok: bool,
    pub stderr: String,
}

impl Pgo {
    pub fn start(dir: &Path, manifest: &str) -> Pgo {
        Pgo::on(Server::start(dir, manifest))
    }

    pub fn on(server: Server) -> Pgo {
        let url = server.url("/pgo");
        let ca = server.data.join("tls/ca.pem");
        Pgo { server, url, ca }
    }

    /// `curl --cacert CA <auth…> -H Content-Type:application/json -X METHOD [--data BODY] URL/path`.
    pub fn curl(&self, auth: &[&str], method: &str, path: &str, body: Option<&str>) -> Reply {
        let mut cmd = Command::new(CURL);
        cmd.args(["-sS", "--max-time", "30", "--cacert"])
            .arg(&self.ca)
            .args(auth)
            .args(["-H", "Content-Type:application/json", "-X", method]);
        if let Some(b) = body {
            cmd.args(["--data-binary", b]);
        }
        cmd.args(["-w", "\n%{http_code}"])
            .arg(format!("{}{path}", self.url));
        let out = cmd.output().expect("running /usr/bin/curl");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let (text, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
        Reply {
            status: code.trim().parse().unwrap_or(0),
            body: serde_json::from_str(text).unwrap_or(Value::Null),
            curl_ok: out.status.success(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn post(&self, auth: &[&str], path: &str, body: &str) -> Reply {
        self.curl(auth, "POST", path, Some(body))
    }

    /// The cluster's detail (`Results[0]`), or the error reply's message.
    pub fn show(&self, auth: &[&str], ns: &str, name: &str) -> Result<Value, String> {
        let r = self.post(auth, "/showclusters", &select_body("4.7.4", ns, name));
        assert_eq!(r.status, 200, "{}", r.body);
        match code(&r.body).as_str() {
            "ok" => Ok(r.body["Results"][0].clone()),
            _ => Err(msg(&r.body)),
        }
    }

    /// Polls until the cluster's state is `state`; returns its detail.
    pub fn wait_state(&self, auth: &[&str], ns: &str, name: &str, state: &str) -> Value {
        wait_for(&format!("{ns}/{name} to be {state}"), || {
            self.show(auth, ns, name)
                .ok()
                .filter(|d| d["cluster"]["status"]["state"] == state)
        })
    }

    /// Polls until the cluster is gone; returns the error message.
    pub fn wait_gone(&self, auth: &[&str], ns: &str, name: &str) -> String {
        wait_for(&format!("{ns}/{name} to be gone"), || {
            self.show(auth, ns, name).err()
        })
    }

    /// Adds a user through the admin API; returns `user:password` for `-u`.
    pub fn add_user(&self, name: &str, role: &str, namespaces: &[&str]) -> String {
        let password = format!("{name}-password");
        let token = self.server.admin_token();
        let mut args = vec!["user", "add", name, "--role", role, "--password-stdin"];
        for ns in namespaces {
            args.extend(["--namespace", ns]);
        }
        args.extend(["--server", &self.server.base, "--token", &token]);
        let (ok, _, err) = self.server.cli(&args, Some(&format!("{password}\n")));
        assert!(ok, "baton user add {name}: {err}");
        format!("{name}:{password}")
    }
}

/// The `Status` of a reply (`pkg/apiservermsgs`): top-level `Code` and
/// `Msg`, except in a `CreateClusterResponse` (the one with `result`),
/// which tags it `status`. Never a nested `Status`.
fn status_of(body: &Value) -> &Value {
    assert!(body.get("Status").is_none(), "a nested `Status`: {body}");
    if body.get("result").is_some() {
        assert!(body.get("Code").is_none(), "{body}");
        &body["status"]
    } else {
        body
    }
}

/// `Code` of a reply ([`status_of`]).
pub fn code(body: &Value) -> String {
    status_of(body)["Code"]
        .as_str()
        .unwrap_or_else(|| panic!("no string `Code` in {body}"))
        .to_string()
}

/// `Msg` of a reply ([`status_of`]).
pub fn msg(body: &Value) -> String {
    status_of(body)["Msg"]
        .as_str()
        .unwrap_or_else(|| panic!("no string `Msg` in {body}"))
        .to_string()
}

/// Polls `f` until it gives a value ([`poll`]).
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    poll(what, || f().ok_or_else(|| "nothing yet".to_string()))
}

/// A manifest serving only `/pgo` over self-signed TLS: the default
/// manifest's handler ([`shipped_handler_without_config`]) with a 64 KiB
/// body limit and `config` as its `[handler.config]`.
pub fn pgo_manifest(config: &str) -> String {
    format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\ntls = \"self-signed\"\n\n{}\
         [handler.limits]\nmax_body_bytes = 65536\n[handler.config]\n{config}\n",
        shipped_handler_without_config("pgo")
    )
}

/// Commands that wait for a gate file in `dir` before acting, so each
/// state can be observed: provisioning writes the manifest it was given to
/// `dir/<ns>.<name>.yaml`, teardown removes it.
pub fn gated_commands(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r##"provision_command = '''sh -c 'while [ ! -e "$0/go-provision" ]; do sleep 0.05; done; {{ echo "# by $PGO_USER for $PGO_WORKFLOW_ID"; cat; }} > "$0/$PGO_NAMESPACE.$PGO_CLUSTER.yaml"' {d}'''
teardown_command = '''sh -c 'while [ ! -e "$0/go-teardown" ]; do sleep 0.05; done; rm -f "$0/$PGO_NAMESPACE.$PGO_CLUSTER.yaml"' {d}'''
"##
    )
}

/// The shipped default manifest on an ephemeral port.
pub fn default_manifest() -> String {
    let text = std::fs::read_to_string(root().join("host/baton.toml")).unwrap();
    assert!(text.contains("address = \"127.0.0.1:8143\""));
    // Both fixed ports: other suites bind them.
    text.replace("address = \"127.0.0.1:8143\"", "address = \"127.0.0.1:0\"")
        .replace("address = \"127.0.0.1:9090\"", "address = \"127.0.0.1:0\"")
}
