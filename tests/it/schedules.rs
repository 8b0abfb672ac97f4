//! Schedules on a manual clock: ticks fire jobs, history is kept, retries wait on the
//! clock, a broken edit of the file keeps the schedules in force.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kura::schedules::clock::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestApp, eventually};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn app_with(
    schedules: &'static str,
    files: &'static [(&'static str, &'static str)],
) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(at("2026-01-05T10:14:00Z")));
    let app = TestApp::with_clock(clock.clone(), |c| {
        std::fs::write(c.root.join("schedules.yml"), schedules).unwrap();
        for (name, text) in files {
            std::fs::write(c.root.join("data/uploads").join(name), text).unwrap();
        }
    })
    .await;
    (app, clock)
}

async fn history(app: &TestApp, name: &str) -> Vec<Value> {
    let (_, body) = app
        .get_json(&format!("/api/schedules/{name}/history"))
        .await;
    body["runs"].as_array().cloned().unwrap_or_default()
}

/// Waits until the schedule's latest job has ended; returns it.
async fn finished_job(app: &TestApp, name: &str, count: usize) -> Value {
    eventually(Duration::from_secs(20), || async {
        let runs = history(app, name).await;
        (runs.len() >= count && runs[0]["status"] != "running").then(|| runs[0].clone())
    })
    .await
    .unwrap_or_else(|| panic!("no finished job of {name}"))
}

#[tokio::test]
async fn a_tick_runs_the_job_and_a_broken_file_keeps_the_schedules() {
    let (app, clock) = app_with(
        "schedules:\n  - name: quarter\n    cron: every_15m\n    sources: [uploads]\n",
        &[("a.csv", "x,y\n1,2\n")],
    )
    .await;
    let (status, list) = app.get_json("/api/schedules").await;
    assert_eq!(status, StatusCode::OK);
    let (_, file) = app.get_json("/api/schedules/file").await;
    assert_eq!(file["valid"], true, "{file}");
    let s = &list[0];
    assert_eq!(
        (s["name"].as_str(), s["expression"].as_str()),
        (Some("quarter"), Some("*/15 * * * *"))
    );
    assert_eq!(s["next_run"], "2026-01-05T10:15:00.000Z");
    assert!(
        history(&app, "quarter").await.is_empty(),
        "nothing runs before its time"
    );

    clock.set(at("2026-01-05T10:15:00Z"));
    let job = finished_job(&app, "quarter", 1).await;
    assert_eq!(
        (job["trigger"].as_str(), job["status"].as_str()),
        (Some("cron"), Some("success")),
        "{job}"
    );
    assert_eq!(job["started_at"], "2026-01-05T10:15:00.000Z");
    let (_, one) = app.get_json("/api/schedules/quarter").await;
    assert_eq!(one["next_run"], "2026-01-05T10:30:00.000Z");
    assert_eq!(one["last_status"], "success");

    // Run now, from the API.
    let (status, started) = app
        .post_json("/api/schedules/quarter/trigger", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let job = finished_job(&app, "quarter", 2).await;
    assert_eq!(job["trigger"], "api");
    assert_eq!(
        app.post_json("/api/schedules/nope/trigger", json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // A broken save: reported, and the schedule stays.
    std::fs::write(
        app.dir.path().join("schedules.yml"),
        "schedules:\n  - name: quarter\n    cron: sometimes\n    sources: [uploads]\n",
    )
    .unwrap();
    let (_, reload) = app.post_json("/api/schedules/reload", json!({})).await;
    assert_eq!(reload["valid"], false);
    assert!(
        reload["errors"][0]
            .as_str()
            .unwrap()
            .contains("not a cron expression"),
        "{reload}"
    );
    let (_, list) = app.get_json("/api/schedules").await;
    let (_, file) = app.get_json("/api/schedules/file").await;
    assert_eq!(file["valid"], false);
    assert_eq!(list[0]["name"], "quarter");
    // The next valid save applies, without being asked (the file is watched).
    std::fs::write(
        app.dir.path().join("schedules.yml"),
        "schedules:\n  - name: hourly\n    cron: every_hour\n    sources: [uploads]\n",
    )
    .unwrap();
    let applied = eventually(Duration::from_secs(10), || async {
        let (_, list) = app.get_json("/api/schedules").await;
        let (_, file) = app.get_json("/api/schedules/file").await;
        (list[0]["name"] == "hourly" && file["valid"] == true).then_some(list)
    })
    .await;
    assert!(applied.is_some(), "the corrected file was not picked up");
    let (_, unscheduled) = app.get_json("/api/sources/unscheduled").await;
    assert_eq!(unscheduled["sources"], json!([]));

    let (_, logs) = app.get_json("/api/logs?limit=200").await;
    let text = logs.to_string();
    assert!(
        text.contains("schedule_started") && text.contains("schedule_completed"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_failing_job_is_retried_after_waiting_on_the_clock() {
    let (app, clock) = app_with(
        "schedules:\n  - name: flaky\n    cron: daily\n    sources: [uploads]\n    retries: 1\n",
        &[("broken.json", "{ this is not json")],
    )
    .await;
    let (status, started) = app
        .post_json("/api/schedules/flaky/trigger", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    // The first attempt fails, then the job waits 30 s of scheduler time: nothing ends
    // until the clock moves.
    eventually(Duration::from_secs(10), || async {
        let (_, details) = app.get_json("/api/sources/uploads/details").await;
        let failed = details["history"].as_array().is_some_and(|h| {
            h.iter().any(|r| {
                r["trigger"] == "schedule" && r["status"] != "running" && r["status"] != "success"
            })
        });
        failed.then_some(())
    })
    .await
    .expect("the first attempt fails");
    let runs = history(&app, "flaky").await;
    assert_eq!(
        runs[0]["status"], "running",
        "waiting for its retry: {runs:?}"
    );
    // Step the clock on (the wait starts whenever the first attempt has failed).
    let mut now = at("2026-01-05T10:14:00Z");
    for _ in 0..50 {
        if history(&app, "flaky").await[0]["status"] != "running" {
            break;
        }
        now += chrono::Duration::seconds(30);
        clock.set(now);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let job = finished_job(&app, "flaky", 1).await;
    assert_eq!(
        (job["status"].as_str(), job["attempts"].as_i64()),
        (Some("failed"), Some(2)),
        "{job}"
    );
    assert!(job["error"].as_str().unwrap().contains("uploads"), "{job}");
    let (_, logs) = app.get_json("/api/logs?limit=200").await;
    assert!(logs.to_string().contains("schedule_failed"));
    app.stop().await;
}

#[tokio::test]
async fn webhooks_hear_of_jobs_with_retries_on_server_errors() {
    use std::sync::Mutex;
    // A local receiver: the first request gets 503, later ones 200; 4xx path: /gone.
    let seen: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let router = {
        let seen = seen.clone();
        axum::Router::new().fallback(move |uri: axum::http::Uri, body: String| {
            let seen = seen.clone();
            async move {
                let mut seen = seen.lock().unwrap();
                seen.push((
                    uri.path().to_owned(),
                    serde_json::from_str(&body).unwrap_or(Value::Null),
                ));
                if uri.path() == "/gone" {
                    axum::http::StatusCode::GONE
                } else if seen.len() == 1 {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::OK
                }
            }
        })
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let file = format!(
        "schedules:\n  - name: nightly\n    cron: daily\n    sources: [uploads]\n    notify_on: [success, failure]\n\
         notifications:\n  webhooks:\n    - {{name: ops, url: \"{hook}/generic/secret-token\"}}\n    - {{name: chat, url: \"{hook}/slack\", format: slack}}\n"
    );
    let clock = Arc::new(ManualClock::new(at("2026-01-05T10:14:00Z")));
    let app = TestApp::with_clock(clock, |c| {
        std::fs::write(c.root.join("schedules.yml"), &file).unwrap()
    })
    .await;

    let (_, config) = app.get_json("/api/notifications/config").await;
    assert_eq!(
        config["webhooks"][0]["url"].as_str().unwrap(),
        format!("{hook}/****"),
        "tokens in URLs are masked"
    );

    let (status, _) = app
        .post_json("/api/schedules/nightly/trigger", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    // The generic target answers 503 once, then gets the retry 5 s later.
    let delivered = eventually(Duration::from_secs(30), || async {
        let seen = seen.lock().unwrap().clone();
        let generic: Vec<_> = seen
            .iter()
            .filter(|(p, _)| p.starts_with("/generic"))
            .collect();
        let slack: Vec<_> = seen.iter().filter(|(p, _)| p == "/slack").collect();
        (generic.len() == 2 && slack.len() == 1).then(|| (generic[1].1.clone(), slack[0].1.clone()))
    })
    .await
    .expect("both webhooks were told, the first after a retry");
    let (generic, slack) = delivered;
    assert_eq!(generic["event"], "schedule_completed");
    assert_eq!(generic["schedule"], "nightly");
    assert_eq!(generic["sources"], json!(["uploads"]));
    for key in [
        "error",
        "duration_seconds",
        "rows_loaded",
        "timestamp",
        "dashboard_url",
    ] {
        assert!(generic.get(key).is_some(), "{key} in {generic}");
    }
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .contains("nightly completed"),
        "{slack}"
    );

    // The test button: every target, with its outcome.
    let (status, tested) = app.post_json("/api/notifications/test", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tested["results"][0]["delivered"], true, "{tested}");
    assert_eq!(tested["results"][1]["delivered"], true, "{tested}");
    app.stop().await;
}

#[tokio::test]
async fn a_scheduled_source_without_a_recent_success_is_reported_stale_once() {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = TestApp::with_clock(clock.clone(), |c| {
        std::fs::write(
            c.root.join("schedules.yml"),
            "schedules:\n  - name: weekly_refresh\n    cron: weekly\n    sources: [uploads]\n    notify_on: [stale]\nnotifications:\n  stale_threshold_hours: 24\n",
        )
        .unwrap();
    })
    .await;
    let stale_events = |logs: &Value| {
        logs.as_array().map_or(0, |l| {
            l.iter().filter(|e| e["type"] == "sync_stale").count()
        })
    };
    // Once the startup sync has succeeded, a check finds the source fresh.
    eventually(Duration::from_secs(10), || async {
        let (_, details) = app.get_json("/api/sources/uploads/details").await;
        (details["last_sync_status"] == "success").then_some(())
    })
    .await
    .expect("the startup sync succeeds");
    kura::schedules::runner::check_stale(&app.state).await;
    let (_, logs) = app.get_json("/api/logs?limit=500").await;
    assert_eq!(stale_events(&logs), 0, "{logs}");
    // A day and a bit later, with no sync since: stale, reported once.
    clock.set(Utc::now() + chrono::Duration::hours(25));
    let logs = eventually(Duration::from_secs(10), || async {
        let (_, logs) = app.get_json("/api/logs?limit=500").await;
        (stale_events(&logs) == 1).then_some(logs)
    })
    .await
    .expect("no sync_stale event");
    assert!(logs.to_string().contains("uploads is stale"), "{logs}");
    // Later checks of the same stale episode say nothing more.
    clock.set(Utc::now() + chrono::Duration::hours(26));
    kura::schedules::runner::check_stale(&app.state).await;
    kura::schedules::runner::check_stale(&app.state).await;
    let (_, logs) = app.get_json("/api/logs?limit=500").await;
    assert_eq!(stale_events(&logs), 1, "one notice per stale episode");
    app.stop().await;
}

#[tokio::test]
async fn cancelling_a_job_stops_its_load_and_rolls_the_file_back() {
    let clock = Arc::new(ManualClock::new(at("2026-01-05T10:14:00Z")));
    let app = TestApp::with_clock(clock, |c| {
        // The watcher waits 10 minutes: only the scheduled job loads here.
        c.platform.debounce_ms = 600_000;
        std::fs::write(
            c.root.join("schedules.yml"),
            "schedules:\n  - name: big_job\n    cron: daily\n    sources: [big]\n",
        )
        .unwrap();
        std::fs::create_dir_all(c.root.join("data/uploads/big")).unwrap();
        // The same columns as the big file to come (one source, one table).
        crate::cli::gen_data::write("csv", 1, &c.root.join("data/uploads/big/a.csv")).unwrap();
    })
    .await;
    crate::harness::eventually(Duration::from_secs(20), || async {
        let (_, b) = app.query("SELECT count(*) FROM raw_big.big").await;
        (b["rows"][0][0] == 1).then_some(())
    })
    .await
    .expect("the startup sync loaded a.csv");
    let staged = app.dir.path().join("big.tmp");
    crate::cli::gen_data::write("csv", 6_000_000, &staged).unwrap();
    // A hard link appears whole without a close or a rename, so the watcher leaves it to
    // its (ten-minute) stability wait.
    std::fs::hard_link(&staged, app.dir.path().join("data/uploads/big/b.csv")).unwrap();

    let (status, started) = app
        .post_json("/api/schedules/big_job/trigger", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let job_id: i64 = started["job_id"].as_str().unwrap().parse().unwrap();
    // Into the load of b.csv, then stop.
    crate::harness::eventually(Duration::from_secs(20), || async {
        let (_, w) = app.get_json("/api/watcher/status").await;
        (w["syncing"].as_array().is_some_and(|s| !s.is_empty())).then_some(())
    })
    .await
    .expect("the job's sync started");
    let inflight = app.dir.path().join(".kura/inflight");
    crate::harness::eventually(Duration::from_secs(20), || async {
        has_marker(&inflight).then_some(())
    })
    .await
    .expect("the load of b.csv began");
    let (status, answer) = app
        .post_json(&format!("/api/schedules/jobs/{job_id}/cancel"), json!({}))
        .await;
    let runs = history(&app, "big_job").await;
    assert_eq!(status, StatusCode::OK, "{answer} {runs:?}");
    let job = finished_job(&app, "big_job", 1).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    // Nothing of b.csv is in the table, and it is not marked as a bad file.
    let (_, b) = app.query("SELECT count(*) FROM raw_big.big").await;
    assert_eq!(b["rows"][0][0], 1, "{b}");
    let (_, files) = app.get_json("/api/sources/big/csv-files").await;
    assert!(!files.to_string().contains("\"failed\""), "{files}");
    assert_eq!(
        app.post_json(&format!("/api/schedules/jobs/{job_id}/cancel"), json!({}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // The next run loads it whole.
    let (status, _) = app
        .post_json("/api/schedules/big_job/trigger", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let job = finished_job(&app, "big_job", 2).await;
    assert_eq!(job["status"], "success", "{job}");
    let (_, b) = app.query("SELECT count(*) FROM raw_big.big").await;
    assert_eq!(b["rows"][0][0], 6_000_001, "{b}");
    app.stop().await;
}

#[tokio::test]
async fn a_schedule_whose_jobs_outlast_its_interval_is_warned_about() {
    let (app, _clock) = app_with(
        "schedules:\n  - name: quarter\n    cron: every_15m\n    sources: [uploads]\n",
        &[],
    )
    .await;
    let (_, list) = app.get_json("/api/schedules").await;
    assert_eq!(list[0]["warnings"], json!([]));
    // Two recent jobs of 20 minutes each.
    app.state
        .meta
        .write(|tx| {
            tx.execute_batch(
                "INSERT INTO schedule_runs (schedule, trigger, started_at, ended_at, status, duration_ms) VALUES \
                 ('quarter', 'cron', '2026-01-05T09:00:00Z', '2026-01-05T09:20:00Z', 'success', 1200000), \
                 ('quarter', 'cron', '2026-01-05T09:30:00Z', '2026-01-05T09:50:00Z', 'success', 1200000)",
            )
        })
        .await
        .unwrap();
    let (_, list) = app.get_json("/api/schedules").await;
    let warning = list[0]["warnings"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        warning.contains("1200 s on average") && warning.contains("15 min"),
        "{list}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_schedules_page_renders_for_those_who_may_see_it() {
    let (app, _clock) = app_with(
        "schedules:\n  - name: nightly\n    cron: \"0 2 * * *\"\n    sources: [uploads]\n",
        &[],
    )
    .await;
    let (_, list) = app.get_json("/api/schedules").await;
    assert_eq!(list[0]["description"], "every day at 02:00");
    let r = app
        .client
        .get(app.url("/schedules"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    // Rendered by the server: the schedule, its description, and (with the right to
    // manage schedules; auth is off) its Run now button.
    assert!(
        html.contains("data-name=\"nightly\"")
            && html.contains("every day at 02:00")
            && html.contains("data-action=\"run\"")
            && html.contains("/static/schedules.js"),
        "{html}"
    );
    // ?history= renders that schedule's (empty) history under it.
    let r = app
        .client
        .get(app.url("/schedules?history=nightly"))
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("No runs yet."));
    let js = app
        .client
        .get(app.url("/static/schedules.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    app.stop().await;
}

/// A load is under way: its in-flight marker (`.kura/inflight/`, whole, not the temp name)
/// exists.
pub(crate) fn has_marker(inflight: &std::path::Path) -> bool {
    std::fs::read_dir(inflight).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
    })
}
