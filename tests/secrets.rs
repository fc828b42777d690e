//! Handler secrets, against the real binary: `[handler.secrets]` entries
//! from the server's environment and from files reach the guest through
//! `baton:api/secrets` (a rotated file is read anew), undeclared names are
//! `none`, and no value appears in the server's log or the admin API. A
//! secret that cannot be read stops startup naming the handler, the secret
//! and its source; malformed entries are refused by the manifest check.

mod support;

use std::process::Command;
use support::*;

const ENV_VALUE: &str = "env-secret-value-8f3a";
const FILE_VALUE: &str = "file-secret-value-77c1";

fn jobber_manifest(secrets: &str) -> String {
    let wasm = test_components().join("jobber.wasm");
    manifest(&format!(
        "[[handler]]\nname = \"jobber\"\nwasm = \"{}\"\nmount = \"/jobber\"\npolicy = \"public\"\n\
         [handler.config]\ngreeting = \"hello\"\n[handler.secrets]\n{secrets}",
        wasm.display()
    ))
}

fn serve_cmd(dir: &std::path::Path, manifest: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = serve_command(dir, manifest);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn secret(server: &Server, name: &str) -> serde_json::Value {
    server.get_json(&format!("/jobber/secret/{name}"))["value"].clone()
}

#[test]
fn secrets_come_from_the_environment_and_files_and_never_show_in_logs_or_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.txt"), format!("{FILE_VALUE}\n")).unwrap();
    let m = jobber_manifest(
        "api_token = { env = \"BATON_TEST_API_TOKEN\" }\nssh_key = { file = \"key.txt\" }\n",
    );
    let cmd = serve_cmd(dir.path(), &m, &[("BATON_TEST_API_TOKEN", ENV_VALUE)]);
    let server = Server::spawn(cmd, dir.path().join("data"));
    assert_eq!(secret(&server, "api_token"), ENV_VALUE);
    assert_eq!(
        secret(&server, "ssh_key"),
        FILE_VALUE,
        "one final newline dropped"
    );
    assert_eq!(
        secret(&server, "greeting"),
        serde_json::Value::Null,
        "config is not a secret"
    );
    assert_eq!(secret(&server, "undeclared"), serde_json::Value::Null);

    // A rotated file is read at the next call; a vanished one is `none`, logged by name.
    std::fs::write(dir.path().join("key.txt"), "rotated").unwrap();
    assert_eq!(secret(&server, "ssh_key"), "rotated");
    std::fs::remove_file(dir.path().join("key.txt")).unwrap();
    assert_eq!(secret(&server, "ssh_key"), serde_json::Value::Null);
    server.wait_log("secret=ssh_key");

    let admin = server.get_json("/admin/v1/handlers").to_string();
    assert!(admin.contains("jobber"), "{admin}");
    let log = server.terminate();
    for value in [ENV_VALUE, FILE_VALUE, "rotated"] {
        assert!(!log.contains(value), "{value} in the log:\n{log}");
        assert!(!admin.contains(value), "{value} in the admin API: {admin}");
    }
}

#[test]
fn a_secret_that_cannot_be_read_stops_startup_naming_the_handler_secret_and_source() {
    let dir = tempfile::tempdir().unwrap();
    let m = jobber_manifest("api_token = { env = \"BATON_TEST_SURELY_UNSET_TOKEN\" }\n");
    let mut cmd = serve_cmd(dir.path(), &m, &[]);
    cmd.env_remove("BATON_TEST_SURELY_UNSET_TOKEN");
    let out = cmd
        .env("BATON_ADMIN_PASSWORD", "a-long-enough-password")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("handler `jobber`"), "{err}");
    assert!(err.contains("secret `api_token`"), "{err}");
    assert!(err.contains("BATON_TEST_SURELY_UNSET_TOKEN"), "{err}");

    let m = jobber_manifest("ssh_key = { file = \"missing.pem\" }\n");
    let out = serve_cmd(dir.path(), &m, &[])
        .env("BATON_ADMIN_PASSWORD", "a-long-enough-password")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("secret `ssh_key`") && err.contains("missing.pem"),
        "{err}"
    );
}

#[test]
fn malformed_secret_entries_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (entry, wants) in [
        (
            "x = { env = \"A\", file = \"b\" }\n",
            ["secrets.x", "exactly one"],
        ),
        ("x = {}\n", ["secrets.x", "exactly one"]),
        (
            "\"a b\" = { env = \"A\" }\n",
            ["secrets.a b", "not a secret name"],
        ),
        // A value in the manifest itself is not a source.
        (
            "x = { value = \"inline\" }\n",
            ["unknown field `value`", "env"],
        ),
    ] {
        std::fs::write(dir.path().join("bad.toml"), jobber_manifest(entry)).unwrap();
        let err = serve_manifest_fails(dir.path(), "bad.toml");
        for want in wants {
            assert!(err.contains(want), "{entry}: {err}");
        }
    }
}
