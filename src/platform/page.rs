//! `GET /health`: the platform's health, from the same function as `/api/health/platform`.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::handlers::{PlatformHealth, platform_health};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::Result;
use crate::web::page::{Nav, filters, render};

#[derive(Template)]
#[template(path = "health.html")]
struct HealthPage {
    nav: Nav,
    h: PlatformHealth,
    version: &'static str,
    uptime: String,
}

pub(crate) async fn health_page(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Response> {
    let up = (chrono::Utc::now() - state.started_at).num_seconds().max(0);
    let uptime = match up {
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    };
    render(&HealthPage {
        nav: Nav::of(&state, &principal, "/health"),
        h: platform_health(&state).await,
        version: env!("CARGO_PKG_VERSION"),
        uptime,
    })
}
