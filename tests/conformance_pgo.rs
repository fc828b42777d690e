//! Client conformance of `/pgo`: the requests the real pgo 4.7.4 client
//! sends, byte for byte on the wire over mutual TLS with Basic credentials,
//! to the real `baton` binary, and the replies read the way that client
//! reads them (status check, `json.Decoder` into its reply structs, what it
//! prints). Then every curl example of the PGO "Rest API" documentation
//! (design seed 004), run with the real curl as written.
//!
//! Client source: CrunchyData/postgres-operator, tag v4.7.4 (commit
//! 64b54e39d26c1e0b183b7fdd5b106c572827f102); each test names the files.

#[path = "conformance/pgo_go.rs"]
mod go;
#[path = "conformance/pgo_install.rs"]
mod install;
mod support;
#[path = "conformance/wire.rs"]
mod wire;

use go::*;
use install::*;
use serde_json::{Value, json};
use support::*;

// cmd/pgo/api/version.go (ShowVersion: GET, no body), pkg/apiservermsgs/versionmsgs.go
// (VersionResponse), cmd/pgo/cmd/version.go (what `pgo version` prints);
// internal/apiserver/versionservice/versionimpl.go (Msg "apiserver version").
#[test]
fn pgo_version_command() {
    let dir = tempfile::tempdir().unwrap();
    let pgo = Pgo::start(dir.path());
    let r = pgo.admin("GET", "/version", None);
    let v = decoded(&r, &VERSION_RESPONSE);
    // Field for field: Version and the untagged, embedded Status; nothing nested.
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["Code", "Msg", "Version"], "{v}");
    assert_eq!(v["Version"], "4.7.4");
    assert_eq!(v["Code"], "ok");
    assert_eq!(v["Msg"], "apiserver version");
    assert_eq!(
        pgo_version(reply(&r), "/pgo/version"),
        Run {
            stdout: "pgo client version 4.7.4\npgo-apiserver version 4.7.4\n".into(),
            code: 0
        }
    );
}

// cmd/pgo/api/cluster.go (CreateCluster, ShowCluster, DeleteCluster: POST,
// json.Marshal of the request), cmd/pgo/cmd/cluster.go (createCluster,
// showCluster, printCluster, deleteCluster: the fields filled in and read),
// pkg/apiservermsgs/clustermsgs.go (CreateClusterRequest/Response,
// ShowClusterRequest/Response/Detail, DeleteClusterRequest/Response),
// pkg/apis/crunchydata.com/v1/cluster.go (Pgcluster).
#[test]
fn pgo_create_show_show_all_show_selector_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let pgo = Pgo::start(dir.path());

    // pgo create cluster mycluster -n pgouser1 --label env=research
    let body = create_request(PGO_VERSION, "pgouser1", "mycluster", &[("env", "research")]);
    // Every field of CreateClusterRequest, as the CLI sends them.
    let fields = serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_object()
        .unwrap()
        .len();
    assert_eq!(fields, 82, "all 82 fields of the struct: {body}");
    let r = pgo.admin("POST", "/clusters", Some(&body));
    let v = decoded(&r, &CREATE_RESPONSE);
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["result", "status"],
        "only these two, tagged lower-case: {v}"
    );
    assert_eq!(v["status"], json!({ "Code": "ok", "Msg": "" }));
    let workflow = v["result"]["WorkflowID"].as_str().unwrap().to_string();
    assert!(!workflow.is_empty(), "{v}");
    let out = pgo_create(reply(&r), "/pgo/clusters");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!(
            "created cluster: mycluster\nworkflow id: {workflow}\ndatabase name: userdb\nusers:\n\tusername: testuser password: \n"
        )
    );

    // pgo show cluster mycluster -n pgouser1, until the job has run.
    let detail = poll("mycluster to be ready", || {
        let v = pgo.show("pgouser1", "mycluster");
        let d = v["Results"][0].clone();
        if d["cluster"]["status"]["state"] == "ready" {
            Ok(d)
        } else {
            Err(v.to_string())
        }
    });
    for name in names(&SHOW_DETAIL) {
        assert!(
            detail.get(name).is_some(),
            "ShowClusterDetail has no `{name}`: {detail}"
        );
    }
    let cluster = &detail["cluster"];
    assert_eq!(cluster["kind"], "Pgcluster");
    assert_eq!(cluster["spec"]["name"], "mycluster");
    assert_eq!(cluster["spec"]["ccpimagetag"], "centos8-13.4-4.7.4");
    assert_eq!(cluster["metadata"]["namespace"], "pgouser1");
    assert_eq!(cluster["metadata"]["labels"]["env"], "research");
    assert_eq!(
        cluster["metadata"]["labels"]["workflowid"],
        workflow.as_str()
    );
    let r = pgo.admin(
        "POST",
        "/showclusters",
        Some(&show_request(
            PGO_VERSION,
            "pgouser1",
            "mycluster",
            "",
            false,
        )),
    );
    let out = pgo_show(reply(&r), "/pgo/showclusters");
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.starts_with(
            "\ncluster : mycluster (registry.developers.crunchydata.com/crunchydata/crunchy-postgres-ha:centos8-13.4-4.7.4)\n"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("env=research"), "{}", out.stdout);

    // A second cluster; then --all and --selector (which send an empty name).
    let r = pgo.admin(
        "POST",
        "/clusters",
        Some(&create_request(
            PGO_VERSION,
            "pgouser1",
            "other",
            &[("env", "prod")],
        )),
    );
    assert_eq!(pgo_create(reply(&r), "/pgo/clusters").code, 0);
    let names_of = |body: String| -> Vec<String> {
        let r = pgo.admin("POST", "/showclusters", Some(&body));
        let v = decoded(&r, &SHOW_RESPONSE);
        assert_eq!(v["Code"], "ok", "{v}");
        v["Results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["cluster"]["spec"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names_of(show_request(PGO_VERSION, "pgouser1", "", "", true)),
        ["mycluster", "other"]
    );
    assert_eq!(
        names_of(show_request(
            PGO_VERSION,
            "pgouser1",
            "",
            "env=research",
            false
        )),
        ["mycluster"]
    );
    assert_eq!(
        names_of(show_request(
            PGO_VERSION,
            "pgouser1",
            "",
            "name=other",
            false
        )),
        ["other"]
    );
    let r = pgo.admin(
        "POST",
        "/showclusters",
        Some(&show_request(
            PGO_VERSION,
            "pgouser1",
            "",
            "env=staging",
            false,
        )),
    );
    assert_eq!(
        pgo_show(reply(&r), "/pgo/showclusters").stdout,
        "No clusters found.\n"
    );
    assert_eq!(
        names_of(show_request(PGO_VERSION, "pgouser2", "", "", true)),
        Vec::<String>::new()
    );

    // pgo delete cluster mycluster -n pgouser1 (--no-prompt)
    let r = pgo.admin(
        "POST",
        "/clustersdelete",
        Some(&delete_request(PGO_VERSION, "pgouser1", "mycluster", false)),
    );
    let v = decoded(&r, &DELETE_RESPONSE);
    assert_eq!(v["Code"], "ok", "{v}");
    assert_eq!(v["Results"], json!(["deleted mycluster"]));
    assert_eq!(
        pgo_delete(reply(&r), "/pgo/clustersdelete"),
        Run {
            stdout: "deleted mycluster\n".into(),
            code: 0
        }
    );
    poll("mycluster to be gone", || {
        let v = pgo.show("pgouser1", "mycluster");
        if v["Code"] == "error" {
            Ok(())
        } else {
            Err(v.to_string())
        }
    });

    // pgo delete cluster --all -n pgouser1 sends the name `all`.
    let r = pgo.admin(
        "POST",
        "/clustersdelete",
        Some(&delete_request(PGO_VERSION, "pgouser1", "", true)),
    );
    assert_eq!(
        pgo_delete(reply(&r), "/pgo/clustersdelete").stdout,
        "deleted other\n"
    );
    poll("other to be gone", || {
        let v = pgo.show("pgouser1", "other");
        if v["Code"] == "error" {
            Ok(())
        } else {
            Err(v.to_string())
        }
    });
    let r = pgo.admin(
        "POST",
        "/clustersdelete",
        Some(&delete_request(PGO_VERSION, "pgouser1", "", true)),
    );
    let v = decoded(&r, &DELETE_RESPONSE);
    assert_eq!(v["Code"], "error");
    assert_eq!(v["Results"], json!([]));
    assert_eq!(
        pgo_delete(reply(&r), "/pgo/clustersdelete"),
        Run {
            stdout: "Error: no clusters found in namespace pgouser1\n".into(),
            code: 0
        }
    );
}

// What pgo prints for each refusal. cmd/pgo/api/common.go (StatusCheck: 401 →
// "Authentication Failed", 405 → "Method … is not allowed", any other non-200 →
// "Invalid Status Code", the body unread); internal/apiserver/root.go (Authn:
// 401 / 403 before anything else; GetNamespace's messages; VERSION_MISMATCH_ERROR);
// internal/apiserver/clusterservice/clusterservice.go (every other refusal is
// HTTP 200 with Code "error", the reply struct's other fields empty).
#[test]
fn refusals_as_pgo_sees_them() {
    let dir = tempfile::tempdir().unwrap();
    let pgo = Pgo::with_users(
        dir.path(),
        &[
            ("ann", "operator", &["pgouser1"]),
            ("vera", "viewer", &["pgouser1"]),
        ],
    );

    // Wrong password: 401, whatever the endpoint.
    let r = pgo.go("admin", "wrong-password", "GET", "/version", None);
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic"))
    );
    assert_eq!(
        pgo_version(reply(&r), "/pgo/version"),
        Run {
            stdout: "pgo client version 4.7.4\nError: Authentication Failed: 401\n\n".into(),
            code: 2
        }
    );
    let body = show_request(PGO_VERSION, "pgouser1", "", "", true);
    let r = pgo.go(
        "ann",
        "not-anns-password",
        "POST",
        "/showclusters",
        Some(&body),
    );
    assert_eq!(
        pgo_show(reply(&r), "/pgo/showclusters").stdout,
        "Error:  Authentication Failed: 401\n\n"
    );
    // No user at all (SetBasicAuth("", "")): still Basic, still 401.
    let r = pgo.go("", "", "POST", "/showclusters", Some(&body));
    assert_eq!(r.status, 401);

    // A pgo of another version: 200, Code "error", the server's words first.
    for (path, body, shape) in [
        (
            "/clusters",
            create_request("4.6.2", "pgouser1", "db", &[]),
            &CREATE_RESPONSE,
        ),
        (
            "/showclusters",
            show_request("4.6.2", "pgouser1", "db", "", false),
            &SHOW_RESPONSE,
        ),
        (
            "/clustersdelete",
            delete_request("4.6.2", "pgouser1", "db", false),
            &DELETE_RESPONSE,
        ),
    ] {
        let r = pgo.admin("POST", path, Some(&body));
        let v = decoded(&r, shape);
        let status = if path == "/clusters" {
            &v["status"]
        } else {
            &v
        };
        assert_eq!(status["Code"], "error", "{v}");
        let msg = status["Msg"].as_str().unwrap();
        assert!(
            msg.starts_with("pgo client and server version mismatch")
                && msg.contains("4.6.2")
                && msg.contains("4.7.4"),
            "{msg}"
        );
    }
    let r = pgo.admin(
        "POST",
        "/clusters",
        Some(&create_request("4.6.2", "pgouser1", "db", &[])),
    );
    let out = pgo_create(reply(&r), "/pgo/clusters");
    assert_eq!(out.code, 2);
    assert!(
        out.stdout
            .starts_with("Error: pgo client and server version mismatch"),
        "{}",
        out.stdout
    );
    // Nothing was created.
    assert_eq!(pgo.show("pgouser1", "db")["Code"], "error");

    // Unknown cluster.
    let r = pgo.admin(
        "POST",
        "/showclusters",
        Some(&show_request(PGO_VERSION, "pgouser1", "ghost", "", false)),
    );
    assert_eq!(
        pgo_show(reply(&r), "/pgo/showclusters"),
        Run {
            stdout: "Error: cluster ghost not found in namespace pgouser1\n".into(),
            code: 2
        }
    );
    let r = pgo.admin(
        "POST",
        "/clustersdelete",
        Some(&delete_request(PGO_VERSION, "pgouser1", "ghost", false)),
    );
    assert_eq!(
        pgo_delete(reply(&r), "/pgo/clustersdelete").stdout,
        "Error: cluster ghost not found in namespace pgouser1\n"
    );

    // A namespace the user may not use; an empty one (no -n, no PGO_NAMESPACE).
    let r = pgo.go(
        "ann",
        "ann-password",
        "POST",
        "/showclusters",
        Some(&show_request(PGO_VERSION, "pgouser2", "", "", true)),
    );
    let v = decoded(&r, &SHOW_RESPONSE);
    assert_eq!(v["Results"], json!([]));
    assert_eq!(
        pgo_show(reply(&r), "/pgo/showclusters").stdout,
        "Error: user [ann] is not allowed access to namespace [pgouser2]\n"
    );
    let r = pgo.admin(
        "POST",
        "/clusters",
        Some(&create_request(PGO_VERSION, "", "db", &[])),
    );
    assert_eq!(
        pgo_create(reply(&r), "/pgo/clusters").stdout,
        "Error: empty namespace is not valid from pgo clients\n"
    );

    // A name taken in the namespace; the name `all`.
    let create = create_request(PGO_VERSION, "pgouser1", "db", &[]);
    let r = pgo.go("ann", "ann-password", "POST", "/clusters", Some(&create));
    assert_eq!(pgo_create(reply(&r), "/pgo/clusters").code, 0);
    let r = pgo.go("ann", "ann-password", "POST", "/clusters", Some(&create));
    assert_eq!(
        pgo_create(reply(&r), "/pgo/clusters"),
        Run {
            stdout: "Error: cluster db already exists in namespace pgouser1\n".into(),
            code: 2
        }
    );
    let r = pgo.admin(
        "POST",
        "/clusters",
        Some(&create_request(PGO_VERSION, "pgouser1", "all", &[])),
    );
    assert_eq!(
        pgo_create(reply(&r), "/pgo/clusters").stdout,
        "Error: invalid cluster name 'all' is not allowed as a cluster name\n"
    );

    // A role without the permission: 403, which pgo reports by number only.
    let r = pgo.go(
        "vera",
        "vera-password",
        "POST",
        "/clusters",
        Some(&create_request(PGO_VERSION, "pgouser1", "x", &[])),
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        pgo_create(reply(&r), "/pgo/clusters").stdout,
        "Error:  Invalid Status Code: 403\n\n"
    );
    let r = pgo.go(
        "vera",
        "vera-password",
        "POST",
        "/showclusters",
        Some(&show_request(PGO_VERSION, "pgouser1", "db", "", false)),
    );
    assert_eq!(pgo_show(reply(&r), "/pgo/showclusters").code, 0);

    // Paths and methods the server does not serve.
    let r = pgo.admin("POST", "/clustersupdate", Some("{}"));
    assert_eq!(r.status, 404);
    assert_eq!(
        status_check(r.status, "POST", "/pgo/clustersupdate").unwrap(),
        "Invalid Status Code: 404\n"
    );
    let r = pgo.admin("GET", "/clusters", None);
    assert_eq!(r.status, 405);
    assert_eq!(
        pgo_version(reply(&r), "/pgo/clusters").stdout,
        "pgo client version 4.7.4\nError: Method GET for URL /pgo/clusters is not allowed in the current Operator install: 405\n"
    );
}

// Design seed 004 (the PGO "Rest API" page): every curl example, verbatim.
// Its commands pass `--cert $PGO_CA_CERT` with `--key $PGO_CLIENT_KEY`, as a
// PGO install's client.crt is both; here PGO_CA_CERT is the client
// certificate followed by the CA (a valid CA bundle and a client chain).
#[test]
fn seed_004_curl_examples_work_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let pgo = Pgo::start(dir.path());
    let bundle = dir.path().join("pgo-client-and-ca.pem");
    let mut pem = std::fs::read(&pgo.cert).unwrap();
    pem.extend(std::fs::read(pgo.server.data.join("tls/ca.pem")).unwrap());
    std::fs::write(&bundle, pem).unwrap();

    let (status, v) = seed_curl(
        &pgo,
        &bundle,
        r#"curl --cacert $PGO_CA_CERT --key $PGO_CLIENT_KEY --cert $PGO_CA_CERT \
-u admin:examplepassword -H "Content-Type:application/json" --insecure \
-X GET $PGO_APISERVER_URL/version"#,
    );
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!({ "Version": "4.7.4", "Code": "ok", "Msg": "apiserver version" })
    );

    let (status, v) = seed_curl(
        &pgo,
        &bundle,
        r#"curl --cacert $PGO_CA_CERT --key $PGO_CLIENT_KEY --cert $PGO_CA_CERT \
-u admin:examplepassword -H "Content-Type:application/json" --insecure \
-X POST --data \
'{"ClientVersion":"4.7.4",
"Namespace":"pgouser1",
"Name":"mycluster",
"Series":1}' \
$PGO_APISERVER_URL/clusters"#,
    );
    assert_eq!(status, 200);
    assert_eq!(v["status"], json!({ "Code": "ok", "Msg": "" }), "{v}");
    assert_eq!(v["result"]["Name"], "mycluster");

    let show = r#"curl --cacert $PGO_CA_CERT --key $PGO_CLIENT_KEY --cert $PGO_CA_CERT \
-u admin:examplepassword -H "Content-Type:application/json" --insecure \
-X POST --data \
'{"ClientVersion":"4.7.4",
"Namespace":"pgouser1",
"Clustername":"mycluster"}' \
$PGO_APISERVER_URL/showclusters"#;
    let (status, v) = seed_curl(&pgo, &bundle, show);
    assert_eq!(status, 200);
    assert_eq!((&v["Code"], &v["Msg"]), (&json!("ok"), &json!("")), "{v}");
    assert_eq!(v["Results"][0]["cluster"]["metadata"]["name"], "mycluster");

    // "replace "Clustername":"mycluster" with "AllFlag":true"
    let (status, v) = seed_curl(
        &pgo,
        &bundle,
        &show.replace(r#""Clustername":"mycluster""#, r#""AllFlag":true"#),
    );
    assert_eq!(status, 200);
    assert_eq!(v["Code"], "ok", "{v}");
    assert_eq!(v["Results"].as_array().unwrap().len(), 1, "{v}");

    let (status, v) = seed_curl(
        &pgo,
        &bundle,
        r#"curl --cacert $PGO_CA_CERT --key $PGO_CLIENT_KEY --cert $PGO_CA_CERT \
-u admin:examplepassword -H "Content-Type:application/json" --insecure \
-X POST --data \
'{"ClientVersion":"4.7.4",
"Namespace":"pgouser1",
"Clustername":"mycluster"}' \
$PGO_APISERVER_URL/clustersdelete"#,
    );
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!({ "Results": ["deleted mycluster"], "Code": "ok", "Msg": "" })
    );
}
