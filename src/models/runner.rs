//! Carrying out a run: the plan (which nodes and tests, in DAG order), then each step on
//! the single writer — one warehouse job per step, so loads and other writes interleave
//! between models. A model that fails, or whose error-severity test fails in a `build`,
//! stops what depends on it: those are `skipped`, not failed. Every step's result goes to
//! the run record as it happens, and to the event bus.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;

use super::compile::{NodeKind, Project};
use super::node_config::{Materialization, Severity};
use super::repo::{self, NodeResult, Planned};
use super::{checks, dag, materialize};
use crate::app::AppState;
use crate::events::EventKind;

/// The commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    Run,
    Test,
    Build,
    Seed,
}

impl Command {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Test => "test",
            Self::Build => "build",
            Self::Seed => "seed",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) command: Command,
    pub(crate) select: Vec<String>,
    pub(crate) exclude: Vec<String>,
    pub(crate) full_refresh: bool,
    /// Also build the models and seeds above the selection that were never built (runs
    /// started from the pages and after loads; the command line keeps dbt's meaning).
    pub(crate) unbuilt_upstream: bool,
    /// api, cli, sync, watch
    pub(crate) trigger: String,
}

/// One step of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Build(usize),
    Test(usize),
}

/// The steps of a run, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub(crate) steps: Vec<Step>,
}

impl Plan {
    /// The names of the models and seeds it builds.
    pub(crate) fn built(&self, p: &Project) -> BTreeSet<String> {
        self.steps
            .iter()
            .filter_map(|s| match s {
                Step::Build(i) => Some(p.nodes[*i].name.clone()),
                Step::Test(_) => None,
            })
            .collect()
    }

    pub(crate) fn planned(&self, p: &Project) -> Vec<Planned> {
        self.steps
            .iter()
            .map(|s| match *s {
                Step::Build(i) => Planned {
                    unique_id: p.nodes[i].unique_id.clone(),
                    name: p.nodes[i].name.clone(),
                    kind: if p.nodes[i].kind == NodeKind::Seed {
                        "seed"
                    } else {
                        "model"
                    },
                },
                Step::Test(t) => Planned {
                    unique_id: p.tests[t].unique_id.clone(),
                    name: p.tests[t].name.clone(),
                    kind: "test",
                },
            })
            .collect()
    }
}

/// Works out the steps of `request` on `p`.
pub(crate) fn plan(p: &Project, request: &Request) -> Result<Plan, String> {
    let everything = || (0..p.nodes.len()).collect::<BTreeSet<usize>>();
    let mut selected = if request.select.is_empty() {
        everything()
    } else {
        dag::select(p, &request.select)?
    };
    if !request.exclude.is_empty() {
        for i in dag::select(p, &request.exclude)? {
            selected.remove(&i);
        }
    }
    let mut builds = dag::buildable_in_order(p, &selected);
    match request.command {
        Command::Seed => builds.retain(|&i| p.nodes[i].kind == NodeKind::Seed),
        Command::Run => builds.retain(|&i| p.nodes[i].kind == NodeKind::Model),
        Command::Test => builds.clear(),
        Command::Build => {}
    }
    let with_tests = matches!(request.command, Command::Test | Command::Build);
    // A test belongs to the run when a node it reads is selected; in a build it runs right
    // after the last of its nodes that the run builds.
    let tests: Vec<usize> = if with_tests {
        (0..p.tests.len())
            .filter(|&t| p.tests[t].depends_on.iter().any(|d| selected.contains(d)))
            .collect()
    } else {
        Vec::new()
    };
    let position: std::collections::HashMap<usize, usize> =
        builds.iter().enumerate().map(|(k, &i)| (i, k)).collect();
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); builds.len() + 1];
    for t in tests {
        let slot = p.tests[t]
            .depends_on
            .iter()
            .filter_map(|d| position.get(d).map(|k| k + 1))
            .max()
            .unwrap_or(0);
        after[slot].push(t);
    }
    let mut steps: Vec<Step> = after[0].iter().map(|&t| Step::Test(t)).collect();
    for (k, &i) in builds.iter().enumerate() {
        steps.push(Step::Build(i));
        steps.extend(after[k + 1].iter().map(|&t| Step::Test(t)));
    }
    if steps.is_empty() {
        return Err(match request.command {
            Command::Test => "the selection has no tests".into(),
            Command::Seed => "the selection has no seeds".into(),
            _ => "the selection has no models to build".into(),
        });
    }
    Ok(Plan { steps })
}

/// How a run ended.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct Summary {
    pub(crate) status: &'static str,
    pub(crate) built: usize,
    pub(crate) errors: usize,
    pub(crate) skipped: usize,
    pub(crate) tests_passed: usize,
    pub(crate) tests_failed: usize,
    pub(crate) tests_warned: usize,
    pub(crate) duration_ms: u64,
}

/// Runs `plan` under the run record `run_id`.
pub(crate) async fn execute(
    state: &AppState,
    project: Arc<Project>,
    plan: Plan,
    run_id: i64,
    request: &Request,
) -> Summary {
    let started = Instant::now();
    let mut summary = Summary::default();
    state
        .events
        .publish(EventKind::DbtRunStarted {
            run_id,
            command: request.command.as_str().into(),
            models: plan.built(&project).into_iter().collect(),
            trigger: request.trigger.clone(),
        })
        .await;
    // Nodes that failed or whose error-level test failed (a build stops below them), and
    // those skipped because of one.
    let mut bad: HashSet<usize> = HashSet::new();
    for step in &plan.steps {
        let (unique_id, blocked) = match *step {
            Step::Build(i) => (
                project.nodes[i].unique_id.clone(),
                blocked(&project, i, &bad),
            ),
            Step::Test(t) => (
                project.tests[t].unique_id.clone(),
                project.tests[t]
                    .depends_on
                    .iter()
                    .any(|&d| bad.contains(&d) || blocked(&project, d, &bad)),
            ),
        };
        if blocked {
            if let Step::Build(i) = step {
                bad.insert(*i);
            }
            summary.skipped += 1;
            let result = NodeResult {
                status: "skipped",
                error: Some("an upstream model failed".into()),
                ..NodeResult::default()
            };
            let _ = repo::set_node(&state.meta, run_id, &unique_id, result).await;
            continue;
        }
        let at = crate::time::now_text();
        let _ = repo::set_node(
            &state.meta,
            run_id,
            &unique_id,
            NodeResult {
                status: "running",
                started_at: Some(at.clone()),
                ..NodeResult::default()
            },
        )
        .await;
        let clock = Instant::now();
        match *step {
            Step::Build(i) => {
                let outcome = build_node(state, &project, i, request.full_refresh).await;
                let duration_ms = clock.elapsed().as_millis() as u64;
                let name = project.nodes[i].name.clone();
                let result = match outcome {
                    Ok(rows) => {
                        summary.built += 1;
                        state
                            .events
                            .publish(EventKind::DbtRunCompleted {
                                run_id,
                                model: name,
                                rows,
                                duration_ms,
                            })
                            .await;
                        NodeResult {
                            status: "success",
                            rows,
                            duration_ms: Some(duration_ms),
                            ..NodeResult::default()
                        }
                    }
                    Err(error) => {
                        summary.errors += 1;
                        bad.insert(i);
                        state
                            .events
                            .publish(EventKind::DbtRunFailed {
                                run_id,
                                model: name,
                                error: error.clone(),
                            })
                            .await;
                        NodeResult {
                            status: "error",
                            error: Some(error),
                            duration_ms: Some(duration_ms),
                            ..NodeResult::default()
                        }
                    }
                };
                let _ = repo::set_node(&state.meta, run_id, &unique_id, result).await;
            }
            Step::Test(t) => {
                let test = &project.tests[t];
                let outcome = run_test(state, test.sql.clone()).await;
                let duration_ms = Some(clock.elapsed().as_millis() as u64);
                let result = match outcome {
                    Ok(o) if o.failures == 0 => {
                        summary.tests_passed += 1;
                        NodeResult {
                            status: "pass",
                            failures: Some(0),
                            duration_ms,
                            ..NodeResult::default()
                        }
                    }
                    Ok(o) => {
                        let warn = test.severity == Severity::Warn;
                        if warn {
                            summary.tests_warned += 1;
                        } else {
                            summary.tests_failed += 1;
                            if request.command == Command::Build {
                                bad.extend(test.node);
                            }
                        }
                        NodeResult {
                            status: if warn { "warn" } else { "fail" },
                            failures: Some(o.failures),
                            samples: Some(serde_json::Value::Array(o.samples)),
                            error: Some(format!("{} failing row(s)", o.failures)),
                            duration_ms,
                            ..NodeResult::default()
                        }
                    }
                    Err(error) => {
                        summary.tests_failed += 1;
                        if request.command == Command::Build {
                            bad.extend(test.node);
                        }
                        NodeResult {
                            status: "error",
                            error: Some(error),
                            duration_ms,
                            ..NodeResult::default()
                        }
                    }
                };
                let _ = repo::set_node(&state.meta, run_id, &unique_id, result).await;
            }
        }
    }
    summary.duration_ms = started.elapsed().as_millis() as u64;
    summary.status = if summary.errors + summary.tests_failed + summary.skipped == 0 {
        "success"
    } else if summary.built + summary.tests_passed > 0 {
        "partial"
    } else {
        "error"
    };
    let error = (summary.status != "success").then(|| {
        format!(
            "{} error(s), {} failing test(s), {} skipped",
            summary.errors, summary.tests_failed, summary.skipped
        )
    });
    let _ = repo::finish_run(
        &state.meta,
        run_id,
        summary.status,
        summary.duration_ms,
        error,
    )
    .await;
    state
        .events
        .publish(EventKind::DbtRunFinished {
            run_id,
            status: summary.status.into(),
            built: summary.built as u64,
            errors: summary.errors as u64,
            skipped: summary.skipped as u64,
            tests_failed: summary.tests_failed as u64,
            duration_ms: summary.duration_ms,
        })
        .await;
    summary
}

/// Whether a parent of `i` (through ephemeral models, which are not built themselves)
/// failed or was skipped.
fn blocked(p: &Project, i: usize, bad: &HashSet<usize>) -> bool {
    p.dag.parents[i].iter().any(|&d| {
        bad.contains(&d)
            || (p.nodes[d].materialization == Materialization::Ephemeral && blocked(p, d, bad))
    })
}

/// Builds one model or seed on the writer: the gate checks its SQL there first.
async fn build_node(
    state: &AppState,
    project: &Arc<Project>,
    i: usize,
    full_refresh: bool,
) -> Result<Option<u64>, String> {
    let node = project.nodes[i].clone();
    let staged = match project.seed_files.get(&i) {
        Some(file) => {
            let (file, dir) = (file.clone(), state.warehouse.staging_dir().to_path_buf());
            Some(
                crate::blocking::run(move || stage_seed(&file, &dir))
                    .await
                    .map_err(|e| format!("cannot read the seed file: {e}"))?,
            )
        }
        None => None,
    };
    let gate = state.gate.clone();
    let seed = staged.clone();
    let result = state
        .warehouse
        .background(move |conn| {
            let checked = |sql: &str| -> Result<String, String> {
                gate.check(conn, sql)
                    .map(|c| c.sql.to_string())
                    .map_err(|e| format!("refused: {e}"))
            };
            let (sql, incremental) = if node.kind == NodeKind::Seed {
                (String::new(), None)
            } else {
                (
                    checked(&node.sql)?,
                    node.incremental_sql.as_deref().map(checked).transpose()?,
                )
            };
            materialize::build(
                conn,
                &node,
                &sql,
                incremental.as_deref(),
                full_refresh,
                seed.as_deref(),
            )
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
    if let Some(staged) = staged {
        let _ = crate::blocking::run(move || std::fs::remove_file(staged)).await;
    }
    result.map(|b| b.rows)
}

/// Copies a seed into the warehouse's staging folder (the only one DuckDB may read).
fn stage_seed(
    file: &std::path::Path,
    dir: &std::path::Path,
) -> std::io::Result<std::path::PathBuf> {
    let target = dir.join(format!("seed-{}.csv", rand::random::<u64>()));
    if std::fs::hard_link(file, &target).is_err() {
        std::fs::copy(file, &target)?;
    }
    Ok(target)
}

async fn run_test(state: &AppState, sql: String) -> Result<checks::Outcome, String> {
    let gate = state.gate.clone();
    state
        .warehouse
        .background(move |conn| {
            let checked = gate
                .check(conn, &sql)
                .map_err(|e| format!("refused: {e}"))?;
            checks::run(conn, &checked.sql).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
}
