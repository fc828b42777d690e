//! TOTP second factor (RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step) with
//! `totp-rs`, whose check compares codes in constant time.

use totp_rs::{Algorithm, Secret, TOTP};

/// A fresh enrolment: the secret to store and the `otpauth://` URL to show once.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Enrolment {
    /// Base32 secret, for authenticator apps that take it typed in.
    pub secret: String,
    /// `otpauth://totp/...` for QR codes.
    pub otpauth_url: String,
}

/// Seconds per time step.
const STEP_SECS: u64 = 30;

fn totp(secret_b32: &str, issuer: &str, account: &str) -> Option<TOTP> {
    totp_with_skew(secret_b32, issuer, account, 1)
}

fn totp_with_skew(secret_b32: &str, issuer: &str, account: &str, skew: u8) -> Option<TOTP> {
    let bytes = Secret::Encoded(secret_b32.to_string()).to_bytes().ok()?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        skew,
        STEP_SECS,
        bytes,
        Some(issuer.replace(':', "-")),
        account.replace(':', "-"),
    )
    .ok()
}

/// Generates a new secret for `account`.
pub fn enrol(issuer: &str, account: &str) -> Enrolment {
    let secret = match Secret::generate_secret().to_encoded() {
        Secret::Encoded(s) => s,
        Secret::Raw(_) => unreachable!("to_encoded returns the encoded form"),
    };
    let otpauth_url = totp(&secret, issuer, account)
        .map(|t| t.get_url())
        .unwrap_or_default();
    Enrolment {
        secret,
        otpauth_url,
    }
}

/// Whether `code` is valid now for `secret_b32`.
pub fn check(secret_b32: &str, code: &str) -> bool {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    totp(secret_b32, "baton", "user")
        .and_then(|t| t.check_current(code).ok())
        .unwrap_or(false)
}

/// The time step (seconds since the epoch / 30) whose code `code` is, among
/// the steps accepted now (the current one ±1), if any. A caller that
/// remembers the last step accepted per user refuses a code used before
/// (RFC 6238 §5.2).
pub fn matching_step(secret_b32: &str, code: &str) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp_with_skew(secret_b32, "baton", "user", 0)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs()
        / STEP_SECS;
    // Newest first: a code valid for two steps counts as the later one.
    [now + 1, now, now.saturating_sub(1)]
        .into_iter()
        .find(|step| t.check(code, step * STEP_SECS))
}

/// The code valid now (for tests and the CLI's enrolment check).
pub fn current_code(secret_b32: &str) -> Option<String> {
    totp(secret_b32, "baton", "user").and_then(|t| t.generate_current().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_code_checks_and_garbage_does_not() {
        let e = enrol("baton", "ann");
        assert!(
            e.otpauth_url.starts_with("otpauth://totp/"),
            "{}",
            e.otpauth_url
        );
        let code = current_code(&e.secret).unwrap();
        assert!(check(&e.secret, &code));
        assert!(matching_step(&e.secret, &code).is_some());
        assert!(matching_step(&e.secret, "12345").is_none());
        assert!(!check(&e.secret, "12345"));
        assert!(!check(&e.secret, "abcdef"));
        assert!(!check("not base32!", &code));
    }
}
