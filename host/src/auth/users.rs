//! The user store: username → JSON record with an argon2id password hash,
//! roles, namespaces and an optional TOTP secret, kept on the storage floor
//! (bucket `users` of the host's namespace [`AUTH_NS`]).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::store::{KvStore, StoreError, scan_all};

/// The store namespace of auth's records; a handler's namespace never
/// holds `:`, so no handler can reach it.
pub const AUTH_NS: &str = "baton:auth";
/// The bucket of user records.
const USERS: &str = "users";

/// Shortest password accepted for a new or changed password.
pub const MIN_PASSWORD_LEN: usize = 8;

/// A stored user. Never serialised into an API reply: see [`UserView`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Generated when the user is created (a UUID), never reused: a later
    /// user of the same name has another. Empty in records from before ids.
    #[serde(default)]
    pub id: String,
    /// Bumped by every password change; with [`User::id`] it is what tokens
    /// are bound to ([`User::token_binding`]).
    #[serde(default)]
    pub token_epoch: u64,
    /// Seconds since the epoch of the creation or the last password
    /// change: tokens signed without a binding (`baton token` and the CLI
    /// sign offline, without the database) must be issued since.
    #[serde(default)]
    pub tokens_since: u64,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Role names (see `[auth.roles]`).
    pub roles: Vec<String>,
    /// Namespaces the user may act in; `*` = all.
    pub namespaces: Vec<String>,
    /// Base32 TOTP secret when the user enrolled a second factor.
    #[serde(default)]
    pub totp_secret: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl User {
    /// A new user record: a fresh id, token epoch 0, no second factor.
    pub fn new(name: &str, password_hash: String, roles: Vec<String>, now: &str) -> User {
        User {
            name: name.to_string(),
            id: uuid::Uuid::new_v4().to_string(),
            token_epoch: 0,
            tokens_since: crate::auth::tokens::now_secs(),
            password_hash,
            roles,
            namespaces: vec!["*".into()],
            totp_secret: None,
            created_at: now.to_string(),
            updated_at: now.to_string(),
        }
    }

    /// What this user's tokens carry as `uid` and must match: the id and
    /// the token epoch (empty for a record from before ids that never
    /// changed its password, so its tokens keep working).
    pub fn token_binding(&self) -> String {
        if self.id.is_empty() && self.token_epoch == 0 {
            String::new()
        } else {
            format!("{}.{}", self.id, self.token_epoch)
        }
    }
}

/// What the admin API and CLI show of a user: no hash, no secret.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserView {
    /// Login name.
    pub name: String,
    /// Role names.
    pub roles: Vec<String>,
    /// Namespaces.
    pub namespaces: Vec<String>,
    /// Whether a TOTP second factor is enrolled.
    pub mfa: bool,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            name: u.name.clone(),
            roles: u.roles.clone(),
            namespaces: u.namespaces.clone(),
            mfa: u.totp_secret.is_some(),
            created_at: u.created_at.clone(),
            updated_at: u.updated_at.clone(),
        }
    }
}

/// Failures of the user store.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The name is unusable.
    #[error("`{0}` is not a valid user name: use 1 to 64 letters, digits, `.`, `_`, `-` or `@`")]
    BadName(String),
    /// The password is too short.
    #[error("the password must be at least {MIN_PASSWORD_LEN} characters long")]
    WeakPassword,
    /// The store failed.
    #[error("the user store failed: {0}")]
    Storage(String),
    /// The store cannot be reached right now.
    #[error("the user store cannot be reached: {0}")]
    Unavailable(String),
    /// A stored record does not decode.
    #[error("the stored record of user `{0}` is corrupt")]
    Corrupt(String),
}

impl From<StoreError> for UserError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => UserError::Unavailable(m),
            e => UserError::Storage(e.to_string()),
        }
    }
}

/// Checks a user name.
pub fn validate_name(name: &str) -> Result<(), UserError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(UserError::BadName(name.to_string()))
    }
}

/// Hashes `password` with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, UserError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(UserError::WeakPassword);
    }
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| UserError::Storage(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Storage(e.to_string()))
}

/// Whether `password` matches the PHC `hash` (constant-time inside argon2).
pub fn verify_password_hash(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// The user records, with those read on the request path (every
/// token-authenticated request reads its user's current roles) kept parsed
/// in memory. Every write of this process goes through [`UserStore::put`]
/// or [`UserStore::delete`], which drop the cached record.
#[derive(Clone)]
pub struct UserStore {
    store: Arc<dyn KvStore>,
    cache: Arc<UserCache>,
}

/// Parsed user records, and a counter bumped by every write so that a read
/// racing a write never caches what the write replaced.
#[derive(Default)]
struct UserCache {
    users: RwLock<HashMap<String, Arc<User>>>,
    writes: AtomicU64,
}

/// Most records kept parsed; beyond this the cache starts again.
const MAX_CACHED_USERS: usize = 10_000;

impl UserStore {
    /// The users kept in `store`.
    pub fn new(store: Arc<dyn KvStore>) -> Self {
        UserStore {
            store,
            cache: Arc::default(),
        }
    }

    /// The user `name`, if any.
    pub async fn get(&self, name: &str) -> Result<Option<User>, UserError> {
        Ok(self.get_shared(name).await?.map(|u| (*u).clone()))
    }

    /// The user `name`, if any, shared with the cache (no copy).
    pub async fn get_shared(&self, name: &str) -> Result<Option<Arc<User>>, UserError> {
        if let Some(u) = self
            .cache
            .users
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(Some(u.clone()));
        }
        let writes = self.cache.writes.load(Ordering::Acquire);
        let Some(bytes) = self.store.get(AUTH_NS, USERS, name).await? else {
            return Ok(None);
        };
        let user: Arc<User> = serde_json::from_slice(&bytes)
            .map(Arc::new)
            .map_err(|_| UserError::Corrupt(name.to_string()))?;
        let mut cached = self.cache.users.write().unwrap_or_else(|e| e.into_inner());
        // A write since the read above may have replaced what was read.
        if self.cache.writes.load(Ordering::Acquire) == writes {
            if cached.len() >= MAX_CACHED_USERS {
                cached.clear();
            }
            cached.insert(name.to_string(), user.clone());
        }
        Ok(Some(user))
    }

    /// Forgets every cached record (another process changed users).
    pub fn forget_cached(&self) {
        let mut cached = self.cache.users.write().unwrap_or_else(|e| e.into_inner());
        self.cache.writes.fetch_add(1, Ordering::AcqRel);
        cached.clear();
    }

    /// Forgets the cached record of `name` after a write to it.
    fn written(&self, name: &str) {
        let mut cached = self.cache.users.write().unwrap_or_else(|e| e.into_inner());
        self.cache.writes.fetch_add(1, Ordering::AcqRel);
        cached.remove(name);
    }

    /// Creates or replaces `user`, durably.
    pub async fn put(&self, user: &User) -> Result<(), UserError> {
        validate_name(&user.name)?;
        let bytes = serde_json::to_vec(user).map_err(|e| UserError::Storage(e.to_string()))?;
        let written = self.store.set(AUTH_NS, USERS, &user.name, &bytes).await;
        self.written(&user.name);
        written?;
        self.store.commit().await?;
        Ok(())
    }

    /// Deletes `name`; whether it existed.
    pub async fn delete(&self, name: &str) -> Result<bool, UserError> {
        let removed = self.store.delete(AUTH_NS, USERS, name).await;
        self.written(name);
        let existed = removed?;
        self.store.commit().await?;
        Ok(existed)
    }

    /// Every user, by name.
    pub async fn list(&self) -> Result<Vec<User>, UserError> {
        scan_all(self.store.as_ref(), AUTH_NS, USERS, "")
            .await?
            .into_iter()
            .map(|(name, bytes)| {
                serde_json::from_slice(&bytes).map_err(|_| UserError::Corrupt(name))
            })
            .collect()
    }

    /// Whether there is no user at all.
    pub async fn is_empty(&self) -> Result<bool, UserError> {
        Ok(self
            .store
            .scan(AUTH_NS, USERS, "", None, 1)
            .await?
            .is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_per_salt() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$"));
        assert!(verify_password_hash(&a, "correct horse"));
        assert!(!verify_password_hash(&a, "wrong horse"));
        assert!(!verify_password_hash("garbage", "correct horse"));
        assert!(matches!(
            hash_password("short"),
            Err(UserError::WeakPassword)
        ));
    }

    #[tokio::test]
    async fn store_round_trips_and_rejects_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        let users = UserStore::new(Arc::new(crate::store::SledStore::open(dir.path()).unwrap()));
        assert!(users.is_empty().await.unwrap());
        let mut u = User::new("ann", "x".into(), vec!["viewer".into()], "t");
        users.put(&u).await.unwrap();
        assert_eq!(users.get("ann").await.unwrap().unwrap(), u);
        // A change is seen at once, through the cache and through a clone
        // of the store (the server hands clones around).
        let clone = users.clone();
        assert_eq!(clone.get("ann").await.unwrap().unwrap().roles, ["viewer"]);
        u.roles = vec!["admin".into()];
        users.put(&u).await.unwrap();
        assert_eq!(clone.get("ann").await.unwrap().unwrap().roles, ["admin"]);
        assert_eq!(users.get("ann").await.unwrap().unwrap(), u);
        assert_eq!(users.list().await.unwrap().len(), 1);
        u.name = "a b".into();
        assert!(matches!(users.put(&u).await, Err(UserError::BadName(_))));
        assert!(users.delete("ann").await.unwrap());
        assert!(clone.get("ann").await.unwrap().is_none());
        assert!(!users.delete("ann").await.unwrap());
    }
}
