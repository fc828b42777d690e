//! The native baseline of the load test (`scripts/loadtest.sh`): the same two
//! endpoints the Wasm handlers serve, written as plain axum handlers, so that
//! the Wasm figures can be read as a ratio of what Rust without a sandbox
//! does on the same machine in the same run.
//!
//! - `GET /health`: the provisioning handler's health reply, from memory.
//! - `GET /kv/{key}`: one sled read, answered as JSON (what a kv-backed read
//!   through a handler does, without the sandbox, the token check or routing).
//!
//! `cargo run --release -p baton --example native_baseline -- 127.0.0.1:18080`
//! prints `listening on http://ADDR` once it accepts connections.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18080".into());
    let dir = tempfile::tempdir()?;
    let db = sled::open(dir.path().join("db"))?;
    let tree = Arc::new(db.open_tree("nodes")?);
    tree.insert(
        "node1.example.com",
        serde_json::to_vec(&serde_json::json!({
            "name": "node1.example.com",
            "connected": true,
            "facts": {"os": "linux"},
        }))?,
    )?;
    let app = axum::Router::new()
        .route("/health", get(health))
        .route("/kv/{key}", get(kv_get))
        .with_state(tree);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// The provisioning handler's envelope, serialised as it does.
#[derive(serde::Serialize)]
struct Envelope<'a> {
    data: Option<&'a str>,
    error: Option<&'a str>,
    success: bool,
}

async fn health() -> Response {
    axum::Json(Envelope {
        data: Some("Orchestrator is healthy"),
        error: None,
        success: true,
    })
    .into_response()
}

async fn kv_get(State(tree): State<Arc<sled::Tree>>, Path(key): Path<String>) -> Response {
    match tree.get(key.as_bytes()) {
        Ok(Some(v)) => match serde_json::from_slice::<serde_json::Value>(&v) {
            Ok(v) => axum::Json(v).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
