//! Models over HTTP: a dbt project from the wild built unmodified (its tables equal what
//! dbt-duckdb made of it), failures that keep the previous table and skip what is
//! downstream, broken edits that keep the last good project, cycles, the query gate on
//! model SQL, runs after loads, incremental models.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestApp, eventually};
use crate::ingest::{drop_file, uploads};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dbt/jaffle");

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn write(app: &TestApp, rel: &str, text: &str) {
    let path = app.dir.path().join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

async fn reload(app: &TestApp) -> Value {
    let (status, body) = app.post_json("/api/dbt/reload", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Starts a run and waits for it to end; returns the run. A run the watcher started on a
/// model file just written may hold the same models: wait for it (409) and ask again.
async fn run_models(app: &TestApp, body: Value) -> Value {
    let started = eventually(Duration::from_secs(60), || async {
        let (status, started) = app.post_json("/api/dbt/runs", body.clone()).await;
        match status {
            StatusCode::ACCEPTED => Some(started),
            StatusCode::CONFLICT if started["error"] == "run_in_progress" => None,
            other => panic!("{other}: {started}"),
        }
    })
    .await
    .expect("the run starts");
    wait_run(app, started["run_id"].as_i64().unwrap()).await
}

async fn wait_run(app: &TestApp, id: i64) -> Value {
    eventually(Duration::from_secs(60), || async {
        let (_, run) = app.get_json(&format!("/api/dbt/runs/{id}")).await;
        (run["status"] != "running").then_some(run)
    })
    .await
    .expect("the run ends")
}

fn statuses(run: &Value) -> Vec<(String, String)> {
    run["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_owned(),
                n["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn status_of(run: &Value, name: &str) -> String {
    statuses(run)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("{name} is not in the run: {run}"))
}

/// Numbers compared as numbers (DECIMAL 30.00 and 30 are one value).
fn normalise(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(a) => Value::Array(a.iter().map(normalise).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), normalise(v))).collect())
        }
        other => other.clone(),
    }
}

/// A server with the fixture project, compiled; and the reload's answer.
async fn jaffle() -> (TestApp, Value) {
    let app = TestApp::with_config(|c| c.models.project_dir = "jaffle".into()).await;
    copy_dir(Path::new(FIXTURE), &app.dir.path().join("jaffle"));
    let reloaded = reload(&app).await;
    assert_eq!(reloaded["ok"], true, "{reloaded}");
    (app, reloaded)
}

#[tokio::test]
async fn a_dbt_project_from_the_wild_runs_unmodified_and_its_tables_equal_dbt_duckdbs() {
    let (app, reloaded) = jaffle().await;
    assert_eq!(reloaded["models"], 5);
    assert_eq!(reloaded["tests"], 19);
    let run = run_models(&app, json!({"command": "build"})).await;
    assert_eq!(run["status"], "success", "{run}");
    let kinds = |k: &str| {
        run["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["kind"] == k)
            .count()
    };
    assert_eq!((kinds("seed"), kinds("model"), kinds("test")), (3, 5, 19));
    // DAG order: seeds before the staging views before the marts, each test after its model.
    let order: Vec<String> = statuses(&run).into_iter().map(|(n, _)| n).collect();
    let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
    assert!(pos("raw_orders") < pos("stg_orders") && pos("stg_orders") < pos("orders"));
    assert!(pos("stg_payments") < pos("customers"));
    assert!(pos("orders") < pos("unique_orders_order_id"));
    assert!(
        pos("customers") < pos("relationships_orders_customer_id__customer_id__ref_customers_")
    );

    for (table, key) in [
        ("customers", "customer_id"),
        ("orders", "order_id"),
        ("stg_payments", "payment_id"),
    ] {
        let expected =
            std::fs::read_to_string(format!("{FIXTURE}/expected/{table}.jsonl")).unwrap();
        let mut lines = expected.lines();
        let columns: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        let rows: Vec<Value> = lines
            .map(|l| normalise(&serde_json::from_str(l).unwrap()))
            .collect();
        let (status, body) = app
            .query(&format!(
                "SELECT to_json(t)::VARCHAR FROM main.{table} t ORDER BY {key}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let got: Vec<Value> = body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| normalise(&serde_json::from_str(r[0].as_str().unwrap()).unwrap()))
            .collect();
        assert_eq!(got.len(), rows.len(), "{table}");
        assert_eq!(got, rows, "{table} differs from dbt-duckdb's");
        let (_, described) = app
            .query(&format!("SELECT * FROM main.{table} LIMIT 0"))
            .await;
        assert_eq!(described["columns"], columns, "{table}");
    }

    // The reference's list, with Kura's keys beside.
    let (status, list) = app.get_json("/api/dbt/models").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let orders = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "orders")
        .unwrap()
        .clone();
    assert_eq!(orders["materialization"], "table");
    assert_eq!(orders["status"], "success");
    assert_eq!(orders["row_count"], 120);
    assert_eq!(
        orders["depends_on"],
        json!(["model.jaffle.stg_orders", "model.jaffle.stg_payments"])
    );
    assert_eq!(orders["tests"]["passed"], 8, "{orders}");
    let stg = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "stg_orders")
        .unwrap();
    assert_eq!(
        stg["materialization"], "view",
        "folder config of dbt_project.yml"
    );
    assert_eq!(stg["tags"], json!(["staging"]));
    // Doc blocks fill descriptions; columns carry DuckDB's types.
    let (_, detail) = app.get_json("/api/catalog/models/orders").await;
    let status_col = detail["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "status")
        .unwrap();
    assert!(
        status_col["description"]
            .as_str()
            .unwrap()
            .contains("return_pending"),
        "{status_col}"
    );
    assert_eq!(detail["columns"][0]["type"], "INTEGER", "{detail}");
    assert!(
        detail["compiled_sql"]
            .as_str()
            .unwrap()
            .contains("gift_card_amount")
    );
    assert!(
        detail["raw_sql"]
            .as_str()
            .unwrap()
            .contains("{% for payment_method")
    );
    assert_eq!(detail["depended_on_by"], json!([]));
    // Column lineage through `select *` import CTEs, a Jinja loop, a join and renames,
    // down to the seeds' columns; DuckDB's DESCRIBE agrees for every model.
    let upstream = |detail: &Value, column: &str| -> Vec<String> {
        let c = detail["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == column)
            .unwrap_or_else(|| panic!("no column {column}: {detail}"));
        c["upstream"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                format!(
                    "{}.{}",
                    u["node"].as_str().unwrap(),
                    u["column"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(detail["column_lineage"]["status"], "verified", "{detail}");
    assert_eq!(upstream(&detail, "customer_id"), ["stg_orders.customer_id"]);
    assert_eq!(
        upstream(&detail, "coupon_amount"),
        ["stg_payments.amount", "stg_payments.payment_method"]
    );
    assert_eq!(upstream(&detail, "amount"), ["stg_payments.amount"]);
    let (_, stg) = app.get_json("/api/catalog/models/stg_orders").await;
    assert_eq!(upstream(&stg, "customer_id"), ["raw_orders.user_id"]);
    for name in ["stg_customers", "stg_payments", "customers"] {
        let (_, d) = app.get_json(&format!("/api/catalog/models/{name}")).await;
        assert_eq!(d["column_lineage"]["status"], "verified", "{name}: {d}");
        assert!(
            d["columns"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| !c["upstream"].as_array().unwrap().is_empty()),
            "{name}: every column names where it comes from: {d}"
        );
    }
    // Lineage: sources (seeds here) and models; impact counts each node once.
    let (_, lineage) = app.get_json("/api/catalog/lineage").await;
    assert_eq!(lineage["nodes"].as_array().unwrap().len(), 8, "{lineage}");
    assert!(
        lineage["edges"].as_array().unwrap().contains(
            &json!({"source": "model.jaffle.stg_orders", "target": "model.jaffle.orders"})
        )
    );
    let (_, impact) = app.get_json("/api/catalog/impact/raw_orders").await;
    // raw_orders → stg_orders → {customers, orders}.
    assert_eq!(impact["total_downstream_count"], 3, "{impact}");
    assert_eq!(impact["direct_dependents"], json!(["stg_orders"]));
    let (_, impact) = app.get_json("/api/catalog/impact/raw_payments").await;
    assert_eq!(impact["total_downstream_count"], 3, "{impact}");
    // A second build of the same project changes nothing and passes again.
    let again = run_models(&app, json!({"command": "build", "select": ["+orders"]})).await;
    assert_eq!(again["status"], "success", "{again}");
    let built: Vec<String> = statuses(&again).into_iter().map(|(n, _)| n).collect();
    assert!(
        built.contains(&"stg_payments".to_owned()) && !built.contains(&"customers".to_owned()),
        "{again}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_failing_model_keeps_its_table_and_skips_downstream_and_a_broken_edit_keeps_the_project()
{
    let app = TestApp::new().await;
    write(
        &app,
        "models/marts/a.sql",
        "{{ config(materialized='table') }}\nselect 1 as id, 'first' as v",
    );
    write(
        &app,
        "models/marts/b.sql",
        "select id, v from {{ ref('a') }}",
    );
    write(
        &app,
        "models/marts/c.sql",
        "select count(*) as n from {{ ref('b') }}",
    );
    assert_eq!(reload(&app).await["ok"], true);
    let first = run_models(&app, json!({"select": ["a+"]})).await;
    assert_eq!(first["status"], "success", "{first}");
    assert_eq!(statuses(&first).len(), 3);
    // The edit compiles but fails in DuckDB: a keeps its rows; b and c are skipped.
    write(
        &app,
        "models/marts/a.sql",
        "{{ config(materialized='table') }}\nselect cast('x' as integer) as id, 'second' as v",
    );
    assert_eq!(reload(&app).await["ok"], true);
    let failed = run_models(&app, json!({"select": ["a+"]})).await;
    assert_eq!(failed["status"], "error", "{failed}");
    assert_eq!(status_of(&failed, "a"), "error");
    assert_eq!(status_of(&failed, "b"), "skipped");
    assert_eq!(status_of(&failed, "c"), "skipped");
    let (_, rows) = app.query("SELECT v FROM main.a").await;
    assert_eq!(rows["rows"], json!([["first"]]));
    let (_, health) = app.get_json("/api/health/platform").await;
    assert!(
        health["dbt_failures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "a"),
        "{health}"
    );
    // A broken edit (a Jinja error): the last good project stays, and the error names the
    // file and line.
    write(
        &app,
        "models/marts/b.sql",
        "select id,\n  v from {{ ref('a') }\n",
    );
    let broken = reload(&app).await;
    assert_eq!(broken["ok"], false, "{broken}");
    let error = &broken["errors"][0];
    assert_eq!(error["file"], "models/marts/b.sql", "{broken}");
    assert_eq!(error["line"], 2, "{broken}");
    let (_, list) = app.get_json("/api/dbt/models").await;
    assert!(
        list["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "b"),
        "{list}"
    );
    assert_eq!(list["errors"][0]["file"], "models/marts/b.sql");
    let (status, refused) = app.post_json("/api/dbt/runs", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"], "project_invalid");
    // A good edit, saved: the watcher recompiles and runs the changed model and below.
    write(
        &app,
        "models/marts/a.sql",
        "{{ config(materialized='table') }}\nselect 2 as id, 'third' as v",
    );
    write(
        &app,
        "models/marts/b.sql",
        "select id, v from {{ ref('a') }}",
    );
    crate::ingest::wait_for_value(&app, "SELECT v FROM main.a", json!("third")).await;
    crate::ingest::wait_for_value(&app, "SELECT n FROM main.c", json!(1)).await;
    let (_, runs) = app.get_json("/api/dbt/runs").await;
    assert_eq!(runs[0]["trigger"], "watch", "{runs}");
    app.stop().await;
}

#[tokio::test]
async fn a_cycle_is_named_and_models_that_read_files_or_write_are_refused() {
    let app = TestApp::new().await;
    write(&app, "models/x1.sql", "select * from {{ ref('x2') }}");
    write(&app, "models/x2.sql", "select * from {{ ref('x3') }}");
    write(&app, "models/x3.sql", "select * from {{ ref('x1') }}");
    let body = reload(&app).await;
    let text = body["errors"].to_string();
    assert!(
        // In the direction data flows: x2 feeds x1 (x1 refs x2), and so on.
        [
            "x1 → x3 → x2 → x1",
            "x2 → x1 → x3 → x2",
            "x3 → x2 → x1 → x3"
        ]
        .iter()
        .any(|c| text.contains(c)),
        "{body}"
    );
    for f in ["x1", "x2", "x3"] {
        std::fs::remove_file(app.dir.path().join(format!("models/{f}.sql"))).unwrap();
    }
    for (sql, what) in [
        ("select * from read_csv('/etc/passwd')", "read_csv"),
        ("select * from '/etc/passwd'", "looks like a file"),
        ("copy (select 1) to '/tmp/x.csv'", "read-only"),
        ("attach '/tmp/other.db' as other", "read-only"),
        ("select 1; drop table main.calendar_months", "read-only"),
        ("select getenv('HOME')", "getenv"),
    ] {
        write(&app, "models/evil.sql", sql);
        let body = reload(&app).await;
        assert_eq!(body["ok"], false, "{sql} compiled: {body}");
        let message = body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains("evil is refused"), "{sql}: {body}");
        assert!(message.contains(what), "{sql}: {message}");
    }
    std::fs::remove_file(app.dir.path().join("models/evil.sql")).unwrap();
    assert_eq!(reload(&app).await["ok"], true);
    // Hooks would run statements the gate never sees.
    write(
        &app,
        "models/hooked.sql",
        "{{ config(post_hook='drop table main.calendar_months') }}\nselect 1 as a",
    );
    let body = reload(&app).await;
    assert!(
        body["errors"]
            .to_string()
            .contains("hooks run arbitrary statements"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_burst_of_files_runs_the_models_downstream_once() {
    let app = TestApp::with_config(|c| c.models.coalesce_ms = 1500).await;
    write(
        &app,
        "models/marts/m_total.sql",
        "{{ config(materialized='table') }}\nselect count(*) as n, sum(qty) as qty from {{ source('m', 'm') }}",
    );
    write(
        &app,
        "models/marts/m_view.sql",
        "select * from {{ ref('stg_m__m') }}",
    );
    let dir = uploads(&app).join("m");
    for k in 0..3 {
        drop_file(
            &dir,
            &format!("{k}.csv"),
            format!("id,qty\n{k},{}\n", k + 1).as_bytes(),
        );
    }
    crate::ingest::wait_for_value(&app, "SELECT n FROM main.m_total", json!(3)).await;
    // Let any further run start, then count: one run after the loads, building both.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, runs) = app.get_json("/api/dbt/runs").await;
    let after_loads: Vec<&Value> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["trigger"] == "sync")
        .collect();
    assert_eq!(after_loads.len(), 1, "{runs}");
    let run = wait_run(&app, after_loads[0]["id"].as_i64().unwrap()).await;
    let mut built: Vec<String> = statuses(&run).into_iter().map(|(n, _)| n).collect();
    built.sort();
    assert_eq!(built, ["m_total", "m_view"], "{run}");
    let (_, view) = app.query("SELECT count(*) FROM main.m_view").await;
    assert_eq!(view["rows"], json!([[3]]));
    app.stop().await;
}

#[tokio::test]
async fn an_incremental_model_rerun_with_nothing_new_changes_nothing_and_equals_a_full_refresh() {
    let app = TestApp::new().await;
    app.exec_writer(
        "CREATE SCHEMA raw_events; CREATE TABLE raw_events.events (id INTEGER, v VARCHAR, seq INTEGER); \
         INSERT INTO raw_events.events VALUES (1, 'a', 1), (2, 'b', 2)",
    )
    .await;
    write(
        &app,
        "models/marts/events_inc.sql",
        "{{ config(materialized='incremental', unique_key='id') }}\n\
         select id, v, seq from raw_events.events\n\
         {% if is_incremental() %}where seq > (select coalesce(max(seq), 0) from {{ this }}){% endif %}",
    );
    assert_eq!(reload(&app).await["ok"], true);
    let first = run_models(&app, json!({"select": ["events_inc"]})).await;
    assert_eq!(first["nodes"][0]["rows"], 2, "{first}");
    let quiet = run_models(&app, json!({"select": ["events_inc"]})).await;
    assert_eq!(
        quiet["nodes"][0]["rows"], 0,
        "nothing new, nothing changed: {quiet}"
    );
    app.exec_writer("UPDATE raw_events.events SET v = 'B', seq = 3 WHERE id = 2; INSERT INTO raw_events.events VALUES (3, 'c', 4)")
        .await;
    let merged = run_models(&app, json!({"select": ["events_inc"]})).await;
    assert_eq!(merged["nodes"][0]["rows"], 2, "{merged}");
    let (_, incremental) = app.query("SELECT * FROM main.events_inc ORDER BY id").await;
    let refreshed = run_models(
        &app,
        json!({"select": ["events_inc"], "full_refresh": true}),
    )
    .await;
    assert_eq!(refreshed["status"], "success");
    let (_, full) = app.query("SELECT * FROM main.events_inc ORDER BY id").await;
    assert_eq!(incremental["rows"], full["rows"]);
    assert_eq!(full["rows"], json!([[1, "a", 1], [2, "B", 3], [3, "c", 4]]));
    // The plain-SQL model's dependency came from DuckDB's parser (no ref()).
    let (_, detail) = app.get_json("/api/catalog/models/events_inc").await;
    assert_eq!(
        detail["depends_on"],
        json!([]),
        "raw_events is not a Kura source: {detail}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_run_of_a_model_answers_202_and_a_second_one_409_while_it_runs() {
    let app = TestApp::new().await;
    assert_eq!(
        reload(&app).await["ok"],
        true,
        "the example models of kura init compile"
    );
    let (status, started) = app
        .post_json("/api/dbt/models/stg_calendar/run?cascade=true", json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["model_name"], "stg_calendar");
    let id = started["run_id"].as_i64().unwrap();
    let (second, body) = app
        .post_json("/api/dbt/models/calendar_months/run", json!({}))
        .await;
    // Either the first run is still going (409), or it already ended (202 again).
    assert!(
        second == StatusCode::CONFLICT && body["error"] == "run_in_progress"
            || second == StatusCode::ACCEPTED,
        "{second} {body}"
    );
    let run = wait_run(&app, id).await;
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(statuses(&run).len(), 2);
    let (status, _) = app.post_json("/api/dbt/models/nope/run", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, rows) = app
        .query("SELECT sum(days) FROM main.calendar_months")
        .await;
    assert_eq!(rows["rows"], json!([[365]]));
    let tests = run_tests(&app).await;
    assert_eq!(tests["status"], "success", "{tests}");
    app.stop().await;
}

async fn run_tests(app: &TestApp) -> Value {
    run_models(app, json!({"command": "test"})).await
}

#[tokio::test]
async fn the_catalog_search_finds_names_then_descriptions_then_columns_before_any_build() {
    let (app, _) = jaffle().await;
    let hits = |body: &Value| -> Vec<String> {
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let column = r["matched_column"].as_str().map(|c| format!(":{c}"));
                format!(
                    "{}/{}{}",
                    r["name"].as_str().unwrap(),
                    r["match_type"].as_str().unwrap(),
                    column.unwrap_or_default()
                )
            })
            .collect()
    };
    let (status, body) = app.get_json("/api/catalog/search?q=Payment").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["query"], "Payment");
    assert_eq!(
        hits(&body),
        [
            "raw_payments/name",
            "stg_payments/name",
            "orders/description"
        ]
    );
    // Columns come from the seeds' headers and from lineage: nothing is built yet.
    let (_, body) = app.get_json("/api/catalog/search?q=amount").await;
    assert_eq!(
        hits(&body),
        [
            "orders/column:credit_card_amount",
            "raw_payments/column:amount",
            "stg_payments/column:amount"
        ]
    );
    assert_eq!(body["results"][1]["type"], "seed");
    for q in ["x", " y ", &"z".repeat(101)] {
        let (status, body) = app
            .get_json(&format!("/api/catalog/search?q={}", q.replace(' ', "%20")))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {body}");
        assert_eq!(body["error"], "invalid_query");
    }
    app.stop().await;
}
