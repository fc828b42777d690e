//! Traces, against the real binary: `[telemetry] otlp_endpoint` exports
//! the spans of a request and of the job it spawned to an OTLP receiver
//! that the test starts on loopback, over gRPC and over HTTP/protobuf (the
//! protocol's own message types and gRPC service, `opentelemetry-proto`).
//!
//! Checked: an incoming W3C `traceparent` is the request span's parent; the
//! guest is shown a `traceparent` naming the request span; host calls into
//! storage (`kv.set`, the flush, `jobs.spawn`) are the request span's
//! children; the job attempt is the child of the spawn, and `exec` the
//! child of the attempt, all in the caller's trace; the trace id is in the
//! request's and the job's log lines. A garbage `traceparent` starts a new
//! trace; without `[telemetry]` no trace id exists and the guest sees the
//! caller's header untouched; a collector that is down costs requests and
//! jobs nothing.

mod support;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use serde_json::{Value as Json, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use support::*;

/// The caller's trace and span (W3C Trace Context's own example ids).
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// A span as the receiver got it.
#[derive(Debug, Clone)]
struct Got {
    trace: String,
    id: String,
    parent: String,
    name: String,
    kind: i32,
    attributes: HashMap<String, String>,
}

/// OTLP's `SPAN_KIND_SERVER`.
const KIND_SERVER: i32 = 2;

type Spans = Arc<Mutex<Vec<Got>>>;

fn collect(spans: &Spans, req: ExportTraceServiceRequest) {
    let mut all = spans.lock().unwrap();
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
            .map(text);
        assert_eq!(service.as_deref(), Some("baton-under-test"));
        for ss in rs.scope_spans {
            for s in ss.spans {
                all.push(Got {
                    trace: hex::encode(&s.trace_id),
                    id: hex::encode(&s.span_id),
                    parent: hex::encode(&s.parent_span_id),
                    name: s.name,
                    kind: s.kind,
                    attributes: s
                        .attributes
                        .into_iter()
                        .filter_map(|kv| Some((kv.key, text(kv.value?.value.as_ref()?))))
                        .collect(),
                });
            }
        }
    }
}

fn text(v: &AnyValue) -> String {
    match v {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::IntValue(i) => i.to_string(),
        AnyValue::BoolValue(b) => b.to_string(),
        AnyValue::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// An OTLP receiver on loopback; what it got is in `spans`.
struct Receiver {
    url: String,
    spans: Spans,
    _runtime: tokio::runtime::Runtime,
}

struct GrpcService(Spans);

#[tonic::async_trait]
impl TraceService for GrpcService {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        collect(&self.0, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/gRPC receiver (a tonic server of the collector's trace service).
fn grpc_receiver() -> Receiver {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let spans = Spans::default();
    let incoming = runtime
        .block_on(async { tonic::transport::server::TcpIncoming::bind(([127, 0, 0, 1], 0).into()) })
        .unwrap();
    let port = incoming.local_addr().unwrap().port();
    let service = TraceServiceServer::new(GrpcService(spans.clone()));
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming),
    );
    Receiver {
        url: format!("http://127.0.0.1:{port}"),
        spans,
        _runtime: runtime,
    }
}

/// An OTLP/HTTP receiver: `POST /v1/traces` with a protobuf body.
fn http_receiver() -> Receiver {
    use prost::Message as _;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let spans = Spans::default();
    let sink = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
            let sink = sink.clone();
            async move {
                assert_eq!(headers["content-type"], "application/x-protobuf");
                collect(&sink, ExportTraceServiceRequest::decode(body).unwrap());
                ExportTraceServiceResponse::default().encode_to_vec()
            }
        }),
    );
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    runtime.spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://127.0.0.1:{port}/v1/traces"),
        spans,
        _runtime: runtime,
    }
}

/// The jobber test component, exporting traces to `endpoint` (none: no
/// `[telemetry]`), its spans sent every 100 ms.
fn serve_jobber(dir: &std::path::Path, endpoint: Option<&str>) -> Server {
    let wasm = test_components().join("jobber.wasm");
    let telemetry = endpoint.map_or(String::new(), |url| {
        format!("[telemetry]\notlp_endpoint = \"{url}\"\nservice_name = \"baton-under-test\"\n\n")
    });
    let manifest = format!(
        "{telemetry}{}",
        manifest(&format!(
            "[[handler]]\nname = \"jobber\"\nwasm = \"{}\"\nmount = \"/jobber\"\npolicy = \"public\"\n\
             [handler.capabilities]\nexec = [\"echo\"]\n",
            wasm.display()
        ))
    );
    let mut cmd = serve_command(dir, &manifest);
    cmd.env("OTEL_BSP_SCHEDULE_DELAY", "100");
    Server::spawn(cmd, dir.join("data"))
}

/// `POST /jobber/traced` (a kv write and the spawn of an `echo` job) with
/// `traceparent`; the reply's job id, the `traceparent` the guest saw and
/// the request id.
fn traced_request(server: &Server, traceparent: Option<&str>) -> (String, Option<String>, String) {
    let mut req = client().post(server.url("/jobber/traced")).json(&json!({
        "kind": "exec",
        "input": {"program": "echo", "args": ["traced"]},
    }));
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    let resp = req.send().unwrap();
    assert_eq!(resp.status(), 202);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Json = resp.json().unwrap();
    let seen = body["traceparent"].as_str().map(str::to_string);
    (body["id"].as_str().unwrap().to_string(), seen, request_id)
}

fn wait_succeeded(server: &Server, id: &str) {
    poll(&format!("job {id} to succeed"), || {
        let j = server.get_json(&format!("/jobber/jobs/{id}"));
        if j["state"] == "succeeded" {
            Ok(())
        } else {
            Err(j.to_string())
        }
    });
}

/// Waits until the receiver holds a span of `trace` named each of `names`.
fn wait_spans(receiver: &Receiver, trace: &str, names: &[&str]) -> Vec<Got> {
    poll(&format!("spans {names:?} of trace {trace}"), || {
        let got: Vec<Got> = receiver
            .spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace == trace)
            .cloned()
            .collect();
        let missing: Vec<&&str> = names
            .iter()
            .filter(|n| !got.iter().any(|s| s.name == **n))
            .collect();
        if missing.is_empty() {
            Ok(got)
        } else {
            Err(format!(
                "missing {missing:?}; have {:?}",
                got.iter().map(|s| &s.name).collect::<Vec<_>>()
            ))
        }
    })
}

fn one<'a>(spans: &'a [Got], name: &str) -> &'a Got {
    let found: Vec<&Got> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one `{name}` span: {spans:#?}");
    found[0]
}

/// The request's and the job's spans, their parents and attributes, the
/// `traceparent` the guest saw and the trace id in the log.
fn request_and_job_are_one_trace(receiver: Receiver) {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_jobber(dir.path(), Some(&receiver.url));
    let caller = format!("00-{TRACE}-{CALLER_SPAN}-01");
    let (job, guest_saw, request_id) = traced_request(&server, Some(&caller));
    wait_succeeded(&server, &job);

    let spans = wait_spans(
        &receiver,
        TRACE,
        &[
            "POST /jobber",
            "kv.set",
            "store.commit",
            "jobs.spawn",
            "job exec",
            "exec",
        ],
    );
    let request = one(&spans, "POST /jobber");
    assert_eq!(
        request.parent, CALLER_SPAN,
        "the caller's span is the parent"
    );
    assert_eq!(request.kind, KIND_SERVER);
    assert_eq!(request.attributes["baton.handler"], "jobber");
    assert_eq!(request.attributes["http.route"], "/jobber");
    assert_eq!(request.attributes["http.request.method"], "POST");
    assert_eq!(request.attributes["http.response.status_code"], "202");
    assert_eq!(request.attributes["baton.request_id"], request_id);
    assert_eq!(
        guest_saw.as_deref(),
        Some(format!("00-{TRACE}-{}-01", request.id).as_str()),
        "the guest is shown the request span as its parent"
    );
    for child in ["kv.set", "store.commit", "jobs.spawn"] {
        assert_eq!(one(&spans, child).parent, request.id, "{child}");
    }
    assert_eq!(one(&spans, "kv.set").attributes["bucket"], "traced");
    let attempt = one(&spans, "job exec");
    assert_eq!(attempt.parent, one(&spans, "jobs.spawn").id);
    assert_eq!(attempt.attributes["id"], job);
    assert_eq!(attempt.attributes["handler"], "jobber");
    let exec = one(&spans, "exec");
    assert_eq!(exec.parent, attempt.id);
    assert_eq!(exec.attributes["program"], "echo");

    // Every log line of the request and of the job carries the trace id.
    let log = server.wait_log("job attempt succeeded");
    let line = |needle: &str, id: &str| {
        log.lines()
            .find(|l| l.contains(needle) && l.contains(id))
            .unwrap_or_else(|| panic!("no `{needle}` line naming {id}:\n{log}"))
    };
    let traced = format!("trace_id={TRACE}");
    assert!(line("served", &request_id).contains(&traced), "{log}");
    assert!(
        line("job attempt succeeded", &job).contains(&traced),
        "{log}"
    );
    assert!(
        !log.contains("otel."),
        "otel.* fields stay out of the log:\n{log}"
    );

    // A garbage traceparent is ignored: a new trace, whose id the guest sees.
    let (_, guest_saw, _) = traced_request(&server, Some("00-not-a-trace-01"));
    let guest_saw = guest_saw.expect("a traceparent for the guest");
    let parts: Vec<&str> = guest_saw.split('-').collect();
    assert_eq!(parts.len(), 4, "{guest_saw}");
    assert_ne!(parts[1], TRACE);
    let spans = wait_spans(&receiver, parts[1], &["POST /jobber"]);
    let request = one(&spans, "POST /jobber");
    assert_eq!(request.parent, "", "a root span: {request:?}");
    assert_eq!(request.id, parts[2]);
}

#[test]
fn a_request_and_its_job_are_one_trace_over_otlp_grpc() {
    request_and_job_are_one_trace(grpc_receiver());
}

#[test]
fn a_request_and_its_job_are_one_trace_over_otlp_http_protobuf() {
    request_and_job_are_one_trace(http_receiver());
}

#[test]
fn without_a_collector_there_is_no_trace_and_the_guest_sees_the_callers_header() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_jobber(dir.path(), None);
    let caller = format!("00-{TRACE}-{CALLER_SPAN}-01");
    let (job, guest_saw, _) = traced_request(&server, Some(&caller));
    wait_succeeded(&server, &job);
    assert_eq!(guest_saw.as_deref(), Some(caller.as_str()));
    let (_, guest_saw, _) = traced_request(&server, None);
    assert_eq!(guest_saw, None);
    let log = server.terminate();
    assert!(log.contains("served"), "{log}");
    assert!(log.contains("job attempt succeeded"), "{log}");
    assert!(!log.contains("trace_id"), "{log}");
    assert!(!log.contains("otel."), "{log}");
}

#[test]
fn a_collector_that_is_down_costs_requests_and_jobs_nothing() {
    // A port that was free a moment ago: nothing answers there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for url in [
        format!("http://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}/v1/traces"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let server = serve_jobber(dir.path(), Some(&url));
        for _ in 0..3 {
            let (job, guest_saw, _) = traced_request(&server, None);
            wait_succeeded(&server, &job);
            assert!(guest_saw.is_some_and(|tp| tp.starts_with("00-")));
        }
        let log = server.terminate();
        assert!(log.contains("served"), "{url}: {log}");
    }
}

#[test]
fn a_collector_url_that_is_not_one_stops_startup_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[telemetry]\notlp_endpoint = \"grpc://collector:4317\"\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let err = serve_manifest_fails(dir.path(), "bad.toml");
    assert!(err.contains("telemetry.otlp_endpoint"), "{err}");
    assert!(err.contains("grpc://collector:4317"), "{err}");
}
