//! `[storage] url`: a real `baton serve` keeping every piece of state in a
//! private PostgreSQL (tests/support/postgres.rs) instead of sled, so that
//! a new machine with an empty data directory takes over where the old one
//! stopped: users, tokens, jobs with their events, the orchestrator's data.
//! Several replicas on one database: tests/replicas.rs.

#[path = "support/orchestrator.rs"]
mod orch;
mod support;

use orch::*;
use serde_json::json;
use std::time::{Duration, Instant};
use support::*;

/// The orchestrator over HTTPS with a quick agent, keeping state at `url`.
fn on_postgres(url: &str) -> String {
    format!(
        "{}\n[storage]\nurl = \"{url}\"\n",
        manifest_with_agent(r#"["sh", "-c", "echo ran $1", "agent", "{node}"]"#)
    )
}

#[test]
fn everything_lives_in_the_database_so_a_new_machine_takes_over() {
    let url = support::postgres::database();
    let manifest = on_postgres(&url);
    let first = tempfile::tempdir().unwrap();
    let server = Server::start(first.path(), &manifest);
    assert!(server.log().contains("storage open"), "{}", server.log());
    server.put_user(
        "ann",
        json!({"password": "ann-password", "roles": ["viewer"]}),
    );
    let token = server.admin_token();
    let name = deploy(
        &server,
        json!({"environment": "production", "scope": {"nodes": ["n1", "n2"]}}),
    );
    let done = wait_final(&server, &name);
    assert_eq!(done["state"], "finished", "{done}");
    let seen_events = events(&server, &name);
    // Nothing of the state went to the data directory: no sled database.
    assert!(!first.path().join("data/db").exists());
    server.kill9();

    // Another machine: a new, empty data directory, the same database.
    let second = tempfile::tempdir().unwrap();
    let server = Server::start(second.path(), &manifest);
    // Clients keep trusting the one generated CA.
    let ca = |dir: &tempfile::TempDir| std::fs::read(dir.path().join("data/tls/ca.pem")).unwrap();
    assert_eq!(ca(&first), ca(&second));
    let old_trust = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca(&first)).unwrap())
        .build()
        .unwrap();
    let health = old_trust
        .get(server.url("/admin/v1/healthz"))
        .send()
        .unwrap();
    assert!(health.status().is_success(), "{health:?}");
    // A token the first server issued is good here (one shared secret).
    let c = server.client_with_token(&token);
    let job = c
        .get(server.url(&format!("/orchestrator/v1/jobs/{name}")))
        .send()
        .unwrap();
    assert_eq!(job.status(), 200);
    let job: serde_json::Value = job.json().unwrap();
    assert_eq!(job["state"], "finished", "{job}");
    assert_eq!(events(&server, &name), seen_events);
    let items = nodes(&server, &name);
    assert!(items.iter().all(|n| n["state"] == "finished"), "{items:#?}");
    assert_eq!(
        server.get_json("/admin/v1/users/ann")["roles"],
        json!(["viewer"])
    );
    // Job names go on from where the first machine stopped.
    let next = deploy(
        &server,
        json!({"environment": "production", "scope": {"nodes": ["n1"]}}),
    );
    assert_eq!(
        next.parse::<u64>().unwrap(),
        name.parse::<u64>().unwrap() + 1
    );
    assert_eq!(wait_final(&server, &next)["state"], "finished");
}

#[test]
fn an_unreachable_database_is_retried_and_its_password_never_shown() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://baton:s3cret-pw@127.0.0.1:{port}/baton");
    let dir = tempfile::tempdir().unwrap();
    let mut child = serve_command(dir.path(), &on_postgres(&url))
        .env("BATON_ADMIN_PASSWORD", "admin-password")
        .env("BATON_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = lines.lock().unwrap().clone();
        if log.matches("PostgreSQL cannot be reached").count() >= 2 {
            assert!(!log.contains("s3cret-pw"), "{log}");
            assert!(
                log.contains(&format!("postgres://baton@127.0.0.1:{port}/baton")),
                "{log}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no retries logged:\n{log}");
        // Still waiting for the database, not gone.
        assert!(child.try_wait().unwrap().is_none(), "baton exited:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn encrypted_buckets_on_a_database_need_a_configured_key() {
    let url = support::postgres::database();
    let dir = tempfile::tempdir().unwrap();
    let manifest = format!(
        "{}\n[[handler]]\nname = \"sealed\"\nwasm = \"builtin:clusters\"\nmount = \"/sealed\"\n\
         encrypted_buckets = [\"creds\"]\n\n[storage]\nurl = \"{url}\"\n",
        support::manifest("")
    );
    std::fs::write(dir.path().join("baton.toml"), manifest).unwrap();
    let err = serve_manifest_fails(dir.path(), "baton.toml");
    assert!(err.contains("set `[storage] encryption_key`"), "{err}");
}
