//! The HTTP error boundary: [`AppError`] and the one place that decides what a client sees.
//!
//! Every error leaves as `{"error": "<snake_case_code>", "message": "...", "detail": "...",
//! ...context}` with the matching status: `error`/`message` is Kura's dialect, `detail` the
//! FastAPI one the reference product's clients read, and `error_code` (the reference's
//! `DANGO-…` code) is added where the reference names one for the same situation. [`AppError::Internal`] never sends its text: the response
//! carries a generic message and the real cause travels in the response extensions, where
//! `web::middleware` logs it once with the request id. Browser requests for pages get the
//! same information rendered through `templates/error.html` (see `web::middleware`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::query::QueryError;

/// Result alias for handlers and the code they call.
pub(crate) type Result<T, E = AppError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub(crate) enum AppError {
    #[error("{0}")]
    NotFound(String),
    /// Not found, with a more specific code than `not_found` (an unknown job, say).
    #[error("{message}")]
    Missing { code: &'static str, message: String },
    /// A request the client must change: `code` is the stable machine-readable reason.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// A well-formed request whose fields do not validate (422, as FastAPI answers).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The request conflicts with the current state (a sync running, a file existing).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{0}")]
    PayloadTooLarge(String),
    /// No credentials, or credentials that are no longer valid.
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: String },
    /// Signed in, but not allowed. `permission` names what is missing, when it is one.
    #[error("{message}")]
    Forbidden {
        code: &'static str,
        message: String,
        permission: Option<&'static str>,
    },
    /// The account is locked after repeated failed sign-ins.
    #[error("too many failed sign-ins; try again in {retry_after} s")]
    Locked { retry_after: u64 },
    #[error("too many requests; retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Every worker is busy and the queue is full; try again shortly.
    #[error("the server is busy; retry in {retry_after} s")]
    Busy { retry_after: u64 },
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Another error with more fields for its body (a weak password's `issues`).
    #[error("{error}")]
    WithContext {
        error: Box<AppError>,
        context: Value,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What the error boundary decided, attached to the response for logging and HTML rendering.
#[derive(Debug, Clone)]
pub(crate) struct ErrorInfo {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    /// The cause of an internal error: logged, never sent.
    pub(crate) internal: Option<String>,
}

impl AppError {
    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unauthenticated {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
            permission: None,
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, String, Map<String, Value>) {
        let mut ctx = Map::new();
        let (status, code, message) = match self {
            Self::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone()),
            Self::Missing { code, message } => (StatusCode::NOT_FOUND, *code, message.clone()),
            Self::BadRequest { code, message } => (StatusCode::BAD_REQUEST, *code, message.clone()),
            Self::Invalid { code, message } => {
                (StatusCode::UNPROCESSABLE_ENTITY, *code, message.clone())
            }
            Self::Conflict { code, message } => (StatusCode::CONFLICT, *code, message.clone()),
            Self::PayloadTooLarge(m) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                m.clone(),
            ),
            Self::Unauthenticated { code, message } => {
                (StatusCode::UNAUTHORIZED, *code, message.clone())
            }
            Self::Forbidden {
                code,
                message,
                permission,
            } => {
                if let Some(p) = permission {
                    ctx.insert("permission".into(), json!(p));
                }
                (StatusCode::FORBIDDEN, *code, message.clone())
            }
            Self::Locked { retry_after } => {
                ctx.insert("retry_after".into(), json!(retry_after));
                (StatusCode::LOCKED, "account_locked", self.to_string())
            }
            Self::RateLimited { retry_after } => {
                ctx.insert("retry_after".into(), json!(retry_after));
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    self.to_string(),
                )
            }
            Self::Query(e) => {
                ctx = e.context();
                (e.status(), e.code(), e.to_string())
            }
            Self::Busy { retry_after } => {
                ctx.insert("retry_after".into(), json!(retry_after));
                (StatusCode::SERVICE_UNAVAILABLE, "busy", self.to_string())
            }
            Self::ShuttingDown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                self.to_string(),
            ),
            Self::WithContext { error, context } => {
                let (status, code, message, mut inner) = error.parts();
                if let Value::Object(extra) = context {
                    inner.extend(extra.clone());
                }
                return (status, code, message, inner);
            }
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "an internal error occurred; it has been logged with the request id".into(),
            ),
        };
        (status, code, message, ctx)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code, message, ctx) = self.parts();
        let mut response =
            (status, axum::Json(error_body(status, code, &message, ctx))).into_response();
        if let Self::Busy { retry_after }
        | Self::Locked { retry_after }
        | Self::RateLimited { retry_after } = &self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        let internal = match &self {
            Self::Internal(e) => Some(format!("{e:#}")),
            _ => None,
        };
        response.extensions_mut().insert(ErrorInfo {
            status,
            code,
            message,
            internal,
        });
        response
    }
}

/// The one error body: Kura's `error`/`message`, FastAPI's `detail` (for a 422 its list
/// of validation errors, `[{type, loc, msg, input}]`; otherwise the message), the
/// reference's `error_code` where it has one, then the error's own context.
fn error_body(status: StatusCode, code: &str, message: &str, ctx: Map<String, Value>) -> Value {
    let mut body = Map::new();
    body.insert("error".into(), json!(code));
    body.insert("message".into(), json!(message));
    let detail = if status == StatusCode::UNPROCESSABLE_ENTITY {
        json!([{"type": code, "loc": ["request"], "msg": message, "input": null}])
    } else {
        json!(message)
    };
    body.insert("detail".into(), detail);
    if let Some(reference) = reference_code(code) {
        body.insert("error_code".into(), json!(reference));
    }
    body.extend(ctx);
    Value::Object(body)
}

/// The reference product's `error_code` for the same situation (its `DANGO-S…` security
/// and scheduler, `DANGO-Q…` query, `DANGO-SYNC-…` sync and `DANGO-W…` web codes), so its clients' error handling keeps working.
pub(crate) fn reference_code(code: &str) -> Option<&'static str> {
    Some(match code {
        "unauthenticated" | "invalid_token" | "invalid_api_key" | "api_key_expired"
        | "no_pending_sign_in" => "DANGO-S001",
        "csrf_failed" | "origin_refused" | "permission_denied" => "DANGO-S002",
        "schedule_not_found" => "DANGO-S003",
        "user_exists" => "DANGO-S004",
        "account_locked" => "DANGO-S006",
        "job_not_found" => "DANGO-S007",
        "no_webhooks" => "DANGO-S008",
        "empty_query" => "DANGO-Q001",
        "invalid_sql" | "not_read_only" => "DANGO-Q002",
        "query_timeout" => "DANGO-Q004",
        "query_failed" => "DANGO-Q005",
        "unknown_source" => "DANGO-SYNC-001",
        "invalid_backfill" => "DANGO-SYNC-002",
        "sync_record_not_found" => "DANGO-SYNC-003",
        "rate_limited" => "DANGO-W002",
        _ => return None,
    })
}

/// A JSON error response for cases outside a handler (extractor rejections, fallbacks).
pub(crate) fn json_error(
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> Response {
    let message = message.into();
    let mut response = (
        status,
        axum::Json(error_body(status, code, &message, Map::new())),
    )
        .into_response();
    response.extensions_mut().insert(ErrorInfo {
        status,
        code,
        message,
        internal: None,
    });
    response
}

/// One mapping of the warehouse's refusals, so a busy warehouse is a 503 on every route.
impl From<crate::db::warehouse::WarehouseError> for AppError {
    fn from(e: crate::db::warehouse::WarehouseError) -> Self {
        use crate::db::warehouse::WarehouseError;
        match e {
            WarehouseError::Busy => Self::Busy { retry_after: 1 },
            WarehouseError::Timeout(limit) => QueryError::Timeout {
                seconds: limit.as_secs(),
            }
            .into(),
            WarehouseError::MemoryCeiling { limit_mb } => {
                QueryError::MemoryLimit { limit_mb }.into()
            }
            WarehouseError::Closed | WarehouseError::Cancelled => Self::ShuttingDown,
            other => Self::Internal(other.into()),
        }
    }
}

impl From<crate::schedules::runner::TriggerError> for AppError {
    fn from(e: crate::schedules::runner::TriggerError) -> Self {
        use crate::schedules::runner::TriggerError;
        match e {
            TriggerError::Unknown(name) => crate::schedules::handlers::unknown_schedule(&name),
            e @ TriggerError::Running { .. } => Self::Conflict {
                code: "job_running",
                message: e.to_string(),
            },
            TriggerError::Meta(e) => e.into(),
        }
    }
}

impl From<crate::sources::sync::SyncError> for AppError {
    fn from(e: crate::sources::sync::SyncError) -> Self {
        use crate::sources::sync::SyncError;
        match e {
            SyncError::InProgress(s) => Self::Conflict {
                code: "sync_in_progress",
                message: format!("source {s} is already syncing; wait for it to finish"),
            },
            SyncError::UnknownSource(s) => Self::NotFound(format!("there is no source named {s}")),
            SyncError::Disabled(s) => Self::bad_request(
                "source_disabled",
                format!("source {s} is disabled in project.yml"),
            ),
            SyncError::Meta(e) => e.into(),
        }
    }
}

impl From<rusqlite::Error> for AppError {
    fn from(e: rusqlite::Error) -> Self {
        crate::db::meta::MetaError::from(e).into()
    }
}

impl From<crate::db::meta::MetaError> for AppError {
    fn from(e: crate::db::meta::MetaError) -> Self {
        match e {
            crate::db::meta::MetaError::Busy => Self::Busy { retry_after: 1 },
            crate::db::meta::MetaError::Closed => Self::ShuttingDown,
            other => Self::Internal(other.into()),
        }
    }
}
