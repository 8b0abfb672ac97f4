//! HTTP handlers of the activity log: `/api/logs`, `/api/sources/{name}/logs` and the
//! logs page.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::activity::{self, LogEntry, LogFilter};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{AppError, Result};
use crate::web::extract::{List, Path, Query};
use crate::web::page::{Nav, filters, render};

#[derive(Deserialize)]
pub(crate) struct LimitQuery {
    limit: Option<i64>,
}

/// `GET /api/sources/{name}/logs?limit=100`: the source's log lines, newest first (an
/// unknown name has none, as the reference answers).
pub(crate) async fn list_source_logs(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<LimitQuery>,
) -> Result<List<LogEntry>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let logs = state
        .meta
        .read(move |c| activity::read(c, &LogFilter::newest(Some(&name), limit)))
        .await?;
    Ok(List::all(logs))
}

/// `GET /api/logs?limit=1000&level=&source=&q=&since=&until=`: the activity log, newest
/// first.
pub(crate) async fn list_logs(
    State(state): State<AppState>,
    Query(filter): Query<LogFilter>,
) -> Result<List<LogEntry>> {
    Ok(List::all(logs(&state, filter).await?))
}

pub(crate) async fn logs(state: &AppState, filter: LogFilter) -> Result<Vec<LogEntry>> {
    state
        .meta
        .read(move |c| activity::read(c, &filter))
        .await
        .map_err(AppError::from)
}

#[derive(Template)]
#[template(path = "logs.html")]
struct LogsPage {
    nav: Nav,
    logs: Vec<LogEntry>,
    filter: LogFilter,
    sources: Vec<String>,
}

/// `GET /logs?level=&source=&q=&since=&until=`: the same rows as `/api/logs`.
pub(crate) async fn logs_page(
    State(state): State<AppState>,
    principal: Principal,
    Query(mut filter): Query<LogFilter>,
) -> Result<Response> {
    filter.limit = Some(filter.limit.unwrap_or(300));
    let logs = logs(&state, filter.clone()).await?;
    render(&LogsPage {
        nav: Nav::of(&state, &principal, "/logs"),
        logs,
        filter,
        sources: state.sources().keys().cloned().collect(),
    })
}
