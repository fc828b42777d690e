//! The schedule calls of `baton:api/jobs` (`schedule`, `unschedule`,
//! `schedules`): conversions between the WIT records and the engine's.

use crate::jobs::schedules::SCHEDULE_LABEL;
use crate::jobs::{NewSchedule, ScheduleRecord};
use crate::manifest::schedule::When;
use crate::runtime::bindings::jobs;

/// The engine's form of a `schedule-spec` (checked by the engine).
pub fn new_schedule(spec: jobs::ScheduleSpec) -> NewSchedule {
    NewSchedule {
        name: spec.name,
        timing: match spec.timing {
            jobs::ScheduleTiming::Cron(c) => When::Cron(c),
            jobs::ScheduleTiming::EveryMs(ms) => When::EveryMs(ms),
        },
        job: super::jobs::new_job(spec.job),
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
