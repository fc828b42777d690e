//! Keeps a request's body alive until its response has been sent.
//!
//! An admin route may answer without reading the body (401 before any
//! byte is read, 413 on the declared length). If the body were dropped
//! with the handler, HTTP/2 would reset the stream with CANCEL before the
//! response went out, and clients (curl: exit 92) report a failure instead
//! of the reply. Held until the response body has ended, its drop comes
//! after the response's END_STREAM, so the stream is reset with NO_ERROR,
//! which RFC 9113 §8.1 allows after a complete response; on HTTP/1.1 the
//! connection's lingering close lets the client read the reply.
//!
//! Once the response has ended, what is left of the request body is read
//! and discarded (at most [`DRAIN_MAX_BYTES`], for at most [`DRAIN_MAX`]):
//! clients that fail an upload the server stops reading even after a
//! complete reply (curl before 8.x reports exit 92) finish a moderate
//! upload and succeed; a larger one is then reset with NO_ERROR.

use axum::body::{Body, Bytes, HttpBody};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// Most bytes of an unread request body discarded after the response.
const DRAIN_MAX_BYTES: usize = 8 << 20;
/// Longest the discarding lasts.
const DRAIN_MAX: Duration = Duration::from_secs(5);

/// The request body, shared by the request and (through
/// [`release_after`]) the response.
type Held = Arc<Mutex<Body>>;

/// The request with its body replaced by a shared handle to it.
pub fn hold(req: axum::extract::Request) -> (axum::extract::Request, Held) {
    let (parts, body) = req.into_parts();
    let held: Held = Arc::new(Mutex::new(body));
    let shared = Body::new(Shared(held.clone()));
    (axum::extract::Request::from_parts(parts, shared), held)
}

/// `resp`, whose body keeps `held` until it is dropped (after it ended).
pub fn release_after(resp: axum::response::Response, held: Held) -> axum::response::Response {
    resp.map(|body| {
        Body::new(Holding {
            body,
            request: held,
        })
    })
}

/// A handle to the shared request body.
struct Shared(Held);

impl HttpBody for Shared {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let mut body = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Pin::new(&mut *body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).size_hint()
    }
}

/// A response body that holds the request body until it is dropped.
struct Holding {
    body: Body,
    request: Held,
}

impl Drop for Holding {
    fn drop(&mut self) {
        let request = Shared(self.request.clone());
        if request.is_end_stream() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            use http_body_util::BodyExt;
            let mut request = request;
            let mut read = 0;
            let drain = async {
                while read < DRAIN_MAX_BYTES {
                    match request.frame().await {
                        Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
                        _ => break,
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_MAX, drain).await;
        });
    }
}

impl HttpBody for Holding {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
