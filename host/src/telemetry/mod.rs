//! What the server tells an operator besides metrics: log lines and traces,
//! through one `tracing` subscriber.
//!
//! Logs: `BATON_LOG` filters (default `info`), `BATON_LOG_FORMAT` picks text
//! or JSON, and every line goes to stderr through [`writer`]: a logger only
//! appends its line to a buffer, and one thread writes it out (at once on a
//! quiet server; under load, the lines of up to 50 ms in one write), so no
//! request waits on a write or wakes a thread. No line is dropped. In the
//! common setup (plain text, no traces) the access log's line skips the fmt
//! layer ([`access`]) and a request is named in its lines without a span
//! ([`scope`]).
//!
//! Traces ([`traces`]): with `[telemetry] otlp_endpoint`, an OpenTelemetry
//! layer beside the log layer exports Baton's spans (requests, job attempts,
//! and the host calls that reach storage or `exec`) over OTLP. Without it
//! the subscriber is exactly the log layer, so traces cost nothing.

pub mod access;
mod fields;
pub mod scope;
pub mod traces;
pub mod writer;

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
    log_writer: Option<writer::WriterGuard>,
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

/// The subscriber of a process without traces: the fmt layer in `format`
/// writing through `writer`, filtered globally by `filter` (the cheapest
/// subscriber tracing-subscriber builds). Public for the logging bench.
pub fn log_dispatch(
    filter: tracing_subscriber::EnvFilter,
    format: LogFormat,
    ansi: bool,
    writer: writer::LogWriter,
) -> tracing::Dispatch {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder
            .with_ansi(ansi)
            .event_format(scope::ScopedText::default())
            .finish()
            .into(),
        LogFormat::Json => builder.json().with_current_span(true).finish().into(),
    }
}

/// Installs the process's subscriber: the log layer, and the trace layer
/// when `telemetry` names a collector. With a gRPC collector, call it with
/// the Tokio runtime entered (see [`traces::provider`]) and drop the guard
/// before the runtime.
pub fn init(telemetry: Option<&TelemetryConfig>) -> anyhow::Result<TelemetryGuard> {
    use std::io::IsTerminal;
    let format = LogFormat::from_env(std::env::var("BATON_LOG_FORMAT").ok().as_deref())?;
    let directives = std::env::var("BATON_LOG").unwrap_or_default();
    let filter = tracing_subscriber::EnvFilter::try_from_env("BATON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, log_writer) = writer::start(
        Box::new(std::io::stderr()),
        writer::WriterLimits::default(),
        true,
    )?;
    let provider = match telemetry {
        Some(t) => traces::provider(t)?,
        None => None,
    };
    let ansi = std::io::stderr().is_terminal();
    match &provider {
        // No traces: the log layer alone, filtered globally (the cheapest
        // subscriber tracing-subscriber builds).
        None => {
            if format == LogFormat::Text && !ansi {
                access::write_directly(Some(writer.clone()));
                scope::use_scopes(!scope::has_span_directive(&directives));
            }
            let _ = log_dispatch(filter, format, ansi, writer).try_init();
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

/// A `Write` the telemetry tests read back: the bytes written and how many
/// writes carried them.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct TestSink(std::sync::Arc<std::sync::Mutex<(Vec<u8>, usize)>>);

#[cfg(test)]
impl TestSink {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().0.clone()).unwrap()
    }

    /// How many writes there were.
    pub(crate) fn writes(&self) -> usize {
        self.0.lock().unwrap().1
    }
}

#[cfg(test)]
impl std::io::Write for TestSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let mut s = self.0.lock().unwrap();
        s.0.extend_from_slice(b);
        s.1 += 1;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A plain-text subscriber as `baton serve` builds it, writing through a
/// log writer into a [`TestSink`] that a test reads back.
#[cfg(test)]
pub(crate) struct TestLog {
    sink: TestSink,
    writer: writer::LogWriter,
    guard: writer::WriterGuard,
    dispatch: tracing::Dispatch,
}

#[cfg(test)]
impl TestLog {
    /// Lines under `filter` (a `BATON_LOG` value).
    pub(crate) fn text(filter: &str) -> TestLog {
        let sink = TestSink::default();
        let (writer, guard) = writer::start(
            Box::new(sink.clone()),
            writer::WriterLimits::default(),
            false,
        )
        .unwrap();
        let dispatch = log_dispatch(
            tracing_subscriber::EnvFilter::new(filter),
            LogFormat::Text,
            false,
            writer.clone(),
        );
        TestLog {
            sink,
            writer,
            guard,
            dispatch,
        }
    }

    /// The writer the lines go through (for [`access::write_directly`]).
    pub(crate) fn writer(&self) -> writer::LogWriter {
        self.writer.clone()
    }

    /// Runs `f` with this subscriber as the thread's.
    pub(crate) fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        tracing::dispatcher::with_default(&self.dispatch, f)
    }

    /// Everything logged, once the writer has written it all.
    pub(crate) fn finish(self) -> String {
        drop(self.dispatch);
        drop(self.guard);
        self.sink.text()
    }
}

/// Held by the tests that turn the process-wide logging switches
/// ([`access::write_directly`], [`scope::use_scopes`]), one at a time.
#[cfg(test)]
pub(crate) fn switches_lock() -> std::sync::MutexGuard<'static, ()> {
    static SWITCHES: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SWITCHES.lock().unwrap_or_else(|e| e.into_inner())
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
