//! HTTP handlers of sources, syncs and files.

use std::path::{Path, PathBuf};

use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::formats::{detect, is_ignored};
use super::registry::{self, Source};
use super::sync::{self, SyncError, SyncOptions, Trigger};
use super::{repo, views};
use crate::app::AppState;
use crate::blocking;
use crate::error::{AppError, Result};
use crate::events::EventKind;
use crate::web::extract::{Json, JsonOrEmpty, List, Path as UrlPath, Query};

pub(crate) async fn source_of(state: &AppState, name: &str) -> Result<Source> {
    state
        .find_source(name)
        .await
        .ok_or_else(|| AppError::NotFound(format!("there is no source named {name}")))
}

/// `GET /api/sources`: every source, as a plain list.
pub(crate) async fn list_sources(
    State(state): State<AppState>,
) -> Result<List<views::SourceSummary>> {
    Ok(List::all(views::summaries(&state, None).await?))
}

/// `GET /api/sources/conflicts`: folders and declared sources that claim the same name
/// or files (what `/api/sources` listed beside the sources before it became a list).
pub(crate) async fn list_conflicts(State(state): State<AppState>) -> List<Value> {
    let conflicts = registry::conflicts(&state.config, &state.sources());
    List::all(conflicts.into_iter().map(|c| json!(c)).collect())
}

/// Everything `/api/sources/{name}/details` and the source page show. `history` is the
/// reference's name for the sync history (`sync_history`, Kura's, is the same list).
#[derive(Serialize)]
pub(crate) struct SourceDetails {
    #[serde(flatten)]
    pub(crate) summary: views::SourceSummary,
    pub(crate) files: Vec<views::FileEntry>,
    pub(crate) history: Vec<repo::SyncRun>,
    pub(crate) sync_history: Vec<repo::SyncRun>,
    /// Kura's load mode of changed files (`replace` or `append`).
    pub(crate) mode: crate::config::Mode,
    pub(crate) config: Value,
}

pub(crate) async fn source_details(state: &AppState, name: &str) -> Result<SourceDetails> {
    let source = source_of(state, name).await?;
    let summary = views::summaries(state, Some(&source))
        .await?
        .pop()
        .ok_or_else(|| AppError::NotFound(format!("there is no source named {name}")))?;
    let n = name.to_owned();
    let sync_history = state.meta.read(move |c| repo::runs_for(c, &n, 20)).await?;
    Ok(SourceDetails {
        summary,
        files: views::file_listing(state, &source).await?,
        history: sync_history.clone(),
        sync_history,
        mode: source.mode,
        config: json!({
            "name": source.name,
            "type": "local_files",
            "kind": source.kind,
            "description": None::<String>,
            "local_files": {"directory": source.directory, "file_pattern": source.pattern},
            "directory": source.directory,
            "pattern": source.pattern,
            "layout": source.layout,
            "mode": source.mode,
            "on_delete": source.on_delete,
            "enabled": source.enabled,
        }),
    })
}

/// `GET /api/sources/{name}/details`
pub(crate) async fn show_source(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<SourceDetails>> {
    Ok(Json(source_details(&state, &name).await?))
}

/// A sync request. `start_date`/`end_date` (a date range, for the reference's API
/// sources) are accepted and ignored: a folder's files have no range to ask for.
/// `allow_empty_replace` is the reference's name for `allow_empty`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyncRequest {
    #[serde(default)]
    full_refresh: bool,
    #[serde(default, alias = "allow_empty_replace")]
    allow_empty: Option<bool>,
    #[serde(default)]
    start_date: Option<String>,
    #[serde(default)]
    end_date: Option<String>,
}

/// `POST /api/sources/{name}/sync` → 200 with the record id, 409 while it syncs.
pub(crate) async fn sync_source(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    JsonOrEmpty(req): JsonOrEmpty<SyncRequest>,
) -> Result<Json<Value>> {
    let _ignored = (req.start_date, req.end_date);
    let options = SyncOptions {
        full_refresh: req.full_refresh,
        allow_empty: req.allow_empty.unwrap_or(false),
    };
    let id = sync::start(&state, &name, options, Trigger::Api, false).await?;
    Ok(Json(json!({
        "success": true,
        "message": format!("sync of {name} started"),
        "source_name": name,
        "started_at": crate::time::now_text(),
        "record_id": id,
        "source": name,
        "status": "started",
        "full_refresh": options.full_refresh,
    })))
}

/// A sync of several sources. `backfill` (the reference's "7d"-style window for API
/// sources) is accepted and ignored, like the date range of a single sync.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct TriggerRequest {
    /// None or empty: every enabled source.
    sources: Option<Vec<String>>,
    #[serde(default)]
    full_refresh: bool,
    #[serde(default)]
    backfill: Option<String>,
    #[serde(default, alias = "allow_empty_replace")]
    allow_empty: Option<bool>,
}

/// `POST /api/sync/trigger` → 200 with a record per started source; `job_id` is the
/// first record's id (for `/api/sync/status/{id}`). A source that does not exist is a
/// 404 and nothing starts.
pub(crate) async fn trigger_sync(
    State(state): State<AppState>,
    JsonOrEmpty(req): JsonOrEmpty<TriggerRequest>,
) -> Result<Json<Value>> {
    if let Some(b) = &req.backfill
        && !valid_backfill(b)
    {
        return Err(AppError::invalid(
            "invalid_backfill",
            format!("backfill {b:?} is not a window like 7d, 2w or 1m"),
        ));
    }
    let all = state.sources();
    let names: Vec<String> = match req.sources {
        Some(list) if !list.is_empty() => list,
        _ => all
            .values()
            .filter(|s| s.enabled)
            .map(|s| s.name.clone())
            .collect(),
    };
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| !all.contains_key(*n))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(AppError::Missing {
            code: "unknown_source",
            message: format!("there is no source named {}", unknown.join(", ")),
        });
    }
    let options = SyncOptions {
        full_refresh: req.full_refresh,
        allow_empty: req.allow_empty.unwrap_or(false),
    };
    let mut started = Vec::new();
    let mut skipped = Vec::new();
    for name in names {
        match sync::start(&state, &name, options, Trigger::Api, false).await {
            Ok(id) => started.push((name, id)),
            Err(SyncError::Meta(e)) => return Err(e.into()),
            Err(e) => skipped.push(json!({"source": name, "reason": e.to_string()})),
        }
    }
    Ok(Json(json!({
        "job_id": started.first().and_then(|(_, id)| *id),
        "sources": started.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "status": if started.is_empty() { "skipped" } else { "started" },
        "started": started.iter().map(|(n, id)| json!({"source": n, "record_id": id})).collect::<Vec<_>>(),
        "skipped": skipped,
    })))
}

/// A backfill window as the reference writes it: a count and d, w or m.
fn valid_backfill(window: &str) -> bool {
    window
        .strip_suffix(['d', 'w', 'm'])
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `GET /api/sync/status/{record_id}`
pub(crate) async fn show_sync_status(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<i64>,
) -> Result<Json<repo::SyncRun>> {
    let run = state.meta.read(move |c| repo::run_by_id(c, id)).await?;
    run.map(Json).ok_or_else(|| AppError::Missing {
        code: "sync_record_not_found",
        message: format!("there is no sync record {id}"),
    })
}

#[derive(Deserialize)]
pub(crate) struct PreviewQuery {
    limit: Option<usize>,
}

/// `GET /api/sources/{name}/tables/{table}/preview?limit=100`: the first rows of one of the
/// source's tables, in `/api/query`'s shape.
pub(crate) async fn preview_table(
    State(state): State<AppState>,
    UrlPath((name, table)): UrlPath<(String, String)>,
    Query(q): Query<PreviewQuery>,
) -> Result<Response> {
    let source = source_of(&state, &name).await?;
    let schema = source.schema();
    if !views::warehouse_view(&state)
        .await?
        .has_table(&schema, &table)
    {
        return Err(AppError::NotFound(format!(
            "source {name} has no table named {table}"
        )));
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    crate::query::handlers::run_internal_select(&state, &schema, &table, limit).await
}

/// `GET /api/sources/{name}/csv-files`
pub(crate) async fn list_files(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
) -> Result<Json<Value>> {
    let source = source_of(&state, &name).await?;
    let files = views::file_listing(&state, &source).await?;
    Ok(Json(json!({
        "source_name": name,
        "source": name,
        "directory": source.directory,
        "file_pattern": source.pattern,
        "total_files": files.len(),
        "files_on_disk": files.iter().filter(|f| f.on_disk).count(),
        "files_loaded": files.iter().filter(|f| f.loaded).count(),
        "files": files,
    })))
}

#[derive(Deserialize)]
pub(crate) struct DeleteQuery {
    file_path: String,
}

/// `DELETE /api/sources/{name}/csv-files?file_path=`: only files inside the source folder.
pub(crate) async fn delete_file(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<DeleteQuery>,
) -> Result<Json<Value>> {
    let source = source_of(&state, &name).await?;
    let root = state.config.root.clone();
    let dir = source.directory.clone();
    let requested = q.file_path.clone();
    let target = blocking::run(move || resolve_inside(&root, &dir, &requested)).await?;
    let rel = registry::relative(&state.config.root, &target);
    let t = target.clone();
    blocking::run(move || std::fs::remove_file(&t))
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => AppError::NotFound(format!("{rel} is already gone")),
            _ => AppError::bad_request("delete_failed", format!("cannot delete {rel}: {e}")),
        })?;
    state
        .events
        .publish(EventKind::CsvDeleted {
            source: name.clone(),
            file: rel.clone(),
        })
        .await;
    let record_id = sync::start(&state, &name, SyncOptions::default(), Trigger::Api, true)
        .await
        .ok()
        .flatten();
    Ok(Json(json!({
        "success": true,
        "message": format!("{rel} deleted; its rows leave the warehouse with the sync that follows"),
        "file_path": target,
        "source_name": name,
        "background_sync": record_id.is_some(),
        "deleted": rel,
        "source": name,
        "record_id": record_id,
    })))
}

/// Resolves a user-given path to a file inside `dir`, refusing anything outside it.
fn resolve_inside(root: &Path, dir: &Path, requested: &str) -> Result<PathBuf> {
    let outside = || {
        AppError::forbidden(
            "path_outside_source",
            format!(
                "{requested:?} is not a file inside the source folder {}",
                dir.display()
            ),
        )
    };
    let canonical_dir = dir
        .canonicalize()
        .map_err(|_| AppError::NotFound(format!("{} does not exist", dir.display())))?;
    let candidates = [root.join(requested), dir.join(requested)];
    for candidate in candidates {
        if let Ok(c) = candidate.canonicalize() {
            if !c.starts_with(&canonical_dir) {
                return Err(outside());
            }
            if !c.is_file() {
                return Err(AppError::bad_request(
                    "not_a_file",
                    format!("{requested:?} is not a file"),
                ));
            }
            return Ok(c);
        }
    }
    // A path that does not exist: outside only if it names a place outside the folder
    // (a missing file of the folder, absolute or not, is a 404).
    let requested_path = Path::new(requested);
    let inside_lexically = !requested_path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
        && (!requested_path.is_absolute()
            || requested_path.starts_with(&canonical_dir)
            || requested_path.starts_with(dir));
    if !inside_lexically {
        return Err(outside());
    }
    Err(AppError::NotFound(format!(
        "no file {requested:?} in source folder {}",
        dir.display()
    )))
}

#[derive(Deserialize)]
pub(crate) struct UploadQuery {
    trigger_sync: Option<bool>,
    overwrite: Option<bool>,
}

/// Reduces an uploaded file name to a safe basename.
/// Longest upload name: the file system's 255 bytes less room for the temp file's prefix.
const MAX_FILE_NAME_BYTES: usize = 200;

fn safe_name(raw: &str) -> Option<String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim().to_owned();
    (!cleaned.is_empty() && cleaned != "." && cleaned != ".." && !is_ignored(&cleaned))
        .then_some(cleaned)
}

/// `POST /api/sources/{name}/upload-csv` (multipart field `file`): streamed to a hidden
/// temp file in the source folder, then renamed into place, so the watcher never sees
/// half a file.
pub(crate) async fn upload_file(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<Response> {
    let source = source_of(&state, &name).await?;
    let limit = state.config.api.max_upload_mb * 1024 * 1024;
    let too_large = || {
        AppError::PayloadTooLarge(format!(
            "the upload is larger than api.max_upload_mb ({} MB)",
            state.config.api.max_upload_mb
        ))
    };
    // Refuse before reading a byte when the client says how big it is.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit + 64 * 1024) {
        return Err(too_large());
    }
    let overwrite = q.overwrite.unwrap_or(false);
    let mut field = loop {
        match multipart.next_field().await {
            Ok(Some(f)) if f.name() == Some("file") => break f,
            Ok(Some(_)) => continue,
            Ok(None) => {
                return Err(AppError::bad_request(
                    "missing_file",
                    "the multipart form has no field named file",
                ));
            }
            Err(e) => return Err(AppError::bad_request("invalid_multipart", e.body_text())),
        }
    };
    let file_name = field.file_name().and_then(safe_name).ok_or_else(|| {
        AppError::bad_request(
            "invalid_file_name",
            "the file needs a name (not hidden, not a temp file)",
        )
    })?;
    // Linux refuses names over 255 bytes (the temp name adds a few): say so, not 500.
    if file_name.len() > MAX_FILE_NAME_BYTES {
        return Err(AppError::bad_request(
            "invalid_file_name",
            format!(
                "the file name is {} bytes long; the longest Kura accepts is \
                 {MAX_FILE_NAME_BYTES} bytes",
                file_name.len()
            ),
        ));
    }
    if detect(&file_name).is_none() {
        return Err(AppError::bad_request(
            "unsupported_file_type",
            format!("{file_name}: Kura loads {}", super::formats::SUPPORTED),
        ));
    }
    let target = source.directory.join(&file_name);
    let exists = tokio::fs::try_exists(&target).await.unwrap_or(false);
    if exists && !overwrite {
        return Err(AppError::Conflict {
            code: "file_exists",
            message: format!(
                "{file_name} already exists in {}; pass overwrite=true to replace it",
                source.name
            ),
        });
    }
    tokio::fs::create_dir_all(&source.directory)
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let temp = source
        .directory
        .join(format!(".kura-upload-{}.part", rand::random::<u64>()));
    let written = stream_to(&mut field, &temp, limit).await;
    let bytes = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(match e {
                UploadError::TooLarge => too_large(),
                UploadError::Client(m) => AppError::bad_request("upload_interrupted", m),
                UploadError::Io(e) => AppError::Internal(e.into()),
            });
        }
    };
    let placed = if overwrite {
        tokio::fs::rename(&temp, &target).await
    } else {
        // Link-then-unlink fails if the name appeared meanwhile: never clobber.
        match tokio::fs::hard_link(&temp, &target).await {
            Ok(()) => tokio::fs::remove_file(&temp).await,
            Err(e) => Err(e),
        }
    };
    if let Err(e) = placed {
        let _ = tokio::fs::remove_file(&temp).await;
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            return Err(AppError::Conflict {
                code: "file_exists",
                message: format!("{file_name} already exists"),
            });
        }
        return Err(AppError::Internal(e.into()));
    }
    let rel = registry::relative(&state.config.root, &target);
    state
        .events
        .publish(EventKind::CsvUploaded {
            source: name.clone(),
            file: rel.clone(),
            bytes,
        })
        .await;
    let auto_sync = q.trigger_sync.unwrap_or(true);
    let record_id = if auto_sync {
        sync::start(&state, &name, SyncOptions::default(), Trigger::Upload, true).await?
    } else {
        None
    };
    Ok(Json(json!({
        "success": true,
        "message": format!("{file_name} uploaded to {name}"),
        "source_name": name,
        "file_name": file_name,
        "auto_sync": auto_sync,
        "source": name,
        "file": rel,
        "bytes": bytes,
        "overwritten": exists,
        "record_id": record_id,
    }))
    .into_response())
}

enum UploadError {
    TooLarge,
    Client(String),
    Io(std::io::Error),
}

async fn stream_to(
    field: &mut axum::extract::multipart::Field<'_>,
    temp: &Path,
    limit: u64,
) -> Result<u64, UploadError> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::File::create(temp)
        .await
        .map_err(UploadError::Io)?;
    let mut total = 0u64;
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                total += chunk.len() as u64;
                if total > limit {
                    return Err(UploadError::TooLarge);
                }
                file.write_all(&chunk).await.map_err(UploadError::Io)?;
            }
            Ok(None) => break,
            Err(e) => {
                return Err(if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    UploadError::TooLarge
                } else {
                    UploadError::Client(e.body_text())
                });
            }
        }
    }
    file.flush().await.map_err(UploadError::Io)?;
    file.sync_all().await.map_err(UploadError::Io)?;
    Ok(total)
}

/// `GET /api/watcher/status`: the watcher in Kura's terms and the reference's (`pid`,
/// `auto_sync_enabled`, `debounce_seconds`, project-relative `watch_directories`, ...).
/// The watcher runs inside this process, which logs to its standard output: no log file.
pub(crate) async fn show_watcher_status(State(state): State<AppState>) -> Json<Value> {
    let status = state.watcher_status();
    let relative: Vec<String> = status
        .directories
        .iter()
        .map(|d| registry::relative(&state.config.root, d))
        .collect();
    let mut body = serde_json::to_value(&status).unwrap_or(Value::Null);
    body["pid"] = json!(std::process::id());
    body["auto_sync_enabled"] = json!(status.running);
    body["auto_dbt_enabled"] = json!(false);
    body["debounce_seconds"] = json!(status.debounce_ms as f64 / 1000.0);
    body["watch_patterns"] = json!(status.patterns);
    body["watch_directories"] = json!(relative);
    body["log_file"] = Value::Null;
    body["syncing"] = json!(state.syncs.running());
    Json(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_are_reduced_to_safe_basenames() {
        assert_eq!(
            safe_name("../../etc/passwd.csv").as_deref(),
            Some("passwd.csv")
        );
        assert_eq!(
            safe_name("C:\\Users\\x\\Orders.csv").as_deref(),
            Some("Orders.csv")
        );
        assert_eq!(safe_name(".hidden.csv"), None);
        assert_eq!(safe_name("x.csv.part"), None);
        assert_eq!(safe_name(""), None);
    }

    #[test]
    fn backfill_windows_are_counts_of_days_weeks_or_months() {
        for ok in ["7d", "2w", "1m", "30d"] {
            assert!(valid_backfill(ok), "{ok}");
        }
        for bad in ["", "d", "7", "7y", "-1d", "1.5w"] {
            assert!(!valid_backfill(bad), "{bad}");
        }
    }
}
