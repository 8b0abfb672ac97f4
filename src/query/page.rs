//! `GET /query`: the SQL page. The table list is the same [`views::summaries`] that
//! `/api/sources` returns; the editor runs `/api/query` and exports through
//! `/api/query/export`.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::Result;
use crate::sources::views::{self, TableSummary};
use crate::web::extract::Query;
use crate::web::page::{Nav, filters, render};

#[derive(Template)]
#[template(path = "query.html")]
struct QueryPage {
    nav: Nav,
    tables: Vec<TableSummary>,
    initial_sql: String,
    max_rows: usize,
    timeout_seconds: u64,
}

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    /// Start with `SELECT * FROM <table> LIMIT 100` (the source page's "Query" link).
    table: Option<String>,
}

pub(crate) async fn query_page(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PageQuery>,
) -> Result<Response> {
    let tables: Vec<TableSummary> = views::summaries(&state, None)
        .await?
        .into_iter()
        .flat_map(|s| s.tables)
        .collect();
    // Only a table that exists is put into the editor, so the link cannot inject SQL.
    let initial_sql = q
        .table
        .filter(|t| tables.iter().any(|known| &known.name == t))
        .map(|t| format!("SELECT *\nFROM {t}\nLIMIT 100"))
        .unwrap_or_default();
    render(&QueryPage {
        nav: Nav::of(&state, &principal, "/query"),
        tables,
        initial_sql,
        max_rows: state.config.api.max_query_rows,
        timeout_seconds: state.config.api.query_timeout_seconds,
    })
}
