//! Generated staging views: `staging.stg_<source>__<table>` for every table of a source,
//! selecting its columns without Kura's `_kura_file` and `_kura_loaded_at` (the reference
//! product generates the same layer as dbt models). A view names its columns, so it is
//! written again whenever its table's columns change, and dropped when its table is gone.
//!
//! What the views should be is computed from DuckDB's catalog ([`plan`], a read); only
//! when that differs from what is there does the writer change anything ([`apply`]), so a
//! sync that changed nothing does not move the warehouse generation.

use std::collections::BTreeMap;

use duckdb::Connection;

use super::load::{FILE_COLUMN, LOADED_AT_COLUMN};
use crate::db::warehouse::{rollback, sql_ident};

/// The schema the generated views live in.
pub(crate) const SCHEMA: &str = "staging";

/// One change to the staging views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Create or replace the view with this statement.
    Write {
        view: String,
        sql: String,
    },
    Drop {
        view: String,
    },
}

/// The view name for `table` of `source`.
pub(crate) fn view_name(source: &str, table: &str) -> String {
    format!("stg_{source}__{table}")
}

/// What must change for the staging views of `source` (its tables live in `schema`) to
/// match its tables now.
pub(crate) fn plan(conn: &Connection, source: &str, schema: &str) -> duckdb::Result<Vec<Change>> {
    let mut columns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT table_name, column_name FROM duckdb_columns() \
             WHERE schema_name = ? AND NOT internal ORDER BY table_name, column_index",
        )?;
        let rows = stmt.query_map([schema], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (table, column) = row?;
            let entry = columns.entry(table).or_default();
            if column != FILE_COLUMN && column != LOADED_AT_COLUMN {
                entry.push(column);
            }
        }
    }
    // This source's views: those in `staging` that read from its schema (DuckDB stores a
    // view's statement re-rendered, identifiers quoted only where needed).
    let from = [
        format!(" FROM {schema}."),
        format!(" FROM {}.", sql_ident(schema)),
    ];
    let mut existing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    {
        let mut stmt = conn.prepare(
            "SELECT v.view_name, c.column_name FROM duckdb_views() v \
             JOIN duckdb_columns() c ON c.schema_name = v.schema_name AND c.table_name = v.view_name \
             WHERE v.schema_name = ? AND NOT v.internal AND (contains(v.sql, ?) OR contains(v.sql, ?)) \
             ORDER BY v.view_name, c.column_index",
        )?;
        let rows = stmt.query_map([SCHEMA, from[0].as_str(), from[1].as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (view, column) = row?;
            existing.entry(view).or_default().push(column);
        }
    }
    Ok(changes(source, schema, &columns, &existing))
}

/// The pure part of [`plan`]: the views wanted from the tables' columns, against this
/// source's views there are (name → columns).
fn changes(
    source: &str,
    schema: &str,
    tables: &BTreeMap<String, Vec<String>>,
    existing: &BTreeMap<String, Vec<String>>,
) -> Vec<Change> {
    let mut out = Vec::new();
    let mut wanted = std::collections::BTreeSet::new();
    for (table, columns) in tables {
        if columns.is_empty() {
            continue;
        }
        let view = view_name(source, table);
        if existing.get(&view) != Some(columns) {
            let sql = format!(
                "CREATE OR REPLACE VIEW {}.{} AS SELECT {} FROM {}.{}",
                sql_ident(SCHEMA),
                sql_ident(&view),
                columns
                    .iter()
                    .map(|c| sql_ident(c))
                    .collect::<Vec<_>>()
                    .join(", "),
                sql_ident(schema),
                sql_ident(table)
            );
            out.push(Change::Write {
                view: view.clone(),
                sql,
            });
        }
        wanted.insert(view);
    }
    for view in existing.keys() {
        if !wanted.contains(view) {
            out.push(Change::Drop { view: view.clone() });
        }
    }
    out
}

/// Carries `changes` out in one transaction on the writer; returns how many views changed.
pub(crate) fn apply(conn: &Connection, changes: &[Change]) -> duckdb::Result<usize> {
    if changes.is_empty() {
        return Ok(0);
    }
    conn.execute_batch("BEGIN TRANSACTION")?;
    let result = (|| {
        conn.execute_batch(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            sql_ident(SCHEMA)
        ))?;
        for change in changes {
            match change {
                Change::Write { sql, .. } => conn.execute_batch(sql)?,
                Change::Drop { view } => conn.execute_batch(&format!(
                    "DROP VIEW IF EXISTS {}.{}",
                    sql_ident(SCHEMA),
                    sql_ident(view)
                ))?,
            }
        }
        Ok(changes.len())
    })();
    match result {
        Ok(n) => {
            conn.execute_batch("COMMIT")?;
            Ok(n)
        }
        Err(e) => {
            rollback(conn);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warehouse() -> Connection {
        let conn = crate::db::warehouse::test_warehouse();
        conn.execute_batch(
            "CREATE SCHEMA raw_s; CREATE TABLE raw_s.orders (id INTEGER, \"Amount €\" DOUBLE, \
             _kura_file VARCHAR, _kura_loaded_at TIMESTAMPTZ)",
        )
        .unwrap();
        conn
    }

    fn names(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT column_name FROM duckdb_columns() WHERE schema_name = 'staging' ORDER BY column_index")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<duckdb::Result<_>>()
            .unwrap()
    }

    #[test]
    fn a_view_per_table_without_kura_columns_written_once_and_kept_in_step() {
        let conn = warehouse();
        let first = plan(&conn, "s", "raw_s").unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(apply(&conn, &first).unwrap(), 1);
        assert_eq!(names(&conn), ["id", "Amount €"]);
        // Nothing changed: nothing to do (the generation does not move).
        assert!(plan(&conn, "s", "raw_s").unwrap().is_empty());
        // A new column: the view is written again with it.
        conn.execute_batch("ALTER TABLE raw_s.orders ADD COLUMN note VARCHAR")
            .unwrap();
        let again = plan(&conn, "s", "raw_s").unwrap();
        assert!(matches!(&again[..], [Change::Write { .. }]), "{again:?}");
        apply(&conn, &again).unwrap();
        assert_eq!(names(&conn), ["id", "Amount €", "note"]);
        // The table gone: the view goes.
        conn.execute_batch("DROP TABLE raw_s.orders").unwrap();
        let gone = plan(&conn, "s", "raw_s").unwrap();
        assert_eq!(
            gone,
            [Change::Drop {
                view: "stg_s__orders".into()
            }]
        );
        apply(&conn, &gone).unwrap();
        assert!(names(&conn).is_empty());
    }

    #[test]
    fn views_of_other_sources_are_left_alone() {
        let conn = warehouse();
        apply(&conn, &plan(&conn, "s", "raw_s").unwrap()).unwrap();
        // Other sources, with no tables: they own none of these views.
        assert!(plan(&conn, "s2", "raw_s2").unwrap().is_empty());
        assert!(plan(&conn, "t", "raw_t").unwrap().is_empty());
        // A source whose name makes the same view name prefix (s__x's stg_s__x__… views
        // start with stg_s__): each source drops only views that read its own schema.
        conn.execute_batch("CREATE SCHEMA raw_s__x; CREATE TABLE raw_s__x.y (a INTEGER)")
            .unwrap();
        apply(&conn, &plan(&conn, "s__x", "raw_s__x").unwrap()).unwrap();
        assert!(plan(&conn, "s", "raw_s").unwrap().is_empty());
        assert!(plan(&conn, "s__x", "raw_s__x").unwrap().is_empty());
    }
}
