//! The schedule calls of `baton:api/jobs` (`schedule`, `unschedule`,
//! `schedules`): conversions between the WIT records and the engine's.

use crate::jobs::schedules::SCHEDULE_LABEL;
use crate::jobs::{NewJob, NewSchedule, ScheduleRecord};
use crate::manifest::schedule::When;
use crate::runtime::bindings::jobs;

/// The engine's form of a `schedule-spec`.
pub fn new_schedule(spec: jobs::ScheduleSpec) -> NewSchedule {
    let j = spec.job;
    NewSchedule {
        name: spec.name,
        timing: match spec.timing {
            jobs::ScheduleTiming::Cron(c) => When::Cron(c),
            jobs::ScheduleTiming::EveryMs(ms) => When::EveryMs(ms),
        },
        job: NewJob {
            kind: j.kind,
            input: j.input,
            depends_on: j.depends_on,
            timeout_ms: j.timeout_ms,
            max_attempts: j.max_attempts,
            labels: j.labels,
        },
    }
}

/// Checks a cron expression before the engine stores it.
pub fn check_timing(s: &NewSchedule) -> Result<(), String> {
    match &s.timing {
        When::Cron(c) => When::cron(c).map(drop),
        When::EveryMs(ms) => When::every(*ms).map(drop),
    }
}

/// The WIT form of a stored schedule.
pub fn info(s: ScheduleRecord) -> jobs::ScheduleInfo {
    jobs::ScheduleInfo {
        timing: match s.timing {
            When::Cron(c) => jobs::ScheduleTiming::Cron(c),
            When::EveryMs(ms) => jobs::ScheduleTiming::EveryMs(ms),
        },
        job: jobs::JobSpec {
            kind: s.kind,
            input: s.input,
            depends_on: Vec::new(),
            timeout_ms: s.timeout_ms,
            max_attempts: s.max_attempts,
            labels: s
                .labels
                .into_iter()
                .filter(|(k, _)| k != SCHEDULE_LABEL)
                .collect(),
        },
        name: s.name,
        from_manifest: s.from_manifest,
        next_at_ms: s.next_at_ms,
        last_at_ms: s.last_at_ms,
        last_job: s.last_job,
        skipped: s.skipped,
    }
}
