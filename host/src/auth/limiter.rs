//! Failed logins are counted per user and per client address in a fixed
//! window; past the limit, attempts are refused (without checking the
//! password) until the window ends. An attempt is counted when it begins
//! (check and record are one step under one lock) and uncounted if it
//! succeeds; a success clears the user's count.
//!
//! Hand-written rather than `governor`: we limit *failures*, not attempts,
//! and need "retry after" per key, which is a dozen lines on a map.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys kept before expired windows are pruned.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Counts failed logins; see the module docs.
#[derive(Debug)]
pub struct LoginLimiter {
    max_per_user: u32,
    max_per_address: u32,
    window: Duration,
    windows: Mutex<HashMap<String, Window>>,
}

impl LoginLimiter {
    /// A limiter allowing `max_per_user` and `max_per_address` failures per `window`.
    pub fn new(max_per_user: u32, max_per_address: u32, window: Duration) -> Self {
        LoginLimiter {
            max_per_user,
            max_per_address,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn keys(user: &str, addr: IpAddr) -> [String; 2] {
        [format!("u\0{user}"), format!("a\0{addr}")]
    }

    /// `Err(seconds)` when `user` or `addr` is locked out for that long.
    pub fn check(&self, user: &str, addr: IpAddr) -> Result<(), u64> {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        self.wait(&windows, user, addr, Instant::now())
    }

    fn wait(
        &self,
        windows: &HashMap<String, Window>,
        user: &str,
        addr: IpAddr,
        now: Instant,
    ) -> Result<(), u64> {
        let [u, a] = Self::keys(user, addr);
        let mut wait = Duration::ZERO;
        for (key, max) in [(u, self.max_per_user), (a, self.max_per_address)] {
            if let Some(w) = windows.get(&key) {
                let age = now.duration_since(w.started);
                if age < self.window && w.failures >= max {
                    wait = wait.max(self.window - age);
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait.as_secs().max(1))
        }
    }

    /// Checks and records in one step: `Err(seconds)` when `user` or `addr`
    /// is locked out; otherwise the attempt is counted as a failure until
    /// [`LoginLimiter::succeed`] or [`LoginLimiter::release`] says otherwise.
    /// So N simultaneous attempts past the limit are refused before any
    /// password is checked, instead of all passing a check made before
    /// the first failure was recorded.
    pub fn begin(&self, user: &str, addr: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        self.wait(&windows, user, addr, now)?;
        if windows.len() > PRUNE_ABOVE {
            windows.retain(|_, w| now.duration_since(w.started) < self.window);
        }
        for key in Self::keys(user, addr) {
            let w = windows.entry(key).or_insert(Window {
                started: now,
                failures: 0,
            });
            if now.duration_since(w.started) >= self.window {
                *w = Window {
                    started: now,
                    failures: 0,
                };
            }
            w.failures += 1;
        }
        Ok(())
    }

    /// An attempt begun with [`LoginLimiter::begin`] was not a failure
    /// after all (e.g. a code was missing, not wrong): it is uncounted.
    pub fn release(&self, user: &str, addr: IpAddr) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        for key in Self::keys(user, addr) {
            if let Some(w) = windows.get_mut(&key) {
                w.failures = w.failures.saturating_sub(1);
            }
        }
    }

    /// An attempt begun with [`LoginLimiter::begin`] succeeded: the user's
    /// failures are forgotten, and the address is not charged for it.
    pub fn succeed(&self, user: &str, addr: IpAddr) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let [u, a] = Self::keys(user, addr);
        windows.remove(&u);
        if let Some(w) = windows.get_mut(&a) {
            w.failures = w.failures.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn locks_a_user_after_the_limit_and_success_resets() {
        let l = LoginLimiter::new(3, 100, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(l.begin("ann", A).is_ok());
        }
        let wait = l.begin("ann", B).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(l.check("bob", A).is_ok(), "other users are not locked");
        l.succeed("ann", A);
        assert!(l.check("ann", A).is_ok());
    }

    #[test]
    fn locks_an_address_across_users() {
        let l = LoginLimiter::new(100, 2, Duration::from_secs(60));
        l.begin("a", A).unwrap();
        l.begin("b", A).unwrap();
        assert!(l.check("c", A).is_err());
        assert!(l.check("c", B).is_ok());
    }

    #[test]
    fn simultaneous_attempts_past_the_limit_are_refused_and_released_ones_uncounted() {
        let l = LoginLimiter::new(2, 100, Duration::from_secs(60));
        assert!(l.begin("ann", A).is_ok());
        assert!(l.begin("ann", A).is_ok());
        // Both still in flight: a third is refused at once.
        assert!(l.begin("ann", A).is_err());
        l.release("ann", A);
        assert!(l.begin("ann", A).is_ok());
    }

    #[test]
    fn the_window_expires() {
        let l = LoginLimiter::new(1, 100, Duration::from_millis(1));
        l.begin("ann", A).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(l.check("ann", A).is_ok());
    }
}
