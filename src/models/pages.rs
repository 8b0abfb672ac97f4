//! The models pages: `/models` (every model with its status, materialization, last run
//! and tests; filter and search; Run and Run downstream) and `/models/{name}` (its SQL,
//! raw and compiled, its columns with the upstream columns each comes from, tests with failing samples, and the lineage graph).
//! Both are rendered from the same functions as `/api/dbt/models` and
//! `/api/catalog/models/{name}`; their `#live` part is fetched again on model events.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::ProjectError;
use super::column_lineage::Check;
use super::handlers::{ModelDetail, ModelView, model_detail, model_views};
use crate::app::AppState;
use crate::auth::{Permission, Principal};
use crate::error::Result;
use crate::web::extract::Path;
use crate::web::page::{Nav, filters, render};

#[derive(Template)]
#[template(path = "models.html")]
struct ModelsPage {
    nav: Nav,
    run: bool,
    project: String,
    errors: Vec<ProjectError>,
    models: Vec<ModelView>,
    running: usize,
    failing: usize,
    never_run: usize,
}

/// `GET /models`.
pub(crate) async fn models_page(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response> {
    let models = model_views(&state).await?;
    let failing = models.iter().filter(|m| m.failing()).count();
    let never_run = models.iter().filter(|m| m.status.is_none()).count();
    render(&ModelsPage {
        nav: Nav::of(&state, &principal, "/models"),
        run: principal.can(Permission::DbtRun),
        project: state.models.project().name.clone(),
        errors: state.models.problems(),
        running: state.models.running().len(),
        failing,
        never_run,
        models,
    })
}

#[derive(Template)]
#[template(path = "model.html")]
struct ModelPage {
    nav: Nav,
    run: bool,
    lineage: bool,
    m: ModelDetail,
    /// The failing samples of each test, as pretty JSON.
    errors: Vec<ProjectError>,
}

impl ModelPage {
    /// The column tests, then the model's own.
    fn all_tests(&self) -> Vec<&super::handlers::TestView> {
        self.m
            .columns
            .iter()
            .flat_map(|c| c.tests.iter())
            .chain(self.m.tests.iter())
            .collect()
    }

    /// Whether the column lineage agrees with DuckDB (only then is it shown plainly).
    fn lineage_verified(&self) -> bool {
        matches!(self.m.column_lineage, Some(Check::Verified))
    }

    /// What to say when the column lineage is not verified.
    fn lineage_warning(&self) -> Option<String> {
        match self.m.column_lineage.as_ref()? {
            Check::Verified => None,
            Check::Mismatch { message, .. } => Some(format!(
                "The column lineage below does not match DuckDB's columns for this SQL ({message}); do not rely on it."
            )),
            Check::Unverified { message } => Some(format!(
                "The column lineage could not be checked against DuckDB: {message}."
            )),
        }
    }

    fn samples(samples: &Option<serde_json::Value>) -> String {
        samples
            .as_ref()
            .and_then(|s| serde_json::to_string_pretty(s).ok())
            .unwrap_or_default()
    }
}

/// `GET /models/{name}`.
pub(crate) async fn model_page(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Response> {
    let m = model_detail(&state, &name).await?;
    render(&ModelPage {
        nav: Nav::of(&state, &principal, "/models"),
        run: principal.can(Permission::DbtRun) && m.resource_type == "model",
        lineage: principal.can(Permission::GovernanceView),
        errors: state.models.problems(),
        m,
    })
}
