//! HTTP Basic credentials verified lately, and one password check at a time
//! per credential.
//!
//! argon2 is slow on purpose, so a Basic credential that verified is
//! remembered for a while (never for a user with a second factor). Requests
//! that bring the same user and password at the same moment (a client's
//! connection pool starting up, parallel scripts) wait for one check
//! instead of each running its own: each check in flight counts against the
//! login limiter until it ends, so eight concurrent requests with a right
//! password used to be refused with 429 past the fifth.

use super::users::User;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a verified Basic credential is remembered.
const TTL: Duration = Duration::from_secs(300);
/// Most remembered Basic credentials.
const MAX: usize = 10_000;

/// A digest of (user, password, stored hash): a password change forgets it.
type Key = [u8; 32];

/// Verified Basic credentials and the checks in flight.
#[derive(Default)]
pub struct BasicCache {
    verified: Mutex<HashMap<Key, Instant>>,
    checking: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
}

/// The right to check one credential; the next request with the same
/// credential waits until this is dropped.
pub struct Turn<'a> {
    cache: &'a BasicCache,
    key: Key,
    lock: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        drop(self.lock.take());
        let mut checking = lock(&self.cache.checking);
        // Only the map holds it now: nobody is waiting.
        if checking
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            checking.remove(&self.key);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn key(user: &str, password: &str, hash: &str) -> Key {
    let mut h = Sha256::new();
    for part in [user, password, hash] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.finalize().into()
}

impl BasicCache {
    /// Whether `password` was verified for `u` lately (never for MFA users).
    pub fn hit(&self, u: &User, password: &str) -> bool {
        if u.totp_secret.is_some() {
            return false;
        }
        let key = key(&u.name, password, &u.password_hash);
        lock(&self.verified)
            .get(&key)
            .is_some_and(|at| at.elapsed() < TTL)
    }

    /// Remembers that `password` is right for `u` as stored now.
    pub fn remember(&self, u: &User, password: &str) {
        let key = key(&u.name, password, &u.password_hash);
        let mut verified = lock(&self.verified);
        if verified.len() >= MAX {
            verified.retain(|_, at| at.elapsed() < TTL);
            if verified.len() >= MAX {
                verified.clear();
            }
        }
        verified.insert(key, Instant::now());
    }

    /// Waits until no other request is checking `password` for `user`, then
    /// holds that right until the returned turn is dropped.
    pub async fn turn(&self, user: &str, password: &str) -> Turn<'_> {
        let key = key(user, password, "");
        let m = lock(&self.checking).entry(key).or_default().clone();
        let guard = m.lock_owned().await;
        Turn {
            cache: self,
            key,
            lock: Some(guard),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn turns_for_one_credential_follow_each_other_and_leave_nothing_behind() {
        let cache = Arc::new(BasicCache::default());
        let first = cache.turn("ann", "pw").await;
        // Another credential is not held up.
        drop(cache.turn("ann", "other").await);
        let c = cache.clone();
        let second = tokio::spawn(async move {
            let _t = c.turn("ann", "pw").await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second.is_finished(), "the second turn waits for the first");
        drop(first);
        second.await.unwrap();
        assert!(lock(&cache.checking).is_empty());
    }
}
