//! A small blocking client of the admin API for `--server` modes.

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
