//! What the platform endpoints read from the warehouse's catalog and the load ledger.

use serde::Serialize;

use crate::sources::ledger;

/// Tables in the warehouse by layer, from the schema naming convention:
/// `raw_*` (loaded files), `staging*` and `marts*` (models), anything else "other".
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub(crate) struct TableCounts {
    pub(crate) tables: u64,
    pub(crate) raw_tables: u64,
    pub(crate) staging_tables: u64,
    pub(crate) marts_tables: u64,
    /// `raw_<source>` schemas: one per source that has loaded data.
    pub(crate) raw_schemas: u64,
}

/// Counts user tables per layer (internal `_kura` bookkeeping excluded).
pub(crate) fn count_tables(conn: &duckdb::Connection) -> duckdb::Result<TableCounts> {
    conn.query_row(
        "SELECT count(*),
                count(*) FILTER (WHERE schema_name LIKE 'raw\\_%' ESCAPE '\\'),
                count(*) FILTER (WHERE schema_name LIKE 'staging%'),
                count(*) FILTER (WHERE schema_name LIKE 'marts%'),
                count(DISTINCT schema_name) FILTER (WHERE schema_name LIKE 'raw\\_%' ESCAPE '\\')
         FROM duckdb_tables() WHERE NOT internal AND schema_name <> '_kura'",
        [],
        |r| {
            Ok(TableCounts {
                tables: r.get(0)?,
                raw_tables: r.get(1)?,
                staging_tables: r.get(2)?,
                marts_tables: r.get(3)?,
                raw_schemas: r.get(4)?,
            })
        },
    )
}

/// What the warehouse reports about itself: table counts, failed ledger files, and the
/// share of the data each schema holds.
pub(crate) struct WarehouseFacts {
    pub(crate) counts: TableCounts,
    pub(crate) failed_files: Vec<ledger::Failure>,
    /// schema → estimated rows × columns, for splitting the file's size by schema.
    pub(crate) schema_cells: Vec<(String, f64)>,
}

/// The failed files listed at most.
const FAILED_FILES_SHOWN: usize = 100;

pub(crate) fn warehouse_facts(conn: &duckdb::Connection) -> duckdb::Result<WarehouseFacts> {
    let counts = count_tables(conn)?;
    let failed_files = ledger::failures(conn, FAILED_FILES_SHOWN)?;
    let mut stmt = conn.prepare(
        "SELECT schema_name, sum(estimated_size * column_count)::DOUBLE \
         FROM duckdb_tables() WHERE NOT internal GROUP BY schema_name ORDER BY 1",
    )?;
    let schema_cells = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get::<_, Option<f64>>(1)?.unwrap_or(0.0)))
        })?
        .collect::<duckdb::Result<Vec<_>>>()?;
    Ok(WarehouseFacts {
        counts,
        failed_files,
        schema_cells,
    })
}
