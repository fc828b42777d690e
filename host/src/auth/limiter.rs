//! Failed logins are counted per user and per client address in a fixed
//! window; past the limit, attempts are refused (without checking the
//! password) until the window ends. A success clears the user's count.
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
        let now = Instant::now();
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
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

    /// Records a failed attempt for `user` from `addr`.
    pub fn fail(&self, user: &str, addr: IpAddr) {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
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
    }

    /// Records a success: the user's failures are forgotten.
    pub fn succeed(&self, user: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows.remove(&format!("u\0{user}"));
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
            assert!(l.check("ann", A).is_ok());
            l.fail("ann", A);
        }
        let wait = l.check("ann", B).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(l.check("bob", A).is_ok(), "other users are not locked");
        l.succeed("ann");
        assert!(l.check("ann", A).is_ok());
    }

    #[test]
    fn locks_an_address_across_users() {
        let l = LoginLimiter::new(100, 2, Duration::from_secs(60));
        l.fail("a", A);
        l.fail("b", A);
        assert!(l.check("c", A).is_err());
        assert!(l.check("c", B).is_ok());
    }

    #[test]
    fn the_window_expires() {
        let l = LoginLimiter::new(1, 100, Duration::from_millis(1));
        l.fail("ann", A);
        std::thread::sleep(Duration::from_millis(5));
        assert!(l.check("ann", A).is_ok());
    }
}
