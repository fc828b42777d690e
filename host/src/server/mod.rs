//! The HTTP side: one [`ListenerService`] per listener, handler requests
//! going straight to [`dispatch::dispatch`] (which routes to the mounted
//! handler) and the admin API through its axum router.

pub mod admin;
pub mod authn;
mod conn_io;
pub mod dispatch;
pub mod errors;
pub mod listen;
mod request_body;
pub mod tls;

use crate::app::App;
use crate::manifest::{ADMIN_MOUNT, ADMIN_MOUNT_NAME};
use anyhow::Context;
use listen::ConnInfo;
use std::net::SocketAddr;
use std::sync::Arc;

/// What a listener's requests need: the app and which mounts it serves.
pub struct ListenerCtx {
    /// The shared app.
    pub app: Arc<App>,
    /// Handler names served here; `None` = all.
    pub mounts: Option<Vec<String>>,
    /// Handler names not served here (with `mounts` absent).
    pub exclude: Vec<String>,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The bound address.
    pub local_addr: SocketAddr,
    /// The listener's `public_url`, without a trailing `/`.
    pub public_url: Option<String>,
}

/// The axum router of a listener that serves the admin API: the admin
/// routes, and every other path (an unknown one under the admin mount)
/// through [`dispatch::dispatch`]. Requests must carry a [`ConnInfo`]
/// extension, which [`ListenerService::call`] adds.
fn admin_router(ctx: Arc<ListenerCtx>) -> axum::Router {
    axum::Router::new()
        .nest(ADMIN_MOUNT, admin::router())
        .fallback(dispatch::dispatch_extension)
        .with_state(ctx)
}

/// What one listener does with a request: paths under the admin API's
/// mount go through the admin router (axum extractors, the admin routes);
/// every other request goes to [`dispatch::dispatch`] directly, without
/// axum's routing, extractors or the request's extension map, which on the
/// hot path of a warm handler cost more than a tenth of the host's time.
#[derive(Clone)]
pub struct ListenerService {
    ctx: Arc<ListenerCtx>,
    /// The admin router, when this listener serves the admin API.
    admin: Option<axum::Router>,
}

impl ListenerService {
    /// The service of a listener with `ctx`, serving the admin API or not.
    pub fn new(ctx: Arc<ListenerCtx>, serves_admin: bool) -> Self {
        let admin = serves_admin.then(|| admin_router(ctx.clone()));
        ListenerService { ctx, admin }
    }

    /// Serves one request that arrived on the connection `conn`.
    pub async fn call(
        &self,
        mut req: axum::extract::Request,
        conn: &ConnInfo,
    ) -> axum::response::Response {
        if let Some(admin) = &self.admin
            && req.uri().path().starts_with(ADMIN_MOUNT)
        {
            req.extensions_mut().insert(conn.clone());
            let started = std::time::Instant::now();
            let method = req.method().clone();
            let (req, held) = request_body::hold(req);
            let Ok(resp) = tower::ServiceExt::oneshot(admin.clone(), req).await;
            admin_metrics().request(&method, resp.status().as_u16(), started.elapsed());
            return request_body::release_after(resp, held);
        }
        dispatch::dispatch(&self.ctx, conn, req).await
    }
}

/// The series of the admin API's requests.
fn admin_metrics() -> &'static crate::metrics::HandlerMetrics {
    static ADMIN: std::sync::OnceLock<Arc<crate::metrics::HandlerMetrics>> =
        std::sync::OnceLock::new();
    ADMIN.get_or_init(|| crate::metrics::global().handler(crate::metrics::ADMIN))
}

impl ListenerCtx {
    /// Whether this listener serves the handler named `name`.
    pub fn serves(&self, name: &str) -> bool {
        crate::manifest::serves(self.mounts.as_deref(), &self.exclude, name)
    }
}

/// Binds every listener of the manifest, prints `listening on URL` for each
/// on stdout, and serves until `shutdown` resolves.
pub async fn run(
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Kept alive while serving: dropping it stops the watch.
    let _watcher = app
        .watch_handler_files()
        .context("watching the handler files")?;
    #[cfg(unix)]
    {
        let app = app.clone();
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing the SIGHUP handler")?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the manifest");
                if let Err(e) = app.reload_manifest().await {
                    tracing::error!("manifest rejected; the running configuration stays: {e:#}");
                }
            }
        });
    }
    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = Vec::new();
    for l in &app.manifest.listeners {
        let listener = tokio::net::TcpListener::bind(&l.address)
            .await
            .with_context(|| format!("binding listener {}", l.address))?;
        let local_addr = listener.local_addr()?;
        let tls = match &l.tls {
            Some(spec) => Some(
                tls::server_config(spec, &app.manifest, &app.data_dir, local_addr)
                    .with_context(|| format!("TLS for listener {}", l.address))?,
            ),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let ctx = Arc::new(ListenerCtx {
            app: app.clone(),
            mounts: l.mounts.clone(),
            exclude: l.exclude.clone(),
            scheme,
            local_addr,
            public_url: l
                .public_url
                .as_deref()
                .map(|u| crate::manifest::public_url::base(u).to_string()),
        });
        let service = ListenerService::new(ctx, l.serves(ADMIN_MOUNT_NAME));
        println!("listening on {scheme}://{local_addr}");
        tracing::info!(%local_addr, scheme, mutual_tls = l.tls.as_ref().is_some_and(|t| t.client_ca.is_some()), "listening");
        let mut rx = tx.subscribe();
        tasks.push(tokio::spawn(listen::serve(
            listener,
            tls,
            service,
            listen::ConnSettings::of(l),
            async move {
                let _ = rx.recv().await;
            },
        )));
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    shutdown.await;
    tracing::info!("shutting down");
    let _ = tx.send(());
    for t in tasks {
        t.await?;
    }
    app.floor.flush()?;
    if let Some(replica) = &app.replica {
        // Other replicas may take this one's unfinished jobs over at once.
        if let Err(e) = replica.leave().await {
            tracing::warn!("ending this replica's lease failed: {e}");
        }
    }
    Ok(())
}
