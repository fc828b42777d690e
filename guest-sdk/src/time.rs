//! Wall-clock time as the APIs print it (RFC 3339, UTC), without a calendar crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
///
/// ```
/// assert!(baton_sdk::time::now_millis() > 1_700_000_000_000);
/// ```
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Now as RFC 3339 UTC with milliseconds, e.g. `2026-11-23T19:04:05.123Z`.
///
/// ```
/// let now = baton_sdk::time::now_rfc3339();
/// assert!(now.ends_with('Z') && now.len() == 24);
/// ```
pub fn now_rfc3339() -> String {
    rfc3339(now_millis())
}

/// `millis` since the epoch as RFC 3339 UTC with milliseconds.
///
/// ```
/// assert_eq!(baton_sdk::time::rfc3339(0), "1970-01-01T00:00:00.000Z");
/// assert_eq!(baton_sdk::time::rfc3339(1_795_460_645_123), "2026-11-23T19:04:05.123Z");
/// ```
pub fn rfc3339(millis: u64) -> String {
    let secs = millis / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        millis % 1000
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_460_645_123), "2026-11-23T19:04:05.123Z");
    }
}
