//! The sync history of sources (metadata store). The load ledger, in the warehouse, is
//! `ledger`'s.

use std::collections::BTreeMap;

use rusqlite::OptionalExtension;
use serde::Serialize;

use super::sync::SyncReport;
use crate::db::meta::{MetaDb, MetaError};

use crate::time::now_text as now;

/// Opens a sync record; returns its id.
pub async fn create_run(
    meta: &MetaDb,
    source: &str,
    trigger: &str,
    full_refresh: bool,
) -> Result<i64, MetaError> {
    let (source, trigger) = (source.to_owned(), trigger.to_owned());
    meta.write(move |tx| {
        tx.execute(
            "INSERT INTO sync_runs (source, trigger, full_refresh, status, started_at) VALUES (?1, ?2, ?3, 'running', ?4)",
            rusqlite::params![source, trigger, full_refresh, now()],
        )?;
        Ok(tx.last_insert_rowid())
    })
    .await
}

/// Closes a sync record with its outcome.
pub async fn finish_run(
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
pub struct SyncRun {
    pub record_id: i64,
    pub source: String,
    pub trigger: String,
    pub full_refresh: bool,
    pub status: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub rows: Option<i64>,
    pub files_loaded: Option<i64>,
    pub files_failed: Option<i64>,
    pub error: Option<String>,
    pub files: serde_json::Value,
}

impl SyncRun {
    /// The reference's `schedule_name`: `manual` for a sync a person or the watcher
    /// started, `schedule` for one a schedule started (its runs name the schedule).
    pub fn schedule_name(&self) -> &'static str {
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

pub fn run_by_id(c: &rusqlite::Connection, id: i64) -> rusqlite::Result<Option<SyncRun>> {
    c.query_row(
        &format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = ?1"),
        [id],
        run_from_row,
    )
    .optional()
}

pub fn runs_for(
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
pub fn last_runs(c: &rusqlite::Connection) -> rusqlite::Result<BTreeMap<String, SyncRun>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {RUN_COLUMNS} FROM sync_runs WHERE id IN \
         (SELECT max(id) FROM sync_runs WHERE status <> 'running' GROUP BY source)"
    ))?;
    let rows = stmt.query_map([], run_from_row)?;
    rows.map(|r| r.map(|run| (run.source.clone(), run)))
        .collect()
}

/// Activity-log rows, newest first, optionally for one source.
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    pub id: i64,
    pub timestamp: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub level: String,
    pub source: Option<String>,
    pub message: String,
    pub event: serde_json::Value,
    /// The reference's grouping of log lines: `sync`, `schedule`, `auth`, ... (the part of
    /// the event type before its first `_`).
    pub category: String,
    /// The reference names its version on every line; Kura's, here.
    pub dango_version: &'static str,
}

/// Which activity-log rows to read; every field narrows.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFilter {
    pub limit: Option<i64>,
    /// info, warning or error: that level and above.
    pub level: Option<String>,
    pub source: Option<String>,
    /// Case-insensitive text in the message.
    pub q: Option<String>,
    /// RFC 3339 times (or dates): from `since`, before `until`.
    pub since: Option<String>,
    pub until: Option<String>,
}

impl LogFilter {
    pub fn newest(source: Option<&str>, limit: i64) -> Self {
        Self {
            limit: Some(limit),
            source: source.map(str::to_owned),
            ..Self::default()
        }
    }

    /// The levels at or above `level`, or `None` for every level.
    fn levels(&self) -> Option<&'static str> {
        match self.level.as_deref()? {
            "error" => Some("error"),
            "warning" => Some("warning,error"),
            _ => None,
        }
    }
}

pub fn activity(c: &rusqlite::Connection, f: &LogFilter) -> rusqlite::Result<Vec<LogEntry>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, ts, type, level, source, message, payload FROM activity_log \
         WHERE (?1 IS NULL OR source = ?1) \
           AND (?2 IS NULL OR instr(',' || ?2 || ',', ',' || level || ',') > 0) \
           AND (?3 IS NULL OR instr(lower(message), lower(?3)) > 0) \
           AND (?4 IS NULL OR ts >= ?4) AND (?5 IS NULL OR ts < ?5) \
         ORDER BY id DESC LIMIT ?6",
    )?;
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let params = rusqlite::params![
        nonempty(&f.source),
        f.levels(),
        nonempty(&f.q),
        nonempty(&f.since),
        nonempty(&f.until),
        f.limit.unwrap_or(1000).clamp(1, 10_000)
    ];
    let rows = stmt.query_map(params, |r| {
        let payload: Option<String> = r.get(6)?;
        let kind: String = r.get(2)?;
        Ok(LogEntry {
            id: r.get(0)?,
            timestamp: r.get(1)?,
            category: kind.split('_').next().unwrap_or_default().to_owned(),
            dango_version: crate::VERSION,
            kind,
            level: r.get(3)?,
            source: r.get(4)?,
            message: r.get(5)?,
            event: payload
                .and_then(|p| serde_json::from_str(&p).ok())
                .unwrap_or(serde_json::Value::Null),
        })
    })?;
    rows.collect()
}
