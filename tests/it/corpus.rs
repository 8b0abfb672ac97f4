//! The SQL corpora against each layer of DESIGN.md §3 on its own.
//!
//! - Layer 1 (the gate) must refuse every file in `tests/fixtures/sql/reject/` without
//!   running anything, and accept every file in `accept/`, which must then run.
//! - Layer 2 (the locked-down engine) is tested with the gate switched off: the hostile
//!   corpus runs straight on a query worker inside its read-only transaction, and nothing
//!   in the warehouse changes, no file is written (not even in `.kura/staging/` or the
//!   warehouse's own files, which DuckDB itself would allow), and no byte of any file is
//!   read: the engine guard (`crates/duckdb-guard`) gives query connections no file access.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kura::query::QueryError;
use kura::query::run::in_read_only_transaction;
use reqwest::StatusCode;

use crate::harness::TestApp;

const SENTINEL: &str = "KURA-SENTINEL-5e1f0c";

fn corpus(kind: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sql")
        .join(kind);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// Fills the corpus placeholders with real paths.
fn substitute(sql: &str, sentinel_dir: &Path, warehouse: &Path) -> String {
    sql.replace("__SENTINEL__", &sentinel_dir.display().to_string())
        .replace("__WAREHOUSE__", &warehouse.display().to_string())
}

/// A folder outside the project with files that hold the sentinel, in every format.
fn sentinel_files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("secret.csv"), format!("id,secret\n1,{SENTINEL}\n")).unwrap();
    std::fs::write(p.join("secret.txt"), SENTINEL).unwrap();
    std::fs::write(
        p.join("secret.json"),
        format!("[{{\"secret\": \"{SENTINEL}\"}}]"),
    )
    .unwrap();
    write_parquet(&p.join("secret.parquet"));
    dir
}

fn write_parquet(path: &Path) {
    use arrow::array::{ArrayRef, StringArray};
    use arrow::record_batch::RecordBatch;
    let column: ArrayRef = Arc::new(StringArray::from(vec![SENTINEL]));
    let batch = RecordBatch::try_from_iter([("secret", column)]).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn listing(dir: &Path) -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, out: &mut BTreeSet<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            out.insert(p.clone());
            if p.is_dir() {
                walk(&p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, &mut out);
    out
}

#[tokio::test]
async fn layer1_the_gate_alone_refuses_every_hostile_statement() {
    let app = TestApp::with_fixtures().await;
    let sentinel = sentinel_files();
    let reject = corpus("reject");
    assert!(
        reject.len() >= 40,
        "the hostile corpus has {} files",
        reject.len()
    );
    let mut accepted = Vec::new();
    for (name, sql) in &reject {
        let sql = substitute(sql, sentinel.path(), &app.warehouse_path());
        // The gate only: nothing is executed.
        match app.gate_verdict(&sql).await {
            Err(QueryError::NotReadOnly { .. }) => {}
            other => accepted.push(format!("{name}: {other:?}")),
        }
    }
    assert!(
        accepted.is_empty(),
        "the gate let these through:\n{}",
        accepted.join("\n")
    );
    app.stop().await;
}

#[tokio::test]
async fn layer1_hostile_statements_get_400_not_read_only_over_http() {
    let app = TestApp::with_fixtures().await;
    let sentinel = sentinel_files();
    for (name, sql) in corpus("reject") {
        let sql = substitute(&sql, sentinel.path(), &app.warehouse_path());
        let (status, body) = app.query(&sql).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_eq!(body["error"], "not_read_only", "{name}: {body}");
        assert!(body["rule"].is_string(), "{name}: {body}");
        assert!(
            !body.to_string().contains(SENTINEL),
            "{name} leaked the sentinel"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn every_analyst_query_in_the_accept_corpus_runs() {
    let app = TestApp::with_fixtures().await;
    let accept = corpus("accept");
    assert!(
        accept.len() >= 30,
        "the accept corpus has {} files",
        accept.len()
    );
    let mut failed = Vec::new();
    for (name, sql) in &accept {
        let (status, body) = app.query(sql).await;
        if status != StatusCode::OK {
            failed.push(format!("{name}: {status} {body}"));
        }
    }
    assert!(
        failed.is_empty(),
        "these analyst queries failed:\n{}",
        failed.join("\n")
    );
    app.stop().await;
}

/// A fingerprint of everything a statement could have changed in the warehouse.
const FINGERPRINT_SQL: &str = "
SELECT
  (SELECT string_agg(x, ',') FROM (SELECT schema_name || '.' || table_name AS x FROM duckdb_tables() ORDER BY x)),
  (SELECT string_agg(x, ',') FROM (SELECT view_name AS x FROM duckdb_views() WHERE NOT internal ORDER BY x)),
  (SELECT string_agg(x, ',') FROM (SELECT function_name AS x FROM duckdb_functions() WHERE NOT internal ORDER BY x)),
  (SELECT string_agg(x, ',') FROM (SELECT type_name AS x FROM duckdb_types() WHERE NOT internal ORDER BY x)),
  (SELECT string_agg(x, ',') FROM (SELECT database_name AS x FROM duckdb_databases() ORDER BY x)),
  (SELECT sum(hash(o)) FROM orders o)::VARCHAR,
  (SELECT count(*) FROM orders)::VARCHAR,
  (SELECT sum(hash(c)) FROM customers c)::VARCHAR,
  current_setting('enable_external_access')::VARCHAR,
  current_setting('lock_configuration')::VARCHAR,
  current_setting('memory_limit')::VARCHAR,
  current_setting('allowed_directories')::VARCHAR
";

async fn fingerprint(app: &TestApp) -> Vec<Option<String>> {
    app.state
        .warehouse
        .internal(|conn| {
            conn.query_row(FINGERPRINT_SQL, [], |r| {
                (0..12)
                    .map(|i| r.get::<_, Option<String>>(i))
                    .collect::<Result<Vec<_>, _>>()
            })
        })
        .await
        .unwrap()
        .unwrap()
}

/// Runs `sql` on a query worker inside its read-only transaction with no gate at all. A
/// job the memory watchdog stopped counts as refused.
pub(crate) async fn ungated(app: &TestApp, sql: &str) -> Result<String, QueryError> {
    let sql = sql.to_owned();
    app.state
        .warehouse
        .interactive(Duration::from_secs(20), move |qc, control| {
            in_read_only_transaction(qc, control, |conn| run_ungated(conn, &sql))
        })
        .await
        .unwrap_or_else(|e| match e {
            kura::db::warehouse::WarehouseError::MemoryCeiling { .. } => {
                Err(QueryError::Failed(e.to_string()))
            }
            other => panic!("the query worker failed: {other}"),
        })
}

/// Runs `sql` with no gate at all: prepared and fetched as text, or, for several
/// statements, executed as a batch.
fn run_ungated(conn: &duckdb::Connection, sql: &str) -> Result<String, QueryError> {
    let fail = |e: duckdb::Error| QueryError::Failed(e.to_string());
    match conn.prepare(sql) {
        Ok(mut stmt) => {
            let mut out = Vec::new();
            for batch in stmt.stream_arrow([]).map_err(fail)? {
                let batch = batch.map_err(fail)?;
                for row in 0..batch.num_rows() {
                    for col in batch.columns() {
                        kura::query::values::write_json(&mut out, col.as_ref(), row);
                        out.push(b' ');
                    }
                }
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        }
        Err(e) if e.to_string().contains("multiple statements") => conn
            .execute_batch(sql)
            .map_err(fail)
            .map(|()| String::new()),
        Err(e) => Err(fail(e)),
    }
}

/// Reject-corpus statements that only allocate (layer 1 and the watchdog stop them).
const MEMORY_BUILDERS: &[&str] = &[
    "range_list_huge",
    "range_list_float",
    "generate_series_list_column",
    "repeat_huge",
    "repeat_list_huge",
    "list_resize_huge",
    "lpad_huge",
];

#[tokio::test]
async fn layer2_the_locked_engine_holds_with_the_gate_switched_off() {
    let app = TestApp::with_fixtures().await;
    let sentinel = sentinel_files();
    let project_before = listing(app.dir.path());
    let sentinel_before = listing(sentinel.path());
    let before = fingerprint(&app).await;
    let mut report = Vec::new();
    for (name, sql) in corpus("reject") {
        // Lists and strings built outside DuckDB's memory limit: the engine does not refuse
        // them, the gate and the memory watchdog do (tested in a process of its own in
        // tests/it/cli.rs, since here they would take this whole test process's memory).
        if MEMORY_BUILDERS.contains(&name.as_str()) {
            continue;
        }
        let sql = substitute(&sql, sentinel.path(), &app.warehouse_path());
        let outcome = ungated(&app, &sql).await;
        match &outcome {
            Ok(text) => {
                assert!(
                    !text.contains(SENTINEL),
                    "{name}: layer 2 let a file outside staging be read"
                );
                report.push(format!("{name}: ran (harmless)"));
            }
            Err(e) => report.push(format!("{name}: refused by the engine: {e}")),
        }
    }
    println!("layer 2 outcomes:\n{}", report.join("\n"));
    assert_eq!(fingerprint(&app).await, before, "the warehouse changed");
    assert_eq!(
        listing(sentinel.path()),
        sentinel_before,
        "a file was written outside staging"
    );
    let project_after: BTreeSet<PathBuf> = listing(app.dir.path())
        .into_iter()
        // DuckDB's own WAL and temp files may come and go.
        .filter(|p| !p.to_string_lossy().contains("warehouse.duckdb"))
        .collect();
    let project_before: BTreeSet<PathBuf> = project_before
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("warehouse.duckdb"))
        .collect();
    assert_eq!(
        project_after, project_before,
        "a file appeared in the project"
    );
    // The worker connections are still usable and hold no leftovers.
    let (status, body) = app.query("SELECT count(*) FROM orders").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"][0][0], 5);
    app.stop().await;
}

#[tokio::test]
async fn layer2_alone_refuses_to_read_or_write_the_own_warehouse_file() {
    let app = TestApp::with_fixtures().await;
    let path = app.warehouse_path().display().to_string();
    for sql in [
        format!("SELECT size FROM read_blob('{path}')"),
        format!("COPY (SELECT 'garbage') TO '{path}' (FORMAT csv, USE_TMP_FILE false)"),
    ] {
        let outcome = ungated(&app, &sql).await;
        assert!(outcome.is_err(), "the engine ran {sql}: {outcome:?}");
        let (status, body) = app.query(&sql).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "not_read_only");
    }
    let (status, body) = app.query("SELECT count(*) FROM orders").await;
    assert_eq!(
        (status, body["rows"][0][0].clone()),
        (StatusCode::OK, serde_json::json!(5))
    );
    app.stop().await;
}
