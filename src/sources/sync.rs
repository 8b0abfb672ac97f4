//! A sync: compare a source's files on disk with its ledger and load what changed. What to
//! do with each file is decided by `plan` (pure, from the listing, the ledger and the
//! source's rules); this module carries the plan out:
//!
//! - new or changed (hash differs) → staged in `.kura/staging/`, loaded on the writer in one
//!   transaction, unstaged;
//! - touched but the same content (size or mtime differ, hash equal) → only the ledger's
//!   mtime moves; the rows are not touched;
//! - unchanged (size and mtime equal) → nothing, not even hashing;
//! - gone from disk → its rows are removed (or kept with `on_delete: keep`).
//!
//! A failing file is recorded (ledger, sync history, a `sync_failed` event) and the sync
//! goes on with the next one: one bad file never blocks the good ones, and never touches
//! the rows loaded from it before. One sync per source runs at a time.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

mod plan;

use plan::{Action, AfterHash, Rules};

use super::formats::{Format, Kind};
use super::load::{self, FileLoad, LoadError};
use super::registry::{DiskFile, Layout, Source, files};
use super::{excel, inflight, ledger, repo, staging};
use crate::app::AppState;
use crate::blocking;
use crate::config::OnDelete;
use crate::db::warehouse::JobControl;
use crate::events::EventKind;

/// What started a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Trigger {
    Api,
    Watcher,
    Startup,
    Cli,
    Upload,
    Schedule,
}

impl Trigger {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Watcher => "watcher",
            Self::Startup => "startup",
            Self::Cli => "cli",
            Self::Upload => "upload",
            Self::Schedule => "schedule",
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SyncOptions {
    /// Reload every file, changed or not.
    pub(crate) full_refresh: bool,
    /// Let a file with no rows replace the rows loaded from it before.
    pub(crate) allow_empty: bool,
}

impl SyncOptions {
    /// One sync for two requests: it does what either asked for.
    fn merge(&mut self, other: Self) {
        self.full_refresh |= other.full_refresh;
        self.allow_empty |= other.allow_empty;
    }
}

/// One file's outcome within a sync.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FileOutcome {
    pub(crate) path: String,
    /// loaded | unchanged | touched | failed | removed | kept | unsupported | writing (still
    /// being written: left for the watcher to sync when complete)
    pub(crate) outcome: &'static str,
    pub(crate) rows: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

impl FileOutcome {
    /// A file this sync left as it was (`unchanged`, `touched`, `writing`).
    fn untouched(rel: &str, outcome: &'static str) -> Self {
        Self {
            path: rel.to_owned(),
            outcome,
            rows: 0,
            error: None,
        }
    }
}

/// The result of a whole sync.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct SyncReport {
    pub(crate) files: Vec<FileOutcome>,
    pub(crate) rows: u64,
    pub(crate) files_loaded: u64,
    pub(crate) files_failed: u64,
}

/// Syncs that run at once; the rest wait their turn (still shown as syncing). All loads
/// commit through the one writer, so more would gain nothing, and 200 sources syncing
/// together at start-up overran the warehouse's internal queue.
const CONCURRENT_SYNCS: usize = 4;

/// Sources currently syncing, and those that changed again while they synced.
pub struct SyncTracker {
    slots: tokio::sync::Semaphore,
    running: Mutex<HashSet<String>>,
    again: Mutex<HashMap<String, Queued>>,
    /// Records of follow-up syncs dropped by a cancel, to be closed by the sync's task.
    dropped: Mutex<HashMap<String, Vec<i64>>>,
    /// Sources whose running sync was asked to stop.
    cancelled: Mutex<HashSet<String>>,
    /// The control of the load running now, per source (to interrupt it).
    loads: Mutex<HashMap<String, Arc<JobControl>>>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SyncError {
    #[error("source {0} is already syncing")]
    InProgress(String),
    #[error("there is no source named {0}")]
    UnknownSource(String),
    #[error("source {0} is disabled")]
    Disabled(String),
    #[error(transparent)]
    Meta(#[from] crate::db::meta::MetaError),
}

impl Default for SyncTracker {
    fn default() -> Self {
        Self {
            slots: tokio::sync::Semaphore::new(CONCURRENT_SYNCS),
            running: Mutex::default(),
            again: Mutex::default(),
            dropped: Mutex::default(),
            cancelled: Mutex::default(),
            loads: Mutex::default(),
        }
    }
}

impl SyncTracker {
    pub(crate) fn is_running(&self, source: &str) -> bool {
        crate::locks::lock(&self.running).contains(source)
    }

    pub fn running(&self) -> Vec<String> {
        let mut v: Vec<String> = crate::locks::lock(&self.running).iter().cloned().collect();
        v.sort();
        v
    }

    fn try_begin(&self, source: &str) -> bool {
        crate::locks::lock(&self.running).insert(source.to_owned())
    }

    /// Stops the running sync of `source`: no further file is loaded, and the load running
    /// now is interrupted (its transaction rolls back). False when none runs.
    pub(crate) fn cancel(&self, source: &str) -> bool {
        if !self.is_running(source) {
            return false;
        }
        crate::locks::lock(&self.cancelled).insert(source.to_owned());
        // A follow-up asked for meanwhile is dropped too; the sync's task closes its record.
        if let Some(dropped) = crate::locks::lock(&self.again).remove(source) {
            crate::locks::lock(&self.dropped)
                .entry(source.to_owned())
                .or_default()
                .push(dropped.record_id);
        }
        if let Some(control) = crate::locks::lock(&self.loads).get(source) {
            control.cancel();
        }
        true
    }

    fn is_cancelled(&self, source: &str) -> bool {
        crate::locks::lock(&self.cancelled).contains(source)
    }

    fn set_load(&self, source: &str, control: Option<Arc<JobControl>>) {
        let mut loads = crate::locks::lock(&self.loads);
        match control {
            Some(c) => {
                loads.insert(source.to_owned(), c);
            }
            None => {
                loads.remove(source);
            }
        }
    }

    /// Ends a source's sync; returns the follow-up sync if one was asked for (the source
    /// then stays running). Under the `running` lock, like [`SyncTracker::queue`], so a
    /// request made while the sync ends is never lost.
    fn finish(&self, source: &str) -> Option<Queued> {
        crate::locks::lock(&self.cancelled).remove(source);
        let mut running = crate::locks::lock(&self.running);
        let again = crate::locks::lock(&self.again).remove(source);
        if again.is_none() {
            running.remove(source);
        }
        again
    }

    /// The record of the follow-up sync already queued for `source`, its options merged
    /// with `options`; `None` when none is queued.
    fn join_queued(&self, source: &str, options: SyncOptions) -> Option<i64> {
        let mut again = crate::locks::lock(&self.again);
        let queued = again.get_mut(source)?;
        queued.options.merge(options);
        Some(queued.record_id)
    }

    /// Queues a follow-up sync with its (already created) record, unless the sync running
    /// has ended meanwhile (then the caller starts this one) or another request queued
    /// one first (then that record stands).
    fn queue(&self, source: &str, options: SyncOptions, record_id: i64, trigger: Trigger) -> Queue {
        let mut running = crate::locks::lock(&self.running);
        if !running.contains(source) {
            running.insert(source.to_owned());
            return Queue::StartNow;
        }
        let mut again = crate::locks::lock(&self.again);
        if let Some(other) = again.get_mut(source) {
            other.options.merge(options);
            return Queue::Joined(other.record_id);
        }
        again.insert(
            source.to_owned(),
            Queued {
                options,
                record_id,
                trigger,
            },
        );
        Queue::Queued
    }
}

/// A sync asked for while one runs, with the record it will write (status `queued` until
/// it starts), so that whoever asked can follow it from the start.
#[derive(Debug, Clone, Copy)]
struct Queued {
    options: SyncOptions,
    record_id: i64,
    trigger: Trigger,
}

enum Queue {
    Queued,
    /// Another request's queued record, which this one joins.
    Joined(i64),
    /// The sync running has ended: this one starts now.
    StartNow,
}

/// Starts a sync of `name` in the background and returns its record id. With
/// `queue_if_running`, a source that is syncing syncs once more afterwards (the watcher's
/// way); otherwise that is [`SyncError::InProgress`] (the API's 409).
pub(crate) async fn start(
    state: &AppState,
    name: &str,
    options: SyncOptions,
    trigger: Trigger,
    queue_if_running: bool,
) -> Result<Option<i64>, SyncError> {
    let source = state
        .find_source(name)
        .await
        .ok_or_else(|| SyncError::UnknownSource(name.to_owned()))?;
    if !source.enabled {
        return Err(SyncError::Disabled(name.to_owned()));
    }
    let record_id = if state.syncs.try_begin(name) {
        match repo::create_run(
            &state.meta,
            name,
            trigger.as_str(),
            options.full_refresh,
            false,
        )
        .await
        {
            Ok(id) => id,
            Err(e) => {
                state.syncs.finish(name);
                return Err(e.into());
            }
        }
    } else if !queue_if_running {
        return Err(SyncError::InProgress(name.to_owned()));
    } else if let Some(id) = state.syncs.join_queued(name, options) {
        return Ok(Some(id));
    } else {
        // Queued behind the sync running: its record exists from now on, so the caller
        // (an upload, the API) can follow it.
        let id = repo::create_run(
            &state.meta,
            name,
            trigger.as_str(),
            options.full_refresh,
            true,
        )
        .await?;
        match state.syncs.queue(name, options, id, trigger) {
            Queue::Queued => return Ok(Some(id)),
            Queue::Joined(other) => {
                let _ = repo::forget_queued_run(&state.meta, id).await;
                return Ok(Some(other));
            }
            Queue::StartNow => {
                if let Err(e) = repo::start_queued_run(&state.meta, id, options.full_refresh).await
                {
                    state.syncs.finish(name);
                    return Err(e.into());
                }
                id
            }
        }
    };
    let task_state = state.clone();
    let task_name = format!("sync:{name}");
    state.tasks.spawn_dynamic(task_name, async move {
        let mut record_id = record_id;
        let mut options = options;
        let mut trigger = trigger;
        loop {
            // The semaphore is never closed: a permit always comes.
            let slot = task_state.syncs.slots.acquire().await;
            run(&task_state, &source, record_id, options, trigger).await;
            drop(slot);
            let dropped = crate::locks::lock(&task_state.syncs.dropped).remove(&source.name);
            for id in dropped.unwrap_or_default() {
                let report = SyncReport::default();
                let closed = repo::finish_run(&task_state.meta, id, "failed", &report, Some("cancelled before it started"), 0).await;
                if let Err(e) = closed {
                    tracing::warn!(record_id = id, error = %e, "cannot close a dropped sync record");
                }
            }
            let Some(next) = task_state.syncs.finish(&source.name) else { break };
            // Asked for again while it synced: once more, under the queued record.
            options = next.options;
            record_id = next.record_id;
            trigger = next.trigger;
            if let Err(e) = repo::start_queued_run(&task_state.meta, record_id, options.full_refresh).await {
                tracing::error!(source = %source.name, error = %e, "cannot record a follow-up sync");
                task_state.syncs.finish(&source.name);
                break;
            }
        }
    });
    Ok(Some(record_id))
}

/// Runs one sync to the end, recording and announcing it.
pub(crate) async fn run(
    state: &AppState,
    source: &Source,
    record_id: i64,
    options: SyncOptions,
    trigger: Trigger,
) -> SyncReport {
    let started = Instant::now();
    state
        .events
        .publish(EventKind::SyncStarted {
            source: source.name.clone(),
            record_id,
            full_refresh: options.full_refresh,
            trigger: trigger.as_str().into(),
        })
        .await;
    let result = sync_files(state, source, record_id, options).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let (report, error) = match result {
        Ok(report) => (report, None),
        Err(e) => (SyncReport::default(), Some(e)),
    };
    let status = match (&error, report.files_failed, report.files_loaded) {
        (Some(_), _, _) => "failed",
        (None, 0, _) => "success",
        (None, _, 0) => "failed",
        (None, _, _) => "partial",
    };
    let summary = error.clone().or_else(|| {
        (report.files_failed > 0).then(|| format!("{} file(s) failed to load", report.files_failed))
    });
    if let Err(e) = repo::finish_run(
        &state.meta,
        record_id,
        status,
        &report,
        summary.as_deref(),
        duration_ms,
    )
    .await
    {
        tracing::error!(record_id, error = %e, "cannot record the end of a sync");
    }
    if let Some(error) = error {
        state
            .events
            .publish(EventKind::SyncFailed {
                source: source.name.clone(),
                record_id,
                error,
                file: None,
            })
            .await;
        return report;
    }
    state
        .events
        .publish(EventKind::SyncCompleted {
            source: source.name.clone(),
            record_id,
            rows: report.rows,
            files_loaded: report.files_loaded,
            files_failed: report.files_failed,
            duration_ms,
        })
        .await;
    if state.config.models.generate_staging {
        refresh_staging(state, source).await;
    }
    if report
        .files
        .iter()
        .any(|f| matches!(f.outcome, "loaded" | "removed"))
    {
        // The models downstream of this source run once the loads settle.
        crate::models::service::after_load(state, &source.name);
        let schema = source.schema();
        if let Ok(Ok(row_count)) = state
            .warehouse
            .internal(move |c| schema_rows(c, &schema))
            .await
        {
            state
                .events
                .publish(EventKind::FreshnessUpdate {
                    source: source.name.clone(),
                    last_update: crate::time::now_text(),
                    row_count,
                })
                .await;
        }
    }
    report
}

/// Brings the source's generated staging views in step with its tables (see `staging`):
/// planned with a read on the internal lane, written on the single writer only when a
/// view is missing, stale or orphaned — a sync that changed nothing writes nothing.
async fn refresh_staging(state: &AppState, source: &Source) {
    let (name, schema) = (source.name.clone(), source.schema());
    let changes = match state
        .warehouse
        .internal(move |c| staging::plan(c, &name, &schema))
        .await
    {
        Ok(Ok(changes)) => changes,
        Ok(Err(e)) => {
            tracing::warn!(source = %source.name, error = %e, "cannot plan the staging views");
            return;
        }
        Err(e) => {
            tracing::warn!(source = %source.name, error = %e, "cannot plan the staging views");
            return;
        }
    };
    if changes.is_empty() {
        return;
    }
    match state
        .warehouse
        .background(move |c| staging::apply(c, &changes))
        .await
    {
        Ok(Ok(n)) => tracing::info!(source = %source.name, views = n, "staging views updated"),
        Ok(Err(e)) => {
            tracing::warn!(source = %source.name, error = %e, "cannot write the staging views");
        }
        Err(e) => {
            tracing::warn!(source = %source.name, error = %e, "cannot write the staging views");
        }
    }
}

/// Rows in every table of a schema.
pub(crate) fn schema_rows(conn: &duckdb::Connection, schema: &str) -> duckdb::Result<u64> {
    let tables: Vec<String> = {
        let mut stmt =
            conn.prepare("SELECT table_name FROM duckdb_tables() WHERE schema_name = ?")?;
        let rows = stmt.query_map([schema], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let names: Vec<(&str, &str)> = tables.iter().map(|t| (schema, t.as_str())).collect();
    Ok(super::views::row_counts(conn, &names)?.into_iter().sum())
}

async fn sync_files(
    state: &AppState,
    source: &Source,
    record_id: i64,
    options: SyncOptions,
) -> Result<SyncReport, String> {
    let run = Run {
        state,
        source,
        record_id,
    };
    let root = state.config.root.clone();
    let src = source.clone();
    let disk = blocking::run(move || files(&root, &src))
        .await
        .map_err(|e| format!("cannot list {}: {e}", source.directory.display()))?;
    let name = source.name.clone();
    let ledger = state
        .warehouse
        .internal(move |c| ledger::entries(c, &name))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot read the load ledger: {e}"))?;
    let rules = Rules {
        full_refresh: options.full_refresh,
        layout: source.layout,
        keep_deleted: source.on_delete == OnDelete::Keep,
    };
    let actions = plan::plan(
        &disk,
        &ledger,
        rules,
        |f| source.table_for(&f.path),
        |f| state.is_being_written(&f.path),
    );
    let mut report = SyncReport::default();
    for action in actions {
        if state.syncs.is_cancelled(&source.name) {
            return Err("cancelled".into());
        }
        match action {
            Action::Unsupported { file } => report.files.push(FileOutcome {
                path: disk[file].rel.clone(),
                outcome: "unsupported",
                rows: 0,
                error: Some(format!(
                    "not a file type Kura loads ({})",
                    super::formats::SUPPORTED
                )),
            }),
            Action::TableTaken { file, table, other } => {
                let file = &disk[file];
                let error = format!(
                    "{} maps to the table {}.{table}, which {other} already fills; rename one of them",
                    file.rel,
                    source.schema()
                );
                run.fail(&mut report, file, &table, "", &error).await;
            }
            Action::Unchanged { file } => report
                .files
                .push(FileOutcome::untouched(&disk[file].rel, "unchanged")),
            Action::Writing { file } => report
                .files
                .push(FileOutcome::untouched(&disk[file].rel, "writing")),
            Action::Examine { file, table } => {
                let file = &disk[file];
                run.examine(&mut report, file, &table, ledger.get(&file.rel), options)
                    .await?;
            }
            Action::Remove { path, table, keep } => {
                let name = source.name.clone();
                let rel = path.clone();
                let result = state
                    .warehouse
                    .background(move |c| load::remove_file(c, &name, &rel, &table, keep))
                    .await
                    .map_err(|e| e.to_string())?;
                report.files.push(match result {
                    Ok(rows) => FileOutcome {
                        path,
                        outcome: if keep { "kept" } else { "removed" },
                        rows,
                        error: None,
                    },
                    Err(e) => FileOutcome {
                        path,
                        outcome: "failed",
                        rows: 0,
                        error: Some(e.to_string()),
                    },
                });
            }
        }
    }
    Ok(report)
}

/// What every step of one sync needs to know.
struct Run<'a> {
    state: &'a AppState,
    source: &'a Source,
    record_id: i64,
}

impl Run<'_> {
    /// Hashes a new or changed file, then touches its ledger row, leaves it quarantined,
    /// or loads it (see `plan::after_hash`). Errs only when the sync must stop.
    async fn examine(
        &self,
        report: &mut SyncReport,
        file: &DiskFile,
        table: &str,
        previous: Option<&ledger::Entry>,
        options: SyncOptions,
    ) -> Result<(), String> {
        let (state, source) = (self.state, self.source);
        let Some(kind) = file.kind else {
            return Ok(());
        };
        let path = file.path.clone();
        let hash = match blocking::run(move || hash_file(&path)).await {
            Ok(h) => h,
            Err(e) => {
                let error = format!("cannot read the file: {e}");
                self.fail(report, file, table, "", &error).await;
                return Ok(());
            }
        };
        match plan::after_hash(previous, &hash, options.full_refresh) {
            AfterHash::Quarantined => {
                report.files_failed += 1;
                report.files.push(FileOutcome {
                    path: file.rel.clone(),
                    outcome: "failed",
                    rows: 0,
                    error: Some(inflight::QUARANTINED.to_owned()),
                });
                return Ok(());
            }
            AfterHash::Touch => {
                let (name, rel, size, mtime) =
                    (source.name.clone(), file.rel.clone(), file.size, file.mtime);
                let touched = state
                    .warehouse
                    .background(move |c| ledger::touch(c, &name, &rel, size, mtime))
                    .await;
                let problem = match touched {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(e) => Some(e.to_string()),
                };
                if let Some(e) = problem {
                    tracing::warn!(file = %file.rel, error = %e, "cannot update the ledger's mtime");
                }
                report
                    .files
                    .push(FileOutcome::untouched(&file.rel, "touched"));
                return Ok(());
            }
            AfterHash::Load => {}
        }
        let inflight_dir = state.config.state_dir().join("inflight");
        let (dir, name, rel, h) = (
            inflight_dir.clone(),
            source.name.clone(),
            file.rel.clone(),
            hash.clone(),
        );
        if blocking::run(move || inflight::crashed_before(&dir, &name, &rel, &h)).await {
            self.fail(report, file, table, &hash, inflight::QUARANTINED)
                .await;
            return Ok(());
        }
        let (dir, name, rel, h) = (
            inflight_dir,
            source.name.clone(),
            file.rel.clone(),
            hash.clone(),
        );
        let marker = match blocking::run(move || inflight::begin(&dir, &name, &rel, &h)).await {
            Ok(m) => m,
            Err(e) => {
                let error = format!("cannot mark the file as loading: {e}");
                self.fail(report, file, table, &hash, &error).await;
                return Ok(());
            }
        };
        // Checked again after the hash: the watcher may have heard of a write meanwhile.
        if state.is_being_written(&file.path) {
            report
                .files
                .push(FileOutcome::untouched(&file.rel, "writing"));
            return Ok(());
        }
        let outcome = load_one(state, source, file, kind, table, &hash, options).await;
        drop(marker);
        match outcome {
            Ok(loaded) => {
                for column in &loaded.added_columns {
                    state
                        .events
                        .publish(EventKind::SchemaDrift {
                            source: source.name.clone(),
                            table: format!("{}.{table}", source.schema()),
                            change: format!(
                                "new column {column} (from {}); earlier rows have NULL",
                                file.rel
                            ),
                            breaking: false,
                        })
                        .await;
                }
                report.rows += loaded.rows;
                report.files_loaded += 1;
                report.files.push(FileOutcome {
                    path: file.rel.clone(),
                    outcome: "loaded",
                    rows: loaded.rows,
                    error: None,
                });
            }
            // Stopped on request: the file's transaction rolled back and its ledger entry
            // is as it was; it is not a failure of the file.
            Err(LoadError::Cancelled) => return Err("cancelled".into()),
            Err(e) => {
                let error = e.to_string();
                self.fail(report, file, table, &hash, &error).await;
            }
        }
        Ok(())
    }

    /// Records a file that did not load: the ledger (its earlier rows stay), the report,
    /// and a `sync_failed` event naming the file.
    async fn fail(
        &self,
        report: &mut SyncReport,
        file: &DiskFile,
        table: &str,
        hash: &str,
        error: &str,
    ) {
        let (state, source) = (self.state, self.source);
        tracing::warn!(source = %source.name, file = %file.rel, %error, "file not loaded");
        let (src, qualified, rel, hash2, err) = (
            source.name.clone(),
            format!("{}.{table}", source.schema()),
            file.rel.clone(),
            hash.to_owned(),
            error.to_owned(),
        );
        let (size, mtime) = (file.size, file.mtime);
        let recorded = state
            .warehouse
            .background(move |c| {
                let record = ledger::Record {
                    source: &src,
                    path: &rel,
                    table: qualified,
                    size,
                    mtime,
                    hash: &hash2,
                };
                ledger::record_failure(c, &record, &err)
            })
            .await;
        if !matches!(recorded, Ok(Ok(()))) {
            tracing::error!(file = %file.rel, "cannot record the failure in the ledger");
        }
        report.files_failed += 1;
        report.files.push(FileOutcome {
            path: file.rel.clone(),
            outcome: "failed",
            rows: 0,
            error: Some(error.to_owned()),
        });
        state
            .events
            .publish(EventKind::SyncFailed {
                source: source.name.clone(),
                record_id: self.record_id,
                error: error.to_owned(),
                file: Some(file.rel.clone()),
            })
            .await;
    }
}

/// Stages `file`, loads it on the writer, and removes the staged copy.
async fn load_one(
    state: &AppState,
    source: &Source,
    file: &DiskFile,
    kind: Kind,
    table: &str,
    hash: &str,
    options: SyncOptions,
) -> Result<load::Loaded, LoadError> {
    let staging = state.warehouse.staging_dir().to_path_buf();
    let original = file.path.clone();
    let staged = blocking::run(move || stage(&original, &staging, kind))
        .await
        .map_err(|e| LoadError::Parse(e.to_string()))?;
    let format = match kind {
        Kind::Direct(f) => f,
        Kind::Excel => Format::Csv,
    };
    let (src, schema, table, rel, hash) = (
        source.name.clone(),
        source.schema(),
        table.to_owned(),
        file.rel.clone(),
        hash.to_owned(),
    );
    let (size, mtime, mode, staged_path) = (file.size, file.mtime, source.mode, staged.clone());
    let allow_empty = options.allow_empty;
    let own_table = source.layout == Layout::TablePerFile;
    let control = Arc::new(JobControl::default());
    state.syncs.set_load(&source.name, Some(control.clone()));
    // Cancelled before this file started: do not start it.
    if state.syncs.is_cancelled(&source.name) {
        control.cancel();
    }
    let interrupt = state.warehouse.writer_interrupt();
    let job_control = control.clone();
    let result = state
        .warehouse
        .background(move |c| {
            load::load(
                c,
                &FileLoad {
                    source: &src,
                    schema: &schema,
                    table: &table,
                    path: &rel,
                    staged: &staged_path,
                    format,
                    size,
                    mtime,
                    hash: &hash,
                    mode,
                    own_table,
                    allow_empty,
                    cancel: Some((&job_control, &interrupt)),
                },
            )
        })
        .await;
    state.syncs.set_load(&source.name, None);
    let _ = blocking::run(move || std::fs::remove_file(&staged)).await;
    result.map_err(|e| LoadError::Engine(e.to_string()))?
}

/// Puts a file in the staging folder under a name Kura chose: a hard link when possible
/// (no copy), else a copy; Excel workbooks become CSV there.
fn stage(original: &Path, staging: &Path, kind: Kind) -> std::io::Result<PathBuf> {
    // A random number keeps staged names apart without state shared across apps.
    let n = rand::random::<u64>();
    let name = original
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Keep the extensions (DuckDB reads compression from them), drop anything else odd.
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if kind == Kind::Excel {
        let target = staging.join(format!("{n}-{safe}.csv"));
        excel::first_sheet_to_csv(original, &target)?;
        return Ok(target);
    }
    let target = staging.join(format!("{n}-{safe}"));
    if std::fs::hard_link(original, &target).is_err() {
        std::fs::copy(original, &target)?;
    }
    Ok(target)
}

/// xxh3-128 of the file's content, as hex.
pub(crate) fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:032x}", hasher.digest128()))
}
