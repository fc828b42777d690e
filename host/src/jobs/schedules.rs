//! Schedules: jobs the engine spawns on a timer (cron or interval, UTC).
//!
//! A schedule is a record in the job store; its `next_at_ms` is the tick to
//! come. A tick is one atomic store write (the schedule's next tick moves on
//! and the job is inserted), conditional on the tick still being due, so it
//! spawns its job exactly once, however many tickers race for it. After
//! downtime a due schedule fires once and its next tick is the first one to
//! come: missed ticks are not replayed. A tick whose previous job has not
//! ended spawns nothing (counted as `skipped`): a schedule never runs two
//! of its jobs at once.
//!
//! The engine keeps a copy of every schedule; the timer task wakes at the
//! earliest next tick (or when a schedule changes) and scans that copy:
//! schedules are few, so the scan is not indexed.

use super::engine::{JobEngine, JobError, NewJob};
use super::model::{ScheduleRecord, now_ms};
use crate::manifest::Manifest;
use crate::manifest::schedule::{ScheduleSpec, When};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// Longest sleep of the timer task (a safety net for clock changes).
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Schedules one handler may have.
pub const MAX_SCHEDULES: usize = 1000;
/// The label every scheduled job carries, naming its schedule.
pub const SCHEDULE_LABEL: &str = "schedule";

/// The engine's copy of every schedule, and the timer's wake-up.
#[derive(Default)]
pub struct Book {
    by_name: Mutex<BTreeMap<(String, String), ScheduleRecord>>,
    changed: Arc<Notify>,
}

impl Book {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), ScheduleRecord>> {
        self.by_name.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn put(&self, s: ScheduleRecord) {
        self.lock().insert((s.handler.clone(), s.name.clone()), s);
        self.changed.notify_one();
    }

    fn remove(&self, handler: &str, name: &str) {
        self.lock().remove(&(handler.to_string(), name.to_string()));
    }

    /// Replaces the copy with `stored` (another replica changed schedules).
    fn replace_all(&self, stored: Vec<ScheduleRecord>) {
        *self.lock() = stored
            .into_iter()
            .map(|s| ((s.handler.clone(), s.name.clone()), s))
            .collect();
        self.changed.notify_one();
    }
}

/// A schedule to create at run time.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    /// Its name.
    pub name: String,
    /// When it fires.
    pub timing: When,
    /// The job each tick spawns (no dependencies).
    pub job: NewJob,
}

/// Why a handler may not change schedule `name`.
fn owned_by_manifest(name: &str) -> JobError {
    JobError::Conflict(format!(
        "schedule `{name}` is declared in the manifest, which owns it"
    ))
}

/// Whether `a` and `b` spawn the same jobs at the same times.
fn same_definition(a: &ScheduleRecord, b: &ScheduleRecord) -> bool {
    (
        &a.timing,
        &a.kind,
        &a.input,
        a.timeout_ms,
        a.max_attempts,
        &a.labels,
        a.keep_jobs,
    ) == (
        &b.timing,
        &b.kind,
        &b.input,
        b.timeout_ms,
        b.max_attempts,
        &b.labels,
        b.keep_jobs,
    )
}

fn record(handler: &str, name: &str, timing: When, job: NewJob, manifest: bool) -> ScheduleRecord {
    let now = now_ms();
    ScheduleRecord {
        handler: handler.to_string(),
        name: name.to_string(),
        next_at_ms: timing.next_after(now, now),
        timing,
        kind: job.kind,
        input: job.input,
        timeout_ms: job.timeout_ms,
        max_attempts: job.max_attempts,
        labels: job.labels,
        from_manifest: manifest,
        created_at_ms: now,
        last_at_ms: None,
        last_job: None,
        skipped: 0,
        keep_jobs: crate::manifest::schedule::DEFAULT_KEEP_JOBS,
        recent: Vec::new(),
    }
}

fn manifest_record(handler: &str, spec: &ScheduleSpec) -> Result<ScheduleRecord, JobError> {
    let timing = spec.when().map_err(JobError::Invalid)?;
    let job = NewJob {
        kind: spec.kind.clone(),
        input: spec.input.clone().into_bytes(),
        timeout_ms: spec.timeout_ms,
        max_attempts: spec.max_attempts,
        ..NewJob::default()
    };
    let mut r = record(handler, spec.name(), timing, job, true);
    if let Some(k) = spec.keep_jobs {
        r.keep_jobs = k;
    }
    Ok(r)
}

impl JobEngine {
    /// Loads every schedule, brings the manifest's in line with the
    /// served manifest, and starts the timer task.
    /// Reads every schedule again (on a store that replicas share: those
    /// another replica made, changed or removed; the timer fires each once
    /// whichever replica gets there first).
    pub(super) async fn resync_schedules(&self) -> Result<(), JobError> {
        self.book.replace_all(self.store.schedules().await?);
        Ok(())
    }

    pub(super) async fn start_schedules(self: &Arc<Self>) -> Result<(), JobError> {
        for s in self.store.schedules().await? {
            self.book.put(s);
        }
        if let Some(app) = self.app() {
            self.sync_manifest(&app.manifest).await?;
        }
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(e) = engine.upgrade() else { return };
                let wait = e.tick().await;
                // The engine is not held while waiting, so that a server
                // shut down in-process releases its store at once.
                let changed = e.book.changed.clone();
                drop(e);
                tokio::select! {
                    _ = changed.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        });
        Ok(())
    }

    /// Brings `handler`'s manifest schedules in line with `specs`: new ones
    /// are created, changed ones start afresh, unchanged ones keep their
    /// next tick, and those no longer declared are removed.
    pub async fn sync_manifest_schedules(
        &self,
        handler: &str,
        specs: &[ScheduleSpec],
    ) -> Result<(), JobError> {
        let stored: Vec<ScheduleRecord> = self
            .book
            .lock()
            .values()
            .filter(|s| s.handler == handler)
            .cloned()
            .collect();
        for spec in specs {
            let mut fresh = manifest_record(handler, spec)?;
            let old = stored.iter().find(|s| s.name == fresh.name);
            if old.is_some_and(|s| s.from_manifest && same_definition(s, &fresh)) {
                continue;
            }
            fresh.recent = old.map(|s| s.recent.clone()).unwrap_or_default();
            self.store.put_schedule(&fresh).await?;
            tracing::info!(handler, schedule = %fresh.name, "schedule set from the manifest");
            self.book.put(fresh);
        }
        for s in stored {
            if s.from_manifest && !specs.iter().any(|spec| spec.name() == s.name) {
                self.store.delete_schedule(handler, &s.name).await?;
                self.book.remove(handler, &s.name);
                tracing::info!(handler, schedule = %s.name, "schedule removed with the manifest's");
            }
        }
        Ok(())
    }

    /// Brings every manifest schedule in line with `manifest`: those of
    /// handlers it no longer has are removed.
    pub async fn sync_manifest(&self, manifest: &Manifest) -> Result<(), JobError> {
        for h in &manifest.handlers {
            self.sync_manifest_schedules(&h.name, &h.schedules).await?;
        }
        let gone: Vec<ScheduleRecord> = self
            .book
            .lock()
            .values()
            .filter(|s| s.from_manifest && !manifest.handlers.iter().any(|h| h.name == s.handler))
            .cloned()
            .collect();
        for s in gone {
            self.store.delete_schedule(&s.handler, &s.name).await?;
            self.book.remove(&s.handler, &s.name);
        }
        Ok(())
    }

    /// Creates or replaces a run-time schedule of `handler`, durably.
    pub async fn schedule(
        &self,
        handler: &str,
        new: NewSchedule,
    ) -> Result<ScheduleRecord, JobError> {
        crate::manifest::schedule::check_name(&new.name).map_err(JobError::Invalid)?;
        if !new.job.depends_on.is_empty() {
            return Err(JobError::Invalid(
                "a scheduled job cannot depend on other jobs".into(),
            ));
        }
        super::engine::check_spec(&new.job)?;
        match &new.timing {
            When::Cron(c) => When::cron(c).map(drop),
            When::EveryMs(ms) => When::every(*ms).map(drop),
        }
        .map_err(JobError::Invalid)?;
        // The jobs kept by the schedule this one replaces are handed on, so
        // that they are still removed in their turn.
        let kept = {
            let book = self.book.lock();
            let key = (handler.to_string(), new.name.clone());
            match book.get(&key) {
                Some(s) if s.from_manifest => return Err(owned_by_manifest(&new.name)),
                Some(s) => s.recent.clone(),
                None => {
                    if book.keys().filter(|(h, _)| h == handler).count() >= MAX_SCHEDULES {
                        return Err(JobError::Invalid(format!(
                            "a handler may have at most {MAX_SCHEDULES} schedules"
                        )));
                    }
                    Vec::new()
                }
            }
        };
        let mut s = record(handler, &new.name, new.timing, new.job, false);
        s.recent = kept;
        self.store.put_schedule(&s).await?;
        self.store.commit().await?;
        self.book.put(s.clone());
        Ok(s)
    }

    /// Removes a run-time schedule; whether there was one.
    pub async fn unschedule(&self, handler: &str, name: &str) -> Result<bool, JobError> {
        let key = (handler.to_string(), name.to_string());
        match self.book.lock().get(&key) {
            None => return Ok(false),
            Some(s) if s.from_manifest => return Err(owned_by_manifest(name)),
            Some(_) => {}
        }
        let existed = self.store.delete_schedule(handler, name).await?;
        self.store.commit().await?;
        self.book.remove(handler, name);
        Ok(existed)
    }

    /// The schedules of `handler` (every handler's when `None`), by name.
    pub fn schedules(&self, handler: Option<&str>) -> Vec<ScheduleRecord> {
        self.book
            .lock()
            .values()
            .filter(|s| handler.is_none_or(|h| s.handler == h))
            .cloned()
            .collect()
    }

    /// Fires every due schedule; returns how long until the next is due.
    async fn tick(self: &Arc<Self>) -> Duration {
        let now = now_ms();
        let mounted = |h: &str| self.app().is_some_and(|a| a.registry.get(h).is_some());
        let due: Vec<ScheduleRecord> = self
            .book
            .lock()
            .values()
            .filter(|s| s.next_at_ms.is_some_and(|t| t <= now) && mounted(&s.handler))
            .cloned()
            .collect();
        for s in due {
            if let Err(e) = self.fire(s.clone(), now).await {
                tracing::error!(handler = %s.handler, schedule = %s.name, "a schedule's tick failed: {e}");
            }
        }
        let now = now_ms();
        // Schedules of handlers not mounted stay due; they are looked at
        // again at the next wake-up, within MAX_SLEEP.
        let next = self
            .book
            .lock()
            .values()
            .filter_map(|s| s.next_at_ms)
            .filter(|&t| t > now)
            .min();
        next.map_or(MAX_SLEEP, |t| Duration::from_millis(t - now).min(MAX_SLEEP))
    }

    /// One tick of `s`, due now.
    async fn fire(self: &Arc<Self>, s: ScheduleRecord, now: u64) -> Result<(), JobError> {
        let Some(due) = s.next_at_ms else {
            return Ok(());
        };
        let mut next = s.clone();
        next.next_at_ms = s.timing.next_after(s.created_at_ms, now);
        next.last_at_ms = Some(now);
        let busy = match s.last_job.as_deref() {
            Some(id) => self
                .stored_state(id)
                .await
                .is_some_and(|state| !state.is_final()),
            None => false,
        };
        let job = if busy {
            next.skipped += 1;
            None
        } else {
            let mut labels = s.labels.clone();
            labels.push((SCHEDULE_LABEL.to_string(), s.name.clone()));
            let spec = NewJob {
                kind: s.kind.clone(),
                input: s.input.clone(),
                depends_on: Vec::new(),
                timeout_ms: s.timeout_ms,
                max_attempts: s.max_attempts,
                labels,
            };
            let job = self.new_record(&s.handler, spec, now, None)?;
            next.last_job = Some(job.id.clone());
            next.recent.push(job.id.clone());
            Some(job)
        };
        // The oldest jobs beyond `keep_jobs` go once this tick is stored
        // (all have ended: a schedule never runs two jobs at once).
        let excess = next
            .recent
            .len()
            .saturating_sub(next.keep_jobs.max(1) as usize);
        let expired: Vec<String> = next.recent.drain(..excess).collect();
        if !self.store.fire(&next, due, job.as_ref(), &expired).await? {
            // Replaced or fired meanwhile: take the stored copy.
            match self
                .store
                .schedules()
                .await?
                .into_iter()
                .find(|x| x.handler == s.handler && x.name == s.name)
            {
                Some(stored) => self.book.put(stored),
                None => self.book.remove(&s.handler, &s.name),
            }
            return Ok(());
        }
        self.store.commit().await?;
        match &job {
            Some(job) => {
                tracing::info!(handler = %s.handler, schedule = %s.name, job = %job.id, "schedule fired");
                self.enqueue(job, now).await?;
            }
            None => tracing::info!(
                handler = %s.handler, schedule = %s.name,
                "schedule skipped a tick: its previous job has not ended"
            ),
        }
        self.book.put(next);
        Ok(())
    }
}
