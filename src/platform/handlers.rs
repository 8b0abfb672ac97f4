//! HTTP handlers of the platform endpoints.

use axum::extract::State;
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};

use serde::Serialize;

use super::{Memory, TableCounts, count_tables, disk, disk_status, memory, warehouse_bytes};
use crate::app::AppState;
use crate::blocking;
use crate::config::masked_json;
use crate::error::{AppError, Result};
use crate::web::extract::Json;

/// What the warehouse reports about itself: table counts and failed ledger files.
struct WarehouseFacts {
    counts: TableCounts,
    sync_failures: u64,
}

async fn warehouse_facts(state: &AppState) -> Result<WarehouseFacts> {
    state
        .warehouse
        .internal(|conn| {
            let counts = count_tables(conn)?;
            // The load ledger exists once something was loaded.
            let sync_failures = if crate::sources::repo::ledger_exists(conn)? {
                conn.query_row(
                    "SELECT count(*) FROM _kura.files WHERE status = 'failed'",
                    [],
                    |r| r.get(0),
                )?
            } else {
                0
            };
            Ok::<_, duckdb::Error>(WarehouseFacts {
                counts,
                sync_failures,
            })
        })
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .map_err(|e| AppError::Internal(e.into()))
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `GET /api/status`: each component and its state.
pub async fn show_status(State(state): State<AppState>) -> Result<Json<Value>> {
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
    Ok(Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "project": state.config.project.name,
        "timestamp": now(),
        "started_at": state.started_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        "uptime_seconds": (Utc::now() - state.started_at).num_seconds(),
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
pub async fn show_config(State(state): State<AppState>) -> Json<Value> {
    let c = &state.config;
    let host = match c.platform.bind {
        ip if ip.is_unspecified() => "localhost".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let web = format!("http://{host}:{}", c.platform.port);
    Json(json!({
        "project": masked_json(c),
        "project_dir": c.root,
        "services": {
            "web": web,
            "api": format!("{web}/api"),
        },
    }))
}

#[derive(Debug, Serialize)]
pub struct DatabaseHealth {
    pub size_mb: f64,
    pub tables: u64,
    pub status: &'static str,
    pub raw_tables: u64,
    pub staging_tables: u64,
    pub marts_tables: u64,
}

#[derive(Debug, Serialize)]
pub struct DiskHealth {
    pub status: &'static str,
    pub free_gb: Option<f64>,
    pub total_gb: Option<f64>,
}

/// `/api/health/platform` in the reference product's shape (plus `memory`); the health
/// page shows the same.
#[derive(Debug, Serialize)]
pub struct PlatformHealth {
    /// healthy, degraded or unhealthy.
    pub status: &'static str,
    pub timestamp: String,
    pub database: DatabaseHealth,
    pub disk: DiskHealth,
    pub memory: Memory,
    pub sync_failures: u64,
    pub total_sources: usize,
    pub enabled_sources: usize,
    pub critical_issues: Vec<String>,
    pub warnings: Vec<String>,
}

pub async fn platform_health(state: &AppState) -> PlatformHealth {
    let (db_status, facts) = match warehouse_facts(state).await {
        Ok(f) => ("healthy", Some(f)),
        Err(e) => {
            tracing::warn!(error = %e, "warehouse health check failed");
            ("unhealthy", None)
        }
    };
    let counts = facts.as_ref().map(|f| f.counts).unwrap_or_default();
    let sources = state.sources();
    let sync_failures = facts.as_ref().map_or(0, |f| f.sync_failures);
    let root = state.config.root.clone();
    let wh_path = state.warehouse.path().to_path_buf();
    let (size, disk, memory) =
        blocking::run(move || (warehouse_bytes(&wh_path), disk(&root), memory())).await;
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
            DiskHealth {
                status,
                free_gb: Some(round2(free_gb)),
                total_gb: Some(round2(d.total_bytes as f64 / f64::from(1u32 << 30))),
            }
        }
        Err(e) => {
            warnings.push(format!("cannot read disk space: {e}"));
            DiskHealth {
                status: "unknown",
                free_gb: None,
                total_gb: None,
            }
        }
    };
    if sync_failures > 0 {
        warnings.push(format!("{sync_failures} file(s) failed to load"));
    }
    let status = if !critical.is_empty() {
        "unhealthy"
    } else if !warnings.is_empty() {
        "degraded"
    } else {
        "healthy"
    };
    PlatformHealth {
        status,
        timestamp: now(),
        database: DatabaseHealth {
            size_mb: round2(size as f64 / 1_048_576.0),
            tables: counts.tables,
            status: db_status,
            raw_tables: counts.raw_tables,
            staging_tables: counts.staging_tables,
            marts_tables: counts.marts_tables,
        },
        disk,
        memory,
        sync_failures,
        total_sources: sources.len(),
        enabled_sources: sources.values().filter(|s| s.enabled).count(),
        critical_issues: critical,
        warnings,
    }
}

/// `GET /api/health/platform`.
pub async fn show_platform_health(State(state): State<AppState>) -> Json<PlatformHealth> {
    Json(platform_health(&state).await)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
