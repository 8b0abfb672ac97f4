//! The sync history of sources (metadata store). The load ledger, in the warehouse, is
//! `ledger`'s.

use std::collections::BTreeMap;

use rusqlite::OptionalExtension;
use serde::Serialize;

use super::sync::SyncReport;
use crate::db::meta::{MetaDb, MetaError};

use crate::time::now_text as now;

/// Opens a sync record, `running` or `queued` (to run once the sync now running ends);
/// returns its id.
pub(crate) async fn create_run(
    meta: &MetaDb,
    source: &str,
    trigger: &str,
    full_refresh: bool,
    queued: bool,
) -> Result<i64, MetaError> {
    let (source, trigger) = (source.to_owned(), trigger.to_owned());
    let status = if queued { "queued" } else { "running" };
    meta.write(move |tx| {
        tx.execute(
            "INSERT INTO sync_runs (source, trigger, full_refresh, status, started_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![source, trigger, full_refresh, status, now()],
        )?;
        Ok(tx.last_insert_rowid())
    })
    .await
}

/// A queued sync record starts now (its full refresh as finally asked for).
pub(crate) async fn start_queued_run(
    meta: &MetaDb,
    id: i64,
    full_refresh: bool,
) -> Result<(), MetaError> {
    meta.write(move |tx| {
        tx.execute(
            "UPDATE sync_runs SET status = 'running', started_at = ?2, full_refresh = ?3 WHERE id = ?1",
            rusqlite::params![id, now(), full_refresh],
        )
        .map(|_| ())
    })
    .await
}

/// Removes a queued record that another request's record made redundant.
pub(crate) async fn forget_queued_run(meta: &MetaDb, id: i64) -> Result<(), MetaError> {
    meta.write(move |tx| {
        tx.execute(
            "DELETE FROM sync_runs WHERE id = ?1 AND status = 'queued'",
            [id],
        )
        .map(|_| ())
    })
    .await
}

/// Marks the syncs a stop or crash cut off as failed: their file in progress never
/// committed. Run at start-up, before any sync.
pub(crate) fn close_interrupted_runs(c: &rusqlite::Connection) -> rusqlite::Result<usize> {
    c.execute(
        "UPDATE sync_runs SET status = 'failed', error = 'interrupted: Kura stopped during this sync', \
         ended_at = started_at WHERE status IN ('running', 'queued')",
        [],
    )
}

/// Rows loaded per day (`YYYY-MM-DD` of the sync's end) from `first_day` on.
pub(crate) fn rows_per_day_since(
    c: &rusqlite::Connection,
    first_day: &str,
) -> rusqlite::Result<std::collections::HashMap<String, u64>> {
    let mut stmt = c.prepare(
        "SELECT substr(ended_at, 1, 10), coalesce(sum(rows), 0) FROM sync_runs \
         WHERE ended_at >= ?1 AND status NOT IN ('running', 'queued') GROUP BY 1",
    )?;
    stmt.query_map([first_day], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.unsigned_abs()))
    })?
    .collect()
}

/// Closes a sync record with its outcome.
pub(crate) async fn finish_run(
    meta: &MetaDb,
    id: i64,
    status: &str,
    report: &SyncReport,
    error: Option<&str>,
    duration_ms: u64,
) -> Result<(), MetaError> {
    let details = serde_json::to_string(&report.files).unwrap_or_default();
    let (status, error) = (status.to_owned(), error.map(str::to_owned));
    let (rows, loaded, failed) = (
        report.rows as i64,
        report.files_loaded as i64,
        report.files_failed as i64,
    );
    meta.write(move |tx| {
        tx.execute(
            "UPDATE sync_runs SET status = ?2, ended_at = ?3, duration_ms = ?4, rows = ?5, files_loaded = ?6, \
             files_failed = ?7, error = ?8, details = ?9 WHERE id = ?1",
            rusqlite::params![id, status, now(), duration_ms as i64, rows, loaded, failed, error, details],
        )
        .map(|_| ())
    })
    .await
}

/// One sync record, as `/api/sync/status/{id}` and the history show it. Serialised with
/// the reference's keys (`id`, `schedule_name`, `sources`, `duration_seconds`,
/// `rows_processed`; `timestamp` and `error_message` of its source history) beside Kura's.
#[derive(Debug, Clone)]
pub(crate) struct SyncRun {
    pub(crate) record_id: i64,
    pub(crate) source: String,
    pub(crate) trigger: String,
    pub(crate) full_refresh: bool,
    pub(crate) status: String,
    pub(crate) started_at: String,
    pub(crate) ended_at: Option<String>,
    pub(crate) duration_ms: Option<i64>,
    pub(crate) rows: Option<i64>,
    pub(crate) files_loaded: Option<i64>,
    pub(crate) files_failed: Option<i64>,
    pub(crate) error: Option<String>,
    pub(crate) files: serde_json::Value,
}

impl SyncRun {
    /// The reference's `schedule_name`: `manual` for a sync a person or the watcher
    /// started, `schedule` for one a schedule started (its runs name the schedule).
    pub(crate) fn schedule_name(&self) -> &'static str {
        if self.trigger == "schedule" {
            "schedule"
        } else {
            "manual"
        }
    }
}

impl Serialize for SyncRun {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let seconds = self.duration_ms.map(|ms| ms as f64 / 1000.0);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &self.record_id)?;
        m.serialize_entry("schedule_name", self.schedule_name())?;
        m.serialize_entry("sources", &[&self.source])?;
        m.serialize_entry("started_at", &self.started_at)?;
        m.serialize_entry("ended_at", &self.ended_at)?;
        m.serialize_entry("status", &self.status)?;
        m.serialize_entry("error", &self.error)?;
        m.serialize_entry("duration_seconds", &seconds)?;
        m.serialize_entry("rows_processed", &self.rows)?;
        m.serialize_entry("timestamp", &self.started_at)?;
        m.serialize_entry("error_message", &self.error)?;
        m.serialize_entry("total_row_count", &None::<i64>)?;
        m.serialize_entry("start_date", &None::<String>)?;
        m.serialize_entry("record_id", &self.record_id)?;
        m.serialize_entry("source", &self.source)?;
        m.serialize_entry("trigger", &self.trigger)?;
        m.serialize_entry("full_refresh", &self.full_refresh)?;
        m.serialize_entry("duration_ms", &self.duration_ms)?;
        m.serialize_entry("rows", &self.rows)?;
        m.serialize_entry("files_loaded", &self.files_loaded)?;
        m.serialize_entry("files_failed", &self.files_failed)?;
        m.serialize_entry("files", &self.files)?;
        m.end()
    }
}

const RUN_COLUMNS: &str = "id, source, trigger, full_refresh, status, started_at, ended_at, duration_ms, rows, \
                           files_loaded, files_failed, error, details";

fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SyncRun> {
    let details: Option<String> = r.get(12)?;
    Ok(SyncRun {
        record_id: r.get(0)?,
        source: r.get(1)?,
        trigger: r.get(2)?,
        full_refresh: r.get(3)?,
        status: r.get(4)?,
        started_at: r.get(5)?,
        ended_at: r.get(6)?,
        duration_ms: r.get(7)?,
        rows: r.get(8)?,
        files_loaded: r.get(9)?,
        files_failed: r.get(10)?,
        error: r.get(11)?,
        files: details
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or(serde_json::Value::Array(vec![])),
    })
}

pub(crate) fn run_by_id(c: &rusqlite::Connection, id: i64) -> rusqlite::Result<Option<SyncRun>> {
    c.query_row(
        &format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = ?1"),
        [id],
        run_from_row,
    )
    .optional()
}

pub(crate) fn runs_for(
    c: &rusqlite::Connection,
    source: &str,
    limit: i64,
) -> rusqlite::Result<Vec<SyncRun>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {RUN_COLUMNS} FROM sync_runs WHERE source = ?1 ORDER BY id DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(rusqlite::params![source, limit], run_from_row)?;
    rows.collect()
}

/// The latest finished run of every source.
pub(crate) fn last_runs(c: &rusqlite::Connection) -> rusqlite::Result<BTreeMap<String, SyncRun>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {RUN_COLUMNS} FROM sync_runs WHERE id IN \
         (SELECT max(id) FROM sync_runs WHERE status NOT IN ('running', 'queued') GROUP BY source)"
    ))?;
    let rows = stmt.query_map([], run_from_row)?;
    rows.map(|r| r.map(|run| (run.source.clone(), run)))
        .collect()
}
