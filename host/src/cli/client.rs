//! A small blocking client of the admin API for `--server` modes.

use super::ServeArgs;
use crate::auth::tokens::{TokenKeys, TokenKind};
use crate::manifest::{ADMIN_MOUNT_NAME, Manifest};
use crate::server::tls::{CA_CERT, TLS_DIR};
use anyhow::{Context, bail};
use std::path::PathBuf;

/// How to reach and authenticate to a running server.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Work through this server's admin API (e.g. `https://127.0.0.1:8143`)
    /// instead of opening the data directory.
    #[arg(long, env = "BATON_SERVER", global = true)]
    pub server: Option<String>,
    /// An admin token for `--server` (see `baton token`).
    #[arg(long, env = "BATON_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// A CA certificate to trust for `--server`; default: the data
    /// directory's generated `tls/ca.pem` when it exists.
    #[arg(long, global = true)]
    pub cacert: Option<PathBuf>,
    /// Do not verify the server's certificate (like `curl -k`).
    #[arg(long, short = 'k', global = true)]
    pub insecure: bool,
}

/// An admin API client.
pub struct AdminClient {
    http: reqwest::blocking::Client,
    base: String,
    token: String,
}

impl AdminClient {
    /// A client of the deployment's own server: `--server`, or the manifest's
    /// admin listener; `--token`, or an admin token signed from the data
    /// directory (so commands on the server's machine need no setup).
    pub fn for_deployment(target: &ServeArgs, args: &ServerArgs) -> anyhow::Result<AdminClient> {
        for_deployment_impl(target, args)
    }

    /// Sends raw `bytes` with `method path`; returns the JSON reply.
    pub fn send_bytes(
        &self,
        method: reqwest::Method,
        path: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .request(method.clone(), &url)
            .header("X-Authentication", &self.token)
            .header("Content-Type", "application/wasm")
            .body(bytes)
            .send()
            .with_context(|| format!("{method} {url}"))?;
        Self::reply(&method, &url, resp)
    }

    /// A client for `args.server`, trusting `args.cacert` or `default_ca`.
    pub fn new(args: &ServerArgs, default_ca: Option<PathBuf>) -> anyhow::Result<AdminClient> {
        let server = args.server.clone().context("no --server given")?;
        let Some(token) = args.token.clone() else {
            bail!(
                "--server needs an admin token: pass --token or set BATON_TOKEN (`baton token` prints one)"
            );
        };
        let mut builder = reqwest::blocking::Client::builder().use_rustls_tls();
        if args.insecure {
            builder = builder.danger_accept_invalid_certs(true);
        } else if let Some(ca) = args.cacert.clone().or(default_ca.filter(|p| p.exists())) {
            let pem = std::fs::read(&ca).with_context(|| format!("reading {}", ca.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", ca.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        Ok(AdminClient {
            http: builder.build()?,
            base: format!("{}/admin/v1", server.trim_end_matches('/')),
            token,
        })
    }

    /// Sends `method path` with an optional JSON body; returns the JSON reply
    /// (`null` for an empty one), or an error carrying the server's message.
    pub fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header("X-Authentication", &self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().with_context(|| format!("{method} {url}"))?;
        Self::reply(&method, &url, resp)
    }

    fn reply(
        method: &reqwest::Method,
        url: &str,
        resp: reqwest::blocking::Response,
    ) -> anyhow::Result<serde_json::Value> {
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        let json: serde_json::Value = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        };
        if !status.is_success() {
            let msg = json["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| json.to_string());
            bail!("{method} {url}: {status}: {msg}");
        }
        Ok(json)
    }
}

/// Where the admin API of the deployment is, from its manifest.
fn local_server(manifest: &Manifest) -> anyhow::Result<String> {
    let l = manifest
        .listeners
        .iter()
        .find(|l| l.serves(ADMIN_MOUNT_NAME))
        .context("no [[listener]] of the manifest serves `admin`; pass --server")?;
    let scheme = if l.tls.is_some() { "https" } else { "http" };
    let addr: std::net::SocketAddr = l.address.parse()?;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    if addr.port() == 0 {
        bail!("the admin listener's port is chosen at start (`:0`); pass --server");
    }
    Ok(format!("{scheme}://{host}:{}", addr.port()))
}

fn for_deployment_impl(target: &ServeArgs, args: &ServerArgs) -> anyhow::Result<AdminClient> {
    let (manifest, data_dir) = target.resolve()?;
    let mut server = args.clone();
    if server.server.is_none() {
        server.server = Some(local_server(&manifest)?);
    }
    if server.token.is_none() {
        let keys = TokenKeys::load(&manifest, &data_dir, false)
            .context("no --token given and none can be signed here")?;
        let (token, _) = keys.issue(&manifest.auth.admin_user, TokenKind::Access, 600)?;
        server.token = Some(token);
    }
    AdminClient::new(&server, Some(data_dir.join(TLS_DIR).join(CA_CERT)))
}
