//! The load ledger: one row per file Kura has loaded, tried or removed (`_kura.files`).
//!
//! It lives in the warehouse, next to the rows it describes, so that a file's rows and its
//! ledger row commit in one transaction (see `load`). This module is its only owner: the
//! DDL (versioned, applied once when the app opens the warehouse), every read and every
//! write. Statuses are typed ([`FileStatus`]); the strings are what the table and the API
//! store and show.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use duckdb::{Connection, OptionalExt, params};
use serde::Serialize;

use crate::db::warehouse::rollback;

/// What the ledger knows of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FileStatus {
    /// Its rows are in the table.
    Loaded,
    /// It loaded and had no rows.
    Empty,
    /// Its last load failed (`error` says why); rows from an earlier load stay.
    Failed,
    /// It is gone from disk and its rows were kept (`on_delete: keep`).
    Deleted,
}

impl FileStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Loaded => "loaded",
            Self::Empty => "empty",
            Self::Failed => "failed",
            Self::Deleted => "deleted",
        }
    }

    fn parse(s: &str) -> duckdb::Result<Self> {
        Ok(match s {
            "loaded" => Self::Loaded,
            "empty" => Self::Empty,
            "failed" => Self::Failed,
            "deleted" => Self::Deleted,
            other => {
                return Err(duckdb::Error::FromSqlConversionFailure(
                    4,
                    duckdb::types::Type::Text,
                    format!("unknown ledger status {other:?}").into(),
                ));
            }
        })
    }

    /// Loaded with or without rows: the file's content is in the warehouse.
    pub(crate) fn settled(self) -> bool {
        matches!(self, Self::Loaded | Self::Empty)
    }
}

impl fmt::Display for FileStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ledger's schema, in order. Each runs once, in a transaction with its version row;
/// the first adopts warehouses made before the ledger was versioned (`IF NOT EXISTS`).
const MIGRATIONS: &[(&str, &str)] = &[(
    "0001_files",
    "CREATE TABLE IF NOT EXISTS _kura.files (
        source      VARCHAR NOT NULL,
        path        VARCHAR NOT NULL,
        table_name  VARCHAR NOT NULL,
        size        BIGINT,
        mtime       TIMESTAMPTZ,
        hash        VARCHAR,
        rows        BIGINT,
        status      VARCHAR NOT NULL,  -- loaded | empty | failed | deleted
        error       VARCHAR,
        loaded_at   TIMESTAMPTZ,
        updated_at  TIMESTAMPTZ NOT NULL
    )",
)];

/// Brings the ledger's schema up to date. Called once when the app opens the warehouse
/// (on the writer), so loads never run DDL of their own.
pub(crate) fn migrate(conn: &Connection) -> duckdb::Result<()> {
    conn.execute_batch(
        "CREATE SCHEMA IF NOT EXISTS _kura;
         CREATE TABLE IF NOT EXISTS _kura.migrations (
             version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL
         )",
    )?;
    let applied: i64 = conn.query_row(
        "SELECT coalesce(max(version), 0) FROM _kura.migrations",
        [],
        |r| r.get(0),
    )?;
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate() {
        let version = index as i64 + 1;
        if version <= applied {
            continue;
        }
        conn.execute_batch("BEGIN TRANSACTION")?;
        let step = conn.execute_batch(sql).and_then(|()| {
            conn.execute(
                "INSERT INTO _kura.migrations VALUES (?, ?, now())",
                params![version, name],
            )
        });
        match step {
            Ok(_) => conn.execute_batch("COMMIT")?,
            Err(e) => {
                rollback(conn);
                return Err(e);
            }
        }
        tracing::info!(migration = name, version, "applied warehouse migration");
    }
    Ok(())
}

/// A ledger row as the sync needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) size: u64,
    pub(crate) mtime: DateTime<Utc>,
    pub(crate) hash: String,
    pub(crate) status: FileStatus,
    pub(crate) table_name: String,
    pub(crate) error: Option<String>,
}

/// The entries of one source, by path.
pub(crate) fn entries(conn: &Connection, source: &str) -> duckdb::Result<BTreeMap<String, Entry>> {
    let mut stmt = conn.prepare(
        "SELECT path, size, epoch_us(mtime), hash, status, table_name, error FROM _kura.files WHERE source = ?",
    )?;
    let rows = stmt.query_map([source], |r| {
        let micros: Option<i64> = r.get(2)?;
        Ok((
            r.get::<_, String>(0)?,
            Entry {
                size: r.get::<_, Option<i64>>(1)?.unwrap_or(-1) as u64,
                mtime: micros
                    .and_then(DateTime::from_timestamp_micros)
                    .unwrap_or_default(),
                hash: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                status: FileStatus::parse(&r.get::<_, String>(4)?)?,
                table_name: r.get(5)?,
                error: r.get(6)?,
            },
        ))
    })?;
    rows.collect()
}

/// A ledger row as the files API lists it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct File {
    pub(crate) path: String,
    pub(crate) table: String,
    pub(crate) size: Option<i64>,
    pub(crate) rows: Option<i64>,
    pub(crate) status: FileStatus,
    pub(crate) error: Option<String>,
    pub(crate) loaded_at: Option<String>,
}

/// The files of one source, by path.
pub(crate) fn files(conn: &Connection, source: &str) -> duckdb::Result<Vec<File>> {
    let mut stmt = conn.prepare(
        "SELECT path, table_name, size, rows, status, error, epoch_us(loaded_at) \
         FROM _kura.files WHERE source = ? ORDER BY path",
    )?;
    let rows = stmt.query_map([source], |r| {
        Ok(File {
            path: r.get(0)?,
            table: r.get(1)?,
            size: r.get(2)?,
            rows: r.get(3)?,
            status: FileStatus::parse(&r.get::<_, String>(4)?)?,
            error: r.get(5)?,
            loaded_at: r
                .get::<_, Option<i64>>(6)?
                .and_then(DateTime::from_timestamp_micros)
                .map(crate::time::text),
        })
    })?;
    rows.collect()
}

/// A file whose last load failed.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Failure {
    pub(crate) source: String,
    pub(crate) file: String,
    pub(crate) error: Option<String>,
}

/// The failed files of every source (at most `limit`), by source and path.
pub(crate) fn failures(conn: &Connection, limit: usize) -> duckdb::Result<Vec<Failure>> {
    let mut stmt = conn.prepare(
        "SELECT source, path, error FROM _kura.files WHERE status = 'failed' \
         ORDER BY source, path LIMIT ?",
    )?;
    let rows = stmt.query_map([limit as i64], |r| {
        Ok(Failure {
            source: r.get(0)?,
            file: r.get(1)?,
            error: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// Per source: its files on record, the failed ones, and the last load.
#[derive(Debug, Clone, Default)]
pub(crate) struct Summary {
    pub(crate) files: u64,
    pub(crate) failed: u64,
    pub(crate) last_loaded: Option<DateTime<Utc>>,
}

pub(crate) fn summaries(conn: &Connection) -> duckdb::Result<BTreeMap<String, Summary>> {
    let mut stmt = conn.prepare(
        "SELECT source, count(*) FILTER (WHERE status <> 'deleted'), count(*) FILTER (WHERE status = 'failed'), \
         epoch_us(max(loaded_at)) FROM _kura.files GROUP BY source",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Summary {
                files: r.get::<_, i64>(1)?.unsigned_abs(),
                failed: r.get::<_, i64>(2)?.unsigned_abs(),
                last_loaded: r
                    .get::<_, Option<i64>>(3)?
                    .and_then(DateTime::from_timestamp_micros),
            },
        ))
    })?;
    rows.collect()
}

/// What a ledger row records of one file.
pub(crate) struct Record<'a> {
    pub(crate) source: &'a str,
    pub(crate) path: &'a str,
    /// `schema.table`.
    pub(crate) table: String,
    pub(crate) size: u64,
    pub(crate) mtime: DateTime<Utc>,
    pub(crate) hash: &'a str,
}

/// Replaces the file's row with a load of `rows` rows (`empty` when none). Runs inside the
/// load's transaction, so the row commits with the file's rows.
pub(crate) fn record_load(conn: &Connection, r: &Record<'_>, rows: u64) -> duckdb::Result<()> {
    let status = if rows == 0 {
        FileStatus::Empty
    } else {
        FileStatus::Loaded
    };
    replace(conn, r, status, Some(rows), None)
}

/// Records a failed load in a transaction of its own: the ledger says why, and keeps the
/// row count of the earlier load whose rows stay in the table.
pub(crate) fn record_failure(conn: &Connection, r: &Record<'_>, error: &str) -> duckdb::Result<()> {
    conn.execute_batch("BEGIN TRANSACTION")?;
    let result = (|| {
        let previous_rows: Option<i64> = conn
            .query_row(
                "SELECT rows FROM _kura.files WHERE source = ? AND path = ?",
                params![r.source, r.path],
                |row| row.get(0),
            )
            .optional()?
            .flatten();
        replace(
            conn,
            r,
            FileStatus::Failed,
            previous_rows.map(i64::unsigned_abs),
            Some(error),
        )
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            rollback(conn);
            Err(e)
        }
    }
}

fn replace(
    conn: &Connection,
    r: &Record<'_>,
    status: FileStatus,
    rows: Option<u64>,
    error: Option<&str>,
) -> duckdb::Result<()> {
    conn.execute(
        "DELETE FROM _kura.files WHERE source = ? AND path = ?",
        params![r.source, r.path],
    )?;
    let loaded_at = if status == FileStatus::Failed {
        "NULL"
    } else {
        "now()"
    };
    conn.execute(
        &format!(
            "INSERT INTO _kura.files VALUES (?, ?, ?, ?, ?::TIMESTAMPTZ, ?, ?, ?, ?, {loaded_at}, now())"
        ),
        params![
            r.source,
            r.path,
            r.table,
            r.size as i64,
            r.mtime.to_rfc3339(),
            r.hash,
            rows.map(|n| n as i64),
            status.as_str(),
            error
        ],
    )?;
    Ok(())
}

/// A file whose content is unchanged but whose size or modification time moved (touched,
/// copied back): the ledger takes the new ones, the rows stay.
pub(crate) fn touch(
    conn: &Connection,
    source: &str,
    path: &str,
    size: u64,
    mtime: DateTime<Utc>,
) -> duckdb::Result<()> {
    conn.execute(
        "UPDATE _kura.files SET mtime = ?::TIMESTAMPTZ, size = ?, updated_at = now() WHERE source = ? AND path = ?",
        params![mtime.to_rfc3339(), size as i64, source, path],
    )
    .map(|_| ())
}

/// A file gone from disk: its row says `deleted` (rows kept) or goes (rows removed). Runs
/// inside the removal's transaction.
pub(crate) fn record_removal(
    conn: &Connection,
    source: &str,
    path: &str,
    rows_kept: bool,
) -> duckdb::Result<()> {
    let sql = if rows_kept {
        "UPDATE _kura.files SET status = 'deleted', updated_at = now() WHERE source = ? AND path = ?"
    } else {
        "DELETE FROM _kura.files WHERE source = ? AND path = ?"
    };
    conn.execute(sql, params![source, path]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::db::warehouse::test_warehouse as warehouse;

    fn record<'a>(path: &'a str, hash: &'a str) -> Record<'a> {
        Record {
            source: "s",
            path,
            table: "raw_s.t".to_owned(),
            size: 10,
            mtime: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            hash,
        }
    }

    #[test]
    fn migrations_run_once_and_adopt_an_unversioned_ledger() {
        let conn = warehouse();
        migrate(&conn).unwrap();
        let versions: i64 = conn
            .query_row("SELECT count(*) FROM _kura.migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(versions, MIGRATIONS.len() as i64);

        // A warehouse from before the ledger was versioned: the table is there, no versions.
        let old = warehouse();
        old.execute_batch("DROP TABLE _kura.migrations").unwrap();
        record_load(&old, &record("a.csv", "h"), 3).unwrap();
        migrate(&old).unwrap();
        assert_eq!(entries(&old, "s").unwrap().len(), 1, "rows kept");
    }

    #[test]
    fn a_failure_keeps_the_row_count_of_the_load_before_and_statuses_round_trip() {
        let conn = warehouse();
        record_load(&conn, &record("a.csv", "h1"), 5).unwrap();
        record_load(&conn, &record("b.csv", "h2"), 0).unwrap();
        record_failure(&conn, &record("a.csv", "h3"), "bad row 7").unwrap();
        let all = entries(&conn, "s").unwrap();
        assert_eq!(all["a.csv"].status, FileStatus::Failed);
        assert_eq!(all["a.csv"].error.as_deref(), Some("bad row 7"));
        assert_eq!(all["a.csv"].hash, "h3");
        assert_eq!(all["b.csv"].status, FileStatus::Empty);
        let listed = files(&conn, "s").unwrap();
        assert_eq!(
            listed[0].rows,
            Some(5),
            "the earlier load's rows are still there"
        );
        assert!(listed[0].loaded_at.is_none());
        assert_eq!(failures(&conn, 10).unwrap().len(), 1);
        let summary = &summaries(&conn).unwrap()["s"];
        assert_eq!((summary.files, summary.failed), (2, 1));
    }

    #[test]
    fn removal_marks_or_forgets_and_touch_moves_size_and_time() {
        let conn = warehouse();
        record_load(&conn, &record("a.csv", "h"), 5).unwrap();
        record_load(&conn, &record("b.csv", "h"), 5).unwrap();
        let later = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        touch(&conn, "s", "a.csv", 11, later).unwrap();
        let a = &entries(&conn, "s").unwrap()["a.csv"];
        assert_eq!((a.size, a.mtime), (11, later));
        record_removal(&conn, "s", "a.csv", true).unwrap();
        record_removal(&conn, "s", "b.csv", false).unwrap();
        let all = entries(&conn, "s").unwrap();
        assert_eq!(all["a.csv"].status, FileStatus::Deleted);
        assert!(!all.contains_key("b.csv"));
    }

    #[test]
    fn an_unknown_status_is_an_error_not_a_guess() {
        let conn = warehouse();
        record_load(&conn, &record("a.csv", "h"), 5).unwrap();
        conn.execute_batch("UPDATE _kura.files SET status = 'odd'")
            .unwrap();
        assert!(entries(&conn, "s").is_err());
    }
}
