//! What the server tells an operator besides metrics: log lines and traces,
//! through one `tracing` subscriber.
//!
//! Logs: `BATON_LOG` filters (default `info`), `BATON_LOG_FORMAT` picks text
//! or JSON, and every line goes to stderr through a writer thread
//! (tracing-appender), so that no request waits on the write. The writer
//! thread buffers what it takes off the queue and writes once the queue is
//! empty: under load one `write` carries many lines instead of one each.
//! The queue does not drop lines: when it is full (128k lines) loggers wait.
//!
//! Traces ([`traces`]): with `[telemetry] otlp_endpoint`, an OpenTelemetry
//! layer beside the log layer exports Baton's spans (requests, job attempts,
//! and the host calls that reach storage or `exec`) over OTLP. Without it
//! the subscriber is exactly the log layer, so traces cost nothing.

mod fields;
pub mod traces;

use crate::manifest::TelemetryConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How log lines are written: `BATON_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (the default).
    Text,
    /// One JSON object per line, with the event's fields and its spans'.
    Json,
}

impl LogFormat {
    /// Reads `BATON_LOG_FORMAT`'s value.
    pub fn from_env(value: Option<&str>) -> anyhow::Result<LogFormat> {
        match value.map(str::trim) {
            None | Some("" | "text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => {
                anyhow::bail!("BATON_LOG_FORMAT is `{other}`: expected `text` or `json`")
            }
        }
    }
}

/// Held for as long as the process logs: dropping it writes out the lines
/// still queued and exports the spans not yet sent.
pub struct TelemetryGuard {
    traces: Option<SdkTracerProvider>,
    log_writer: Option<tracing_appender::non_blocking::WorkerGuard>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.traces.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!("exporting the last spans failed: {e}");
        }
        // Last: the lines above are written too.
        drop(self.log_writer.take());
    }
}

/// Installs the process's subscriber: the log layer, and the trace layer
/// when `telemetry` names a collector. With a gRPC collector, call it with
/// the Tokio runtime entered (see [`traces::provider`]) and drop the guard
/// before the runtime.
pub fn init(telemetry: Option<&TelemetryConfig>) -> anyhow::Result<TelemetryGuard> {
    use std::io::IsTerminal;
    let format = LogFormat::from_env(std::env::var("BATON_LOG_FORMAT").ok().as_deref())?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, log_writer) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("baton-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let provider = match telemetry {
        Some(t) => traces::provider(t)?,
        None => None,
    };
    let ansi = std::io::stderr().is_terminal();
    match &provider {
        // No traces: the log layer alone, filtered globally (the cheapest
        // subscriber tracing-subscriber builds).
        None => {
            let builder = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(writer);
            let _ = match format {
                LogFormat::Text => builder.with_ansi(ansi).try_init(),
                LogFormat::Json => builder.json().with_current_span(true).try_init(),
            };
        }
        // Traces: each layer filtered on its own, so that the trace layer
        // sees Baton's debug-level host-call spans whatever `BATON_LOG` says.
        Some(provider) => {
            let logs = match format {
                LogFormat::Text => tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_ansi(ansi)
                    .fmt_fields(fields::WithoutOtelFields)
                    .boxed(),
                LogFormat::Json => tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .json()
                    .with_current_span(true)
                    .boxed(),
            };
            let spans = tracing_subscriber::filter::filter_fn(|meta| {
                if meta.is_span() {
                    meta.target().starts_with("baton")
                } else {
                    *meta.level() <= tracing::Level::WARN
                }
            });
            let _ = tracing_subscriber::registry()
                .with(logs.with_filter(filter))
                .with(traces::layer(provider).with_filter(spans))
                .try_init();
        }
    }
    Ok(TelemetryGuard {
        traces: provider,
        log_writer: Some(log_writer),
    })
}

#[cfg(test)]
mod tests {
    use super::LogFormat;

    #[test]
    fn log_formats_are_read_from_the_environment_value() {
        assert_eq!(LogFormat::from_env(None).unwrap(), LogFormat::Text);
        assert_eq!(LogFormat::from_env(Some("")).unwrap(), LogFormat::Text);
        assert_eq!(LogFormat::from_env(Some("json")).unwrap(), LogFormat::Json);
        assert!(LogFormat::from_env(Some("xml")).is_err());
    }
}
