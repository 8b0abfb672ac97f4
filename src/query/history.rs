//! The SQL page's recent queries, per user, in the metadata store.
//!
//! Only queries sent with `"remember": true` (the SQL page does) are kept: scripts and
//! dashboards hitting `/api/query` thousands of times a minute should not each cost a
//! metadata write.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::Result;
use crate::web::extract::{Json, Query};

/// Entries kept per user.
const KEEP: i64 = 200;

/// How one remembered query went.
pub(crate) struct Outcome {
    pub(crate) ok: bool,
    pub(crate) rows: Option<usize>,
    pub(crate) elapsed_ms: f64,
    pub(crate) error: Option<String>,
}

/// Appends a query to `email`'s history, in the background (a tracked task): the answer
/// never waits for it.
pub(crate) fn remember(state: &AppState, email: &str, sql: &str, outcome: Outcome) {
    let (meta, email, sql) = (state.meta.clone(), email.to_owned(), sql.to_owned());
    state.tasks.spawn("query_history", async move {
        let written = meta
            .write(move |tx| {
                tx.execute(
                    "INSERT INTO query_history (user_email, sql, ran_at, ok, rows, elapsed_ms, error) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    rusqlite::params![
                        email,
                        sql,
                        crate::time::now_text(),
                        outcome.ok,
                        outcome.rows.map(|r| r as i64),
                        outcome.elapsed_ms,
                        outcome.error
                    ],
                )?;
                tx.execute(
                    "DELETE FROM query_history WHERE user_email = ?1 AND id NOT IN \
                     (SELECT id FROM query_history WHERE user_email = ?1 ORDER BY id DESC LIMIT ?2)",
                    rusqlite::params![email, KEEP],
                )
            })
            .await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "cannot record a query in the history");
        }
    });
}

#[derive(Debug, Serialize)]
pub(crate) struct Entry {
    pub(crate) sql: String,
    pub(crate) ran_at: String,
    pub(crate) ok: bool,
    pub(crate) rows: Option<i64>,
    pub(crate) elapsed_ms: Option<f64>,
    pub(crate) error: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct HistoryQuery {
    limit: Option<i64>,
}

/// `GET /api/query/history?limit=20`: the caller's recent distinct queries, newest first.
pub(crate) async fn list_history(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Value>> {
    let limit = q.limit.unwrap_or(20).clamp(1, KEEP);
    let email = principal.email.clone();
    let entries = state
        .meta
        .read(move |c| {
            let mut stmt = c.prepare(
                "SELECT sql, ran_at, ok, rows, elapsed_ms, error FROM query_history \
                 WHERE id IN (SELECT max(id) FROM query_history WHERE user_email = ?1 GROUP BY sql) \
                 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(rusqlite::params![email, limit], |r| {
                Ok(Entry {
                    sql: r.get(0)?,
                    ran_at: r.get(1)?,
                    ok: r.get(2)?,
                    rows: r.get(3)?,
                    elapsed_ms: r.get(4)?,
                    error: r.get(5)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?;
    Ok(Json(json!({"queries": entries})))
}
