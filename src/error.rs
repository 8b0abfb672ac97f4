//! The HTTP error boundary: [`AppError`] and the one place that decides what a client sees.
//!
//! Every error leaves as `{"error": "<snake_case_code>", "message": "...", ...context}`
//! with the matching status. [`AppError::Internal`] never sends its text: the response
//! carries a generic message and the real cause travels in the response extensions, where
//! `web::middleware` logs it once with the request id. Browser requests for pages get the
//! same information rendered through `templates/error.html` (see `web::middleware`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::query::QueryError;

/// Result alias for handlers and the code they call.
pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    NotFound(String),
    /// A request the client must change: `code` is the stable machine-readable reason.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
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
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// What the error boundary decided, attached to the response for logging and HTML rendering.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The cause of an internal error: logged, never sent.
    pub internal: Option<String>,
}

impl AppError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unauthenticated {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
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
            Self::BadRequest { code, message } => (StatusCode::BAD_REQUEST, *code, message.clone()),
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
        let mut body = Map::new();
        body.insert("error".into(), json!(code));
        body.insert("message".into(), json!(message));
        body.extend(ctx);
        let mut response = (status, axum::Json(Value::Object(body))).into_response();
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

/// A JSON error response for cases outside a handler (extractor rejections, fallbacks).
pub fn json_error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    let message = message.into();
    let mut response = (
        status,
        axum::Json(json!({"error": code, "message": message})),
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

impl From<crate::db::meta::MetaError> for AppError {
    fn from(e: crate::db::meta::MetaError) -> Self {
        match e {
            crate::db::meta::MetaError::Busy => Self::Busy { retry_after: 1 },
            crate::db::meta::MetaError::Closed => Self::ShuttingDown,
            other => Self::Internal(other.into()),
        }
    }
}
