//! Outbound HTTP from handlers, against the real binary and HTTP servers
//! the tests start on loopback: a handler without the `http` grant reaches
//! nothing; a granted one reaches what its grant lists and nothing else
//! (another port, path, scheme; a redirect to an unlisted place; a name
//! that resolves to loopback); slow, silent and oversized answers are cut
//! off by the handler's limits; a request may send at most
//! `http_max_requests`; a job's outbound request ends with the job; HTTPS
//! is verified (a server the handler's CA file vouches for is reached, the
//! same server without that file is not). Where a request is refused, the
//! server it named saw no connection at all.

mod support;

use serde_json::{Value as Json, json};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::*;

/// What a test server does with each connection.
#[derive(Clone)]
enum Behaviour {
    /// `200` with this body.
    Ok(&'static str),
    /// `302` to this location.
    Redirect(String),
    /// Answers after this long.
    Slow(Duration),
    /// Reads the request and never answers.
    Silent,
    /// A body of this many bytes, with `Content-Length` or chunked.
    Huge { bytes: usize, chunked: bool },
}

/// A loopback HTTP/1.1 server; `connections` counts what it accepted.
struct TestServer {
    port: u16,
    connections: Arc<AtomicUsize>,
}

fn test_server(behaviour: Behaviour) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            seen.fetch_add(1, Ordering::SeqCst);
            let behaviour = behaviour.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let reply = |stream: &mut std::net::TcpStream,
                             status: &str,
                             extra: &str,
                             body: &[u8]| {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(body);
                };
                match behaviour {
                    Behaviour::Ok(body) => reply(&mut stream, "200 OK", "", body.as_bytes()),
                    Behaviour::Redirect(to) => reply(
                        &mut stream,
                        "302 Found",
                        &format!("location: {to}\r\n"),
                        b"",
                    ),
                    Behaviour::Slow(d) => {
                        std::thread::sleep(d);
                        reply(&mut stream, "200 OK", "", b"late")
                    }
                    Behaviour::Silent => std::thread::sleep(Duration::from_secs(60)),
                    Behaviour::Huge { bytes, chunked } => {
                        let chunk = vec![b'x'; 16 * 1024];
                        if chunked {
                            let _ = write!(
                                stream,
                                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                            );
                        } else {
                            let _ = write!(
                                stream,
                                "HTTP/1.1 200 OK\r\ncontent-length: {bytes}\r\n\r\n"
                            );
                        }
                        let mut left = bytes;
                        while left > 0 {
                            let n = left.min(chunk.len());
                            let ok = if chunked {
                                write!(stream, "{n:x}\r\n").is_ok()
                                    && stream.write_all(&chunk[..n]).is_ok()
                                    && stream.write_all(b"\r\n").is_ok()
                            } else {
                                stream.write_all(&chunk[..n]).is_ok()
                            };
                            if !ok {
                                return;
                            }
                            left -= n;
                        }
                        if chunked {
                            let _ = stream.write_all(b"0\r\n\r\n");
                        }
                    }
                }
            });
        }
    });
    TestServer { port, connections }
}

impl TestServer {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Serves jobber with `grants` and extra `[handler.limits]` lines.
fn jobber(dir: &std::path::Path, grants: &[String], limits: &str) -> Server {
    let wasm = test_components().join("jobber.wasm");
    let grants = grants
        .iter()
        .map(|g| format!("\"{g}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let m = manifest(&format!(
        "[[handler]]\nname = \"jobber\"\nwasm = \"{}\"\nmount = \"/jobber\"\npolicy = \"public\"\n\
         [handler.capabilities]\nhttp = [{grants}]\n[handler.limits]\n{limits}\n",
        wasm.display()
    ));
    Server::start(dir, &m)
}

/// `POST /jobber/fetch`: what the guest got.
fn fetch(server: &Server, url: &str) -> Json {
    let resp = client()
        .post(server.url("/jobber/fetch"))
        .json(&json!({ "url": url }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().unwrap()
}

/// `baton_outbound_requests_total{handler="jobber",result}`, read with a
/// Prometheus text parser.
fn counted(server: &Server, result: &str) -> f64 {
    let text = server
        .client()
        .get(server.url("/admin/v1/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    scrape
        .samples
        .iter()
        .find(|x| {
            x.metric == "baton_outbound_requests_total"
                && x.labels.get("handler") == Some("jobber")
                && x.labels.get("result") == Some(result)
        })
        .map_or(0.0, |x| match x.value {
            prometheus_parse::Value::Counter(v) => v,
            ref other => panic!("not a counter: {other:?}"),
        })
}

fn refused(got: &Json, kind: &str) {
    assert_eq!(got["error"]["kind"], kind, "{got}");
}

#[test]
fn a_handler_without_the_http_grant_reaches_nothing() {
    let target = test_server(Behaviour::Ok("hello"));
    let dir = tempfile::tempdir().unwrap();
    let server = jobber(dir.path(), &[], "");
    for url in [
        target.url("/"),
        "http://localhost:1/".to_string(),
        "https://example.com/".to_string(),
    ] {
        refused(&fetch(&server, &url), "denied");
    }
    assert_eq!(target.connections(), 0);
    server.wait_log("outbound request refused: not in the handler's `http` grant");
}

#[test]
fn a_granted_handler_reaches_what_its_grant_lists_and_nothing_else() {
    let allowed = test_server(Behaviour::Ok("hello"));
    let other = test_server(Behaviour::Ok("other"));
    let dir = tempfile::tempdir().unwrap();
    let server = jobber(dir.path(), &[allowed.url("/api/")], "");
    let got = fetch(&server, &allowed.url("/api/v1?x=1"));
    assert_eq!(got["status"], 200, "{got}");
    assert_eq!(got["body"], "hello");
    assert_eq!(allowed.connections(), 1);
    for url in [
        allowed.url("/other"),
        allowed.url("/api/../other"),
        format!("https://127.0.0.1:{}/api/", allowed.port),
        other.url("/api/"),
    ] {
        refused(&fetch(&server, &url), "denied");
    }
    assert_eq!(allowed.connections(), 1);
    assert_eq!(other.connections(), 0);
    // Refusals are logged without the query, which may carry a token.
    refused(
        &fetch(&server, &other.url("/api/?token=s3cr3t-in-query")),
        "denied",
    );
    let log = server.wait_log("outbound request refused");
    assert!(!log.contains("s3cr3t-in-query"), "{log}");
    assert_eq!(counted(&server, "answered"), 1.0);
    assert_eq!(counted(&server, "refused"), 5.0);
    assert_eq!(counted(&server, "failed"), 0.0);
}

#[test]
fn a_redirect_to_an_unlisted_place_is_refused_when_followed() {
    let unlisted = test_server(Behaviour::Ok("secret"));
    let redirector = test_server(Behaviour::Redirect(unlisted.url("/")));
    let dir = tempfile::tempdir().unwrap();
    let server = jobber(dir.path(), &[redirector.url("/")], "");
    let got = fetch(&server, &redirector.url("/start"));
    assert_eq!(got["status"], 302, "{got}");
    assert_eq!(got["location"], unlisted.url("/"));
    refused(&fetch(&server, &unlisted.url("/")), "denied");
    assert_eq!(unlisted.connections(), 0);
}

#[test]
fn a_name_that_resolves_to_loopback_is_refused_unless_the_grant_names_the_address() {
    let target = test_server(Behaviour::Ok("hello"));
    let dir = tempfile::tempdir().unwrap();
    let by_name = format!("http://localhost:{}", target.port);
    let server = jobber(dir.path(), std::slice::from_ref(&by_name), "");
    refused(&fetch(&server, &format!("{by_name}/")), "denied");
    assert_eq!(target.connections(), 0);
    assert_eq!(counted(&server, "refused"), 1.0);
    server.wait_log("not public");
}

#[test]
fn slow_silent_and_oversized_answers_are_cut_off_by_the_handlers_limits() {
    let slow = test_server(Behaviour::Slow(Duration::from_secs(5)));
    let silent = test_server(Behaviour::Silent);
    let sized = test_server(Behaviour::Huge {
        bytes: 1 << 20,
        chunked: false,
    });
    let chunked = test_server(Behaviour::Huge {
        bytes: 1 << 20,
        chunked: true,
    });
    let small = test_server(Behaviour::Huge {
        bytes: 1000,
        chunked: true,
    });
    let grants: Vec<String> = [&slow, &silent, &sized, &chunked, &small]
        .iter()
        .map(|s| s.url("/"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let server = jobber(
        dir.path(),
        &grants,
        "http_timeout_ms = 500\nhttp_max_response_bytes = 65536\n",
    );
    refused(&fetch(&server, &slow.url("/")), "timeout");
    refused(&fetch(&server, &silent.url("/")), "timeout");
    refused(&fetch(&server, &sized.url("/")), "too-large");
    refused(&fetch(&server, &chunked.url("/")), "too-large");
    let got = fetch(&server, &small.url("/"));
    assert_eq!(got["status"], 200, "{got}");
    assert_eq!(got["body"].as_str().unwrap().len(), 1000);
    // The chunked one was answered, then cut off while its body was read.
    assert_eq!(counted(&server, "failed"), 3.0);
    assert_eq!(counted(&server, "answered"), 2.0);
}

#[test]
fn a_request_sends_at_most_http_max_requests() {
    let target = test_server(Behaviour::Ok("hello"));
    let dir = tempfile::tempdir().unwrap();
    let server = jobber(dir.path(), &[target.url("/")], "http_max_requests = 2\n");
    let resp = client()
        .post(server.url("/jobber/fetch"))
        .json(&json!({ "url": target.url("/"), "times": 3 }))
        .send()
        .unwrap();
    let got: Json = resp.json().unwrap();
    assert_eq!(got["status"], 200, "{got}");
    refused(&got["then"], "denied");
    assert_eq!(target.connections(), 2);
    // The next request starts from zero.
    assert_eq!(fetch(&server, &target.url("/"))["status"], 200);
}

#[test]
fn jobs_reach_granted_places_and_a_cancelled_jobs_request_ends_with_it() {
    let target = test_server(Behaviour::Ok("from a job"));
    let silent = test_server(Behaviour::Silent);
    let dir = tempfile::tempdir().unwrap();
    let server = jobber(
        dir.path(),
        &[target.url("/"), silent.url("/")],
        "http_timeout_ms = 60000\n",
    );
    let spawn = |url: &str| -> String {
        let resp = client()
            .post(server.url("/jobber/spawn"))
            .json(&json!({"kind": "fetch", "input": {"url": url}}))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 202);
        resp.json::<Json>().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let state = |id: &str| server.get_json(&format!("/jobber/jobs/{id}"));
    let ok = spawn(&target.url("/"));
    let done = poll("the fetch job", || {
        let j = state(&ok);
        if j["state"] == "succeeded" {
            Ok(j)
        } else {
            Err(j.to_string())
        }
    });
    assert!(
        done["output"].as_str().unwrap().contains("from a job"),
        "{done}"
    );

    let hung = spawn(&silent.url("/"));
    poll("the silent server to be reached", || {
        if silent.connections() == 1 {
            Ok(())
        } else {
            Err(state(&hung).to_string())
        }
    });
    let resp = client()
        .post(server.url(&format!("/jobber/jobs/{hung}/cancel")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    poll("the job to end cancelled", || {
        let j = state(&hung);
        if j["state"] == "cancelled" {
            Ok(())
        } else {
            Err(j.to_string())
        }
    });
}

/// An HTTPS server on loopback whose certificate (for 127.0.0.1) a CA of
/// the test's signed; the CA's PEM file is written into `dir`.
fn tls_server(dir: &std::path::Path) -> (TestServer, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca_file = dir.join("test-ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            seen.fetch_add(1, Ordering::SeqCst);
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let _ = tls.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nsecret",
                );
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    (TestServer { port, connections }, ca_file)
}

#[test]
fn https_is_verified_against_the_system_roots_and_the_handlers_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, ca_file) = tls_server(dir.path());
    let url = format!("https://127.0.0.1:{}/", tls.port);
    let grant = |ca: Option<&std::path::Path>| {
        let wasm = test_components().join("jobber.wasm");
        let ca = ca.map_or(String::new(), |p| {
            format!("http_ca_file = \"{}\"\n", p.display())
        });
        manifest(&format!(
            "[[handler]]\nname = \"jobber\"\nwasm = \"{}\"\nmount = \"/jobber\"\npolicy = \"public\"\n\
             [handler.capabilities]\nhttp = [\"{url}\"]\n{ca}",
            wasm.display()
        ))
    };
    // Trusted by the CA file: the request goes through.
    let with_ca = tempfile::tempdir().unwrap();
    let server = Server::start(with_ca.path(), &grant(Some(&ca_file)));
    let got = fetch(&server, &url);
    assert_eq!(got["status"], 200, "{got}");
    assert_eq!(got["body"], "secret");
    drop(server);
    // The system's roots alone do not know the test's CA: refused.
    let without = tempfile::tempdir().unwrap();
    let server = Server::start(without.path(), &grant(None));
    refused(&fetch(&server, &url), "failed");
    server.wait_log("outbound TLS failed");
}

#[test]
fn a_grant_that_is_not_one_stops_startup_naming_the_handler_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        manifest("[[handler]]\nname = \"jobber\"\nwasm = \"builtin:orchestrator\"\nmount = \"/j\"\n[handler.capabilities]\nhttp = [\"ftp://files.example\"]\n"),
    )
    .unwrap();
    let err = serve_manifest_fails(dir.path(), "bad.toml");
    assert!(err.contains("capabilities.http"), "{err}");
    assert!(err.contains("ftp://files.example"), "{err}");
}
