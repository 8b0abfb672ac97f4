//! The models as the server holds them: the last project that compiled, the errors of
//! the latest attempt when it did not (a broken edit never replaces good state), the runs
//! going on (a run that includes a model already being built is refused), and the
//! coalesced runs after loads and edits.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::compile::{self, Catalog, Inputs, Project};
use super::runner::{self, Command, Plan, Request, Summary};
use super::{ProjectError, column_lineage, files, repo};
use crate::app::AppState;
use crate::events::EventKind;
use crate::locks::lock;

/// Why a run did not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("run #{run_id} is building {models} now; try again when it ends")]
    Busy { run_id: i64, models: String },
    /// The project does not compile: nothing runs until it does.
    #[error("the models project has errors: {0}")]
    Broken(String),
    #[error("{0}")]
    Internal(String),
}

/// Held in `AppState`.
#[derive(Default)]
pub(crate) struct ModelService {
    project: RwLock<Arc<Project>>,
    /// The errors of the latest compile; empty when it succeeded.
    problems: Mutex<Vec<ProjectError>>,
    /// Runs going on: id → the models and seeds they build.
    running: Mutex<HashMap<i64, BTreeSet<String>>>,
    /// Sources whose loads committed since the last run after loads, and whether the
    /// coalescing task is on its way.
    after_loads: Mutex<(BTreeSet<String>, bool)>,
    /// Set when a file of the models project changed; the same task picks it up.
    edited: Mutex<bool>,
    /// Serialises compiles.
    compiling: tokio::sync::Mutex<()>,
    /// Column lineage of earlier compiles (an edit re-derives only what it changed).
    lineage: Arc<column_lineage::Cache>,
}

impl ModelService {
    /// The project in use (the last one that compiled).
    pub(crate) fn project(&self) -> Arc<Project> {
        self.project
            .read()
            .map_or_else(|p| p.into_inner().clone(), |p| p.clone())
    }

    /// The errors of the latest compile.
    pub(crate) fn problems(&self) -> Vec<ProjectError> {
        lock(&self.problems).clone()
    }

    /// Ids of the runs going on.
    pub(crate) fn running(&self) -> Vec<i64> {
        lock(&self.running).keys().copied().collect()
    }
}

/// Reads and compiles the project; on success it replaces the one in use, else the last
/// good one stays and the errors are kept (and logged as an event when they are new).
pub(crate) async fn reload(state: &AppState) -> Result<Arc<Project>, Vec<ProjectError>> {
    let _one = state.models.compiling.lock().await;
    let root = state.config.models_dir();
    let name = state.config.project.name.clone();
    let read = crate::blocking::run(move || files::read(&root, &name)).await;
    let sources: Vec<String> = state.sources().keys().cloned().collect();
    let gate = state.gate.clone();
    let generate_staging = state.config.models.generate_staging;
    let lineage = state.models.lineage.clone();
    let compiled = state
        .warehouse
        .internal(move |conn| {
            let mut catalog = Catalog::read(conn, &sources).unwrap_or_default();
            if !generate_staging {
                catalog.staging_views.clear();
            }
            compile::compile(
                conn,
                &Inputs {
                    files: &read,
                    catalog: &catalog,
                    gate: &gate,
                    lineage: &lineage,
                },
            )
        })
        .await;
    let project = match compiled {
        Ok(p) => p,
        Err(e) => {
            return Err(vec![ProjectError::at(
                "",
                None,
                format!("cannot compile: {e}"),
            )]);
        }
    };
    if project.errors.is_empty() {
        let project = Arc::new(project);
        if let Ok(mut p) = state.models.project.write() {
            *p = project.clone();
        }
        lock(&state.models.problems).clear();
        return Ok(project);
    }
    let errors = project.errors;
    let new = {
        let mut problems = lock(&state.models.problems);
        let new = *problems != errors;
        problems.clone_from(&errors);
        new
    };
    if new {
        state
            .events
            .publish(EventKind::ModelsInvalid {
                errors: errors.iter().map(ToString::to_string).collect(),
            })
            .await;
    }
    Err(errors)
}

/// Plans `request` on the project in use and registers the run; the caller awaits or
/// spawns [`finish`]. Refused while another run builds any of the same models.
pub(crate) async fn start(
    state: &AppState,
    request: Request,
) -> Result<(i64, Arc<Project>, Plan), StartError> {
    let problems = state.models.problems();
    if !problems.is_empty() {
        return Err(StartError::Broken(
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ));
    }
    let project = state.models.project();
    let mut request = request;
    if request.unbuilt_upstream {
        request
            .select
            .extend(unbuilt_upstream(state, &project, &request.select).await);
    }
    let plan = runner::plan(&project, &request).map_err(|e| {
        if e.contains("matches no node") {
            StartError::NotFound(e)
        } else {
            StartError::Invalid(e)
        }
    })?;
    let built = plan.built(&project);
    // Reserve the models before the record exists, so two requests cannot both pass.
    let reservation = -(rand::random::<u32>() as i64) - 1;
    {
        let mut running = lock(&state.models.running);
        if let Some((id, models)) = running.iter().find(|(_, m)| !m.is_disjoint(&built)) {
            let shared: Vec<&String> = models.intersection(&built).take(5).collect();
            return Err(StartError::Busy {
                run_id: *id,
                models: shared
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        running.insert(reservation, built.clone());
    }
    let created = repo::create_run(
        &state.meta,
        request.command.as_str(),
        &request.select.join(" "),
        &request.trigger,
        request.full_refresh,
        plan.planned(&project),
    )
    .await;
    let mut running = lock(&state.models.running);
    running.remove(&reservation);
    match created {
        Ok(id) => {
            running.insert(id, built);
            Ok((id, project, plan))
        }
        Err(e) => Err(StartError::Internal(e.to_string())),
    }
}

/// The models and seeds above the selection that Kura never built: without them a run of
/// a model whose parents were never built could only fail.
async fn unbuilt_upstream(state: &AppState, project: &Project, select: &[String]) -> Vec<String> {
    let (Ok(selected), Ok(results)) = (
        super::dag::select(project, select),
        repo::last_results(&state.meta).await,
    ) else {
        return Vec::new();
    };
    let mut out = BTreeSet::new();
    for &i in &selected {
        for up in project.dag.upstream(i, None) {
            let n = &project.nodes[up];
            let built = results
                .get(&n.unique_id)
                .is_some_and(|r| r.status == "success");
            if n.builds() && !built && !selected.contains(&up) {
                out.insert(n.name.clone());
            }
        }
    }
    out.into_iter().collect()
}

/// Carries out a started run and releases its models.
pub(crate) async fn finish(
    state: &AppState,
    id: i64,
    project: Arc<Project>,
    plan: Plan,
    request: &Request,
) -> Summary {
    struct Release<'a>(&'a AppState, i64);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            lock(&self.0.models.running).remove(&self.1);
        }
    }
    let _release = Release(state, id);
    runner::execute(state, project, plan, id, request).await
}

/// Starts a run in the background; returns its id.
pub(crate) async fn spawn(state: &AppState, request: Request) -> Result<i64, StartError> {
    let (id, project, plan) = start(state, request.clone()).await?;
    let s = state.clone();
    state
        .tasks
        .spawn_dynamic(format!("models:run:{id}"), async move {
            finish(&s, id, project, plan, &request).await;
        });
    Ok(id)
}

/// A source's load committed: the models downstream of it run once the loads settle.
pub(crate) fn after_load(state: &AppState, source: &str) {
    if !state.config.models.run_after_sync {
        return;
    }
    let spawn = {
        let mut pending = lock(&state.models.after_loads);
        pending.0.insert(source.to_owned());
        !std::mem::replace(&mut pending.1, true)
    };
    if spawn {
        spawn_settler(state);
    }
}

/// A file of the models project changed: recompile, and run what changed.
pub(crate) fn files_changed(state: &AppState) {
    *lock(&state.models.edited) = true;
    let spawn = !std::mem::replace(&mut lock(&state.models.after_loads).1, true);
    if spawn {
        spawn_settler(state);
    }
}

fn spawn_settler(state: &AppState) {
    let s = state.clone();
    state.tasks.spawn("models:after-loads", async move {
        settle(&s).await;
    });
}

/// Waits `models.coalesce_ms`, then handles everything that arrived meanwhile: one
/// recompile, one run of what is downstream of the loaded sources and of the edited
/// models. Loops while more arrives during the run.
async fn settle(state: &AppState) {
    let wait = Duration::from_millis(state.config.models.coalesce_ms);
    loop {
        tokio::time::sleep(wait).await;
        let sources = {
            let mut pending = lock(&state.models.after_loads);
            let edited = std::mem::take(&mut *lock(&state.models.edited));
            if pending.0.is_empty() && !edited {
                pending.1 = false;
                return;
            }
            (std::mem::take(&mut pending.0), edited)
        };
        let (sources, edited) = sources;
        let before = state.models.project();
        let Ok(project) = reload(state).await else {
            continue; // reported by reload; the last good project stays
        };
        let mut select: Vec<String> = Vec::new();
        for source in &sources {
            let term = format!("source:{source}+");
            if super::dag::select(&project, std::slice::from_ref(&term)).is_ok() {
                select.push(term);
            }
        }
        if edited {
            for (_, node) in project.models() {
                let changed = before.node(&node.name).is_none_or(|(_, old)| {
                    old.sql != node.sql || old.materialization != node.materialization
                });
                if changed {
                    select.push(format!("{}+", node.name));
                }
            }
        }
        if select.is_empty() || project.models().next().is_none() {
            continue;
        }
        // A build: the models, what is above them and was never built, and their tests
        // (a failing test stops what is below it, and shows in the health page).
        let request = Request {
            command: Command::Build,
            select,
            exclude: Vec::new(),
            full_refresh: false,
            unbuilt_upstream: true,
            trigger: if sources.is_empty() {
                "watch".into()
            } else {
                "sync".into()
            },
        };
        // A run building the same models: wait for it, then build on its results.
        let started = loop {
            match start(state, request.clone()).await {
                Err(StartError::Busy { .. }) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => break other,
            }
        };
        match started {
            Ok((id, project, plan)) => {
                finish(state, id, project, plan, &request).await;
            }
            Err(StartError::Invalid(_)) => {}
            Err(e) => tracing::warn!(error = %e, "cannot run the models after a load"),
        }
    }
}

/// What `/api/health/platform` lists under `dbt_failures`: project errors, and the models
/// and tests of the project whose last result failed.
pub(crate) async fn failures(state: &AppState) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = state
        .models
        .problems()
        .into_iter()
        .map(|e| {
            serde_json::json!({
                "type": "compile", "file": e.file, "line": e.line, "message": e.message,
                "error": e.to_string(),
            })
        })
        .collect();
    let Ok(results) = repo::last_results(&state.meta).await else {
        return out;
    };
    let project = state.models.project();
    let current: std::collections::HashSet<&str> = project
        .nodes
        .iter()
        .map(|n| n.unique_id.as_str())
        .chain(project.tests.iter().map(|t| t.unique_id.as_str()))
        .collect();
    let mut failed: Vec<&repo::NodeRow> = results
        .values()
        .filter(|r| {
            matches!(r.status.as_str(), "error" | "fail") && current.contains(r.unique_id.as_str())
        })
        .collect();
    failed.sort_by(|a, b| a.name.cmp(&b.name));
    for r in failed {
        out.push(serde_json::json!({
            "type": r.kind, "name": r.name, "model": r.name, "status": r.status,
            "error": r.error, "failures": r.failures, "run_id": r.run_id,
            "started_at": r.started_at,
        }));
    }
    out
}
