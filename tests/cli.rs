//! `baton user` and `baton token` on a data directory and through a running
//! server's admin API.

mod support;

use support::*;

#[test]
fn users_are_managed_through_the_admin_api_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &manifest(ORCHESTRATOR));
    let token = server.admin_token();
    let remote = |args: &[&str], stdin: Option<&str>| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", server.base.as_str(), "--token", token.as_str()]);
        server.cli(&all, stdin)
    };
    let (ok, out, err) = remote(
        &["user", "add", "ann", "--role", "viewer", "--password-stdin"],
        Some("ann-password\n"),
    );
    assert!(ok, "{err}");
    assert!(out.contains("created user ann"), "{out}");
    let (ok, out, _) = remote(&["user", "list"], None);
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with("ann") && l.contains("viewer")),
        "{out}"
    );
    let resp = server
        .anonymous()
        .get(server.url("/orchestrator/v1/inventory"))
        .basic_auth("ann", Some("ann-password"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // A generated password is printed once.
    let (ok, out, err) = remote(&["user", "passwd", "ann"], None);
    assert!(ok, "{err}");
    let password = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap()
        .to_string();
    let resp = server
        .anonymous()
        .get(server.url("/orchestrator/v1/inventory"))
        .basic_auth("ann", Some(&password))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // `baton token --server` asks the server for a token.
    let (ok, out, err) = remote(&["token", "--user", "ann", "--lifetime", "10m"], None);
    assert!(ok, "{err}");
    assert_eq!(out.trim().matches('.').count(), 2, "{out}");

    // The data directory is locked by the server: say so, and what to do.
    let (ok, _, err) = server.cli(&["user", "add", "bob"], None);
    assert!(!ok);
    assert!(err.contains("--server"), "{err}");
    // Errors from the server are shown, not swallowed.
    let (ok, _, err) = remote(&["user", "del", "admin"], None);
    assert!(!ok);
    assert!(err.contains("last user with the admin role"), "{err}");
    let (ok, _, err) = remote(&["user", "add", "x y"], None);
    assert!(!ok);
    assert!(err.contains("not a valid user name"), "{err}");
    let (ok, _, err) = server.cli(
        &[
            "user",
            "list",
            "--server",
            server.base.as_str(),
            "--token",
            "garbage",
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("401"), "{err}");
}

#[test]
fn users_and_tokens_work_on_the_data_directory_when_the_server_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let m = manifest(ORCHESTRATOR);
    drop(Server::start(dir.path(), &m));
    let offline = Server::offline(dir.path());
    let (ok, out, err) = offline.cli(
        &[
            "user",
            "add",
            "otto",
            "--role",
            "operator",
            "--namespace",
            "prod",
            "--totp",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("password: "), "{out}");
    assert!(out.contains("otpauth://totp/"), "{out}");
    let (ok, out, _) = offline.cli(&["user", "list"], None);
    assert!(ok);
    let line = out.lines().find(|l| l.starts_with("otto")).unwrap();
    assert!(
        line.contains("operator") && line.contains("prod") && line.ends_with("yes"),
        "{line}"
    );
    let (ok, _, err) = offline.cli(
        &["user", "add", "weak", "--password-stdin"],
        Some("short\n"),
    );
    assert!(!ok);
    assert!(err.contains("at least 8"), "{err}");
    let (ok, _, err) = offline.cli(&["token", "--user", "ghost"], None);
    assert!(!ok);
    assert!(err.contains("no user `ghost`"), "{err}");
    let (ok, _, err) = offline.cli(&["token", "--lifetime", "soon"], None);
    assert!(!ok);
    assert!(err.contains("lifetime"), "{err}");
    let (ok, _, err) = offline.cli(&["token", "--lifetime", "400d"], None);
    assert!(!ok);
    assert!(err.contains("max_token_lifetime_secs"), "{err}");
    let (ok, out, _) = offline.cli(&["user", "del", "otto"], None);
    assert!(ok);
    assert!(out.contains("deleted user otto"));
    let (ok, _, err) = offline.cli(&["user", "del", "otto"], None);
    assert!(!ok);
    assert!(err.contains("no user `otto`"), "{err}");

    // A short-lived token from the data directory works once the server is back.
    let token = offline.token("admin");
    let server = Server::start(dir.path(), &m);
    let resp = server
        .client_with_token(&token)
        .get(server.url("/orchestrator/v1/inventory"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn token_needs_a_data_directory_that_has_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let offline = Server::offline(dir.path());
    let (ok, out, err) = offline.cli(&["token"], None);
    assert!(!ok);
    assert!(
        out.is_empty(),
        "nothing but a token may reach stdout: {out}"
    );
    assert!(
        err.contains("jwt-secret") && err.contains("baton serve"),
        "{err}"
    );
}
