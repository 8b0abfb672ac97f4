//! Models: dbt-style SQL transformations built inside Kura, on the single writer.
//!
//! `files` reads a project (models, macros, seeds, singular tests, property files, doc
//! blocks; `dbt_project.yml` when there is one) and `properties` its YAML; `jinja` renders
//! model SQL with minijinja; `compile` turns the files and the warehouse's sources into a
//! [`Project`]: nodes, tests, the DAG (`dag`), every model's SQL checked by the query gate
//! exactly as a user query is; `materialize` builds one node on the writer (view, table
//! swapped in one transaction, incremental merge, seed), `checks` generates and runs the
//! tests; `runner` carries out a run in DAG order, skipping what depends on a failure;
//! `service` holds the last good project, the runs going on and the coalesced runs after
//! loads; `column_lineage` (with `columns_expr` for DuckDB's `COLUMNS(...)`) derives which
//! upstream columns every output column comes from and checks it against DuckDB; `inspect` reads what the warehouse holds for a node; `repo` keeps run history in the metadata store; `search` finds nodes by name,
//! description or column; `handlers` is the HTTP surface
//! and `cli` the `kura run/test/build/compile/ls/seed` commands.

pub(crate) mod checks;
pub mod cli;
pub(crate) mod column_lineage;
pub(crate) mod columns_expr;
pub(crate) mod compile;
pub(crate) mod dag;
pub(crate) mod files;
pub(crate) mod handlers;
pub(crate) mod inspect;
pub(crate) mod jinja;
pub(crate) mod materialize;
pub(crate) mod node_config;
pub(crate) mod pages;
pub(crate) mod properties;
pub(crate) mod repo;
pub(crate) mod runner;
pub(crate) mod search;
pub(crate) mod service;

pub(crate) use service::ModelService;

/// A problem with the project's files: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ProjectError {
    pub(crate) file: String,
    pub(crate) line: Option<usize>,
    pub(crate) message: String,
}

impl ProjectError {
    pub(crate) fn at(file: &str, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ProjectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} line {line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}
