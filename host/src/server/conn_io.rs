//! The TCP side of one connection as hyper sees it: an idle timeout (a
//! connection silent for too long with no request in flight is closed), and
//! a lingering close (when hyper is done, the socket is handed back, its
//! write side shut, and what the client still sends is read and discarded
//! for a bounded time). Without the lingering close, closing a socket
//! with unread bytes makes the kernel send a reset, and an HTTP/1.1 client
//! still uploading a refused body loses the 413 it was sent.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

/// Longest one read of a lingering close waits for more bytes.
const LINGER_READ: Duration = Duration::from_secs(2);
/// Longest a lingering close lasts in all.
const LINGER_MAX: Duration = Duration::from_secs(10);

/// Requests of one connection being served (the idle timeout waits while
/// any is).
#[derive(Debug, Default)]
pub struct InFlight(AtomicUsize);

impl InFlight {
    /// Counts a request until the returned guard is dropped.
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        InFlightGuard(self.clone())
    }

    fn busy(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
    }
}

/// See [`InFlight::enter`].
pub struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A TCP stream with an idle timeout, handed back when dropped.
pub struct ConnIo {
    tcp: Option<TcpStream>,
    back: Option<oneshot::Sender<TcpStream>>,
    in_flight: Arc<InFlight>,
    idle: Duration,
    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
}

impl ConnIo {
    /// Wraps `tcp`; the receiver gets it back when hyper drops the wrapper.
    pub fn new(
        tcp: TcpStream,
        idle: Duration,
        in_flight: Arc<InFlight>,
    ) -> (ConnIo, oneshot::Receiver<TcpStream>) {
        let (back, rx) = oneshot::channel();
        let io = ConnIo {
            tcp: Some(tcp),
            back: Some(back),
            in_flight,
            idle,
            last_activity: Instant::now(),
            timer: Box::pin(tokio::time::sleep(idle)),
        };
        (io, rx)
    }

    fn tcp(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.tcp.as_mut().expect("present until dropped"))
    }

    /// `Ready(Err)` once the connection has been idle for too long; arms
    /// the timer on `cx` otherwise.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            if !self.in_flight.busy() && now >= self.last_activity + self.idle {
                return Poll::Ready(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the connection was idle too long",
                ));
            }
            let from = if self.in_flight.busy() {
                now
            } else {
                self.last_activity
            };
            self.timer.as_mut().reset(from + self.idle);
        }
        Poll::Pending
    }
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if let (Some(tcp), Some(back)) = (self.tcp.take(), self.back.take()) {
            let _ = back.send(tcp);
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        match me.tcp().poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    me.last_activity = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => me.poll_idle(cx).map(Err),
        }
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        let r = me.tcp().poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            me.last_activity = Instant::now();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let me = self.get_mut();
        let r = me.tcp().poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            me.last_activity = Instant::now();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.as_ref().is_some_and(|t| t.is_write_vectored())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().tcp().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().tcp().poll_shutdown(cx)
    }
}

/// The lingering close of a socket hyper is done with: shut the write
/// side (so the client sees the end of the reply), then read and discard
/// until the client closes, stays silent for [`LINGER_READ`], or
/// [`LINGER_MAX`] has passed.
pub async fn linger(mut tcp: TcpStream) {
    let _ = tcp.shutdown().await;
    let end = Instant::now() + LINGER_MAX;
    let mut buf = vec![0u8; 16 * 1024];
    while Instant::now() < end {
        match tokio::time::timeout(LINGER_READ, tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => continue,
            _ => break,
        }
    }
}
