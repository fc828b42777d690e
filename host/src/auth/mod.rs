//! Authentication and authorisation, done by the host before any Wasm runs:
//! users (argon2id) on the storage floor, JWTs, HTTP Basic, client certificates, roles and
//! permissions, token revocation and login rate limits.
//!
//! [`Auth`] is the one service the request path, the admin API, the `auth`
//! host calls and the CLI talk to.

pub mod admin_ops;
pub mod basic_cache;
pub mod limiter;
pub mod password_check;
pub mod roles;
/// JWT keys and claims (in `baton-parse`, fuzzable without wasmtime).
pub use baton_parse::tokens;
pub mod totp;
pub mod users;

use crate::manifest::{AuthConfig, Manifest};
use crate::store::{KvStore, StoreError, scan_all};
use limiter::LoginLimiter;
use password_check::PasswordChecker;
use roles::RoleTable;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokens::{Claims, TokenError, TokenKeys, TokenKind};
use users::{AUTH_NS, User, UserStore};

/// The bucket of revoked tokens: jti → expiry (u64 seconds, big-endian).
const REVOKED: &str = "revoked";
/// The bucket of second factors: user name → the last TOTP time step
/// accepted (u64, big-endian).
const TOTP_STEPS: &str = "totp-steps";

/// The file the generated bootstrap password is written to.
pub const ADMIN_PASSWORD_FILE: &str = "admin-password";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user name, or a client certificate's common name.
    pub subject: String,
    /// Roles held now.
    pub roles: Vec<String>,
    /// Namespaces the caller may act in; `*` = all.
    pub namespaces: Vec<String>,
}

impl Principal {
    fn of(user: &User) -> Self {
        Principal {
            subject: user.name.clone(),
            roles: user.roles.clone(),
            namespaces: user.namespaces.clone(),
        }
    }
}

pub use baton_parse::credentials::Credential;

/// Why a caller was not authenticated or a token not issued. Messages never
/// contain secrets and are safe to return.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// Wrong or unusable credentials (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// Too many failed logins (429); retry after this many seconds.
    #[error("too many failed logins; try again in {0} s")]
    RateLimited(u64),
    /// A request the caller may not make (e.g. a token for a missing user).
    #[error("{0}")]
    Invalid(String),
    /// Storage failed (500).
    #[error("{0}")]
    Internal(String),
    /// The store cannot be reached right now (503).
    #[error("{0}")]
    Unavailable(String),
}

impl From<TokenError> for AuthError {
    fn from(e: TokenError) -> Self {
        AuthError::Unauthenticated(e.to_string())
    }
}

impl From<users::UserError> for AuthError {
    fn from(e: users::UserError) -> Self {
        match e {
            users::UserError::Unavailable(_) => AuthError::Unavailable(e.to_string()),
            e => AuthError::Internal(e.to_string()),
        }
    }
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => {
                AuthError::Unavailable(format!("the token store cannot be reached: {m}"))
            }
            e => AuthError::Internal(format!("the token store failed: {e}")),
        }
    }
}

/// The auth service of a running server.
pub struct Auth {
    config: AuthConfig,
    roles: RoleTable,
    users: UserStore,
    keys: TokenKeys,
    /// Where revocations and second-factor steps are kept.
    store: Arc<dyn KvStore>,
    limiter: LoginLimiter,
    passwords: Arc<PasswordChecker>,
    basic: basic_cache::BasicCache,
    /// Verified against when the user does not exist, so that unknown and
    /// known users take the same time.
    dummy_hash: String,
}

impl Auth {
    /// Loads keys (generating the HS256 secret on first start), finds the
    /// users and revocations in `store`, and creates the bootstrap admin
    /// when there is no user at all.
    ///
    /// With a `shared` store (one that replicas share), the HS256 secret
    /// is kept in the store too (see [`token_keys`]).
    pub async fn open(
        manifest: &Manifest,
        data_dir: &Path,
        store: Arc<dyn KvStore>,
        shared: bool,
    ) -> anyhow::Result<Auth> {
        let config = manifest.auth.clone();
        let keys = token_keys(manifest, data_dir, shared.then_some(store.as_ref()), true).await?;
        let auth = Auth {
            roles: RoleTable::new(config.role_table()),
            users: UserStore::new(store.clone()),
            keys,
            store,
            limiter: LoginLimiter::new(
                config.login_max_failures,
                config.login_max_failures_per_address,
                Duration::from_secs(config.login_window_secs.into()),
            ),
            passwords: Arc::new(PasswordChecker::new(
                config.max_concurrent_password_checks as usize,
            )),
            basic: basic_cache::BasicCache::default(),
            dummy_hash: users::hash_password("dummy password for timing")?,
            config,
        };
        auth.prune_revoked().await?;
        auth.bootstrap_admin(data_dir).await?;
        Ok(auth)
    }

    /// The `[auth]` settings.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// The user store.
    pub fn users(&self) -> &UserStore {
        &self.users
    }

    /// The role table.
    pub fn roles(&self) -> &RoleTable {
        &self.roles
    }

    async fn bootstrap_admin(&self, data_dir: &Path) -> anyhow::Result<()> {
        if !self.users.is_empty().await? {
            return Ok(());
        }
        let name = &self.config.admin_user;
        let (password, from_env) = match std::env::var("BATON_ADMIN_PASSWORD") {
            Ok(p) if !p.is_empty() => (p, true),
            _ => (random_password(), false),
        };
        let now = now_rfc3339();
        let hash = users::hash_password(&password)
            .map_err(|e| anyhow::anyhow!("BATON_ADMIN_PASSWORD: {e}"))?;
        self.users
            .put(&User::new(name, hash, vec!["admin".into()], &now))
            .await?;
        if from_env {
            tracing::info!(user = %name, "created the admin user with the password from BATON_ADMIN_PASSWORD");
        } else {
            let path = data_dir.join(ADMIN_PASSWORD_FILE);
            write_private_file(&path, format!("{password}\n").as_bytes())?;
            tracing::warn!(
                user = %name, file = %path.display(),
                "created the admin user with a random password; it is in this file (mode 0600)"
            );
        }
        Ok(())
    }

    /// Authenticates a credential from a request coming from `addr`.
    pub async fn authenticate(
        &self,
        credential: &Credential,
        addr: IpAddr,
    ) -> Result<Principal, AuthError> {
        match credential {
            Credential::Token(t) => self.principal_for_token(t).await,
            Credential::Basic { user, password } => {
                // A locked-out user is refused even with a remembered password.
                self.limiter
                    .check(user, addr)
                    .map_err(AuthError::RateLimited)?;
                let record = self.users.get(user).await?;
                if let Some(u) = &record
                    && self.basic.hit(u, password)
                {
                    return Ok(Principal::of(u));
                }
                // The same credential arriving at once is checked once.
                let _turn = self.basic.turn(user, password).await;
                let record = self.users.get(user).await?;
                if let Some(u) = &record
                    && self.basic.hit(u, password)
                {
                    return Ok(Principal::of(u));
                }
                let u = self
                    .check_password(user, record, password, None, addr)
                    .await?;
                self.basic.remember(&u, password);
                Ok(Principal::of(&u))
            }
        }
    }

    /// The principal a valid access token stands for: signature, expiry,
    /// revocation and the user's existence are checked; roles are current.
    pub async fn principal_for_token(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.keys.decode(token, TokenKind::Access)?;
        self.check_not_revoked(&claims).await?;
        self.bound_user(&claims).await.map(|u| Principal::of(&u))
    }

    /// The current user of `claims`, if the token was issued to this user
    /// (same id) since its last password change (same epoch). A token
    /// signed offline carries no binding; it must have been issued since
    /// the user was created or last changed password.
    async fn bound_user(&self, claims: &Claims) -> Result<Arc<User>, AuthError> {
        let user = self.current_user(&claims.sub).await?;
        let bound = if claims.uid.is_empty() {
            claims.iat >= user.tokens_since
        } else {
            user.token_binding() == claims.uid
        };
        if !bound {
            return Err(AuthError::Unauthenticated(format!(
                "the token was issued to an earlier user `{}` or before its password changed",
                claims.sub
            )));
        }
        Ok(user)
    }

    /// The principal of a client certificate with common name `cn`: the
    /// user of that name if there is one, else a principal with no roles.
    pub async fn principal_for_certificate(&self, cn: &str) -> Result<Principal, AuthError> {
        Ok(match self.users.get_shared(cn).await? {
            Some(u) => Principal::of(&u),
            None => Principal {
                subject: cn.to_string(),
                roles: vec![],
                namespaces: vec![],
            },
        })
    }

    /// Forgets the user records kept parsed: another replica changed users.
    pub fn forget_cached_users(&self) {
        self.users.forget_cached();
    }

    async fn current_user(&self, name: &str) -> Result<Arc<User>, AuthError> {
        self.users.get_shared(name).await?.ok_or_else(|| {
            AuthError::Unauthenticated(format!("the user `{name}` of this token no longer exists"))
        })
    }

    async fn check_not_revoked(&self, claims: &Claims) -> Result<(), AuthError> {
        if self
            .store
            .get(AUTH_NS, REVOKED, &claims.jti)
            .await?
            .is_some()
        {
            return Err(AuthError::Unauthenticated(
                "the token has been revoked".into(),
            ));
        }
        Ok(())
    }

    /// Checks `user`'s password (and TOTP code when enrolled), rate-limited
    /// per user and per `addr`. Unknown users cost as much as known ones.
    pub async fn verify_password(
        &self,
        user: &str,
        password: &str,
        otp: Option<&str>,
        addr: IpAddr,
    ) -> Result<Principal, AuthError> {
        let record = self.users.get(user).await?;
        self.check_password(user, record, password, otp, addr)
            .await
            .map(|u| Principal::of(&u))
    }

    /// Password checks (hashes computed) since start.
    pub fn password_checks(&self) -> u64 {
        self.passwords.verified()
    }

    /// The password (and code) check behind [`Auth::verify_password`], on a
    /// record already read (`None`: no such user, checked against a dummy
    /// hash). The attempt is recorded by the limiter before the hash is
    /// computed (in one step with the lockout check), on the bounded
    /// [`PasswordChecker`].
    async fn check_password(
        &self,
        user: &str,
        record: Option<User>,
        password: &str,
        otp: Option<&str>,
        addr: IpAddr,
    ) -> Result<User, AuthError> {
        self.limiter
            .begin(user, addr)
            .map_err(AuthError::RateLimited)?;
        let hash = record
            .as_ref()
            .map_or(self.dummy_hash.clone(), |u| u.password_hash.clone());
        let password_ok = self.passwords.verify(hash, password.to_string()).await;
        let wrong = || AuthError::Unauthenticated("wrong user name or password".into());
        let Some(record) = record.filter(|_| password_ok) else {
            return Err(wrong());
        };
        if let Some(secret) = &record.totp_secret {
            match otp {
                Some(code) if self.accept_code(&record, secret, code).await? => {}
                Some(_) => {
                    return Err(AuthError::Unauthenticated("wrong one-time code".into()));
                }
                None => {
                    self.limiter.release(user, addr);
                    return Err(AuthError::Unauthenticated(
                        "this user has a second factor: a one-time code is required (log in for a token)"
                            .into(),
                    ));
                }
            }
        }
        self.limiter.succeed(user, addr);
        Ok(record)
    }

    /// Whether `code` is `record`'s code for a time step later than the
    /// last one accepted for the user; if so, that step is recorded
    /// (compare-and-swap, made durable), so the same code cannot be used
    /// twice, on this server or another sharing its store.
    async fn accept_code(
        &self,
        record: &User,
        secret: &str,
        code: &str,
    ) -> Result<bool, AuthError> {
        let Some(step) = totp::matching_step(secret, code) else {
            return Ok(false);
        };
        loop {
            let previous = self.store.get(AUTH_NS, TOTP_STEPS, &record.name).await?;
            let last = previous
                .as_deref()
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_be_bytes);
            if step <= last {
                return Ok(false);
            }
            let swapped = self
                .store
                .compare_and_swap(
                    AUTH_NS,
                    TOTP_STEPS,
                    &record.name,
                    previous.as_deref(),
                    Some(&step.to_be_bytes()),
                )
                .await?;
            if swapped {
                self.store.commit().await?;
                return Ok(true);
            }
        }
    }

    /// Whether `principal` holds `permission`.
    pub fn grants(&self, principal: &Principal, permission: &str) -> bool {
        self.roles.grants(&principal.roles, permission)
    }

    /// Issues a token of `kind` for the existing user `subject`;
    /// `ttl_secs = 0` means the default lifetime for that kind.
    pub async fn issue(
        &self,
        subject: &str,
        kind: TokenKind,
        ttl_secs: u64,
    ) -> Result<String, AuthError> {
        let user = self
            .current_user(subject)
            .await
            .map_err(|_| AuthError::Invalid(format!("there is no user `{subject}`")))?;
        let ttl = match (kind, ttl_secs) {
            (TokenKind::Access, 0) => self.config.token_lifetime_secs.into(),
            (TokenKind::Access, t) => t.min(self.config.max_token_lifetime_secs.into()),
            (TokenKind::Refresh, _) => self.config.refresh_lifetime_secs.into(),
        };
        self.keys
            .issue_bound(subject, &user.token_binding(), kind, ttl)
            .map(|(t, _)| t)
            .map_err(|e| AuthError::Internal(format!("signing the token failed: {e}")))
    }

    /// Exchanges a valid, unrevoked refresh token for a new access token.
    pub async fn refresh(&self, refresh_token: &str, ttl_secs: u64) -> Result<String, AuthError> {
        let claims = self.keys.decode(refresh_token, TokenKind::Refresh)?;
        self.check_not_revoked(&claims).await?;
        self.bound_user(&claims).await?;
        self.issue(&claims.sub, TokenKind::Access, ttl_secs).await
    }

    /// Revokes `token` (access or refresh) until it would have expired anyway.
    pub async fn revoke(&self, token: &str) -> Result<(), AuthError> {
        let claims = match self.keys.decode(token, TokenKind::Access) {
            Err(TokenError::WrongKind(_)) => self.keys.decode(token, TokenKind::Refresh)?,
            other => other?,
        };
        self.store
            .set(AUTH_NS, REVOKED, &claims.jti, &claims.exp.to_be_bytes())
            .await?;
        self.store.commit().await?;
        tracing::info!(user = %claims.sub, jti = %claims.jti, "token revoked");
        Ok(())
    }

    /// Drops revocation entries of tokens that have expired anyway.
    async fn prune_revoked(&self) -> Result<(), StoreError> {
        let horizon = tokens::now_secs().saturating_sub(self.config.clock_skew_secs.into());
        for (jti, exp) in scan_all(self.store.as_ref(), AUTH_NS, REVOKED, "").await? {
            let exp = <[u8; 8]>::try_from(exp.as_slice())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if exp < horizon {
                self.store.delete(AUTH_NS, REVOKED, &jti).await?;
            }
        }
        self.store.commit().await
    }
}

/// Where the shared HS256 secret is kept: namespace, bucket, key.
const SHARED_SECRET: (&str, &str, &str) = ("baton:secrets", "jwt", "hs256");

/// The token keys `[auth]` names. With a `shared` store (one that several
/// machines share) the HS256 secret is kept there, created by whichever
/// process needs it first, so that a token from one machine works on all;
/// otherwise it is `<data>/jwt-secret`, generated only when `create` is set.
pub async fn token_keys(
    manifest: &Manifest,
    data_dir: &Path,
    shared: Option<&dyn KvStore>,
    create: bool,
) -> anyhow::Result<TokenKeys> {
    match shared {
        Some(store) if manifest.auth.algorithm == crate::manifest::JwtAlgorithm::HS256 => {
            let (ns, bucket, key) = SHARED_SECRET;
            let secret = crate::store::create_once(store, ns, bucket, key, || {
                Ok::<_, StoreError>(rand::random::<[u8; 64]>().to_vec())
            })
            .await?;
            TokenKeys::load_with(manifest, || Ok(secret))
        }
        _ => TokenKeys::load(manifest, data_dir, create),
    }
}

/// A random 24-character password of letters and digits.
pub fn random_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}

/// Now as RFC 3339 UTC with seconds.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub use baton_parse::write_private_file;
