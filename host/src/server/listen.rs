//! The accept loop of one listener: TCP, an optional TLS handshake (off the
//! accept loop, with a deadline), then HTTP/1.1 or HTTP/2 by hyper, with the
//! connection's facts ([`ConnInfo`]) handed to every request.
//! Shutdown stops accepting and lets open requests finish. Each listener
//! bounds its open connections, the time to send a request head and the
//! time a connection may stay idle ([`ConnSettings`]); every connection
//! ends with a lingering close ([`conn_io`]).

use super::conn_io::{self, ConnIo, InFlight};
use super::{ListenerService, tls};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Longest a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest shutdown waits for open connections.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A listener's bounds on its connections (from its `[[listener]]`).
#[derive(Debug, Clone, Copy)]
pub struct ConnSettings {
    /// Longest a client may take to send a request head (HTTP/1.1).
    pub header_read_timeout: Duration,
    /// Longest a connection may stay silent with no request in flight.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: u32,
}

impl ConnSettings {
    /// The settings of `listener`.
    pub fn of(listener: &crate::manifest::Listener) -> Self {
        ConnSettings {
            header_read_timeout: Duration::from_millis(listener.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(listener.idle_timeout_ms),
            max_connections: listener.max_connections,
        }
    }
}

/// What the host knows about a request's connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub remote: SocketAddr,
    /// `remote` as text, formatted once per connection (handlers get it
    /// with every request).
    pub remote_text: String,
    /// The common name of the verified client certificate (mTLS listeners).
    pub peer_subject: Option<String>,
}

impl ConnInfo {
    /// The facts of a connection from `remote`.
    pub fn new(remote: SocketAddr, peer_subject: Option<String>) -> Self {
        ConnInfo {
            remote,
            remote_text: remote.to_string(),
            peer_subject,
        }
    }
}

/// Serves `service` on `listener` (with TLS when `tls` is set) until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    service: ListenerService,
    settings: ConnSettings,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    let slots = Arc::new(tokio::sync::Semaphore::new(
        settings.max_connections as usize,
    ));
    tokio::pin!(shutdown);
    loop {
        // At the connection limit, new clients wait in the kernel's queue.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, service, builder) = (acceptor.clone(), service.clone(), builder.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let in_flight = Arc::new(InFlight::default());
            let (tcp, handed_back) = ConnIo::new(tcp, settings.idle_timeout, in_flight.clone());
            let Some(acceptor) = acceptor else {
                let info = ConnInfo::new(remote, None);
                let conn = builder
                    .serve_connection(TokioIo::new(tcp), hyper_service(service, info, in_flight))
                    .into_owned();
                let _ = watcher.watch(conn).await;
                if let Ok(tcp) = handed_back.await {
                    conn_io::linger(tcp).await;
                }
                return;
            };
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let peer_subject = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(tls::peer_common_name);
            let info = ConnInfo::new(remote, peer_subject);
            let conn = builder
                .serve_connection(
                    TokioIo::new(stream),
                    hyper_service(service, info, in_flight),
                )
                .into_owned();
            let _ = watcher.watch(conn).await;
            if let Ok(tcp) = handed_back.await {
                conn_io::linger(tcp).await;
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after {DRAIN_TIMEOUT:?}; closing them");
    }
}

/// The hyper service of one connection: `service` with `info`, each
/// request counted in `in_flight` while it is served.
fn hyper_service(
    service: ListenerService,
    info: ConnInfo,
    in_flight: Arc<InFlight>,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future = impl std::future::Future<
        Output = Result<axum::response::Response, std::convert::Infallible>,
    > + Send
             + 'static,
> + Clone {
    let (service, info) = (Arc::new(service), Arc::new(info));
    hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let (service, info) = (service.clone(), info.clone());
        let serving = in_flight.enter();
        async move {
            let resp = service.call(req.map(axum::body::Body::new), &info).await;
            drop(serving);
            Ok(resp)
        }
    })
}
