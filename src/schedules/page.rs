//! The schedules page (`/schedules`): rendered from the same functions as the JSON routes
//! (`/api/schedules`, `/api/schedules/file`, `/api/sources/unscheduled`,
//! `/api/notifications/config`). Its `#live` part is fetched again on schedule events;
//! `?history=<name>` renders that schedule's latest jobs under it.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use super::handlers::{ScheduleView, described, unscheduled, webhooks};
use super::repo;
use crate::app::AppState;
use crate::auth::{Permission, Principal};
use crate::error::Result;
use crate::web::extract::Query;
use crate::web::page::{Nav, filters, render};

/// Jobs shown in a schedule's history.
const HISTORY_ROWS: u32 = 20;

#[derive(Template)]
#[template(path = "schedules.html")]
struct SchedulesPage {
    nav: Nav,
    manage: bool,
    file_errors: Vec<String>,
    schedules: Vec<ScheduleView>,
    /// The schedule whose history is open, and its jobs.
    history: Option<(String, Vec<repo::Job>)>,
    unscheduled: Vec<String>,
    /// (name, masked URL, format)
    webhooks: Vec<(String, String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    history: Option<String>,
}

/// `GET /schedules[?history=<name>]`.
pub(crate) async fn schedules_page(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PageQuery>,
) -> Result<Response> {
    let current = state.schedules.current();
    let schedules = described(&state).await?;
    let history = match q.history.filter(|h| schedules.iter().any(|s| s.name == *h)) {
        Some(name) => {
            let n = name.clone();
            let (jobs, _) = state
                .meta
                .read(move |c| repo::runs(c, Some(&n), None, HISTORY_ROWS, 0))
                .await?;
            Some((name, jobs))
        }
        None => None,
    };
    render(&SchedulesPage {
        nav: Nav::of(&state, &principal, "/schedules"),
        manage: principal.can(Permission::SchedulerManage),
        file_errors: current.errors.clone(),
        schedules,
        history,
        unscheduled: unscheduled(&state),
        webhooks: webhooks(&state)
            .into_iter()
            .map(|h| (h.name, h.url, h.format))
            .collect(),
    })
}
