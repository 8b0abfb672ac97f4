//! `kura run | test | build | seed | compile | ls`: with a server running on the project
//! they ask it (the warehouse has one writer, and it is the server's); without one they
//! open the project and work in-process.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::runner::{Command, Request};
use super::service;
use crate::app::AppState;
use crate::cli::{call, server_client};
use crate::config::Config;
use crate::project::ServeLock;

/// What the command line asked for.
#[derive(Debug, Clone)]
pub enum ModelsCommand {
    Run,
    Test,
    Build,
    Seed,
    /// Print the compiled SQL of one model, or of every model.
    Compile(Option<String>),
    /// List the nodes of the selection.
    Ls,
}

/// `--select`, `--exclude`, `--full-refresh`.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub select: Vec<String>,
    pub exclude: Vec<String>,
    pub full_refresh: bool,
}

/// Runs the command; returns whether everything succeeded.
pub fn models_command(
    config: Config,
    command: ModelsCommand,
    sel: Selection,
) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match ServeLock::acquire(&config.state_dir()) {
        Err(_) => runtime.block_on(via_server(&config, command, sel)),
        Ok(lock) => {
            drop(lock);
            runtime.block_on(in_process(config, command, sel))
        }
    }
}

fn run_command(c: &ModelsCommand) -> Option<Command> {
    match c {
        ModelsCommand::Run => Some(Command::Run),
        ModelsCommand::Test => Some(Command::Test),
        ModelsCommand::Build => Some(Command::Build),
        ModelsCommand::Seed => Some(Command::Seed),
        ModelsCommand::Compile(_) | ModelsCommand::Ls => None,
    }
}

async fn in_process(
    config: Config,
    command: ModelsCommand,
    sel: Selection,
) -> anyhow::Result<bool> {
    let state = AppState::new(config).await?;
    let outcome = in_process_on(&state, command, sel).await;
    state.shutdown().await;
    outcome
}

async fn in_process_on(
    state: &AppState,
    command: ModelsCommand,
    sel: Selection,
) -> anyhow::Result<bool> {
    let project = match service::reload(state).await {
        Ok(p) => p,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            bail!("the models project has {} error(s)", errors.len());
        }
    };
    match &command {
        ModelsCommand::Compile(model) => {
            let mut printed = false;
            for (_, n) in project.models() {
                if model.as_ref().is_none_or(|m| *m == n.name) {
                    println!(
                        "-- {} ({})\n{}\n",
                        n.name,
                        n.materialization.as_str(),
                        n.sql
                    );
                    printed = true;
                }
            }
            if !printed {
                return Err(no_model(model.as_deref()));
            }
            return Ok(true);
        }
        ModelsCommand::Ls => {
            let selected = if sel.select.is_empty() {
                (0..project.nodes.len()).collect()
            } else {
                super::dag::select(&project, &sel.select).map_err(anyhow::Error::msg)?
            };
            for i in selected {
                let n = &project.nodes[i];
                println!(
                    "{:<8} {:<40} {}",
                    format!("{:?}", n.kind).to_lowercase(),
                    n.name,
                    n.relation
                );
            }
            return Ok(true);
        }
        _ => {}
    }
    let Some(cmd) = run_command(&command) else {
        return Ok(true);
    };
    let request = Request {
        command: cmd,
        select: sel.select,
        exclude: sel.exclude,
        full_refresh: sel.full_refresh,
        unbuilt_upstream: false,
        trigger: "cli".into(),
    };
    let (id, project, plan) = service::start(state, request.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let summary = service::finish(state, id, project, plan, &request).await;
    let run = super::repo::run(&state.meta, id)
        .await?
        .context("the run record is gone")?;
    print_run(&serde_json::to_value(run)?);
    Ok(summary.status == "success")
}

async fn via_server(
    config: &Config,
    command: ModelsCommand,
    sel: Selection,
) -> anyhow::Result<bool> {
    let (addr, client) = server_client(config)?;
    // The server may not have seen an edit yet (a file saved a moment ago): compile now.
    let (_, reloaded) = call(
        &client,
        &addr,
        reqwest::Method::POST,
        "/api/dbt/reload".into(),
        None,
    )
    .await?;
    if reloaded["ok"] == false {
        for e in reloaded["errors"].as_array().into_iter().flatten() {
            eprintln!(
                "{}{}: {}",
                e["file"].as_str().unwrap_or(""),
                e["line"]
                    .as_u64()
                    .map(|l| format!(" line {l}"))
                    .unwrap_or_default(),
                e["message"].as_str().unwrap_or("")
            );
        }
        bail!("the models project has errors");
    }
    match &command {
        ModelsCommand::Compile(model) => {
            let (_, list) = call(
                &client,
                &addr,
                reqwest::Method::GET,
                "/api/dbt/models".into(),
                None,
            )
            .await?;
            let mut printed = false;
            for m in list["models"].as_array().into_iter().flatten() {
                let name = m["name"].as_str().unwrap_or("");
                if model.as_ref().is_none_or(|x| x == name) {
                    let (_, detail) = call(
                        &client,
                        &addr,
                        reqwest::Method::GET,
                        format!("/api/catalog/models/{name}"),
                        None,
                    )
                    .await?;
                    println!(
                        "-- {name} ({})\n{}\n",
                        detail["materialization"].as_str().unwrap_or(""),
                        detail["compiled_sql"].as_str().unwrap_or("")
                    );
                    printed = true;
                }
            }
            if !printed {
                return Err(no_model(model.as_deref()));
            }
            return Ok(true);
        }
        ModelsCommand::Ls => {
            let (_, list) = call(
                &client,
                &addr,
                reqwest::Method::GET,
                "/api/catalog/models".into(),
                None,
            )
            .await?;
            for m in list["models"].as_array().into_iter().flatten() {
                println!(
                    "{:<8} {:<40} {}",
                    m["resource_type"].as_str().unwrap_or(""),
                    m["name"].as_str().unwrap_or(""),
                    m["relation"].as_str().unwrap_or("")
                );
            }
            return Ok(true);
        }
        _ => {}
    }
    let Some(cmd) = run_command(&command) else {
        return Ok(true);
    };
    let body = json!({
        "command": cmd.as_str(),
        "select": sel.select,
        "exclude": sel.exclude,
        "full_refresh": sel.full_refresh,
    });
    let (status, started) = call(
        &client,
        &addr,
        reqwest::Method::POST,
        "/api/dbt/runs".into(),
        Some(body),
    )
    .await?;
    if status != 202 {
        bail!(
            "the server answered {status}: {}",
            started["message"].as_str().unwrap_or(&started.to_string())
        );
    }
    let id = started["run_id"]
        .as_i64()
        .context("no run id in the answer")?;
    let deadline = Instant::now() + Duration::from_secs(24 * 3600);
    let run = loop {
        let (_, run) = call(
            &client,
            &addr,
            reqwest::Method::GET,
            format!("/api/dbt/runs/{id}"),
            None,
        )
        .await?;
        if run["status"] != "running" || Instant::now() > deadline {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    print_run(&run);
    Ok(run["status"] == "success")
}

/// One line per node, dbt-like, then the totals.
fn print_run(run: &Value) {
    let nodes = run["nodes"].as_array().cloned().unwrap_or_default();
    let total = nodes.len();
    for (k, n) in nodes.iter().enumerate() {
        let status = n["status"].as_str().unwrap_or("?");
        let ms = n["duration_ms"].as_i64().unwrap_or(0);
        let detail = match (n["rows"].as_i64(), n["error"].as_str()) {
            (_, Some(e)) if status != "pass" && status != "success" => format!(": {e}"),
            (Some(rows), _) => format!(" ({rows} rows)"),
            _ => String::new(),
        };
        println!(
            "{:>3} of {total} {:<7} {} {}{detail} [{ms} ms]",
            k + 1,
            status.to_uppercase(),
            n["kind"].as_str().unwrap_or(""),
            n["name"].as_str().unwrap_or(""),
        );
    }
    println!(
        "run #{} {} in {} ms",
        run["id"],
        run["status"].as_str().unwrap_or("?"),
        run["duration_ms"].as_i64().unwrap_or(0)
    );
}

fn no_model(name: Option<&str>) -> anyhow::Error {
    anyhow::anyhow!("there is no model named {}", name.unwrap_or("?"))
}
