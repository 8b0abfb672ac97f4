//! Static files, embedded in the binary so Kura works offline and from any directory.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

/// (name, content type, bytes) of every file under `static/`.
/// One embedded file: (name, content type, bytes).
macro_rules! asset {
    ($name:literal, $type:expr) => {
        (
            $name,
            $type,
            include_bytes!(concat!("../../static/", $name)),
        )
    };
}

/// (name, content type, bytes) of every file under `static/` (a test checks none is
/// missing).
const ASSETS: &[(&str, &str, &[u8])] = &[
    asset!("kura.css", CSS),
    asset!("kura.svg", SVG),
    asset!("kura.js", JS),
    asset!("login.js", JS),
    asset!("setup.js", JS),
    asset!("invite.js", JS),
    asset!("account.js", JS),
    asset!("users.js", JS),
    asset!("secrets.js", JS),
    asset!("schedules.js", JS),
    asset!("overview.js", JS),
    asset!("sources.js", JS),
    asset!("source.js", JS),
    asset!("grid.js", JS),
    asset!("chart.js", JS),
    asset!("query.js", JS),
    asset!("logs.js", JS),
    asset!("health.js", JS),
];

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// `GET /static/{name}`.
pub async fn serve_asset(
    crate::web::extract::Path(name): crate::web::extract::Path<String>,
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

#[cfg(test)]
mod tests {
    #[test]
    fn every_static_file_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/static");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                super::ASSETS.iter().any(|(n, _, _)| *n == name),
                "static/{name} is not in ASSETS"
            );
        }
    }
}
