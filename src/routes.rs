//! THE route table: every path, its method and handler, in one file to review.
//!
//! Access control arrives with accounts (roles and permissions per route); until then
//! every route is open to whoever can reach the port, which is loopback by default.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};

use crate::app::AppState;
use crate::error::json_error;
use crate::sources::handlers as src;
use crate::{platform, query, web};

/// Builds the router with its middleware.
pub fn build_router(state: AppState) -> Router {
    // A query body is the SQL (at most api.max_sql_bytes) in JSON: JSON escaping can at
    // most double it; anything larger is refused before it is read whole.
    let query_body_limit = state.config.api.max_sql_bytes * 2 + 4096;
    let api = Router::new()
        .route("/status", get(platform::handlers::show_status))
        .route("/config", get(platform::handlers::show_config))
        .route(
            "/health/platform",
            get(platform::handlers::show_platform_health),
        )
        .route("/query", post(query::handlers::run_query))
        .route("/query/export", post(query::handlers::export_query))
        .route("/sources", get(src::list_sources))
        .route("/sources/{name}/details", get(src::show_source))
        .route("/sources/{name}/sync", post(src::sync_source))
        .route("/sources/{name}/logs", get(src::list_source_logs))
        .route(
            "/sources/{name}/csv-files",
            get(src::list_files).delete(src::delete_file),
        )
        .route("/sync/trigger", post(src::trigger_sync))
        .route("/sync/status/{record_id}", get(src::show_sync_status))
        .route("/logs", get(src::list_logs))
        .route("/watcher/status", get(src::show_watcher_status))
        .layer(DefaultBodyLimit::max(query_body_limit));
    // Uploads stream to disk; their own limit (api.max_upload_mb) is enforced while reading.
    let upload_limit = usize::try_from(state.config.api.max_upload_mb * 1024 * 1024 + 1024 * 1024)
        .unwrap_or(usize::MAX);
    let uploads = Router::new()
        .route("/sources/{name}/upload-csv", post(src::upload_file))
        .layer(DefaultBodyLimit::max(upload_limit));
    let api = api.merge(uploads).fallback(api_not_found);
    Router::new()
        .nest("/api", api)
        .route("/static/{name}", get(web::assets::serve_asset))
        .fallback(page_not_found)
        .layer(middleware::from_fn(web::middleware::log_requests))
        .with_state(state)
}

async fn api_not_found(uri: axum::extract::OriginalUri) -> axum::response::Response {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no API route {}", uri.path()),
    )
}

async fn page_not_found(uri: axum::http::Uri) -> axum::response::Response {
    json_error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("there is no page at {}", uri.path()),
    )
}
