//! `baton user add|del|passwd|list`: on the data directory, or through the
//! admin API with `--server`.

use super::ServeArgs;
use super::client::{AdminClient, ServerArgs};
use crate::auth::admin_ops::{self, TotpChange, UpdateOutcome, UserUpdate};
use crate::auth::roles::RoleTable;
use crate::auth::users::{UserStore, UserView};
use crate::server::tls::{CA_CERT, TLS_DIR};
use anyhow::Context;
use std::io::Read;

/// `baton user …`.
#[derive(Debug, clap::Args)]
pub struct UserArgs {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    target: ServeArgs,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Create a user (prints a generated password unless --password-stdin).
    Add {
        /// The user name.
        name: String,
        /// A role (repeatable), e.g. `--role operator`.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// A namespace the user may act in (repeatable); default: all (`*`).
        #[arg(long = "namespace")]
        namespaces: Vec<String>,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        /// Enrol a TOTP second factor and print its secret once.
        #[arg(long)]
        totp: bool,
    },
    /// Delete a user (never the last administrator).
    Del {
        /// The user name.
        name: String,
    },
    /// Set a new password (prints a generated one unless --password-stdin).
    Passwd {
        /// The user name.
        name: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users: name, roles, namespaces, whether MFA is enrolled.
    List,
}

/// Where the changes go.
enum Target {
    Local(UserStore, RoleTable, String),
    Remote(AdminClient),
}

impl Target {
    fn update(&self, name: &str, update: UserUpdate) -> anyhow::Result<UpdateOutcome> {
        match self {
            Target::Local(users, roles, issuer) => Ok(super::block_on(admin_ops::apply(
                users, roles, issuer, name, update,
            ))??),
            Target::Remote(c) => {
                let body = serde_json::json!({
                    "password": update.password,
                    "roles": update.roles,
                    "namespaces": update.namespaces,
                    "totp": update.totp.map(|t| match t {
                        TotpChange::Enroll => "enroll",
                        TotpChange::Remove => "remove",
                    }),
                });
                let body = strip_nulls(body);
                let reply = c.call(reqwest::Method::PUT, &format!("/users/{name}"), Some(body))?;
                let user: UserView = serde_json::from_value(reply["user"].clone())
                    .context("the server's reply has no user")?;
                Ok(UpdateOutcome {
                    user,
                    created: reply["created"].as_bool().unwrap_or(false),
                    totp: reply.get("totp").and_then(|t| {
                        Some(crate::auth::totp::Enrolment {
                            secret: t["secret"].as_str()?.to_string(),
                            otpauth_url: t["otpauth_url"].as_str()?.to_string(),
                        })
                    }),
                })
            }
        }
    }
}

fn strip_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => m.into_iter().filter(|(_, v)| !v.is_null()).collect(),
        other => other,
    }
}

fn read_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((crate::auth::random_password(), true));
    }
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let line = text.lines().next().unwrap_or("").to_string();
    Ok((line, false))
}

/// Runs `baton user …`.
pub fn run(args: UserArgs) -> anyhow::Result<()> {
    let (manifest, data_dir) = args.target.resolve()?;
    let target = if args.server.server.is_some() {
        Target::Remote(AdminClient::new(
            &args.server,
            Some(data_dir.join(TLS_DIR).join(CA_CERT)),
        )?)
    } else {
        Target::Local(
            UserStore::new(super::open_kv(&manifest, &data_dir)?.0),
            RoleTable::new(manifest.auth.role_table()),
            manifest.auth.issuer.clone(),
        )
    };
    match args.action {
        Action::Add {
            name,
            roles,
            namespaces,
            password_stdin,
            totp,
        } => {
            let (password, generated) = read_password(password_stdin)?;
            let out = target.update(
                &name,
                UserUpdate {
                    password: Some(password.clone()),
                    roles: Some(roles),
                    namespaces: (!namespaces.is_empty()).then_some(namespaces),
                    totp: totp.then_some(TotpChange::Enroll),
                },
            )?;
            let verb = if out.created { "created" } else { "updated" };
            println!(
                "{verb} user {} (roles: {}; namespaces: {})",
                out.user.name,
                out.user.roles.join(","),
                out.user.namespaces.join(",")
            );
            if generated {
                println!("password: {password}");
            }
            if let Some(e) = out.totp {
                println!("totp secret: {}\notpauth url: {}", e.secret, e.otpauth_url);
            }
        }
        Action::Passwd {
            name,
            password_stdin,
        } => {
            let (password, generated) = read_password(password_stdin)?;
            let existing = match &target {
                Target::Local(users, ..) => super::block_on(users.get(&name))??.is_some(),
                Target::Remote(c) => c
                    .call(reqwest::Method::GET, &format!("/users/{name}"), None)
                    .is_ok(),
            };
            anyhow::ensure!(existing, "there is no user `{name}`");
            target.update(
                &name,
                UserUpdate {
                    password: Some(password.clone()),
                    ..UserUpdate::default()
                },
            )?;
            println!("password of {name} changed");
            if generated {
                println!("password: {password}");
            }
        }
        Action::Del { name } => {
            match &target {
                Target::Local(users, ..) => super::block_on(admin_ops::delete(users, &name))??,
                Target::Remote(c) => {
                    c.call(reqwest::Method::DELETE, &format!("/users/{name}"), None)?;
                }
            }
            println!("deleted user {name}");
        }
        Action::List => {
            let views: Vec<UserView> = match &target {
                Target::Local(users, ..) => super::block_on(users.list())??
                    .iter()
                    .map(UserView::from)
                    .collect(),
                Target::Remote(c) => {
                    let reply = c.call(reqwest::Method::GET, "/users", None)?;
                    serde_json::from_value(reply["users"].clone())
                        .context("the server's reply has no users")?
                }
            };
            println!("{:<24} {:<24} {:<20} MFA", "NAME", "ROLES", "NAMESPACES");
            for u in views {
                println!(
                    "{:<24} {:<24} {:<20} {}",
                    u.name,
                    u.roles.join(","),
                    u.namespaces.join(","),
                    if u.mfa { "yes" } else { "no" }
                );
            }
        }
    }
    Ok(())
}
