//! The JSON side of the pages: `/ws` and `/api/clients`, the overview, table previews,
//! filtered logs, and the SQL page's recent queries.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{TestApp, eventually};

async fn upload(app: &TestApp, name: &str, body: &str) {
    let r = app.upload(name, body.as_bytes().to_vec()).await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// The next text message that is an event of `kind`.
async fn next_of<S>(ws: &mut S, kind: &str) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Message::Text(t) = ws.next().await.unwrap().unwrap() {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == kind {
                    return v;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} event"))
}

#[tokio::test]
async fn ws_greets_streams_events_with_their_log_words_and_lists_its_clients() {
    let app = TestApp::new().await;
    let ws_url = app.url("/ws").replacen("http", "ws", 1);
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let hello = next_of(&mut ws, "connected").await;
    assert_eq!(hello["role"], "admin");
    assert!(hello["timestamp"].is_string() && hello["syncing"].is_array());

    let (status, clients) = app.get_json("/api/clients").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(clients["count"], 1);
    assert_eq!(clients["clients"][0]["user"], "local@localhost");
    assert!(
        clients["clients"][0]["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );

    upload(&app, "live.csv", "a,b\n1,2\n3,4\n").await;
    let uploaded = next_of(&mut ws, "csv_uploaded").await;
    assert_eq!(uploaded["source"], "uploads");
    assert_eq!(uploaded["level"], "info");
    assert_eq!(
        uploaded["message"],
        "data/uploads/live.csv uploaded to uploads (12 bytes)"
    );
    // (The start-up sync of the empty folder may end first.)
    let mut done = next_of(&mut ws, "sync_completed").await;
    if done["rows"] == 0 {
        done = next_of(&mut ws, "sync_completed").await;
    }
    assert_eq!(done["rows"], 2);

    drop(ws);
    let gone = eventually(Duration::from_secs(5), || async {
        let (_, c) = app.get_json("/api/clients").await;
        (c["count"] == 0).then_some(())
    })
    .await;
    assert!(gone.is_some(), "a closed connection stays listed");
}

#[tokio::test]
async fn overview_preview_and_logs_answer_from_the_same_data() {
    let app = TestApp::new().await;
    upload(&app, "prices.csv", "sku,price\nA,1.5\nB,2.5\nC,3.5\n").await;
    let loaded = eventually(Duration::from_secs(10), || async {
        let (_, o) = app.get_json("/api/overview").await;
        (o["totals"]["rows"] == 3).then_some(o)
    })
    .await
    .expect("the upload loads");
    assert_eq!(loaded["totals"]["sources"], 1);
    assert_eq!(loaded["sources"][0]["tables"][0]["name"], "prices");
    assert_eq!(loaded["rows_by_day"].as_array().unwrap().len(), 14);
    assert!(loaded["rows_by_day"][13]["rows"].as_u64().unwrap() >= 3);
    assert!(!loaded["recent_activity"].as_array().unwrap().is_empty());

    let (status, preview) = app
        .get_json("/api/sources/uploads/tables/prices/preview?limit=2")
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["row_count"], 2);
    assert_eq!(preview["rows"][0][0], "A");
    let (status, missing) = app
        .get_json("/api/sources/uploads/tables/nosuch/preview")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"], "not_found");

    // Filters narrow; every row matches them.
    let (_, all) = app.get_json("/api/logs").await;
    let (_, text) = app.get_json("/api/logs?q=PRICES.CSV").await;
    let count = |v: &Value| v.as_array().map_or(0, Vec::len);
    assert!(count(&text) >= 1);
    assert!(count(&text) < count(&all));
    for e in text.as_array().unwrap() {
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("prices.csv")
        );
    }
    let (_, errors) = app.get_json("/api/logs?level=error").await;
    assert_eq!(count(&errors), 0);
    let (_, future) = app.get_json("/api/logs?since=2999-01-01T00:00:00Z").await;
    assert_eq!(count(&future), 0);
    let (_, other) = app.get_json("/api/logs?source=nosuch").await;
    assert_eq!(count(&other), 0);
    let (status, bad) = app.get_json("/api/logs?levle=error").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");

    // The pages render from the same data.
    for path in [
        "/",
        "/sources",
        "/sources/uploads",
        "/query?table=raw_uploads.prices",
        "/logs?q=prices",
        "/health",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let html = r.text().await.unwrap();
        let expected = match path {
            "/health" => "Tables by layer",
            "/sources" => "/sources/uploads",
            _ => "prices",
        };
        assert!(html.contains(expected), "{path}");
    }
    let html = app
        .client
        .get(app.url("/query?table=x;DROP"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !html.contains("DROP"),
        "an unknown table never reaches the editor"
    );
}

#[tokio::test]
async fn recent_queries_are_kept_only_when_asked_and_newest_first() {
    let app = TestApp::with_fixtures().await;
    app.post_json(
        "/api/query",
        json!({"sql": "SELECT 1 AS a", "remember": true}),
    )
    .await;
    app.post_json("/api/query", json!({"sql": "SELECT 2 AS not_kept"}))
        .await;
    let (status, failed) = app
        .post_json(
            "/api/query",
            json!({"sql": "SELECT * FROM nosuch", "remember": true}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(failed["error"], "invalid_sql");
    assert!(failed["position"].is_u64(), "{failed}");
    app.post_json(
        "/api/query",
        json!({"sql": "SELECT 1 AS a", "remember": true}),
    )
    .await;
    let history = eventually(Duration::from_secs(5), || async {
        let (_, h) = app.get_json("/api/query/history").await;
        // Entries are written in the background: wait for the last one.
        (h["queries"].as_array().unwrap().len() == 2 && h["queries"][0]["sql"] == "SELECT 1 AS a")
            .then_some(h)
    })
    .await
    .expect("two distinct remembered queries");
    let q = &history["queries"];
    assert_eq!(q[0]["sql"], "SELECT 1 AS a");
    assert_eq!(q[0]["ok"], true);
    assert_eq!(q[0]["rows"], 1);
    assert_eq!(q[1]["sql"], "SELECT * FROM nosuch");
    assert_eq!(q[1]["ok"], false);
}
