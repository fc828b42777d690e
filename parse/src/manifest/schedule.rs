//! Schedules: when a job is spawned on a timer. `[[handler.schedule]]` in
//! the manifest, or `jobs.schedule` at run time; both are a [`When`].

use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// Finished jobs a schedule keeps by default (older ones are removed).
pub const DEFAULT_KEEP_JOBS: u32 = 100;
/// Most finished jobs a schedule may keep.
pub const MAX_KEEP_JOBS: u32 = 10_000;
/// Shortest interval a schedule may have.
pub const MIN_INTERVAL_MS: u64 = 100;
/// Longest schedule name.
pub const MAX_NAME_LEN: usize = 64;

/// When a schedule fires, in UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// A cron expression: five fields (minute hour day-of-month month
    /// day-of-week), or six with seconds first; names, ranges, steps, lists,
    /// `L`, `W`, `#` and `@hourly`-style nicknames.
    Cron(String),
    /// Every so many milliseconds, counted from the schedule's creation.
    EveryMs(u64),
}

impl When {
    /// A cron schedule, or why `expr` is not one.
    pub fn cron(expr: &str) -> Result<When, String> {
        croner::Cron::from_str(expr)
            .map_err(|e| format!("`{expr}` is not a cron expression: {e}"))?;
        Ok(When::Cron(expr.trim().to_string()))
    }

    /// An interval schedule, or why `ms` is too short.
    pub fn every(ms: u64) -> Result<When, String> {
        if ms < MIN_INTERVAL_MS {
            return Err(format!(
                "an interval must be at least {MIN_INTERVAL_MS} ms (got {ms})"
            ));
        }
        Ok(When::EveryMs(ms))
    }

    /// The first time strictly after `now_ms` that this fires; intervals
    /// count from `anchor_ms`. `None` for a cron expression that never
    /// fires again (e.g. a 30th of February).
    pub fn next_after(&self, anchor_ms: u64, now_ms: u64) -> Option<u64> {
        match self {
            When::EveryMs(every) => {
                let every = (*every).max(1);
                if now_ms < anchor_ms {
                    return Some(anchor_ms);
                }
                let periods = (now_ms - anchor_ms) / every + 1;
                anchor_ms.checked_add(periods.checked_mul(every)?)
            }
            When::Cron(expr) => {
                use chrono::TimeZone;
                let cron = croner::Cron::from_str(expr).ok()?;
                // Whole seconds: croner keeps the milliseconds it is given.
                let now = chrono::Utc
                    .timestamp_opt(i64::try_from(now_ms / 1000).ok()?, 0)
                    .single()?;
                let next = cron.find_next_occurrence(&now, false).ok()?;
                u64::try_from(next.timestamp_millis()).ok()
            }
        }
    }
}

/// `[[handler.schedule]]`: a job spawned by the host at the times `cron` or
/// `interval` says, for as long as the manifest declares it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Unique among the handler's schedules; default: the job's `kind`.
    pub name: Option<String>,
    /// A cron expression in UTC (see [`When::Cron`]).
    pub cron: Option<String>,
    /// An interval such as `"30s"`, `"5m"` or `"1h 30m"`.
    pub interval: Option<String>,
    /// The job's kind (what `run-job` dispatches on).
    pub kind: String,
    /// The job's input, as text.
    #[serde(default)]
    pub input: String,
    /// Wall clock per attempt; default: the handler's `job_timeout_ms`.
    pub timeout_ms: Option<u64>,
    /// Attempts per tick (default 1).
    #[serde(default)]
    pub max_attempts: u32,
    /// How many of its jobs are kept once finished (default 100): a tick
    /// removes the oldest beyond that, with their events.
    pub keep_jobs: Option<u32>,
}

impl ScheduleSpec {
    /// Its name.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.kind)
    }

    /// When it fires, or why that cannot be told.
    pub fn when(&self) -> Result<When, String> {
        match (&self.cron, &self.interval) {
            (Some(c), None) => When::cron(c),
            (None, Some(i)) => {
                let d = humantime::parse_duration(i).map_err(|e| {
                    format!("`{i}` is not an interval such as \"30s\" or \"5m\": {e}")
                })?;
                When::every(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            }
            _ => Err("needs exactly one of `cron` or `interval`".to_string()),
        }
    }

    /// Checks it; on error, why.
    pub fn check(&self) -> Result<(), String> {
        check_name(self.name())?;
        if self.kind.is_empty() || self.kind.len() > 256 {
            return Err("`kind` must be 1 to 256 characters".to_string());
        }
        if self.timeout_ms == Some(0) {
            return Err("`timeout_ms` must be at least 1".to_string());
        }
        if self.max_attempts > 100 {
            return Err("`max_attempts` is at most 100".to_string());
        }
        if self.keep_jobs.is_some_and(|k| k == 0 || k > MAX_KEEP_JOBS) {
            return Err(format!("`keep_jobs` must be 1 to {MAX_KEEP_JOBS}"));
        }
        self.when().map(drop)
    }
}

/// Checks a schedule name: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a schedule name: 1 to {MAX_NAME_LEN} letters, digits, `.`, `_` or `-`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    #[test]
    fn intervals_keep_their_phase_and_skip_missed_periods() {
        let w = When::every(10_000).unwrap();
        assert_eq!(w.next_after(1_000, 1_000), Some(11_000));
        assert_eq!(w.next_after(1_000, 10_999), Some(11_000));
        assert_eq!(w.next_after(1_000, 11_000), Some(21_000));
        // After a long stop: the next period to come, not every missed one.
        assert_eq!(w.next_after(1_000, 1_000_005), Some(1_001_000));
        assert_eq!(w.next_after(5_000, 0), Some(5_000));
        assert!(When::every(99).is_err());
    }

    #[test]
    fn cron_expressions_fire_in_utc() {
        // 2026-12-07T04:36:00Z
        let now = 1_796_618_160_000;
        let every5 = When::cron("*/5 * * * *").unwrap();
        assert_eq!(every5.next_after(0, now), Some(1_796_618_400_000)); // 04:40
        let daily = When::cron("0 3 * * *").unwrap();
        assert_eq!(daily.next_after(0, now), Some(now + (22 * 60 + 24) * MIN)); // 03:00 tomorrow
        let seconds = When::cron("*/10 * * * * *").unwrap();
        assert_eq!(seconds.next_after(0, now + 1), Some(now + 10_000));
        assert_eq!(
            When::cron("@hourly").unwrap().next_after(0, now),
            Some(now + 24 * MIN)
        );
        assert!(When::cron("61 * * * *").is_err());
        assert!(When::cron("not cron").is_err());
        assert_eq!(
            When::cron("0 0 30 2 *").map(|w| w.next_after(0, now)),
            Ok(None)
        );
    }

    #[test]
    fn specs_need_one_timing_a_kind_and_a_plain_name() {
        let spec = |cron: Option<&str>, interval: Option<&str>| ScheduleSpec {
            name: None,
            cron: cron.map(String::from),
            interval: interval.map(String::from),
            kind: "watch".into(),
            input: String::new(),
            timeout_ms: None,
            max_attempts: 0,
            keep_jobs: None,
        };
        assert_eq!(spec(None, Some("90s")).when(), Ok(When::EveryMs(90_000)));
        assert_eq!(
            spec(None, Some("1h 30m")).when(),
            Ok(When::EveryMs(5_400_000))
        );
        assert!(spec(Some("* * * * *"), None).check().is_ok());
        assert!(
            spec(None, None)
                .check()
                .unwrap_err()
                .contains("exactly one")
        );
        assert!(spec(Some("* * * * *"), Some("1m")).check().is_err());
        assert!(
            spec(None, Some("soon"))
                .check()
                .unwrap_err()
                .contains("soon")
        );
        assert_eq!(spec(None, Some("1m")).name(), "watch");
        let mut bad = spec(None, Some("1m"));
        bad.name = Some("a b".into());
        assert!(bad.check().is_err());
        bad.name = None;
        bad.keep_jobs = Some(0);
        assert!(bad.check().unwrap_err().contains("keep_jobs"));
        bad.keep_jobs = Some(5);
        assert!(bad.check().is_ok());
        bad.kind = String::new();
        assert!(bad.check().is_err());
    }
}
