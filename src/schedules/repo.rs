//! The schedules' job history (`schedule_runs`, metadata store): every read and write.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

/// Marks the jobs a stop cut off as failed (at start-up, before any job runs).
pub(crate) fn close_interrupted(c: &Connection, at: &str) -> rusqlite::Result<usize> {
    c.execute(
        "UPDATE schedule_runs SET status = 'failed', error = 'interrupted: Kura stopped during this job', \
         ended_at = ?1 WHERE status = 'running'",
        [at],
    )
}

/// When the schedule's latest job started (RFC 3339), if it ever ran.
pub(crate) fn last_started(c: &Connection, schedule: &str) -> rusqlite::Result<Option<String>> {
    c.query_row(
        "SELECT started_at FROM schedule_runs WHERE schedule = ?1 ORDER BY id DESC LIMIT 1",
        [schedule],
        |r| r.get(0),
    )
    .optional()
}

/// A tick that did not run (`why`); returns the job's id.
pub(crate) fn record_skip(
    c: &Connection,
    schedule: &str,
    trigger: &str,
    at: &str,
    why: &str,
) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO schedule_runs (schedule, trigger, started_at, ended_at, status, error, rows, duration_ms) \
         VALUES (?1, ?2, ?3, ?3, 'skipped', ?4, 0, 0)",
        params![schedule, trigger, at, why],
    )?;
    Ok(c.last_insert_rowid())
}

/// A job that starts now; returns its id.
pub(crate) fn start(
    c: &Connection,
    schedule: &str,
    trigger: &str,
    at: &str,
) -> rusqlite::Result<i64> {
    c.execute(
        "INSERT INTO schedule_runs (schedule, trigger, started_at, status) VALUES (?1, ?2, ?3, 'running')",
        params![schedule, trigger, at],
    )?;
    Ok(c.last_insert_rowid())
}

/// How a job ended.
pub(crate) struct JobEnd<'a> {
    pub(crate) status: &'a str,
    pub(crate) ended_at: &'a str,
    pub(crate) error: Option<&'a str>,
    pub(crate) rows: u64,
    pub(crate) duration_ms: u64,
    pub(crate) attempts: u32,
    /// The sync records of its attempts, as JSON.
    pub(crate) sync_records: &'a str,
}

pub(crate) fn finish(c: &Connection, job_id: i64, end: &JobEnd<'_>) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE schedule_runs SET status = ?2, ended_at = ?3, error = ?4, rows = ?5, duration_ms = ?6, \
         attempts = ?7, sync_records = ?8 WHERE id = ?1",
        params![
            job_id,
            end.status,
            end.ended_at,
            end.error,
            end.rows as i64,
            end.duration_ms as i64,
            end.attempts,
            end.sync_records
        ],
    )
    .map(|_| ())
}

/// The mean duration of each schedule's last five finished jobs (skipped ticks aside).
pub(crate) fn typical_durations(c: &Connection) -> rusqlite::Result<HashMap<String, f64>> {
    let mut stmt = c.prepare(
        "SELECT schedule, avg(duration_ms) FROM ( \
           SELECT schedule, duration_ms, \
                  row_number() OVER (PARTITION BY schedule ORDER BY id DESC) AS n \
           FROM schedule_runs WHERE status IN ('success', 'failed', 'timeout')) \
         WHERE n <= 5 GROUP BY schedule",
    )?;
    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))?
        .collect()
}

/// The latest job of every schedule, by schedule name.
pub(crate) fn last_runs(c: &Connection) -> rusqlite::Result<HashMap<String, Job>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {RUN_COLUMNS} FROM schedule_runs WHERE id IN \
         (SELECT max(id) FROM schedule_runs GROUP BY schedule)"
    ))?;
    stmt.query_map([], job_row)?
        .map(|r| r.map(|job| (job.schedule.clone(), job)))
        .collect()
}

/// A page of jobs, newest first, of one schedule and/or status (`None`: any), and how
/// many match in all.
pub(crate) fn runs(
    c: &Connection,
    schedule: Option<&str>,
    status: Option<&str>,
    limit: u32,
    offset: u32,
) -> rusqlite::Result<(Vec<Job>, i64)> {
    let filter = "(?1 IS NULL OR schedule = ?1) AND (?2 IS NULL OR status = ?2)";
    let mut stmt = c.prepare(&format!(
        "SELECT {RUN_COLUMNS} FROM schedule_runs WHERE {filter} \
         ORDER BY id DESC LIMIT ?3 OFFSET ?4"
    ))?;
    let runs = stmt
        .query_map(params![schedule, status, limit, offset], job_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = c.query_row(
        &format!("SELECT count(*) FROM schedule_runs WHERE {filter}"),
        params![schedule, status],
        |r| r.get(0),
    )?;
    Ok((runs, total))
}

const RUN_COLUMNS: &str = "id, schedule, trigger, started_at, ended_at, status, error, rows, duration_ms, attempts, sync_records";

/// One job of a schedule: the reference's run (`id`, `schedule_name`, `sources`,
/// `duration_seconds`, `rows_processed`) and Kura's keys beside it; the routes answer it
/// as it is and the schedules page lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Job {
    pub(crate) id: i64,
    schedule_name: String,
    sources: Vec<Value>,
    duration_seconds: Option<f64>,
    rows_processed: Option<i64>,
    job_id: i64,
    pub(crate) schedule: String,
    pub(crate) trigger: String,
    pub(crate) started_at: String,
    pub(crate) ended_at: Option<String>,
    pub(crate) status: String,
    pub(crate) error: Option<String>,
    pub(crate) rows: Option<i64>,
    pub(crate) duration_ms: Option<i64>,
    pub(crate) attempts: i64,
    sync_records: Value,
}

impl Job {
    /// "1.2 s", for the page.
    pub(crate) fn took(&self) -> Option<String> {
        self.duration_ms
            .map(|ms| format!("{:.1} s", ms as f64 / 1000.0))
    }
}

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    let records: Value = serde_json::from_str(&r.get::<_, String>(10)?).unwrap_or(Value::Null);
    let sources: Vec<Value> = records
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|rec| rec.get("source").cloned())
                .collect()
        })
        .unwrap_or_default();
    let (id, schedule): (i64, String) = (r.get(0)?, r.get(1)?);
    let (rows, duration_ms): (Option<i64>, Option<i64>) = (r.get(7)?, r.get(8)?);
    Ok(Job {
        id,
        schedule_name: schedule.clone(),
        sources,
        duration_seconds: duration_ms.map(|ms| ms as f64 / 1000.0),
        rows_processed: rows,
        job_id: id,
        schedule,
        trigger: r.get(2)?,
        started_at: r.get(3)?,
        ended_at: r.get(4)?,
        status: r.get(5)?,
        error: r.get(6)?,
        rows,
        duration_ms,
        attempts: r.get(9)?,
        sync_records: records,
    })
}
