//! Static files, embedded in the binary so Kura works offline and from any directory.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

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
    asset!("sql.js", JS),
    asset!("models.js", JS),
    asset!("model.js", JS),
];

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Each file's content hash (16 hex digits of SHA-256), computed once.
fn versions() -> &'static HashMap<&'static str, String> {
    static VERSIONS: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    VERSIONS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(name, _, bytes)| {
                let digest = Sha256::digest(bytes);
                let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                (*name, hex)
            })
            .collect()
    })
}

/// The URL pages use for a static file: `/static/<name>?v=<content hash>`, so a new
/// binary's pages never run an old script from a browser's cache.
pub(crate) fn url(name: &str) -> String {
    match versions().get(name) {
        Some(v) => format!("/static/{name}?v={v}"),
        // Not an embedded file: the request will be a 404 (a test checks every page's).
        None => format!("/static/{name}"),
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct Version {
    v: Option<String>,
}

/// `GET /static/{name}`: with the current content hash in `?v=` the answer may be cached
/// for a year without asking again; without it (or with an old one) the browser checks
/// each time.
pub(crate) async fn serve_asset(
    crate::web::extract::Path(name): crate::web::extract::Path<String>,
    crate::web::extract::Query(version): crate::web::extract::Query<Version>,
) -> Result<Response, AppError> {
    let (_, content_type, bytes) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| AppError::NotFound(format!("no static file named {name}")))?;
    let current = version
        .v
        .is_some_and(|v| versions().get(name.as_str()) == Some(&v));
    let cache = if current {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, cache),
        ],
        *bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_carry_the_content_hash() {
        let url = super::url("kura.js");
        let (path, v) = url.split_once("?v=").unwrap();
        assert_eq!(path, "/static/kura.js");
        assert_eq!(v.len(), 16);
        assert_ne!(super::url("kura.css"), url.replace("kura.js", "kura.css"));
    }

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
