//! TLS listeners: configured certificate files, and mutual TLS where the
//! handshake itself refuses clients without a certificate from the right CA.

mod support;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use serde_json::Value;
use std::path::Path;
use support::*;

/// A CA that can sign server and client certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// (certificate PEM, key PEM) for `cn` with `sans`, for server or client use.
    fn sign(&self, cn: &str, sans: &[&str], server: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes server files signed by `ca` into `dir` and returns the listener's TLS table.
fn server_files(dir: &Path, ca: &Ca, client_ca: Option<&Ca>) -> String {
    let (cert, key) = ca.sign("baton-test", &["localhost", "127.0.0.1"], true);
    std::fs::write(dir.join("server.pem"), cert).unwrap();
    std::fs::write(dir.join("server-key.pem"), key).unwrap();
    match client_ca {
        Some(c) => {
            std::fs::write(dir.join("clients.pem"), &c.pem).unwrap();
            "tls = { cert = \"server.pem\", key = \"server-key.pem\", client_ca = \"clients.pem\" }"
                .into()
        }
        None => "tls = { cert = \"server.pem\", key = \"server-key.pem\" }".into(),
    }
}

fn tls_manifest(tls: &str) -> String {
    format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n{tls}\n\n{ORCHESTRATOR}\
         [[handler.route]]\npath = \"/inventory/*\"\nmethods = [\"PUT\"]\npolicy = \"inventory:write\"\n"
    )
}

fn client_for(ca: &Ca, identity: Option<(String, String)>) -> reqwest::blocking::Client {
    let mut b = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap());
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

#[test]
fn configured_certificate_files_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test CA");
    let server = Server::start(
        dir.path(),
        &tls_manifest(&server_files(dir.path(), &ca, None)),
    );
    assert!(server.base.starts_with("https://"));
    let resp = client_for(&ca, None)
        .get(server.url("/orchestrator/v1/inventory"))
        .header("X-Authentication", server.admin_token())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Nothing was generated: the configured files are used.
    assert!(!server.data.join("tls").exists());
}

#[test]
fn an_mtls_listener_refuses_the_handshake_without_a_trusted_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let rogue_ca = Ca::new("rogue CA");
    let tls = server_files(dir.path(), &server_ca, Some(&client_ca));
    let server = Server::start(dir.path(), &tls_manifest(&tls));
    let url = server.url("/orchestrator/v1/inventory");

    // No certificate, or one from another CA: the connection fails, no HTTP reply.
    let err = client_for(&server_ca, None).get(&url).send().unwrap_err();
    assert!(err.status().is_none(), "{err:?}");
    let rogue = rogue_ca.sign("admin", &[], false);
    let err = client_for(&server_ca, Some(rogue))
        .get(&url)
        .send()
        .unwrap_err();
    assert!(err.status().is_none(), "{err:?}");

    // A trusted certificate whose CN is a user authenticates as that user.
    let admin = client_for(&server_ca, Some(client_ca.sign("admin", &[], false)));
    let resp = admin.get(&url).send().unwrap();
    assert_eq!(resp.status(), 200);
    let resp = admin
        .put(server.url("/orchestrator/v1/inventory/nodes/db-1"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);

    // A trusted certificate of no known user is authenticated but holds no role:
    // it needs Basic credentials (the PGO pattern) to act as a user.
    let stranger = client_for(&server_ca, Some(client_ca.sign("stranger", &[], false)));
    assert_eq!(stranger.get(&url).send().unwrap().status(), 200);
    let resp = stranger
        .put(server.url("/orchestrator/v1/inventory/nodes/db-2"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = stranger
        .get(server.url("/orchestrator/v1/inventory"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(body["items"][0]["name"], "db-1");
}

#[test]
fn a_listener_with_unreadable_tls_files_stops_startup_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("baton.toml"),
        tls_manifest("tls = { cert = \"missing.pem\", key = \"missing-key.pem\" }"),
    )
    .unwrap();
    let err = serve_manifest_fails(dir.path(), "baton.toml");
    assert!(err.contains("missing.pem"), "{err}");
    std::fs::write(dir.path().join("junk.pem"), "not a certificate").unwrap();
    std::fs::write(
        dir.path().join("baton.toml"),
        tls_manifest("tls = { cert = \"junk.pem\", key = \"junk.pem\" }"),
    )
    .unwrap();
    let err = serve_manifest_fails(dir.path(), "baton.toml");
    assert!(err.contains("junk.pem"), "{err}");
}
