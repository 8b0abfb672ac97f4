//! Kura: a local-first data workbench in one process.
//!
//! ```text
//!  HTTP (axum, tokio) ──► routes ──► handlers ──┬─► query::gate ─► warehouse interactive lane
//!                                               │     (DuckDB parser + sqlparser allowlist)   (N threads, try_clone()
//!                                               │                                              connections, READ ONLY)
//!                                               ├─► db::meta (SQLite: 1 writer + 2 readers)
//!                                               └─► platform (status, config, health)
//!  warehouse background lane: the single writer (loads, housekeeping, final checkpoint)
//! ```
//!
//! One DuckDB instance per process, locked down at startup (no files outside
//! `.kura/staging/`, no network, no extensions, configuration locked) and read back; a
//! second `kura serve` on the same project is refused by `.kura/serve.lock`. Blocking work
//! never runs on tokio workers: databases have their own threads, the rest goes through
//! [`blocking::run`]. See `docs/ARCHITECTURE.md` for the map.
//!
//! Modules:
//! - [`app`]: `AppState`, start-up and ordered shutdown; [`routes`]: the route table;
//!   [`cli`]: the command line; [`config`]: `project.yml`; [`project`]: `kura init`.
//! - [`sources`]: folders of files → tables (registry, ledger, sync plan, load, views,
//!   pages); [`watcher`]: inotify → syncs; [`query`]: the gate, runs, exports, the result
//!   cache; [`schedules`]: `schedules.yml`, the scheduler, its history; [`events`]: the
//!   bus, the activity log, `/ws`; [`platform`]: status, config, health; [`auth`]:
//!   accounts, sessions, keys, roles; [`secrets`]: `.env`; [`models`]: dbt-style SQL
//!   models (compile, DAG, runs on the writer, tests, lineage).
//! - [`db`]: the DuckDB warehouse (single writer, guarded query lanes), the SQLite
//!   metadata store, lanes; [`web`]: extractors, middleware, page layout; [`error`]: the
//!   JSON error shape; [`tasks`], [`blocking`], [`time`], `locks`: shared plumbing.

/// This build's version, as `/api/status` and the logs name it.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod app;
pub mod auth;
pub mod blocking;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod events;
pub(crate) mod locks;
pub mod models;
pub mod platform;
pub mod project;
pub mod query;
pub mod routes;
pub mod schedules;
pub mod secrets;
pub mod sources;
pub mod tasks;
pub mod time;
pub mod watcher;
pub mod web;

pub use app::{AppState, serve};
pub use config::Config;
