//! `[auth]` (tokens, roles, login limits) and a listener's `tls`.

use super::access::is_permission_name;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// JWT signature algorithms Baton signs and accepts (exactly one per server).
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a secret generated into the data directory.
    #[default]
    HS256,
    /// RSA PKCS#1 v1.5 with SHA-256; needs `private_key` and `public_key`.
    RS256,
    /// ECDSA P-256 with SHA-256; needs `private_key` and `public_key`.
    ES256,
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The signature algorithm of every token.
    pub algorithm: JwtAlgorithm,
    /// RS256/ES256: the PEM private key that signs tokens.
    pub private_key: Option<PathBuf>,
    /// RS256/ES256: the PEM public key that verifies them.
    pub public_key: Option<PathBuf>,
    /// The `iss` claim written and required.
    pub issuer: String,
    /// The `aud` claim written and required.
    pub audience: String,
    /// Default access-token lifetime, in seconds.
    pub token_lifetime_secs: u32,
    /// Longest lifetime a token may be issued with, in seconds.
    pub max_token_lifetime_secs: u32,
    /// Refresh-token lifetime, in seconds.
    pub refresh_lifetime_secs: u32,
    /// Tolerated clock difference when checking `exp`, in seconds.
    pub clock_skew_secs: u32,
    /// The user created with a random password when no user exists.
    pub admin_user: String,
    /// Failed logins of one user within the window before it is locked.
    pub login_max_failures: u32,
    /// Failed logins from one address within the window before it is locked.
    pub login_max_failures_per_address: u32,
    /// The window (and lockout) length for failed logins, in seconds.
    pub login_window_secs: u32,
    /// Password checks (argon2id, 19 MiB each) running at once; further
    /// checks wait. Default: the number of CPUs, at most 4.
    pub max_concurrent_password_checks: u32,
    /// Role → permissions; merged over the built-in roles (`admin` = `*`,
    /// `operator`, `viewer`, `monitor` = `metrics:read`).
    pub roles: BTreeMap<String, Vec<String>>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            algorithm: JwtAlgorithm::HS256,
            private_key: None,
            public_key: None,
            issuer: "baton".into(),
            audience: "baton".into(),
            token_lifetime_secs: 3600,
            max_token_lifetime_secs: 30 * 24 * 3600,
            refresh_lifetime_secs: 7 * 24 * 3600,
            clock_skew_secs: 5,
            admin_user: "admin".into(),
            login_max_failures: 5,
            login_max_failures_per_address: 20,
            login_window_secs: 300,
            max_concurrent_password_checks: std::thread::available_parallelism()
                .map_or(2, |n| n.get().min(4) as u32),
            roles: BTreeMap::new(),
        }
    }
}

/// The built-in roles; `[auth.roles]` adds to them or redefines them.
pub const BUILTIN_ROLES: &[(&str, &[&str])] = &[
    ("admin", &["*"]),
    (
        "operator",
        &[
            "jobs:read",
            "jobs:write",
            "inventory:write",
            "hosts:read",
            "hosts:write",
            "clusters:read",
            "clusters:write",
            "tasks:read",
            "tasks:write",
        ],
    ),
    (
        "viewer",
        &["jobs:read", "hosts:read", "clusters:read", "tasks:read"],
    ),
    // For a Prometheus scraper's token: the metrics and nothing else.
    ("monitor", &["metrics:read"]),
];

impl AuthConfig {
    /// The effective role table: the built-in roles with `[auth.roles]` over them.
    pub fn role_table(&self) -> BTreeMap<String, Vec<String>> {
        let mut table: BTreeMap<String, Vec<String>> = BUILTIN_ROLES
            .iter()
            .map(|(r, ps)| (r.to_string(), ps.iter().map(|p| p.to_string()).collect()))
            .collect();
        table.extend(self.roles.clone());
        table
    }

    /// The first problem with these settings, as (key, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        let keys = self.private_key.is_some() || self.public_key.is_some();
        match self.algorithm {
            JwtAlgorithm::HS256 if keys => {
                return Err((
                    "auth.algorithm".into(),
                    "HS256 uses a secret generated into the data directory; `private_key` and `public_key` are for RS256 and ES256".into(),
                ));
            }
            JwtAlgorithm::RS256 | JwtAlgorithm::ES256
                if self.private_key.is_none() || self.public_key.is_none() =>
            {
                return Err((
                    "auth.algorithm".into(),
                    format!(
                        "{:?} needs both `private_key` and `public_key` (PEM files)",
                        self.algorithm
                    ),
                ));
            }
            _ => {}
        }
        if self.issuer.is_empty() || self.audience.is_empty() {
            return Err((
                "auth.issuer".into(),
                "issuer and audience must not be empty".into(),
            ));
        }
        if self.token_lifetime_secs == 0
            || self.refresh_lifetime_secs == 0
            || self.max_token_lifetime_secs < self.token_lifetime_secs
        {
            return Err((
                "auth.token_lifetime_secs".into(),
                "lifetimes must be at least 1 s, and max_token_lifetime_secs at least token_lifetime_secs".into(),
            ));
        }
        if self.login_max_failures == 0
            || self.login_max_failures_per_address == 0
            || self.login_window_secs == 0
            || self.max_concurrent_password_checks == 0
        {
            return Err((
                "auth.login_max_failures".into(),
                "login limits and window must be at least 1".into(),
            ));
        }
        if self.admin_user.is_empty() {
            return Err(("auth.admin_user".into(), "must not be empty".into()));
        }
        for (role, perms) in &self.roles {
            if let Some(p) = perms.iter().find(|p| !is_permission_name(p)) {
                return Err((
                    format!("auth.roles.{role}"),
                    format!("`{p}` is not a permission name (lower-case, e.g. `jobs:write`)"),
                ));
            }
        }
        Ok(())
    }
}

/// Where a TLS listener's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// A CA and server certificate generated into `<data>/tls` on first start.
    SelfSigned,
    /// PEM files.
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
}

/// The CA a mutual-TLS listener verifies client certificates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCa {
    /// `client_ca = "self-signed"`: the CA generated into `<data>/tls`
    /// (`baton cert issue --user U` signs client certificates with it).
    Generated,
    /// A PEM file of CA certificates.
    File(PathBuf),
}

/// The `client_ca` value that names the generated CA.
pub const GENERATED_CLIENT_CA: &str = "self-signed";

/// A listener's `tls`: `"self-signed"` or `{ cert, key, client_ca? }`
/// (or `{ self_signed = true, client_ca? }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSpec {
    /// The server certificate.
    pub source: TlsSource,
    /// When set, clients must present a certificate signed by this CA.
    pub client_ca: Option<ClientCa>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsTable {
    #[serde(default)]
    self_signed: bool,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
}

impl<'de> Deserialize<'de> for TlsSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TlsSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#""self-signed" or a table { cert, key, client_ca? } or { self_signed = true, client_ca? }"#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TlsSpec, E> {
                if v == "self-signed" {
                    Ok(TlsSpec {
                        source: TlsSource::SelfSigned,
                        client_ca: None,
                    })
                } else {
                    Err(E::custom(format!(
                        r#"`{v}`: expected "self-signed" or a table {{ cert, key, client_ca? }}"#
                    )))
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<TlsSpec, A::Error> {
                use serde::de::Error;
                let t = TlsTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                let source = match (t.self_signed, t.cert, t.key) {
                    (true, None, None) => TlsSource::SelfSigned,
                    (false, Some(cert), Some(key)) => TlsSource::Files { cert, key },
                    (true, _, _) => {
                        return Err(A::Error::custom(
                            "`self_signed = true` and `cert`/`key` exclude each other",
                        ));
                    }
                    _ => {
                        return Err(A::Error::custom(
                            "expected both `cert` and `key` (PEM files), or `self_signed = true`",
                        ));
                    }
                };
                let client_ca = match t.client_ca {
                    None => None,
                    Some(p) if p.as_os_str() == GENERATED_CLIENT_CA => {
                        if source != TlsSource::SelfSigned {
                            return Err(A::Error::custom(
                                "`client_ca = \"self-signed\"` verifies clients with the generated CA, which needs `self_signed = true`; with `cert`/`key`, give `client_ca` a PEM file",
                            ));
                        }
                        Some(ClientCa::Generated)
                    }
                    Some(p) => Some(ClientCa::File(p)),
                };
                Ok(TlsSpec { source, client_ca })
            }
        }
        d.deserialize_any(Visitor)
    }
}
