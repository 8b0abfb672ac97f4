//! The red team's findings (issue 12), one regression test each, against the real server.

use std::time::Duration;

use kura::auth::{Role, totp};
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::accounts::{PASSWORD, auth_app, now, ws_status_with};
use crate::corpus::ungated;
use crate::harness::{TestApp, eventually};
use crate::ingest::{drop_file, settled_files, uploads};

/// Only prepares `sql` on a query worker (the engine guard decides at prepare time).
async fn engine_prepares(app: &TestApp, sql: &str) -> Result<(), String> {
    let sql = sql.to_owned();
    app.state
        .warehouse
        .interactive(Duration::from_secs(20), move |qc, _| {
            let result = qc.conn.prepare(&sql).map(drop).map_err(|e| e.to_string());
            qc.end_transaction();
            result
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn with_the_gate_off_the_engine_cannot_touch_the_warehouse_files() {
    let app = TestApp::with_fixtures().await;
    let warehouse = app.warehouse_path();
    let size_before = std::fs::metadata(&warehouse).unwrap().len();
    let w = warehouse.display();
    let staging = app.dir.path().join(".kura/staging/x.csv");
    for sql in [
        format!("COPY (SELECT 'garbage') TO '{w}' (FORMAT csv, USE_TMP_FILE false)"),
        format!("COPY (SELECT 'garbage') TO '{w}.wal' (FORMAT csv, USE_TMP_FILE false)"),
        format!("COPY (SELECT 1) TO '{}'", staging.display()),
        format!("EXPLAIN ANALYZE COPY (SELECT 1) TO '{}'", staging.display()),
        format!("SELECT size FROM read_blob('{w}')"),
        format!("SELECT content FROM read_text('{w}.wal')"),
        format!("SELECT * FROM glob('{}/*')", app.dir.path().display()),
        "CHECKPOINT".to_owned(),
        "SELECT * FROM duckdb_databases()".to_owned(),
        "SELECT current_setting('allowed_directories')".to_owned(),
        "SELECT * FROM pg_settings".to_owned(),
        "SELECT * FROM duckdb_settings()".to_owned(),
    ] {
        let outcome = ungated(&app, &sql).await;
        assert!(outcome.is_err(), "the engine ran {sql}: {outcome:?}");
    }
    assert!(!staging.exists(), "a file was written into staging");
    assert_eq!(std::fs::metadata(&warehouse).unwrap().len(), size_before);
    let (status, body) = app.query("SELECT count(*) FROM orders").await;
    assert_eq!(
        (status, body["rows"][0][0].clone()),
        (StatusCode::OK, json!(5))
    );
    app.stop().await;
}

#[tokio::test]
async fn nothing_a_query_sets_outlives_it_or_reaches_another_user() {
    let app = TestApp::with_fixtures().await;
    for sql in [
        "CREATE TEMP MACRO lower(x) AS 'HACKED'",
        "SET VARIABLE leak = 'secret'",
        "SET memory_limit = '100GB'",
        "PRAGMA enable_profiling",
    ] {
        assert!(ungated(&app, sql).await.is_err(), "{sql} ran");
    }
    // Every worker still has DuckDB's own lower() and no variable.
    for _ in 0..8 {
        let (status, body) = app.query("SELECT lower('ABC')").await;
        assert_eq!(body["rows"][0][0], "abc", "{status} {body}");
    }
    // No connection holds the variable (SET VARIABLE never ran).
    let leak = ungated(&app, "SELECT getvariable('leak')").await;
    assert!(!format!("{leak:?}").contains("secret"), "{leak:?}");
    app.stop().await;
}

#[tokio::test]
async fn another_users_sql_and_the_settings_stay_hidden() {
    let app = TestApp::with_fixtures().await;
    // A literal someone else sent is never visible through the statement catalog.
    let (status, _) = app
        .query("SELECT * FROM orders WHERE product = 'secret-literal-7'")
        .await;
    assert_eq!(status, StatusCode::OK);
    for sql in [
        "SELECT statement FROM pg_prepared_statements",
        "SELECT * FROM main.pg_prepared_statements",
        "SELECT name, setting FROM pg_settings",
        "SELECT json_serialize_plan('SELECT current_setting(''allowed_directories'')', optimize := true)",
    ] {
        let (status, body) = app.query(sql).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("not_read_only")),
            "{sql}: {body}"
        );
        assert!(!body.to_string().contains("secret-literal-7"));
        assert!(
            ungated(&app, sql).await.is_err(),
            "the engine alone ran {sql}"
        );
    }
    // What analysts use keeps working.
    for sql in [
        "SELECT table_name FROM information_schema.tables ORDER BY 1",
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'orders'",
        "SHOW TABLES",
        "DESCRIBE orders",
        "SUMMARIZE orders",
        "EXPLAIN SELECT * FROM orders",
    ] {
        let (status, body) = app.query(sql).await;
        assert_eq!(status, StatusCode::OK, "{sql}: {body}");
    }
    app.stop().await;
}

/// Whitespace and comments DuckDB reads in its own way: nested block comments, `--` ending
/// at `\r`, form feeds and vertical tabs, and a Unicode line separator, which is no space
/// to DuckDB.
fn trivia(rng: &mut rand::rngs::StdRng) -> String {
    const PIECES: &[&str] = &[
        " ",
        "\t",
        "\n",
        "\r",
        "\x0b",
        "\x0c",
        "/* c */",
        "/* /* nested */ still comment */",
        "/* /* */ SELECT 1 --*/",
        "-- line\n",
        "--x\r",
        "/**/",
        "/* '--' */",
        "\u{2028}",
    ];
    let n = rng.random_range(1..4);
    (0..n)
        .map(|_| PIECES[rng.random_range(0..PIECES.len())])
        .collect()
}

#[tokio::test]
async fn the_gate_and_duckdb_agree_on_what_a_statement_is() {
    let app = TestApp::with_fixtures().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let target = app.dir.path().join("written-by-explain.csv");
    let forbidden = [
        format!("COPY (SELECT 1) TO '{}'", target.display()),
        "CHECKPOINT".to_owned(),
        "SELECT * FROM orders".to_owned(),
    ];
    let mut accepted = 0;
    for round in 0..400 {
        let inner = &forbidden[round % forbidden.len()];
        let sql = match round % 4 {
            0 => format!(
                "EXPLAIN{}ANALYZE{}{inner}",
                trivia(&mut rng),
                trivia(&mut rng)
            ),
            1 => format!(
                "{}EXPLAIN{}SELECT 1{}ANALYZE {inner}",
                trivia(&mut rng),
                trivia(&mut rng),
                trivia(&mut rng)
            ),
            2 => format!("{}{inner}{}", trivia(&mut rng), trivia(&mut rng)),
            _ => format!(
                "EXPLAIN{}SELECT region FROM orders{}",
                trivia(&mut rng),
                trivia(&mut rng)
            ),
        };
        if let Ok(run) = app.gate_verdict(&sql).await {
            accepted += 1;
            // What the gate accepted, DuckDB's own planner accepts as a read-only query,
            // and so does what the gate will run.
            // (A bind error, e.g. `orders\u{2028}` naming no table, is no disagreement.)
            for text in [&sql, &run.to_string()] {
                if let Err(e) = engine_prepares(&app, text).await {
                    assert!(
                        !e.contains("engine guard"),
                        "the gate accepted {sql:?} (running {run:?}) but DuckDB refuses {text:?}: {e}"
                    );
                }
            }
        }
    }
    assert!(accepted > 50, "only {accepted} variants were valid queries");
    assert!(!target.exists(), "an EXPLAIN ANALYZE ran its statement");
    app.stop().await;
}

#[tokio::test]
async fn abandoned_exports_free_their_workers_and_exports_never_take_them_all() {
    let app = TestApp::with_config(|c| {
        c.api.query_workers = 2;
        c.api.query_timeout_seconds = 60;
    })
    .await;
    let endless = json!({"sql": "SELECT count(*) FROM range(10000000000000)", "format": "csv"});
    // The client gives up after half a second, before any row exists.
    let gave_up = app
        .client
        .post(app.url("/api/query/export"))
        .json(&endless)
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(gave_up.is_err(), "the export answered: {gave_up:?}");
    // While one runs, a second is refused rather than taking the last worker.
    let first = {
        let (client, url, body) = (
            app.client.clone(),
            app.url("/api/query/export"),
            endless.clone(),
        );
        tokio::spawn(async move {
            client
                .post(url)
                .json(&body)
                .timeout(Duration::from_millis(1500))
                .send()
                .await
        })
    };
    let busy = eventually(Duration::from_secs(5), || async {
        let r = app
            .client
            .post(app.url("/api/query/export"))
            .json(&json!({"sql": "SELECT 1", "format": "csv"}))
            .send()
            .await
            .unwrap();
        (r.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;
    assert!(busy.is_some(), "a second export was let in");
    let (status, _) = app.query("SELECT 1").await;
    assert_eq!(status, StatusCode::OK, "queries keep a worker");
    assert!(first.await.unwrap().is_err());
    // Both abandoned jobs are cancelled: the export slot comes back and exports work.
    let free = eventually(Duration::from_secs(10), || async {
        (app.state.exports.available_permits() == 1).then_some(())
    })
    .await;
    assert!(free.is_some(), "an abandoned export still holds its worker");
    let r = app
        .client
        .post(app.url("/api/query/export"))
        .json(&json!({"sql": "SELECT 1 AS one", "format": "csv"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "one\r\n1\r\n");
    app.stop().await;
}

#[tokio::test]
async fn an_export_that_yields_no_row_is_held_to_the_query_timeout() {
    let app = TestApp::with_config(|c| c.api.query_timeout_seconds = 1).await;
    let r = app
        .client
        .post(app.url("/api/query/export"))
        .json(&json!({"sql": "SELECT count(*) FROM range(10000000000000)"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "query_timeout");
    app.stop().await;
}

#[tokio::test]
async fn csv_exports_defuse_spreadsheet_formulas() {
    let app = TestApp::new().await;
    let sql = "SELECT '=HYPERLINK(''http://evil'')' AS a, '+1' AS b, -3 AS n, 'plain' AS c";
    let export = |escape: Option<bool>| {
        let mut body = json!({"sql": sql, "format": "csv"});
        if let Some(e) = escape {
            body["escape_formulas"] = json!(e);
        }
        let (client, url) = (app.client.clone(), app.url("/api/query/export"));
        async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.text().await.unwrap()
        }
    };
    assert_eq!(
        export(None).await,
        "a,b,n,c\r\n'=HYPERLINK('http://evil'),'+1,-3,plain\r\n"
    );
    assert_eq!(
        export(Some(false)).await,
        "a,b,n,c\r\n=HYPERLINK('http://evil'),+1,-3,plain\r\n"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_cookie_websocket_must_come_from_the_own_origin() {
    let app = auth_app().await;
    app.add_user("ed@example.com", Role::Admin).await;
    let mut b = app.browser();
    assert_eq!(b.login("ed@example.com", PASSWORD).await.0, StatusCode::OK);
    let cookie = b.cookie().unwrap();
    let host = app.base.trim_start_matches("http://").to_owned();
    for origin in ["http://evil.example", "null", "http://127.0.0.1:1"] {
        let line = ws_status_with(
            &app.base,
            "/ws",
            &format!("Cookie: {cookie}\r\nOrigin: {origin}\r\n"),
        )
        .await;
        assert!(line.contains("403"), "{origin}: {line}");
    }
    let line = ws_status_with(
        &app.base,
        "/ws",
        &format!("Cookie: {cookie}\r\nOrigin: http://{host}\r\n"),
    )
    .await;
    assert!(line.contains("101"), "{line}");
    app.stop().await;
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = auth_app().await;
    for path in ["/login", "/api/status", "/static/kura.css", "/nope"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
    }
    let r = app.client.get(app.url("/login")).send().await.unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    // No page carries an inline script or handler for the policy to block.
    for template in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/templates")).unwrap() {
        let path = template.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("<script>"), "{}", path.display());
        for handler in [
            "onclick=",
            "onsubmit=",
            "onload=",
            "onchange=",
            "oninput=",
            "style=",
        ] {
            assert!(!text.contains(handler), "{} has {handler}", path.display());
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_cross_site_form_cannot_sign_anyone_out() {
    let app = auth_app().await;
    app.add_user("ed@example.com", Role::Editor).await;
    let mut b = app.browser();
    b.login("ed@example.com", PASSWORD).await;
    b.extra = vec![("origin", "http://evil.example".to_owned())];
    let (status, body) = b.post("/api/auth/logout", json!({})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("csrf_failed"))
    );
    b.extra.clear();
    assert_eq!(
        b.get("/api/auth/me").await.0,
        StatusCode::OK,
        "still signed in"
    );
    assert_eq!(
        b.post("/api/auth/logout", json!({})).await.0,
        StatusCode::OK
    );
    app.stop().await;
}

/// Turns two-factor sign-in on for the signed-in `b` with the code of time `t`; returns
/// the TOTP secret.
async fn enrol_two_factor(b: &mut crate::accounts::Browser, t: u64) -> Vec<u8> {
    let (_, setup) = b
        .post("/api/auth/2fa/setup", json!({"password": PASSWORD}))
        .await;
    let secret = totp::decode_base32(setup["secret"].as_str().unwrap()).unwrap();
    let (status, body) = b
        .post(
            "/api/auth/2fa/verify-setup",
            json!({"code": totp::code_at(&secret, t).unwrap()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    secret
}

#[tokio::test]
async fn parallel_wrong_codes_get_five_tries_and_count_toward_the_lockout() {
    let app = TestApp::with_config(|c| {
        c.auth.enabled = true;
        c.auth.rate_limit_per_minute = 100_000;
        c.auth.rate_limit_burst = 100_000;
        c.auth.lockout_attempts = 8;
    })
    .await;
    app.add_user("ada@example.com", Role::Editor).await;
    let mut b = app.browser();
    b.login("ada@example.com", PASSWORD).await;
    enrol_two_factor(&mut b, now()).await;
    b.post("/api/auth/logout", json!({})).await;
    b.login("ada@example.com", PASSWORD).await;
    let cookie = b.cookie().unwrap();
    let guesses = (0..20).map(|i| {
        let (client, url, cookie) = (
            app.client.clone(),
            app.url("/api/auth/2fa/verify"),
            cookie.clone(),
        );
        async move {
            let r = client
                .post(url)
                .header("cookie", cookie)
                .json(&json!({"code": format!("{:06}", 100_000 + i)}))
                .send()
                .await
                .unwrap();
            let body: Value = r.json().await.unwrap();
            body["error"].as_str().unwrap_or("").to_owned()
        }
    });
    let answers = futures_util::future::join_all(guesses).await;
    let evaluated = answers
        .iter()
        .filter(|a| *a == "invalid_code" || *a == "account_locked")
        .count();
    assert!(
        evaluated <= 5,
        "{evaluated} codes were evaluated: {answers:?}"
    );
    // Those five wrong codes count as failed sign-ins: three more wrong passwords lock.
    let mut other = app.browser();
    let mut last = StatusCode::OK;
    for _ in 0..3 {
        last = other.login("ada@example.com", "wrong-password-1").await.0;
    }
    assert_eq!(last, StatusCode::LOCKED);
    app.stop().await;
}

#[tokio::test]
async fn turning_two_factor_off_needs_a_current_code() {
    let app = auth_app().await;
    app.add_user("ada@example.com", Role::Editor).await;
    let mut b = app.browser();
    b.login("ada@example.com", PASSWORD).await;
    let t = now();
    let secret = enrol_two_factor(&mut b, t).await;
    let (status, _) = b
        .post("/api/auth/2fa/disable", json!({"password": PASSWORD}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = b
        .post(
            "/api/auth/2fa/disable",
            json!({"password": PASSWORD, "code": "000000"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_code"))
    );
    let (status, body) = b
        .post(
            "/api/auth/2fa/disable",
            json!({"password": PASSWORD, "code": totp::code_at(&secret, t + 30).unwrap()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn the_state_folder_is_private_and_sessions_are_stored_hashed() {
    use std::os::unix::fs::PermissionsExt;
    let app = auth_app().await;
    app.add_user("ed@example.com", Role::Editor).await;
    let mut b = app.browser();
    b.login("ed@example.com", PASSWORD).await;
    let state = app.dir.path().join(".kura");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("kura.db")), 0o600);
    let cookie = b.cookie().unwrap();
    let value = cookie.split_once('=').unwrap().1.to_owned();
    let ids: Vec<String> = app
        .state
        .meta
        .read(|c| {
            c.prepare("SELECT id FROM sessions")?
                .query_map([], |r| r.get(0))?
                .collect()
        })
        .await
        .unwrap();
    assert!(!ids.is_empty());
    assert!(
        ids.iter().all(|id| *id != value && !id.contains(&value)),
        "{ids:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn with_auth_off_only_this_machine_can_drive_the_api() {
    let app = TestApp::new().await;
    let plain = reqwest::Client::new();
    // DNS rebinding: a page served as rebind.example reaches 127.0.0.1 with its own Host.
    let r = plain
        .get(app.url("/api/status"))
        .header("host", "rebind.example:8800")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A page on another local port posting a plain multipart form.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"a\n1\n".to_vec()).file_name("x.csv"),
    );
    let r = plain
        .post(app.url("/api/sources/uploads/upload-csv"))
        .header("origin", "http://127.0.0.1:9999")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // A write with no custom header (what any form can send) is refused too.
    let r = plain
        .post(app.url("/api/query"))
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!uploads(&app).join("x.csv").exists());
    // Scripts on this machine: a GET as it is, writes with X-Requested-With.
    assert_eq!(
        plain
            .get(app.url("/api/status"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(app.query("SELECT 1").await.0, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn deactivation_revokes_api_keys_for_good() {
    let app = auth_app().await;
    app.add_user("boss@example.com", Role::Admin).await;
    let ed = app.add_user("ed@example.com", Role::Editor).await;
    let key = app.key_for(ed).await;
    let mut script = app.browser();
    script.bearer = Some(key);
    assert_eq!(script.get("/api/status").await.0, StatusCode::OK);
    let mut admin = app.browser();
    admin.login("boss@example.com", PASSWORD).await;
    let (status, _) = admin
        .post(&format!("/api/admin/users/{ed}/deactivate"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(script.get("/api/status").await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = admin
        .post(&format!("/api/admin/users/{ed}/reactivate"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        script.get("/api/status").await.0,
        StatusCode::UNAUTHORIZED,
        "the key came back"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_spreadsheet_spanning_the_whole_sheet_is_refused_without_hurting_the_server() {
    let app = TestApp::new().await;
    let book = crate::xlsx::sparse_workbook(&[("A1", "id"), ("XFD1048576", "x")]);
    drop_file(&uploads(&app), "huge.xlsx", &book);
    let files = settled_files(&app, "uploads").await;
    let file = files
        .iter()
        .find(|f| f["name"] == "huge.xlsx")
        .unwrap_or_else(|| panic!("not listed: {files:?}"));
    assert_eq!(file["status"], "failed", "{file}");
    let error = file["error"].as_str().unwrap();
    assert!(
        error.contains("16384 columns") && error.contains("cells"),
        "{error}"
    );
    assert_eq!(app.get_json("/api/status").await.0, StatusCode::OK);
    // A sane sparse sheet still loads.
    let book = crate::xlsx::sparse_workbook(&[("B2", "name"), ("B3", "ada"), ("C3", "x")]);
    drop_file(&uploads(&app), "small.xlsx", &book);
    crate::ingest::wait_for_value(&app, "SELECT count(*) FROM raw_uploads.small", json!(1)).await;
    app.stop().await;
}

#[tokio::test]
async fn small_refusals_say_what_is_wrong() {
    let app = TestApp::with_fixtures().await;
    // A 300-character upload name.
    let r = app
        .upload(&format!("{}.csv", "n".repeat(300)), b"a\n1\n".to_vec())
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_file_name", "{body}");
    // SQL nested deeper than the check can follow.
    let deep = format!("SELECT {}1{}", "abs(".repeat(80), ")".repeat(80));
    let (status, body) = app.query(&deep).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("nested too deeply"),
        "{body}"
    );
    // The PIVOT statement with its IN list is a plain query.
    let (status, body) = app
        .query("PIVOT orders ON region IN ('north', 'south') USING sum(amount) GROUP BY product")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}
