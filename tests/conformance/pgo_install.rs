//! The server side of the pgo conformance tests: a baton serving `/pgo`
//! over mutual TLS, requests sent as pgo sends them, replies checked as pgo
//! decodes them, and the seed's curl commands run through `sh`.
#![allow(dead_code)]

use crate::go::*;
use crate::support::*;
use crate::wire;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// The admin password of these servers: the one seed 004's curl examples use.
pub const PASSWORD: &str = "examplepassword";

/// A baton serving `/pgo` on a mutual-TLS listener (client certificates
/// from the generated CA, as the PGO API server requires), with commands
/// that finish at once.
pub struct Pgo {
    pub server: Server,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// The client certificate and key `baton cert issue --user admin` wrote.
    pub cert: PathBuf,
    pub key: PathBuf,
    tls: Arc<rustls::ClientConfig>,
}

impl Pgo {
    pub fn start(dir: &Path) -> Pgo {
        Pgo::with_users(dir, &[])
    }

    /// Like [`Pgo::start`], with `(name, role, namespaces)` users added
    /// (password `NAME-password`) while the server is stopped: the
    /// listener takes only client certificates, which the CLI has none of.
    pub fn with_users(dir: &Path, users: &[(&str, &str, &[&str])]) -> Pgo {
        if !users.is_empty() {
            drop(Pgo::with_users(dir, &[]));
            for (name, role, namespaces) in users {
                let mut args = vec!["user", "add", name, "--role", role, "--password-stdin"];
                for ns in *namespaces {
                    args.extend(["--namespace", ns]);
                }
                let (ok, _, err) =
                    Server::offline(dir).cli(&args, Some(&format!("{name}-password\n")));
                assert!(ok, "baton user add {name}: {err}");
            }
        }
        let manifest = format!(
            "[[listener]]\naddress = \"127.0.0.1:0\"\n\
             tls = {{ self_signed = true, client_ca = \"self-signed\" }}\n\n{}\
             [handler.config]\n\
             provision_command = \"sh -c 'cat > /dev/null'\"\n\
             teardown_command = \"sh -c 'cat > /dev/null'\"\n",
            shipped_handler_without_config("pgo")
        );
        let mut cmd = serve_command(dir, &manifest);
        cmd.env("BATON_ADMIN_PASSWORD", PASSWORD);
        let mut server = Server::spawn_without_admin_password(cmd, dir.join("data"));
        server.manifest = Some(dir.join("baton.toml"));
        let (ok, out, err) = server.cli(&["cert", "issue", "--user", "admin"], None);
        assert!(ok, "baton cert issue: {err}");
        let line = |label: &str| -> PathBuf {
            out.lines()
                .find_map(|l| l.strip_prefix(&format!("{label}: ")))
                .unwrap_or_else(|| panic!("no `{label}:` in {out}"))
                .into()
        };
        let (cert, key) = (line("cert"), line("key"));
        let tls = wire::tls_config(&server.data.join("tls/ca.pem"), Some((&cert, &key)));
        Pgo {
            host: wire::authority(&server.base),
            server,
            cert,
            key,
            tls,
        }
    }

    /// Sends what pgo's `cmd/pgo/api` sends for `method /pgo{path}` as
    /// `user:password`; the reply's status and body.
    pub fn go(
        &self,
        user: &str,
        password: &str,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> wire::Reply {
        let request = go_request(
            method,
            &self.host,
            &format!("/pgo{path}"),
            &wire::basic(user, password),
            body,
        );
        wire::exchange(&self.host, Some(&self.tls), &request)
    }

    pub fn admin(&self, method: &str, path: &str, body: Option<&str>) -> wire::Reply {
        self.go("admin", PASSWORD, method, path, body)
    }

    /// `pgo show cluster NAME -n NS`: the decoded reply.
    pub fn show(&self, ns: &str, name: &str) -> Value {
        let r = self.admin(
            "POST",
            "/showclusters",
            Some(&show_request(PGO_VERSION, ns, name, "", false)),
        );
        assert_eq!(r.status, 200);
        decoded(&r, &SHOW_RESPONSE)
    }
}

/// The reply decoded as pgo decodes it into `t`: an HTTP 200 whose JSON has
/// every field of the Go struct under its exact JSON name, each of a type
/// the field can hold.
pub fn decoded(r: &wire::Reply, t: &Go) -> Value {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "{:?}",
        r.headers
    );
    let v = r.json();
    decode(&v, t, "response").unwrap_or_else(|e| panic!("{e}\n{v}"));
    for name in names(t) {
        assert!(v.get(name).is_some(), "no `{name}` in {v}");
    }
    v
}

pub fn reply(r: &wire::Reply) -> (u16, &[u8]) {
    (r.status, &r.body)
}

/// Runs one curl command of seed 004 exactly as written, through `sh`, with
/// its variables set (`PGO_APISERVER_URL`, `PGO_CA_CERT`, `PGO_CLIENT_KEY`);
/// `-sS -w '\n%{http_code}'` is appended, which changes only what curl
/// prints. The HTTP status and the JSON body.
pub fn seed_curl(pgo: &Pgo, bundle: &Path, command: &str) -> (u16, Value) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{command} -sS -w '\\n%{{http_code}}'"))
        .env("PATH", "/usr/bin:/bin")
        .env("PGO_APISERVER_URL", pgo.server.url("/pgo"))
        .env("PGO_CA_CERT", bundle)
        .env("PGO_CLIENT_KEY", &pgo.key)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{command}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, code) = stdout.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")),
    )
}
