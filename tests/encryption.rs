//! Encrypted kv buckets, against the real binary and its sled directory:
//! the Commissaire handler's SSH keys (`encrypted_buckets = ["creds"]` in the
//! shipped manifest) are ciphertext on disk, plain-text keys left by an
//! earlier version are sealed at start and the database rewritten so that
//! no plain copy remains, key rotation re-seals under the new key, and a
//! missing key stops the start naming it.

mod support;

use serde_json::json;
use std::path::Path;
use support::clusters::*;
use support::*;

/// The private key, as `PUT /host/{ip}` takes it (base64), and as it would
/// sit in a plain-text record.
const KEY_TEXT: &str = "-----BEGIN OPENSSH PRIVATE KEY----- root-key-material-4c1e9a";

/// Whether any file under `dir` (the key file aside) holds `needle`.
fn on_disk(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            on_disk(&p, needle)
        } else {
            let bytes = std::fs::read(&p).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        }
    })
}

/// The shipped clusters manifest, with `storage` prepended and, when
/// `encrypted` is false, without its `encrypted_buckets` line (as before
/// this version).
fn manifest(storage: &str, encrypted: bool) -> String {
    let m = clusters_manifest(&[]);
    let m = if encrypted {
        m
    } else {
        let without: Vec<&str> = m
            .lines()
            .filter(|l| !l.starts_with("encrypted_buckets"))
            .collect();
        without.join("\n")
    };
    format!("[storage]\n{storage}\n{m}")
}

fn start(dir: &Path, storage: &str, encrypted: bool, env: &[(&str, &str)]) -> Server {
    let mut cmd = serve_command(dir, &manifest(storage, encrypted));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let server = Server::spawn(cmd, dir.join("data"));
    server.put_user(
        "ops",
        json!({"password": OPS_PASSWORD, "roles": ["operator"]}),
    );
    server
}

fn creds(server: &Server, address: &str) -> serde_json::Value {
    let (status, v) = call_as(
        server,
        ("admin", ADMIN_PASSWORD),
        "GET",
        &format!("/host/{address}/creds"),
        None,
    );
    assert_eq!(status, 200, "{v}");
    v
}

fn add_host(server: &Server, address: &str) {
    ok(
        server,
        "PUT",
        &format!("/host/{address}"),
        Some(json!({"ssh_priv_key": b64(KEY_TEXT), "cluster": "c1"})),
        201,
    );
    // The bootstrap job reads the key back (it hands it to the command).
    wait_for(server, &format!("/host/{address}"), "active", |h| {
        h["status"] == "active"
    });
}

#[test]
fn plain_keys_are_sealed_at_start_rotated_and_never_left_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stored = b64(KEY_TEXT);

    // An earlier version: the key sits in plain text in the database.
    let server = start(dir.path(), "", false, &[]);
    setup_cluster(&server, "c1");
    add_host(&server, "10.2.0.1");
    server.terminate();
    assert!(on_disk(&data.join("db"), &stored), "plain before");

    // This version: sealed at start, the database rewritten, still served.
    let server = start(dir.path(), "", true, &[]);
    let line = server.wait_log("encrypted bucket brought in line");
    assert!(line.contains("sealed=1"), "{line}");
    server.wait_log("database rewritten");
    assert_eq!(creds(&server, "10.2.0.1")["ssh_priv_key"], stored);
    add_host(&server, "10.2.0.2");
    assert_eq!(creds(&server, "10.2.0.2")["ssh_priv_key"], stored);
    let log = server.terminate();
    assert!(!log.contains(&stored) && !log.contains(KEY_TEXT));
    assert!(!on_disk(&data, &stored), "no plain copy left in {data:?}");
    assert!(data.join("kv-encryption.key").exists());

    // Rotation: a new key from the environment, the generated one previous.
    let new_key = "5a".repeat(32);
    let rotate = format!(
        "encryption_key = {{ env = \"BATON_TEST_KV_KEY\" }}\n\
         previous_encryption_keys = [{{ file = \"{}\" }}]\n",
        data.join("kv-encryption.key").display()
    );
    let server = start(
        dir.path(),
        &rotate,
        true,
        &[("BATON_TEST_KV_KEY", &new_key)],
    );
    let line = server.wait_log("encrypted bucket brought in line");
    assert!(line.contains("rekeyed=2"), "{line}");
    server.wait_log("database rewritten");
    assert_eq!(creds(&server, "10.2.0.1")["ssh_priv_key"], stored);
    server.terminate();

    // The old key is no longer needed.
    let new_only = "encryption_key = { env = \"BATON_TEST_KV_KEY\" }\n";
    let server = start(
        dir.path(),
        new_only,
        true,
        &[("BATON_TEST_KV_KEY", &new_key)],
    );
    assert_eq!(creds(&server, "10.2.0.2")["ssh_priv_key"], stored);
    assert!(!server.log().contains("database rewritten"));
    server.terminate();

    // A key that did not seal them: the start stops, naming what to add.
    std::fs::write(dir.path().join("baton.toml"), manifest(new_only, true)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["serve", "--manifest"])
        .arg(dir.path().join("baton.toml"))
        .arg("--data")
        .arg(&data)
        .env("BATON_TEST_KV_KEY", "77".repeat(32))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("previous_encryption_keys"), "{err}");
    assert!(err.contains("creds"), "{err}");

    // A key that is not 64 hex digits: refused, naming its source.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["serve", "--manifest"])
        .arg(dir.path().join("baton.toml"))
        .arg("--data")
        .arg(&data)
        .env("BATON_TEST_KV_KEY", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("BATON_TEST_KV_KEY") && err.contains("64 hex digits"),
        "{err}"
    );
    assert!(!err.contains("short"), "the value is never printed: {err}");
}

#[test]
fn a_bucket_no_longer_declared_encrypted_is_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let stored = b64(KEY_TEXT);
    let server = start(dir.path(), "", true, &[]);
    setup_cluster(&server, "c1");
    add_host(&server, "10.3.0.1");
    server.terminate();
    assert!(!on_disk(&data.join("db"), &stored));
    let server = start(dir.path(), "", false, &[]);
    let line = server.wait_log("encrypted bucket brought in line");
    assert!(line.contains("opened=1"), "{line}");
    assert_eq!(creds(&server, "10.3.0.1")["ssh_priv_key"], stored);
}
