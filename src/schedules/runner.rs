//! Running the schedules: the current file (a bad edit keeps the previous schedules), the
//! loop that fires due schedules on the injectable clock, and the jobs, recorded in
//! `schedule_runs`.
//!
//! A job syncs its sources one after the other through the ordinary sync path (so it
//! queues behind the watcher on the single writer instead of fighting it), one job at a
//! time per schedule: a tick that finds the previous job running is recorded as skipped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::clock::Clock;
use super::file::{Schedule, Schedules};
use super::repo;
use crate::app::AppState;
use crate::events::EventKind;
use crate::locks::lock;
use crate::sources::sync::{self, SyncError, SyncOptions, Trigger};

/// Waits before the first and later retries of a failed job.
const RETRY_WAITS: [i64; 2] = [30, 120];
/// How often the file's modification time is looked at when no watcher tells of changes
/// (it could not start).
const FILE_POLL: Duration = Duration::from_secs(2);
/// Quiet after the watcher's last event before the file is read: an editor's save is
/// several events (write, close, rename), and the file is read once, whole.
const FILE_SETTLE: Duration = Duration::from_millis(100);
/// How often scheduled sources are checked for staleness (scheduler time).
const STALE_CHECK_MINUTES: i64 = 10;

/// The schedules in force, and what the file said last.
#[derive(Clone)]
pub(crate) struct Current {
    pub(crate) schedules: Arc<Schedules>,
    /// Problems of the file as it is on disk now; empty when it is valid.
    pub(crate) errors: Vec<String>,
    pub(crate) loaded_at: DateTime<Utc>,
}

pub(crate) struct ScheduleService {
    pub(crate) clock: Arc<dyn Clock>,
    current: RwLock<Current>,
    stamp: Mutex<Option<(SystemTime, u64)>>,
    /// schedule → running job id
    running: Mutex<HashMap<String, i64>>,
    next: Mutex<HashMap<String, DateTime<Utc>>>,
    reloaded: Notify,
    /// The watcher saw the file change.
    file_touched: Notify,
    /// Sources already reported stale, until they are fresh again (one notice per episode).
    stale: Mutex<std::collections::HashSet<String>>,
    /// Jobs asked to stop, and the source each running job syncs now.
    cancelled: Mutex<std::collections::HashSet<i64>>,
    syncing: Mutex<HashMap<i64, String>>,
}

impl ScheduleService {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        Self {
            clock,
            current: RwLock::new(Current {
                schedules: Arc::new(Schedules::default()),
                errors: Vec::new(),
                loaded_at: now,
            }),
            stamp: Mutex::new(None),
            running: Mutex::new(HashMap::new()),
            next: Mutex::new(HashMap::new()),
            reloaded: Notify::new(),
            file_touched: Notify::new(),
            stale: Mutex::new(std::collections::HashSet::new()),
            cancelled: Mutex::new(std::collections::HashSet::new()),
            syncing: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn current(&self) -> Current {
        crate::locks::read(&self.current).clone()
    }

    /// The webhook targets of the file in force.
    pub(crate) fn webhooks(&self) -> Vec<super::file::Webhook> {
        self.current().schedules.notifications.webhooks.clone()
    }

    pub(crate) fn next_run(&self, name: &str) -> Option<DateTime<Utc>> {
        lock(&self.next).get(name).copied()
    }

    pub(crate) fn active_job(&self, name: &str) -> Option<i64> {
        lock(&self.running).get(name).copied()
    }

    /// Reads the file again. A valid file replaces the schedules; an invalid one leaves
    /// them running and is reported (log, event, `/api/schedules`).
    pub(crate) async fn reload(&self, state: &AppState) -> Result<usize, Vec<String>> {
        let config = state.config.clone();
        let (result, stamp) = crate::blocking::run(move || {
            let stamp = file_stamp(&super::file_path(&config));
            (super::load(&config), stamp)
        })
        .await;
        *lock(&self.stamp) = stamp;
        let mut current = crate::locks::write(&self.current);
        let outcome = match result {
            Ok(schedules) => {
                let n = schedules.schedules.len();
                current.schedules = Arc::new(schedules);
                current.errors.clear();
                current.loaded_at = self.clock.now();
                tracing::info!(schedules = n, "schedules loaded");
                Ok(n)
            }
            Err(errors) => {
                tracing::warn!(problems = %errors.join("; "), "schedules.yml is invalid; the previous schedules stay in force");
                current.errors.clone_from(&errors);
                Err(errors)
            }
        };
        drop(current);
        self.reloaded.notify_one();
        outcome
    }

    /// The watcher saw `schedules.yml` change (written, replaced, removed).
    pub(crate) fn file_event(&self) {
        self.file_touched.notify_one();
    }

    /// Whether the file on disk differs from the one last read (a stat, off the runtime).
    async fn file_changed(&self, state: &AppState) -> bool {
        let path = super::file_path(&state.config);
        let now = crate::blocking::run(move || file_stamp(&path)).await;
        *lock(&self.stamp) != now
    }

    fn schedule(&self, name: &str) -> Option<Schedule> {
        self.current()
            .schedules
            .schedules
            .iter()
            .find(|s| s.def.name == name)
            .cloned()
    }

    /// Stops a running job: no further source is synced, and the sync running now stops
    /// between files with its current load interrupted (that file's transaction rolls
    /// back). False when no such job runs.
    pub(crate) fn cancel(&self, state: &AppState, job_id: i64) -> bool {
        if !lock(&self.running).values().any(|j| *j == job_id) {
            return false;
        }
        lock(&self.cancelled).insert(job_id);
        if let Some(source) = lock(&self.syncing).get(&job_id) {
            state.syncs.cancel(source);
        }
        true
    }

    fn is_cancelled(&self, job_id: i64) -> bool {
        lock(&self.cancelled).contains(&job_id)
    }

    /// Starts a job of `name` now; its id, or why not.
    pub(crate) async fn trigger(
        &self,
        state: &AppState,
        name: &str,
        trigger: &str,
    ) -> Result<i64, TriggerError> {
        let schedule = self
            .schedule(name)
            .ok_or_else(|| TriggerError::Unknown(name.to_owned()))?;
        start_job(state, schedule, trigger).await
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum TriggerError {
    #[error("there is no schedule {0:?}")]
    Unknown(String),
    #[error("schedule {name:?} is running already (job {job_id})")]
    Running { name: String, job_id: i64 },
    #[error(transparent)]
    Meta(#[from] crate::db::meta::MetaError),
}

fn file_stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Loads the file, marks jobs a stop cut off, runs missed ticks within their grace,
/// then keeps firing due schedules until shutdown.
pub(crate) async fn start(state: &AppState) {
    let service = &state.schedules;
    let _ = service.reload(state).await;
    let at = crate::time::text(service.clock.now());
    let closed = state
        .meta
        .write(move |tx| repo::close_interrupted(tx, &at))
        .await;
    if let Err(e) = closed {
        tracing::warn!(error = %e, "cannot close interrupted schedule jobs");
    }
    run_misfires(state).await;
    let task_state = state.clone();
    state
        .tasks
        .spawn("scheduler", async move { run_loop(task_state).await });
}

/// Waits [`FILE_POLL`] when the watcher is not running; forever when it is.
async fn poll_unless(watching: bool) {
    if watching {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(FILE_POLL).await;
}

/// A tick missed while Kura was down runs once now if it is within the schedule's
/// `misfire_grace_minutes`; an older one is recorded as missed.
async fn run_misfires(state: &AppState) {
    let service = &state.schedules;
    let now = service.clock.now();
    for schedule in service
        .current()
        .schedules
        .schedules
        .iter()
        .filter(|s| s.def.enabled)
    {
        let name = schedule.def.name.clone();
        let last: Option<String> = state
            .meta
            .read(move |c| repo::last_started(c, &name))
            .await
            .ok()
            .flatten();
        let Some(last) = last.and_then(|l| DateTime::parse_from_rfc3339(&l).ok()) else {
            continue;
        };
        let Some(due) = schedule
            .cron
            .next_after(schedule.tz, last.with_timezone(&Utc))
        else {
            continue;
        };
        if due > now {
            continue;
        }
        let grace = chrono::Duration::minutes(
            i64::try_from(schedule.def.misfire_grace_minutes).unwrap_or(60),
        );
        if now - due <= grace {
            tracing::info!(schedule = %schedule.def.name, due = %due, "running a tick missed while Kura was down");
            let _ = start_job(state, schedule.clone(), "misfire").await;
        } else {
            tracing::warn!(schedule = %schedule.def.name, due = %due, "a tick was missed while Kura was down (beyond the grace period)");
            record_skip(
                state,
                &schedule.def.name,
                "misfire",
                &format!("missed: due at {due} while Kura was down"),
            )
            .await;
        }
    }
}

async fn run_loop(state: AppState) {
    let service = &state.schedules;
    let token = state.tasks.token();
    let recompute = |service: &ScheduleService, from: DateTime<Utc>| {
        let current = service.current();
        let mut next = lock(&service.next);
        next.clear();
        for s in current.schedules.schedules.iter().filter(|s| s.def.enabled) {
            if let Some(t) = s.cron.next_after(s.tz, from) {
                next.insert(s.def.name.clone(), t);
            }
        }
    };
    recompute(service, service.clock.now());
    // Not at once: the startup syncs are still running then.
    let mut stale_check = service.clock.now() + chrono::Duration::minutes(STALE_CHECK_MINUTES);
    loop {
        if service.clock.now() >= stale_check {
            check_stale(&state).await;
            stale_check = service.clock.now() + chrono::Duration::minutes(STALE_CHECK_MINUTES);
        }
        let wake = lock(&service.next)
            .values()
            .min()
            .copied()
            .map_or(stale_check, |t| t.min(stale_check));
        let sleep = service.clock.sleep_until(wake);
        tokio::select! {
            () = token.cancelled() => return,
            () = service.reloaded.notified() => {
                recompute(service, service.clock.now());
                continue;
            }
            () = service.file_touched.notified() => {
                // Let the save finish; events that come meanwhile are part of it.
                tokio::time::sleep(FILE_SETTLE).await;
                if service.file_changed(&state).await {
                    let _ = service.reload(&state).await;
                }
                continue;
            }
            () = poll_unless(state.watcher_status().running) => {
                if service.file_changed(&state).await {
                    let _ = service.reload(&state).await;
                }
                continue;
            }
            () = sleep => {}
        }
        let now = service.clock.now();
        let due: Vec<String> = lock(&service.next)
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for name in due {
            let Some(schedule) = service.schedule(&name) else {
                continue;
            };
            match start_job(&state, schedule.clone(), "cron").await {
                Ok(_) => {}
                Err(TriggerError::Running { job_id, .. }) => {
                    tracing::warn!(schedule = %name, job_id, "tick skipped: the previous job is still running");
                    record_skip(
                        &state,
                        &name,
                        "cron",
                        &format!("skipped: job {job_id} was still running"),
                    )
                    .await;
                }
                Err(e) => {
                    tracing::error!(schedule = %name, error = %e, "cannot start a scheduled job")
                }
            }
            if let Some(t) = schedule.cron.next_after(schedule.tz, now) {
                lock(&service.next).insert(name, t);
            } else {
                lock(&service.next).remove(&name);
            }
        }
    }
}

async fn record_skip(state: &AppState, name: &str, trigger: &str, why: &str) {
    let (name, trigger, why) = (name.to_owned(), trigger.to_owned(), why.to_owned());
    let at = crate::time::text(state.schedules.clock.now());
    let id = state
        .meta
        .write(move |tx| {
            let id = repo::record_skip(tx, &name, &trigger, &at, &why)?;
            Ok((id, name, why))
        })
        .await;
    if let Ok((job_id, schedule, error)) = id {
        state
            .events
            .publish(EventKind::ScheduleFailed {
                schedule,
                job_id,
                status: "skipped".into(),
                error,
            })
            .await;
    }
}

async fn start_job(
    state: &AppState,
    schedule: Schedule,
    trigger: &str,
) -> Result<i64, TriggerError> {
    let service = &state.schedules;
    let name = schedule.def.name.clone();
    // Claim the schedule before anything else, so two triggers cannot both start it.
    {
        let mut running = lock(&service.running);
        if let Some(job_id) = running.get(&name) {
            return Err(TriggerError::Running {
                name,
                job_id: *job_id,
            });
        }
        running.insert(name.clone(), 0);
    }
    let (n, t, at) = (
        name.clone(),
        trigger.to_owned(),
        crate::time::text(service.clock.now()),
    );
    let created = state
        .meta
        .write(move |tx| repo::start(tx, &n, &t, &at))
        .await;
    let job_id = match created {
        Ok(id) => id,
        Err(e) => {
            lock(&service.running).remove(&name);
            return Err(e.into());
        }
    };
    lock(&service.running).insert(name.clone(), job_id);
    let task_state = state.clone();
    let trigger = trigger.to_owned();
    state
        .tasks
        .spawn_dynamic(format!("schedule:{name}"), async move {
            run_job(&task_state, &schedule, job_id, &trigger).await;
            lock(&task_state.schedules.running).remove(&schedule.def.name);
        });
    Ok(job_id)
}

/// What one attempt at a job came to.
enum Attempt {
    Done { rows: u64, records: Vec<i64> },
    Failed { error: String, records: Vec<i64> },
    Cancelled { records: Vec<i64> },
}

async fn run_job(state: &AppState, schedule: &Schedule, job_id: i64, trigger: &str) {
    let started = std::time::Instant::now();
    state
        .events
        .publish(EventKind::ScheduleStarted {
            schedule: schedule.def.name.clone(),
            job_id,
            trigger: trigger.to_owned(),
            sources: schedule.def.sources.clone(),
        })
        .await;
    let timeout = Duration::from_secs(schedule.def.timeout_minutes * 60);
    let mut attempts = 1u32;
    let mut all_records = Vec::new();
    let (status, rows, error) = loop {
        let outcome = tokio::time::timeout(timeout, sync_sources(state, schedule, job_id)).await;
        match outcome {
            Err(_) => {
                break (
                    "timeout",
                    0,
                    Some(format!(
                        "the job ran past its {} minute limit",
                        schedule.def.timeout_minutes
                    )),
                );
            }
            Ok(Attempt::Done { rows, records }) => {
                all_records.extend(records);
                break ("success", rows, None);
            }
            Ok(Attempt::Cancelled { records }) => {
                all_records.extend(records);
                break ("cancelled", 0, Some("cancelled on request".to_owned()));
            }
            Ok(Attempt::Failed { error, records }) => {
                all_records.extend(records);
                if attempts > schedule.def.retries {
                    break ("failed", 0, Some(error));
                }
                let wait = RETRY_WAITS[usize::min(attempts as usize - 1, RETRY_WAITS.len() - 1)];
                tracing::warn!(schedule = %schedule.def.name, job_id, attempt = attempts, wait_s = wait, error = %error, "scheduled job failed; retrying");
                let clock = &state.schedules.clock;
                let until = clock.now() + chrono::Duration::seconds(wait);
                let stop = state.tasks.token();
                tokio::select! {
                    () = clock.sleep_until(until) => {}
                    () = stop.cancelled() => break ("failed", 0, Some(error)),
                }
                attempts += 1;
            }
        }
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let ended = crate::time::text(state.schedules.clock.now());
    let records = serde_json::to_string(&all_records).unwrap_or_else(|_| "[]".into());
    let err = error.clone();
    let finished = state
        .meta
        .write(move |tx| {
            repo::finish(
                tx,
                job_id,
                &repo::JobEnd {
                    status,
                    ended_at: &ended,
                    error: err.as_deref(),
                    rows,
                    duration_ms,
                    attempts,
                    sync_records: &records,
                },
            )
        })
        .await;
    if let Err(e) = finished {
        tracing::error!(job_id, error = %e, "cannot record the end of a scheduled job");
    }
    notify_end(state, schedule, status, rows, duration_ms, error.as_deref());
    let name = schedule.def.name.clone();
    let event = match error {
        None => EventKind::ScheduleCompleted {
            schedule: name,
            job_id,
            rows,
            duration_ms,
        },
        Some(error) => EventKind::ScheduleFailed {
            schedule: name,
            job_id,
            status: status.into(),
            error,
        },
    };
    state.events.publish(event).await;
}

/// Raises `sync_stale` (event, and webhooks of schedules with `notify_on: [stale]`) for
/// each scheduled source whose last successful sync is older than the threshold, once
/// until the source is fresh again.
pub async fn check_stale(state: &AppState) {
    let service = &state.schedules;
    let current = service.current();
    let threshold = current.schedules.notifications.stale_threshold_hours;
    let scheduled: std::collections::BTreeSet<String> = current
        .schedules
        .schedules
        .iter()
        .filter(|s| s.def.enabled)
        .flat_map(|s| s.def.sources.iter().cloned())
        .collect();
    if scheduled.is_empty() {
        return;
    }
    let last_success = state
        .meta
        .read(|c| {
            let mut stmt = c.prepare(
                "SELECT source, max(ended_at) FROM sync_runs WHERE status = 'success' GROUP BY source",
            )?;
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)))?
                .collect::<rusqlite::Result<HashMap<_, _>>>()
        })
        .await;
    let Ok(last_success) = last_success else {
        return;
    };
    let now = service.clock.now();
    let limit = chrono::Duration::hours(i64::try_from(threshold).unwrap_or(24));
    for source in scheduled {
        let last = last_success.get(&source).cloned().flatten();
        let fresh = last
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| now - t.with_timezone(&Utc) <= limit);
        if fresh {
            lock(&service.stale).remove(&source);
            continue;
        }
        if !lock(&service.stale).insert(source.clone()) {
            continue;
        }
        tracing::warn!(source = %source, "scheduled source is stale");
        state
            .events
            .publish(EventKind::SyncStale {
                source: source.clone(),
                last_success: last.clone(),
                threshold_hours: threshold,
            })
            .await;
        let wanted = current.schedules.schedules.iter().any(|s| {
            s.def.sources.contains(&source)
                && s.def.notify_on.contains(&super::file::NotifyOn::Stale)
        });
        if wanted {
            super::notify::send_all(
                &state.tasks,
                current.schedules.notifications.webhooks.clone(),
                super::notify::Notice {
                    event: "sync_stale".into(),
                    schedule: None,
                    sources: vec![source.clone()],
                    error: Some(match &last {
                        Some(at) => format!(
                            "{source}: last successful sync {at}, more than {threshold} h ago"
                        ),
                        None => format!("{source}: no successful sync yet"),
                    }),
                    duration_seconds: 0.0,
                    rows_loaded: 0,
                    timestamp: crate::time::text(now),
                    dashboard_url: dashboard_url(state),
                },
            );
        }
    }
}

/// Tells the webhooks, when the schedule asked for this outcome.
fn notify_end(
    state: &AppState,
    schedule: &Schedule,
    status: &str,
    rows: u64,
    duration_ms: u64,
    error: Option<&str>,
) {
    use super::file::NotifyOn;
    let wanted = if status == "success" {
        NotifyOn::Success
    } else {
        NotifyOn::Failure
    };
    if !schedule.def.notify_on.contains(&wanted) {
        return;
    }
    let hooks = state.schedules.webhooks();
    super::notify::send_all(
        &state.tasks,
        hooks,
        super::notify::Notice {
            event: if status == "success" {
                "schedule_completed"
            } else {
                "schedule_failed"
            }
            .into(),
            schedule: Some(schedule.def.name.clone()),
            sources: schedule.def.sources.clone(),
            error: error.map(|e| format!("{status}: {e}")),
            duration_seconds: duration_ms as f64 / 1000.0,
            rows_loaded: rows,
            timestamp: crate::time::text(state.schedules.clock.now()),
            dashboard_url: dashboard_url(state),
        },
    );
}

/// Where people reach this server (loopback when bound to every address).
pub(crate) fn dashboard_url(state: &AppState) -> Option<String> {
    let p = &state.config.platform;
    let host = if p.bind.is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        p.bind.to_string()
    };
    Some(format!("http://{host}:{}/", p.port))
}

/// Syncs each source in turn and waits for each to finish.
async fn sync_sources(state: &AppState, schedule: &Schedule, job_id: i64) -> Attempt {
    let service = &state.schedules;
    let options = SyncOptions {
        full_refresh: schedule.def.full_refresh,
        ..SyncOptions::default()
    };
    let mut rows = 0;
    let mut records = Vec::new();
    let mut failures = Vec::new();
    for source in &schedule.def.sources {
        if service.is_cancelled(job_id) {
            return Attempt::Cancelled { records };
        }
        // A sync of the source already running (the watcher's): wait for it, then ours.
        let record = loop {
            if service.is_cancelled(job_id) {
                return Attempt::Cancelled { records };
            }
            match sync::start(state, source, options, Trigger::Schedule, false).await {
                Ok(Some(id)) => break Ok(id),
                Ok(None) => break Err(format!("{source}: the sync did not start")),
                Err(SyncError::InProgress(_)) => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => break Err(format!("{source}: {e}")),
            }
        };
        let id = match record {
            Ok(id) => id,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        records.push(id);
        lock(&service.syncing).insert(job_id, source.clone());
        // Asked to stop between our check and the sync's start: stop that sync too.
        if service.is_cancelled(job_id) {
            state.syncs.cancel(source);
        }
        let run = loop {
            let found = state
                .meta
                .read(move |c| crate::sources::repo::run_by_id(c, id))
                .await;
            match found {
                Ok(Some(run)) if run.status != "running" => break Some(run),
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => {
                    failures.push(format!("{source}: {e}"));
                    break None;
                }
            }
        };
        lock(&service.syncing).remove(&job_id);
        if service.is_cancelled(job_id) {
            return Attempt::Cancelled { records };
        }
        let Some(run) = run else { continue };
        rows += run.rows.unwrap_or(0).unsigned_abs();
        if run.status != "success" {
            failures.push(format!(
                "{source}: {}",
                run.error.unwrap_or_else(|| format!("sync {}", run.status))
            ));
        }
    }
    if failures.is_empty() {
        Attempt::Done { rows, records }
    } else {
        Attempt::Failed {
            error: failures.join("; "),
            records,
        }
    }
}
