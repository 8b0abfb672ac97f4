//! User SQL: the statement gate, running with limits, JSON results and streaming export.
//!
//! The path a query takes: `handlers` (HTTP) → `gate` (layer 1 of DESIGN.md §3: DuckDB's
//! own parser and sqlparser must both find one read-only statement that calls only allowed
//! functions and tables) → `run` on an interactive warehouse worker, inside
//! `BEGIN TRANSACTION READ ONLY` on a locked-down instance (layer 2) → `values` turns Arrow
//! batches into JSON, CSV or NDJSON bytes; `export` streams whole results.

pub mod cache;
pub mod export;
pub mod gate;
pub mod handlers;
pub mod history;
pub mod page;
pub mod run;
pub mod values;

use std::collections::HashSet;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

pub(crate) use gate::{CatalogCell, FunctionCatalog, Gate};

/// Why a query was refused or failed; each variant has its own stable `error` code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueryError {
    #[error("the SQL text is empty")]
    Empty,
    #[error("the SQL text is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("{message}")]
    InvalidSql {
        message: String,
        position: Option<usize>,
    },
    /// Refused by the gate: `rule` names the rule, `message` says what was found.
    #[error("{message}")]
    NotReadOnly { rule: &'static str, message: String },
    /// The statement was accepted but failed while running (conversion, division, ...).
    #[error("{0}")]
    Failed(String),
    #[error("the query ran longer than {seconds} s and was stopped")]
    Timeout { seconds: u64 },
    #[error("the export format {0:?} is not one of csv, ndjson, parquet")]
    UnknownFormat(String),
    /// Stopped by the memory watchdog.
    #[error(
        "the query was stopped: the server's memory passed its ceiling of {limit_mb} MB \
         (warehouse.max_process_memory) while it ran; aggregate or filter more, or build \
         smaller lists and strings"
    )]
    MemoryLimit { limit_mb: u64 },
}

impl QueryError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty_query",
            Self::TooLarge { .. } => "sql_too_large",
            Self::InvalidSql { .. } => "invalid_sql",
            Self::NotReadOnly { .. } => "not_read_only",
            Self::Failed(_) => "query_failed",
            Self::Timeout { .. } => "query_timeout",
            Self::UnknownFormat(_) => "invalid_format",
            Self::MemoryLimit { .. } => "memory_limit_exceeded",
        }
    }

    /// Extra fields for the JSON error body.
    pub(crate) fn context(&self) -> Map<String, Value> {
        let mut ctx = Map::new();
        match self {
            Self::TooLarge { size, limit } => {
                ctx.insert("size".into(), json!(size));
                ctx.insert("limit".into(), json!(limit));
            }
            Self::InvalidSql {
                position: Some(p), ..
            } => {
                ctx.insert("position".into(), json!(p));
            }
            Self::NotReadOnly { rule, .. } => {
                ctx.insert("rule".into(), json!(rule));
            }
            Self::Timeout { seconds } => {
                ctx.insert("timeout_seconds".into(), json!(seconds));
            }
            _ => {}
        }
        ctx
    }
}

/// Table functions a user query may call: they compute rows, they read nothing.
const ALLOWED_TABLE_FUNCTIONS: &[&str] = &[
    "range",
    "generate_series",
    "unnest",
    "json_each",
    "json_tree",
];

/// Function-name prefixes and names that reach files, the network, settings, the catalog
/// internals or the SQL executor. Checked for scalar and table functions alike.
const DENIED_PREFIXES: &[&str] = &[
    "read_",
    "write_",
    "duckdb_",
    "pragma_",
    "parquet_",
    "sniff_",
    "glob",
    "sqlite_",
    "postgres_",
    "mysql_",
    "iceberg_",
    "delta_",
    "http",
    "s3",
    "azure",
    "gcs",
    "install_",
    "load_",
    "export_",
    "import_",
    "enable_",
    "disable_",
    "set_",
    "checkpoint",
    "force_checkpoint",
    "json_execute",
    "getenv",
    "current_setting",
    "which_secret",
];
const DENIED_NAMES: &[&str] = &[
    "query",
    "query_table",
    "copy",
    "attach",
    "detach",
    "summary",
    // Settings, session variables and plans of other SQL (a plan can carry a setting's
    // value: json_serialize_plan('...current_setting(...)...', optimize := true)).
    "getvariable",
    "json_serialize_plan",
    "json_deserialize_sql",
];

/// True if a function of this (lowercase) name must never run from user SQL.
fn is_denied_function(name: &str) -> bool {
    DENIED_NAMES.contains(&name)
        || DENIED_PREFIXES.iter().any(|p| name.starts_with(p))
        || name.ends_with("_scan")
}

/// Window-only functions, which DuckDB's function catalog does not list.
const WINDOW_FUNCTIONS: &[&str] = &[
    "row_number",
    "rank",
    "dense_rank",
    "rank_dense",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    "first",
    "last",
    "fill",
];

fn allowed_names(catalog_names: impl IntoIterator<Item = String>) -> HashSet<String> {
    catalog_names
        .into_iter()
        .chain(WINDOW_FUNCTIONS.iter().map(|s| (*s).to_owned()))
        .filter(|n| !is_denied_function(n))
        .collect()
}
