//! `/api/status`, `/api/config`, `/api/health/platform`, and the error shape of unknown routes.

use reqwest::StatusCode;

use crate::harness::TestApp;

#[tokio::test]
async fn status_reports_each_component() {
    let app = TestApp::with_fixtures().await;
    let (status, body) = app.get_json("/api/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["warehouse"]["status"], "ok");
    assert_eq!(body["warehouse"]["tables"], 3);
    assert_eq!(body["warehouse"]["query_workers"], 2);
    let settings = &body["warehouse"]["engine_settings"];
    assert_eq!(settings["enable_external_access"], "false");
    assert_eq!(settings["lock_configuration"], "true");
    assert_eq!(settings["autoinstall_known_extensions"], "false");
    assert_eq!(body["metadata"]["status"], "ok");
    assert!(body["metadata"]["schema_version"].as_i64().unwrap() >= 1);
    app.stop().await;
}

#[tokio::test]
async fn health_has_the_reference_shape() {
    let app = TestApp::with_fixtures().await;
    let (status, body) = app.get_json("/api/health/platform").await;
    assert_eq!(status, StatusCode::OK);
    for key in [
        "status",
        "timestamp",
        "database",
        "disk",
        "sync_failures",
        "total_sources",
        "enabled_sources",
        "critical_issues",
        "warnings",
    ] {
        assert!(body.get(key).is_some(), "missing {key}: {body}");
    }
    for key in [
        "size_mb",
        "tables",
        "status",
        "raw_tables",
        "staging_tables",
        "marts_tables",
    ] {
        assert!(
            body["database"].get(key).is_some(),
            "missing database.{key}"
        );
    }
    for key in ["status", "free_gb", "total_gb"] {
        assert!(body["disk"].get(key).is_some(), "missing disk.{key}");
    }
    assert_eq!(body["database"]["tables"], 3);
    assert_eq!(body["database"]["raw_tables"], 1);
    assert_eq!(body["database"]["status"], "healthy");
    assert_eq!(body["total_sources"], 1);
    assert!(body["database"]["size_mb"].as_f64().is_some());
    app.stop().await;
}

#[tokio::test]
async fn config_masks_secrets_and_lists_service_urls() {
    let app = TestApp::new().await;
    let (status, body) = app.get_json("/api/config").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["project"]["platform"]["port"], 8800);
    assert_eq!(body["project"]["api"]["max_query_rows"], 10000);
    assert_eq!(body["services"]["web"], "http://127.0.0.1:8800");
    assert_eq!(body["services"]["api"], "http://127.0.0.1:8800/api");
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_get_the_json_error_shape_or_an_html_page() {
    let app = TestApp::new().await;
    let (status, body) = app.get_json("/api/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    assert!(body["message"].as_str().unwrap().contains("/api/nope"));
    let r = app
        .client
        .get(app.url("/nope"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("there is no page at /nope"), "{html}");
    assert!(html.contains("not_found"));
    let r = app
        .client
        .get(app.url("/static/kura.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = TestApp::new().await;
    let r = app.client.get(app.url("/api/status")).send().await.unwrap();
    assert!(r.headers().get("x-request-id").is_some());
    app.stop().await;
}

#[test]
fn the_example_config_documents_every_key() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/project.yml.example"))
        .unwrap();
    // It parses as a complete project.yml ...
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("project.yml"), &text).unwrap();
    let config = kura::Config::load_with_env(dir.path(), Vec::new()).unwrap();
    // ... and every key of the config appears in it, with its default value.
    let defaults = serde_json::to_value(kura::Config::default()).unwrap();
    let written = serde_json::to_value(&config).unwrap();
    assert_eq!(
        written, defaults,
        "project.yml.example must show every default"
    );
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    fn keys(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        if let serde_json::Value::Object(map) = v {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                keys(&path, v, out);
                out.push(path);
            }
        }
    }
    let mut all = Vec::new();
    keys("", &defaults, &mut all);
    for key in all {
        let mut node = &yaml;
        for part in key.split('.') {
            node = node
                .get(part)
                .unwrap_or_else(|| panic!("project.yml.example lacks {key}"));
        }
    }
}

/// Pages name their scripts and styles with a content hash; those URLs are cacheable for
/// good, a URL without the current hash is checked every time.
#[tokio::test]
async fn static_files_are_served_under_content_hashed_urls() {
    let app = TestApp::new().await;
    let mut urls = std::collections::BTreeSet::new();
    for page in ["/", "/query", "/sources", "/logs", "/login"] {
        let html = app
            .client
            .get(app.url(page))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for part in html.split("\"/static/").skip(1) {
            let url = format!("/static/{}", &part[..part.find('"').unwrap()]);
            assert!(url.contains("?v="), "{page} names {url} without its hash");
            urls.insert(url);
        }
    }
    assert!(urls.len() >= 5, "{urls:?}");
    for url in &urls {
        let r = app.client.get(app.url(url)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        assert_eq!(
            r.headers()["cache-control"],
            "public, max-age=31536000, immutable",
            "{url}"
        );
    }
    for url in ["/static/kura.js", "/static/kura.js?v=0000000000000000"] {
        let r = app.client.get(app.url(url)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["cache-control"], "no-cache", "{url}");
    }
    app.stop().await;
}
