//! THE route table: every path, its method, its handler and who may call it, in one file
//! to review. [`table`] builds the router and the list of [`RouteSpec`]s from the same
//! entries, so the access matrix test walks exactly what is served.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::routing::{MethodFilter, on};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

use crate::app::AppState;
use crate::auth::{self, Access, Permission as P};
use crate::config::Config;
use crate::error::json_error;
use crate::sources::handlers as src;
use crate::{events, models, platform, query, schedules, secrets, sources, web};

/// One served route and what it requires.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

struct Table {
    router: Router<AppState>,
    specs: Vec<RouteSpec>,
}

impl Table {
    fn add<H, T>(self, method: Method, path: &'static str, access: Access, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add_limited(method, path, access, handler, None)
    }

    /// `body_limit` replaces the API-wide request body limit for this route.
    fn add_limited<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: H,
        body_limit: Option<usize>,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        let mut route = on(filter, handler)
            .route_layer(middleware::from_fn(move |req: Request, next: Next| {
                auth::middleware::guard(access, req, next)
            }))
            .route_layer(middleware::from_fn(web::middleware::record_route));
        if let Some(limit) = body_limit {
            route = route.layer(DefaultBodyLimit::max(limit));
        }
        self.router = self.router.route(path, route);
        self.specs.push(RouteSpec {
            method,
            path,
            access,
        });
        self
    }
}

fn table(config: &Config) -> Table {
    use Access::{Account, PendingTwoFactor, Permission as Perm, Public, SignedIn};
    use Method as M;
    use auth::{admin, audit, handlers as a, keys};
    // Uploads stream to disk; their own limit (api.max_upload_mb) is enforced while reading.
    let upload_limit =
        usize::try_from(config.api.max_upload_mb * 1024 * 1024 + 1024 * 1024).unwrap_or(usize::MAX);
    let t = Table {
        router: Router::new(),
        specs: Vec::new(),
    };
    t
        // Platform
        .add(
            M::GET,
            "/api/status",
            Perm(P::HealthView),
            platform::handlers::show_status,
        )
        .add(
            M::GET,
            "/api/config",
            Perm(P::ConfigView),
            platform::handlers::show_config,
        )
        .add(
            M::GET,
            "/api/health/platform",
            Perm(P::HealthView),
            platform::handlers::show_platform_health,
        )
        .add(M::GET, "/ws", Perm(P::HealthView), events::ws::upgrade)
        .add(
            M::GET,
            "/api/clients",
            Perm(P::UsersManage),
            events::ws::list_clients,
        )
        // Queries
        .add(
            M::POST,
            "/api/query",
            Perm(P::QueryExecute),
            query::handlers::run_query,
        )
        .add(
            M::POST,
            "/api/query/export",
            Perm(P::QueryExecute),
            query::handlers::export_query,
        )
        .add(
            M::GET,
            "/api/query/history",
            Perm(P::QueryExecute),
            query::history::list_history,
        )
        // Sources and syncs
        .add(
            M::GET,
            "/api/overview",
            Perm(P::SourceView),
            sources::pages::show_overview,
        )
        .add(
            M::GET,
            "/api/sources",
            Perm(P::SourceView),
            src::list_sources,
        )
        .add(
            M::GET,
            "/api/sources/conflicts",
            Perm(P::SourceView),
            src::list_conflicts,
        )
        .add(
            M::GET,
            "/api/sources/{name}/tables/{table}/preview",
            Perm(P::SourceView),
            src::preview_table,
        )
        .add(
            M::GET,
            "/api/sources/{name}/details",
            Perm(P::SourceView),
            src::show_source,
        )
        .add(
            M::POST,
            "/api/sources/{name}/sync",
            Perm(P::SourceSync),
            src::sync_source,
        )
        .add(
            M::GET,
            "/api/sources/{name}/logs",
            Perm(P::SourceView),
            events::handlers::list_source_logs,
        )
        .add(
            M::GET,
            "/api/sources/{name}/csv-files",
            Perm(P::SourceView),
            src::list_files,
        )
        .add(
            M::DELETE,
            "/api/sources/{name}/csv-files",
            Perm(P::CsvDelete),
            src::delete_file,
        )
        .add_limited(
            M::POST,
            "/api/sources/{name}/upload-csv",
            Perm(P::CsvUpload),
            src::upload_file,
            Some(upload_limit),
        )
        .add(
            M::POST,
            "/api/sync/trigger",
            Perm(P::SourceSync),
            src::trigger_sync,
        )
        .add(
            M::GET,
            "/api/sync/status/{record_id}",
            Perm(P::SourceView),
            src::show_sync_status,
        )
        .add(
            M::GET,
            "/api/logs",
            Perm(P::LogsView),
            events::handlers::list_logs,
        )
        .add(
            M::GET,
            "/api/watcher/status",
            Perm(P::SourceView),
            src::show_watcher_status,
        )
        // Schedules
        .add(
            M::GET,
            "/api/schedules",
            Perm(P::SchedulerView),
            schedules::handlers::list_schedules,
        )
        .add(
            M::GET,
            "/api/schedules/file",
            Perm(P::SchedulerView),
            schedules::handlers::show_schedules_file,
        )
        .add(
            M::GET,
            "/api/schedules/history/recent",
            Perm(P::SchedulerView),
            schedules::handlers::recent_history,
        )
        .add(
            M::POST,
            "/api/schedules/reload",
            Perm(P::SchedulerManage),
            schedules::handlers::reload_schedules,
        )
        .add(
            M::GET,
            "/api/schedules/{name}",
            Perm(P::SchedulerView),
            schedules::handlers::show_schedule,
        )
        .add(
            M::GET,
            "/api/schedules/{name}/history",
            Perm(P::SchedulerView),
            schedules::handlers::schedule_history,
        )
        .add(
            M::POST,
            "/api/schedules/{name}/trigger",
            Perm(P::SourceSync),
            schedules::handlers::trigger_schedule,
        )
        .add(
            M::GET,
            "/api/sources/unscheduled",
            Perm(P::SchedulerView),
            schedules::handlers::unscheduled_sources,
        )
        .add(
            M::GET,
            "/api/notifications/config",
            Perm(P::SchedulerView),
            schedules::handlers::notifications_config,
        )
        .add(
            M::POST,
            "/api/schedules/jobs/{job_id}/cancel",
            Perm(P::SchedulerManage),
            schedules::handlers::cancel_job,
        )
        .add(
            M::POST,
            "/api/notifications/test",
            Perm(P::SchedulerManage),
            schedules::handlers::test_notifications,
        )
        // Models
        .add(
            M::GET,
            "/api/dbt/models",
            Perm(P::DbtView),
            models::handlers::list_models,
        )
        .add(
            M::POST,
            "/api/dbt/models/{name}/run",
            Perm(P::DbtRun),
            models::handlers::run_model,
        )
        .add(
            M::POST,
            "/api/dbt/runs",
            Perm(P::DbtRun),
            models::handlers::start_run,
        )
        .add(
            M::GET,
            "/api/dbt/runs",
            Perm(P::DbtView),
            models::handlers::list_runs,
        )
        .add(
            M::GET,
            "/api/dbt/runs/{id}",
            Perm(P::DbtView),
            models::handlers::show_run,
        )
        .add(
            M::POST,
            "/api/dbt/reload",
            Perm(P::DbtRun),
            models::handlers::reload,
        )
        .add(
            M::GET,
            "/api/catalog/models",
            Perm(P::GovernanceView),
            models::handlers::catalog_models,
        )
        .add(
            M::GET,
            "/api/catalog/models/{name}",
            Perm(P::GovernanceView),
            models::handlers::catalog_model,
        )
        .add(
            M::GET,
            "/api/catalog/search",
            Perm(P::GovernanceView),
            models::handlers::catalog_search,
        )
        .add(
            M::GET,
            "/api/catalog/lineage",
            Perm(P::GovernanceView),
            models::handlers::lineage,
        )
        .add(
            M::GET,
            "/api/catalog/impact/{name}",
            Perm(P::GovernanceView),
            models::handlers::impact,
        )
        // Signing in, and one's own account
        .add(M::POST, "/api/auth/login", Public, a::login)
        .add(M::POST, "/api/auth/logout", Public, a::logout)
        .add(M::POST, "/api/auth/accept-invite", Public, a::accept_invite)
        .add(
            M::POST,
            "/api/auth/2fa/verify",
            PendingTwoFactor,
            a::verify_two_factor,
        )
        .add(M::GET, "/api/auth/me", Account, a::me)
        .add(
            M::POST,
            "/api/auth/change-password",
            Account,
            a::change_password,
        )
        .add(M::POST, "/api/auth/2fa/setup", Account, a::setup_two_factor)
        .add(
            M::POST,
            "/api/auth/2fa/verify-setup",
            Account,
            a::verify_two_factor_setup,
        )
        .add(
            M::POST,
            "/api/auth/2fa/disable",
            SignedIn,
            a::disable_two_factor,
        )
        .add(
            M::POST,
            "/api/auth/2fa/regenerate-recovery",
            SignedIn,
            a::regenerate_recovery_codes,
        )
        .add(M::GET, "/api/auth/sessions", SignedIn, a::list_sessions)
        .add(
            M::DELETE,
            "/api/auth/sessions/{id}",
            SignedIn,
            a::delete_session,
        )
        .add(M::GET, "/api/auth/api-keys", SignedIn, keys::list_keys)
        .add(M::POST, "/api/auth/api-keys", SignedIn, keys::create_key)
        .add(
            M::DELETE,
            "/api/auth/api-keys/{id}",
            SignedIn,
            keys::revoke_key,
        )
        // Administration
        .add(
            M::GET,
            "/api/admin/users",
            Perm(P::UsersManage),
            admin::list_users,
        )
        .add(
            M::POST,
            "/api/admin/users",
            Perm(P::UsersManage),
            admin::invite_user,
        )
        .add(
            M::POST,
            "/api/admin/users/{id}/reinvite",
            Perm(P::UsersManage),
            admin::reinvite_user,
        )
        .add(
            M::PUT,
            "/api/admin/users/{id}/role",
            Perm(P::UsersManage),
            admin::change_role,
        )
        .add(
            M::POST,
            "/api/admin/users/{id}/reset-password",
            Perm(P::UsersManage),
            admin::reset_password,
        )
        .add(
            M::POST,
            "/api/admin/users/{id}/deactivate",
            Perm(P::UsersManage),
            admin::deactivate_user,
        )
        .add(
            M::POST,
            "/api/admin/users/{id}/reactivate",
            Perm(P::UsersManage),
            admin::reactivate_user,
        )
        .add(
            M::DELETE,
            "/api/admin/users/{id}",
            Perm(P::UsersManage),
            admin::delete_user,
        )
        .add(
            M::POST,
            "/api/admin/users/{id}/unlock",
            Perm(P::UsersManage),
            admin::unlock_user,
        )
        .add(
            M::POST,
            "/api/admin/users/{id}/revoke-sessions",
            Perm(P::UsersManage),
            admin::revoke_sessions,
        )
        .add(
            M::GET,
            "/api/secrets",
            Perm(P::ConfigManage),
            secrets::list_secrets,
        )
        .add(
            M::POST,
            "/api/secrets",
            Perm(P::ConfigManage),
            secrets::set_secret,
        )
        .add(
            M::DELETE,
            "/api/secrets/{key}",
            Perm(P::ConfigManage),
            secrets::delete_secret,
        )
        .add(M::GET, "/api/audit", Perm(P::AuditView), audit::list_audit)
        // Pages
        .add(
            M::GET,
            "/",
            Perm(P::SourceView),
            sources::pages::overview_page,
        )
        .add(
            M::GET,
            "/sources",
            Perm(P::SourceView),
            sources::pages::sources_page,
        )
        .add(
            M::GET,
            "/sources/{name}",
            Perm(P::SourceView),
            sources::pages::source_page,
        )
        .add(
            M::GET,
            "/query",
            Perm(P::QueryExecute),
            query::page::query_page,
        )
        .add(
            M::GET,
            "/logs",
            Perm(P::LogsView),
            events::handlers::logs_page,
        )
        .add(
            M::GET,
            "/health",
            Perm(P::HealthView),
            platform::page::health_page,
        )
        .add(M::GET, "/login", Public, auth::pages::login_page)
        .add(M::GET, "/invite/{token}", Public, auth::pages::invite_page)
        .add(M::GET, "/setup", Account, auth::pages::setup_page)
        .add(
            M::GET,
            "/settings/account",
            Account,
            auth::pages::account_page,
        )
        .add(
            M::GET,
            "/settings/users",
            Perm(P::UsersManage),
            auth::pages::users_page,
        )
        .add(
            M::GET,
            "/settings/secrets",
            Perm(P::ConfigManage),
            auth::pages::secrets_page,
        )
        .add(
            M::GET,
            "/models",
            Perm(P::DbtView),
            models::pages::models_page,
        )
        .add(
            M::GET,
            "/models/{name}",
            Perm(P::DbtView),
            models::pages::model_page,
        )
        .add(
            M::GET,
            "/schedules",
            Perm(P::SchedulerView),
            schedules::page::schedules_page,
        )
        // Static files carry no data.
        .add(M::GET, "/static/{name}", Public, web::assets::serve_asset)
}

/// Every served route with its access rule (for the access matrix test and docs).
pub fn route_specs() -> Vec<RouteSpec> {
    table(&Config::default()).specs
}

/// Builds the router with its middleware.
pub(crate) fn build_router(state: AppState) -> Router {
    // A query body is the SQL (at most api.max_sql_bytes) in JSON: JSON escaping can at
    // most double it; anything larger is refused before it is read whole.
    let body_limit = state.config.api.max_sql_bytes * 2 + 4096;
    let auth_config = &state.config.auth;
    let sessions = SessionManagerLayer::new(state.auth.sessions.clone())
        .with_name(auth::SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        // Kura serves plain HTTP itself; beyond loopback it is expected behind TLS, and
        // the cookie must then never travel in the clear.
        .with_secure(!state.config.platform.bind.is_loopback())
        .with_expiry(Expiry::OnInactivity(
            tower_sessions::cookie::time::Duration::minutes(
                i64::try_from(auth_config.session_idle_minutes).unwrap_or(i64::MAX / 60),
            ),
        ));
    table(&state.config)
        .router
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::middleware::authenticate,
        ))
        .layer(sessions)
        .layer(middleware::from_fn(web::middleware::log_requests))
        .layer(middleware::from_fn(web::middleware::security_headers))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    let what = if uri.path().starts_with("/api/") {
        "no API route"
    } else {
        "there is no page at"
    };
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("{what} {}", uri.path()),
    )
}
