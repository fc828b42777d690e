//! `wasi:http/outgoing-handler`: a handler's outbound HTTP, within its grant.
//!
//! Every handler links `wasi:http`, so that components built with any HTTP
//! client for components load; what a request may reach is decided here,
//! before a connection is made: a grant of `[handler.capabilities] http`
//! must allow its scheme, host, port and path, and each address the host
//! name resolves to must be public unless the grant names that address (a
//! handler without grants reaches nothing). The connection goes to the
//! addresses checked (no second lookup). Each request is bounded by the
//! handler's limits (connect timeout, total timeout, response size) and by
//! the deadline of the request or job that sent it; a request or job may
//! send at most `http_max_requests`. Redirects are not followed here: the
//! guest sees them, and following one is a new request, checked again.
//! Ending the calling request or job drops its outbound requests.

use crate::jobs::CancelFlag;
use crate::manifest::Limits;
use crate::manifest::outbound::{HttpGrant, Target, default_port, parse_address};
use bytes::Bytes;
use http_body::{Body, Frame};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// What one handler may reach over HTTP, and how long and how much.
pub struct OutboundPolicy {
    handler: Arc<str>,
    grants: Vec<HttpGrant>,
    connect_timeout: Duration,
    total_timeout: Duration,
    max_response_bytes: u64,
    max_requests: u32,
    tls: Arc<rustls::ClientConfig>,
}

/// A policy that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A grant that the manifest check should have refused.
    #[error("{0}")]
    Grant(String),
    /// The CA file could not be read.
    #[error("reading the http CA file {path}: {why}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
}

impl OutboundPolicy {
    /// The policy of `handler`: its `http` grants, its limits, and TLS
    /// verified against the system's roots and `ca_file`'s certificates.
    pub fn new(
        handler: &str,
        grants: &[String],
        ca_file: Option<&std::path::Path>,
        limits: &Limits,
    ) -> Result<OutboundPolicy, PolicyError> {
        let grants = grants
            .iter()
            .map(|g| HttpGrant::parse(g).map_err(PolicyError::Grant))
            .collect::<Result<Vec<_>, _>>()?;
        let mut roots = rustls::RootCertStore::empty();
        if grants.iter().any(|g| g.https) {
            roots.extend(system_roots().iter().cloned());
        }
        if let Some(path) = ca_file {
            let ca_error = |why: String| PolicyError::CaFile {
                path: path.display().to_string(),
                why,
            };
            use rustls::pki_types::pem::PemObject as _;
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_error(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("it holds no PEM certificate".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| PolicyError::Grant(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(OutboundPolicy {
            handler: handler.into(),
            grants,
            connect_timeout: Duration::from_millis(limits.http_connect_timeout_ms),
            total_timeout: Duration::from_millis(limits.http_timeout_ms),
            max_response_bytes: limits.http_max_response_bytes,
            max_requests: limits.http_max_requests,
            tls: Arc::new(tls),
        })
    }

    /// No grants: every outbound request is refused.
    pub fn nowhere(handler: &str) -> OutboundPolicy {
        OutboundPolicy::new(handler, &[], None, &Limits::default())
            .expect("a policy without grants or CA file always builds")
    }
}

/// The system's trusted roots, read once (`rustls-native-certs`: the
/// OS store, `SSL_CERT_FILE`/`SSL_CERT_DIR` honoured).
fn system_roots() -> &'static [rustls::pki_types::TrustAnchor<'static>] {
    static ROOTS: std::sync::OnceLock<Vec<rustls::pki_types::TrustAnchor<'static>>> =
        std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!("reading the system's TLS roots: {e}");
        }
        let mut store = rustls::RootCertStore::empty();
        store.add_parsable_certificates(found.certs);
        store.roots
    })
}

/// One instance's outbound state: its handler's policy, and what the
/// current request or job has sent and until when it may.
pub struct OutboundState {
    policy: Arc<OutboundPolicy>,
    sent: u32,
    deadline: Instant,
    cancel: Option<Arc<CancelFlag>>,
}

impl OutboundState {
    /// State for a request or job attempt that must end by `deadline`, or
    /// when `cancel` (a job's) is set.
    pub fn new(
        policy: Arc<OutboundPolicy>,
        deadline: Instant,
        cancel: Option<Arc<CancelFlag>>,
    ) -> Self {
        OutboundState {
            policy,
            sent: 0,
            deadline,
            cancel,
        }
    }

    /// The grant that allows `uri`, counting the request; or why not.
    fn admit(&mut self, uri: &axum::http::Uri) -> Result<HttpGrant, Error> {
        let p = &self.policy;
        let url = loggable(uri);
        let refuse = |why: &str| {
            tracing::warn!(handler = %p.handler, url = %url, "outbound request refused: {why}");
            Error::HttpRequestDenied
        };
        if self.sent >= p.max_requests {
            return Err(refuse(&format!(
                "more than {} outbound requests (http_max_requests)",
                p.max_requests
            )));
        }
        let Some(target) = target(uri) else {
            return Err(refuse("not an http or https url with a host"));
        };
        let grant = p
            .grants
            .iter()
            .find(|g| g.allows(&target))
            .ok_or_else(|| refuse("not in the handler's `http` grant"))?;
        self.sent += 1;
        Ok(grant.clone())
    }
}

impl WasiHttpHooks for OutboundState {
    fn send_request(
        &mut self,
        request: axum::http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        axum::http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), Error>> + Send>,
                    ),
                    Error,
                >,
            > + Send,
    > {
        let admitted = self.admit(request.uri());
        let policy = self.policy.clone();
        let deadline = self.deadline;
        let cancel = self.cancel.clone();
        Box::new(async move {
            use crate::metrics::OutboundResult;
            let count = |result| crate::metrics::global().outbound(&policy.handler, result);
            let grant = admitted.inspect_err(|_| count(OutboundResult::Refused))?;
            let until = deadline.min(Instant::now() + policy.total_timeout);
            let sent = tokio::select! {
                sent = send(&policy, &grant, request, until, cancel.clone()) => sent,
                () = cancelled(cancel) => Err(Error::InternalError(Some("the job was cancelled".into()))),
            };
            count(match &sent {
                Ok(_) => OutboundResult::Answered,
                Err(Error::DestinationIpProhibited) => OutboundResult::Refused,
                Err(_) => OutboundResult::Failed,
            });
            sent
        })
    }
}

/// Where `uri` goes, when it is an `http` or `https` url with a host.
fn target(uri: &axum::http::Uri) -> Option<Target<'_>> {
    let https = match uri.scheme_str()? {
        "https" => true,
        "http" => false,
        _ => return None,
    };
    let authority = uri.authority()?;
    Some(Target {
        https,
        host: authority.host(),
        port: authority.port_u16().unwrap_or(default_port(https)),
        path: uri.path(),
    })
}

type Sent = (
    axum::http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

/// `uri` for the log: scheme, authority and path, without the query (which
/// may carry a token).
fn loggable(uri: &axum::http::Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("?"),
        uri.authority().map_or("", |a| a.as_str()),
        uri.path()
    )
}

/// Resolves once `cancel` is set; never without one.
async fn cancelled(cancel: Option<Arc<CancelFlag>>) {
    match cancel {
        Some(c) => c.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Resolves, checks the addresses, connects, and sends `req`; the response
/// head by `until`, the body bounded in size, by `until` and by `cancel`.
async fn send(
    policy: &OutboundPolicy,
    grant: &HttpGrant,
    mut req: axum::http::Request<WasiBody>,
    until: Instant,
    cancel: Option<Arc<CancelFlag>>,
) -> Result<Sent, Error> {
    use http_body_util::BodyExt as _;
    let until = tokio::time::Instant::from_std(until);
    let uri = req.uri().clone();
    let url = loggable(&uri);
    let Target {
        https, host, port, ..
    } = target(&uri).ok_or(Error::HttpRequestUriInvalid)?;
    let addrs: Vec<SocketAddr> = match parse_address(host) {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => match tokio::time::timeout_at(until, tokio::net::lookup_host((host, port))).await {
            Err(_) => return Err(Error::DnsTimeout),
            Ok(Err(e)) => {
                return Err(Error::DnsError {
                    rcode: Some(e.to_string()),
                    info_code: None,
                });
            }
            Ok(Ok(found)) => found.collect(),
        },
    };
    let allowed: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| grant.may_connect(a.ip()))
        .collect();
    if allowed.is_empty() {
        tracing::warn!(handler = %policy.handler, url = %url, addresses = ?addrs,
            "outbound request refused: the name resolves only to addresses that are not public, and the grant does not name them");
        return Err(if addrs.is_empty() {
            Error::DestinationNotFound
        } else {
            Error::DestinationIpProhibited
        });
    }
    let connect_until = until.min(tokio::time::Instant::now() + policy.connect_timeout);
    let tcp = tokio::time::timeout_at(connect_until, connect_any(&allowed))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
            _ => Error::Connect(e),
        })?;
    let io: Box<dyn Stream> = if https {
        let name = rustls::pki_types::ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        )
        .map_err(|_| Error::HttpRequestUriInvalid)?;
        let tls = tokio_rustls::TlsConnector::from(policy.tls.clone());
        let stream = tokio::time::timeout_at(connect_until, tls.connect(name, tcp))
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(|e| {
                tracing::warn!(handler = %policy.handler, url = %url, "outbound TLS failed: {e}");
                Error::TlsCertificateError
            })?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = tokio::time::timeout_at(
        connect_until,
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    // On the wire: the origin form (`/path?query`), the host in `Host`.
    let origin = uri.path_and_query().map_or("/", |p| p.as_str());
    *req.uri_mut() = axum::http::Uri::try_from(origin).map_err(|_| Error::HttpRequestUriInvalid)?;
    let mut conn = Box::pin(conn);
    let mut response = Box::pin(sender.send_request(req));
    let head = tokio::time::timeout_at(until, async {
        tokio::select! {
            r = &mut response => r,
            c = &mut conn => {
                c?;
                (&mut response).await
            }
        }
    })
    .await
    .map_err(|_| Error::HttpResponseTimeout)??;
    let limit = policy.max_response_bytes;
    let declared = head
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        tracing::warn!(handler = %policy.handler, url = %url, "outbound response refused: Content-Length {declared:?} is over http_max_response_bytes ({limit})");
        return Err(Error::HttpResponseBodySize(declared));
    }
    let body_limit = BoundedBody {
        inner: None,
        left: limit,
        limit,
        deadline: Box::pin(tokio::time::sleep_until(until)),
        cancelled: Box::pin(cancelled(cancel)),
    };
    let resp = head.map(|incoming| {
        BoundedBody {
            inner: Some(incoming),
            ..body_limit
        }
        .boxed_unsync()
    });
    let io = async move { conn.await.map_err(Error::from) };
    Ok((resp, Box::new(io)))
}

/// A connected stream, plain or TLS.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Stream for T {}

/// Connects to the first of `addrs` that answers.
async fn connect_any(addrs: &[SocketAddr]) -> std::io::Result<tokio::net::TcpStream> {
    let mut last = None;
    for a in addrs {
        match tokio::net::TcpStream::connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address")))
}

/// A response body cut off past `limit` bytes or at `deadline`.
struct BoundedBody {
    inner: Option<hyper::body::Incoming>,
    left: u64,
    limit: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
    cancelled: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Body for BoundedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                if n > this.left {
                    this.inner = None;
                    return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(this.limit)))));
                }
                this.left -= n;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    this.inner = None;
                    return Poll::Ready(Some(Err(Error::HttpResponseTimeout)));
                }
                if this.cancelled.as_mut().poll(cx).is_ready() {
                    this.inner = None;
                    return Poll::Ready(Some(Err(Error::InternalError(Some(
                        "the job was cancelled".into(),
                    )))));
                }
                Poll::Pending
            }
        }
    }
}
