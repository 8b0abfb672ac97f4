//! Watched-folder ingestion, the sync API and the files API, over a real server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestApp, eventually};

pub(crate) fn uploads(app: &TestApp) -> PathBuf {
    app.dir.path().join("data/uploads")
}

/// Writes a file atomically (temp name, then rename), as a careful user or tool would.
pub(crate) fn drop_file(dir: &Path, name: &str, content: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    let temp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temp, content).unwrap();
    std::fs::rename(&temp, dir.join(name)).unwrap();
}

/// Waits until `sql`'s first value equals `expected`.
pub(crate) async fn wait_for_value(app: &TestApp, sql: &str, expected: Value) -> Value {
    let got = eventually(Duration::from_secs(20), || async {
        let (status, body) = app.query(sql).await;
        (status == StatusCode::OK && body["rows"][0][0] == expected).then_some(body)
    })
    .await;
    match got {
        Some(body) => body,
        None => {
            let (_, body) = app.query(sql).await;
            let (_, logs) = app.get_json("/api/logs?limit=20").await;
            panic!("{sql} never gave {expected}; last answer {body}; logs {logs}")
        }
    }
}

/// Waits until no sync runs and returns the source's file listing.
pub(crate) async fn settled_files(app: &TestApp, source: &str) -> Vec<Value> {
    eventually(Duration::from_secs(20), || async {
        let (_, w) = app.get_json("/api/watcher/status").await;
        let idle = w["syncing"].as_array().is_some_and(Vec::is_empty)
            && w["pending_files"].as_array().is_some_and(Vec::is_empty);
        idle.then_some(())
    })
    .await
    .expect("syncs settle");
    let (_, body) = app
        .get_json(&format!("/api/sources/{source}/csv-files"))
        .await;
    body["files"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_dropped_csv_becomes_a_table_with_kura_columns() {
    let app = TestApp::new().await;
    drop_file(
        &uploads(&app),
        "Orders 2024.csv",
        b"id,amount\n1,10.5\n2,20\n",
    );
    let body = wait_for_value(
        &app,
        "SELECT count(*) FROM raw_uploads.orders_2024",
        json!(2),
    )
    .await;
    assert_eq!(body["rows"][0][0], 2);
    let (_, body) = app
        .query(
            "SELECT DISTINCT _kura_file, _kura_loaded_at IS NOT NULL FROM raw_uploads.orders_2024",
        )
        .await;
    assert_eq!(body["rows"][0][0], "data/uploads/Orders 2024.csv");
    assert_eq!(body["rows"][0][1], true);
    // The rows are visible at the file's commit; the sync records its end just after.
    let uploads = eventually(Duration::from_secs(10), || async {
        let (_, sources) = app.get_json("/api/sources").await;
        let uploads = sources
            .as_array()?
            .iter()
            .find(|s| s["name"] == "uploads")?
            .clone();
        (uploads["status"] != "syncing").then_some(uploads)
    })
    .await
    .expect("the sync never ended");
    assert_eq!(uploads["status"], "synced");
    assert_eq!(uploads["row_count"], 2);
    assert_eq!(uploads["tables"][0]["name"], "orders_2024");
    assert_eq!(uploads["tables"][0]["schema"], "raw_uploads");
    assert!(uploads["freshness"]["last_update"].is_string());
    app.stop().await;
}

#[tokio::test]
async fn a_sub_folder_is_a_source_whose_files_are_unioned() {
    let app = TestApp::new().await;
    let sales = uploads(&app).join("sales");
    drop_file(
        &sales,
        "2024-01.csv",
        b"day,revenue\n2024-01-01,10\n2024-01-02,11\n",
    );
    drop_file(&sales, "2024-02.csv", b"day,revenue\n2024-02-01,12\n");
    wait_for_value(&app, "SELECT count(*) FROM raw_sales.sales", json!(3)).await;
    let (_, body) = app
        .query("SELECT count(DISTINCT _kura_file) FROM raw_sales.sales")
        .await;
    assert_eq!(body["rows"][0][0], 2);
    app.stop().await;
}

#[tokio::test]
async fn touching_a_file_changes_nothing_and_replacing_it_replaces_exactly_its_rows() {
    let app = TestApp::new().await;
    let dir = uploads(&app).join("sales");
    drop_file(&dir, "a.csv", b"k,v\na,1\nb,2\n");
    drop_file(&dir, "b.csv", b"k,v\nc,3\n");
    wait_for_value(&app, "SELECT count(*) FROM raw_sales.sales", json!(3)).await;
    let (_, before) = app
        .query("SELECT max(_kura_loaded_at)::VARCHAR FROM raw_sales.sales")
        .await;

    // Touch: same content, new mtime.
    let f = std::fs::File::options()
        .append(true)
        .open(dir.join("a.csv"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(f);
    // The watcher's sync of the two drops may still be finishing (or run once more, as
    // b.csv arrived during a.csv's): ask until the source is free.
    let started = eventually(Duration::from_secs(10), || async {
        let (status, started) = app.post_json("/api/sources/sales/sync", json!({})).await;
        (status == StatusCode::OK).then_some(started)
    })
    .await
    .expect("the source never became free to sync");
    let run = wait_run(&app, &started["record_id"]).await;
    assert_eq!(
        run["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"] == "data/uploads/sales/a.csv")
            .unwrap()["outcome"],
        "touched"
    );
    let (_, after) = app
        .query("SELECT max(_kura_loaded_at)::VARCHAR FROM raw_sales.sales")
        .await;
    assert_eq!(
        before["rows"], after["rows"],
        "a touched file is not reloaded"
    );

    // Replace a.csv's content: exactly its rows change, b.csv's stay.
    drop_file(&dir, "a.csv", b"k,v\nx,9\n");
    wait_for_value(
        &app,
        "SELECT string_agg(k, ',' ORDER BY k) FROM raw_sales.sales",
        json!("c,x"),
    )
    .await;

    // Delete b.csv: exactly its rows go.
    std::fs::remove_file(dir.join("b.csv")).unwrap();
    wait_for_value(
        &app,
        "SELECT string_agg(k, ',' ORDER BY k) FROM raw_sales.sales",
        json!("x"),
    )
    .await;
    app.stop().await;
}

async fn wait_run(app: &TestApp, id: &Value) -> Value {
    eventually(Duration::from_secs(20), || async {
        let (_, run) = app.get_json(&format!("/api/sync/status/{id}")).await;
        (run["status"] != "running" && run["status"] != "queued").then_some(run)
    })
    .await
    .expect("the sync finishes")
}

#[tokio::test]
async fn a_malformed_file_is_reported_and_the_previous_table_stays() {
    let app = TestApp::new().await;
    let dir = uploads(&app).join("events");
    drop_file(
        &dir,
        "good1.json",
        br#"[{"id": 1, "kind": "a"}, {"id": 2, "kind": "b"}]"#,
    );
    drop_file(&dir, "good2.ndjson", b"{\"id\": 3, \"kind\": \"c\"}\n");
    wait_for_value(&app, "SELECT count(*) FROM raw_events.events", json!(3)).await;
    // Now good1 is replaced by a broken file, and a new broken file appears.
    drop_file(&dir, "good1.json", br#"[{"id": 1, "kind": "a"}, {"id": "#);
    drop_file(&dir, "broken.json", b"{{{{ not json");
    let failed = eventually(Duration::from_secs(20), || async {
        let files = settled_files(&app, "events").await;
        let failed: Vec<Value> = files
            .into_iter()
            .filter(|f| f["status"] == "failed")
            .collect();
        (failed.len() == 2).then_some(failed)
    })
    .await
    .expect("both broken files are reported");
    for f in &failed {
        assert!(f["error"].as_str().is_some_and(|e| !e.is_empty()), "{f}");
    }
    // The rows from before are intact.
    let (_, body) = app.query("SELECT count(*) FROM raw_events.events").await;
    assert_eq!(body["rows"][0][0], 3);
    let (_, sources) = app.get_json("/api/sources").await;
    let events = sources
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "events")
        .unwrap()
        .clone();
    assert_eq!(events["status"], "failed");
    let (_, logs) = app.get_json("/api/sources/events/logs?limit=50").await;
    assert!(
        logs.as_array()
            .unwrap()
            .iter()
            .any(|l| l["type"] == "sync_failed"),
        "{logs}"
    );
    app.stop().await;
}

#[tokio::test]
async fn awkward_csvs_load() {
    let app = TestApp::new().await;
    let dir = uploads(&app);
    drop_file(
        &dir,
        "bom.csv",
        "\u{feff}id,name\r\n1,Ann\r\n2,Bo\r\n".as_bytes(),
    );
    drop_file(
        &dir,
        "quoted.csv",
        b"id,note\n1,\"line one\nline two\"\n2,\"say \"\"hi\"\"\"\n",
    );
    drop_file(&dir, "ragged.csv", b"a,b,c\n1,2,3\n4,5\n6,7,8\n");
    drop_file(&dir, "tabs.tsv", b"x\ty\n1\t2\n3\t4\n");
    drop_file(&dir, "header_only.csv", b"p,q,r\n");
    let mut mixed = String::from("id,code\n");
    for i in 0..30_000 {
        mixed.push_str(&format!("{i},{i}\n"));
    }
    mixed.push_str("30000,N/A\n");
    drop_file(&dir, "mixed.csv", mixed.as_bytes());
    wait_for_value(&app, "SELECT count(*) FROM raw_uploads.bom", json!(2)).await;
    let (_, body) = app
        .query("SELECT * EXCLUDE (_kura_file, _kura_loaded_at) FROM raw_uploads.bom ORDER BY id")
        .await;
    assert_eq!(
        body["columns"][0], "id",
        "the BOM is not part of the first column name: {body}"
    );
    assert_eq!(body["rows"][1][1], "Bo");
    wait_for_value(
        &app,
        "SELECT note FROM raw_uploads.quoted WHERE id = 1",
        json!("line one\nline two"),
    )
    .await;
    wait_for_value(&app, "SELECT count(*) FROM raw_uploads.ragged", json!(3)).await;
    wait_for_value(&app, "SELECT sum(y) FROM raw_uploads.tabs", json!(6)).await;
    wait_for_value(
        &app,
        "SELECT count(*) FROM raw_uploads.mixed",
        json!(30_001),
    )
    .await;
    let (_, body) = app
        .query("SELECT code FROM raw_uploads.mixed WHERE id = 30000")
        .await;
    assert_eq!(body["rows"][0][0], "N/A");
    let files = settled_files(&app, "uploads").await;
    let header_only = files
        .iter()
        .find(|f| f["relative_path"] == "data/uploads/header_only.csv")
        .unwrap();
    assert_eq!(header_only["status"], "empty", "{header_only}");
    app.stop().await;
}

#[tokio::test]
async fn parquet_and_gzip_load() {
    let app = TestApp::new().await;
    // Make a Parquet file with DuckDB itself, through an export.
    let r = app
        .client
        .post(app.url("/api/query/export"))
        .json(&json!({"sql": "SELECT i AS id, 'p' || i AS label FROM range(1000) t(i)", "format": "parquet"}))
        .send()
        .await
        .unwrap();
    let bytes = r.bytes().await.unwrap();
    drop_file(&uploads(&app), "points.parquet", &bytes);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, b"a,b\n1,2\n3,4\n").unwrap();
    drop_file(&uploads(&app), "small.csv.gz", &gz.finish().unwrap());
    wait_for_value(&app, "SELECT count(*) FROM raw_uploads.points", json!(1000)).await;
    wait_for_value(&app, "SELECT sum(b) FROM raw_uploads.small", json!(6)).await;
    app.stop().await;
}

#[tokio::test]
async fn an_excel_workbook_loads_its_first_sheet() {
    let app = TestApp::new().await;
    let book = crate::xlsx::workbook(&[
        &["sku", "qty", "note"],
        &["a-1", "3", "first"],
        &["b-2", "5", "second, with a comma"],
    ]);
    drop_file(&uploads(&app), "Stock Count.xlsx", &book);
    wait_for_value(
        &app,
        "SELECT sum(qty) FROM raw_uploads.stock_count",
        json!(8),
    )
    .await;
    let (_, body) = app
        .query("SELECT note FROM raw_uploads.stock_count WHERE sku = 'b-2'")
        .await;
    assert_eq!(body["rows"][0][0], "second, with a comma");
    app.stop().await;
}

#[tokio::test]
async fn a_folder_unions_files_by_name_and_only_a_retyped_column_conflicts() {
    let app = TestApp::new().await;
    let dir = uploads(&app).join("m");
    drop_file(&dir, "1.csv", b"id,a\n1,x\n");
    wait_for_value(&app, "SELECT count(*) FROM raw_m.m", json!(1)).await;
    drop_file(&dir, "2.csv", b"id,a,b\n2,y,7\n");
    wait_for_value(&app, "SELECT count(*) FROM raw_m.m", json!(2)).await;
    let (_, body) = app.query("SELECT b FROM raw_m.m ORDER BY id").await;
    assert_eq!(body["rows"], json!([[null], [7]]));
    // Next month's export has lost a column again: uploaded, it loads, the column NULL.
    let r = app.upload_to("m", "3.csv", b"id,a\n3,z\n".to_vec()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let answer: Value = r.json().await.unwrap();
    let run = wait_run(&app, &answer["record_id"]).await;
    assert_eq!(run["status"], "success", "{run}");
    let (_, body) = app.query("SELECT id, a, b FROM raw_m.m ORDER BY id").await;
    assert_eq!(
        body["rows"],
        json!([[1, "x", null], [2, "y", 7], [3, "z", null]])
    );
    // A column with another type still conflicts, and the sync says which file and why.
    let r = app.upload_to("m", "4.csv", b"id,a\n4.5,w\n".to_vec()).await;
    let answer: Value = r.json().await.unwrap();
    let run = wait_run(&app, &answer["record_id"]).await;
    assert_ne!(run["status"], "success", "{run}");
    assert!(run["files"].to_string().contains("4.csv"), "{run}");
    assert!(
        run["files"].to_string().contains("column id is BIGINT"),
        "{run}"
    );
    let (_, body) = app.query("SELECT count(*) FROM raw_m.m").await;
    assert_eq!(body["rows"][0][0], 3);
    // A table of its own refuses a replacement that drops a column.
    let own = uploads(&app);
    drop_file(&own, "prices.csv", b"sku,price\nA,1\n");
    wait_for_value(&app, "SELECT count(*) FROM raw_uploads.prices", json!(1)).await;
    drop_file(&own, "prices.csv", b"sku\nB\n");
    let failed = eventually(Duration::from_secs(20), || async {
        settled_files(&app, "uploads")
            .await
            .into_iter()
            .find(|f| f["relative_path"] == "data/uploads/prices.csv" && f["status"] == "failed")
    })
    .await
    .expect("a replacement dropping a column is refused");
    assert!(
        failed["error"].as_str().unwrap().contains("column price"),
        "{failed}"
    );
    let (_, body) = app.query("SELECT sku FROM raw_uploads.prices").await;
    assert_eq!(body["rows"], json!([["A"]]));
    app.stop().await;
}

#[tokio::test]
async fn an_empty_file_never_wipes_rows_unless_forced() {
    let app = TestApp::new().await;
    let dir = uploads(&app);
    drop_file(&dir, "stock.csv", b"sku,qty\na,1\nb,2\n");
    wait_for_value(&app, "SELECT count(*) FROM raw_uploads.stock", json!(2)).await;
    drop_file(&dir, "stock.csv", b"sku,qty\n");
    let failed = eventually(Duration::from_secs(20), || async {
        settled_files(&app, "uploads")
            .await
            .into_iter()
            .find(|f| f["status"] == "failed")
    })
    .await
    .expect("the empty replacement is refused");
    assert!(
        failed["error"].as_str().unwrap().contains("allow_empty"),
        "{failed}"
    );
    let (_, body) = app.query("SELECT count(*) FROM raw_uploads.stock").await;
    assert_eq!(body["rows"][0][0], 2);
    let (status, started) = app
        .post_json(
            "/api/sources/uploads/sync",
            json!({"full_refresh": true, "allow_empty": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    wait_run(&app, &started["record_id"]).await;
    let (_, body) = app.query("SELECT count(*) FROM raw_uploads.stock").await;
    assert_eq!(body["rows"][0][0], 0);
    app.stop().await;
}

#[tokio::test]
async fn two_files_for_one_table_are_an_error_not_a_merge() {
    let app = TestApp::new().await;
    drop_file(&uploads(&app), "report.csv", b"a\n1\n");
    drop_file(&uploads(&app), "Report.json", b"[{\"a\": 2}]");
    let failed = eventually(Duration::from_secs(20), || async {
        settled_files(&app, "uploads")
            .await
            .into_iter()
            .find(|f| f["status"] == "failed")
    })
    .await
    .expect("one of the two is refused");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("raw_uploads.report"),
        "{failed}"
    );
    let (_, body) = app.query("SELECT count(*) FROM raw_uploads.report").await;
    assert_eq!(body["rows"][0][0], 1);
    app.stop().await;
}

#[tokio::test]
async fn the_sync_api_answers_202_then_409_while_running() {
    let app = TestApp::new().await;
    let mut big = String::from("id,text\n");
    for i in 0..400_000 {
        big.push_str(&format!("{i},row number {i}\n"));
    }
    let dir = uploads(&app).join("big");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("big.csv"), &big).unwrap();
    let (status, first) = app
        .post_json("/api/sources/big/sync", json!({"full_refresh": true}))
        .await;
    // The watcher may have started it already; either way a second request conflicts.
    if status == StatusCode::OK {
        assert!(first["record_id"].as_i64().is_some());
    }
    let (status, second) = app.post_json("/api/sources/big/sync", json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{second}");
    assert_eq!(second["error"], "sync_in_progress");
    let (status, body) = app.post_json("/api/sources/nope/sync", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    wait_for_value(&app, "SELECT count(*) FROM raw_big.big", json!(400_000)).await;
    let (_, details) = app.get_json("/api/sources/big/details").await;
    assert!(!details["sync_history"].as_array().unwrap().is_empty());
    assert_eq!(details["mode"], "replace");
    assert_eq!(details["sync_mode"], "incremental");
    app.stop().await;
}

#[tokio::test]
async fn upload_streams_to_disk_refuses_existing_names_and_bad_types() {
    let app = TestApp::new().await;
    let form = || {
        reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(b"id,v\n1,2\n".to_vec())
                .file_name("../../evil/../prices.csv"),
        )
    };
    let r = app
        .client
        .post(app.url("/api/sources/uploads/upload-csv"))
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["file"], "data/uploads/prices.csv",
        "the name is reduced to its basename"
    );
    wait_for_value(&app, "SELECT count(*) FROM raw_uploads.prices", json!(1)).await;
    let r = app
        .client
        .post(app.url("/api/sources/uploads/upload-csv"))
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = app
        .client
        .post(app.url("/api/sources/uploads/upload-csv?overwrite=true"))
        .multipart(form())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let exe = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"MZ".to_vec()).file_name("tool.exe"),
    );
    let r = app
        .client
        .post(app.url("/api/sources/uploads/upload-csv"))
        .multipart(exe)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_file_type");
    app.stop().await;
}

#[tokio::test]
async fn a_2gb_upload_is_refused_with_413_before_it_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::new().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/sources/uploads/upload-csv HTTP/1.1\r\nHost: {addr}\r\nX-Requested-With: kura-tests\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n\
         Content-Length: {}\r\n\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"huge.csv\"\r\n\r\nid\n",
        2u64 * 1024 * 1024 * 1024
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    assert!(!uploads(&app).join("huge.csv").exists());
    app.stop().await;
}

#[tokio::test]
async fn an_upload_over_the_limit_without_a_length_is_cut_off_and_cleaned_up() {
    let app = TestApp::with_config(|c| c.api.max_upload_mb = 1).await;
    let body = vec![b'1'; 3 * 1024 * 1024];
    let stream = futures_util::stream::iter(
        body.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let part =
        reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(stream)).file_name("big.csv");
    let r = app
        .client
        .post(app.url("/api/sources/uploads/upload-csv"))
        .multipart(reqwest::multipart::Form::new().part("file", part))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let leftovers: Vec<_> = std::fs::read_dir(uploads(&app))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        leftovers.is_empty(),
        "no file or temp file stays behind: {leftovers:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn deleting_through_the_api_stays_inside_the_source_folder() {
    let app = TestApp::new().await;
    drop_file(&uploads(&app), "gone.csv", b"a\n1\n");
    wait_for_value(&app, "SELECT count(*) FROM raw_uploads.gone", json!(1)).await;
    std::fs::write(app.dir.path().join("outside.csv"), "a\n1\n").unwrap();
    for bad in ["../../outside.csv", "/etc/passwd", "../outside.csv"] {
        let r = app
            .client
            .delete(app.url("/api/sources/uploads/csv-files"))
            .query(&[("file_path", bad)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "path_outside_source", "{bad}: {body}");
    }
    assert!(app.dir.path().join("outside.csv").exists());
    let r = app
        .client
        .delete(app.url("/api/sources/uploads/csv-files"))
        .query(&[("file_path", "gone.csv")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    wait_for_value(&app, "SELECT count(*) FROM raw_uploads.gone", json!(0)).await;
    let (_, logs) = app.get_json("/api/logs?limit=100").await;
    assert!(
        logs.as_array()
            .unwrap()
            .iter()
            .any(|l| l["type"] == "csv_deleted")
    );
    app.stop().await;
}

/// The rows of every load of `file` in the source's sync history.
async fn loads_of(app: &TestApp, source: &str, file: &str) -> Vec<u64> {
    let (_, details) = app
        .get_json(&format!("/api/sources/{source}/details"))
        .await;
    details["sync_history"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|run| run["files"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["path"] == file && f["outcome"] == "loaded")
        .map(|f| f["rows"].as_u64().unwrap())
        .collect()
}

/// A file the kernel reports complete — closed after writing, or renamed into the
/// folder — loads at once, without the stability wait (here ten minutes).
#[tokio::test]
async fn a_closed_or_renamed_file_loads_without_the_stability_wait() {
    let app = TestApp::with_config(|c| c.platform.debounce_ms = 600_000).await;
    let dir = uploads(&app);
    std::fs::write(dir.join("written.csv"), b"id\n1\n2\n").unwrap();
    wait_for_value(&app, "SELECT count(*) FROM raw_uploads.written", json!(2)).await;
    drop_file(&dir, "renamed.csv", b"id\n1\n2\n3\n");
    wait_for_value(&app, "SELECT count(*) FROM raw_uploads.renamed", json!(3)).await;
    app.stop().await;
}

/// A file still being written with its writer holding it open is never loaded half-way:
/// it keeps growing for longer than the stability wait, and loads once, whole, when closed.
#[tokio::test]
async fn a_file_still_being_written_is_never_loaded_half_written() {
    use std::io::Write;
    let app = TestApp::with_config(|c| c.platform.debounce_ms = 100).await;
    // The startup sync lists the folder once; a file created in the same instant could be
    // read before the watcher hears of its first write. Start writing after it.
    eventually(Duration::from_secs(10), || async {
        let (_, details) = app.get_json("/api/sources/uploads/details").await;
        let runs = details["sync_history"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (!runs.is_empty()
            && runs
                .iter()
                .all(|r| r["status"] != "running" && r["status"] != "queued"))
        .then_some(())
    })
    .await
    .expect("the startup sync ends");
    let path = uploads(&app).join("growing.csv");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(b"id,v\n").unwrap();
    // A slow writer: a row every 20 ms for about a second (ten stability waits), never
    // closing the file; each write moves its size and mtime.
    for i in 0..50 {
        writeln!(file, "{i},{}", "x".repeat(100)).unwrap();
        file.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let early = loads_of(&app, "uploads", "data/uploads/growing.csv").await;
    assert!(
        early.is_empty(),
        "a file still being written was loaded: {early:?}"
    );
    drop(file);
    wait_for_value(&app, "SELECT count(*) FROM raw_uploads.growing", json!(50)).await;
    assert_eq!(
        loads_of(&app, "uploads", "data/uploads/growing.csv").await,
        vec![50],
        "loaded exactly once, whole"
    );
    app.stop().await;
}

/// Every source table gets a view `staging.stg_<source>__<table>` with its columns but
/// Kura's own, kept in step when a file adds a column; `models.generate_staging: false`
/// makes none.
#[tokio::test]
async fn every_source_table_gets_a_staging_view_without_kura_columns() {
    let app = TestApp::new().await;
    let dir = uploads(&app).join("m");
    drop_file(&dir, "1.csv", b"id,a\n1,x\n");
    wait_for_value(&app, "SELECT count(*) FROM staging.stg_m__m", json!(1)).await;
    let (_, body) = app.query("SELECT * FROM staging.stg_m__m").await;
    assert_eq!(body["columns"], json!(["id", "a"]), "{body}");
    // A file with one more column: the view follows (written after the sync's loads).
    drop_file(&dir, "2.csv", b"id,a,b\n2,y,7\n");
    let body = eventually(Duration::from_secs(20), || async {
        let (_, body) = app
            .query("SELECT * FROM staging.stg_m__m ORDER BY id")
            .await;
        (body["columns"] == json!(["id", "a", "b"])).then_some(body)
    })
    .await
    .expect("the staging view gains the new column");
    assert_eq!(body["rows"], json!([[1, "x", null], [2, "y", 7]]));
    // A table of its own (a file directly in the uploads folder) too.
    drop_file(&uploads(&app), "prices.csv", b"sku,price\nA,1\n");
    wait_for_value(
        &app,
        "SELECT count(*) FROM staging.stg_uploads__prices",
        json!(1),
    )
    .await;
    app.stop().await;

    let app = TestApp::with_config(|c| c.models.generate_staging = false).await;
    drop_file(&uploads(&app), "prices.csv", b"sku,price\nA,1\n");
    wait_for_value(&app, "SELECT count(*) FROM raw_uploads.prices", json!(1)).await;
    let (status, body) = app
        .query("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'staging'")
        .await;
    app.stop().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"], json!([[0]]));
}
