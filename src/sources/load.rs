//! Loading one staged file into its table: one DuckDB transaction on the single writer.
//!
//! The file's rows and its ledger entry (`ledger`, `_kura.files`) commit together or not at all. A
//! file whose columns conflict with the table (a column missing, or a type that does not
//! widen) is refused and the table keeps its rows; a new column widens the table. A file
//! with no rows never wipes rows that were there unless `allow_empty` is set. Runs only on
//! the `warehouse-w` thread.
//!
//! A Parquet or JSON file in a table of its own (table-per-file, replace mode) gets
//! `_kura_file` and `_kura_loaded_at` as *virtual* columns: constants declared in the
//! catalog, not values stored per row. Storing them costs about a fifth of a 1M-row
//! Parquet load and a seventh of an NDJSON one (DuckDB analyses and compresses both columns
//! for every row group); declared, they cost nothing, and a changed file replaces the table
//! whole instead of deleting its rows one by one. Declaring needs the file's columns before
//! the load: free for Parquet (its footer), one sniff for JSON (the load is then told the
//! columns and does not sniff again). CSV files store the columns per row: the CSV reader
//! sniffs again even when told the columns, which costs more than it saves (measured +20%
//! on 1M rows). Tables that gather several files (folder sources, append mode) store them
//! per row; a table that must start gathering gets its virtual columns written out first.

use std::path::Path;
use std::sync::Arc;

use duckdb::InterruptHandle;

use crate::db::warehouse::JobControl;

use chrono::{DateTime, Utc};
use duckdb::{Connection, params};

mod reader;
mod widen;

use reader::{Leniency, reader, reader_with};
use widen::reconcile_columns;

use super::formats::Format;
use super::ledger;
pub(crate) use crate::config::Mode;
use crate::db::warehouse::{rollback, sql_ident, sql_string};

/// Columns Kura adds to every loaded row.
pub(crate) const FILE_COLUMN: &str = "_kura_file";
pub(crate) const LOADED_AT_COLUMN: &str = "_kura_loaded_at";

/// One file to load.
pub(crate) struct FileLoad<'a> {
    pub(crate) source: &'a str,
    pub(crate) schema: &'a str,
    pub(crate) table: &'a str,
    /// The ledger key: the path relative to the project directory.
    pub(crate) path: &'a str,
    pub(crate) staged: &'a Path,
    pub(crate) format: Format,
    pub(crate) size: u64,
    pub(crate) mtime: DateTime<Utc>,
    pub(crate) hash: &'a str,
    pub(crate) mode: Mode,
    /// The table holds this file's rows alone (a table-per-file source).
    pub(crate) own_table: bool,
    pub(crate) allow_empty: bool,
    /// Lets the load be cancelled while its long statements run (the sync's control and
    /// the writer's interrupt handle).
    pub(crate) cancel: Option<(&'a JobControl, &'a Arc<InterruptHandle>)>,
}

impl FileLoad<'_> {
    /// The file as its ledger row records it.
    pub(crate) fn record(&self) -> ledger::Record<'_> {
        ledger::Record {
            source: self.source,
            path: self.path,
            table: format!("{}.{}", self.schema, self.table),
            size: self.size,
            mtime: self.mtime,
            hash: self.hash,
        }
    }
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
pub(crate) struct Loaded {
    pub(crate) rows: u64,
    pub(crate) replaced: u64,
    pub(crate) added_columns: Vec<String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum LoadError {
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
    /// The file's column types could not be declared as a table (a type name DuckDB prints
    /// but does not parse back); the load is retried with stored columns.
    #[error("cannot declare the table: {0}")]
    Declare(String),
    #[error("cancelled")]
    Cancelled,
}

fn engine(e: duckdb::Error) -> LoadError {
    LoadError::Engine(e.to_string())
}

/// Columns (name, type) of a relation.
fn describe(conn: &Connection, relation: &str) -> duckdb::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare(&format!("DESCRIBE SELECT * FROM {relation}"))?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    rows.collect()
}

/// A table that exists, as the catalog describes it.
struct ExistingTable {
    /// Its columns but Kura's own, in order.
    columns: Vec<(String, String)>,
    /// Its `_kura_file` / `_kura_loaded_at` are virtual (declared constants).
    virtual_columns: bool,
}

/// Reads the table `f` loads into, if it exists. Asked before the file's transaction: a
/// missing table is an error, and an error inside a transaction aborts it (the answer
/// holds, since only this thread changes tables). `pragma_table_info` reads one table's
/// entry: `information_schema.columns`, which would also say which columns are generated,
/// reads every table's and cost ~5 ms a file (measured with 100 tables).
fn existing_table(conn: &Connection, f: &FileLoad<'_>) -> Result<Option<ExistingTable>, LoadError> {
    let name = format!("{}.{}", sql_ident(f.schema), sql_ident(f.table));
    let sql = format!(
        "SELECT name, type, dflt_value FROM pragma_table_info({})",
        sql_string(&name)
    );
    let columns = conn.prepare(&sql).and_then(|mut stmt| {
        stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?
        .collect::<duckdb::Result<Vec<_>>>()
    });
    let columns = match columns {
        Ok(columns) => columns,
        Err(e) if e.to_string().contains("does not exist") => return Ok(None),
        Err(e) => return Err(engine(e)),
    };
    // Kura never gives `_kura_file` a default: an expression there is a virtual
    // column's constant.
    let virtual_columns = columns
        .iter()
        .any(|(name, _, default)| name == FILE_COLUMN && default.is_some());
    Ok(Some(ExistingTable {
        columns: columns
            .into_iter()
            .filter(|(n, _, _)| n != FILE_COLUMN && n != LOADED_AT_COLUMN)
            .map(|(n, t, _)| (n, t))
            .collect(),
        virtual_columns,
    }))
}

/// Loads `f` in one transaction. On error nothing changed; the caller records the failure.
pub(crate) fn load(conn: &Connection, f: &FileLoad<'_>) -> Result<Loaded, LoadError> {
    let existing = existing_table(conn, f)?;
    let existing = existing.as_ref();
    conn.execute_batch("BEGIN TRANSACTION").map_err(engine)?;
    let mut lenient = Leniency::default();
    let mut result = load_in_transaction(conn, f, existing, lenient);
    // A few retries, each turning on what the error asked for.
    for _ in 0..3 {
        let Err(error) = &result else { break };
        let Some(next) = lenient.after(error, f.format) else {
            break;
        };
        if let LoadError::Declare(msg) = error {
            tracing::warn!(file = f.path, error = %msg, "storing the Kura columns per row instead");
        }
        lenient = next;
        rollback(conn);
        conn.execute_batch("BEGIN TRANSACTION").map_err(engine)?;
        result = load_in_transaction(conn, f, existing, lenient);
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

fn load_in_transaction(
    conn: &Connection,
    f: &FileLoad<'_>,
    existing: Option<&ExistingTable>,
    lenient: Leniency,
) -> Result<Loaded, LoadError> {
    conn.execute_batch(&format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        sql_ident(f.schema)
    ))
    .map_err(engine)?;
    let attempt = Attempt::new(conn, f, lenient);
    let loaded = match existing {
        None => Loaded {
            rows: attempt.create()?,
            ..Loaded::default()
        },
        Some(existing) => attempt.refill(existing)?,
    };
    if loaded.rows == 0 && loaded.replaced > 0 && !f.allow_empty {
        return Err(LoadError::EmptyReplace {
            existing: loaded.replaced,
        });
    }
    ledger::record_load(conn, &f.record(), loaded.rows).map_err(engine)?;
    Ok(loaded)
}

/// One attempt at loading a file, inside its transaction, with one [`Leniency`].
struct Attempt<'a> {
    conn: &'a Connection,
    f: &'a FileLoad<'a>,
    lenient: Leniency,
    /// `schema.table`, quoted.
    table: String,
    /// The reader call.
    source: String,
    kura: KuraColumns,
    /// The Kura columns are (to be) declared rather than stored; see the module docs.
    virtual_columns: bool,
}

impl<'a> Attempt<'a> {
    fn new(conn: &'a Connection, f: &'a FileLoad<'a>, lenient: Leniency) -> Self {
        Self {
            conn,
            f,
            lenient,
            table: format!("{}.{}", sql_ident(f.schema), sql_ident(f.table)),
            source: reader(f.format, f.staged, lenient),
            kura: KuraColumns::now(f.path),
            virtual_columns: f.own_table
                && f.mode == Mode::Replace
                && matches!(f.format, Format::Parquet | Format::Json)
                && !lenient.stored_columns,
        }
    }

    /// The reader call, told the file's columns (see [`reader_with`]).
    fn typed_source(&self, columns: &[(String, String)]) -> String {
        reader_with(self.f.format, self.f.staged, self.lenient, Some(columns))
    }

    /// Creates the table from the file; returns its rows.
    fn create(&self) -> Result<u64, LoadError> {
        let (conn, table, source) = (self.conn, &self.table, &self.source);
        if self.virtual_columns {
            let file_columns = file_columns(conn, source)?;
            declare_table(conn, "CREATE TABLE", table, &file_columns, &self.kura)?;
            return insert(conn, self.f, table, &self.typed_source(&file_columns), None);
        }
        // Not a prepared statement (whose row count would spare the count below): the
        // prepared CREATE TABLE AS measured ~10% slower on a 1M-row CSV in one run of two,
        // and counting a new table's rows reads only its metadata.
        cancellable(self.f, || {
            conn.execute_batch(&format!(
                "CREATE TABLE {table} AS SELECT *, {} FROM {source}",
                self.kura.stored()
            ))
            .map_err(|e| LoadError::Parse(e.to_string()))
        })?;
        let rows = conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(engine)?;
        Ok(rows.unsigned_abs())
    }

    /// Loads the file into the table that exists: its columns checked against the table's,
    /// then its earlier rows replaced (replace mode) or added to (append mode).
    fn refill(&self, existing: &ExistingTable) -> Result<Loaded, LoadError> {
        let (conn, f, table) = (self.conn, self.f, &self.table);
        let file_columns = file_columns(conn, &self.source)?;
        // A folder's files are unioned by name: one that lacks a column another file added
        // loads it as NULL. A table of its own refuses a replacement that drops a column.
        let (added_columns, has_rows) =
            match reconcile_columns(&file_columns, &existing.columns, !f.own_table) {
                Ok(added) => (added, true),
                // A file without rows has no columns worth comparing (an empty JSON file reads
                // as one `json` column): it is an empty replacement, not a conflict.
                Err(conflict) if has_rows(conn, &self.source)? => return Err(conflict),
                Err(_) => (Vec::new(), false),
            };
        let mut loaded = Loaded {
            added_columns,
            ..Loaded::default()
        };
        if let Some(rows_before) = self.rows_if_alone()? {
            // The table is this file's rows alone: declare it anew (the columns it had, in
            // their order and types, then the new ones) and fill it.
            let typed = self.typed_source(&file_columns);
            let mut columns = existing.columns.clone();
            columns.extend(
                file_columns
                    .into_iter()
                    .filter(|(n, _)| loaded.added_columns.contains(n)),
            );
            declare_table(conn, "CREATE OR REPLACE TABLE", table, &columns, &self.kura)?;
            loaded.replaced = rows_before;
            if has_rows {
                loaded.rows = insert(conn, f, table, &typed, None)?;
            }
            return Ok(loaded);
        }
        if existing.virtual_columns {
            // Rows of another file (kept after it was deleted) or a mode that gathers
            // files: from now on the table stores the columns per row.
            conn.execute_batch(&format!(
                "CREATE OR REPLACE TABLE {table} AS SELECT * FROM {table}"
            ))
            .map_err(engine)?;
        }
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
        if has_rows {
            loaded.rows = insert(conn, f, table, &self.source, Some(&self.kura))?;
        }
        Ok(loaded)
    }

    /// When the Kura columns are to be declared and the table holds this file's rows
    /// alone: how many. (Counted only then: on a table gathering many files it is a scan.)
    fn rows_if_alone(&self) -> Result<Option<u64>, LoadError> {
        if !self.virtual_columns {
            return Ok(None);
        }
        let (rows, others) = self
            .conn
            .query_row(
                &format!(
                    "SELECT count(*), count(*) FILTER (WHERE {FILE_COLUMN} IS DISTINCT FROM ?) FROM {}",
                    self.table
                ),
                [self.f.path],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
            )
            .map_err(engine)?;
        Ok((others == 0).then_some(rows.unsigned_abs()))
    }
}

/// The values of `_kura_file` and `_kura_loaded_at` for one load.
struct KuraColumns {
    file: String,
    loaded_at: String,
}

impl KuraColumns {
    fn now(path: &str) -> Self {
        // A literal rather than now(): DuckDB evaluates now() for every chunk of the load,
        // measured at ~5% of a 1M-row CSV load; the value is the same.
        let at = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S%.6f+00");
        Self {
            file: sql_string(path),
            loaded_at: format!("TIMESTAMPTZ '{at}'"),
        }
    }

    /// As select-list items, stored per row.
    fn stored(&self) -> String {
        format!(
            "{} AS {FILE_COLUMN}, {} AS {LOADED_AT_COLUMN}",
            self.file, self.loaded_at
        )
    }

    /// As column definitions, virtual.
    fn declared(&self) -> String {
        format!(
            "{FILE_COLUMN} VARCHAR GENERATED ALWAYS AS ({}) VIRTUAL, \
             {LOADED_AT_COLUMN} TIMESTAMPTZ GENERATED ALWAYS AS ({}) VIRTUAL",
            self.file, self.loaded_at
        )
    }
}

/// The file's columns, refusing the names Kura reserves.
fn file_columns(conn: &Connection, source: &str) -> Result<Vec<(String, String)>, LoadError> {
    let columns = describe(conn, source).map_err(|e| LoadError::Parse(e.to_string()))?;
    match columns
        .iter()
        .find(|(n, _)| n == FILE_COLUMN || n == LOADED_AT_COLUMN)
    {
        Some((name, _)) => Err(LoadError::SchemaConflict(format!(
            "the file has a column named {name}, which Kura reserves for itself"
        ))),
        None => Ok(columns),
    }
}

/// Whether the file has at least one row (reads no further than that).
fn has_rows(conn: &Connection, source: &str) -> Result<bool, LoadError> {
    conn.query_row(
        &format!("SELECT count(*) > 0 FROM (SELECT 1 FROM {source} LIMIT 1)"),
        [],
        |r| r.get(0),
    )
    .map_err(|e| LoadError::Parse(e.to_string()))
}

/// `create` is `CREATE TABLE` or `CREATE OR REPLACE TABLE`.
fn declare_table(
    conn: &Connection,
    create: &str,
    table: &str,
    columns: &[(String, String)],
    kura: &KuraColumns,
) -> Result<(), LoadError> {
    let mut definitions: Vec<String> = columns
        .iter()
        .map(|(name, ty)| format!("{} {ty}", sql_ident(name)))
        .collect();
    definitions.push(kura.declared());
    conn.execute_batch(&format!("{create} {table} ({})", definitions.join(", ")))
        .map_err(|e| LoadError::Declare(e.to_string()))
}

/// Inserts the file's rows by name (with the Kura columns when they are stored per row);
/// returns how many.
fn insert(
    conn: &Connection,
    f: &FileLoad<'_>,
    table: &str,
    source: &str,
    stored: Option<&KuraColumns>,
) -> Result<u64, LoadError> {
    let extra = stored
        .map(|k| format!(", {}", k.stored()))
        .unwrap_or_default();
    cancellable(f, || {
        conn.execute(
            &format!("INSERT INTO {table} BY NAME SELECT *{extra} FROM {source}"),
            [],
        )
        .map_err(|e| LoadError::Parse(e.to_string()))
    })
    .map(|n| n as u64)
}

/// Removes a deleted file's rows (or keeps them) and updates its ledger row, in one
/// transaction. Returns the rows removed or kept.
pub(crate) fn remove_file(
    c: &Connection,
    source: &str,
    path: &str,
    table: &str,
    keep: bool,
) -> duckdb::Result<u64> {
    c.execute_batch("BEGIN TRANSACTION")?;
    let result = (|| {
        let (schema, name) = table.split_once('.').unwrap_or(("main", table));
        let exists: bool = c.query_row(
            "SELECT count(*) > 0 FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
            params![schema, name],
            |r| r.get(0),
        )?;
        let qualified = format!("{}.{}", sql_ident(schema), sql_ident(name));
        let rows = if !exists {
            0
        } else if keep {
            c.query_row(
                &format!("SELECT count(*) FROM {qualified} WHERE {FILE_COLUMN} = ?"),
                [path],
                |r| r.get::<_, i64>(0),
            )?
            .unsigned_abs()
        } else {
            c.execute(
                &format!("DELETE FROM {qualified} WHERE {FILE_COLUMN} = ?"),
                [path],
            )? as u64
        };
        ledger::record_removal(c, source, path, keep)?;
        Ok(rows)
    })();
    match result {
        Ok(rows) => {
            c.execute_batch("COMMIT")?;
            Ok(rows)
        }
        Err(e) => {
            rollback(c);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A warehouse job's view of DuckDB: an in-memory instance and a folder of files.
    struct Bench {
        conn: Connection,
        dir: tempfile::TempDir,
    }

    impl Bench {
        fn new() -> Self {
            Self {
                conn: crate::db::warehouse::test_warehouse(),
                dir: tempfile::tempdir().unwrap(),
            }
        }

        /// Loads `content` as `path` (CSV or JSON by its extension) into `raw_s.<table>`.
        fn load(
            &self,
            path: &str,
            table: &str,
            content: &str,
            own_table: bool,
            mode: Mode,
        ) -> Result<Loaded, LoadError> {
            self.load_with(path, table, content, own_table, mode, false)
        }

        fn load_with(
            &self,
            path: &str,
            table: &str,
            content: &str,
            own_table: bool,
            mode: Mode,
            allow_empty: bool,
        ) -> Result<Loaded, LoadError> {
            let staged = self.dir.path().join(path.replace('/', "_"));
            std::fs::write(&staged, content).unwrap();
            let format = if path.ends_with(".csv") {
                Format::Csv
            } else {
                Format::Json
            };
            self.load_staged(path, &staged, format, table, own_table, mode, allow_empty)
        }

        /// Writes the rows of `select` as the Parquet file `path` and loads it.
        fn load_parquet(&self, path: &str, table: &str, select: &str) -> Result<Loaded, LoadError> {
            let staged = self.dir.path().join(path.replace('/', "_"));
            self.conn
                .execute_batch(&format!(
                    "COPY ({select}) TO {} (FORMAT parquet)",
                    sql_string(&staged.display().to_string())
                ))
                .unwrap();
            self.load_staged(
                path,
                &staged,
                Format::Parquet,
                table,
                true,
                Mode::Replace,
                false,
            )
        }

        #[expect(
            clippy::too_many_arguments,
            reason = "a test helper spelling out a load"
        )]
        fn load_staged(
            &self,
            path: &str,
            staged: &Path,
            format: Format,
            table: &str,
            own_table: bool,
            mode: Mode,
            allow_empty: bool,
        ) -> Result<Loaded, LoadError> {
            load(
                &self.conn,
                &FileLoad {
                    source: "s",
                    schema: "raw_s",
                    table,
                    path,
                    staged,
                    format,
                    size: 1,
                    mtime: Utc::now(),
                    hash: "h",
                    mode,
                    own_table,
                    allow_empty,
                    cancel: None,
                },
            )
        }

        fn strings(&self, sql: &str) -> Vec<String> {
            let mut stmt = self.conn.prepare(sql).unwrap();
            stmt.query_map([], |r| r.get::<_, String>(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        }

        /// `name:type:generated` for every column of `raw_s.<table>`, in order.
        fn columns(&self, table: &str) -> Vec<String> {
            self.strings(&format!(
                "SELECT column_name || ':' || data_type || ':' || is_generated FROM information_schema.columns \
                 WHERE table_schema = 'raw_s' AND table_name = '{table}' ORDER BY ordinal_position"
            ))
        }

        /// `file=k` for every row of `raw_s.<table>`, by `k`.
        fn files_and_keys(&self, table: &str) -> Vec<String> {
            self.strings(&format!(
                "SELECT _kura_file || '=' || k FROM raw_s.{table} ORDER BY k"
            ))
        }

        fn stores_kura_columns(&self, table: &str) -> bool {
            self.columns(table).iter().all(|c| c.ends_with(":NEVER"))
        }
    }

    #[test]
    fn a_json_file_in_a_table_of_its_own_declares_the_kura_columns_and_is_replaced_whole() {
        let b = Bench::new();
        let first = "{\"id\": 1, \"amount\": 1.5, \"tags\": {\"a b\": [1]}}\n{\"id\": 2, \"amount\": 2.5}\n";
        let loaded = b
            .load("d/a.ndjson", "a", first, true, Mode::Replace)
            .unwrap();
        assert_eq!(loaded.rows, 2);
        assert_eq!(
            b.columns("a"),
            [
                "id:BIGINT:NEVER",
                "amount:DOUBLE:NEVER",
                "tags:STRUCT(\"a b\" BIGINT[]):NEVER",
                "_kura_file:VARCHAR:ALWAYS",
                "_kura_loaded_at:TIMESTAMP WITH TIME ZONE:ALWAYS"
            ]
        );
        assert_eq!(
            b.strings("SELECT DISTINCT _kura_file FROM raw_s.a"),
            ["d/a.ndjson"]
        );
        assert_eq!(
            b.strings("SELECT tags::VARCHAR FROM raw_s.a WHERE id = 1"),
            ["{'a b': [1]}"]
        );
        let loaded_at = b.strings("SELECT _kura_loaded_at::VARCHAR FROM raw_s.a LIMIT 1");

        // New content: keys in another order, an amount that widens into the table's
        // DOUBLE, a new key. The table keeps its columns' order and types, gains the new
        // one, and holds exactly the new rows.
        let second = "{\"note\": \"n\", \"tags\": null, \"amount\": 7, \"id\": 3}\n";
        let loaded = b
            .load("d/a.ndjson", "a", second, true, Mode::Replace)
            .unwrap();
        assert_eq!((loaded.rows, loaded.replaced), (1, 2));
        assert_eq!(loaded.added_columns, ["note"]);
        assert_eq!(
            b.columns("a"),
            [
                "id:BIGINT:NEVER",
                "amount:DOUBLE:NEVER",
                "tags:STRUCT(\"a b\" BIGINT[]):NEVER",
                "note:VARCHAR:NEVER",
                "_kura_file:VARCHAR:ALWAYS",
                "_kura_loaded_at:TIMESTAMP WITH TIME ZONE:ALWAYS"
            ]
        );
        assert_eq!(
            b.strings("SELECT id || ' ' || amount || ' ' || note FROM raw_s.a"),
            ["3 7.0 n"]
        );
        assert_ne!(
            b.strings("SELECT _kura_loaded_at::VARCHAR FROM raw_s.a LIMIT 1"),
            loaded_at
        );

        // A file missing a column, or one with no rows, leaves the table as it was.
        let err = b
            .load("d/a.ndjson", "a", "{\"id\": 4}\n", true, Mode::Replace)
            .unwrap_err();
        assert!(matches!(err, LoadError::SchemaConflict(_)), "{err}");
        let err = b
            .load("d/a.ndjson", "a", "[]", true, Mode::Replace)
            .unwrap_err();
        assert_eq!(err, LoadError::EmptyReplace { existing: 1 });
        assert_eq!(
            b.strings("SELECT id || ' ' || amount || ' ' || note FROM raw_s.a"),
            ["3 7.0 n"]
        );
        assert_eq!(
            b.strings("SELECT status || ':' || rows FROM _kura.files"),
            ["loaded:1"]
        );
    }

    #[test]
    fn an_empty_replacement_of_a_declared_table_is_refused_unless_forced() {
        let b = Bench::new();
        b.load("d/e.json", "e", "[{\"json\": 1}]", true, Mode::Replace)
            .unwrap();
        let err = b
            .load("d/e.json", "e", "[]", true, Mode::Replace)
            .unwrap_err();
        assert_eq!(err, LoadError::EmptyReplace { existing: 1 });
        assert_eq!(b.strings("SELECT count(*)::VARCHAR FROM raw_s.e"), ["1"]);
        // Forced (a full refresh with allow_empty): the table is emptied, its columns stay.
        let loaded = b
            .load_with("d/e.json", "e", "[]", true, Mode::Replace, true)
            .unwrap();
        assert_eq!((loaded.rows, loaded.replaced), (0, 1));
        assert_eq!(b.strings("SELECT count(*)::VARCHAR FROM raw_s.e"), ["0"]);
        assert_eq!(b.strings("SELECT status FROM _kura.files"), ["empty"]);
    }

    #[test]
    fn csv_files_and_tables_that_gather_files_store_the_kura_columns_per_row() {
        let b = Bench::new();
        b.load("u/c.csv", "c", "k\na\n", true, Mode::Replace)
            .unwrap();
        b.load("d/1.csv", "d", "k\na\nb\n", false, Mode::Replace)
            .unwrap();
        b.load("d/2.ndjson", "d", "{\"k\": \"c\"}\n", false, Mode::Replace)
            .unwrap();
        b.load("u/x.ndjson", "x", "{\"k\": \"a\"}\n", true, Mode::Append)
            .unwrap();
        for table in ["c", "d", "x"] {
            assert!(b.stores_kura_columns(table), "{:?}", b.columns(table));
        }
        let loaded = b
            .load("d/1.csv", "d", "k\nz\n", false, Mode::Replace)
            .unwrap();
        assert_eq!((loaded.rows, loaded.replaced), (1, 2));
        assert_eq!(b.files_and_keys("d"), ["d/2.ndjson=c", "d/1.csv=z"]);
    }

    #[test]
    fn a_declared_table_that_must_hold_another_file_stores_its_columns_first() {
        let b = Bench::new();
        b.load("u/t.json", "t", "[{\"k\": \"a\"}]", true, Mode::Replace)
            .unwrap();
        assert!(!b.stores_kura_columns("t"));
        // t.json was deleted with on_delete: keep, and t.ndjson now fills the same table.
        b.load("u/t.ndjson", "t", "{\"k\": \"b\"}\n", true, Mode::Replace)
            .unwrap();
        assert!(b.stores_kura_columns("t"), "{:?}", b.columns("t"));
        assert_eq!(b.files_and_keys("t"), ["u/t.json=a", "u/t.ndjson=b"]);
        // The same happens when the source switches to append mode, or the file becomes
        // a CSV file.
        b.load("u/v.json", "v", "[{\"k\": \"a\"}]", true, Mode::Replace)
            .unwrap();
        b.load("u/v.json", "v", "[{\"k\": \"b\"}]", true, Mode::Append)
            .unwrap();
        assert_eq!(b.files_and_keys("v"), ["u/v.json=a", "u/v.json=b"]);
        b.load("u/w.json", "w", "[{\"k\": \"a\"}]", true, Mode::Replace)
            .unwrap();
        b.load("u/w.csv", "w", "k\nb\n", true, Mode::Replace)
            .unwrap();
        assert_eq!(b.files_and_keys("w"), ["u/w.json=a", "u/w.csv=b"]);
    }

    #[test]
    fn a_json_value_of_another_type_after_the_sample_rereads_the_whole_file() {
        let b = Bench::new();
        let mut lines: String = (0..30_000).map(|i| format!("{{\"id\": {i}}}\n")).collect();
        lines.push_str("{\"id\": \"N/A\"}\n");
        let loaded = b
            .load("u/late.ndjson", "late", &lines, true, Mode::Replace)
            .unwrap();
        assert_eq!(loaded.rows, 30_001);
        // Integers and a string: DuckDB's type for a key of mixed values is JSON.
        assert_eq!(b.columns("late")[0], "id:JSON:NEVER");
        assert_eq!(
            b.strings("SELECT id::VARCHAR FROM raw_s.late WHERE id::VARCHAR LIKE '%N/A%'"),
            ["\"N/A\""]
        );
    }

    #[test]
    fn a_parquet_file_in_a_table_of_its_own_declares_the_kura_columns() {
        let b = Bench::new();
        let select = "SELECT i AS id, i::DECIMAL(10,2) AS price, [i] AS list, uuid() AS u \
                      FROM range(3) t(i)";
        let loaded = b.load_parquet("u/p.parquet", "p", select).unwrap();
        assert_eq!(loaded.rows, 3);
        assert_eq!(
            b.columns("p"),
            [
                "id:BIGINT:NEVER",
                "price:DECIMAL(10,2):NEVER",
                "list:BIGINT[]:NEVER",
                "u:UUID:NEVER",
                "_kura_file:VARCHAR:ALWAYS",
                "_kura_loaded_at:TIMESTAMP WITH TIME ZONE:ALWAYS"
            ]
        );
        let loaded = b
            .load_parquet(
                "u/p.parquet",
                "p",
                "SELECT 7 AS id, 1.5 AS price, [7] AS list, uuid() AS u",
            )
            .unwrap();
        assert_eq!((loaded.rows, loaded.replaced), (1, 3));
        assert_eq!(
            b.strings("SELECT id || ' ' || price || ' ' || _kura_file FROM raw_s.p"),
            ["7 1.50 u/p.parquet"]
        );
    }
}
