//! Request middleware: request id, one log line per request, internal-error logging and
//! HTML error pages for browsers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use askama::Template;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use tracing::Instrument;

use crate::error::ErrorInfo;
use crate::web::page::filters;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The route template that answered (`/invite/{token}`), carried on the response so that
/// [`log_requests`], outside the router, logs it instead of the path: paths carry
/// invitation tokens, and a log line must never hold a credential.
#[derive(Clone)]
struct Route(String);

/// Route layer: records the matched route template on the response.
pub(crate) async fn record_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let mut response = next.run(req).await;
    if let Some(route) = route {
        response.extensions_mut().insert(Route(route));
    }
    response
}

/// Gives the request an id (`x-request-id`), logs it once when answered, and logs the cause
/// of an internal error (which the client never sees) with that id. The line names the
/// route template, never the raw path (see [`Route`]).
pub(crate) async fn log_requests(req: Request, next: Next) -> Response {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let request_path = req.uri().path();
    let wants_html = !request_path.starts_with("/api/")
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    let started = Instant::now();
    let span = tracing::info_span!("request", id);
    let mut response = next.run(req).instrument(span).await;
    let path = response
        .extensions()
        .get::<Route>()
        .map_or_else(|| "(no route)".to_owned(), |r| r.0.clone());
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

/// The content security policy of every page: scripts and styles only from `/static`
/// (no inline script, no inline handler), no framing by any site.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Security headers on every response; pages also get the content security policy and
/// may not be framed (clickjacking).
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    let is_page = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    if is_page {
        headers
            .entry(header::CONTENT_SECURITY_POLICY)
            .or_insert(HeaderValue::from_static(PAGE_POLICY));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
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
