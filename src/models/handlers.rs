//! `/api/dbt/...` (models, runs) and `/api/catalog/...` (models, lineage, impact): the
//! reference's paths and keys, with Kura's beside them.

use std::collections::{BTreeSet, HashMap};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::column_lineage;
use super::compile::{Node, NodeKind, Project};
use super::inspect;
use super::repo::{self, NodeRow};
use super::runner::{Command, Request};
use super::search;
use super::service::{self, StartError};
use crate::app::AppState;
use crate::error::{AppError, Result};
use crate::web::extract::{Json, List, Path, Query};
use axum::extract::State;

impl From<StartError> for AppError {
    fn from(e: StartError) -> Self {
        match e {
            StartError::NotFound(m) => Self::NotFound(m),
            StartError::Invalid(m) => Self::bad_request("invalid_selection", m),
            e @ StartError::Busy { .. } => Self::Conflict {
                code: "run_in_progress",
                message: e.to_string(),
            },
            e @ StartError::Broken(_) => Self::Conflict {
                code: "project_invalid",
                message: e.to_string(),
            },
            StartError::Internal(m) => Self::Internal(anyhow::anyhow!(m)),
        }
    }
}

/// The last run of a model, as `/api/dbt/models` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LastRun {
    pub(crate) run_id: i64,
    pub(crate) status: String,
    pub(crate) started_at: Option<String>,
    pub(crate) duration_ms: Option<i64>,
    pub(crate) rows: Option<i64>,
    pub(crate) error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct TestSummary {
    pub(crate) total: usize,
    pub(crate) passed: usize,
    pub(crate) failed: usize,
    pub(crate) warned: usize,
    pub(crate) not_run: usize,
}

/// A model in the reference's shape (`name`, `unique_id`, `path`, `materialization`,
/// `schema`, `database`, `depends_on` as unique ids, `description`, `tags`, `row_count`,
/// `last_run`, `status`) plus Kura's (`relation`, `depends_on_models`, `tests`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ModelView {
    pub(crate) name: String,
    pub(crate) unique_id: String,
    pub(crate) path: Option<String>,
    pub(crate) materialization: &'static str,
    pub(crate) schema: String,
    pub(crate) database: &'static str,
    pub(crate) relation: String,
    pub(crate) depends_on: Vec<String>,
    pub(crate) depends_on_models: Vec<String>,
    pub(crate) description: String,
    pub(crate) tags: Vec<String>,
    pub(crate) row_count: Option<i64>,
    pub(crate) last_run: Option<LastRun>,
    /// success, error, skipped, or null when never run.
    pub(crate) status: Option<String>,
    pub(crate) tests: TestSummary,
}

fn test_summary(p: &Project, i: usize, results: &HashMap<String, NodeRow>) -> TestSummary {
    let mut s = TestSummary::default();
    for t in p.tests.iter().filter(|t| t.node == Some(i)) {
        s.total += 1;
        match results.get(&t.unique_id).map(|r| r.status.as_str()) {
            Some("pass") => s.passed += 1,
            Some("warn") => s.warned += 1,
            Some("fail" | "error") => s.failed += 1,
            _ => s.not_run += 1,
        }
    }
    s
}

fn model_view(
    p: &Project,
    i: usize,
    node: &Node,
    results: &HashMap<String, NodeRow>,
    rows: &HashMap<String, i64>,
) -> ModelView {
    let last = results.get(&node.unique_id);
    let parents = &p.dag.parents[i];
    ModelView {
        name: node.name.clone(),
        unique_id: node.unique_id.clone(),
        path: node.path.clone(),
        materialization: node.materialization.as_str(),
        schema: node.relation.schema.clone(),
        database: "warehouse",
        relation: node.relation.sql(),
        depends_on: parents
            .iter()
            .map(|&d| p.nodes[d].unique_id.clone())
            .collect(),
        depends_on_models: parents.iter().map(|&d| p.nodes[d].name.clone()).collect(),
        description: node.description.clone(),
        tags: node.tags.clone(),
        row_count: rows.get(&node.relation.key()).copied(),
        last_run: last.map(|r| LastRun {
            run_id: r.run_id,
            status: r.status.clone(),
            started_at: r.started_at.clone(),
            duration_ms: r.duration_ms,
            rows: r.rows,
            error: r.error.clone(),
        }),
        status: last.map(|r| r.status.clone()),
        tests: test_summary(p, i, results),
    }
}

/// Row counts of the tables models built.
async fn row_counts(state: &AppState) -> HashMap<String, i64> {
    state
        .warehouse
        .internal(inspect::row_estimates)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}

impl ModelView {
    /// Its last build failed, or one of its tests did.
    pub(crate) fn failing(&self) -> bool {
        self.status.as_deref() == Some("error") || self.tests.failed > 0
    }
}

/// How many models there are and how many fail (last build or a test): the overview's
/// tile, without the warehouse reads of [`model_views`].
pub(crate) async fn model_totals(state: &AppState) -> Result<(usize, usize)> {
    let p = state.models.project();
    let results = repo::last_results(&state.meta).await?;
    let none = HashMap::new();
    let failing = p
        .models()
        .filter(|(i, n)| model_view(&p, *i, n, &results, &none).failing())
        .count();
    Ok((p.models().count(), failing))
}

/// Every model with its last run and tests, by schema then name.
pub(crate) async fn model_views(state: &AppState) -> Result<Vec<ModelView>> {
    let p = state.models.project();
    let results = repo::last_results(&state.meta).await?;
    let rows = row_counts(state).await;
    let mut models: Vec<ModelView> = p
        .models()
        .map(|(i, n)| model_view(&p, i, n, &results, &rows))
        .collect();
    models.sort_by(|a, b| {
        (a.schema.to_lowercase(), a.name.to_lowercase())
            .cmp(&(b.schema.to_lowercase(), b.name.to_lowercase()))
    });
    Ok(models)
}

/// `GET /api/dbt/models`
pub(crate) async fn list_models(State(state): State<AppState>) -> Result<Json<Value>> {
    let models = model_views(&state).await?;
    Ok(Json(json!({
        "models": models,
        "project": state.models.project().name,
        "errors": state.models.problems(),
        "running": state.models.running(),
    })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct RunModelQuery {
    #[serde(default = "yes")]
    cascade: bool,
    #[serde(default)]
    full_refresh: bool,
}

fn yes() -> bool {
    true
}

/// `POST /api/dbt/models/{name}/run?cascade=true` → 202 with the run id.
pub(crate) async fn run_model(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<RunModelQuery>,
) -> Result<(StatusCode, Json<Value>)> {
    let p = state.models.project();
    if !p
        .node(&name)
        .is_some_and(|(_, n)| n.kind == NodeKind::Model)
    {
        return Err(AppError::NotFound(format!(
            "there is no model named {name}"
        )));
    }
    let select = if q.cascade {
        format!("{name}+")
    } else {
        name.clone()
    };
    let request = Request {
        command: Command::Run,
        select: vec![select],
        exclude: Vec::new(),
        full_refresh: q.full_refresh,
        unbuilt_upstream: true,
        trigger: "api".into(),
    };
    let id = service::spawn(&state, request).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "success": true,
            "message": format!("dbt model '{name}' run started"),
            "model_name": name,
            "started_at": crate::time::now_text(),
            "run_id": id,
            "cascade": q.cascade,
        })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunBody {
    /// run (default), test, build or seed
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    select: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    full_refresh: bool,
}

/// `POST /api/dbt/runs`: a run of any command and selection (what `kura run` asks a
/// running server for).
pub(crate) async fn start_run(
    State(state): State<AppState>,
    Json(body): Json<RunBody>,
) -> Result<(StatusCode, Json<Value>)> {
    let command = match body.command.as_deref().unwrap_or("run") {
        "run" => Command::Run,
        "test" => Command::Test,
        "build" => Command::Build,
        "seed" => Command::Seed,
        other => {
            return Err(AppError::bad_request(
                "invalid_command",
                format!("command {other:?} is not one of run, test, build, seed"),
            ));
        }
    };
    let request = Request {
        command,
        select: body.select,
        exclude: body.exclude,
        full_refresh: body.full_refresh,
        unbuilt_upstream: false,
        trigger: "api".into(),
    };
    let id = service::spawn(&state, request).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"run_id": id, "id": id}))))
}

#[derive(Debug, Deserialize)]
pub(crate) struct RunsQuery {
    #[serde(default = "twenty")]
    limit: u32,
}

fn twenty() -> u32 {
    20
}

/// `GET /api/dbt/runs?limit=20`: the latest runs, newest first.
pub(crate) async fn list_runs(
    State(state): State<AppState>,
    Query(q): Query<RunsQuery>,
) -> Result<List<repo::Run>> {
    Ok(List::all(
        repo::recent_runs(&state.meta, q.limit.clamp(1, 500)).await?,
    ))
}

/// `GET /api/dbt/runs/{id}`
pub(crate) async fn show_run(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<repo::Run>> {
    repo::run(&state.meta, id)
        .await?
        .map(Json)
        .ok_or_else(|| AppError::NotFound(format!("there is no model run {id}")))
}

/// `POST /api/dbt/reload`: compile the project again now.
pub(crate) async fn reload(State(state): State<AppState>) -> Result<Json<Value>> {
    match service::reload(&state).await {
        Ok(p) => Ok(Json(json!({
            "ok": true,
            "models": p.models().count(),
            "tests": p.tests.len(),
            "errors": [],
        }))),
        Err(errors) => Ok(Json(json!({"ok": false, "errors": errors}))),
    }
}

/// The layer a node belongs to on the catalog: what its folder or name says.
fn layer(n: &Node) -> &'static str {
    match n.kind {
        NodeKind::Source => "source",
        NodeKind::Staging => "staging",
        NodeKind::Seed => "seed",
        NodeKind::Model => {
            let first = n.fqn.first().map(String::as_str).unwrap_or("");
            if first == "staging" || n.name.starts_with("stg_") {
                "staging"
            } else if first == "intermediate" || n.name.starts_with("int_") {
                "intermediate"
            } else {
                "marts"
            }
        }
    }
}

fn node_type(n: &Node) -> &'static str {
    match n.kind {
        NodeKind::Source => "source",
        NodeKind::Seed => "seed",
        NodeKind::Model | NodeKind::Staging => "model",
    }
}

/// `GET /api/catalog/models`
pub(crate) async fn catalog_models(State(state): State<AppState>) -> Result<Json<Value>> {
    let p = state.models.project();
    let results = repo::last_results(&state.meta).await?;
    let mut layers: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut tests = (0usize, 0usize);
    let models: Vec<Value> = p
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let t = test_summary(&p, i, &results);
            tests.0 += t.passed;
            tests.1 += t.failed;
            *layers.entry(layer(n)).or_default() += 1;
            let documented = n
                .columns
                .iter()
                .filter(|c| !c.description.is_empty())
                .count();
            json!({
                "name": n.name,
                "unique_id": n.unique_id,
                "type": layer(n),
                "resource_type": node_type(n),
                "schema": n.relation.schema,
                "relation": n.relation.sql(),
                "materialization": n.materialization.as_str(),
                "description": n.description,
                "has_description": !n.description.is_empty(),
                "tags": n.tags,
                "path": n.path,
                "test_count": t.total,
                "tests_passing": t.passed,
                "tests_failing": t.failed,
                "columns_documented": documented,
                "columns_total": n.columns.len(),
                "status": results.get(&n.unique_id).map(|r| r.status.clone()),
            })
        })
        .collect();
    Ok(Json(json!({
        "models": models,
        "overview": {
            "total": p.nodes.len(),
            "by_type": layers,
            "tests": p.tests.len(),
            "tests_passing": tests.0,
            "tests_failing": tests.1,
        },
        "errors": state.models.problems(),
    })))
}

/// A test as the model page and `/api/catalog/models/{name}` show it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TestView {
    pub(crate) name: String,
    pub(crate) test: String,
    pub(crate) severity: super::node_config::Severity,
    pub(crate) status: Option<String>,
    pub(crate) failures: Option<i64>,
    pub(crate) samples: Option<Value>,
    pub(crate) sql: String,
}

impl TestView {
    pub(crate) fn warn(&self) -> bool {
        self.severity == super::node_config::Severity::Warn
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ColumnView {
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) data_type: Option<String>,
    pub(crate) description: String,
    pub(crate) tests: Vec<TestView>,
    /// Documented, but the built relation has no such column.
    pub(crate) missing: bool,
    /// The upstream columns it comes from (column lineage); trust it only when the
    /// model's `column_lineage` is `verified`.
    pub(crate) upstream: Vec<UpstreamView>,
}

/// A column of another node.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UpstreamView {
    pub(crate) node: String,
    pub(crate) unique_id: String,
    pub(crate) column: String,
}

/// One node in full: what `/api/catalog/models/{name}` answers and the model page shows.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ModelDetail {
    pub(crate) name: String,
    pub(crate) unique_id: String,
    #[serde(rename = "type")]
    pub(crate) layer: &'static str,
    pub(crate) resource_type: &'static str,
    pub(crate) schema: String,
    pub(crate) relation: String,
    pub(crate) materialization: &'static str,
    pub(crate) description: String,
    pub(crate) tags: Vec<String>,
    pub(crate) path: Option<String>,
    pub(crate) raw_sql: String,
    pub(crate) compiled_sql: String,
    pub(crate) incremental_sql: Option<String>,
    pub(crate) columns: Vec<ColumnView>,
    /// Models: the column lineage held against DuckDB's own `DESCRIBE` of the SQL.
    pub(crate) column_lineage: Option<column_lineage::Check>,
    /// Tests of the whole model (not of one column).
    pub(crate) tests: Vec<TestView>,
    pub(crate) depends_on: Vec<String>,
    pub(crate) depended_on_by: Vec<String>,
    pub(crate) row_count: Option<i64>,
    pub(crate) built: bool,
    pub(crate) status: Option<String>,
    pub(crate) last_run: Option<NodeRow>,
}

/// The node named `name` (a model, seed or staging view, or `source.table`).
pub(crate) async fn model_detail(state: &AppState, name: &str) -> Result<ModelDetail> {
    let p = state.models.project();
    let key = if p.by_name.contains_key(name) {
        name.to_owned()
    } else {
        format!("source:{name}")
    };
    let Some((i, n)) = p.node(&key) else {
        return Err(AppError::NotFound(format!(
            "there is no model, seed or source named {name}"
        )));
    };
    let results = repo::last_results(&state.meta).await?;
    let relation = n.relation.clone();
    let derived = p.columns.get(i).cloned();
    let sql = (n.kind == NodeKind::Model && !n.sql.is_empty()).then(|| n.sql.clone());
    let (described, checked) = state
        .warehouse
        .internal(move |c| {
            let described = inspect::describe(c, &relation).unwrap_or_default();
            let checked = sql
                .zip(derived)
                .map(|(sql, d)| column_lineage::check(c, &sql, &d));
            (described, checked)
        })
        .await
        .map_err(AppError::from)?;
    let (column_lineage, sql_columns) = checked.unzip();
    // The columns shown: the built relation's, or else what DuckDB makes of the SQL (an
    // ephemeral model, one not built yet) or else what lineage derived, without types.
    let shown: Vec<(String, Option<String>)> = if !described.columns.is_empty() {
        described
            .columns
            .iter()
            .map(|(c, t)| (c.clone(), Some(t.clone())))
            .collect()
    } else if let Some(columns) = sql_columns.filter(|c| !c.is_empty()) {
        columns.into_iter().map(|(c, t)| (c, Some(t))).collect()
    } else if let Some(Ok(derived)) = p.columns.get(i).filter(|_| n.kind == NodeKind::Model) {
        derived
            .iter()
            .filter(|d| !d.name.is_empty())
            .map(|d| (d.name.clone(), None))
            .collect()
    } else {
        Vec::new()
    };
    let upstream_of = |column: &str| -> Vec<UpstreamView> {
        let Some(Ok(derived)) = p.columns.get(i).filter(|_| n.kind == NodeKind::Model) else {
            return Vec::new();
        };
        derived
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(column))
            .map(|d| {
                d.from
                    .iter()
                    .map(|u| UpstreamView {
                        node: p.nodes[u.node].name.clone(),
                        unique_id: p.nodes[u.node].unique_id.clone(),
                        column: u.column.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let tests_of = |column: Option<&str>| -> Vec<TestView> {
        p.tests
            .iter()
            .filter(|t| {
                t.node == Some(i)
                    && t.column.as_deref().map(str::to_lowercase) == column.map(str::to_lowercase)
            })
            .map(|t| {
                let r = results.get(&t.unique_id);
                TestView {
                    name: t.name.clone(),
                    test: t.test.clone(),
                    severity: t.severity,
                    status: r.map(|r| r.status.clone()),
                    failures: r.and_then(|r| r.failures),
                    samples: r.and_then(|r| r.samples.clone()),
                    sql: t.sql.clone(),
                }
            })
            .collect()
    };
    let docs: HashMap<String, &super::compile::ColumnDoc> = n
        .columns
        .iter()
        .map(|c| (c.name.to_lowercase(), c))
        .collect();
    let mut columns: Vec<ColumnView> = shown
        .iter()
        .map(|(c, ty)| ColumnView {
            name: c.clone(),
            data_type: ty.clone(),
            description: docs
                .get(&c.to_lowercase())
                .map(|d| d.description.clone())
                .unwrap_or_default(),
            tests: tests_of(Some(c)),
            missing: false,
            upstream: upstream_of(c),
        })
        .collect();
    // Documented columns the relation does not have: shown, and flagged once it is built.
    for doc in &n.columns {
        if !shown.iter().any(|(c, _)| c.eq_ignore_ascii_case(&doc.name)) {
            columns.push(ColumnView {
                name: doc.name.clone(),
                data_type: doc.data_type.clone(),
                description: doc.description.clone(),
                tests: tests_of(Some(&doc.name)),
                missing: !described.columns.is_empty(),
                upstream: upstream_of(&doc.name),
            });
        }
    }
    let last = results.get(&n.unique_id).cloned();
    Ok(ModelDetail {
        name: n.name.clone(),
        unique_id: n.unique_id.clone(),
        layer: layer(n),
        resource_type: node_type(n),
        schema: n.relation.schema.clone(),
        relation: n.relation.sql(),
        materialization: n.materialization.as_str(),
        description: n.description.clone(),
        tags: n.tags.clone(),
        path: n.path.clone(),
        raw_sql: n.raw_sql.clone(),
        compiled_sql: n.sql.clone(),
        incremental_sql: n.incremental_sql.clone(),
        columns,
        column_lineage,
        tests: tests_of(None),
        depends_on: p.dag.parents[i]
            .iter()
            .map(|&d| p.nodes[d].name.clone())
            .collect(),
        depended_on_by: p.dag.children[i]
            .iter()
            .map(|&d| p.nodes[d].name.clone())
            .collect(),
        row_count: described.row_count,
        built: !described.columns.is_empty(),
        status: last.as_ref().map(|r| r.status.clone()),
        last_run: last,
    })
}

/// `GET /api/catalog/models/{name}`: columns with DuckDB's types, tests with their last
/// results, raw and compiled SQL, parents and children.
pub(crate) async fn catalog_model(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ModelDetail>> {
    Ok(Json(model_detail(&state, &name).await?))
}

#[derive(Debug, Deserialize)]
pub(crate) struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// `GET /api/catalog/search?q=`: nodes by name, description or column (at most 50, in
/// that order), in the reference's shape.
pub(crate) async fn catalog_search(
    State(state): State<AppState>,
    Query(params): Query<SearchQuery>,
) -> Result<Json<Value>> {
    let query = params.q.trim();
    let chars = query.chars().count();
    if !(search::MIN_CHARS..=search::MAX_CHARS).contains(&chars) {
        return Err(AppError::Invalid {
            code: "invalid_query",
            message: format!(
                "q must be {} to {} characters (it has {chars})",
                search::MIN_CHARS,
                search::MAX_CHARS
            ),
        });
    }
    let p = state.models.project();
    let results: Vec<Value> = search::search(&p, query)
        .into_iter()
        .map(|hit| {
            let n = &p.nodes[hit.node];
            let mut v = json!({
                "unique_id": n.unique_id,
                "name": n.name,
                "type": layer(n),
                "resource_type": node_type(n),
                "relation": n.relation.sql(),
                "description": n.description,
                "match_type": hit.match_type,
            });
            if let Some(column) = hit.matched_column {
                v["matched_column"] = json!(column);
            }
            v
        })
        .collect();
    Ok(Json(json!({"query": query, "results": results})))
}

/// `GET /api/catalog/lineage`: every node and edge, sources included.
pub(crate) async fn lineage(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let p = state.models.project();
    let body = p
        .lineage
        .get_or_init(|| {
            serde_json::to_vec(&lineage_json(&p))
                .unwrap_or_default()
                .into()
        })
        .clone();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

pub(crate) fn lineage_json(p: &Project) -> Value {
    let nodes: Vec<Value> = p
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let tests: Vec<&str> = p.tests.iter().filter(|t| t.node == Some(i)).map(|t| t.name.as_str()).collect();
            json!({
                "id": n.unique_id,
                "name": n.name,
                "type": node_type(n),
                "layer": layer(n),
                "schema": n.relation.schema,
                "materialization": n.materialization.as_str(),
                "description": n.description,
                "depends_on": p.dag.parents[i].iter().map(|&d| &p.nodes[d].unique_id).collect::<Vec<_>>(),
                "depended_on_by": p.dag.children[i].iter().map(|&d| &p.nodes[d].unique_id).collect::<Vec<_>>(),
                "test_count": tests.len(),
                "test_names": tests,
                "has_description": !n.description.is_empty(),
                "columns_documented": n.columns.iter().filter(|c| !c.description.is_empty()).count(),
                "columns_total": n.columns.len(),
            })
        })
        .collect();
    let edges: Vec<Value> = p
        .dag
        .parents
        .iter()
        .enumerate()
        .flat_map(|(child, parents)| {
            parents.iter().map(move |&parent| (parent, child))
        })
        .map(|(parent, child)| json!({"source": p.nodes[parent].unique_id, "target": p.nodes[child].unique_id}))
        .collect();
    json!({"nodes": nodes, "edges": edges})
}

/// `GET /api/catalog/impact/{name}`: what is downstream, each node once, and the
/// reference's tree (each node expanded once; a node met again is listed without its
/// children, `repeated: true`).
pub(crate) async fn impact(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    let p = state.models.project();
    let key = if p.by_name.contains_key(&name) {
        name.clone()
    } else {
        format!("source:{name}")
    };
    let Some((i, n)) = p.node(&key) else {
        return Err(AppError::NotFound(format!(
            "there is no model, seed or source named {name}"
        )));
    };
    Ok(Json(impact_json(&p, i, n)))
}

pub(crate) fn impact_json(p: &Project, i: usize, n: &Node) -> Value {
    let downstream = p.dag.downstream(i, None);
    let mut expanded = BTreeSet::new();
    let tree = impact_tree(p, i, &mut expanded);
    json!({
        "model": n.name,
        "type": node_type(n),
        "direct_dependents": p.dag.children[i].iter().map(|&d| &p.nodes[d].name).collect::<Vec<_>>(),
        "downstream": downstream.iter().map(|&d| json!({
            "name": p.nodes[d].name,
            "type": node_type(&p.nodes[d]),
            "materialization": p.nodes[d].materialization.as_str(),
        })).collect::<Vec<_>>(),
        "total_downstream_count": downstream.len(),
        "tree": tree,
    })
}

fn impact_tree(p: &Project, i: usize, expanded: &mut BTreeSet<usize>) -> Value {
    let n = &p.nodes[i];
    if !expanded.insert(i) {
        return json!({"name": n.name, "type": node_type(n), "children": [], "repeated": true,
                      "total_downstream_count": p.dag.downstream(i, None).len()});
    }
    let children: Vec<Value> = p.dag.children[i]
        .iter()
        .map(|&c| impact_tree(p, c, expanded))
        .collect();
    json!({
        "name": n.name,
        "type": node_type(n),
        "children": children,
        "total_downstream_count": p.dag.downstream(i, None).len(),
    })
}
