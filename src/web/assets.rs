//! Static files, embedded in the binary so Kura works offline and from any directory.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

/// (name, content type, bytes) of every file under `static/`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    ("kura.css", CSS, include_bytes!("../../static/kura.css")),
    ("kura.js", JS, include_bytes!("../../static/kura.js")),
    ("login.js", JS, include_bytes!("../../static/login.js")),
    ("setup.js", JS, include_bytes!("../../static/setup.js")),
    ("invite.js", JS, include_bytes!("../../static/invite.js")),
    ("account.js", JS, include_bytes!("../../static/account.js")),
    ("users.js", JS, include_bytes!("../../static/users.js")),
    ("secrets.js", JS, include_bytes!("../../static/secrets.js")),
    (
        "schedules.js",
        JS,
        include_bytes!("../../static/schedules.js"),
    ),
];

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// `GET /static/{name}`.
pub async fn serve_asset(
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Result<Response, AppError> {
    let (_, content_type, bytes) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| AppError::NotFound(format!("no static file named {name}")))?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        *bytes,
    )
        .into_response())
}
