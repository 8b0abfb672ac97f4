//! What the API and the pages show about sources, built once for both: `/api/sources` and
//! the overview serialise the same [`SourceSummary`], `/api/sources/{name}/csv-files` and
//! the source page the same [`FileEntry`] list.
//!
//! The warehouse part (tables, columns, row counts, the ledger per source) only changes
//! when the single writer commits, so it is cached by the warehouse generation: the
//! overview of 200 sources costs no DuckDB work until a load lands.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{SecondsFormat, Utc};
use serde::Serialize;

use super::registry::{self, Source};
use super::{ledger, repo};
use crate::app::AppState;
use crate::blocking;
use crate::db::warehouse::sql_ident;
use crate::error::{AppError, Result};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ColumnInfo {
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) data_type: String,
}

/// A table of a source: `raw_<source>.<table>`, as the reference names it (`name` the
/// table, `schema` the schema), with its columns.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TableSummary {
    pub(crate) name: String,
    pub(crate) row_count: u64,
    pub(crate) schema: String,
    pub(crate) columns: Vec<ColumnInfo>,
}

impl TableSummary {
    /// `raw_sales.orders`.
    pub(crate) fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// Tables of every `raw_*` schema and the ledger per source, at one warehouse generation.
#[derive(Default)]
pub(crate) struct WarehouseView {
    tables: BTreeMap<String, Vec<TableSummary>>,
    ledger: BTreeMap<String, ledger::Summary>,
}

impl WarehouseView {
    /// Whether `schema.table` is a table the view knows.
    pub(crate) fn has_table(&self, schema: &str, table: &str) -> bool {
        self.tables
            .get(schema)
            .is_some_and(|list| list.iter().any(|t| t.name == table))
    }
}

/// The last [`WarehouseView`] and the generation it was read at.
#[derive(Default)]
pub(crate) struct ViewCache(Mutex<Option<(u64, Arc<WarehouseView>)>>);

impl ViewCache {
    fn get(&self, generation: u64) -> Option<Arc<WarehouseView>> {
        let guard = crate::locks::lock(&self.0);
        guard
            .as_ref()
            .filter(|(g, _)| *g == generation)
            .map(|(_, v)| v.clone())
    }

    fn put(&self, generation: u64, view: Arc<WarehouseView>) {
        *crate::locks::lock(&self.0) = Some((generation, view));
    }
}

fn read_view(c: &duckdb::Connection) -> duckdb::Result<WarehouseView> {
    let mut tables: BTreeMap<String, Vec<TableSummary>> = BTreeMap::new();
    // duckdb_columns() rather than information_schema.columns: the same facts, without
    // the view's joins.
    let mut stmt = c.prepare(
        "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() \
         WHERE NOT internal AND schema_name LIKE 'raw\\_%' ESCAPE '\\' \
         ORDER BY schema_name, table_name, column_index",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    for row in rows {
        let (schema, table, column, ty) = row?;
        let list = tables.entry(schema.clone()).or_default();
        if list.last().is_none_or(|t| t.name != table) {
            list.push(TableSummary {
                name: table,
                row_count: 0,
                schema,
                columns: Vec::new(),
            });
        }
        if let Some(t) = list.last_mut() {
            t.columns.push(ColumnInfo {
                name: column,
                data_type: ty,
            });
        }
    }
    let names: Vec<(&str, &str)> = tables
        .values()
        .flatten()
        .map(|t| (t.schema.as_str(), t.name.as_str()))
        .collect();
    let counts = row_counts(c, &names)?;
    for (t, n) in tables.values_mut().flatten().zip(counts) {
        t.row_count = n;
    }
    let ledger = ledger::summaries(c)?;
    Ok(WarehouseView { tables, ledger })
}

/// The row counts of `tables` (schema, table), in their order, in one statement: one
/// parse and plan instead of one per table (which cost ~1 ms each).
pub(crate) fn row_counts(
    c: &duckdb::Connection,
    tables: &[(&str, &str)],
) -> duckdb::Result<Vec<u64>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let counts: Vec<String> = tables
        .iter()
        .enumerate()
        .map(|(i, (schema, table))| {
            format!(
                "SELECT {i} AS i, count(*) AS n FROM {}.{}",
                sql_ident(schema),
                sql_ident(table)
            )
        })
        .collect();
    let mut stmt = c.prepare(&format!(
        "SELECT n FROM ({}) ORDER BY i",
        counts.join(" UNION ALL ")
    ))?;
    let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
    rows.map(|n| n.map(i64::unsigned_abs)).collect()
}

/// The warehouse view at the current generation, read only when a commit changed it.
pub(crate) async fn warehouse_view(state: &AppState) -> Result<Arc<WarehouseView>> {
    let generation = state.warehouse.generation();
    if let Some(view) = state.source_views.get(generation) {
        return Ok(view);
    }
    let view = state
        .warehouse
        .internal(read_view)
        .await?
        .map_err(|e| AppError::Internal(e.into()))?;
    let view = Arc::new(view);
    state.source_views.put(generation, view.clone());
    Ok(view)
}

/// How recent a source's data is, in both of the reference's dialects: its document's
/// (`last_update`, `days_old`) and its server's (`status`, `hours_since_sync`,
/// `last_sync_time`, `last_sync_status`).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Freshness {
    pub(crate) last_update: Option<String>,
    pub(crate) days_old: Option<f64>,
    /// fresh, stale (older than the notifications' stale threshold) or never_synced.
    pub(crate) status: &'static str,
    pub(crate) hours_since_sync: Option<f64>,
    pub(crate) last_sync_time: Option<String>,
    pub(crate) last_sync_status: Option<String>,
}

/// One source as `/api/sources` lists it and the overview card shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SourceSummary {
    pub(crate) name: String,
    /// The reference's source type: every Kura source is a folder of local files.
    #[serde(rename = "type")]
    pub(crate) source_type: &'static str,
    /// `local_files` (declared in project.yml) or `folder` (found in a watched folder).
    pub(crate) kind: &'static str,
    pub(crate) enabled: bool,
    pub(crate) directory: std::path::PathBuf,
    pub(crate) last_sync: Option<String>,
    pub(crate) last_sync_status: Option<String>,
    pub(crate) row_count: u64,
    /// syncing, not_synced, failed, empty or synced.
    pub(crate) status: &'static str,
    pub(crate) failed_files: u64,
    pub(crate) freshness: Freshness,
    pub(crate) tables: Vec<TableSummary>,
    pub(crate) has_schedule: bool,
    /// The names of the enabled schedules that sync it, or "Manual".
    pub(crate) schedule_display: String,
    /// Only changed files are loaded on a sync.
    pub(crate) supports_incremental: bool,
    /// Files carry no date range to ask for: `start_date`/`end_date` are ignored.
    pub(crate) supports_date_range: bool,
    /// `incremental`: each sync loads the files that changed.
    pub(crate) sync_mode: &'static str,
    pub(crate) lookback_days: Option<u32>,
    /// `replace` (a changed file's rows replace its earlier rows) or `append`.
    pub(crate) write_disposition: &'static str,
    pub(crate) needs_attention: bool,
    pub(crate) attention_reason: Option<String>,
    pub(crate) last_sync_duration_seconds: Option<f64>,
}

impl SourceSummary {
    /// "2 h ago"-style age of the last load, for the pages.
    pub(crate) fn age(&self) -> String {
        match self.freshness.days_old {
            None => "never loaded".into(),
            Some(d) if d < 1.0 / 24.0 => "< 1 h ago".into(),
            Some(d) if d < 1.0 => format!("{:.0} h ago", d * 24.0),
            Some(d) => format!("{d:.0} d ago"),
        }
    }
}

fn summary(
    state: &AppState,
    source: &Source,
    view: &WarehouseView,
    last_runs: &BTreeMap<String, repo::SyncRun>,
    schedules: &[String],
) -> SourceSummary {
    let tables = view
        .tables
        .get(&source.schema())
        .cloned()
        .unwrap_or_default();
    let row_count: u64 = tables.iter().map(|t| t.row_count).sum();
    let ledger = view.ledger.get(&source.name).cloned().unwrap_or_default();
    let last = last_runs.get(&source.name);
    let status = if state.syncs.is_running(&source.name) {
        "syncing"
    } else if ledger.files == 0 && tables.is_empty() {
        "not_synced"
    } else if ledger.failed > 0 || last.is_some_and(|r| r.status == "failed") {
        "failed"
    } else if row_count == 0 {
        "empty"
    } else {
        "synced"
    };
    let age_seconds = ledger
        .last_loaded
        .map(|t| (Utc::now() - t).num_seconds() as f64);
    let days_old = age_seconds.map(|s| (s / 86_400.0 * 100.0).round() / 100.0);
    let hours_since_sync = age_seconds.map(|s| (s / 3600.0 * 100.0).round() / 100.0);
    let stale_hours = state
        .schedules
        .current()
        .schedules
        .notifications
        .stale_threshold_hours;
    let freshness_status = match hours_since_sync {
        None => "never_synced",
        Some(h) if h > stale_hours as f64 => "stale",
        Some(_) => "fresh",
    };
    let attention_reason = if ledger.failed > 0 {
        Some(format!("{} file(s) failed to load", ledger.failed))
    } else if last.is_some_and(|r| r.status == "failed") {
        Some("the last sync failed".to_owned())
    } else {
        None
    };
    let schedule_display = if schedules.is_empty() {
        "Manual".to_owned()
    } else {
        schedules.join(", ")
    };
    SourceSummary {
        name: source.name.clone(),
        source_type: "local_files",
        kind: source.kind,
        enabled: source.enabled,
        directory: source.directory.clone(),
        last_sync: last.and_then(|r| r.ended_at.clone()),
        last_sync_status: last.map(|r| r.status.clone()),
        row_count,
        status,
        failed_files: ledger.failed,
        freshness: Freshness {
            last_update: ledger.last_loaded.map(crate::time::text),
            days_old,
            status: freshness_status,
            hours_since_sync,
            last_sync_time: last.and_then(|r| r.ended_at.clone()),
            last_sync_status: last.map(|r| r.status.clone()),
        },
        tables,
        has_schedule: !schedules.is_empty(),
        schedule_display,
        supports_incremental: true,
        supports_date_range: false,
        sync_mode: "incremental",
        lookback_days: None,
        write_disposition: match source.mode {
            crate::config::Mode::Replace => "replace",
            crate::config::Mode::Append => "append",
        },
        needs_attention: attention_reason.is_some(),
        attention_reason,
        last_sync_duration_seconds: last
            .and_then(|r| r.duration_ms)
            .map(|ms| ms as f64 / 1000.0),
    }
}

/// The enabled schedules that sync each source, by source name.
fn schedules_by_source(state: &AppState) -> BTreeMap<String, Vec<String>> {
    let current = state.schedules.current();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in current.schedules.schedules.iter().filter(|s| s.def.enabled) {
        for source in &s.def.sources {
            out.entry(source.clone())
                .or_default()
                .push(s.def.name.clone());
        }
    }
    out
}

/// Every source (or only `only`), in name order.
pub(crate) async fn summaries(
    state: &AppState,
    only: Option<&Source>,
) -> Result<Vec<SourceSummary>> {
    let view = warehouse_view(state).await?;
    let last_runs = state.meta.read(repo::last_runs).await?;
    let schedules = schedules_by_source(state);
    let of = |s: &Source| schedules.get(&s.name).map_or(&[][..], Vec::as_slice);
    Ok(match only {
        Some(s) => vec![summary(state, s, &view, &last_runs, of(s))],
        None => state
            .sources()
            .values()
            .map(|s| summary(state, s, &view, &last_runs, of(s)))
            .collect(),
    })
}

/// A file of a source: on disk, in the ledger, or both. `path` is absolute, as the
/// reference answers (and as `DELETE .../csv-files?file_path=` takes it);
/// `relative_path` is the project-relative one.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FileEntry {
    pub(crate) path: String,
    pub(crate) relative_path: String,
    pub(crate) name: Option<String>,
    pub(crate) filename: Option<String>,
    /// In the warehouse now.
    pub(crate) loaded: bool,
    pub(crate) rows_loaded: Option<i64>,
    pub(crate) size: Option<u64>,
    pub(crate) modified: Option<String>,
    pub(crate) on_disk: bool,
    /// not_loaded, unsupported, syncing, or the ledger's status (loaded, failed, deleted...).
    pub(crate) status: String,
    pub(crate) rows: Option<i64>,
    pub(crate) error: Option<String>,
    pub(crate) loaded_at: Option<String>,
    pub(crate) table: Option<String>,
}

/// Files on disk and in the ledger, merged by path.
pub(crate) async fn file_listing(state: &AppState, source: &Source) -> Result<Vec<FileEntry>> {
    let root = state.config.root.clone();
    let src = source.clone();
    let disk = blocking::run(move || registry::files(&root, &src))
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let name = source.name.clone();
    let ledger = state
        .warehouse
        .internal(move |c| ledger::files(c, &name))
        .await?
        .map_err(|e| AppError::Internal(e.into()))?;
    let syncing = state.syncs.is_running(&source.name);
    let mut by_path: BTreeMap<String, FileEntry> = BTreeMap::new();
    for f in &disk {
        let status = match f.kind {
            None => "unsupported",
            Some(_) if syncing => "syncing",
            Some(_) => "not_loaded",
        };
        by_path.insert(
            f.rel.clone(),
            FileEntry {
                path: f.rel.clone(),
                relative_path: f.rel.clone(),
                name: f.path.file_name().map(|n| n.to_string_lossy().into_owned()),
                filename: None,
                loaded: false,
                rows_loaded: None,
                size: Some(f.size),
                modified: Some(f.mtime.to_rfc3339_opts(SecondsFormat::Secs, true)),
                on_disk: true,
                status: status.into(),
                rows: None,
                error: None,
                loaded_at: None,
                table: None,
            },
        );
    }
    for l in ledger {
        let entry = by_path.entry(l.path.clone()).or_insert_with(|| FileEntry {
            name: Path::new(&l.path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
            path: l.path.clone(),
            relative_path: l.path.clone(),
            filename: None,
            loaded: false,
            rows_loaded: None,
            size: l.size.map(i64::unsigned_abs),
            modified: None,
            on_disk: false,
            status: String::new(),
            rows: None,
            error: None,
            loaded_at: None,
            table: None,
        });
        if entry.status != "syncing" {
            entry.status = l.status.as_str().to_owned();
        }
        entry.rows = l.rows;
        entry.error = l.error;
        entry.loaded_at = l.loaded_at;
        entry.table = Some(l.table);
    }
    let root = &state.config.root;
    Ok(by_path
        .into_values()
        .map(|mut e| {
            e.path = root.join(&e.relative_path).display().to_string();
            e.filename = e.name.clone();
            e.loaded = matches!(e.status.as_str(), "loaded" | "empty");
            e.rows_loaded = e.rows;
            e
        })
        .collect())
}
