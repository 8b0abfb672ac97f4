//! Request middleware: request id, one log line per request, internal-error logging and
//! HTML error pages for browsers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use askama::Template;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use tracing::Instrument;

use crate::error::ErrorInfo;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Gives the request an id (`x-request-id`), logs it once when answered, and logs the cause
/// of an internal error (which the client never sees) with that id.
pub async fn log_requests(req: Request, next: Next) -> Response {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let wants_html = !path.starts_with("/api/")
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    let started = Instant::now();
    let span = tracing::info_span!("request", id);
    let mut response = next.run(req).instrument(span).await;
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Some(cause) = response
        .extensions()
        .get::<ErrorInfo>()
        .and_then(|i| i.internal.as_ref())
    {
        tracing::error!(request_id = id, %method, %path, cause = %cause, "internal error");
    }
    tracing::info!(request_id = id, %method, %path, status, elapsed_ms, "request");
    if wants_html && let Some(info) = response.extensions().get::<ErrorInfo>().cloned() {
        response = error_page(&info, id);
    }
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    code: &'a str,
    message: &'a str,
    request_id: u64,
}

fn error_page(info: &ErrorInfo, request_id: u64) -> Response {
    let page = ErrorPage {
        status: info.status.as_u16(),
        reason: info.status.canonical_reason().unwrap_or("Error"),
        code: info.code,
        message: &info.message,
        request_id,
    };
    match page.render() {
        Ok(html) => (info.status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render the error page");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}
