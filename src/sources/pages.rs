//! The overview (`/`), the sources list (`/sources`) and a source's page
//! (`/sources/{name}`), rendered from the same functions as their JSON twins
//! (`/api/overview`, `/api/sources`, `/api/sources/{name}/details`). Each page marks the
//! part that live events change with `id="live"`; its script fetches the page again and
//! swaps that element, so the first view and every update come from one template.

use crate::web::extract::Path;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use chrono::{Duration, Utc};
use serde::Serialize;

use super::handlers::{SourceDetails, source_details};
use super::repo;
use super::views::{self, SourceSummary};
use crate::app::AppState;
use crate::auth::{Permission, Principal};
use crate::error::Result;
use crate::events::activity::{self, LogEntry};
use crate::web::extract::Json;
use crate::web::page::{Nav, filters, render};

/// Days the overview's chart covers.
const CHART_DAYS: i64 = 14;

#[derive(Debug, Serialize)]
pub(crate) struct Totals {
    pub(crate) sources: usize,
    pub(crate) tables: usize,
    pub(crate) rows: u64,
    pub(crate) failed: usize,
    pub(crate) syncing: usize,
    pub(crate) never_synced: usize,
    /// Models of the project, and those whose last build or tests failed.
    pub(crate) models: usize,
    pub(crate) models_failing: usize,
}

/// Rows loaded on one UTC day.
#[derive(Debug, Serialize)]
pub(crate) struct DayRows {
    pub(crate) day: String,
    pub(crate) rows: u64,
    /// Bar height for the chart, 0–100 (share of the busiest day).
    #[serde(skip)]
    pub(crate) percent: u32,
}

#[derive(Debug, Serialize)]
pub(crate) struct Overview {
    pub(crate) totals: Totals,
    pub(crate) sources: Vec<SourceSummary>,
    pub(crate) rows_by_day: Vec<DayRows>,
    pub(crate) recent_activity: Vec<LogEntry>,
}

fn rows_by_day(c: &rusqlite::Connection, days: i64) -> rusqlite::Result<Vec<DayRows>> {
    let today = Utc::now().date_naive();
    let first = today - Duration::days(days - 1);
    let loaded = repo::rows_per_day_since(c, &first.to_string())?;
    let mut out: Vec<DayRows> = first
        .iter_days()
        .take_while(|d| *d <= today)
        .map(|d| {
            let day = d.to_string();
            let rows = loaded.get(&day).copied().unwrap_or(0);
            DayRows {
                day,
                rows,
                percent: 0,
            }
        })
        .collect();
    let max = out.iter().map(|d| d.rows).max().unwrap_or(0).max(1);
    for d in &mut out {
        // At least a sliver for a day with any rows, so it is visible.
        d.percent = match d.rows {
            0 => 0,
            n => u32::try_from((n * 100).div_ceil(max)).unwrap_or(100).max(2),
        };
    }
    Ok(out)
}

pub(crate) async fn overview(state: &AppState) -> Result<Overview> {
    let sources = views::summaries(state, None).await?;
    let (rows_by_day, recent_activity) = state
        .meta
        .read(|c| {
            Ok((
                rows_by_day(c, CHART_DAYS)?,
                activity::read(c, &activity::LogFilter::newest(None, 12))?,
            ))
        })
        .await?;
    let (models, models_failing) = crate::models::handlers::model_totals(state).await?;
    let totals = Totals {
        sources: sources.len(),
        tables: sources.iter().map(|s| s.tables.len()).sum(),
        rows: sources.iter().map(|s| s.row_count).sum(),
        failed: sources.iter().filter(|s| s.status == "failed").count(),
        syncing: sources.iter().filter(|s| s.status == "syncing").count(),
        never_synced: sources.iter().filter(|s| s.status == "not_synced").count(),
        models,
        models_failing,
    };
    Ok(Overview {
        totals,
        sources,
        rows_by_day,
        recent_activity,
    })
}

/// `GET /api/overview`: what the overview page shows.
pub(crate) async fn show_overview(State(state): State<AppState>) -> Result<Json<Overview>> {
    Ok(Json(overview(&state).await?))
}

/// What a signed-in user may do on the source pages.
pub(crate) struct Controls {
    pub(crate) sync: bool,
    pub(crate) upload: bool,
    pub(crate) delete: bool,
    pub(crate) query: bool,
}

impl Controls {
    fn of(p: &Principal) -> Self {
        Self {
            sync: p.can(Permission::SourceSync),
            upload: p.can(Permission::CsvUpload),
            delete: p.can(Permission::CsvDelete),
            query: p.can(Permission::QueryExecute),
        }
    }
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    nav: Nav,
    project: String,
    o: Overview,
    can: Controls,
}

/// `GET /`.
pub(crate) async fn overview_page(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response> {
    render(&OverviewPage {
        nav: Nav::of(&state, &principal, "/"),
        project: state.config.project.name.clone(),
        o: overview(&state).await?,
        can: Controls::of(&principal),
    })
}

#[derive(Template)]
#[template(path = "sources.html")]
struct SourcesPage {
    nav: Nav,
    sources: Vec<SourceSummary>,
}

/// `GET /sources`.
pub(crate) async fn sources_page(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response> {
    render(&SourcesPage {
        nav: Nav::of(&state, &principal, "/sources"),
        sources: views::summaries(&state, None).await?,
    })
}

#[derive(Template)]
#[template(path = "source.html")]
struct SourcePage {
    nav: Nav,
    s: SourceDetails,
    can: Controls,
    max_upload_mb: u64,
}

/// `GET /sources/{name}`.
pub(crate) async fn source_page(
    State(state): State<AppState>,
    principal: Principal,
    Path(name): Path<String>,
) -> Result<Response> {
    let s = source_details(&state, &name).await?;
    render(&SourcePage {
        nav: Nav::of(&state, &principal, &format!("/sources/{name}")),
        s,
        can: Controls::of(&principal),
        max_upload_mb: state.config.api.max_upload_mb,
    })
}
