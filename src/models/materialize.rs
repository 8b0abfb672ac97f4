//! Building one node on the writer. Every build is one transaction: readers see the
//! previous relation until it commits, and a failure rolls back to it.
//!
//! - `view`: `CREATE OR REPLACE VIEW` (a table of that name is dropped first).
//! - `table`: `CREATE OR REPLACE TABLE … AS` inside the transaction (DuckDB writes the
//!   new table beside the old and swaps the catalog entry at commit).
//! - `incremental`: the first build, a full refresh, or a relation that is not a table
//!   builds the table; otherwise the new rows (the SQL rendered with `is_incremental()`)
//!   go to a temporary table and are merged on `unique_key` (only rows that differ are
//!   updated), or appended without one.
//! - `seed`: the CSV file, staged by the caller, read with DuckDB's CSV reader.

use std::path::Path;

use duckdb::Connection;

use super::compile::Node;
use super::node_config::{Materialization, OnSchemaChange};
use crate::db::warehouse::{rollback, sql_ident, sql_string};

/// What a build did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Built {
    /// Rows in the relation after the build (tables, seeds); rows changed (incremental).
    pub(crate) rows: Option<u64>,
    /// Incremental: whether the rows were merged into the existing table (else built).
    #[cfg_attr(not(test), expect(dead_code, reason = "the unit tests read it"))]
    pub(crate) merged: bool,
}

/// What is at a relation now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    Nothing,
    Table,
    View,
}

fn existing(conn: &Connection, schema: &str, name: &str) -> duckdb::Result<Existing> {
    let kind: Option<String> = conn
        .query_row(
            "SELECT table_type FROM information_schema.tables \
             WHERE lower(table_schema) = lower(?) AND lower(table_name) = lower(?)",
            [schema, name],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            duckdb::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    Ok(match kind.as_deref() {
        None => Existing::Nothing,
        Some("VIEW") => Existing::View,
        Some(_) => Existing::Table,
    })
}

/// Builds `node` from `sql` (already checked by the query gate). `staged_seed` is the
/// seed's CSV in the warehouse's staging folder.
pub(crate) fn build(
    conn: &Connection,
    node: &Node,
    sql: &str,
    incremental_sql: Option<&str>,
    full_refresh: bool,
    staged_seed: Option<&Path>,
) -> Result<Built, String> {
    conn.execute_batch("BEGIN TRANSACTION")
        .map_err(|e| e.to_string())?;
    let result = build_in_transaction(conn, node, sql, incremental_sql, full_refresh, staged_seed);
    match result {
        Ok(built) => match conn.execute_batch("COMMIT") {
            Ok(()) => Ok(built),
            Err(e) => {
                rollback(conn);
                Err(e.to_string())
            }
        },
        Err(e) => {
            rollback(conn);
            Err(e.to_string())
        }
    }
}

fn build_in_transaction(
    conn: &Connection,
    node: &Node,
    sql: &str,
    incremental_sql: Option<&str>,
    full_refresh: bool,
    staged_seed: Option<&Path>,
) -> duckdb::Result<Built> {
    let r = &node.relation;
    let target = r.sql();
    conn.execute_batch(&format!(
        "CREATE SCHEMA IF NOT EXISTS {}",
        sql_ident(&r.schema)
    ))?;
    let now = existing(conn, &r.schema, &r.name)?;
    match node.materialization {
        Materialization::View => {
            if now == Existing::Table {
                conn.execute_batch(&format!("DROP TABLE {target}"))?;
            }
            conn.execute_batch(&format!("CREATE OR REPLACE VIEW {target} AS\n{sql}"))?;
            Ok(Built::default())
        }
        Materialization::Table => Ok(Built {
            rows: Some(replace_table(conn, &target, now, sql)?),
            merged: false,
        }),
        Materialization::Seed => {
            let staged = staged_seed.ok_or_else(|| {
                duckdb::Error::InvalidParameterName("the seed file was not staged".into())
            })?;
            let types = if node.column_types.is_empty() {
                String::new()
            } else {
                format!(
                    ", types = {{{}}}",
                    node.column_types
                        .iter()
                        .map(|(c, t)| format!("{}: {}", sql_string(c), sql_string(t)))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            // dbt's seed types: whole numbers are INTEGER when they fit (dbt's agate
            // inference), so a seed builds the same table under Kura and under dbt.
            let select = format!(
                "SELECT * FROM read_csv({}, header = true, auto_detect = true, \
                 auto_type_candidates = ['BOOLEAN', 'INTEGER', 'BIGINT', 'DOUBLE', 'TIME', \
                 'DATE', 'TIMESTAMP', 'VARCHAR']{types})",
                sql_string(&staged.to_string_lossy())
            );
            Ok(Built {
                rows: Some(replace_table(conn, &target, now, &select)?),
                merged: false,
            })
        }
        Materialization::Incremental => {
            let refresh = full_refresh && node.full_refresh != Some(false);
            let Some(new_rows) = incremental_sql.filter(|_| now == Existing::Table && !refresh)
            else {
                return Ok(Built {
                    rows: Some(replace_table(conn, &target, now, sql)?),
                    merged: false,
                });
            };
            merge(conn, node, &target, new_rows)
        }
        Materialization::Ephemeral => Ok(Built::default()),
    }
}

/// Builds the table; returns its rows (DuckDB reports how many the statement wrote).
fn replace_table(conn: &Connection, target: &str, now: Existing, sql: &str) -> duckdb::Result<u64> {
    if now == Existing::View {
        conn.execute_batch(&format!("DROP VIEW {target}"))?;
    }
    let rows = conn.execute(&format!("CREATE OR REPLACE TABLE {target} AS\n{sql}"), [])?;
    Ok(rows as u64)
}

fn columns(conn: &Connection, relation: &str) -> duckdb::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare(&format!("DESCRIBE {relation}"))?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    rows.collect()
}

/// Merges (or appends) the new rows of an incremental model.
fn merge(conn: &Connection, node: &Node, target: &str, new_rows: &str) -> duckdb::Result<Built> {
    const NEW: &str = "__kura_incremental";
    conn.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE {NEW} AS\n{new_rows}"
    ))?;
    let result = (|| {
        let incoming = columns(conn, NEW)?;
        let mut present: Vec<String> = columns(conn, target)?.into_iter().map(|(c, _)| c).collect();
        let missing: Vec<&(String, String)> = incoming
            .iter()
            .filter(|(c, _)| !present.iter().any(|p| p.eq_ignore_ascii_case(c)))
            .collect();
        if !missing.is_empty() {
            match node.on_schema_change {
                OnSchemaChange::Ignore => {}
                OnSchemaChange::Fail => {
                    return Err(duckdb::Error::InvalidParameterName(format!(
                        "the new rows have columns the table lacks ({}); on_schema_change is fail",
                        missing
                            .iter()
                            .map(|(c, _)| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                OnSchemaChange::AppendNewColumns => {
                    for (c, t) in &missing {
                        conn.execute_batch(&format!(
                            "ALTER TABLE {target} ADD COLUMN {} {t}",
                            sql_ident(c)
                        ))?;
                        present.push(c.clone());
                    }
                }
            }
        }
        let shared: Vec<String> = incoming
            .iter()
            .map(|(c, _)| c.clone())
            .filter(|c| present.iter().any(|p| p.eq_ignore_ascii_case(c)))
            .collect();
        let list = shared
            .iter()
            .map(|c| sql_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let changed = match &node.unique_key {
            None => conn.execute(
                &format!("INSERT INTO {target} ({list}) SELECT {list} FROM {NEW}"),
                [],
            )?,
            Some(keys) => {
                let on = keys
                    .iter()
                    .map(|k| format!("t.{k} IS NOT DISTINCT FROM s.{k}", k = sql_ident(k)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let others: Vec<&String> = shared
                    .iter()
                    .filter(|c| !keys.iter().any(|k| k.eq_ignore_ascii_case(c)))
                    .collect();
                let differs = others
                    .iter()
                    .map(|c| format!("t.{c} IS DISTINCT FROM s.{c}", c = sql_ident(c)))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                let update = if others.is_empty() {
                    String::new()
                } else {
                    format!(
                        " WHEN MATCHED AND ({differs}) THEN UPDATE SET {}",
                        others
                            .iter()
                            .map(|c| format!("{c} = s.{c}", c = sql_ident(c)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                let values = shared
                    .iter()
                    .map(|c| format!("s.{}", sql_ident(c)))
                    .collect::<Vec<_>>()
                    .join(", ");
                conn.execute(
                    &format!(
                        "MERGE INTO {target} AS t USING {NEW} AS s ON ({on}){update} \
                         WHEN NOT MATCHED THEN INSERT ({list}) VALUES ({values})"
                    ),
                    [],
                )?
            }
        };
        Ok(Built {
            rows: Some(changed as u64),
            merged: true,
        })
    })();
    let dropped = conn.execute_batch(&format!("DROP TABLE IF EXISTS temp.{NEW}"));
    let built = result?;
    dropped?;
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::jinja::Relation;

    fn node(name: &str, m: Materialization, key: Option<&[&str]>) -> Node {
        let mut n = crate::models::compile::test_node(name, &[]);
        n.relation = Relation::new("marts", name);
        n.materialization = m;
        n.unique_key = key.map(|k| k.iter().map(|s| (*s).to_owned()).collect());
        n
    }

    fn rows(conn: &Connection, sql: &str) -> Vec<(i64, String)> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<duckdb::Result<_>>()
            .unwrap()
    }

    #[test]
    fn a_failed_build_keeps_the_previous_table_and_a_view_replaces_a_table() {
        let conn = crate::db::warehouse::test_warehouse();
        let t = node("t", Materialization::Table, None);
        build(&conn, &t, "select 1 as id, 'a' as v", None, false, None).unwrap();
        let e = build(&conn, &t, "select 1/0 as id, nope as v", None, false, None).unwrap_err();
        assert!(e.contains("nope"), "{e}");
        assert_eq!(rows(&conn, "select * from marts.t"), [(1, "a".into())]);
        let v = node("t", Materialization::View, None);
        build(&conn, &v, "select 2 as id, 'b' as v", None, false, None).unwrap();
        assert_eq!(rows(&conn, "select * from marts.t"), [(2, "b".into())]);
        let table_again = build(&conn, &t, "select 3 as id, 'c' as v", None, false, None).unwrap();
        assert_eq!(table_again.rows, Some(1));
    }

    #[test]
    fn incremental_merges_on_the_key_changes_nothing_when_nothing_is_new_and_equals_a_rebuild() {
        let conn = crate::db::warehouse::test_warehouse();
        conn.execute_batch(
            "create table src (id int, v varchar); insert into src values (1, 'a'), (2, 'b')",
        )
        .unwrap();
        let m = node("inc", Materialization::Incremental, Some(&["id"]));
        let full = "select id, v from src";
        let new = "select id, v from src where id >= 2";
        let first = build(&conn, &m, full, Some(new), false, None).unwrap();
        assert!(!first.merged);
        conn.execute_batch("update src set v = 'B' where id = 2; insert into src values (3, 'c')")
            .unwrap();
        let again = build(&conn, &m, full, Some(new), false, None).unwrap();
        assert!(again.merged);
        assert_eq!(again.rows, Some(2));
        let quiet = build(&conn, &m, full, Some(new), false, None).unwrap();
        assert_eq!(quiet.rows, Some(0), "nothing new: nothing changes");
        let merged = rows(&conn, "select * from marts.inc order by id");
        build(&conn, &m, full, Some(new), true, None).unwrap();
        assert_eq!(rows(&conn, "select * from marts.inc order by id"), merged);
        assert_eq!(merged, [(1, "a".into()), (2, "B".into()), (3, "c".into())]);
    }
}
