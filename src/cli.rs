//! Operator commands that also work without a browser: `kura sync`.
//!
//! With a server running on the project (its serve lock is held), the command asks that
//! server over HTTP — the warehouse has a single writer, and it is the server. Without
//! one, it opens the project itself and syncs in-process.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::config::Config;
use crate::project::ServeLock;
use crate::sources::{repo, sync};

/// Runs `kura sync`; returns whether every file loaded.
pub fn sync_command(
    config: Config,
    source: Option<String>,
    full_refresh: bool,
) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match ServeLock::acquire(&config.state_dir()) {
        Err(_) => runtime.block_on(sync_via_server(&config, source, full_refresh)),
        Ok(lock) => {
            drop(lock);
            runtime.block_on(sync_in_process(config, source, full_refresh))
        }
    }
}

async fn sync_in_process(
    config: Config,
    only: Option<String>,
    full_refresh: bool,
) -> anyhow::Result<bool> {
    let state = AppState::new(config).await?;
    let sources = state.sources();
    let names: Vec<String> = match &only {
        Some(name) if !sources.contains_key(name) => {
            state.shutdown().await;
            bail!(
                "there is no source named {name}; sources: {}",
                sources.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        }
        Some(name) => vec![name.clone()],
        None => sources
            .values()
            .filter(|s| s.enabled)
            .map(|s| s.name.clone())
            .collect(),
    };
    let mut all_ok = true;
    for name in names {
        let source = &sources[&name];
        let id = repo::create_run(
            &state.meta,
            &name,
            sync::Trigger::Cli.as_str(),
            full_refresh,
            false,
        )
        .await?;
        let options = sync::SyncOptions {
            full_refresh,
            allow_empty: false,
        };
        let report = sync::run(&state, source, id, options, sync::Trigger::Cli).await;
        println!(
            "{name}: {} file(s) loaded, {} rows, {} failed",
            report.files_loaded, report.rows, report.files_failed
        );
        for f in &report.files {
            match &f.error {
                Some(e) => println!("  {} {}: {e}", f.outcome, f.path),
                None if f.outcome != "unchanged" => {
                    println!("  {} {} ({} rows)", f.outcome, f.path, f.rows)
                }
                None => {}
            }
        }
        all_ok &= report.files_failed == 0;
    }
    state.shutdown().await;
    Ok(all_ok)
}

async fn sync_via_server(
    config: &Config,
    only: Option<String>,
    full_refresh: bool,
) -> anyhow::Result<bool> {
    let (addr, client) = server_client(config)?;
    let body = json!({"sources": only.map(|s| vec![s]), "full_refresh": full_refresh});
    let (status, mut answer) = call(
        &client,
        &addr,
        reqwest::Method::POST,
        "/api/sync/trigger".into(),
        Some(body),
    )
    .await?;
    if status != 200 {
        bail!("the server answered {status}: {answer}");
    }
    // A source that is syncing already (the watcher saw the files first): wait for that
    // sync to end, then ask again, so the command's answer covers the files on disk now.
    let busy: Vec<String> = answer["skipped"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["reason"]
                .as_str()
                .is_some_and(|r| r.contains("already syncing"))
        })
        .filter_map(|s| s["source"].as_str().map(str::to_owned))
        .collect();
    if !busy.is_empty() {
        println!(
            "waiting for the running sync of {} to finish",
            busy.join(", ")
        );
        let deadline = Instant::now() + Duration::from_secs(3600);
        loop {
            let (_, w) = call(
                &client,
                &addr,
                reqwest::Method::GET,
                "/api/watcher/status".into(),
                None,
            )
            .await?;
            let running: Vec<String> = w["syncing"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            if busy.iter().all(|b| !running.contains(b)) || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let again = json!({"sources": busy, "full_refresh": full_refresh});
        let (_, retry) = call(
            &client,
            &addr,
            reqwest::Method::POST,
            "/api/sync/trigger".into(),
            Some(again),
        )
        .await?;
        let mut started = answer["started"].as_array().cloned().unwrap_or_default();
        started.extend(retry["started"].as_array().cloned().unwrap_or_default());
        let mut skipped: Vec<Value> = answer["skipped"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| {
                !s["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("already syncing"))
            })
            .cloned()
            .collect();
        skipped.extend(retry["skipped"].as_array().cloned().unwrap_or_default());
        answer = json!({"started": started, "skipped": skipped});
    }
    for skipped in answer["skipped"].as_array().into_iter().flatten() {
        println!(
            "{}: not started: {}",
            skipped["source"].as_str().unwrap_or("?"),
            skipped["reason"].as_str().unwrap_or("")
        );
    }
    let mut all_ok = answer["skipped"].as_array().is_none_or(Vec::is_empty);
    for started in answer["started"].as_array().into_iter().flatten() {
        let (name, id) = (
            started["source"].as_str().unwrap_or("?"),
            &started["record_id"],
        );
        let deadline = Instant::now() + Duration::from_secs(3600);
        let run = loop {
            let (_, run) = call(
                &client,
                &addr,
                reqwest::Method::GET,
                format!("/api/sync/status/{id}"),
                None,
            )
            .await?;
            if run["status"] != "running" || Instant::now() > deadline {
                break run;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        println!(
            "{name}: {} ({} file(s) loaded, {} rows, {} failed)",
            run["status"], run["files_loaded"], run["rows"], run["files_failed"]
        );
        for f in run["files"].as_array().into_iter().flatten() {
            if let Some(e) = f["error"].as_str() {
                println!(
                    "  {} {}: {e}",
                    f["outcome"].as_str().unwrap_or(""),
                    f["path"].as_str().unwrap_or("")
                );
            }
        }
        all_ok &= run["status"] == "success";
    }
    Ok(all_ok)
}

/// The running server's address and a client that authenticates as the CLI (with the
/// machine-local token the server wrote to `.kura/cli-token`).
pub(crate) fn server_client(config: &Config) -> anyhow::Result<(String, reqwest::Client)> {
    let recorded = crate::project::running_server_address(&config.state_dir());
    let addr = match recorded {
        Some(a) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        Some(a) => a.to_string(),
        None => {
            let host = if config.platform.bind.is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                config.platform.bind.to_string()
            };
            format!("{host}:{}", config.platform.port)
        }
    };
    println!("a Kura server is running on this project; asking it at http://{addr}");
    // The server writes a machine-local token to .kura/cli-token (mode 0600) at start:
    // whoever can read the project's state folder may drive its server from the CLI.
    let mut headers = reqwest::header::HeaderMap::new();
    // With auth off the server wants a header no cross-site form can send on writes.
    headers.insert(
        "x-requested-with",
        reqwest::header::HeaderValue::from_static("kura-cli"),
    );
    if let Some(token) = crate::auth::read_cli_token(&config.state_dir()) {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .default_headers(headers)
        .build()?;
    Ok((addr, client))
}

/// One request to the running server; the body is read as JSON (or null).
pub(crate) async fn call(
    client: &reqwest::Client,
    addr: &str,
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let request = client.request(method, format!("http://{addr}{path}"));
    let request = match body {
        Some(b) => request.json(&b),
        None => request,
    };
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach the server at {addr}"))?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// `kura schedule run NAME`: runs one schedule's job now (through the running server when
/// there is one) and waits for it; returns whether it succeeded.
pub fn schedule_run_command(config: Config, name: &str) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let job = match ServeLock::acquire(&config.state_dir()) {
        Err(_) => runtime.block_on(schedule_via_server(&config, name))?,
        Ok(lock) => {
            drop(lock);
            runtime.block_on(schedule_in_process(config, name))?
        }
    };
    let status = job["status"].as_str().unwrap_or("unknown");
    println!(
        "job {} of {name}: {status}, {} rows in {} ms{}",
        job["job_id"],
        job["rows"].as_i64().unwrap_or(0),
        job["duration_ms"].as_i64().unwrap_or(0),
        job["error"]
            .as_str()
            .map(|e| format!(" — {e}"))
            .unwrap_or_default()
    );
    Ok(status == "success")
}

async fn schedule_via_server(config: &Config, name: &str) -> anyhow::Result<Value> {
    let (addr, client) = server_client(config)?;
    // The file may have been saved a moment ago: have the server read it first.
    let (_, reload) = call(
        &client,
        &addr,
        reqwest::Method::POST,
        "/api/schedules/reload".into(),
        Some(json!({})),
    )
    .await?;
    if reload["valid"] == false {
        let errors: Vec<&str> = reload["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        bail!("schedules.yml is invalid:\n  {}", errors.join("\n  "));
    }
    let (status, started) = call(
        &client,
        &addr,
        reqwest::Method::POST,
        format!("/api/schedules/{name}/trigger"),
        Some(json!({})),
    )
    .await?;
    if status != 200 {
        bail!(
            "the server answered {status}: {}",
            started["message"].as_str().unwrap_or_default()
        );
    }
    // The trigger names the job as a string (the reference's type); the history by number.
    let job_id: Value = started["job_id"]
        .as_str()
        .and_then(|id| id.parse::<i64>().ok())
        .map_or(Value::Null, Value::from);
    loop {
        let (_, history) = call(
            &client,
            &addr,
            reqwest::Method::GET,
            format!("/api/schedules/{name}/history?limit=50"),
            None,
        )
        .await?;
        let job = history["runs"]
            .as_array()
            .and_then(|runs| runs.iter().find(|r| r["job_id"] == job_id))
            .cloned();
        if let Some(job) = job.filter(|j| j["status"] != "running") {
            return Ok(job);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn schedule_in_process(config: Config, name: &str) -> anyhow::Result<Value> {
    let state = AppState::new(config).await?;
    let result = async {
        if let Err(errors) = state.schedules.reload(&state).await {
            bail!("schedules.yml is invalid:\n  {}", errors.join("\n  "));
        }
        let job_id = state
            .schedules
            .trigger(&state, name, "manual")
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        loop {
            let job = state
                .meta
                .read(move |c| {
                    c.query_row(
                        "SELECT status, rows, duration_ms, error FROM schedule_runs WHERE id = ?1",
                        [job_id],
                        |r| {
                            Ok(json!({
                                "job_id": job_id,
                                "status": r.get::<_, String>(0)?,
                                "rows": r.get::<_, Option<i64>>(1)?,
                                "duration_ms": r.get::<_, Option<i64>>(2)?,
                                "error": r.get::<_, Option<String>>(3)?,
                            }))
                        },
                    )
                })
                .await?;
            if job["status"] != "running" {
                return Ok(job);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    .await;
    state.shutdown().await;
    result
}
