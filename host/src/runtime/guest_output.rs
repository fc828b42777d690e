//! A guest's stdout/stderr, forwarded line by line to `tracing` with the
//! handler name and request id.

use bytes::Bytes;
use std::sync::{Arc, Mutex};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Bytes one request may log before the rest is dropped.
const MAX_BYTES_PER_REQUEST: usize = 64 * 1024;
/// Longest line logged; longer ones are cut.
const MAX_LINE: usize = 4096;

/// Which of the guest's streams this is.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr (panic messages land here).
    Stderr,
}

/// A guest output stream tagged with who wrote it.
#[derive(Clone)]
pub struct GuestOutput {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    stream: Stream,
    handler: Arc<str>,
    request_id: Arc<str>,
    line: Vec<u8>,
    written: usize,
    dropped: bool,
}

impl GuestOutput {
    /// A stream for `handler` during request (or job) `request_id`.
    pub fn new(stream: Stream, handler: Arc<str>, request_id: Arc<str>) -> Self {
        GuestOutput {
            inner: Arc::new(Mutex::new(Inner {
                stream,
                handler,
                request_id,
                line: Vec::new(),
                written: 0,
                dropped: false,
            })),
        }
    }
}

impl GuestOutput {
    /// Starts a new request on this stream (a warm instance's next request):
    /// the pending partial line is logged, then lines carry `request_id` and
    /// the per-request byte budget starts again.
    pub fn begin(&self, request_id: Arc<str>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.emit();
        inner.request_id = request_id;
        inner.written = 0;
        inner.dropped = false;
    }
}

impl Inner {
    fn emit(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.line[..self.line.len().min(MAX_LINE)]);
        let text = text.trim_end_matches('\r');
        match self.stream {
            Stream::Stdout => tracing::info!(
                target: "baton::guest",
                handler = %self.handler, request_id = %self.request_id, stream = "stdout", "{text}"
            ),
            Stream::Stderr => tracing::warn!(
                target: "baton::guest",
                handler = %self.handler, request_id = %self.request_id, stream = "stderr", "{text}"
            ),
        }
        self.line.clear();
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.written >= MAX_BYTES_PER_REQUEST {
            if !self.dropped {
                self.dropped = true;
                tracing::warn!(
                    target: "baton::guest",
                    handler = %self.handler, request_id = %self.request_id,
                    "guest output beyond {MAX_BYTES_PER_REQUEST} bytes dropped"
                );
            }
            return;
        }
        self.written += bytes.len();
        for &b in bytes {
            if b == b'\n' {
                self.emit();
            } else if self.line.len() < MAX_LINE + 1 {
                self.line.push(b);
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.emit();
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        // Always ready: output beyond the cap is dropped, never a trap.
        Ok(MAX_LINE)
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}
