//! OpenTelemetry traces: the OTLP exporter `[telemetry]` names, and the few
//! calls the request path and the job engine make on their spans (a parent
//! from W3C `traceparent`, the attributes a collector groups by, the
//! `traceparent` handed on to the guest and to jobs).
//!
//! Every call is a no-op unless [`enabled`]: without `otlp_endpoint` no
//! exporter, no OpenTelemetry layer and no trace ids exist.

use crate::manifest::{OtlpProtocol, TelemetryConfig};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Status, TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether traces are exported (the manifest named a collector).
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A collector that could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("setting up the OTLP exporter for {url}: {source}")]
pub struct ExporterError {
    url: String,
    #[source]
    source: opentelemetry_otlp::ExporterBuildError,
}

/// The exporter and tracer provider for `config`, or `None` when it names
/// no collector. gRPC needs a Tokio runtime entered on this thread (its
/// connection runs there); spans are exported in batches from the SDK's own
/// thread, so no request waits on the collector.
pub fn provider(config: &TelemetryConfig) -> Result<Option<SdkTracerProvider>, ExporterError> {
    let (Some(url), Some(protocol)) = (config.otlp_endpoint.as_deref(), config.protocol()) else {
        return Ok(None);
    };
    let built = match protocol {
        OtlpProtocol::Grpc => {
            let mut b = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(url);
            if url.starts_with("https://") {
                use opentelemetry_otlp::WithTonicConfig as _;
                b = b.with_tls_config(
                    opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new()
                        .with_native_roots(),
                );
            }
            b.build()
        }
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(config.http_traces_url().unwrap_or_default())
            .build(),
    };
    let exporter = built.map_err(|source| ExporterError {
        url: url.to_string(),
        source,
    })?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_resource(resource)
            .with_batch_exporter(exporter)
            .build(),
    ))
}

/// The `tracing` layer that turns Baton's spans into OpenTelemetry spans of
/// `provider`; from now on [`enabled`] is true.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S> + Send + Sync
where
    S: tracing::Subscriber + Send + Sync + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    ENABLED.store(true, Ordering::Relaxed);
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("baton"))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_level(true)
}

/// Headers, as the propagator reads them.
struct HeaderCarrier<'a>(&'a axum::http::HeaderMap);

impl Extractor for HeaderCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// One stored `traceparent`, as the propagator reads it.
struct TraceparentCarrier<'a>(&'a str);

impl Extractor for TraceparentCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == "traceparent").then_some(self.0)
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent"]
    }
}

/// Makes `span` (a request's) a server span, the child of the request's W3C
/// `traceparent` (and `tracestate`) when it has a valid one.
pub fn begin_request(span: &Span, headers: &axum::http::HeaderMap) {
    if !enabled() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&HeaderCarrier(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    span.record("otel.kind", "server");
}

/// Names a request's span `METHOD mount` (`METHOD` alone when no handler
/// is mounted there) and records its handler, then starts it: from here
/// its trace id is in its `trace_id` field, so every log line of the
/// request carries it.
pub fn route_request(span: &Span, method: &axum::http::Method, routed: Option<(&str, &str)>) {
    if !enabled() {
        return;
    }
    match routed {
        Some((handler, mount)) => {
            span.record("otel.name", format!("{method} {mount}"));
            span.set_attribute("http.route", mount.to_string());
            span.set_attribute("baton.handler", handler.to_string());
        }
        None => {
            span.record("otel.name", method.as_str());
        }
    }
    span.set_attribute("http.request.method", method.to_string());
    record_trace_id(span);
}

/// Records a request's reply: its status, and an error status for 5xx.
pub fn end_request(span: &Span, request_id: &str, status: u16) {
    if !enabled() {
        return;
    }
    span.set_attribute("baton.request_id", request_id.to_string());
    span.set_attribute("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.set_status(Status::error(format!("HTTP {status}")));
    }
}

/// Names `span` (an attempt of a job of `kind`) `job KIND`, makes it the
/// child of the `traceparent` stored with the job when it was spawned, and
/// records its trace id.
pub fn begin_job(span: &Span, kind: &str, traceparent: Option<&str>) {
    if !enabled() {
        return;
    }
    span.record("otel.name", format!("job {kind}"));
    if let Some(tp) = traceparent {
        let parent = TraceContextPropagator::new().extract(&TraceparentCarrier(tp));
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
    record_trace_id(span);
}

/// Marks `span` failed with `why`.
pub fn fail(span: &Span, why: &str) {
    if enabled() {
        span.set_status(Status::error(why.to_string()));
    }
}

fn record_trace_id(span: &Span) {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if sc.is_valid() {
        span.record("trace_id", tracing::field::display(sc.trace_id()));
    }
}

/// The W3C `traceparent` of `span` (`00-<trace id>-<span id>-<flags>`),
/// when traces are on and it has a valid context.
pub fn traceparent(span: &Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// The `traceparent` of the current span (where a job is spawned).
pub fn current_traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    traceparent(&Span::current())
}

/// The headers a guest is shown, with `traceparent` naming the request's
/// span (its own outbound calls become its children) when traces are on.
pub fn guest_trace_headers(span: &Span, headers: &mut Vec<(String, String)>) {
    let Some(tp) = traceparent(span) else {
        return;
    };
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case("traceparent"));
    headers.push(("traceparent".to_string(), tp));
}
