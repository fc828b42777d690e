//! Authentication and authorisation against the real binary: every way a
//! credential can be missing, malformed, forged, expired, revoked or not
//! permitted, and the login/refresh/logout path through the `auth` host calls.

mod support;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::*;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The orchestrator plus the auth probe at `/probe` (Commissaire-style errors).
fn probe_manifest(issue_tokens: bool, auth: &str) -> String {
    let wasm = test_components().join("authprobe.wasm");
    manifest(&format!(
        "{auth}\n{ORCHESTRATOR}\
         [[handler.route]]\npath = \"/inventory/*\"\nmethods = [\"PUT\", \"DELETE\"]\npolicy = \"inventory:write\"\n\
         [[handler.route]]\npath = \"/command/*\"\nmethods = [\"POST\"]\npolicy = \"jobs:write\"\n\n\
         [[handler]]\nname = \"probe\"\nwasm = \"{}\"\nmount = \"/probe\"\nerrors = \"commissaire\"\n\
         [handler.capabilities]\nissue_tokens = {issue_tokens}\n\
         [[handler.route]]\npath = \"/login\"\npolicy = \"public\"\n\
         [[handler.route]]\npath = \"/refresh\"\npolicy = \"public\"\n",
        wasm.display()
    ))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sub: &str, iss: &str, exp: u64) -> Value {
    json!({"iss": iss, "aud": "baton", "sub": sub, "exp": exp, "iat": now(), "jti": "t-1", "typ": "access"})
}

fn hs256(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// The server's HS256 secret, read from its data directory.
fn secret_of(server: &Server) -> Vec<u8> {
    let text = std::fs::read_to_string(server.data.join("jwt-secret")).unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap()
}

/// `status, body` of GET `path` with `header: value`.
fn get_with(server: &Server, path: &str, header: &str, value: &[u8]) -> (u16, Value) {
    let resp = server
        .anonymous()
        .get(server.url(path))
        .header(
            header,
            reqwest::header::HeaderValue::from_bytes(value).unwrap(),
        )
        .send()
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

#[test]
fn missing_and_garbage_credentials_are_refused_in_each_apis_shape() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &probe_manifest(false, ""));
    let anon = server.anonymous();

    let resp = anon
        .get(server.url("/orchestrator/v1/inventory"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        r#"Bearer realm="baton""#
    );
    let body: Value = resp.json().unwrap();
    assert_eq!(body["kind"], "puppetlabs.orchestrator/not-authenticated");

    // The Commissaire family answers 403, as commissaire-http does (commctl
    // reads 403 as "The provided credentials were incorrect").
    let resp = anon.get(server.url("/probe/whoami")).send().unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.headers().get("www-authenticate").is_none());
    let body: Value = resp.json().unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("authentication required"),
        "{body}"
    );

    let long = format!("Bearer {}", "A".repeat(16 * 1024));
    let garbage: &[(&str, &[u8])] = &[
        ("x-authentication", b"garbage"),
        ("x-authentication", b"a.b.c"),
        ("x-authentication", b"eyJhbGciOiJIUzI1NiJ9.e30.e30"),
        ("x-authentication", b"\xff\xfe\xfd"),
        ("authorization", b"Bearer "),
        ("authorization", b"Bearer not-a-jwt"),
        ("authorization", b"Basic !!!"),
        ("authorization", b"Basic bm9jb2xvbg=="),
        ("authorization", b"Digest username=x"),
        ("authorization", b"\xc3\x28"),
        ("authorization", long.as_bytes()),
    ];
    for (header, value) in garbage {
        let (status, body) = get_with(&server, "/orchestrator/v1/inventory", header, value);
        assert_eq!(
            status,
            401,
            "{header}: {:?} → {body}",
            String::from_utf8_lossy(value)
        );
        assert_eq!(
            body["kind"], "puppetlabs.orchestrator/not-authenticated",
            "{body}"
        );
    }
    // The server is unharmed.
    assert_eq!(server.get_status("/orchestrator/v1/inventory"), 200);
}

#[test]
fn forged_expired_and_foreign_tokens_are_401() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &probe_manifest(false, ""));
    let secret = secret_of(&server);
    let path = "/orchestrator/v1/inventory";
    let expect_401 = |token: &str, why: &str, says: &str| {
        let (status, body) = get_with(&server, path, "x-authentication", token.as_bytes());
        assert_eq!(status, 401, "{why}: {body}");
        let msg = body["msg"].as_str().unwrap_or_default();
        assert!(msg.contains(says), "{why}: `{msg}` should say `{says}`");
    };

    // A correctly signed token is accepted: the forgeries below differ in one way each.
    let good = hs256(&secret, &claims("admin", "baton", now() + 600));
    let (status, _) = get_with(&server, path, "x-authentication", good.as_bytes());
    assert_eq!(status, 200);

    expect_401(
        &hs256(&secret, &claims("admin", "baton", now() - 3600)),
        "expired",
        "expired",
    );
    expect_401(
        &hs256(&secret, &claims("admin", "evil", now() + 600)),
        "issuer",
        "issuer",
    );
    let mut wrong_aud = claims("admin", "baton", now() + 600);
    wrong_aud["aud"] = json!("other");
    expect_401(&hs256(&secret, &wrong_aud), "audience", "audience");
    expect_401(
        &hs256(b"another secret", &claims("admin", "baton", now() + 600)),
        "key",
        "signature",
    );
    expect_401(
        &hs256(&secret, &claims("ghost", "baton", now() + 600)),
        "unknown user",
        "no longer exists",
    );

    // Tampered: the payload of `good` swapped for another user's, signature kept.
    let parts: Vec<&str> = good.split('.').collect();
    let payload = B64.encode(claims("root", "baton", now() + 600).to_string());
    expect_401(
        &format!("{}.{payload}.{}", parts[0], parts[2]),
        "tampered",
        "signature",
    );

    // `alg: none` with no signature.
    let none = format!(
        "{}.{}.",
        B64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        B64.encode(claims("admin", "baton", now() + 600).to_string())
    );
    expect_401(&none, "alg none", "not");

    // An ES256 token on an HS256 server.
    let key = rcgen::KeyPair::generate().unwrap();
    let es = jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &claims("admin", "baton", now() + 600),
        &EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    expect_401(&es, "algorithm confusion", "HS256");

    let log = server.log();
    assert!(!log.contains(&good), "tokens must not be logged");
}

/// A server signing with `alg` and the given PEM keys accepts `baton token`'s
/// tokens and refuses the classic confusion: HS256 keyed with its public key.
fn asymmetric_server_refuses_hs256_made_with_its_public_key(
    alg: &str,
    private: &str,
    public: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jwt.pem"), private).unwrap();
    std::fs::write(dir.path().join("jwt.pub.pem"), public).unwrap();
    let auth = format!(
        "[auth]\nalgorithm = \"{alg}\"\nprivate_key = \"jwt.pem\"\npublic_key = \"jwt.pub.pem\"\nissuer = \"corp\"\n"
    );
    let server = Server::start(dir.path(), &probe_manifest(false, &auth));
    assert_eq!(server.get_status("/orchestrator/v1/inventory"), 200);
    let forged = hs256(public.as_bytes(), &claims("admin", "corp", now() + 600));
    let (status, body) = get_with(
        &server,
        "/orchestrator/v1/inventory",
        "x-authentication",
        forged.as_bytes(),
    );
    assert_eq!(status, 401, "{body}");
    assert!(body["msg"].as_str().unwrap().contains(alg), "{body}");
    // There is no HS256 secret on such a server.
    assert!(!server.data.join("jwt-secret").exists());
}

#[test]
fn an_rs256_server_refuses_hs256_tokens_made_with_its_public_key() {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let private = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let public = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    asymmetric_server_refuses_hs256_made_with_its_public_key("RS256", &private, &public);
}

#[test]
fn an_es256_server_refuses_hs256_tokens_made_with_its_public_key() {
    let key = rcgen::KeyPair::generate().unwrap();
    asymmetric_server_refuses_hs256_made_with_its_public_key(
        "ES256",
        &key.serialize_pem(),
        &key.public_key_pem(),
    );
}

#[test]
fn mismatched_or_unreadable_jwt_keys_stop_startup() {
    let dir = tempfile::tempdir().unwrap();
    let a = rcgen::KeyPair::generate().unwrap();
    let b = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.path().join("a.pem"), a.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("b.pub.pem"), b.public_key_pem()).unwrap();
    let write = |private: &str, public: &str| {
        std::fs::write(
            dir.path().join("baton.toml"),
            manifest(&format!(
                "[auth]\nalgorithm = \"ES256\"\nprivate_key = \"{private}\"\npublic_key = \"{public}\"\n"
            )),
        )
        .unwrap();
    };
    write("a.pem", "b.pub.pem");
    let err = serve_manifest_fails(dir.path(), "baton.toml");
    assert!(err.contains("do not form a pair"), "{err}");
    write("a.pem", "missing.pem");
    let err = serve_manifest_fails(dir.path(), "baton.toml");
    assert!(err.contains("missing.pem"), "{err}");
    write("a.pem", "a.pem");
    let err = serve_manifest_fails(dir.path(), "baton.toml");
    assert!(err.contains("public_key"), "{err}");
}

#[test]
fn revoked_tokens_stay_revoked_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let m = probe_manifest(false, "");
    let server = Server::start(dir.path(), &m);
    let token = server.token("admin");
    let path = "/orchestrator/v1/inventory";
    assert_eq!(
        get_with(&server, path, "x-authentication", token.as_bytes()).0,
        200
    );
    let resp = server
        .client()
        .post(server.url("/admin/v1/tokens/revoke"))
        .json(&json!({"token": token}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, body) = get_with(&server, path, "x-authentication", token.as_bytes());
    assert_eq!(status, 401);
    assert!(body["msg"].as_str().unwrap().contains("revoked"), "{body}");
    // Revoking garbage is a 400 in Baton's shape.
    let resp = server
        .client()
        .post(server.url("/admin/v1/tokens/revoke"))
        .json(&json!({"token": "nope"}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    server.kill9();
    let server = Server::start(dir.path(), &m);
    let bearer = format!("Bearer {token}");
    assert_eq!(
        get_with(&server, path, "authorization", bearer.as_bytes()).0,
        401
    );
}

#[test]
fn permissions_are_enforced_per_route_before_the_handler_runs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &probe_manifest(false, ""));
    server.put_user(
        "vera",
        json!({"password": "viewer-password", "roles": ["viewer"]}),
    );
    server.put_user(
        "otto",
        json!({"password": "operator-password", "roles": ["operator"]}),
    );
    let viewer = server.client_with_token(&server.token("vera"));
    let operator = server.client_with_token(&server.token("otto"));
    let node = server.url("/orchestrator/v1/inventory/nodes/web-1");

    assert_eq!(
        viewer
            .get(server.url("/orchestrator/v1/inventory"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let resp = viewer.put(&node).send().unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["kind"], "puppetlabs.orchestrator/not-permitted");
    assert!(
        body["msg"].as_str().unwrap().contains("inventory:write"),
        "{body}"
    );
    let resp = viewer
        .post(server.url("/orchestrator/v1/command/deploy"))
        .json(&json!({"environment": "production"}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
    // Nothing was written by the refused request.
    assert_eq!(
        server.get_status("/orchestrator/v1/inventory/nodes/web-1"),
        404
    );
    assert_eq!(operator.put(&node).send().unwrap().status(), 201);

    // The admin API needs `admin`; errors there are in Baton's shape.
    let resp = operator.get(server.url("/admin/v1/users")).send().unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["error"]["kind"], "not-permitted");
    // Health checks are public.
    let anon = server.anonymous();
    assert_eq!(
        anon.get(server.url("/admin/v1/healthz"))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        anon.get(server.url("/admin/v1/readyz"))
            .send()
            .unwrap()
            .status(),
        200
    );

    // The handler sees the principal and can check permissions itself.
    let who: Value = viewer
        .get(server.url("/probe/whoami?perm=jobs:read"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(who["principal"]["subject"], "vera");
    assert_eq!(who["principal"]["roles"], json!(["viewer"]));
    assert_eq!(who["principal"]["namespaces"], json!(["*"]));
    assert_eq!(who["check"], true);
    let who: Value = viewer
        .get(server.url("/probe/whoami?perm=hosts:creds"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(who["check"], false);

    // Deleting a user ends their access at once; the last admin stays.
    let resp = server
        .client()
        .delete(server.url("/admin/v1/users/vera"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = viewer
        .get(server.url("/orchestrator/v1/inventory"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = server
        .client()
        .delete(server.url("/admin/v1/users/admin"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 409);
    let resp = server
        .client()
        .delete(server.url("/admin/v1/users/ghost"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404);
    // Bad admin input is a 400 naming the problem.
    for (body, says) in [
        (json!({"password": "short", "roles": []}), "at least 8"),
        (
            json!({"password": "long enough", "roles": ["wizard"]}),
            "no role `wizard`",
        ),
        (
            json!({"password": "long enough", "role": ["viewer"]}),
            "unknown field",
        ),
        (json!({"roles": ["viewer"]}), "needs a `password`"),
    ] {
        let resp = server
            .client()
            .put(server.url("/admin/v1/users/newbie"))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let reply: Value = resp.json().unwrap();
        assert!(
            reply["error"]["message"].as_str().unwrap().contains(says),
            "{reply}"
        );
    }
    let resp = server
        .client()
        .put(server.url("/admin/v1/users/newbie"))
        .body("{nope")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[test]
fn basic_auth_works_and_failed_logins_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let auth = "[auth]\nlogin_max_failures = 3\nlogin_max_failures_per_address = 100\n";
    let server = Server::start(dir.path(), &probe_manifest(false, auth));
    server.put_user(
        "ann",
        json!({"password": "ann-password", "roles": ["viewer"]}),
    );
    let anon = server.anonymous();
    let inv = server.url("/orchestrator/v1/inventory");
    let basic =
        |user: &str, pass: &str| anon.get(&inv).basic_auth(user, Some(pass)).send().unwrap();

    assert_eq!(basic("admin", ADMIN_PASSWORD).status(), 200);
    assert_eq!(basic("ann", "ann-password").status(), 200);
    for _ in 0..3 {
        assert_eq!(basic("ann", "wrong-password").status(), 401);
    }
    // Locked: even the right password is refused until the window ends.
    let resp = basic("ann", "ann-password");
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    // Other users are not affected; unknown users fail like wrong passwords.
    assert_eq!(basic("admin", ADMIN_PASSWORD).status(), 200);
    assert_eq!(basic("nobody", "whatever-pass").status(), 401);

    // The guest never sees a Basic password.
    let headers: Value = anon
        .get(server.url("/probe/headers"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        headers.to_string().contains("Basic [redacted]"),
        "{headers}"
    );
    assert!(!headers.to_string().contains(
        &base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"))
    ));

    let log = server.log();
    assert!(
        !log.contains(ADMIN_PASSWORD) && !log.contains("ann-password"),
        "passwords in the log"
    );
    assert!(!log.contains("$argon2"), "hashes in the log");
}

#[test]
fn login_with_totp_refresh_and_logout_through_the_auth_host_calls() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &probe_manifest(true, ""));
    let out = server.put_user(
        "mfa",
        json!({"password": "mfa-password", "roles": ["viewer"], "totp": "enroll"}),
    );
    let secret = out["totp"]["secret"].as_str().unwrap().to_string();
    assert!(
        out["totp"]["otpauth_url"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    // The secret is shown once, never again.
    let view: Value = server.get_json("/admin/v1/users/mfa");
    assert_eq!(view["mfa"], true);
    assert!(!view.to_string().contains(&secret), "{view}");

    let anon = server.anonymous();
    let login = |body: Value| {
        anon.post(server.url("/probe/login"))
            .json(&body)
            .send()
            .unwrap()
    };
    let resp = login(json!({"username": "mfa", "password": "mfa-password"}));
    assert_eq!(resp.status(), 401, "a missing code is refused");
    let resp = login(json!({"username": "mfa", "password": "mfa-password", "mfa_code": "000000"}));
    assert_eq!(resp.status(), 401, "a wrong code is refused");
    let resp =
        login(json!({"username": "mfa", "password": "wrong-password", "mfa_code": "000000"}));
    assert_eq!(resp.status(), 401);
    // Basic cannot carry a code: a user with MFA must log in for a token.
    let resp = anon
        .get(server.url("/orchestrator/v1/inventory"))
        .basic_auth("mfa", Some("mfa-password"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);

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
    let resp = login(
        json!({"username": "mfa", "password": "mfa-password", "mfa_code": totp.generate_current().unwrap()}),
    );
    assert_eq!(resp.status(), 200);
    let tokens: Value = resp.json().unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();

    let user = server.client_with_token(&access);
    assert_eq!(
        user.get(server.url("/orchestrator/v1/inventory"))
            .send()
            .unwrap()
            .status(),
        200
    );
    // A refresh token does not authenticate requests…
    let (status, _) = get_with(
        &server,
        "/orchestrator/v1/inventory",
        "x-authentication",
        refresh.as_bytes(),
    );
    assert_eq!(status, 401);
    // …it buys a new access token, and an access token cannot be used to refresh.
    let resp = anon
        .post(server.url("/probe/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let renewed: Value = resp.json().unwrap();
    let renewed = renewed["access_token"].as_str().unwrap().to_string();
    assert_ne!(renewed, access);
    let resp = anon
        .post(server.url("/probe/refresh"))
        .json(&json!({"refresh_token": access}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);

    // Logout revokes the token it is called with.
    let resp = user.post(server.url("/probe/logout")).send().unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        user.get(server.url("/orchestrator/v1/inventory"))
            .send()
            .unwrap()
            .status(),
        401
    );
    let renewed_client = server.client_with_token(&renewed);
    assert_eq!(
        renewed_client
            .get(server.url("/orchestrator/v1/inventory"))
            .send()
            .unwrap()
            .status(),
        200
    );
}

#[test]
fn issuing_tokens_needs_the_capability() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &probe_manifest(false, ""));
    let resp = server
        .anonymous()
        .post(server.url("/probe/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("issue_tokens"),
        "{body}"
    );
}

#[test]
fn first_start_writes_a_random_admin_password_readable_only_by_its_owner() {
    // With BATON_ADMIN_PASSWORD set (as Server::start does), no file is written.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &manifest(ORCHESTRATOR));
    assert!(!server.data.join("admin-password").exists());
    server.wait_log("BATON_ADMIN_PASSWORD");
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("baton.toml");
    std::fs::write(&path, manifest(ORCHESTRATOR)).unwrap();
    let data = dir.path().join("data");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_baton"));
    cmd.arg("serve")
        .arg("--manifest")
        .arg(&path)
        .arg("--data")
        .arg(&data);
    let server = Server::spawn_without_admin_password(cmd, data.clone());
    let file = data.join("admin-password");
    let password = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(password.len() >= 20, "{password}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [file.clone(), data.join("jwt-secret")] {
            let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
    }
    // stderr is read by another thread: wait for the line.
    let log = server.wait_log(&file.display().to_string());
    assert!(!log.contains(&password), "the password must not be logged");
    let resp = server
        .anonymous()
        .get(server.url("/admin/v1/users"))
        .basic_auth("admin", Some(&password))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.text().unwrap();
    assert!(!body.contains("argon2") && !body.contains("hash"), "{body}");
    // A restart keeps the first password; no new one is generated.
    drop(server);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_baton"));
    cmd.arg("serve")
        .arg("--manifest")
        .arg(&path)
        .arg("--data")
        .arg(&data);
    let server = Server::spawn_without_admin_password(cmd, data.clone());
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), password);
    let resp = server
        .anonymous()
        .get(server.url("/admin/v1/users"))
        .basic_auth("admin", Some(&password))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// `n` Basic-authenticated admin requests at once, from threads, with a
/// wrong password; their statuses.
fn concurrent_basic(server: &Server, n: usize, user: impl Fn(usize) -> String) -> Vec<u16> {
    concurrent_basic_with(server, n, user, "wrong-password")
}

/// `n` Basic-authenticated admin requests at once with `password`.
fn concurrent_basic_with(
    server: &Server,
    n: usize,
    user: impl Fn(usize) -> String,
    password: &'static str,
) -> Vec<u16> {
    let url = server.url("/admin/v1/users");
    // Every client is made first and every request leaves at the barrier.
    let clients: Vec<_> = (0..n).map(|_| server.anonymous()).collect();
    let start = std::sync::Arc::new(std::sync::Barrier::new(n));
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            let (url, user, start) = (url.clone(), user(i), start.clone());
            std::thread::spawn(move || {
                start.wait();
                client
                    .get(&url)
                    .basic_auth(user, Some(password))
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn of_sixty_simultaneous_wrong_passwords_only_the_limit_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let auth = "[auth]\nlogin_max_failures = 5\nlogin_max_failures_per_address = 1000\n";
    let server = Server::start(dir.path(), &manifest(auth));
    server.put_user(
        "ann",
        json!({"password": "ann-password", "roles": ["viewer"]}),
    );
    let statuses = concurrent_basic(&server, 60, |_| "ann".into());
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, limited), (5, 55), "{statuses:?}");
}

#[test]
fn simultaneous_requests_with_the_right_password_are_never_rate_limited() {
    // A client's pool opening 12 connections at once with the same Basic
    // credential: each password check in flight counted against the limit
    // of 5 until it ended, so 7 of them got 429 "too-many-attempts".
    let dir = tempfile::tempdir().unwrap();
    let auth = "[auth]\nlogin_max_failures = 5\nlogin_max_failures_per_address = 1000\n";
    let server = Server::start(dir.path(), &manifest(auth));
    server.put_user(
        "ann",
        json!({"password": "ann-password", "roles": ["admin"]}),
    );
    let statuses = concurrent_basic_with(&server, 12, |_| "ann".into(), "ann-password");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // Wrong passwords are still limited: the limit is checked, not waited out.
    let statuses = concurrent_basic(&server, 12, |_| "ann".into());
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, limited), (5, 7), "{statuses:?}");
}

#[test]
fn simultaneous_logins_are_hashed_a_bounded_number_at_a_time_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let auth =
        "[auth]\nmax_concurrent_password_checks = 2\nlogin_max_failures_per_address = 1000\n";
    let server = Server::start(dir.path(), &manifest(auth));
    // Warm: the first checks allocate the (two) reused argon2 buffers.
    assert_eq!(
        concurrent_basic(&server, 2, |i| format!("warm{i}")),
        [401, 401]
    );
    let before = server.rss_kib();
    // 40 unknown users at once (each checked against the dummy hash, 19 MiB
    // of argon2 memory a check): before the bound, this added ~700 MB.
    let statuses = concurrent_basic(&server, 40, |i| format!("user{i}"));
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let grown_mib = server.rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 100, "resident memory grew by {grown_mib} MiB");
    assert_eq!(server.get_status("/admin/v1/healthz"), 200);
}

/// A token for `user` from the admin API (bound to the user as it is now).
fn admin_api_token(server: &Server, user: &str) -> String {
    let resp = server
        .client()
        .post(server.url("/admin/v1/tokens"))
        .json(&json!({"user": user}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn tokens_are_bound_to_the_user_not_the_name_and_die_with_a_password_change() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &manifest(ORCHESTRATOR));
    let status = |token: &str| {
        server
            .client_with_token(token)
            .get(server.url("/orchestrator/v1/inventory"))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    server.put_user(
        "ann",
        json!({"password": "ann-password", "roles": ["viewer"]}),
    );
    let old = admin_api_token(&server, "ann");
    assert_eq!(status(&old), 200);
    let resp = server
        .client()
        .delete(server.url("/admin/v1/users/ann"))
        .send()
        .unwrap();
    assert!(resp.status().is_success());
    assert_eq!(status(&old), 401);
    // A new user of the same name (with more roles) is someone else.
    server.put_user(
        "ann",
        json!({"password": "new-password", "roles": ["admin"]}),
    );
    assert_eq!(status(&old), 401, "the deleted user's token works again");
    let fresh = admin_api_token(&server, "ann");
    assert_eq!(status(&fresh), 200);
    // A role change keeps tokens; a password change revokes them.
    server.put_user("ann", json!({"roles": ["viewer"]}));
    assert_eq!(status(&fresh), 200);
    server.put_user("ann", json!({"password": "third-password"}));
    assert_eq!(
        status(&fresh),
        401,
        "a token from before the password change"
    );
    assert_eq!(status(&admin_api_token(&server, "ann")), 200);
}

#[test]
fn a_totp_code_is_accepted_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &probe_manifest(true, ""));
    let out = server.put_user(
        "mfa",
        json!({"password": "mfa-password", "roles": ["viewer"], "totp": "enroll"}),
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
    let login = |code: &str| {
        server
            .anonymous()
            .post(server.url("/probe/login"))
            .json(&json!({"username": "mfa", "password": "mfa-password", "mfa_code": code}))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    // Once a code is used, it and every earlier step's code are refused.
    let now = now();
    let code = totp.generate(now);
    assert_eq!(login(&code), 200);
    assert_eq!(
        login(&code),
        401,
        "the same code a second time (RFC 6238 §5.2)"
    );
    assert_eq!(
        login(&totp.generate(now - 30)),
        401,
        "an earlier step's code"
    );
    // Remembered durably: still refused after a restart.
    drop(server);
    let server = Server::start(dir.path(), &probe_manifest(true, ""));
    let status = server
        .anonymous()
        .post(server.url("/probe/login"))
        .json(&json!({"username": "mfa", "password": "mfa-password", "mfa_code": code}))
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 401);
}

/// The status line of the reply read from `stream` (`None` if the server
/// sent nothing before closing or within the read timeout).
fn status_line(stream: &mut impl std::io::Read) -> Option<String> {
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
        if reply.windows(2).any(|w| w == b"\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&reply).into_owned();
    text.lines().next().map(str::to_string)
}

#[test]
fn admin_routes_authenticate_before_reading_the_body_and_refuse_oversize_bodies_with_413() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &manifest(""));
    let addr = server.base.trim_start_matches("http://").to_string();
    // An anonymous 60 MB upload: refused on its head, before the body is
    // sent (before, the server waited for the 60 MB and buffered them).
    for path in ["/admin/v1/handlers/x?mount=/x", "/admin/v1/users/x"] {
        let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        write!(
            tcp,
            "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 60000000\r\n\r\n"
        )
        .unwrap();
        tcp.write_all(&[0u8; 1024]).unwrap();
        let line = status_line(&mut tcp);
        assert_eq!(line.as_deref(), Some("HTTP/1.1 401 Unauthorized"), "{path}");
    }
    // With a token, a body past the limit is a 413 in the admin shape that
    // the client reads whole (before, the connection was reset under it).
    for (method, path, size) in [
        (reqwest::Method::PUT, "/admin/v1/users/bob", 1 << 20),
        (reqwest::Method::POST, "/admin/v1/tokens", 200_000),
    ] {
        let resp = server
            .client()
            .request(method, server.url(path))
            .body(vec![b' '; size])
            .send()
            .unwrap();
        assert_eq!(resp.status(), 413, "{path}");
        let body: Value = resp.json().unwrap();
        assert_eq!(body["error"]["kind"], "payload-too-large", "{body}");
    }
    assert_eq!(server.get_status("/admin/v1/healthz"), 200);
}
