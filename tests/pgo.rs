//! The PGO API at `/pgo` (specs/pgo.md), driven the way its documentation
//! drives it: the real `curl` with `--cacert` (and `--key`/`--cert` on a
//! mutual-TLS listener) and `-u user:password`, against a real server whose
//! jobs run real processes.

#[path = "pgo/client.rs"]
mod client;
mod support;

use client::*;
use serde_json::json;
use std::path::Path;
use std::process::Command;
use support::*;

#[test]
fn documented_curl_flow_with_basic_auth_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("cluster-files");
    std::fs::create_dir(&work).unwrap();
    let pgo = Pgo::start(dir.path(), &pgo_manifest(&gated_commands(&work)));
    let auth = ["-u", ADMIN];

    let r = pgo.curl(&auth, "GET", "/version", None);
    assert_eq!((r.status, r.curl_ok), (200, true), "{}", r.stderr);
    assert_eq!(
        r.body,
        json!({ "Version": "4.7.4", "Code": "ok", "Msg": "apiserver version" })
    );

    // Create: the record exists at once, `creating`, and names its workflow.
    let r = pgo.post(
        &auth,
        "/clusters",
        &create_body("4.7.4", "pgouser1", "mycluster"),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(code(&r.body), "ok", "{}", r.body);
    assert_eq!(r.body["result"]["Name"], "mycluster");
    let workflow = r.body["result"]["WorkflowID"].as_str().unwrap().to_string();
    assert_eq!(r.body["result"]["WorkflowID"], workflow.as_str());

    // The job runs the provision command, which waits at its gate.
    let detail = wait_for("the provision command to start", || {
        pgo.show(&auth, "pgouser1", "mycluster")
            .ok()
            .filter(|d| d["cluster"]["status"]["message"] == "provisioning (step 1 of 1)")
    });
    assert_eq!(detail["cluster"]["status"]["state"], "creating");
    assert_eq!(detail["Workflow"]["ID"], workflow.as_str());
    assert_eq!(detail["Workflow"]["State"], "running");
    assert_eq!(detail["Workflow"]["Progress"]["Message"], "provisioning");

    std::fs::write(work.join("go-provision"), "").unwrap();
    let detail = pgo.wait_state(&auth, "pgouser1", "mycluster", "ready");
    let cluster = &detail["cluster"];
    assert_eq!(cluster["kind"], "Pgcluster");
    assert_eq!(cluster["metadata"]["name"], "mycluster");
    assert_eq!(cluster["metadata"]["namespace"], "pgouser1");
    assert_eq!(cluster["metadata"]["labels"]["pgouser"], "admin");
    assert_eq!(cluster["spec"]["ccpimagetag"], "centos8-13.4-4.7.4");
    assert_eq!(detail["Workflow"]["State"], "succeeded");

    // The command really ran, with the rendered manifest on stdin.
    let written = std::fs::read_to_string(work.join("pgouser1.mycluster.yaml")).unwrap();
    assert!(
        written.starts_with(&format!("# by admin for {workflow}\n")),
        "{written}"
    );
    assert!(
        written.contains("kind: Pgcluster\nmetadata:\n  name: mycluster\n  namespace: pgouser1\n"),
        "{written}"
    );

    let r = pgo.post(&auth, "/showclusters", &all_body("4.7.4", "pgouser1"));
    assert_eq!(r.body["Results"].as_array().unwrap().len(), 1, "{}", r.body);
    let r = pgo.post(&auth, "/showclusters", &all_body("4.7.4", "pgouser2"));
    assert_eq!(r.body["Results"], json!([]), "{}", r.body);

    // Delete: `deleting` while the teardown command waits, then gone.
    let r = pgo.post(
        &auth,
        "/clustersdelete",
        &select_body("4.7.4", "pgouser1", "mycluster"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(code(&r.body), "ok", "{}", r.body);
    assert_eq!(r.body["Results"], json!(["deleted mycluster"]));
    let detail = pgo.wait_state(&auth, "pgouser1", "mycluster", "deleting");
    assert_ne!(detail["Workflow"]["ID"], workflow.as_str());
    assert_eq!(detail["Workflow"]["Kind"], "teardown");
    let r = pgo.post(
        &auth,
        "/clustersdelete",
        &select_body("4.7.4", "pgouser1", "mycluster"),
    );
    assert!(msg(&r.body).contains("already being deleted"), "{}", r.body);

    std::fs::write(work.join("go-teardown"), "").unwrap();
    let msg = pgo.wait_gone(&auth, "pgouser1", "mycluster");
    assert_eq!(msg, "cluster mycluster not found in namespace pgouser1");
    assert!(!work.join("pgouser1.mycluster.yaml").exists());

    // The name is free again.
    let r = pgo.post(
        &auth,
        "/clusters",
        &create_body("4.7.4", "pgouser1", "mycluster"),
    );
    assert_eq!(code(&r.body), "ok", "{}", r.body);
}

#[test]
fn the_shipped_default_manifest_provisions_and_tears_down_locally() {
    let dir = tempfile::tempdir().unwrap();
    let pgo = Pgo::start(dir.path(), &default_manifest());
    let auth = ["-u", ADMIN];
    let r = pgo.post(
        &auth,
        "/clusters",
        &create_body("4.7.4", "pgouser1", "mycluster"),
    );
    assert_eq!(code(&r.body), "ok", "{}", r.body);
    let workflow = r.body["result"]["WorkflowID"].as_str().unwrap().to_string();
    let detail = pgo.wait_state(&auth, "pgouser1", "mycluster", "ready");
    assert_eq!(
        detail["Workflow"]["Progress"],
        json!({ "Message": "ready", "Done": 2, "Total": 2 })
    );

    // What production would run is in the job's output, manifest included.
    let events = pgo
        .server
        .get_json(&format!("/admin/v1/jobs/{workflow}/events"));
    let stdout: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "stdout")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        stdout.contains(&"would run: kubectl apply -f - (pgcluster pgouser1/mycluster)"),
        "{stdout:?}"
    );
    assert!(stdout.contains(&"kind: Pgcluster"), "{stdout:?}");
    assert!(
        stdout.contains(&"would wait until pgcluster pgouser1/mycluster is ready"),
        "{stdout:?}"
    );

    let r = pgo.post(&auth, "/clustersdelete", &all_body("4.7.4", "pgouser1"));
    assert_eq!(
        r.body["Results"],
        json!(["deleted mycluster"]),
        "{}",
        r.body
    );
    pgo.wait_gone(&auth, "pgouser1", "mycluster");
    let r = pgo.post(&auth, "/clustersdelete", &all_body("4.7.4", "pgouser1"));
    assert_eq!(msg(&r.body), "no clusters found in namespace pgouser1");
}

#[test]
fn mtls_listener_with_the_generated_ca_accepts_issued_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    // The default manifest with its documented mutual-TLS line turned on.
    let documented = "# tls = { self_signed = true, client_ca = \"self-signed\" }\n";
    let manifest = default_manifest();
    assert!(manifest.contains(documented));
    let manifest = manifest
        .replace(documented, "")
        .replace("tls = \"self-signed\"\n", &documented[2..]);
    // Start once to create the database and CA; add a user while stopped.
    drop(Server::start(dir.path(), &manifest));
    let (ok, _, err) = Server::offline(dir.path()).cli(
        &[
            "user",
            "add",
            "ann",
            "--role",
            "operator",
            "--namespace",
            "pgouser1",
            "--password-stdin",
        ],
        Some("ann-password\n"),
    );
    assert!(ok, "{err}");
    let pgo = Pgo::start(dir.path(), &manifest);

    // `baton cert issue` signs with the generated CA; the key is private.
    let (ok, out, err) = pgo.server.cli(&["cert", "issue", "--user", "ann"], None);
    assert!(ok, "{err}");
    let path = |label: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{label}: ")))
            .unwrap_or_else(|| panic!("no `{label}:` in {out}"))
            .to_string()
    };
    let (cert, key) = (path("cert"), path("key"));
    assert_eq!(Path::new(&path("ca")), pgo.ca);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // The documented form: --cacert, --key, --cert; the certificate is ann.
    let with_cert = ["--key", key.as_str(), "--cert", cert.as_str()];
    let r = pgo.post(
        &with_cert,
        "/clusters",
        &create_body("4.7.4", "pgouser1", "db1"),
    );
    assert_eq!((r.status, r.curl_ok), (200, true), "{}", r.stderr);
    assert_eq!(code(&r.body), "ok", "{}", r.body);
    let detail = pgo.wait_state(&with_cert, "pgouser1", "db1", "ready");
    assert_eq!(detail["cluster"]["metadata"]["labels"]["pgouser"], "ann");
    let r = pgo.post(&with_cert, "/showclusters", &all_body("4.7.4", "pgouser2"));
    assert_eq!(
        msg(&r.body),
        "user [ann] is not allowed access to namespace [pgouser2]"
    );

    let r = pgo.post(
        &with_cert,
        "/clustersdelete",
        &select_body("4.7.4", "pgouser1", "db1"),
    );
    assert_eq!(r.body["Results"], json!(["deleted db1"]), "{}", r.body);
    pgo.wait_gone(&with_cert, "pgouser1", "db1");

    // With -u as well, the Basic credentials decide who acts.
    let both = ["--key", key.as_str(), "--cert", cert.as_str(), "-u", ADMIN];
    let r = pgo.post(&both, "/showclusters", &all_body("4.7.4", "pgouser2"));
    assert_eq!(code(&r.body), "ok", "{}", r.body);

    // No client certificate, or one from another CA: no HTTP reply at all.
    let r = pgo.post(
        &["-u", ADMIN],
        "/showclusters",
        &all_body("4.7.4", "pgouser1"),
    );
    assert!(!r.curl_ok && r.status == 0, "{} {}", r.status, r.body);
    let other = tempfile::tempdir().unwrap();
    let (ok, out, err) = run_cli(
        {
            let mut c = Command::new(env!("CARGO_BIN_EXE_baton"));
            c.args(["cert", "issue", "--user", "ann", "--data"])
                .arg(other.path());
            c
        },
        None,
    );
    assert!(ok, "{err}");
    let rogue = |l: &str| {
        out.lines()
            .find_map(|x| x.strip_prefix(l))
            .unwrap()
            .to_string()
    };
    let (rcert, rkey) = (rogue("cert: "), rogue("key: "));
    let r = pgo.post(
        &["--key", &rkey, "--cert", &rcert],
        "/showclusters",
        &all_body("4.7.4", "pgouser1"),
    );
    assert!(!r.curl_ok && r.status == 0, "{} {}", r.status, r.body);
}

#[test]
fn version_mismatch_is_refused_naming_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("server_version = \"4.6.2\"\n{}", gated_commands(dir.path()));
    let pgo = Pgo::start(dir.path(), &pgo_manifest(&config));
    let auth = ["-u", ADMIN];
    let r = pgo.curl(&auth, "GET", "/version", None);
    assert_eq!(r.body["Version"], "4.6.2");
    for (path, body) in [
        ("/clusters", create_body("4.7.4", "pgouser1", "mycluster")),
        (
            "/showclusters",
            select_body("4.7.4", "pgouser1", "mycluster"),
        ),
        (
            "/clustersdelete",
            select_body("4.7.4", "pgouser1", "mycluster"),
        ),
    ] {
        let r = pgo.post(&auth, path, &body);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(code(&r.body), "error", "{path}");
        let msg = msg(&r.body);
        assert!(
            msg.contains("version mismatch") && msg.contains("4.7.4") && msg.contains("4.6.2"),
            "{path}: {msg}"
        );
    }
    // Nothing was created.
    let r = pgo.post(&auth, "/showclusters", &all_body("4.6.2", "pgouser1"));
    assert_eq!(code(&r.body), "ok", "{}", r.body);
    assert_eq!(r.body["Results"], json!([]));
}

#[test]
fn users_act_only_in_their_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("go-provision"), "").unwrap();
    std::fs::write(dir.path().join("go-teardown"), "").unwrap();
    let pgo = Pgo::start(dir.path(), &pgo_manifest(&gated_commands(dir.path())));
    let ann = pgo.add_user("ann", "operator", &["pgouser1"]);
    let bob = pgo.add_user("bob", "operator", &["pgouser2", "shared"]);
    let viewer = pgo.add_user("vera", "viewer", &["pgouser1"]);
    let (ann, bob, viewer) = (["-u", &ann], ["-u", &bob], ["-u", &viewer]);

    let r = pgo.post(
        &ann,
        "/clusters",
        &create_body("4.7.4", "pgouser1", "mycluster"),
    );
    assert_eq!(code(&r.body), "ok", "{}", r.body);
    pgo.wait_state(&ann, "pgouser1", "mycluster", "ready");

    // Another namespace: an error naming user and namespace, never data.
    let refused = |r: Reply, user: &str, ns: &str| {
        assert_eq!(r.status, 200);
        assert_eq!(code(&r.body), "error");
        assert_eq!(
            msg(&r.body),
            format!("user [{user}] is not allowed access to namespace [{ns}]")
        );
        match r.body.get("result") {
            Some(result) => assert_eq!(result["Name"], "", "{}", r.body),
            None => assert_eq!(r.body["Results"], json!([]), "{}", r.body),
        }
    };
    refused(
        pgo.post(&ann, "/clusters", &create_body("4.7.4", "pgouser2", "x")),
        "ann",
        "pgouser2",
    );
    refused(
        pgo.post(
            &bob,
            "/showclusters",
            &select_body("4.7.4", "pgouser1", "mycluster"),
        ),
        "bob",
        "pgouser1",
    );
    refused(
        pgo.post(&bob, "/showclusters", &all_body("4.7.4", "pgouser1")),
        "bob",
        "pgouser1",
    );
    refused(
        pgo.post(
            &bob,
            "/clustersdelete",
            &select_body("4.7.4", "pgouser1", "mycluster"),
        ),
        "bob",
        "pgouser1",
    );
    refused(
        pgo.post(&bob, "/clustersdelete", &all_body("4.7.4", "pgouser1")),
        "bob",
        "pgouser1",
    );
    assert_eq!(
        pgo.show(&ann, "pgouser1", "mycluster").unwrap()["cluster"]["status"]["state"],
        "ready"
    );

    // The same name in another namespace is another cluster; in the same one it is refused.
    let r = pgo.post(
        &bob,
        "/clusters",
        &create_body("4.7.4", "pgouser2", "mycluster"),
    );
    assert_eq!(code(&r.body), "ok", "{}", r.body);
    let r = pgo.post(
        &ann,
        "/clusters",
        &create_body("4.7.4", "pgouser1", "mycluster"),
    );
    assert_eq!(
        msg(&r.body),
        "cluster mycluster already exists in namespace pgouser1"
    );
    let r = pgo.post(&bob, "/showclusters", &all_body("4.7.4", "pgouser2"));
    let results = r.body["Results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(
        results[0]["cluster"]["metadata"]["labels"]["pgouser"],
        "bob"
    );

    // A viewer may show but not create; the refusal is in the PGO shape.
    assert!(pgo.show(&viewer, "pgouser1", "mycluster").is_ok());
    let r = pgo.post(
        &viewer,
        "/clusters",
        &create_body("4.7.4", "pgouser1", "other"),
    );
    assert_eq!(r.status, 403);
    assert_eq!(code(&r.body), "error");
    assert!(msg(&r.body).contains("clusters:write"), "{}", r.body);
}

#[test]
fn malformed_bodies_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let pgo = Pgo::start(dir.path(), &pgo_manifest(&gated_commands(dir.path())));
    let auth = ["-u", ADMIN];
    let cases: &[(&str, &str, &str)] = &[
        ("/clusters", "{\"ClientVersion\": ", "not valid JSON"),
        ("/clusters", "", "empty"),
        ("/clusters", "[\"mycluster\"]", "must be a JSON object"),
        (
            "/clusters",
            r#"{"ClientVersion": 4.7, "Namespace": "pgouser1", "Name": "a"}"#,
            "`ClientVersion` must be a string",
        ),
        (
            "/clusters",
            r#"{"ClientVersion": "4.7.4", "Namespace": "pgouser1"}"#,
            "`Name` is required",
        ),
        (
            "/clusters",
            r#"{"ClientVersion": "4.7.4", "Namespace": "pgouser1", "Name": 12}"#,
            "`Name` must be a string",
        ),
        (
            "/clusters",
            r#"{"ClientVersion": "4.7.4", "Namespace": "pgouser1", "Name": "My Cluster"}"#,
            "`Name` `My Cluster` is not a valid cluster name",
        ),
        (
            "/clusters",
            r#"{"ClientVersion": "4.7.4", "Namespace": "pgouser1", "Name": "a", "ReplicaCount": "2"}"#,
            "`ReplicaCount` must be a whole number",
        ),
        (
            "/clusters",
            r#"{"ClientVersion": "4.7.4", "Namespace": "../etc", "Name": "a"}"#,
            "`Namespace` `../etc`",
        ),
        (
            "/showclusters",
            r#"{"ClientVersion": "4.7.4", "Namespace": "pgouser1"}"#,
            "`Clustername` is required unless `AllFlag`",
        ),
        (
            "/showclusters",
            r#"{"ClientVersion": "4.7.4", "Namespace": "pgouser1", "AllFlag": "yes"}"#,
            "`AllFlag` must be true or false",
        ),
        (
            "/clustersdelete",
            r#"{"ClientVersion": "4.7.4", "Clustername": "a"}"#,
            "empty namespace is not valid from pgo clients",
        ),
        (
            "/clustersdelete",
            r#"{"ClientVersion": "4.7.4", "Namespace": "pgouser1", "Clustername": 3}"#,
            "`Clustername` must be a string",
        ),
    ];
    for (path, body, expected) in cases {
        let r = pgo.post(&auth, path, body);
        // HTTP 200 as in the PGO API server: `pgo` reads only 200 bodies.
        assert_eq!(r.status, 200, "{path} {body}: {}", r.body);
        assert_eq!(code(&r.body), "error");
        let msg = msg(&r.body);
        assert!(msg.contains(expected), "{path} {body}: {msg}");
    }
    // Lower-case keys (Go's decoder matches them) and unknown keys are fine.
    let r = pgo.post(
        &auth,
        "/showclusters",
        r#"{"clientversion": "4.7.4", "namespace": "pgouser1", "allflag": true, "Selector": ""}"#,
    );
    assert_eq!(code(&r.body), "ok", "{}", r.body);

    // Unknown clusters are named.
    let r = pgo.post(
        &auth,
        "/showclusters",
        &select_body("4.7.4", "pgouser1", "ghost"),
    );
    assert_eq!(
        msg(&r.body),
        "cluster ghost not found in namespace pgouser1"
    );
    let r = pgo.post(
        &auth,
        "/clustersdelete",
        &select_body("4.7.4", "pgouser1", "ghost"),
    );
    assert_eq!(
        msg(&r.body),
        "cluster ghost not found in namespace pgouser1"
    );

    // Host refusals come in the PGO shape too.
    let big = format!("{{\"ClientVersion\": \"{}\"}}", "x".repeat(70_000));
    let r = pgo.post(&auth, "/clusters", &big);
    assert_eq!(r.status, 413);
    assert_eq!(code(&r.body), "error");
    let r = pgo.curl(&[], "GET", "/version", None);
    assert_eq!(r.status, 401);
    assert_eq!(code(&r.body), "error");
    let r = pgo.curl(&["-u", "admin:wrong-password"], "GET", "/version", None);
    assert_eq!(r.status, 401);
    let r = pgo.curl(&auth, "GET", "/nothing", None);
    assert_eq!(r.status, 404);
    assert_eq!(code(&r.body), "error");
    let r = pgo.curl(&auth, "GET", "/clusters", None);
    assert_eq!(r.status, 405);
}
