//! HTTP handlers of the platform endpoints.

use axum::extract::State;
use chrono::Utc;
use serde_json::{Value, json};

use serde::Serialize;

use super::repo::WarehouseFacts;
use super::{Memory, disk, disk_status, memory, warehouse_bytes};
use crate::app::AppState;
use crate::blocking;
use crate::config::masked_json;
use crate::error::{AppError, Result};
use crate::sources::ledger::Failure as SyncFailure;
use crate::web::extract::Json;

async fn warehouse_facts(state: &AppState) -> Result<WarehouseFacts> {
    state
        .warehouse
        .internal(super::repo::warehouse_facts)
        .await?
        .map_err(|e| AppError::Internal(e.into()))
}

/// "3h 12m" as the reference writes an uptime.
fn uptime_text(seconds: i64) -> String {
    let (d, h, m) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
    );
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

/// `GET /api/status`: each component and its state.
pub(crate) async fn show_status(State(state): State<AppState>) -> Result<Json<Value>> {
    let facts = warehouse_facts(&state).await?;
    let schema_version = state
        .meta
        .schema_version()
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let wh_path = state.warehouse.path().to_path_buf();
    let size = blocking::run(move || warehouse_bytes(&wh_path)).await;
    let (workers, queued) = state.warehouse.interactive_load();
    let settings: serde_json::Map<String, Value> = state
        .warehouse
        .settings()
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let uptime = (Utc::now() - state.started_at).num_seconds();
    // `services` in the reference's vocabulary: what Kura runs in-process is `running`;
    // Metabase and dbt docs are not part of Kura.
    Ok(Json(json!({
        "status": "healthy",
        "dango_version": crate::VERSION,
        "services": {
            "api": "running",
            "duckdb": "running",
            "metabase": "not_included",
            "dbt_docs": "not_included",
        },
        "uptime": uptime_text(uptime),
        "version": crate::VERSION,
        "project": state.config.project.name,
        "timestamp": crate::time::now_text(),
        "started_at": crate::time::text(state.started_at),
        "uptime_seconds": uptime,
        "warehouse": {
            "status": "ok",
            "path": state.warehouse.path(),
            "size_bytes": size,
            "tables": facts.counts.tables,
            "query_workers": workers,
            "queued_queries": queued,
            "engine_settings": settings,
        },
        "metadata": {
            "status": "ok",
            "path": state.meta.path(),
            "schema_version": schema_version,
        },
    })))
}

/// `GET /api/config`: the project configuration, secrets masked, and where to reach Kura.
pub(crate) async fn show_config(State(state): State<AppState>) -> Json<Value> {
    let c = &state.config;
    let host = match c.platform.bind {
        ip if ip.is_unspecified() => "localhost".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let web = format!("http://{host}:{}", c.platform.port);
    Json(json!({
        "web_port": c.platform.port,
        "web_url": web,
        "api_url": format!("{web}/api"),
        "metabase_url": None::<String>,
        "dbt_docs_url": None::<String>,
        "project_name": c.project.name,
        "timezone": c.project.timezone,
        "organization": None::<String>,
        "project": masked_json(c),
        "project_dir": c.root,
        "services": {
            "web": web,
            "api": format!("{web}/api"),
        },
    }))
}

#[derive(Debug, Serialize)]
pub(crate) struct DatabaseHealth {
    pub(crate) size_gb: f64,
    pub(crate) size_mb: f64,
    pub(crate) tables: u64,
    pub(crate) status: &'static str,
    pub(crate) raw_tables: u64,
    pub(crate) staging_tables: u64,
    pub(crate) marts_tables: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct DiskHealth {
    /// healthy, warning, critical or unknown.
    pub(crate) status: &'static str,
    pub(crate) free_gb: Option<f64>,
    pub(crate) total_gb: Option<f64>,
    pub(crate) used_gb: Option<f64>,
    pub(crate) used_pct: Option<f64>,
}

/// Where the project's disk space goes (the reference's `disk_breakdown`). Kura keeps no
/// backups, dbt artifacts, dlt pipelines or Metabase data: those are 0 (Metabase null).
#[derive(Debug, Serialize)]
pub(crate) struct DiskBreakdown {
    pub(crate) duckdb: Value,
    pub(crate) csv_uploads: Value,
    pub(crate) backups: Value,
    pub(crate) dbt_artifacts: Value,
    pub(crate) dlt_pipelines: Value,
    pub(crate) metabase: Value,
    pub(crate) total_mb: f64,
}

/// `/api/health/platform` in the reference product's shape (plus `memory`); the health
/// page shows the same.
#[derive(Debug, Serialize)]
pub(crate) struct PlatformHealth {
    /// healthy, degraded or unhealthy.
    pub(crate) status: &'static str,
    pub(crate) timestamp: String,
    pub(crate) database: DatabaseHealth,
    pub(crate) disk: DiskHealth,
    pub(crate) memory: Memory,
    pub(crate) disk_breakdown: DiskBreakdown,
    pub(crate) duckdb_capacity: super::Capacity,
    /// Files that failed to load (the first 100).
    pub(crate) sync_failures: Vec<SyncFailure>,
    pub(crate) sync_failure_count: usize,
    /// Failed model builds (none until models run in Kura).
    pub(crate) dbt_failures: Vec<Value>,
    pub(crate) total_sources: usize,
    pub(crate) enabled_sources: usize,
    pub(crate) critical_issues: Vec<String>,
    pub(crate) warnings: Vec<String>,
    pub(crate) scheduler: Value,
    /// Kura connects to no OAuth services.
    pub(crate) oauth_health: Vec<Value>,
    pub(crate) credential_health: Value,
}

pub(crate) async fn platform_health(state: &AppState) -> PlatformHealth {
    let (db_status, facts) = match warehouse_facts(state).await {
        Ok(f) => ("healthy", Some(f)),
        Err(e) => {
            tracing::warn!(error = %e, "warehouse health check failed");
            ("unhealthy", None)
        }
    };
    let counts = facts.as_ref().map(|f| f.counts).unwrap_or_default();
    let sources = state.sources();
    let failures = facts
        .as_ref()
        .map(|f| f.failed_files.clone())
        .unwrap_or_default();
    let root = state.config.root.clone();
    let wh_path = state.warehouse.path().to_path_buf();
    let folders: Vec<(String, std::path::PathBuf)> = sources
        .values()
        .map(|s| (s.name.clone(), s.directory.clone()))
        .collect();
    let (size, disk, memory, by_source) = blocking::run(move || {
        let by_source: Vec<(String, u64)> = folders
            .iter()
            .map(|(n, d)| (n.clone(), super::folder_bytes(d)))
            .collect();
        (warehouse_bytes(&wh_path), disk(&root), memory(), by_source)
    })
    .await;
    let mut critical = Vec::new();
    let mut warnings = Vec::new();
    if facts.is_none() {
        critical.push("the warehouse does not answer".to_owned());
    }
    let disk = match &disk {
        Ok(d) => {
            let status = disk_status(d);
            let free_gb = d.free_bytes as f64 / f64::from(1u32 << 30);
            match status {
                "critical" => critical.push(format!("only {free_gb:.2} GB of disk space left")),
                "warning" => warnings.push(format!("disk space is low: {free_gb:.1} GB free")),
                _ => {}
            }
            let gb = f64::from(1u32 << 30);
            let used = d.total_bytes.saturating_sub(d.free_bytes) as f64;
            DiskHealth {
                status: if status == "ok" { "healthy" } else { status },
                free_gb: Some(round2(free_gb)),
                total_gb: Some(round2(d.total_bytes as f64 / gb)),
                used_gb: Some(round2(used / gb)),
                used_pct: (d.total_bytes > 0)
                    .then(|| (used / d.total_bytes as f64 * 1000.0).round() / 10.0),
            }
        }
        Err(e) => {
            warnings.push(format!("cannot read disk space: {e}"));
            DiskHealth {
                status: "unknown",
                free_gb: None,
                total_gb: None,
                used_gb: None,
                used_pct: None,
            }
        }
    };
    if !failures.is_empty() {
        warnings.push(format!("{} file(s) failed to load", failures.len()));
    }
    let capacity = super::capacity(
        size,
        disk.total_gb.map(|g| (g * f64::from(1u32 << 30)) as u64),
        memory.system_total_mb.map(|m| (m * 1_048_576.0) as u64),
    );
    if capacity.duckdb_capacity_warning {
        warnings.push(format!(
            "the warehouse holds {:.0} % of the size recommended for this machine",
            capacity.duckdb_capacity_pct
        ));
    }
    let mb = |b: u64| round2(b as f64 / 1_048_576.0);
    let size_mb = mb(size);
    let cells: f64 = facts
        .as_ref()
        .map_or(0.0, |f| f.schema_cells.iter().map(|(_, c)| c).sum());
    let schema_sizes: serde_json::Map<String, Value> = facts
        .as_ref()
        .map(|f| {
            f.schema_cells
                .iter()
                .map(|(schema, c)| {
                    let share = if cells > 0.0 { c / cells } else { 0.0 };
                    (schema.clone(), json!(round2(size_mb * share)))
                })
                .collect()
        })
        .unwrap_or_default();
    let uploads_mb = mb(by_source.iter().map(|(_, b)| b).sum());
    let disk_breakdown = DiskBreakdown {
        duckdb: json!({"file_size_mb": size_mb, "schema_sizes": schema_sizes}),
        csv_uploads: json!({
            "total_mb": uploads_mb,
            "by_source": by_source.iter().map(|(n, b)| (n.clone(), json!(mb(*b)))).collect::<serde_json::Map<_, _>>(),
        }),
        backups: json!({"size_mb": 0.0}),
        dbt_artifacts: json!({"size_mb": 0.0}),
        dlt_pipelines: json!({"size_mb": 0.0}),
        metabase: json!({"size_mb": null}),
        total_mb: round2(size_mb + uploads_mb),
    };
    let dbt_failures = crate::models::service::failures(state).await;
    if !dbt_failures.is_empty() {
        warnings.push(format!(
            "{} model problem(s): failing models, failing tests or project errors",
            dbt_failures.len()
        ));
    }
    let current = state.schedules.current();
    let next_run_time = current
        .schedules
        .schedules
        .iter()
        .filter_map(|s| state.schedules.next_run(&s.def.name))
        .min()
        .map(crate::time::text);
    let status = if !critical.is_empty() {
        "unhealthy"
    } else if !warnings.is_empty() {
        "degraded"
    } else {
        "healthy"
    };
    PlatformHealth {
        status,
        timestamp: crate::time::now_text(),
        database: DatabaseHealth {
            size_gb: round2(size as f64 / f64::from(1u32 << 30)),
            size_mb,
            tables: counts.tables,
            status: db_status,
            raw_tables: counts.raw_tables,
            staging_tables: counts.staging_tables,
            marts_tables: counts.marts_tables,
        },
        disk,
        memory,
        disk_breakdown,
        duckdb_capacity: capacity,
        sync_failure_count: failures.len(),
        sync_failures: failures,
        dbt_failures,
        total_sources: sources.len(),
        enabled_sources: sources.values().filter(|s| s.enabled).count(),
        critical_issues: critical,
        warnings,
        scheduler: json!({
            "running": true,
            "job_count": current.schedules.schedules.iter().filter(|s| s.def.enabled).count(),
            "next_run_time": next_run_time,
        }),
        oauth_health: Vec::new(),
        credential_health: json!({"status": "healthy", "issues": [], "total_sources": sources.len()}),
    }
}

/// `GET /api/health/platform`.
pub(crate) async fn show_platform_health(State(state): State<AppState>) -> Json<PlatformHealth> {
    Json(platform_health(&state).await)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
