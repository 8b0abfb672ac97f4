//! The schedules page (`/schedules`): rendered from the same functions as the JSON routes
//! (`/api/schedules`, `/api/schedules/file`, `/api/sources/unscheduled`,
//! `/api/notifications/config`). Its `#live` part is fetched again on schedule events;
//! `?history=<name>` renders that schedule's latest jobs under it.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use super::handlers::{described, unscheduled, webhooks};
use super::repo;
use crate::app::AppState;
use crate::auth::{Permission, Principal};
use crate::error::Result;
use crate::web::extract::Query;
use crate::web::page::{Nav, filters, render};

/// Jobs shown in a schedule's history.
const HISTORY_ROWS: u32 = 20;

/// One schedule as the page lists it.
struct Row {
    name: String,
    enabled: bool,
    warnings: Vec<String>,
    source_errors: Vec<String>,
    description: String,
    timezone: String,
    expression: String,
    sources: String,
    next_run: Option<String>,
    active_job: Option<i64>,
    last_status: Option<String>,
    last_run_at: Option<String>,
}

impl Row {
    /// From the schedule as `/api/schedules` describes it (one description for both).
    fn of(v: &Value) -> Self {
        let text = |k: &str| v[k].as_str().map(str::to_owned);
        let list = |k: &str| -> Vec<String> {
            v[k].as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        Self {
            name: text("name").unwrap_or_default(),
            enabled: v["enabled"].as_bool().unwrap_or(true),
            warnings: list("warnings"),
            source_errors: list("source_errors"),
            description: text("description").unwrap_or_default(),
            timezone: text("timezone").unwrap_or_else(|| "UTC".into()),
            expression: text("expression").unwrap_or_default(),
            sources: list("sources").join(", "),
            next_run: text("next_run"),
            active_job: v["active_job"].as_i64(),
            last_status: text("last_status"),
            last_run_at: text("last_run_at"),
        }
    }
}

/// One job in a schedule's history.
struct Job {
    started_at: String,
    trigger: String,
    status: String,
    rows: Option<i64>,
    took: Option<String>,
    error: Option<String>,
}

impl Job {
    fn of(v: &Value) -> Self {
        let text = |k: &str| v[k].as_str().map(str::to_owned);
        Self {
            started_at: text("started_at").unwrap_or_default(),
            trigger: text("trigger").unwrap_or_default(),
            status: text("status").unwrap_or_default(),
            rows: v["rows"].as_i64(),
            took: v["duration_ms"]
                .as_f64()
                .map(|ms| format!("{:.1} s", ms / 1000.0)),
            error: text("error"),
        }
    }
}

#[derive(Template)]
#[template(path = "schedules.html")]
struct SchedulesPage {
    nav: Nav,
    manage: bool,
    file_errors: Vec<String>,
    schedules: Vec<Row>,
    /// The schedule whose history is open, and its jobs.
    history: Option<(String, Vec<Job>)>,
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
    let schedules: Vec<Row> = described(&state).await?.iter().map(Row::of).collect();
    let history = match q.history.filter(|h| schedules.iter().any(|s| s.name == *h)) {
        Some(name) => {
            let n = name.clone();
            let (jobs, _) = state
                .meta
                .read(move |c| repo::runs(c, Some(&n), None, HISTORY_ROWS, 0))
                .await?;
            Some((name, jobs.iter().map(Job::of).collect()))
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
