//! The pages in headless Chromium, driving the real server: sign in, a file dropped into
//! the watched folder shows up live, an upload from the source page, a query with its
//! chart and CSV export, and a viewer without the controls it may not use. Each page is
//! saved as a screenshot (see `webdriver::artifacts_dir`).

use std::path::Path;
use std::time::Duration;

use kura::auth::Role;
use serde_json::json;

use crate::harness::{TestApp, eventually};
use crate::webdriver::Driver;

use crate::accounts::PASSWORD;

async fn app() -> TestApp {
    app_with(|_| {}).await
}

/// A project with accounts on (and no sign-in throttle), changed by `tweak` first.
async fn app_with(tweak: impl FnOnce(&mut kura::Config)) -> TestApp {
    TestApp::with_config(|c| {
        c.auth.enabled = true;
        c.auth.rate_limit_per_minute = 100_000;
        c.auth.rate_limit_burst = 100_000;
        tweak(c);
    })
    .await
}

fn csv(rows: usize) -> String {
    let mut out = String::from("id,region,amount,sold_on\n");
    for i in 0..rows {
        let region = ["north", "south", "east", "west"][i % 4];
        out.push_str(&format!(
            "{i},{region},{}.{:02},2026-0{}-{:02}\n",
            10 + i * 7 % 90,
            i % 100,
            1 + i % 9,
            1 + i % 28
        ));
    }
    out
}

async fn sign_in(d: &Driver, app: &TestApp, email: &str) {
    d.goto(&app.url("/login")).await;
    d.type_into("input[name=email]", email).await;
    d.type_into("input[name=password]", PASSWORD).await;
    d.click("#password-step button[type=submit]").await;
    d.wait_for(
        "the overview after signing in",
        "return location.pathname === '/' && document.querySelector('h1') !== null",
        json!([]),
    )
    .await;
}

/// Uploads a file through the source page's file input and waits until it is loaded.
async fn upload_from_page(d: &Driver, dir: &Path, name: &str, content: &str) {
    let file = dir.join(name);
    std::fs::write(&file, content).unwrap();
    d.type_into("#upload-input", file.to_str().unwrap()).await;
    d.wait_for(
        &format!("{name} to load"),
        "const r = document.querySelector(`#files tr[data-path$=\"${arguments[0]}\"]`); return r && r.dataset.status === 'loaded'",
        json!([name]),
    )
    .await;
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_loads_queries_charts_and_exports_in_the_browser() {
    let app = app().await;
    app.add_user("ana@example.com", Role::Admin).await;
    let d = Driver::start(1366, 900).await;
    sign_in(&d, &app, "ana@example.com").await;
    d.wait_for(
        "the live connection",
        "return document.getElementById('live-status').dataset.state === 'on'",
        json!([]),
    )
    .await;

    // A file dropped into the watched folder: the card and the feed change, no reload.
    d.js("window.__noReload = true", json!([])).await;
    write(
        &app.dir.path().join("data/uploads/sales/orders.csv"),
        &csv(250),
    );
    d.wait_for(
        "the sales card with 250 rows",
        "const c = document.querySelector('[data-source=sales]'); \
         return c && c.querySelector('.rows').textContent.trim() === '250' && c.classList.contains('status-synced')",
        json!([]),
    )
    .await;
    d.wait_for(
        "the activity feed to mention the load",
        "return document.getElementById('activity').textContent.includes('sales: 1 file(s), 250 rows')",
        json!([]),
    )
    .await;
    assert_eq!(
        d.js("return window.__noReload === true", json!([])).await,
        true,
        "the page reloaded instead of updating"
    );
    d.screenshot("overview").await;

    d.goto(&app.url("/sources")).await;
    d.find("#sources-table tr[data-name=sales]").await;
    d.screenshot("sources").await;

    // An upload through the source page's file input.
    let upload = tempfile::tempdir().unwrap();
    d.goto(&app.url("/sources/uploads")).await;
    upload_from_page(
        &d,
        upload.path(),
        "prices.csv",
        "sku,price\nA-1,9.50\nB-2,12.00\nC-3,3.25\n",
    )
    .await;
    assert_eq!(d.text("#source-rows").await.trim(), "3");
    // The table preview.
    d.click(".preview").await;
    d.wait_for(
        "the preview grid",
        "return document.querySelectorAll('.preview-slot .data-grid tbody tr').length === 3",
        json!([]),
    )
    .await;
    d.screenshot("source").await;
    // A live update of the page (a sync of this source) keeps the open preview open.
    d.js(
        "document.getElementById('live').dataset.before = '1'; return true",
        json!([]),
    )
    .await;
    d.click("#sync").await;
    d.wait_for(
        "the page's live update, with the preview still open",
        "return !document.getElementById('live').dataset.before && document.querySelectorAll('.preview-slot .data-grid tbody tr').length === 3",
        json!([]),
    )
    .await;

    // The Delete button of a file: the file goes from disk and its rows from the table.
    upload_from_page(
        &d,
        upload.path(),
        "gone.csv",
        "sku,price\nZ-9,1.00\nY-8,2.00\n",
    )
    .await;
    d.js("window.confirm = () => true; return true", json!([]))
        .await;
    d.click("#files tr[data-path$=\"gone.csv\"] .delete-file")
        .await;
    let mut api = app.browser();
    api.login("ana@example.com", PASSWORD).await;
    let api = &tokio::sync::Mutex::new(api);
    let emptied = eventually(Duration::from_secs(10), || async move {
        let (_, body) = api
            .lock()
            .await
            .post(
                "/api/query",
                json!({"sql": "SELECT count(*) FROM raw_uploads.gone"}),
            )
            .await;
        (body["rows"][0][0] == 0).then_some(())
    })
    .await;
    assert!(emptied.is_some(), "the deleted file's rows left the table");
    assert!(!app.dir.path().join("data/uploads/gone.csv").exists());
    assert!(
        !d.text("main").await.contains("Failed to deserialize"),
        "the page shows no raw error"
    );

    // A query: the grid pages through 10,000 rows, an error is placed, a chart, an export.
    d.goto(&app.url("/query")).await;
    let set_sql = "const t = document.getElementById('sql'); t.value = arguments[0]; t.dispatchEvent(new Event('input'));";
    d.js(set_sql, json!(["SELECT range AS n FROM range(10000)"]))
        .await;
    d.click("#run").await;
    d.wait_for(
        "the 10,000-row result",
        "return document.getElementById('result-info').textContent.startsWith('10,000 rows')",
        json!([]),
    )
    .await;
    let shown = d
        .js(
            "return document.querySelectorAll('#result tbody tr').length",
            json!([]),
        )
        .await;
    assert_eq!(shown, 100, "one page of the grid, not every row");
    d.click(".pager button[aria-label='Next page']").await;
    assert_eq!(
        d.text("#result tbody tr td").await,
        "100",
        "page 2 starts at row 101"
    );
    // Doubles read as DuckDB's shell shows them; the exact value stays in the title.
    d.js(
        set_sql,
        json!(["SELECT 19032.549999999996::DOUBLE AS total"]),
    )
    .await;
    d.click("#run").await;
    d.wait_for(
        "the one-row result",
        "return document.getElementById('result-info').textContent.startsWith('1 row')",
        json!([]),
    )
    .await;
    assert_eq!(d.text("#result tbody tr td").await, "19032.55");
    // A long query in the recent list does not make the page scroll sideways at 1400 px.
    let wide = Driver::start(1400, 900).await;
    sign_in(&wide, &app, "ana@example.com").await;
    wide.goto(&app.url("/query")).await;
    let long_sql = format!(
        "SELECT {}",
        (0..80)
            .map(|i| format!("{i} AS column_{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    wide.js(set_sql, json!([long_sql])).await;
    wide.click("#run").await;
    wide.wait_for(
        "the long query in the recent list",
        "return document.querySelectorAll('#recent li').length >= 3",
        json!([]),
    )
    .await;
    let overflow = wide
        .js(
            "return document.documentElement.scrollWidth > window.innerWidth + 1",
            json!([]),
        )
        .await;
    assert_eq!(
        overflow, false,
        "the query page scrolls sideways at 1400 px"
    );

    d.js(set_sql, json!(["SELECT region, FROM raw_sales.nosuch"]))
        .await;
    d.click("#run").await;
    d.wait_for(
        "the error with its place marked",
        "return !document.getElementById('query-error').hidden && document.querySelector('mark.t-error') !== null",
        json!([]),
    )
    .await;
    assert!(d.text("#query-error").await.contains("invalid_sql"));
    assert_eq!(d.text("mark.t-error").await, "raw_sales");

    d.js(
        set_sql,
        json!(["SELECT region, sum(amount) AS total\nFROM raw_sales.sales\nGROUP BY region\nORDER BY region"]),
    )
    .await;
    // Ctrl+Enter runs it.
    d.js(
        "document.getElementById('sql').dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', ctrlKey: true, bubbles: true}))",
        json!([]),
    )
    .await;
    d.wait_for(
        "the grouped result",
        "return document.getElementById('result-info').textContent.startsWith('4 rows')",
        json!([]),
    )
    .await;
    d.click("#tab-chart").await;
    let bars = d
        .wait_for(
            "the bar chart",
            "return document.querySelectorAll('#chart svg rect.bar-rect').length",
            json!([]),
        )
        .await;
    assert_eq!(bars, 4);
    d.wait_for(
        "the recent queries",
        "return document.getElementById('recent').textContent.includes('GROUP BY region')",
        json!([]),
    )
    .await;
    d.screenshot("query").await;

    d.click(".export[data-format=csv]").await;
    let file = d.downloaded(".csv").await;
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "region,total");
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines[1].starts_with("east,"), "{text}");

    for (path, name) in [
        ("/logs", "logs"),
        ("/health", "health"),
        ("/schedules", "schedules"),
        ("/settings/account", "account"),
        ("/settings/users", "users"),
    ] {
        d.goto(&app.url(path)).await;
        d.find("h1").await;
        // Pages that fill themselves from the API have done so when "Loading…" is gone.
        d.wait_for(
            "the page to finish loading",
            "return !document.body.innerText.includes('Loading…')",
            json!([]),
        )
        .await;
        match name {
            "logs" => assert!(d.text("#log-rows").await.contains("prices.csv")),
            "users" => assert!(d.text("#users").await.contains("ana@example.com")),
            "schedules" => assert!(!d.text("#schedules").await.is_empty()),
            _ => {}
        }
        d.screenshot(name).await;
    }

    // The same overview on a phone.
    let phone = Driver::start(390, 844).await;
    sign_in(&phone, &app, "ana@example.com").await;
    phone.screenshot("overview-phone").await;
    let overflow = phone
        .js(
            "return document.documentElement.scrollWidth > window.innerWidth + 1",
            json!([]),
        )
        .await;
    assert_eq!(overflow, false, "the overview scrolls sideways on a phone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_sync_or_upload_controls_and_is_refused_anyway() {
    let app = app().await;
    app.add_user("vic@example.com", Role::Viewer).await;
    write(&app.dir.path().join("data/uploads/a.csv"), &csv(5));
    let d = Driver::start(1366, 900).await;
    sign_in(&d, &app, "vic@example.com").await;
    d.goto(&app.url("/sources/uploads")).await;
    d.find("#files").await;
    let controls = d
        .js(
            "return ['#sync', '#full-refresh', '#upload-input', '#dropzone', '.delete-file', '#sync-all'] \
             .filter((s) => document.querySelector(s) !== null)",
            json!([]),
        )
        .await;
    assert_eq!(
        controls,
        json!([]),
        "a viewer is shown controls it may not use"
    );
    d.screenshot("source-viewer").await;

    // Called anyway, from the page, with the viewer's session and CSRF token: refused.
    let answers = d
        .js_async(
            "const done = arguments[arguments.length - 1]; \
             const h = {'X-CSRF-Token': kura.csrf(), 'Content-Type': 'application/json'}; \
             const form = new FormData(); form.append('file', new Blob(['x,y\\n1,2\\n']), 'b.csv'); \
             Promise.all([ \
               fetch('/api/sources/uploads/sync', {method: 'POST', headers: h, body: '{}'}), \
               fetch('/api/sources/uploads/upload-csv', {method: 'POST', headers: {'X-CSRF-Token': kura.csrf()}, body: form}), \
             ]).then((rs) => Promise.all(rs.map(async (r) => [r.status, (await r.json()).error]))).then(done);",
            json!([]),
        )
        .await;
    assert_eq!(
        answers,
        json!([[403, "permission_denied"], [403, "permission_denied"]])
    );
    assert!(!app.dir.path().join("data/uploads/b.csv").exists());
    // The navigation leaves out what a viewer cannot open.
    d.goto(&app.url("/")).await;
    let nav = d.text("nav[aria-label=Main]").await;
    assert!(nav.contains("Overview") && nav.contains("Sources"), "{nav}");
    assert!(!nav.contains("Users") && !nav.contains("Secrets"), "{nav}");
}

/// The settings and schedules pages, driven as an admin would: every list is the
/// server's, and every action shows its outcome in the list without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_users_secrets_keys_and_schedules_from_the_pages() {
    let app = app_with(|c| {
        std::fs::write(
            c.root.join("schedules.yml"),
            "schedules:\n  - name: nightly\n    cron: \"0 3 * * *\"\n    sources: [uploads]\n",
        )
        .unwrap();
    })
    .await;
    write(&app.dir.path().join("data/uploads/a.csv"), &csv(5));
    app.add_user("ana@example.com", Role::Admin).await;
    let d = Driver::start(1366, 900).await;
    sign_in(&d, &app, "ana@example.com").await;
    let row_text = "const r = [...document.querySelectorAll(arguments[0])].find((r) => r.textContent.includes(arguments[1])); \
                    return r ? r.textContent : null";

    // Users: invite, then change the role from the list.
    d.goto(&app.url("/settings/users")).await;
    d.js(
        "window.__noReload = true; window.confirm = () => true; return true",
        json!([]),
    )
    .await;
    d.type_into("#invite input[name=email]", "ben@example.com")
        .await;
    d.click("#invite button[type=submit]").await;
    d.wait_for(
        "the invitation link and ben's row",
        "return !document.getElementById('invite-link').hidden && document.getElementById('users').textContent.includes('ben@example.com')",
        json!([]),
    )
    .await;
    let ben = d
        .js(row_text, json!(["#users tr", "ben@example.com"]))
        .await;
    assert!(ben.as_str().unwrap().contains("invited"), "{ben}");
    d.js(
        "const s = [...document.querySelectorAll('#users tr')].find((r) => r.textContent.includes('ben@example.com')).querySelector('select'); \
         s.value = 'editor'; s.dispatchEvent(new Event('change', {bubbles: true})); return true",
        json!([]),
    )
    .await;
    d.wait_for(
        "ben to be an editor in the list",
        "const r = [...document.querySelectorAll('#users tr')].find((r) => r.textContent.includes('ben@example.com')); \
         return r && r.children[2].textContent.trim() === 'editor'",
        json!([]),
    )
    .await;
    assert_eq!(
        d.js("return window.__noReload", json!([])).await,
        true,
        "the page reloaded"
    );
    d.screenshot("users-managed").await;

    // Secrets: add one, see it masked, delete it.
    d.goto(&app.url("/settings/secrets")).await;
    d.js("window.confirm = () => true; return true", json!([]))
        .await;
    d.type_into("#secret input[name=key]", "SHOP_TOKEN").await;
    d.type_into("#secret input[name=value]", "s3cret-value-123")
        .await;
    d.click("#secret button[type=submit]").await;
    d.wait_for(
        "the new secret in the list",
        "return document.getElementById('secrets').textContent.includes('SHOP_TOKEN')",
        json!([]),
    )
    .await;
    assert!(!d.text("#secrets").await.contains("s3cret-value-123"));
    d.screenshot("secrets").await;
    d.click("#secrets button[data-action=delete]").await;
    d.wait_for(
        "the secret to go",
        "return !document.getElementById('secrets').textContent.includes('SHOP_TOKEN')",
        json!([]),
    )
    .await;

    // API keys: create one (shown once), see it listed, revoke it.
    d.goto(&app.url("/settings/account")).await;
    d.js("window.confirm = () => true; return true", json!([]))
        .await;
    d.type_into("#key-create input[name=name]", "nightly report")
        .await;
    d.click("#key-create button[type=submit]").await;
    d.wait_for(
        "the new key, shown once and listed",
        "return document.getElementById('key-value').textContent.startsWith('kura_ak_') && \
         document.getElementById('keys').textContent.includes('nightly report')",
        json!([]),
    )
    .await;
    assert!(d.text("#sessions").await.contains("this session"));
    d.click("#keys button[data-action=revoke]").await;
    d.wait_for(
        "the key to show as revoked",
        "return document.getElementById('keys').textContent.includes('revoked')",
        json!([]),
    )
    .await;
    d.screenshot("account-keys").await;

    // Schedules: the history opens under the schedule; Run now starts a job that shows up
    // in it.
    d.goto(&app.url("/schedules")).await;
    let nightly = d.js(row_text, json!(["#schedules tr", "nightly"])).await;
    assert!(nightly.as_str().unwrap().contains("never ran"), "{nightly}");
    d.click("#schedules button[data-action=history]").await;
    d.wait_for(
        "an empty history",
        "return document.querySelector('#schedules tr.history')?.textContent.includes('No runs yet')",
        json!([]),
    )
    .await;
    d.click("#schedules button[data-action=run]").await;
    d.wait_for(
        "the job in the history and the last run",
        "const h = document.querySelector('#schedules tr.history'); \
         const row = document.querySelector('#schedules tr[data-name=nightly]'); \
         return h && h.textContent.includes('success') && row.textContent.includes('success')",
        json!([]),
    )
    .await;
    d.screenshot("schedules-history").await;
    d.click("#schedules button[data-action=history]").await;
    d.wait_for(
        "the history to close",
        "return document.querySelector('#schedules tr.history') === null",
        json!([]),
    )
    .await;
}

/// The models pages, as an editor uses them: the list with status and tests, a model's
/// page with its SQL and lineage graph (a click on a node opens it), and Run, whose
/// outcome shows without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_editor_sees_the_lineage_and_runs_a_model_from_the_models_pages() {
    let app = app_with(|c| {
        // Beside the example models of `kura init`, before the server starts.
        std::fs::write(
            c.root.join("models/marts/busy_months.sql"),
            "{{ config(materialized='table') }}\nselect month, days from {{ ref('calendar_months') }} where weekend_days > 8",
        )
        .unwrap();
    })
    .await;
    app.add_user("eda@example.com", Role::Editor).await;
    let d = Driver::start(1366, 900).await;
    sign_in(&d, &app, "eda@example.com").await;
    // The project compiles beside the server's start.
    let listed = eventually(Duration::from_secs(20), || async {
        d.goto(&app.url("/models")).await;
        let t = d.text("#models").await;
        t.contains("busy_months").then_some(t)
    })
    .await
    .expect("the models are listed");
    for name in ["stg_calendar", "calendar_months", "busy_months"] {
        assert!(listed.contains(name), "{listed}");
    }
    assert!(listed.contains("never built"), "{listed}");
    // The filter narrows the list in the page.
    d.type_into("#model-filter", "busy").await;
    d.wait_for(
        "the filter to leave one row",
        "return [...document.querySelectorAll('#models tr[data-name]')].filter((r) => !r.hidden).length === 1",
        json!([]),
    )
    .await;
    d.screenshot("models-list").await;

    // A model's page: the graph shows its neighbourhood; Run builds it and what is below.
    d.goto(&app.url("/models/calendar_months")).await;
    d.wait_for(
        "the lineage graph",
        "const g = document.querySelector('#graph svg'); return g && g.querySelectorAll('a.node').length === 3",
        json!([]),
    )
    .await;
    assert!(
        d.text("#sql-compiled")
            .await
            .contains("\"main\".\"stg_calendar\"")
    );
    d.js("window.__noReload = true; return true", json!([]))
        .await;
    d.click("#run-downstream").await;
    d.wait_for(
        "the model to show as built",
        "return document.getElementById('model-status').textContent.includes('Succeeded')",
        json!([]),
    )
    .await;
    assert_eq!(
        d.js("return window.__noReload", json!([])).await,
        true,
        "the page reloaded"
    );
    // Built, DuckDB confirms the column lineage: each column links where it comes from.
    d.wait_for(
        "the columns' upstream columns, verified",
        "const t = document.getElementById('columns').textContent; \
         return t.includes('stg_calendar.day') && t.includes('stg_calendar.is_weekend') \
         && !document.getElementById('lineage-warning') && !document.querySelector('td.upstream.unverified')",
        json!([]),
    )
    .await;
    d.screenshot("model-page").await;
    d.js(
        "document.getElementById('columns').scrollIntoView({block: 'center'}); return true",
        json!([]),
    )
    .await;
    d.screenshot("model-columns").await;
    // A click on a node of the graph opens that node's page.
    d.js(
        "[...document.querySelectorAll('#graph a.node')].find((a) => a.textContent.includes('busy_months')).dispatchEvent(new MouseEvent('click', {bubbles: true})); return true",
        json!([]),
    )
    .await;
    d.wait_for(
        "busy_months's page",
        "return location.pathname === '/models/busy_months' && document.querySelector('h1').textContent === 'busy_months'",
        json!([]),
    )
    .await;
    // Run downstream built it too.
    d.wait_for(
        "busy_months built by the run of calendar_months and downstream",
        "return document.getElementById('model-status').textContent.includes('Succeeded')",
        json!([]),
    )
    .await;
    app.stop().await;
}
