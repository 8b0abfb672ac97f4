//! `POST /api/query` and `POST /api/query/export`.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};
use tokio_stream_shim::ReceiverStream;

use super::export::{CHANNEL_CHUNKS, ExportJob, Format, export_job};
use super::run::{finish_json, run_to_json, run_trusted_to_json};
use super::{QueryError, cache, history};
use crate::app::AppState;
use crate::auth::Principal;
use crate::db::warehouse::{WarehouseError, sql_ident};
use crate::error::{AppError, Result};
use crate::web::extract::Json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryRequest {
    sql: String,
    /// Keep it in the caller's recent queries (the SQL page sets this).
    #[serde(default)]
    remember: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportRequest {
    sql: String,
    #[serde(default = "default_format")]
    format: String,
    /// CSV: prefix text cells a spreadsheet would run as a formula with `'` (default on).
    #[serde(default = "default_true")]
    escape_formulas: bool,
}

fn default_true() -> bool {
    true
}

fn default_format() -> String {
    "csv".into()
}

/// Runs one read-only statement and answers with at most `api.max_query_rows` rows.
#[tracing::instrument(skip_all)]
pub(crate) async fn run_query(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<QueryRequest>,
) -> Result<Response> {
    let started = std::time::Instant::now();
    let QueryRequest { sql, remember } = req;
    let result = run_user_sql(&state, &principal, sql.clone()).await;
    if remember {
        let outcome = history::Outcome {
            ok: result.is_ok(),
            rows: result.as_ref().ok().map(|(_, rows)| *rows),
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
            error: result.as_ref().err().map(ToString::to_string),
        };
        history::remember(&state, &principal.email, &sql, outcome);
    }
    Ok(json_response(result?.0))
}

/// Answers from the result cache when it can (no worker, no DuckDB), else on a worker,
/// keeping a deterministic answer for the next identical query.
async fn run_user_sql(
    state: &AppState,
    principal: &Principal,
    sql: String,
) -> Result<(Vec<u8>, usize)> {
    let started = Instant::now();
    state.gate.check_size(&sql)?;
    let scope = principal.data_scope();
    if let Some(hit) = state
        .result_cache
        .get(state.warehouse.generation(), scope, &sql)
    {
        return Ok((finish_json(&hit.head, started, Some(true)), hit.rows));
    }
    let timeout = Duration::from_secs(state.config.api.query_timeout_seconds);
    let max_rows = state.config.api.max_query_rows;
    let gate = state.gate.clone();
    let owner = principal.email.clone();
    let job_sql = sql.clone();
    let answer = state
        .warehouse
        .interactive(timeout, move |qc, control| {
            run_to_json(qc, control, &gate, &job_sql, max_rows, &owner)
        })
        .await
        .map_err(AppError::from)??;
    let body = finish_json(&answer.head, started, Some(false));
    if answer.deterministic {
        let entry = cache::Entry {
            head: answer.head,
            rows: answer.rows,
        };
        let now = state.warehouse.generation();
        state
            .result_cache
            .put(answer.generation, now, scope, &sql, entry);
    }
    Ok((body, answer.rows))
}

fn json_response(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The first `limit` rows of `schema.table` (a table Kura knows, named by the caller), in
/// `/api/query`'s shape. Runs on the same hardened interactive workers as user SQL; only
/// the gate is skipped, since the statement is Kura's own with quoted identifiers.
pub(crate) async fn run_internal_select(
    state: &AppState,
    schema: &str,
    table: &str,
    limit: usize,
) -> Result<Response> {
    let timeout = Duration::from_secs(state.config.api.query_timeout_seconds);
    let sql = format!(
        "SELECT * FROM {}.{} LIMIT {limit}",
        sql_ident(schema),
        sql_ident(table)
    );
    let body = state
        .warehouse
        .interactive(timeout, move |qc, control| {
            run_trusted_to_json(qc, control, &sql, limit)
        })
        .await
        .map_err(AppError::from)??;
    Ok(json_response(body))
}

/// Streams the whole result of one read-only statement as CSV, NDJSON or Parquet.
///
/// At most `query_workers - 1` exports run at once (an export holds a worker for as long
/// as its client reads), so queries always have a worker. Until its first rows exist an
/// export is held to the query timeout; the job is cancelled as soon as the client goes
/// away, whether before or after the response started.
#[tracing::instrument(skip_all)]
pub(crate) async fn export_query(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<ExportRequest>,
) -> Result<Response> {
    let format = Format::parse(&req.format)?;
    state.gate.check_size(&req.sql)?;
    let permit = state
        .exports
        .clone()
        .try_acquire_owned()
        .map_err(|_| AppError::Busy { retry_after: 5 })?;
    let timeout = Duration::from_secs(state.config.api.export_timeout_seconds);
    let first_rows = Duration::from_secs(state.config.api.query_timeout_seconds);
    let (started_tx, started_rx) = oneshot::channel();
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let gate = state.gate.clone();
    let warehouse = state.warehouse.clone();
    let request = ExportJob {
        sql: req.sql,
        format,
        escape_formulas: req.escape_formulas,
        owner: principal.email.clone(),
    };
    let client = tx.clone();
    let shutdown = state.tasks.token();
    // The job outlives this handler (it feeds the body), so it runs in its own task. It
    // ends when the result is written, the export times out, or the client goes away:
    // the body's receiver is dropped, `closed()` fires, and dropping the warehouse future
    // cancels the job (its running statement is interrupted).
    let job = tokio::spawn(async move {
        let _permit = permit;
        let work = warehouse.interactive(timeout, move |qc, control| {
            export_job(qc, control, &gate, &request, started_tx, tx);
        });
        tokio::select! {
            result = work => result,
            () = client.closed() => Err(WarehouseError::Cancelled),
            () = shutdown.cancelled() => Err(WarehouseError::Closed),
        }
    });
    match tokio::time::timeout(first_rows, started_rx).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => return Err(e.into()),
        // The job never started: the queue was full, the server is stopping, or it timed out.
        Ok(Err(_)) => {
            return Err(match job.await {
                Ok(Err(e)) => AppError::from(e),
                Ok(Ok(())) => AppError::Internal(anyhow::anyhow!("export ended before it started")),
                Err(e) => AppError::Internal(e.into()),
            });
        }
        Err(_) => {
            job.abort();
            return Err(QueryError::Timeout {
                seconds: first_rows.as_secs(),
            }
            .into());
        }
    }
    let file_name = format!(
        "kura-export-{}.{}",
        chrono::Utc::now().format("%Y%m%d-%H%M%S"),
        format.extension()
    );
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}

/// A `Stream` over a tokio mpsc receiver (what tokio-stream's wrapper does, without the crate).
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::sync::mpsc::Receiver;

    pub(super) struct ReceiverStream<T>(Receiver<T>);

    impl<T> ReceiverStream<T> {
        pub(super) fn new(rx: Receiver<T>) -> Self {
            Self(rx)
        }
    }

    impl<T> futures_util::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}
