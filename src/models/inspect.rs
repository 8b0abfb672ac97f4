//! What the warehouse holds for the project's nodes: a relation's columns with DuckDB's
//! types and its row count, and the row estimates of every table (read on the internal
//! lane for the models and catalog routes).

use std::collections::HashMap;

use duckdb::Connection;

use super::jinja::Relation;

/// A relation as the warehouse has it; no columns when it is not built.
#[derive(Debug, Clone, Default)]
pub(crate) struct Described {
    /// (name, DuckDB type), in order.
    pub(crate) columns: Vec<(String, String)>,
    pub(crate) row_count: Option<i64>,
}

pub(crate) fn describe(conn: &Connection, relation: &Relation) -> duckdb::Result<Described> {
    let mut stmt = conn.prepare(
        "SELECT column_name, data_type FROM information_schema.columns \
         WHERE lower(table_schema) = lower(?) AND lower(table_name) = lower(?) \
         ORDER BY ordinal_position",
    )?;
    let columns = stmt
        .query_map([&relation.schema, &relation.name], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<duckdb::Result<Vec<_>>>()?;
    let row_count = if columns.is_empty() {
        None
    } else {
        conn.query_row(
            &format!("SELECT count(*) FROM {}", relation.sql()),
            [],
            |r| r.get(0),
        )
        .ok()
    };
    Ok(Described { columns, row_count })
}

/// DuckDB's row estimate of every table, by `schema.table` in lower case (free to read,
/// exact after a build).
pub(crate) fn row_estimates(conn: &Connection) -> duckdb::Result<HashMap<String, i64>> {
    let mut stmt = conn.prepare(
        "SELECT lower(schema_name) || '.' || lower(table_name), estimated_size \
         FROM duckdb_tables() WHERE NOT internal",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}
