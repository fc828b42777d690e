//! A Basic password never reaches a guest, however the client spaces the
//! `Authorization` value. Over HTTP/2 a header value arrives as sent: a
//! leading space authenticated as Basic (the credential is trimmed) but was
//! shown to the guest unredacted. Found by the `credentials` fuzz target
//! (fuzz/regressions/credentials/); checked here end to end against the real
//! binary, with an HTTP/2 client (prior knowledge) on a plain listener.

mod support;

use base64::Engine as _;
use serde_json::Value;
use support::*;

/// GET `path` over HTTP/2 with `authorization` as given; status and JSON body.
fn h2_get(base: &str, path: &str, authorization: &str) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = base.trim_start_matches("http://").to_string();
    let (path, authorization) = (path.to_string(), authorization.to_string());
    rt.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut client = client.ready().await.unwrap();
        let req = axum::http::Request::get(format!("http://x{path}"))
            .header("authorization", authorization)
            .body(())
            .unwrap();
        let (resp, _) = client.send_request(req, true).unwrap();
        let resp = resp.await.expect("the response head");
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("the response body");
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    })
}

#[test]
fn a_spaced_basic_credential_authenticates_but_never_reaches_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    let probe = test_components().join("authprobe.wasm");
    let server = Server::start(
        dir.path(),
        &manifest(&format!(
            "[[handler]]\nname = \"probe\"\nwasm = \"{}\"\nmount = \"/probe\"\n",
            probe.display()
        )),
    );
    let secret =
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}"));
    for value in [
        format!("Basic {secret}"),
        format!(" Basic {secret}"),
        format!("\tbasic  {secret}"),
    ] {
        let (status, headers) = h2_get(&server.base, "/probe/headers", &value);
        assert_eq!(status, 200, "{value:?}: {headers}");
        let text = headers.to_string();
        assert!(text.contains("Basic [redacted]"), "{value:?}: {text}");
        assert!(!text.contains(&secret), "{value:?}: the guest saw {text}");
    }
}
