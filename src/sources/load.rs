//! Loading one staged file into its table: one DuckDB transaction on the single writer.
//!
//! The file's rows and its ledger entry (`_kura.files`) commit together or not at all. A
//! file whose columns conflict with the table (a column missing, or a type that does not
//! widen) is refused and the table keeps its rows; a new column widens the table. A file
//! with no rows never wipes rows that were there unless `allow_empty` is set. Runs only on
//! the `warehouse-w` thread.

use std::path::Path;
use std::sync::Arc;

use duckdb::InterruptHandle;

use crate::db::warehouse::JobControl;

use chrono::{DateTime, Utc};
use duckdb::{Connection, params};

use super::formats::Format;
pub use crate::config::Mode;
use crate::db::warehouse::{rollback, sql_ident, sql_string};

/// Columns Kura adds to every loaded row.
pub const FILE_COLUMN: &str = "_kura_file";
pub const LOADED_AT_COLUMN: &str = "_kura_loaded_at";

const LEDGER_DDL: &str = "
CREATE SCHEMA IF NOT EXISTS _kura;
CREATE TABLE IF NOT EXISTS _kura.files (
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
);";

/// One file to load.
pub struct FileLoad<'a> {
    pub source: &'a str,
    pub schema: &'a str,
    pub table: &'a str,
    /// The ledger key: the path relative to the project directory.
    pub path: &'a str,
    pub staged: &'a Path,
    pub format: Format,
    pub size: u64,
    pub mtime: DateTime<Utc>,
    pub hash: &'a str,
    pub mode: Mode,
    pub allow_empty: bool,
    /// Lets the load be cancelled while its long statements run (the sync's control and
    /// the writer's interrupt handle).
    pub cancel: Option<(&'a JobControl, &'a Arc<InterruptHandle>)>,
}

/// Runs `statement` as interruptible when the load can be cancelled.
fn cancellable<T>(
    f: &FileLoad<'_>,
    statement: impl FnOnce() -> Result<T, LoadError>,
) -> Result<T, LoadError> {
    let Some((control, handle)) = f.cancel else {
        return statement();
    };
    if !control.statement_started_on(handle) {
        return Err(LoadError::Cancelled);
    }
    let result = statement();
    control.statement_finished();
    // Cancelled while it ran, even if it finished first: an interrupt may be pending on
    // the connection, so stop here and let the rollback clear it.
    if control.is_cancelled() {
        return Err(LoadError::Cancelled);
    }
    result
}

/// What a successful load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    pub rows: u64,
    pub replaced: u64,
    pub added_columns: Vec<String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LoadError {
    #[error("cannot read the file: {0}")]
    Parse(String),
    #[error("{0}")]
    SchemaConflict(String),
    #[error(
        "the file has no rows, and loading it would remove the {existing} rows loaded from it \
         before; run a full refresh with allow_empty to accept that"
    )]
    EmptyReplace { existing: u64 },
    #[error("warehouse error: {0}")]
    Engine(String),
    #[error("cancelled")]
    Cancelled,
}

fn engine(e: duckdb::Error) -> LoadError {
    LoadError::Engine(e.to_string())
}

/// Creates the ledger if needed (idempotent).
pub fn ensure_ledger(conn: &Connection) -> duckdb::Result<()> {
    conn.execute_batch(LEDGER_DDL)
}

/// How forgiving the reader is: the first attempt is DuckDB's fast default; the retries
/// cost speed and are used only when the file needs them.
#[derive(Debug, Clone, Copy, Default)]
struct Leniency {
    /// Sniff types from the whole file (mixed columns become VARCHAR).
    full_sniff: bool,
    /// Pad short rows with NULL (single-threaded: DuckDB's parallel scanner cannot pad
    /// rows and handle quoted newlines at once).
    ragged: bool,
}

/// The table function call that reads `staged`.
fn reader(format: Format, staged: &Path, lenient: Leniency) -> String {
    let path = sql_string(&staged.display().to_string());
    let sample = if lenient.full_sniff { -1 } else { 20_480 };
    match format {
        Format::Csv if lenient.ragged => format!(
            "read_csv({path}, auto_detect = true, null_padding = true, parallel = false, sample_size = {sample})"
        ),
        Format::Csv => format!("read_csv({path}, auto_detect = true, sample_size = {sample})"),
        Format::Json => format!("read_json({path}, format = 'auto', sample_size = {sample})"),
        Format::Parquet => format!("read_parquet({path})"),
    }
}

/// Columns (name, type) of a relation.
fn describe(conn: &Connection, relation: &str) -> duckdb::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare(&format!("DESCRIBE SELECT * FROM {relation}"))?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    rows.collect()
}

fn table_exists(conn: &Connection, schema: &str, table: &str) -> duckdb::Result<bool> {
    conn.query_row(
        "SELECT count(*) > 0 FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
        params![schema, table],
        |r| r.get(0),
    )
}

/// Loads `f` in one transaction. On error nothing changed; the caller records the failure.
pub fn load(conn: &Connection, f: &FileLoad<'_>) -> Result<Loaded, LoadError> {
    conn.execute_batch("BEGIN TRANSACTION").map_err(engine)?;
    let mut lenient = Leniency::default();
    let mut result = load_in_transaction(conn, f, lenient);
    // At most two retries, each turning on what the error asked for.
    for _ in 0..2 {
        let Err(LoadError::Parse(msg)) = &result else {
            break;
        };
        if f.format == Format::Parquet {
            break;
        }
        if is_conversion_error(msg) && !lenient.full_sniff {
            // DuckDB sniffs types from a sample; a later value of another type fails.
            lenient.full_sniff = true;
        } else if is_ragged_error(msg) && !lenient.ragged && f.format == Format::Csv {
            lenient.ragged = true;
        } else {
            break;
        }
        rollback(conn);
        conn.execute_batch("BEGIN TRANSACTION").map_err(engine)?;
        result = load_in_transaction(conn, f, lenient);
    }
    match result {
        Ok(loaded) => {
            conn.execute_batch("COMMIT").map_err(engine)?;
            Ok(loaded)
        }
        Err(e) => {
            rollback(conn);
            Err(e)
        }
    }
}

fn is_conversion_error(msg: &str) -> bool {
    msg.contains("Conversion Error") || msg.contains("Could not convert") || msg.contains("sniff")
}

fn is_ragged_error(msg: &str) -> bool {
    msg.contains("Expected Number of Columns")
        || msg.contains("null_padding")
        || msg.contains("too few columns")
}

fn load_in_transaction(
    conn: &Connection,
    f: &FileLoad<'_>,
    lenient: Leniency,
) -> Result<Loaded, LoadError> {
    ensure_ledger(conn).map_err(engine)?;
    let source = reader(f.format, f.staged, lenient);
    let schema = sql_ident(f.schema);
    let table = format!("{schema}.{}", sql_ident(f.table));
    let path = sql_string(f.path);
    // A literal rather than now(): DuckDB evaluates now() for every chunk of the load,
    // measured at ~5% of a 1M-row CSV load; the value is the same.
    let loaded_at = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f+00");
    let extra = format!("{path} AS {FILE_COLUMN}, TIMESTAMPTZ '{loaded_at}' AS {LOADED_AT_COLUMN}");
    conn.execute_batch(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .map_err(engine)?;
    let reserved = |name: &str| {
        LoadError::SchemaConflict(format!(
            "the file has a column named {name}, which Kura reserves for itself"
        ))
    };
    let mut loaded = Loaded::default();
    if !table_exists(conn, f.schema, f.table).map_err(engine)? {
        cancellable(f, || {
            conn.execute_batch(&format!(
                "CREATE TABLE {table} AS SELECT *, {extra} FROM {source}"
            ))
            .map_err(|e| LoadError::Parse(e.to_string()))
        })?;
        loaded.rows = conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(engine)?
            .unsigned_abs();
    } else {
        let file_columns = describe(conn, &source).map_err(|e| LoadError::Parse(e.to_string()))?;
        if let Some((name, _)) = file_columns
            .iter()
            .find(|(n, _)| n == FILE_COLUMN || n == LOADED_AT_COLUMN)
        {
            return Err(reserved(name));
        }
        let table_columns: Vec<(String, String)> = describe(conn, &table)
            .map_err(engine)?
            .into_iter()
            .filter(|(n, _)| n != FILE_COLUMN && n != LOADED_AT_COLUMN)
            .collect();
        loaded.added_columns = reconcile_columns(&file_columns, &table_columns)?;
        for name in &loaded.added_columns {
            let ty = file_columns
                .iter()
                .find(|(n, _)| n == name)
                .map_or("VARCHAR", |(_, t)| t);
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {} {ty}",
                sql_ident(name)
            ))
            .map_err(engine)?;
        }
        if f.mode == Mode::Replace {
            loaded.replaced = conn
                .execute(
                    &format!("DELETE FROM {table} WHERE {FILE_COLUMN} = ?"),
                    [f.path],
                )
                .map_err(engine)? as u64;
        }
        loaded.rows = cancellable(f, || {
            conn.execute(
                &format!("INSERT INTO {table} BY NAME SELECT *, {extra} FROM {source}"),
                [],
            )
            .map_err(|e| LoadError::Parse(e.to_string()))
        })? as u64;
        if loaded.rows == 0 && loaded.replaced > 0 && !f.allow_empty {
            return Err(LoadError::EmptyReplace {
                existing: loaded.replaced,
            });
        }
    }
    let status = if loaded.rows == 0 { "empty" } else { "loaded" };
    write_ledger(conn, f, status, Some(loaded.rows), None).map_err(engine)?;
    Ok(loaded)
}

/// Which file columns are new; errors if a table column is missing or retyped.
fn reconcile_columns(
    file: &[(String, String)],
    table: &[(String, String)],
) -> Result<Vec<String>, LoadError> {
    let mut problems = Vec::new();
    for (name, table_ty) in table {
        match file.iter().find(|(n, _)| n == name) {
            None => problems.push(format!(
                "column {name} ({table_ty}) is missing from the file"
            )),
            Some((_, file_ty)) if !widens(file_ty, table_ty) => problems.push(format!(
                "column {name} is {table_ty} in the table but {file_ty} in the file"
            )),
            Some(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(LoadError::SchemaConflict(format!(
            "the file's columns conflict with the table: {}",
            problems.join("; ")
        )));
    }
    Ok(file
        .iter()
        .filter(|(n, _)| !table.iter().any(|(t, _)| t == n))
        .map(|(n, _)| n.clone())
        .collect())
}

/// Whether values of `file_ty` go into a `table_ty` column without loss. VARCHAR values
/// are attempted (the cast fails loudly if one does not fit).
fn widens(file_ty: &str, table_ty: &str) -> bool {
    const INTS: &[&str] = &["TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"];
    const UINTS: &[&str] = &["UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"];
    let rank = |list: &[&str], t: &str| list.iter().position(|x| *x == t);
    if file_ty == table_ty || table_ty == "VARCHAR" || file_ty == "VARCHAR" || file_ty == "\"NULL\""
    {
        return true;
    }
    match (rank(INTS, file_ty), rank(INTS, table_ty)) {
        (Some(a), Some(b)) => return a <= b,
        (Some(_), None) if table_ty == "DOUBLE" || table_ty.starts_with("DECIMAL") => return true,
        _ => {}
    }
    if let (Some(a), Some(b)) = (rank(UINTS, file_ty), rank(UINTS, table_ty)) {
        return a <= b;
    }
    if rank(UINTS, file_ty).is_some()
        && (rank(INTS, table_ty).is_some_and(|b| b >= 3) || table_ty == "DOUBLE")
    {
        return true;
    }
    matches!(
        (file_ty, table_ty),
        ("FLOAT", "DOUBLE") | ("DATE", "TIMESTAMP") | ("DATE", "TIMESTAMP WITH TIME ZONE")
    )
}

/// Replaces the ledger row of `f`.
fn write_ledger(
    conn: &Connection,
    f: &FileLoad<'_>,
    status: &str,
    rows: Option<u64>,
    error: Option<&str>,
) -> duckdb::Result<()> {
    conn.execute(
        "DELETE FROM _kura.files WHERE source = ? AND path = ?",
        params![f.source, f.path],
    )?;
    let loaded_at = if status == "failed" { "NULL" } else { "now()" };
    conn.execute(
        &format!(
            "INSERT INTO _kura.files VALUES (?, ?, ?, ?, ?::TIMESTAMPTZ, ?, ?, ?, ?, {loaded_at}, now())"
        ),
        params![
            f.source,
            f.path,
            format!("{}.{}", f.schema, f.table),
            f.size as i64,
            f.mtime.to_rfc3339(),
            f.hash,
            rows.map(|r| r as i64),
            status,
            error
        ],
    )?;
    Ok(())
}

/// Records a failed file: the ledger says why, the rows loaded from it before stay.
pub fn record_failure(conn: &Connection, f: &FileLoad<'_>, error: &str) -> duckdb::Result<()> {
    ensure_ledger(conn)?;
    conn.execute_batch("BEGIN TRANSACTION")?;
    let previous_rows: Option<i64> = conn
        .query_row(
            "SELECT rows FROM _kura.files WHERE source = ? AND path = ?",
            params![f.source, f.path],
            |r| r.get(0),
        )
        .ok()
        .flatten();
    let result = write_ledger(
        conn,
        f,
        "failed",
        previous_rows.map(i64::unsigned_abs),
        Some(error),
    );
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            rollback(conn);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_rules() {
        assert!(widens("INTEGER", "BIGINT"));
        assert!(!widens("BIGINT", "INTEGER"));
        assert!(widens("INTEGER", "DOUBLE"));
        assert!(widens("VARCHAR", "DATE"));
        assert!(widens("DATE", "TIMESTAMP"));
        assert!(!widens("DOUBLE", "BIGINT"));
        assert!(widens("BIGINT", "VARCHAR"));
    }

    #[test]
    fn missing_and_retyped_columns_conflict_new_ones_widen() {
        let t = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect::<Vec<_>>()
        };
        let table = t(&[("id", "BIGINT"), ("amount", "DOUBLE")]);
        assert_eq!(
            reconcile_columns(
                &t(&[("id", "BIGINT"), ("amount", "DOUBLE"), ("note", "VARCHAR")]),
                &table
            )
            .unwrap(),
            vec!["note".to_owned()]
        );
        let err = reconcile_columns(&t(&[("id", "BIGINT")]), &table).unwrap_err();
        assert!(
            err.to_string().contains("amount (DOUBLE) is missing"),
            "{err}"
        );
        let err =
            reconcile_columns(&t(&[("id", "DOUBLE"), ("amount", "DOUBLE")]), &table).unwrap_err();
        assert!(
            err.to_string()
                .contains("id is BIGINT in the table but DOUBLE"),
            "{err}"
        );
    }
}
