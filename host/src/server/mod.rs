//! The HTTP side: one axum router per listener, all requests going through
//! [`dispatch::dispatch`], which routes to the mounted handler.

pub mod dispatch;
pub mod errors;

use crate::app::App;
use crate::store::KvStore;
use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;

/// What a listener's requests need: the app and which mounts it serves.
pub struct ListenerCtx {
    /// The shared app.
    pub app: Arc<App>,
    /// Handler names served here; `None` = all.
    pub mounts: Option<Vec<String>>,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The bound address.
    pub local_addr: SocketAddr,
}

/// Binds every listener of the manifest, prints `listening on URL` for each
/// on stdout, and serves until `shutdown` resolves.
pub async fn run(
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = Vec::new();
    for l in &app.manifest.listeners {
        let listener = tokio::net::TcpListener::bind(&l.address)
            .await
            .with_context(|| format!("binding listener {}", l.address))?;
        let local_addr = listener.local_addr()?;
        let ctx = Arc::new(ListenerCtx {
            app: app.clone(),
            mounts: l.mounts.clone(),
            scheme: "http",
            local_addr,
        });
        let router = axum::Router::new()
            .fallback(dispatch::dispatch)
            .with_state(ctx);
        println!("listening on http://{local_addr}");
        tracing::info!(%local_addr, "listening");
        let mut rx = tx.subscribe();
        tasks.push(tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = rx.recv().await;
            })
            .await
        }));
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    shutdown.await;
    tracing::info!("shutting down");
    let _ = tx.send(());
    for t in tasks {
        t.await??;
    }
    app.store.flush()?;
    Ok(())
}
