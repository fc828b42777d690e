//! Login, MFA, refresh and logout; the 401s of every endpoint; and the
//! shipped default manifest serving the API on its own plain-HTTP listener.

use super::*;

fn login(api: &Api, body: Value) -> (u16, Value) {
    api.post("/auth/login", &body)
}

#[test]
fn login_checks_password_and_mfa_and_logout_revokes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _, _) = start(dir.path());
    server.put_user(
        "ann",
        json!({"password": "ann-password", "roles": ["operator"]}),
    );
    let anon = Api::new(&server, None);

    let (status, v) = login(&anon, json!({"username": "ann", "password": "wrong"}));
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["data"], Value::Null);
    let (status, v) = login(&anon, json!({"username": "ann"}));
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("password"), "{v}");
    let (status, v) = login(
        &anon,
        json!({"username": "ann", "password": "ann-password"}),
    );
    assert_eq!(status, 200, "{v}");
    let d = &v["data"];
    assert_eq!(d["token_type"], "Bearer");
    assert_eq!(d["expires_in"], 3600);
    let access = d["access_token"].as_str().unwrap().to_string();
    let refresh = d["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(access.split('.').count(), 3, "a JWT");

    let ann = Api::new(&server, Some(access.clone()));
    assert_eq!(ann.get("/tasks").0, 200);
    // The refresh token buys a new access token; it is no access token itself.
    assert_eq!(
        Api::new(&server, Some(refresh.clone())).get("/tasks").0,
        401
    );
    let (status, v) = anon.post("/auth/refresh", &json!({"refresh_token": refresh}));
    assert_eq!(status, 200, "{v}");
    let renewed = v["data"]["access_token"].as_str().unwrap().to_string();
    assert_eq!(Api::new(&server, Some(renewed)).get("/tasks").0, 200);
    let (status, _) = anon.post("/auth/refresh", &json!({"refresh_token": "garbage"}));
    assert_eq!(status, 401);

    // Logout: the token stops working at once.
    let (status, v) = ann.post("/auth/logout", &json!({}));
    assert_eq!((status, v["data"].clone()), (200, json!("Logged out")));
    assert_eq!(ann.get("/tasks").0, 401);
    // With both headers the host authenticates X-Authentication, so that is
    // the token logout revokes (it used to revoke the Bearer one, or fail on
    // garbage there that the host never read).
    let (_, v) = login(
        &anon,
        json!({"username": "ann", "password": "ann-password"}),
    );
    let second = v["data"]["access_token"].as_str().unwrap().to_string();
    let resp = anon
        .http
        .post(format!("{}/auth/logout", anon.base))
        .header("x-authentication", &second)
        .bearer_auth("not.a.token")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().unwrap());
    assert_eq!(Api::new(&server, Some(second)).get("/tasks").0, 401);

    // A user with TOTP must give a current code (RFC 6238, ±1 step).
    let out = server.put_user(
        "mfa",
        json!({"password": "mfa-password", "roles": ["operator"], "totp": "enroll"}),
    );
    let secret = out["totp"]["secret"].as_str().unwrap().to_string();
    let totp = totp_rs::TOTP::new(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        totp_rs::Secret::Encoded(secret).to_bytes().unwrap(),
        None,
        "mfa".into(),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let near: Vec<String> = [now - 30, now, now + 30]
        .iter()
        .map(|t| totp.generate(*t))
        .collect();
    let wrong = ["000000", "111111", "222222", "333333"]
        .into_iter()
        .find(|c| !near.iter().any(|n| n == c))
        .unwrap();
    let (status, _) = login(
        &anon,
        json!({"username": "mfa", "password": "mfa-password"}),
    );
    assert_eq!(status, 401, "a missing code is refused");
    let (status, _) = login(
        &anon,
        json!({"username": "mfa", "password": "mfa-password", "mfa_code": wrong}),
    );
    assert_eq!(status, 401, "a wrong code is refused");
    let (status, v) = login(
        &anon,
        json!({"username": "mfa", "password": "mfa-password", "mfa_code": totp.generate_current().unwrap()}),
    );
    assert_eq!(status, 200, "{v}");
    let mfa = Api::new(
        &server,
        Some(v["data"]["access_token"].as_str().unwrap().into()),
    );
    assert_eq!(mfa.get("/batch/operations").0, 200);
}

#[test]
fn every_endpoint_without_a_token_is_401_in_the_envelope_except_health() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _, log) = start(dir.path());
    let anon = Api::new(&server, None);
    let (status, v) = anon.get("/health");
    assert_eq!(
        (status, v["data"].clone()),
        (200, json!("Orchestrator is healthy"))
    );
    let uuid = "0190f0c2-0000-7000-8000-000000000001";
    let body = br#"{"infra": "production"}"#.as_slice();
    let endpoints = [
        ("GET", "/tasks".to_string()),
        ("GET", format!("/tasks/{uuid}")),
        ("POST", "/workflows/servers/create".into()),
        ("POST", "/workflows/taskserv/create".into()),
        ("POST", "/workflows/cluster/create".into()),
        ("POST", "/batch/execute".into()),
        ("GET", "/batch/operations".into()),
        ("GET", format!("/batch/operations/{uuid}")),
        ("POST", format!("/batch/operations/{uuid}/cancel")),
        ("POST", "/auth/logout".into()),
        ("GET", "/nothing/here".into()),
    ];
    let garbage = Api::new(&server, Some("not.a.token".into()));
    for (method, path) in &endpoints {
        for api in [&anon, &garbage] {
            let (status, v) = api.send(method, path, Some(body));
            assert_eq!(status, 401, "{method} {path}: {v}");
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
        }
    }
    // The public login endpoints answer 401 to bad credentials.
    let (status, _) = login(&anon, json!({"username": "admin", "password": "nope"}));
    assert_eq!(status, 401);
    let (status, _) = anon.post("/auth/refresh", &json!({"refresh_token": "nope"}));
    assert_eq!(status, 401);

    // A viewer reads but may not start work.
    server.put_user(
        "vic",
        json!({"password": "vic-password", "roles": ["viewer"]}),
    );
    let (_, v) = login(
        &anon,
        json!({"username": "vic", "password": "vic-password"}),
    );
    let vic = Api::new(
        &server,
        Some(v["data"]["access_token"].as_str().unwrap().into()),
    );
    assert_eq!(vic.get("/tasks").0, 200);
    let (status, v) = vic.send("POST", "/workflows/servers/create", Some(body));
    assert_eq!(status, 403, "{v}");
    assert!(log_lines(&log).is_empty(), "nothing ran");
}

#[test]
fn the_default_manifest_serves_provisioning_on_its_own_plain_http_listener() {
    let text = baton::manifest::DEFAULT_MANIFEST
        .replace("127.0.0.1:8143", "127.0.0.1:0")
        .replace("127.0.0.1:9090", "127.0.0.1:0");
    assert!(!text.contains("127.0.0.1:8143") && !text.contains("127.0.0.1:9090"));
    assert_eq!(text.matches("address = \"127.0.0.1:0\"").count(), 2);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &text);
    let prov = server.listener_url(1);
    assert!(prov.starts_with("http://"), "{prov}");
    assert!(server.base.starts_with("https://"));
    let api = Api::new(&server, Some(server.admin_token()));
    assert_eq!(Api::new(&server, None).get("/health").0, 200);
    // Not on the HTTPS listener, and no admin API on the plain one.
    let resp = server
        .anonymous()
        .get(server.url("/health"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404);
    let (status, _) = api.get("/admin/v1/healthz");
    assert_eq!(status, 404, "the admin API is not served on {prov}");
    assert_eq!(server.get_status("/admin/v1/healthz"), 200);

    // The shipped commands run here and print what production would run.
    let (_, v) = api.post(
        "/workflows/servers/create",
        &json!({"infra": "production", "wait": true}),
    );
    let id = v["data"].as_str().unwrap().to_string();
    let t = api.wait(&format!("/tasks/{id}"), |t| t["status"] == "Completed");
    assert_eq!(
        t["output"],
        "would run: provisioning servers create --infra production --wait\n"
    );
    // A provider named `fail` fails, and the rollback can be watched.
    let (status, v) = api.post(
        "/batch/execute",
        &json!({"name": "demo", "rollback_enabled": true, "operations": [
            {"id": "web", "type": "server_batch", "provider": "upcloud", "server_configs": [{"name": "web-01"}]},
            {"id": "db", "type": "server_batch", "provider": "fail", "dependencies": ["web"], "server_configs": [{"name": "db-01"}]}
        ]}),
    );
    assert_eq!(status, 200, "{v}");
    let b = api.wait_batch(v["data"].as_str().unwrap());
    assert_eq!(b["status"], "RolledBack", "{b}");
    assert!(
        b["operations"][1]["error"]
            .as_str()
            .unwrap()
            .contains("the demo failure switch"),
        "{b}"
    );
}
