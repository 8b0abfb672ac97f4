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

/// Every API call a page script makes names a route that exists with that method, and
/// every query parameter it sends is one the route accepts (the source page's Delete once
/// sent `?path=` to a route that needs `file_path`, and failed on every click).
#[tokio::test]
async fn every_api_call_of_the_page_scripts_fits_its_route() {
    let calls = page_api_calls();
    assert!(calls.len() > 30, "the scan found too few calls: {calls:?}");
    let specs = kura::routes::route_specs();
    for call in &calls {
        let known = specs
            .iter()
            .any(|s| s.method.as_str() == call.method && segments_match(s.path, &call.path));
        assert!(
            known,
            "{} calls {} {}, which is no route",
            call.file, call.method, call.path
        );
    }
    let app = TestApp::new().await;
    for call in calls.iter().filter(|c| !c.query.is_empty()) {
        let path: Vec<&str> = call
            .path
            .split('/')
            .map(|s| if s == "{}" { "1" } else { s })
            .collect();
        let query: Vec<String> = call.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let url = app.url(&format!("{}?{}", path.join("/"), query.join("&")));
        let method = reqwest::Method::from_bytes(call.method.as_bytes()).unwrap();
        let r = app.client.request(method, &url).send().await.unwrap();
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap_or_default();
        assert!(
            body["error"] != "invalid_query",
            "{}: {} {url} sends a query the route refuses ({status}): {body}",
            call.file,
            call.method
        );
    }
    app.stop().await;
}

/// One API call found in a page script.
#[derive(Debug)]
struct PageCall {
    file: String,
    method: String,
    /// The path with each `${…}` as `{}`.
    path: String,
    /// Query parameters with the literal value the script sends (`1` for a computed one).
    query: Vec<(String, String)>,
}

/// `kura.api("METHOD", url…)` (and the pages' `act("METHOD", url…)`), `kura.upload(url…)`
/// and `fetch(url, {method…})` calls of every script under `static/`.
fn page_api_calls() -> Vec<PageCall> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "js") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        // `act(method, url, …)`: the pages' own wrapper of kura.api that refreshes after.
        for (opener, fixed) in [
            ("kura.api(", None),
            ("act(", None),
            ("kura.upload(", Some("POST")),
            ("fetch(", Some("")),
        ] {
            let mut rest = text.as_str();
            while let Some(at) = rest.find(opener) {
                rest = &rest[at + opener.len()..];
                let (method, after) = match fixed {
                    None => {
                        let Some((m, after)) = string_literal(rest) else {
                            continue;
                        };
                        let after = after
                            .trim_start()
                            .strip_prefix(',')
                            .unwrap_or(after)
                            .trim_start();
                        (m, after)
                    }
                    Some(m) => (m.to_owned(), rest),
                };
                let Some((url, after)) = string_literal(after) else {
                    continue;
                };
                if !url.starts_with("/api/") {
                    continue;
                }
                let method = if method.is_empty() {
                    // fetch: the method in its options, GET without one.
                    let options = &after[..after.len().min(200)];
                    ["POST", "PUT", "DELETE"]
                        .into_iter()
                        .find(|m| options.contains(&format!("method: \"{m}\"")))
                        .unwrap_or("GET")
                        .to_owned()
                } else {
                    method
                };
                out.push(page_call(&file, method, &url));
            }
        }
    }
    out
}

/// The `"…"` or `` `…` `` literal `s` starts with (`${…}` kept whole), and what follows.
fn string_literal(s: &str) -> Option<(String, &str)> {
    let quote = s.chars().next().filter(|c| matches!(c, '"' | '`'))?;
    let mut depth = 0;
    let body = &s[1..];
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '$' if quote == '`' && chars.peek().is_some_and(|(_, n)| *n == '{') => {
                depth += 1;
                chars.next();
            }
            '}' if depth > 0 => depth -= 1,
            c if c == quote && depth == 0 => return Some((body[..i].to_owned(), &body[i + 1..])),
            _ => {}
        }
    }
    None
}

fn page_call(file: &str, method: String, url: &str) -> PageCall {
    // Query parameters, wherever they are written (also inside `${cond ? "?a=b" : ""}`).
    let mut query = Vec::new();
    for (i, _) in url.match_indices(['?', '&']) {
        let rest = &url[i + 1..];
        let Some(eq) = rest.find('=') else { continue };
        let name = &rest[..eq];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        let value: String = rest[eq + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        query.push((
            name.to_owned(),
            if value.is_empty() {
                "1".to_owned()
            } else {
                value
            },
        ));
    }
    // The path: each `${…}` a placeholder; one glued to a segment is an optional suffix.
    let mut path = String::new();
    let mut depth = 0;
    let mut chars = url.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                depth += 1;
                if depth == 1 {
                    path.push_str("{}");
                }
            }
            '}' if depth > 0 => depth -= 1,
            '?' if depth == 0 => break,
            c if depth == 0 => path.push(c),
            _ => {}
        }
    }
    let path = path
        .split('/')
        .map(|s| {
            if s == "{}" {
                s.to_owned()
            } else {
                s.replace("{}", "")
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    PageCall {
        file: file.to_owned(),
        method,
        path,
        query,
    }
}

/// `/api/sources/{name}/sync` matches `/api/sources/{}/sync`.
fn segments_match(route: &str, call: &str) -> bool {
    let (r, c): (Vec<&str>, Vec<&str>) = (route.split('/').collect(), call.split('/').collect());
    r.len() == c.len()
        && r.iter().zip(&c).all(|(r, c)| {
            let param = r.starts_with('{') && r.ends_with('}');
            (param && *c == "{}") || r == c
        })
}
