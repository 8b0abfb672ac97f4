//! The shared page layout: what the navigation shows a signed-in user, and rendering.
//!
//! Every page of a signed-in user extends `templates/app.html`, which reads a [`Nav`]:
//! the links the user's role may follow, who is signed in, the CSRF token the page's
//! script sends, and the sources syncing right now (the live indicator starts from this
//! and follows `/ws`).

use askama::Template;
use axum::response::{Html, IntoResponse, Response};

use crate::app::AppState;
use crate::auth::{Permission, Principal, Via};
use crate::error::{AppError, Result};

/// One link of the main navigation.
pub(crate) struct Link {
    pub(crate) href: &'static str,
    pub(crate) label: &'static str,
    pub(crate) current: bool,
}

pub(crate) struct Nav {
    pub(crate) email: String,
    pub(crate) role: &'static str,
    pub(crate) csrf: String,
    pub(crate) can_sign_out: bool,
    pub(crate) links: Vec<Link>,
    pub(crate) settings: Vec<Link>,
    pub(crate) syncing: Vec<String>,
}

/// The main navigation: (path, label, permission needed).
const MAIN: &[(&str, &str, Option<Permission>)] = &[
    ("/", "Overview", Some(Permission::SourceView)),
    ("/sources", "Sources", Some(Permission::SourceView)),
    ("/models", "Models", Some(Permission::DbtView)),
    ("/query", "Query", Some(Permission::QueryExecute)),
    ("/schedules", "Schedules", Some(Permission::SchedulerView)),
    ("/logs", "Logs", Some(Permission::LogsView)),
    ("/health", "Health", Some(Permission::HealthView)),
];

const SETTINGS: &[(&str, &str, Option<Permission>)] = &[
    ("/settings/account", "Account", None),
    ("/settings/users", "Users", Some(Permission::UsersManage)),
    (
        "/settings/secrets",
        "Secrets",
        Some(Permission::ConfigManage),
    ),
];

fn links(
    p: &Principal,
    current: &str,
    all: &[(&'static str, &'static str, Option<Permission>)],
) -> Vec<Link> {
    all.iter()
        .filter(|(_, _, need)| need.is_none_or(|need| p.can(need)))
        .map(|&(href, label, _)| Link {
            href,
            label,
            // "/sources/x" is still under Sources; "/" is only itself.
            current: current == href || (href != "/" && current.starts_with(&format!("{href}/"))),
        })
        .collect()
}

impl Nav {
    /// The navigation of `principal` on the page at `current` (a path).
    pub(crate) fn of(state: &AppState, p: &Principal, current: &str) -> Self {
        let (csrf, can_sign_out) = match &p.via {
            Via::Session { csrf, .. } => (csrf.clone(), true),
            _ => (String::new(), false),
        };
        Self {
            email: p.email.clone(),
            role: p.role.as_str(),
            csrf,
            can_sign_out,
            links: links(p, current, MAIN),
            settings: links(p, current, SETTINGS),
            syncing: state.syncs.running(),
        }
    }
}

pub(crate) fn render(page: &impl Template) -> Result<Response> {
    let html = page
        .render()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot render a page: {e}")))?;
    Ok(Html(html).into_response())
}

/// Filters the page templates use (askama finds them as `filters` in the page's module).
pub mod filters {
    use std::fmt::Display;

    /// 1234567 → "1,234,567"; anything that is not a whole number is left as it is.
    pub(crate) fn thousands<T: Display>(
        value: T,
        _: &dyn askama::Values,
    ) -> askama::Result<String> {
        let text = value.to_string();
        let (sign, digits) = text
            .strip_prefix('-')
            .map_or(("", text.as_str()), |d| ("-", d));
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(text);
        }
        let mut out = String::with_capacity(text.len() + digits.len() / 3);
        out.push_str(sign);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        Ok(out)
    }

    /// The URL of a static file, with its content hash (served as immutable).
    pub(crate) fn asset<T: Display>(name: T, _: &dyn askama::Values) -> askama::Result<String> {
        Ok(crate::web::assets::url(&name.to_string()))
    }

    /// A status code as words.
    pub(crate) fn label<T: Display>(
        value: T,
        _: &dyn askama::Values,
    ) -> askama::Result<&'static str> {
        Ok(match value.to_string().as_str() {
            "syncing" => "Syncing",
            "not_synced" => "No data yet",
            "failed" => "Failed",
            "empty" => "Empty",
            "synced" => "Synced",
            "loaded" => "Loaded",
            "not_loaded" => "Waiting",
            "unsupported" => "Not a data file",
            "writing" => "Still being written",
            "deleted" => "Deleted",
            "success" => "Succeeded",
            "partial" => "Partly failed",
            "cancelled" => "Cancelled",
            "running" => "Running",
            "queued" => "Queued",
            "info" => "Info",
            "warning" => "Warning",
            "error" => "Error",
            "skipped" => "Skipped",
            "pass" => "Passed",
            "fail" => "Failed",
            "warn" => "Warned",
            _ => "Unknown",
        })
    }

    /// An RFC 3339 time as "2026-11-23 14:05 UTC" (the page's script shows local times).
    pub(crate) fn when<T: Display>(value: T, _: &dyn askama::Values) -> askama::Result<String> {
        let text = value.to_string();
        Ok(
            chrono::DateTime::parse_from_rfc3339(&text).map_or(text, |t| {
                t.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%d %H:%M UTC")
                    .to_string()
            }),
        )
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn thousands_are_separated() {
            let t = |v: i64| super::thousands(v, &()).unwrap();
            assert_eq!(t(0), "0");
            assert_eq!(t(999), "999");
            assert_eq!(t(1000), "1,000");
            assert_eq!(t(-1_234_567), "-1,234,567");
            assert_eq!(super::thousands("n/a", &()).unwrap(), "n/a");
        }
    }
}
