//! What a request's log lines say about it: `request{id=… method=…
//! path=…}:` before every line written while it is served, and its access
//! line when it is done.
//!
//! `tracing` gives that prefix with a `request` span, which costs about
//! 4 µs a request on the 2-core machine (the registry's slot, the span's
//! formatted fields, an enter and an exit on every poll): a third of what
//! the default log level costs beside `warn`. In the common setup (text
//! lines, no colours, no traces, no span-scoped directive such as
//! `[request]=debug` in `BATON_LOG`) there is no span: the request's fields
//! are the thread's *request scope* while its future is polled, and
//! [`ScopedText`] writes the same prefix before the lines written in it,
//! byte for byte what the span gives. Anywhere else the span stays: JSON
//! lines carry its fields, traces export it, span-scoped directives match
//! it.

use super::access;
use axum::http::Method;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tracing::instrument::{Instrument as _, Instrumented};
use tracing::{Event, Span, Subscriber};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{Format, FormatEvent, FormatFields, Writer};
use tracing_subscriber::registry::LookupSpan;

/// Whether requests log through a request scope instead of a span.
static SCOPES: AtomicBool = AtomicBool::new(false);

/// Makes requests log through a request scope (`true`) or a `request` span.
/// [`init`](super::init) turns scopes on for plain text without traces or
/// span-scoped directives; the formatter must then be [`ScopedText`].
pub fn use_scopes(on: bool) {
    SCOPES.store(on, Ordering::Relaxed);
}

/// Whether `filter` (a `BATON_LOG` value) has a span-scoped directive, which
/// only a span can satisfy.
pub fn has_span_directive(filter: &str) -> bool {
    filter.contains('[')
}

thread_local! {
    /// The request whose future this thread is polling, in scope mode.
    static CURRENT: Cell<Option<Arc<RequestFields>>> = const { Cell::new(None) };
}

/// What identifies a request in the log.
#[derive(Debug)]
pub struct RequestFields {
    id: String,
    method: Method,
    path: String,
}

impl RequestFields {
    /// `request{id=… method=… path=…}:`, as the fmt layer writes the
    /// `request` span (control characters in the path escaped).
    fn push_prefix(&self, buf: &mut String) {
        buf.push_str("request{id=");
        buf.push_str(&self.id);
        buf.push_str(" method=");
        buf.push_str(self.method.as_str());
        buf.push_str(" path=");
        access::push_plain(buf, &self.path);
        buf.push_str("}:");
    }
}

/// One request's logging: its `request` span (disabled in scope mode) and
/// its fields (`None` when the level logs nothing about requests).
pub struct RequestLog {
    span: Span,
    fields: Option<Arc<RequestFields>>,
}

impl RequestLog {
    /// Starts logging the request `id`.
    pub fn open(id: &str, method: &Method, path: &str) -> RequestLog {
        let fields = || {
            Arc::new(RequestFields {
                id: id.to_owned(),
                method: method.clone(),
                path: path.to_owned(),
            })
        };
        if SCOPES.load(Ordering::Relaxed) {
            // Without span-scoped directives the span would be enabled
            // exactly when this is.
            let on = tracing::enabled!(target: "baton::server::dispatch", tracing::Level::INFO);
            return RequestLog {
                span: Span::none(),
                fields: on.then(fields),
            };
        }
        // A root span: nothing encloses a request (a collector's parent
        // comes from `traceparent`), and a root skips the look-up of the
        // current span.
        let span = tracing::info_span!(
            target: "baton::server::dispatch",
            parent: None,
            "request",
            id = %id,
            method = %method,
            path = %path,
            trace_id = tracing::field::Empty,
            otel.name = tracing::field::Empty,
            otel.kind = tracing::field::Empty,
        );
        RequestLog {
            fields: (!span.is_disabled()).then(fields),
            span,
        }
    }

    /// The `request` span (disabled in scope mode), for traces.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// `fut`, run in the request's span or scope.
    pub fn within<F: Future>(&self, fut: F) -> InRequest<Instrumented<F>> {
        InRequest {
            inner: fut.instrument(self.span.clone()),
            // Fields without a span are a request scope's (with a span,
            // fields exist only while it is enabled).
            scope: if self.span.is_disabled() {
                self.fields.clone()
            } else {
                None
            },
        }
    }

    /// Writes the request's access line, when the level logs it.
    pub fn served(&self, status: u16, took: Duration) {
        let Some(fields) = &self.fields else {
            return;
        };
        access::served(
            &self.span,
            &access::Served {
                id: &fields.id,
                method: fields.method.as_str(),
                path: &fields.path,
                status,
                took,
            },
        );
    }
}

pin_project_lite::pin_project! {
    /// A request's future, polled in its request scope (if any).
    pub struct InRequest<F> {
        #[pin]
        inner: F,
        scope: Option<Arc<RequestFields>>,
    }
}

impl<F: Future> Future for InRequest<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let Some(scope) = this.scope else {
            return this.inner.poll(cx);
        };
        /// Puts the thread's previous scope back, even on a panic.
        struct Restore(Option<Arc<RequestFields>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.set(self.0.take());
            }
        }
        let _restore = Restore(CURRENT.replace(Some(scope.clone())));
        this.inner.poll(cx)
    }
}

/// The text formatter of scope mode: the fmt layer's default format, with
/// the request scope's prefix where the `request` span's would be.
#[derive(Default)]
pub struct ScopedText(Format);

impl<S, N> FormatEvent<S, N> for ScopedText
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let Some(scope) = CURRENT.take() else {
            return self.0.format_event(ctx, writer, event);
        };
        thread_local! {
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        let written = LINE.with(|line| {
            let mut fresh = String::new();
            let mut held = line.try_borrow_mut();
            let line = held.as_deref_mut().unwrap_or(&mut fresh);
            line.clear();
            self.0.format_event(ctx, Writer::new(line), event)?;
            // `TIME LEVEL ` (the level padded to five), then the event's
            // spans, if any, each ending in `:`, then a space.
            let spans = ctx.event_scope().is_some();
            let mut prefix = String::with_capacity(128);
            scope.push_prefix(&mut prefix);
            if !spans {
                prefix.push(' ');
            }
            if let Some(at) = line.find(' ').map(|t| t + 7)
                && line.as_bytes().get(at - 1) == Some(&b' ')
                && line.is_char_boundary(at)
            {
                line.insert_str(at, &prefix);
            }
            writer.write_str(line)
        });
        CURRENT.set(Some(scope));
        written
    }
}

/// The request scope's prefix on this thread, if it has one (for tests).
#[cfg(test)]
fn current_prefix() -> Option<String> {
    let scope = CURRENT.take()?;
    let mut s = String::new();
    scope.push_prefix(&mut s);
    CURRENT.set(Some(scope));
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::TestLog;

    /// Serves a pretend request logging through a span or a scope under
    /// `filter`: its lines, time stamps cut.
    fn lines(scoped: bool, filter: &str) -> Vec<String> {
        let _switches = crate::telemetry::switches_lock();
        let test_log = TestLog::text(filter);
        access::write_directly(Some(test_log.writer()));
        use_scopes(scoped);
        test_log.run(|| {
            let log = RequestLog::open("r-1", &Method::POST, "/orchestrator/v1/jobs");
            let fut = log.within(async {
                tracing::warn!(target: "baton::server::dispatch", "outside any other span");
                async { tracing::info!(handler = "orch", "a line in a nested span") }
                    .instrument(tracing::info_span!("store.commit", writes = 2))
                    .await;
                async { tracing::error!("in a span with no fields") }
                    .instrument(tracing::info_span!("kv.scan"))
                    .await;
            });
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(fut);
            log.served(201, Duration::from_micros(88));
            tracing::info!("after the request");
        });
        use_scopes(false);
        access::write_directly(None);
        test_log
            .finish()
            .lines()
            .map(|l| l.split_once(' ').unwrap().1.to_string())
            .collect()
    }

    #[test]
    fn lines_in_a_request_scope_are_the_spans_lines_byte_for_byte() {
        for filter in ["info", "debug", "warn", "info,baton::server::dispatch=warn"] {
            let spanned = lines(false, filter);
            assert_eq!(lines(true, filter), spanned, "{filter}");
            if filter == "info" {
                assert_eq!(
                    spanned,
                    [
                        " WARN request{id=r-1 method=POST path=/orchestrator/v1/jobs}: baton::server::dispatch: outside any other span",
                        " INFO request{id=r-1 method=POST path=/orchestrator/v1/jobs}:store.commit{writes=2}: baton::telemetry::scope::tests: a line in a nested span handler=\"orch\"",
                        "ERROR request{id=r-1 method=POST path=/orchestrator/v1/jobs}:kv.scan: baton::telemetry::scope::tests: in a span with no fields",
                        " INFO request{id=r-1 method=POST path=/orchestrator/v1/jobs}: baton::server::dispatch: served status=201 micros=88",
                        " INFO baton::telemetry::scope::tests: after the request",
                    ]
                );
            }
        }
        // At `warn` the request is not named, as with its span.
        assert_eq!(
            lines(true, "warn")[0],
            " WARN baton::server::dispatch: outside any other span"
        );
    }

    #[test]
    fn the_scope_is_the_threads_only_while_the_request_is_polled() {
        let _switches = crate::telemetry::switches_lock();
        use_scopes(true);
        TestLog::text("info").run(|| {
            let log = RequestLog::open("r-2", &Method::GET, "/health");
            let mut fut = std::pin::pin!(log.within(async {
                let inside = current_prefix();
                let mut yielded = false;
                std::future::poll_fn(|_| {
                    if std::mem::replace(&mut yielded, true) {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
                (inside, current_prefix())
            }));
            let mut cx = Context::from_waker(std::task::Waker::noop());
            assert!(fut.as_mut().poll(&mut cx).is_pending());
            assert_eq!(current_prefix(), None, "between polls");
            let Poll::Ready((first, second)) = fut.as_mut().poll(&mut cx) else {
                panic!("the request did not finish")
            };
            let want = "request{id=r-2 method=GET path=/health}:";
            assert_eq!(first.as_deref(), Some(want));
            assert_eq!(second.as_deref(), Some(want));
        });
        use_scopes(false);
        assert_eq!(current_prefix(), None);
    }

    #[test]
    fn span_scoped_directives_keep_the_span() {
        assert!(has_span_directive("warn,[request]=info"));
        assert!(has_span_directive("baton[request{path=/health}]=debug"));
        assert!(!has_span_directive("info,baton::server=debug"));
    }
}
