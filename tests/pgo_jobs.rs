//! The PGO API's jobs when things go wrong: a failing provision command,
//! a delete that overtakes provisioning, a crash in the middle of one.

#[path = "pgo/client.rs"]
mod client;
mod support;

use client::*;
use serde_json::json;

#[test]
fn a_failing_provision_marks_the_cluster_failed_and_it_can_still_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"provision_command = "sh -c 'echo applying; echo disk quota exceeded >&2; exit 3'"
teardown_command = "sh -c 'cat > /dev/null'"
"#;
    let pgo = Pgo::start(dir.path(), &pgo_manifest(config));
    let auth = ["-u", ADMIN];
    let r = pgo.post(
        &auth,
        "/clusters",
        &create_body("4.7.4", "pgouser1", "broken"),
    );
    assert_eq!(code(&r.body), "ok", "{}", r.body);
    let detail = pgo.wait_state(&auth, "pgouser1", "broken", "failed");
    let msg = detail["cluster"]["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("exited with status 3") && msg.contains("disk quota exceeded"),
        "{msg}"
    );
    // The provision job records the cluster's failure just before the
    // engine records the job's end: the workflow follows a moment later.
    let detail = wait_for("the provision workflow to end failed", || {
        pgo.show(&auth, "pgouser1", "broken")
            .ok()
            .filter(|d| d["Workflow"]["State"] != "running")
    });
    assert_eq!(detail["Workflow"]["State"], "failed", "{detail}");
    assert_eq!(detail["cluster"]["status"]["state"], "failed", "{detail}");

    let r = pgo.post(
        &auth,
        "/clustersdelete",
        &select_body("4.7.4", "pgouser1", "broken"),
    );
    assert_eq!(r.body["Results"], json!(["deleted broken"]), "{}", r.body);
    pgo.wait_gone(&auth, "pgouser1", "broken");
}

#[test]
fn deleting_a_cluster_being_created_cancels_its_provisioning() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("go-teardown"), "").unwrap();
    let pgo = Pgo::start(dir.path(), &pgo_manifest(&gated_commands(dir.path())));
    let auth = ["-u", ADMIN];
    let r = pgo.post(
        &auth,
        "/clusters",
        &create_body("4.7.4", "pgouser1", "slow"),
    );
    let provision = r.body["result"]["WorkflowID"].as_str().unwrap().to_string();
    wait_for("the provision command to start", || {
        pgo.show(&auth, "pgouser1", "slow")
            .ok()
            .filter(|d| d["Workflow"]["State"] == "running")
    });
    let r = pgo.post(
        &auth,
        "/clustersdelete",
        &select_body("4.7.4", "pgouser1", "slow"),
    );
    assert_eq!(r.body["Results"], json!(["deleted slow"]), "{}", r.body);
    pgo.wait_gone(&auth, "pgouser1", "slow");
    let job = wait_for("the provision job to end", || {
        let j = pgo.server.get_json(&format!("/admin/v1/jobs/{provision}"));
        (j["state"] != "running").then_some(j)
    });
    assert_eq!(job["state"], "cancelled", "{job}");
    // The provision never got past its gate, so it wrote nothing.
    assert!(!dir.path().join("pgouser1.slow.yaml").exists());
}

#[test]
fn clusters_survive_a_crash_and_an_interrupted_provision_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = pgo_manifest(&gated_commands(dir.path()));
    let pgo = Pgo::start(dir.path(), &manifest);
    let auth = ["-u", ADMIN];
    std::fs::write(dir.path().join("go-provision"), "").unwrap();
    let r = pgo.post(
        &auth,
        "/clusters",
        &create_body("4.7.4", "pgouser1", "kept"),
    );
    assert_eq!(code(&r.body), "ok", "{}", r.body);
    pgo.wait_state(&auth, "pgouser1", "kept", "ready");
    std::fs::remove_file(dir.path().join("go-provision")).unwrap();
    let r = pgo.post(&auth, "/clusters", &create_body("4.7.4", "pgouser1", "cut"));
    assert_eq!(code(&r.body), "ok", "{}", r.body);
    wait_for("the provision command to start", || {
        pgo.show(&auth, "pgouser1", "cut")
            .ok()
            .filter(|d| d["Workflow"]["State"] == "running")
    });
    pgo.server.kill9();

    let pgo = Pgo::start(dir.path(), &manifest);
    let detail = pgo.show(&auth, "pgouser1", "kept").unwrap();
    assert_eq!(detail["cluster"]["status"]["state"], "ready");
    // A restart is not the provision's failure: its cut-short attempt runs
    // again (waiting at the same gate) and the cluster becomes ready once it
    // may go on.
    wait_for("the provision to run again", || {
        pgo.show(&auth, "pgouser1", "cut")
            .ok()
            .filter(|d| d["Workflow"]["State"] == "running")
    });
    let detail = pgo.show(&auth, "pgouser1", "cut").unwrap();
    assert_eq!(detail["cluster"]["status"]["state"], "creating", "{detail}");
    std::fs::write(dir.path().join("go-provision"), "").unwrap();
    pgo.wait_state(&auth, "pgouser1", "cut", "ready");
    assert!(dir.path().join("pgouser1.cut.yaml").exists());
    let r = pgo.post(&auth, "/clustersdelete", &all_body("4.7.4", "pgouser1"));
    std::fs::write(dir.path().join("go-teardown"), "").unwrap();
    assert_eq!(
        r.body["Results"],
        json!(["deleted cut", "deleted kept"]),
        "{}",
        r.body
    );
    pgo.wait_gone(&auth, "pgouser1", "cut");
    pgo.wait_gone(&auth, "pgouser1", "kept");
}
