//! The access log: one `served` line per request, at `info` under the
//! target `baton::server::dispatch`.
//!
//! It is the one line every request writes, so in the common setup (text
//! lines, no colours, no traces) it skips the fmt layer: the line is put
//! together here, byte for byte as the fmt layer writes it, and handed
//! straight to the [`writer`](super::writer). That keeps the default level's
//! cost per request to about what `warn` costs. With JSON lines, colours or
//! traces (where the event becomes a span event), it is an ordinary
//! `tracing` event. `BATON_LOG` filters it either way.

use super::writer::LogWriter;
use arc_swap::ArcSwapOption;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tracing::Span;

/// The writer direct lines go to; `None` = every line through `tracing`.
static DIRECT: ArcSwapOption<LogWriter> = ArcSwapOption::const_empty();

/// Sends access lines straight to `writer` (`Some`), or through `tracing`.
/// [`init`](super::init) sets it when lines are plain text without traces.
pub fn write_directly(writer: Option<LogWriter>) {
    DIRECT.store(writer.map(Arc::new));
}

/// One request's access line.
pub struct Served<'a> {
    /// The request id (also the `id` of the `request` span).
    pub id: &'a str,
    /// The method, as on the `request` span.
    pub method: &'a str,
    /// The path, as on the `request` span.
    pub path: &'a str,
    /// The reply's status.
    pub status: u16,
    /// How long the request took.
    pub took: Duration,
}

/// Logs `served` for the request of `span` (the `request` span, whose
/// fields are `id`, `method` and `path` from `line`; disabled when the
/// request logs through a [request scope](super::scope)).
pub fn served(span: &Span, line: &Served<'_>) {
    let enabled = || tracing::enabled!(target: "baton::server::dispatch", tracing::Level::INFO);
    match &*DIRECT.load() {
        // A span-scoped directive (`BATON_LOG=warn,[request]=info`) can only
        // enable more inside the span, so the span is entered only when the
        // line is off outside it.
        Some(writer) if enabled() || span.in_scope(enabled) => LINE.with_borrow_mut(|buf| {
            buf.clear();
            text_line(buf, SystemTime::now(), line);
            writer.append(buf.as_bytes());
        }),
        Some(_) => {}
        None => span.in_scope(|| {
            tracing::info!(
                target: "baton::server::dispatch",
                status = line.status,
                micros = line.took.as_micros() as u64,
                "served"
            )
        }),
    }
}

thread_local! {
    /// The line being put together on this thread.
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(256));
}

/// The line the fmt layer writes for the `served` event (full format, no
/// colours): `TIME  INFO request{id=… method=… path=…}: baton::server::dispatch: served status=… micros=…`.
fn text_line(buf: &mut String, now: SystemTime, line: &Served<'_>) {
    push_time(buf, now);
    buf.push_str("  INFO request{id=");
    // The id is a uuid the host made and the method an HTTP token: neither
    // has a character to escape.
    buf.push_str(line.id);
    buf.push_str(" method=");
    buf.push_str(line.method);
    buf.push_str(" path=");
    push_plain(buf, line.path);
    buf.push_str("}: baton::server::dispatch: served status=");
    buf.push_str(itoa::Buffer::new().format(line.status));
    buf.push_str(" micros=");
    buf.push_str(itoa::Buffer::new().format(line.took.as_micros() as u64));
    buf.push('\n');
}

/// Pushes `now` as the fmt layer writes it (RFC 3339 in microseconds, UTC).
/// The date and time up to the second are formatted once a second.
fn push_time(buf: &mut String, now: SystemTime) {
    thread_local! {
        /// The last second formatted, and its `YYYY-MM-DDTHH:MM:SS`.
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since_epoch.as_secs();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != secs {
            text.clear();
            let _ = write!(text, "{}", humantime::format_rfc3339_seconds(now));
            text.truncate(19);
            *second = secs;
        }
        buf.push_str(text);
    });
    let micros = since_epoch.subsec_micros();
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(micros);
    buf.push('.');
    buf.extend(std::iter::repeat_n('0', 6 - digits.len()));
    buf.push_str(digits);
    buf.push('Z');
}

/// Pushes `s` as the fmt layer writes a displayed value, but with control
/// characters escaped (the fmt layer leaves a span field's newline as it
/// is), so that a line cannot be split or forged. A path hyper accepted
/// has none.
pub(super) fn push_plain(buf: &mut String, s: &str) {
    // Printable ASCII (every valid path) is pushed as it is; anything else
    // is looked at character by character.
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        buf.push_str(s);
        return;
    }
    for c in s.chars() {
        if c.is_control() {
            buf.extend(c.escape_default());
        } else {
            buf.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::TestLog;
    use crate::telemetry::scope::RequestLog;
    use axum::http::Method;

    /// The line the fmt layer writes for the same request in its
    /// `request` span, time stamp cut.
    fn through_fmt_layer(line: &Served<'_>) -> String {
        let _switches = crate::telemetry::switches_lock();
        let log = TestLog::text("info");
        log.run(|| {
            let method = Method::from_bytes(line.method.as_bytes()).unwrap();
            RequestLog::open(line.id, &method, line.path).served(line.status, line.took);
        });
        without_time(&log.finish()).to_string()
    }

    fn without_time(line: &str) -> &str {
        let (time, rest) = line.split_once(' ').unwrap();
        assert!(time.ends_with('Z') && time.len() == 27, "{line}");
        rest
    }

    fn direct(line: &Served<'_>) -> String {
        let mut buf = String::new();
        text_line(&mut buf, SystemTime::now(), line);
        without_time(&buf).to_string()
    }

    #[test]
    fn the_direct_line_is_the_fmt_layers_line_byte_for_byte() {
        for line in [
            Served {
                id: "99e788af-c23d-4a18-8882-fa8c87a3ef6e",
                method: "GET",
                path: "/health",
                status: 200,
                took: Duration::from_micros(547),
            },
            Served {
                id: "r",
                method: "DELETE",
                path: "/orchestrator/v1/jobs/7?x=%20y",
                status: 404,
                took: Duration::from_secs(12),
            },
        ] {
            assert_eq!(direct(&line), through_fmt_layer(&line));
        }
    }

    #[test]
    fn control_characters_in_a_path_are_escaped_so_the_line_stays_one_line() {
        let line = Served {
            id: "r",
            method: "GET",
            path: "/a\nforged line\x1b[31m",
            status: 500,
            took: Duration::ZERO,
        };
        let text = direct(&line);
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.contains(r"path=/a\nforged line\u{1b}[31m}"), "{text}");
    }

    #[test]
    fn the_direct_line_follows_the_filter_span_scoped_directives_included() {
        let _switches = crate::telemetry::switches_lock();
        for (filter, written) in [
            ("info", true),
            ("warn,[request]=info", true),
            ("info,baton::server::dispatch=warn", false),
        ] {
            let log = TestLog::text(filter);
            write_directly(Some(log.writer()));
            log.run(|| {
                RequestLog::open("r1", &Method::GET, "/x").served(200, Duration::ZERO);
            });
            write_directly(None);
            let text = log.finish();
            assert_eq!(
                text.contains("served status=200"),
                written,
                "{filter}: {text:?}"
            );
        }
    }

    #[test]
    fn the_time_stamp_is_the_fmt_layers_rfc_3339_in_microseconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_659_630_538_120);
        let mut buf = String::new();
        let line = Served {
            id: "r",
            method: "GET",
            path: "/",
            status: 200,
            took: Duration::ZERO,
        };
        text_line(&mut buf, t, &line);
        assert!(
            buf.starts_with("2026-12-07T16:07:10.538120Z  INFO "),
            "{buf}"
        );
        // Leading zeros, and the next second (the cached part changes).
        for micros in [
            1_796_659_630_000_007,
            1_796_659_631_000_000,
            1_796_659_631_999_999,
            1_796_659_630_100_000,
        ] {
            let t = SystemTime::UNIX_EPOCH + Duration::from_micros(micros);
            buf.clear();
            text_line(&mut buf, t, &line);
            let want = humantime::format_rfc3339_micros(t).to_string();
            assert_eq!(&buf[..27], want);
        }
    }
}
