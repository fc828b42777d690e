//! Password verification with bounded concurrency and bounded memory.
//!
//! argon2id with the default parameters fills 19 MiB per check. Run on
//! tokio's blocking pool without a bound, N simultaneous logins (which need
//! no credentials to send) cost N × 19 MiB, and the allocator keeps that
//! memory afterwards. Here at most `permits` checks run at once, each on
//! one of `permits` block buffers allocated on first use and reused; every
//! other check waits for a permit. Memory is therefore at most
//! `permits` × the argon2 memory cost, whatever the load.

use argon2::password_hash::{PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Semaphore;

/// Runs argon2 verifications, at most `permits` at once; see the module docs.
pub struct PasswordChecker {
    permits: Semaphore,
    /// Idle block buffers, at most one per permit.
    buffers: Mutex<Vec<Vec<Block>>>,
    /// Blocks of the largest buffer kept for reuse (the default memory cost).
    keep_blocks: usize,
    /// Verifications run so far (hashes computed, right or wrong).
    verified: AtomicU64,
}

impl PasswordChecker {
    /// A checker running at most `permits` (≥ 1) verifications at once.
    pub fn new(permits: usize) -> Self {
        PasswordChecker {
            permits: Semaphore::new(permits.max(1)),
            buffers: Mutex::new(Vec::new()),
            keep_blocks: Params::default().block_count(),
            verified: AtomicU64::new(0),
        }
    }

    /// How many hashes have been computed since start.
    pub fn verified(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
    }

    /// Whether `password` matches the PHC string `hash`. Waits for a permit,
    /// then hashes on the blocking pool.
    pub async fn verify(self: &std::sync::Arc<Self>, hash: String, password: String) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.verify_now(&hash, &password))
            .await
            .unwrap_or(false)
    }

    fn verify_now(&self, hash: &str, password: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let Some(expected) = parsed.hash else {
            return false;
        };
        let (Ok(algorithm), Ok(params)) = (
            Algorithm::try_from(parsed.algorithm),
            Params::try_from(&parsed),
        ) else {
            return false;
        };
        let version = parsed
            .version
            .map_or(Ok(Version::default()), Version::try_from);
        let (Ok(version), Some(salt)) = (version, parsed.salt) else {
            return false;
        };
        let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
        let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
            return false;
        };
        let blocks = params.block_count();
        let mut buffer = self.take_buffer(blocks);
        let mut out = vec![0u8; expected.len()];
        let argon = Argon2::new(algorithm, version, params);
        let hashed = argon.hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            &mut buffer[..blocks],
        );
        self.give_back(buffer);
        self.verified.fetch_add(1, Ordering::Relaxed);
        // `Output`'s equality is constant-time.
        hashed.is_ok() && argon2::password_hash::Output::new(&out).is_ok_and(|o| o == expected)
    }

    /// A buffer of at least `blocks` blocks: an idle one, or a new one.
    fn take_buffer(&self, blocks: usize) -> Vec<Block> {
        let idle = self.buffers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut buffer = idle.unwrap_or_default();
        if buffer.len() < blocks {
            buffer.resize(blocks, Block::default());
        }
        buffer
    }

    /// Keeps `buffer` for the next check, unless it is larger than the
    /// default memory cost (a hash made with other parameters).
    fn give_back(&self, buffer: Vec<Block>) {
        if buffer.len() <= self.keep_blocks {
            self.buffers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn verifies_like_argon2_and_reuses_buffers() {
        let hash = crate::auth::users::hash_password("correct horse").unwrap();
        let checker = Arc::new(PasswordChecker::new(2));
        let checks = (0..6).map(|i| {
            let (c, h) = (checker.clone(), hash.clone());
            let pw = if i % 2 == 0 {
                "correct horse"
            } else {
                "wrong horse"
            };
            tokio::spawn(async move { c.verify(h, pw.into()).await })
        });
        let mut results = Vec::new();
        for c in checks {
            results.push(c.await.unwrap());
        }
        assert_eq!(results, [true, false, true, false, true, false]);
        assert!(!checker.verify("garbage".into(), "x".into()).await);
        assert_eq!(checker.verified(), 6);
        let idle = checker.buffers.lock().unwrap().len();
        assert!((1..=2).contains(&idle), "{idle} buffers kept");
    }
}
