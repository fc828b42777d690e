use super::*;
use crate::envelope::body;
use serde_json::json;

fn req(v: serde_json::Value) -> BatchRequest {
    body(v.to_string().as_bytes()).unwrap()
}

fn multi_cloud() -> serde_json::Value {
    json!({
        "name": "multi_cloud_deployment",
        "version": "1.0.0",
        "storage_backend": "surrealdb",
        "parallel_limit": 3,
        "rollback_enabled": true,
        "infra": "production",
        "operations": [
            {"id": "upcloud_servers", "type": "server_batch", "provider": "upcloud", "dependencies": [],
             "server_configs": [{"name": "web-01", "plan": "1xCPU-2 GB", "zone": "de-fra1"}, {"name": "web-02", "plan": "1xCPU-2 GB", "zone": "us-nyc1"}]},
            {"id": "aws_taskservs", "type": "taskserv_batch", "provider": "aws", "dependencies": ["upcloud_servers"],
             "taskservs": ["kubernetes", {"name": "cilium"}]}
        ]
    })
}

#[test]
fn a_multi_cloud_batch_plans_chained_tasks() {
    let p = plan(&req(multi_cloud())).unwrap();
    assert_eq!(p.parallel_limit, 3);
    assert_eq!(p.ops.len(), 2);
    assert_eq!(p.ops[0].items, ["web-01", "web-02"]);
    let deps: Vec<&Vec<usize>> = p.tasks.iter().map(|(_, _, d)| d).collect();
    // web-01, then web-02; kubernetes after web-02; cilium after kubernetes.
    assert_eq!(deps, [&vec![], &vec![0], &vec![1], &vec![2]]);
    let (_, web1, _) = &p.tasks[0];
    assert_eq!(web1.run.command, ["servers", "create"]);
    assert_eq!(
        web1.run.args,
        [
            "--infra",
            "production",
            "--provider",
            "upcloud",
            "--server",
            "web-01",
            "--plan",
            "1xCPU-2 GB",
            "--zone",
            "de-fra1"
        ]
    );
    let undo = web1.rollback.as_ref().unwrap();
    assert_eq!(undo.command, ["servers", "delete"]);
    assert_eq!(
        undo.args,
        [
            "--infra",
            "production",
            "--provider",
            "upcloud",
            "--server",
            "web-01",
            "--yes"
        ]
    );
    let (op, k8s, _) = &p.tasks[2];
    assert_eq!(*op, 1);
    assert_eq!(k8s.run.command, ["taskserv", "create", "kubernetes"]);
    assert_eq!(k8s.operation.as_deref(), Some("aws_taskservs"));
    assert_eq!(
        k8s.rollback.as_ref().unwrap().command,
        ["taskserv", "delete", "kubernetes"]
    );
}

#[test]
fn operation_flags_override_the_batch() {
    let mut v = multi_cloud();
    v["operations"][1]["infra"] = json!("staging");
    v["operations"][1]["check_mode"] = json!(true);
    let p = plan(&req(v)).unwrap();
    assert_eq!(
        p.tasks[2].1.run.args,
        ["--infra", "staging", "--provider", "aws", "--check"]
    );
}

fn refused(v: serde_json::Value) -> String {
    let e = plan(&req(v)).unwrap_err();
    assert_eq!(e.status, 400);
    e.message
}

#[test]
fn bad_graphs_are_refused_naming_the_operation() {
    let mut v = multi_cloud();
    v["operations"][1]["id"] = json!("upcloud_servers");
    assert!(refused(v).contains("operation `upcloud_servers`: the id is used by two"));

    let mut v = multi_cloud();
    v["operations"][1]["dependencies"] = json!(["ghost"]);
    let m = refused(v);
    assert!(m.contains("aws_taskservs") && m.contains("ghost"), "{m}");

    let mut v = multi_cloud();
    v["operations"][0]["dependencies"] = json!(["aws_taskservs"]);
    let m = refused(v);
    assert!(
        m.contains("cycle") && m.contains("upcloud_servers") && m.contains("aws_taskservs"),
        "{m}"
    );

    let mut v = multi_cloud();
    v["operations"][1]["dependencies"] = json!(["aws_taskservs"]);
    assert!(refused(v).contains("depends on itself"));

    let mut v = multi_cloud();
    v["operations"][1]["type"] = json!("database_batch");
    let m = refused(v);
    assert!(
        m.contains("operation `aws_taskservs`") && m.contains("unknown type `database_batch`"),
        "{m}"
    );
}

#[test]
fn payloads_and_limits_are_checked() {
    let mut v = multi_cloud();
    v["operations"][0]
        .as_object_mut()
        .unwrap()
        .remove("server_configs");
    assert!(refused(v).contains("needs `server_configs`"));

    let mut v = multi_cloud();
    v["operations"][1]["taskservs"] = json!([]);
    assert!(refused(v).contains("`taskservs` is empty"));

    let mut v = multi_cloud();
    v["operations"][0]["server_configs"][1]["name"] = json!("--yes");
    assert!(refused(v).contains("upcloud_servers"));

    let mut v = multi_cloud();
    v["parallel_limit"] = json!(0);
    assert!(refused(v).contains("parallel_limit"));

    let mut v = multi_cloud();
    v["operations"] = json!([]);
    assert!(refused(v).contains("operations"));

    let mut v = multi_cloud();
    v["name"] = json!(" ");
    assert!(refused(v).contains("name"));
}

#[test]
fn wrong_types_name_the_path() {
    let mut v = multi_cloud();
    v["operations"][1]["dependencies"] = json!("upcloud_servers");
    let e = body::<BatchRequest>(v.to_string().as_bytes()).unwrap_err();
    assert!(
        e.message.contains("operations[1].dependencies"),
        "{}",
        e.message
    );
    let mut v = multi_cloud();
    v["rollback_enabled"] = json!("yes");
    let e = body::<BatchRequest>(v.to_string().as_bytes()).unwrap_err();
    assert!(e.message.contains("rollback_enabled"), "{}", e.message);
}
