//! Log lines without the `otel.*` fields: those name and classify spans for
//! the trace layer (`otel.name`, `otel.kind`) and would otherwise repeat in
//! every line of a request.

use std::fmt;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::Writer;

/// Formats fields as the default text format does (`name=value`, the
/// message bare, space-separated), leaving out `otel.*`.
#[derive(Debug, Default, Clone, Copy)]
pub struct WithoutOtelFields;

impl<'writer> FormatFields<'writer> for WithoutOtelFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut v = Visitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut added = String::new();
        self.format_fields(Writer::new(&mut added), fields)?;
        if !added.is_empty() {
            if !current.fields.is_empty() {
                current.fields.push(' ');
            }
            current.fields.push_str(&added);
        }
        Ok(())
    }
}

struct Visitor<'w> {
    writer: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        if self.result.is_err() || name.starts_with("otel.") || name.starts_with("log.") {
            return;
        }
        let sep = if self.first { "" } else { " " };
        self.first = false;
        self.result = if name == "message" {
            write!(self.writer, "{sep}{value:?}")
        } else {
            write!(
                self.writer,
                "{sep}{}={value:?}",
                name.trim_start_matches("r#")
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    #[test]
    fn otel_fields_are_left_out_and_the_rest_written_as_the_default_format_does() {
        let sink = crate::telemetry::TestSink::default();
        let out = sink.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .fmt_fields(WithoutOtelFields)
            .with_writer(move || sink.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                id = "r1",
                otel.kind = tracing::field::Empty,
                trace_id = tracing::field::Empty
            );
            span.record("otel.kind", "server");
            span.record("trace_id", "abc");
            let _e = span.enter();
            tracing::info!(status = 200, otel.name = "x", "served");
        });
        let text = out.text();
        assert!(
            text.contains(r#"request{id="r1" trace_id="abc"}: "#),
            "{text}"
        );
        assert!(text.contains("served status=200"), "{text}");
        assert!(!text.contains("otel"), "{text}");
    }
}
