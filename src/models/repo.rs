//! Model run history in the metadata store: a run, and the result of each node and test
//! in it. The last result of a model is its latest finished row.

use rusqlite::OptionalExtension;
use serde::Serialize;

use crate::db::meta::{MetaDb, MetaError};
use crate::time::now_text as now;

/// A node as a run lists it before it starts.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub(crate) unique_id: String,
    pub(crate) name: String,
    /// model, seed or test
    pub(crate) kind: &'static str,
}

/// Opens a run with its nodes `pending`; returns its id.
pub(crate) async fn create_run(
    meta: &MetaDb,
    command: &str,
    selector: &str,
    trigger: &str,
    full_refresh: bool,
    nodes: Vec<Planned>,
) -> Result<i64, MetaError> {
    let (command, selector, trigger) =
        (command.to_owned(), selector.to_owned(), trigger.to_owned());
    meta.write(move |tx| {
        tx.execute(
            "INSERT INTO model_runs (command, selector, trigger, full_refresh, status, started_at) \
             VALUES (?1, ?2, ?3, ?4, 'running', ?5)",
            rusqlite::params![command, selector, trigger, full_refresh, now()],
        )?;
        let id = tx.last_insert_rowid();
        let mut stmt = tx.prepare(
            "INSERT INTO model_run_nodes (run_id, unique_id, name, kind, position, status) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending')",
        )?;
        for (position, n) in nodes.iter().enumerate() {
            stmt.execute(rusqlite::params![
                id,
                n.unique_id,
                n.name,
                n.kind,
                position as i64
            ])?;
        }
        Ok(id)
    })
    .await
}

/// The result of one node or test.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeResult {
    pub(crate) status: &'static str,
    pub(crate) started_at: Option<String>,
    pub(crate) duration_ms: Option<u64>,
    pub(crate) rows: Option<u64>,
    pub(crate) error: Option<String>,
    pub(crate) failures: Option<u64>,
    pub(crate) samples: Option<serde_json::Value>,
}

pub(crate) async fn set_node(
    meta: &MetaDb,
    run: i64,
    unique_id: &str,
    r: NodeResult,
) -> Result<(), MetaError> {
    let unique_id = unique_id.to_owned();
    meta.write(move |tx| {
        tx.execute(
            "UPDATE model_run_nodes SET status = ?3, started_at = coalesce(?4, started_at), \
             duration_ms = ?5, rows = ?6, error = ?7, failures = ?8, samples = ?9 \
             WHERE run_id = ?1 AND unique_id = ?2",
            rusqlite::params![
                run,
                unique_id,
                r.status,
                r.started_at,
                r.duration_ms.map(|d| d as i64),
                r.rows.map(|d| d as i64),
                r.error,
                r.failures.map(|d| d as i64),
                r.samples.map(|s| s.to_string()),
            ],
        )
        .map(|_| ())
    })
    .await
}

pub(crate) async fn finish_run(
    meta: &MetaDb,
    run: i64,
    status: &'static str,
    duration_ms: u64,
    error: Option<String>,
) -> Result<(), MetaError> {
    meta.write(move |tx| {
        tx.execute(
            "UPDATE model_runs SET status = ?2, finished_at = ?3, duration_ms = ?4, error = ?5 WHERE id = ?1",
            rusqlite::params![run, status, now(), duration_ms as i64, error],
        )
        .map(|_| ())
    })
    .await
}

/// Runs left `running` by a process that stopped: closed as interrupted at startup.
pub(crate) async fn close_interrupted_runs(meta: &MetaDb) -> Result<usize, MetaError> {
    meta.write(|tx| {
        tx.execute(
            "UPDATE model_run_nodes SET status = 'skipped', error = 'the server stopped during the run' \
             WHERE status IN ('pending', 'running') AND run_id IN (SELECT id FROM model_runs WHERE status = 'running')",
            [],
        )?;
        tx.execute(
            "UPDATE model_runs SET status = 'error', finished_at = ?1, error = 'the server stopped during the run' \
             WHERE status = 'running'",
            [now()],
        )
    })
    .await
}

/// A node's row in a run, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct NodeRow {
    pub(crate) unique_id: String,
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) status: String,
    pub(crate) started_at: Option<String>,
    pub(crate) duration_ms: Option<i64>,
    pub(crate) rows: Option<i64>,
    pub(crate) error: Option<String>,
    pub(crate) failures: Option<i64>,
    pub(crate) samples: Option<serde_json::Value>,
    pub(crate) run_id: i64,
}

fn node_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<NodeRow> {
    Ok(NodeRow {
        unique_id: r.get(0)?,
        name: r.get(1)?,
        kind: r.get(2)?,
        status: r.get(3)?,
        started_at: r.get(4)?,
        duration_ms: r.get(5)?,
        rows: r.get(6)?,
        error: r.get(7)?,
        failures: r.get(8)?,
        samples: r
            .get::<_, Option<String>>(9)?
            .and_then(|s| serde_json::from_str(&s).ok()),
        run_id: r.get(10)?,
    })
}

const NODE_COLUMNS: &str = "unique_id, name, kind, status, started_at, duration_ms, rows, error, failures, samples, run_id";

/// A run with its nodes.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Run {
    pub(crate) id: i64,
    pub(crate) run_id: i64,
    pub(crate) command: String,
    pub(crate) selector: String,
    pub(crate) trigger: String,
    pub(crate) full_refresh: bool,
    pub(crate) status: String,
    pub(crate) started_at: String,
    pub(crate) finished_at: Option<String>,
    pub(crate) duration_ms: Option<i64>,
    pub(crate) error: Option<String>,
    pub(crate) nodes: Vec<NodeRow>,
}

const RUN_COLUMNS: &str = "id, command, selector, trigger, full_refresh, status, started_at, \
                           finished_at, duration_ms, error";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Run> {
    Ok(Run {
        id: r.get(0)?,
        run_id: r.get(0)?,
        command: r.get(1)?,
        selector: r.get(2)?,
        trigger: r.get(3)?,
        full_refresh: r.get(4)?,
        status: r.get(5)?,
        started_at: r.get(6)?,
        finished_at: r.get(7)?,
        duration_ms: r.get(8)?,
        error: r.get(9)?,
        nodes: Vec::new(),
    })
}

/// The latest runs, newest first, without their nodes.
pub(crate) async fn recent_runs(meta: &MetaDb, limit: u32) -> Result<Vec<Run>, MetaError> {
    meta.read(move |c| {
        let mut stmt = c.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM model_runs ORDER BY id DESC LIMIT ?1"
        ))?;
        stmt.query_map([limit], run_row)?.collect()
    })
    .await
}

pub(crate) async fn run(meta: &MetaDb, id: i64) -> Result<Option<Run>, MetaError> {
    meta.read(move |c| {
        let run = c
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM model_runs WHERE id = ?1"),
                [id],
                run_row,
            )
            .optional()?;
        let Some(mut run) = run else { return Ok(None) };
        let mut stmt = c.prepare(&format!(
            "SELECT {NODE_COLUMNS} FROM model_run_nodes WHERE run_id = ?1 ORDER BY position"
        ))?;
        run.nodes = stmt
            .query_map([id], node_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Some(run))
    })
    .await
}

/// The latest finished result of every node and test, by unique id.
pub(crate) async fn last_results(
    meta: &MetaDb,
) -> Result<std::collections::HashMap<String, NodeRow>, MetaError> {
    meta.read(|c| {
        let mut stmt = c.prepare(&format!(
            "SELECT {NODE_COLUMNS} FROM model_run_nodes n WHERE status NOT IN ('pending', 'running') \
             AND run_id = (SELECT max(run_id) FROM model_run_nodes m WHERE m.unique_id = n.unique_id \
             AND m.status NOT IN ('pending', 'running'))"
        ))?;
        let rows = stmt.query_map([], node_row)?;
        let mut out = std::collections::HashMap::new();
        for row in rows {
            let row = row?;
            out.insert(row.unique_id.clone(), row);
        }
        Ok(out)
    })
    .await
}
