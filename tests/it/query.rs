//! `POST /api/query` and `POST /api/query/export` over real HTTP.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{TestApp, eventually};

#[tokio::test]
async fn query_returns_columns_types_and_typed_values() {
    let app = TestApp::with_fixtures().await;
    let sql = "SELECT 42::INTEGER AS i, 2.5::DOUBLE AS d, 'x' AS s, true AS b, NULL AS n, \
               DATE '2024-01-02' AS day, TIMESTAMP '2024-01-02 03:04:05.5' AS ts, \
               [1, 2] AS l, {'a': 1, 'b': 'two'} AS st, 9007199254740993::BIGINT AS big";
    let (status, body) = app.query(sql).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["columns"],
        json!(["i", "d", "s", "b", "n", "day", "ts", "l", "st", "big"])
    );
    assert_eq!(body["column_types"][0], "INTEGER");
    assert_eq!(body["column_types"][1], "DOUBLE");
    assert_eq!(body["column_types"][2], "VARCHAR");
    assert_eq!(body["column_types"][5], "DATE");
    assert_eq!(body["column_types"][7], "INTEGER[]");
    let row = &body["rows"][0];
    assert_eq!(row[0], 42);
    assert_eq!(row[1], 2.5);
    assert_eq!(row[2], "x");
    assert_eq!(row[3], true);
    assert!(row[4].is_null());
    assert_eq!(row[5], "2024-01-02");
    assert_eq!(row[6], "2024-01-02T03:04:05.500");
    assert_eq!(row[7], json!([1, 2]));
    assert_eq!(row[8], json!({"a": 1, "b": "two"}));
    // 2^53 + 1 is not a double: it must arrive as the exact integer.
    assert_eq!(row[9].as_u64(), Some(9_007_199_254_740_993));
    assert_eq!(body["row_count"], 1);
    assert_eq!(body["truncated"], false);
    assert!(body["warning"].is_null());
    assert!(body["elapsed_ms"].as_f64().is_some());
    app.stop().await;
}

#[tokio::test]
async fn decimals_and_hugeints_keep_every_digit() {
    let app = TestApp::new().await;
    let sql = "SELECT 12345678901234567890.123::DECIMAL(38,3) AS dec, \
               -0.05::DECIMAL(4,2) AS small, \
               170141183460469231731687303715884105727::HUGEINT AS huge";
    let r = app
        .client
        .post(app.url("/api/query"))
        .json(&json!({"sql": sql}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(text.contains("12345678901234567890.123"), "{text}");
    assert!(text.contains("-0.05"), "{text}");
    assert!(
        text.contains("170141183460469231731687303715884105727"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn large_results_are_truncated_with_a_warning() {
    let app = TestApp::new().await;
    let (status, body) = app.query("SELECT * FROM range(25000)").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["row_count"], 10_000);
    assert_eq!(body["rows"].as_array().unwrap().len(), 10_000);
    assert_eq!(body["truncated"], true);
    assert!(body["warning"].as_str().unwrap().contains("10000"));
    // Exactly the limit is not truncated. Several times, so that both workers answer
    // after a truncated (not fully read) result: it must not block their next query.
    for _ in 0..6 {
        let (status, body) = app.query("SELECT * FROM range(10000)").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["truncated"], false, "{body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn syntax_errors_are_invalid_sql_with_a_position() {
    let app = TestApp::new().await;
    let (status, body) = app.query("SELECT * FROMM orders").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_sql");
    assert!(
        body["message"].as_str().unwrap().contains("syntax error"),
        "{body}"
    );
    assert!(body["position"].as_u64().is_some(), "{body}");
    let (status, body) = app.query("SELECT * FROM no_such_table").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_sql");
    assert!(
        body["message"].as_str().unwrap().contains("no_such_table"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn runtime_failures_are_query_failed() {
    let app = TestApp::new().await;
    let (status, body) = app.query("SELECT 'abc'::INTEGER").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "query_failed", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn writes_are_refused_and_change_nothing() {
    let app = TestApp::with_fixtures().await;
    for sql in [
        "DROP TABLE orders",
        "DELETE FROM orders",
        "SELECT 1; DROP TABLE orders",
    ] {
        let (status, body) = app.query(sql).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sql}");
        assert_eq!(body["error"], "not_read_only", "{sql}: {body}");
        assert!(body["rule"].is_string(), "{body}");
    }
    let (_, body) = app.query("SELECT count(*) AS n FROM orders").await;
    assert_eq!(body["rows"][0][0], 5);
    app.stop().await;
}

#[tokio::test]
async fn oversized_sql_is_413() {
    let app = TestApp::new().await;
    let sql = format!("SELECT 1 -- {}", "x".repeat(110 * 1024));
    let (status, body) = app.query(&sql).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "sql_too_large");
    assert_eq!(body["limit"], 100 * 1024);
    app.stop().await;
}

#[tokio::test]
async fn bad_request_bodies_get_the_json_error_shape() {
    let app = TestApp::new().await;
    let (status, body) = app
        .post_json("/api/query", json!({"query": "SELECT 1"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["detail"][0]["msg"].as_str().unwrap().contains("sql"),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains("sql"), "{body}");
    let r = app
        .client
        .post(app.url("/api/query"))
        .body("SELECT 1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_media_type");
    app.stop().await;
}

#[tokio::test]
async fn a_runaway_query_is_interrupted_and_the_server_keeps_answering() {
    let app = TestApp::with_config(|c| c.api.query_timeout_seconds = 1).await;
    let runaway = {
        let client = app.client.clone();
        let url = app.url("/api/query");
        tokio::spawn(async move {
            let started = Instant::now();
            let r = client
                .post(url)
                .json(&json!({"sql": "SELECT count(*) FROM range(10000000000000)"}))
                .send()
                .await
                .unwrap();
            (
                r.status(),
                r.json::<serde_json::Value>().await.unwrap(),
                started.elapsed(),
            )
        })
    };
    // Meanwhile (once the runaway statement runs) the other worker answers.
    let wh = app.state.warehouse.clone();
    eventually(Duration::from_secs(5), || {
        let wh = wh.clone();
        async move { (wh.statements_running() == 1).then_some(()) }
    })
    .await
    .expect("the runaway query runs");
    let (status, _) = app.query("SELECT 1").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, elapsed) = runaway.await.unwrap();
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(body["error"], "query_timeout");
    assert_eq!(body["timeout_seconds"], 1);
    assert!(elapsed >= Duration::from_secs(1));
    // Both workers are free again: two queries in parallel succeed.
    let (a, b) = tokio::join!(app.query("SELECT 1"), app.query("SELECT 2"));
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK));
    app.stop().await;
}

#[tokio::test]
async fn a_full_queue_answers_503_busy_with_retry_after() {
    let app = TestApp::with_config(|c| {
        c.api.query_workers = 1;
        c.api.query_queue = 1;
        c.api.query_timeout_seconds = 2;
    })
    .await;
    let slow = "SELECT count(*) FROM range(10000000000000)";
    let send_slow = || {
        let client = app.client.clone();
        let url = app.url("/api/query");
        tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"sql": slow}))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let first = send_slow();
    let wh = app.state.warehouse.clone();
    eventually(Duration::from_secs(5), || {
        let wh = wh.clone();
        async move { (wh.statements_running() == 1).then_some(()) }
    })
    .await
    .expect("the first query runs on the only worker");
    let second = send_slow();
    eventually(Duration::from_secs(5), || {
        let wh = wh.clone();
        async move { (wh.interactive_load().1 == 1).then_some(()) }
    })
    .await
    .expect("the second query waits in the queue");
    let r = app
        .client
        .post(app.url("/api/query"))
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "busy");
    assert_eq!(first.await.unwrap(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(second.await.unwrap(), StatusCode::REQUEST_TIMEOUT);
    app.stop().await;
}

#[tokio::test]
async fn csv_export_streams_every_row_with_a_file_name() {
    let app = TestApp::new().await;
    let r = app
        .client
        .post(app.url("/api/query/export"))
        .json(&json!({"sql": "SELECT i, i * 2 AS twice, 'row, ' || i AS label FROM range(50000) t(i)", "format": "csv"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename=\"kura-export-"),
        "{disposition}"
    );
    assert!(disposition.ends_with(".csv\""), "{disposition}");
    let text = r.text().await.unwrap();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines.len(),
        50_001,
        "header plus every row, beyond the 10,000-row cap"
    );
    assert_eq!(lines[0], "i,twice,label");
    assert_eq!(lines[1], "0,0,\"row, 0\"");
    assert_eq!(lines[50_000], "49999,99998,\"row, 49999\"");
    app.stop().await;
}

#[tokio::test]
async fn ndjson_and_parquet_exports_are_well_formed() {
    let app = TestApp::with_fixtures().await;
    let r = app
        .client
        .post(app.url("/api/query/export"))
        .json(
            &json!({"sql": "SELECT id, amount, tags FROM orders ORDER BY id", "format": "ndjson"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 5);
    assert_eq!(
        rows[0],
        json!({"id": 1, "amount": 120.50, "tags": ["promo", "web"]})
    );
    let r = app
        .client
        .post(app.url("/api/query/export"))
        .json(&json!({"sql": "SELECT * FROM orders", "format": "parquet"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let bytes = r.bytes().await.unwrap();
    assert_eq!(&bytes[..4], b"PAR1");
    assert_eq!(&bytes[bytes.len() - 4..], b"PAR1");
    app.stop().await;
}

#[tokio::test]
async fn export_refusals_are_json_errors_before_any_byte_is_sent() {
    let app = TestApp::new().await;
    let (status, body) = app
        .post_json(
            "/api/query/export",
            json!({"sql": "COPY (SELECT 1) TO 'x.csv'"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "not_read_only");
    let (status, body) = app
        .post_json(
            "/api/query/export",
            json!({"sql": "SELECT 1", "format": "xlsx"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_format");
    app.stop().await;
}

#[tokio::test]
async fn an_export_that_fails_mid_stream_aborts_the_response() {
    let app = TestApp::new().await;
    // The error comes after millions of rows, long after the response started.
    let sql = "SELECT i, CASE WHEN i = 4999999 THEN error('boom at the end') ELSE i END AS v \
               FROM range(5000000) t(i)";
    let r = app
        .client
        .post(app.url("/api/query/export"))
        .json(&json!({"sql": sql, "format": "csv"}))
        .send()
        .await
        .unwrap();
    if r.status() == StatusCode::OK {
        // The body must end in an error, not look like a complete file.
        assert!(
            r.bytes().await.is_err(),
            "a failed export must not end like a complete one"
        );
    } else {
        // DuckDB may hit the error before the first row; then it is a normal JSON error.
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    // The worker is fine afterwards.
    let (status, _) = app.query("SELECT 1").await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

/// DuckDB SQL as analysts write it: dates and time zones (DuckDB's ICU extension is compiled
/// in) and the arrow lambda, through `/api/query`, on a table Kura loaded itself.
#[tokio::test]
async fn dates_time_zones_and_arrow_lambdas_work_as_analysts_write_them() {
    let app = TestApp::with_config(|c| c.project.timezone = "Europe/Berlin".into()).await;
    crate::ingest::drop_file(
        &crate::ingest::uploads(&app),
        "visits.csv",
        b"id,day\n1,2024-01-01\n",
    );
    crate::ingest::wait_for_value(&app, "SELECT count(*) FROM raw_uploads.visits", json!(1)).await;
    let today = |sql: &str| format!("SELECT ({sql})::VARCHAR AS v");
    for sql in [
        "SELECT current_date",
        "SELECT today()",
        "SELECT now() - INTERVAL 1 DAY",
        "SELECT date_trunc('day', now())",
        "SELECT _kura_loaded_at::DATE FROM raw_uploads.visits",
        "SELECT extract(year FROM _kura_loaded_at) FROM raw_uploads.visits",
        "SELECT count(*) FROM raw_uploads.visits WHERE _kura_loaded_at::DATE = current_date",
        "SELECT list_transform([1, 2, 3], x -> x * 2)",
        "SELECT list_transform([1, 2, 3], lambda x: x * 2)",
    ] {
        let (status, body) = app.query(&today(sql)).await;
        assert_eq!(status, StatusCode::OK, "{sql}: {body}");
        assert!(!body["rows"][0][0].is_null(), "{sql}: {body}");
    }
    // The project's zone is the session's: midnight UTC is 01:00 in Berlin in winter.
    let (status, body) = app
        .query(
            "SELECT (TIMESTAMPTZ '2024-01-15 00:00:00+00')::VARCHAR AS local, \
             (TIMESTAMPTZ '2024-07-01 12:00:00+00' AT TIME ZONE 'America/New_York')::VARCHAR AS ny, \
             date_trunc('day', TIMESTAMPTZ '2024-01-15 23:30:00+00')::VARCHAR AS trunc",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"][0][0], "2024-01-15 01:00:00+01");
    assert_eq!(body["rows"][0][1], "2024-07-01 08:00:00");
    assert_eq!(body["rows"][0][2], "2024-01-16 00:00:00+01");
    let (status, config) = app.get_json("/api/config").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(config["timezone"], "Europe/Berlin");
    app.stop().await;
}

/// A zone name DuckDB does not know stops the start with the setting named.
#[tokio::test]
async fn an_unknown_time_zone_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    kura::project::init(dir.path(), false).unwrap();
    let mut config = kura::Config::load_with_env(dir.path(), Vec::new()).unwrap();
    config.project.timezone = "Mars/Olympus_Mons".into();
    let error = kura::AppState::new(config).await.err().expect("refused");
    let text = format!("{error:#}");
    assert!(
        text.contains("project.timezone") && text.contains("Mars/Olympus_Mons"),
        "{text}"
    );
}

/// A repeated deterministic query is answered from the result cache, and never with rows
/// from before a commit: a load commits, the next identical query sees the new rows.
#[tokio::test]
async fn repeated_queries_come_from_the_cache_and_a_commit_ends_it() {
    let app = TestApp::new().await;
    let dir = crate::ingest::uploads(&app);
    crate::ingest::drop_file(&dir, "cached.csv", b"id\n1\n2\n");
    let sql = "SELECT count(*) FROM raw_uploads.cached";
    crate::ingest::wait_for_value(&app, sql, json!(2)).await;
    // The writer may still be finishing the load's bookkeeping: wait until two identical
    // queries in a row are answered alike, the second from the cache.
    let hit = crate::harness::eventually(Duration::from_secs(10), || async {
        let (_, first) = app.query(sql).await;
        let (_, second) = app.query(sql).await;
        (second["cached"] == true).then_some((first, second))
    })
    .await
    .expect("a repeated query is answered from the cache");
    assert_eq!(hit.1["rows"], json!([[2]]));
    assert_eq!(hit.1["columns"], hit.0["columns"]);
    assert!(hit.1["elapsed_ms"].as_f64().is_some());

    // A commit: the very next identical query runs again and sees it.
    crate::ingest::drop_file(&dir, "cached.csv", b"id\n1\n2\n3\n");
    let fresh = crate::harness::eventually(Duration::from_secs(20), || async {
        let (_, body) = app.query(sql).await;
        // Until the load commits the old answer may be served; once it has, never again.
        (body["rows"][0][0] == 3).then_some(body)
    })
    .await
    .expect("the new rows are seen");
    assert_eq!(fresh["cached"], false, "{fresh}");
    for _ in 0..20 {
        let (_, body) = app.query(sql).await;
        assert_eq!(
            body["rows"][0][0], 3,
            "a stale answer after the commit: {body}"
        );
    }
    app.stop().await;
}

/// Statements whose answer is not set by the data alone are never cached.
#[tokio::test]
async fn volatile_statements_are_never_cached() {
    let app = TestApp::with_fixtures().await;
    for sql in [
        "SELECT now()",
        "SELECT current_date",
        "SELECT today()",
        "SELECT CURRENT_TIMESTAMP",
        "SELECT random()",
        "SELECT uuid()",
        "SELECT gen_random_uuid()",
        "SELECT * FROM orders USING SAMPLE 2 ROWS",
        "SELECT * FROM orders TABLESAMPLE 50%",
        "SELECT id FROM orders ORDER BY random()",
        "SELECT count(*) FROM orders WHERE sold_at < now() - INTERVAL 1 DAY",
    ] {
        for _ in 0..3 {
            let (status, body) = app.query(sql).await;
            assert_eq!(status, StatusCode::OK, "{sql}: {body}");
            assert_eq!(body["cached"], false, "{sql} was answered from the cache");
        }
    }
    // A deterministic neighbour is cached.
    let sql = "SELECT count(*) FROM orders WHERE sold_at < TIMESTAMP '2024-04-01'";
    let _ = app.query(sql).await;
    let (_, body) = app.query(sql).await;
    assert_eq!(body["cached"], true, "{body}");
    app.stop().await;
}

/// `api.result_cache_mb: 0` turns the cache off.
#[tokio::test]
async fn a_zero_sized_result_cache_caches_nothing() {
    let app = TestApp::with_config(|c| c.api.result_cache_mb = 0).await;
    for _ in 0..3 {
        let (_, body) = app.query("SELECT 1").await;
        assert_eq!(body["cached"], false);
    }
    app.stop().await;
}

/// The gate's list of volatile built-in macros is the engine's: every macro whose body
/// calls a volatile or clock function (to a fixed point) is on it.
#[tokio::test]
async fn the_volatile_macro_list_matches_the_engine() {
    let app = TestApp::new().await;
    let (macros, volatile): (Vec<(String, String)>, Vec<String>) = app
        .state
        .warehouse
        .internal(|c| {
            let mut m = c.prepare(
                "SELECT DISTINCT lower(function_name), lower(macro_definition) \
                 FROM duckdb_functions() WHERE function_type = 'macro'",
            )?;
            let macros = m
                .query_map([], |r| Ok((r.get(0)?, r.get::<_, Option<String>>(1)?.unwrap_or_default())))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut v = c.prepare(
                "SELECT DISTINCT lower(function_name) FROM duckdb_functions() \
                 WHERE stability IN ('VOLATILE', 'CONSISTENT_WITHIN_QUERY') AND function_name <> 'error'",
            )?;
            let volatile = v
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, duckdb::Error>((macros, volatile))
        })
        .await
        .unwrap()
        .unwrap();
    let calls = |body: &str, name: &str| {
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        body.match_indices(name).any(|(i, _)| {
            let before = i.checked_sub(1).map(|j| body.as_bytes()[j]);
            let after = body.as_bytes().get(i + name.len()).copied();
            !before.is_some_and(word) && !after.is_some_and(word)
        })
    };
    let mut known: std::collections::HashSet<String> = volatile.into_iter().collect();
    known.extend(
        [
            "current_timestamp",
            "current_time",
            "current_date",
            "localtimestamp",
            "localtime",
        ]
        .map(String::from),
    );
    let mut found = std::collections::BTreeSet::new();
    loop {
        let more: Vec<String> = macros
            .iter()
            .filter(|(name, body)| !known.contains(name) && known.iter().any(|v| calls(body, v)))
            .map(|(name, _)| name.clone())
            .collect();
        if more.is_empty() {
            break;
        }
        found.extend(more.iter().cloned());
        known.extend(more);
    }
    for name in &found {
        assert!(
            kura::query::gate::VOLATILE_MACROS.contains(&name.as_str()),
            "the built-in macro {name} calls a volatile function but is not in VOLATILE_MACROS"
        );
    }
    app.stop().await;
}
