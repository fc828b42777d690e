//! `baton token`: print a valid access token and nothing else on stdout.

use super::ServeArgs;
use super::client::{AdminClient, ServerArgs};
use crate::auth::tokens::TokenKind;
use crate::auth::users::UserStore;
use crate::server::tls::{CA_CERT, TLS_DIR};
use anyhow::bail;
use std::time::Duration;

/// `baton token [--user U] [--lifetime 1h]`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(flatten)]
    target: ServeArgs,
    /// The user the token is for; default: `[auth] admin_user` (`admin`).
    #[arg(long)]
    user: Option<String>,
    /// How long the token lives, e.g. `90s`, `30m`, `1h`, `7d`; default:
    /// `[auth] token_lifetime_secs`.
    #[arg(long, value_parser = humantime::parse_duration)]
    lifetime: Option<Duration>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs `baton token`.
pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    let (manifest, data_dir) = args.target.resolve()?;
    let cfg = &manifest.auth;
    let user = args.user.clone().unwrap_or_else(|| cfg.admin_user.clone());
    let lifetime = match args.lifetime {
        Some(d) if d.as_secs() == 0 => bail!("--lifetime must be at least 1s"),
        Some(d) if d.as_secs() > cfg.max_token_lifetime_secs.into() => bail!(
            "--lifetime {} is longer than [auth] max_token_lifetime_secs = {}",
            humantime::format_duration(d),
            cfg.max_token_lifetime_secs
        ),
        Some(d) => d.as_secs(),
        None => cfg.token_lifetime_secs.into(),
    };

    if args.server.server.is_some() {
        let client = AdminClient::new(&args.server, Some(data_dir.join(TLS_DIR).join(CA_CERT)))?;
        let reply = client.call(
            reqwest::Method::POST,
            "/tokens",
            Some(serde_json::json!({ "user": user, "lifetime_secs": lifetime })),
        )?;
        let Some(token) = reply["token"].as_str() else {
            bail!("the server's reply has no token: {reply}");
        };
        println!("{token}");
        return Ok(());
    }

    let url = crate::store::floor::configured_url(manifest.storage.url.as_deref());
    let opened = match &url {
        // The secret and the users are in the database the servers share.
        Some(_) => Some(super::open_kv(&manifest, &data_dir)?),
        // The data directory's users, when it can be read: a running server
        // holds it, and then checks the user on every request instead.
        None => super::open_kv(&manifest, &data_dir).ok(),
    };
    let shared = opened
        .as_ref()
        .filter(|(_, shared)| *shared)
        .map(|(store, _)| store.as_ref());
    let keys = super::block_on(crate::auth::token_keys(&manifest, &data_dir, shared, false))??;
    if let Some((store, _)) = &opened
        && super::block_on(UserStore::new(store.clone()).get(&user))??.is_none()
    {
        let place = match &url {
            Some(u) => crate::store::postgres::redacted(u),
            None => data_dir.display().to_string(),
        };
        bail!("there is no user `{user}` in {place}");
    }
    let (token, _) = keys.issue(&user, TokenKind::Access, lifetime)?;
    println!("{token}");
    Ok(())
}
