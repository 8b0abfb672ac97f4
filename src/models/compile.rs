//! From files to a [`Project`]: every node (sources, generated staging views, seeds,
//! models), its layered config, its SQL rendered twice as dbt does (a parse pass that finds
//! `config()` and `ref()`, a compile pass with every ref resolved), ephemeral models
//! inlined as CTEs, every statement checked by the query gate, the dependencies from refs
//! and from DuckDB's parse tree of the SQL, the tests, and the DAG.
//!
//! Runs on a warehouse connection (DuckDB's parser is the one that will run the SQL); it
//! reads the catalog, never writes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use duckdb::Connection;
use serde_yaml::Value as Yaml;

use super::ProjectError;
use super::checks::{self, DataTest};
use super::column_lineage;
use super::dag::Dag;
use super::files::{ProjectFiles, SourceFile};
use super::jinja::{self, Pass, Relation, Renderer, Scope, Target};
use super::node_config::{Materialization, NodeConfig, OnSchemaChange};
use super::properties::{ColumnProperties, NodeProperties};
use crate::query::Gate;
use crate::sources::staging;

/// What kind of node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum NodeKind {
    /// A table Kura loaded, or one declared under `sources:`.
    Source,
    /// A generated `staging.stg_<source>__<table>` view.
    Staging,
    Seed,
    Model,
}

/// A documented column.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct ColumnDoc {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) data_type: Option<String>,
}

/// One node of the DAG.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) kind: NodeKind,
    pub(crate) name: String,
    /// dbt's id: `model.<project>.<name>`, `seed.…`, `source.<project>.<source>.<table>`.
    pub(crate) unique_id: String,
    pub(crate) path: Option<String>,
    pub(crate) fqn: Vec<String>,
    pub(crate) relation: Relation,
    pub(crate) materialization: Materialization,
    pub(crate) description: String,
    pub(crate) tags: Vec<String>,
    pub(crate) columns: Vec<ColumnDoc>,
    pub(crate) raw_sql: String,
    /// The SQL that builds it (ephemeral models inlined, gate-checked); empty for sources.
    pub(crate) sql: String,
    /// Incremental models: the SQL rendered with `is_incremental()` true.
    pub(crate) incremental_sql: Option<String>,
    pub(crate) unique_key: Option<Vec<String>>,
    pub(crate) on_schema_change: OnSchemaChange,
    /// `full_refresh: false`: never rebuilt by `--full-refresh`.
    pub(crate) full_refresh: Option<bool>,
    pub(crate) column_types: Vec<(String, String)>,
    /// Source nodes: the source's name (Kura's or the `sources:` entry).
    pub(crate) source: Option<String>,
    /// The nodes it reads (indices into [`Project::nodes`]).
    pub(crate) parents: Vec<usize>,
}

impl Node {
    /// A node with nothing but its identity set.
    fn new(
        kind: NodeKind,
        name: String,
        unique_id: String,
        relation: Relation,
        materialization: Materialization,
    ) -> Self {
        Self {
            kind,
            name,
            unique_id,
            path: None,
            fqn: Vec::new(),
            relation,
            materialization,
            description: String::new(),
            tags: Vec::new(),
            columns: Vec::new(),
            raw_sql: String::new(),
            sql: String::new(),
            incremental_sql: None,
            unique_key: None,
            on_schema_change: OnSchemaChange::Ignore,
            full_refresh: None,
            column_types: Vec::new(),
            source: None,
            parents: Vec::new(),
        }
    }

    /// Whether running it builds something.
    pub(crate) fn builds(&self) -> bool {
        matches!(self.kind, NodeKind::Model | NodeKind::Seed)
            && self.materialization != Materialization::Ephemeral
    }
}

/// The compiled project.
#[derive(Debug, Default)]
pub(crate) struct Project {
    pub(crate) name: String,
    pub(crate) nodes: Vec<Node>,
    pub(crate) tests: Vec<DataTest>,
    pub(crate) dag: Dag,
    /// Node index by name: models, seeds and staging views by their name, sources as
    /// `source:<source>.<table>`.
    pub(crate) by_name: HashMap<String, usize>,
    pub(crate) errors: Vec<ProjectError>,
    /// The seed files' absolute paths by node index.
    pub(crate) seed_files: HashMap<usize, std::path::PathBuf>,
    /// Every node's output columns with the upstream columns each comes from, by node
    /// index (derived for models; sources and seeds as the warehouse has them).
    pub(crate) columns: Vec<column_lineage::Columns>,
    /// `/api/catalog/lineage`'s body, encoded once per compile (it depends on nothing
    /// else): 500 nodes answer in well under a millisecond.
    pub(crate) lineage: std::sync::OnceLock<bytes::Bytes>,
}

impl Project {
    pub(crate) fn node(&self, name: &str) -> Option<(usize, &Node)> {
        let i = *self.by_name.get(name)?;
        Some((i, &self.nodes[i]))
    }

    /// Models, in name order.
    pub(crate) fn models(&self) -> impl Iterator<Item = (usize, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.kind == NodeKind::Model)
    }
}

/// What the warehouse holds that models can read: Kura's sources and the generated views.
#[derive(Debug, Default, Clone)]
pub(crate) struct Catalog {
    /// Kura source name → its tables.
    pub(crate) sources: BTreeMap<String, Vec<String>>,
    /// Views in the `staging` schema.
    pub(crate) staging_views: BTreeSet<String>,
    /// Every relation's column names, by relation key: what column lineage starts from.
    pub(crate) columns: column_lineage::Known,
}

impl Catalog {
    /// Reads the catalog for the Kura sources `names`.
    pub(crate) fn read(conn: &Connection, names: &[String]) -> duckdb::Result<Self> {
        let mut out = Self::default();
        for name in names {
            out.sources.insert(name.clone(), Vec::new());
        }
        let mut stmt = conn.prepare(
            "SELECT table_schema, table_name FROM information_schema.tables \
             ORDER BY table_schema, table_name",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (schema, table) = row?;
            if schema == staging::SCHEMA {
                out.staging_views.insert(table);
            } else if let Some(source) = schema.strip_prefix("raw_")
                && let Some(tables) = out.sources.get_mut(source)
            {
                tables.push(table);
            }
        }
        let mut stmt = conn.prepare(
            "SELECT lower(table_schema) || '.' || lower(table_name), column_name \
             FROM information_schema.columns ORDER BY table_schema, table_name, ordinal_position",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (relation, column) = row?;
            out.columns.entry(relation).or_default().push(column);
        }
        Ok(out)
    }
}

/// Everything a compile needs besides the files.
pub(crate) struct Inputs<'a> {
    pub(crate) files: &'a ProjectFiles,
    pub(crate) catalog: &'a Catalog,
    pub(crate) gate: &'a Gate,
    /// Column lineage derived by earlier compiles.
    pub(crate) lineage: &'a column_lineage::Cache,
}

/// Compiles the project. Problems are collected in `errors` (a project with errors is
/// not used to run anything).
pub(crate) fn compile(conn: &Connection, input: &Inputs<'_>) -> Project {
    let files = input.files;
    let mut p = Project {
        name: files.name.clone(),
        errors: files.errors.clone(),
        ..Project::default()
    };
    let vars: BTreeMap<String, serde_json::Value> = files
        .dbt
        .vars
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), serde_json::to_value(v).ok()?)))
        .collect();
    let docs: BTreeMap<String, String> = files
        .docs
        .iter()
        .map(|(k, (_, text))| (k.clone(), text.clone()))
        .collect();
    let macros: Vec<(String, String)> = files
        .macros
        .iter()
        .map(|m| (m.path.clone(), m.text.clone()))
        .collect();
    let renderer = match Renderer::new(&macros, vars, docs, &files.name) {
        Ok(r) => r,
        Err(errors) => {
            p.errors.extend(
                errors
                    .into_iter()
                    .map(|(file, line, message)| ProjectError::at(&file, line, message)),
            );
            return p;
        }
    };
    let props = Props::gather(files, &mut p.errors);

    let started = std::time::Instant::now();
    add_sources(&mut p, input.catalog, &props, &renderer);
    add_seeds(&mut p, files, &props, &renderer);
    let parsed = parse_models(&mut p, files, &props, &renderer);
    let parse_ms = started.elapsed().as_secs_f64() * 1000.0;
    let rendered = render_models(&mut p, &renderer, &parsed);
    let render_ms = started.elapsed().as_secs_f64() * 1000.0 - parse_ms;
    let mut tests = checks::generate(&p, &props.node_tests, &renderer);
    tests.extend(checks::singular(&p, files, &renderer));
    let mut test_errors = Vec::new();
    p.tests = tests
        .into_iter()
        .filter_map(|t| match t {
            Ok(t) => Some(t),
            Err(e) => {
                test_errors.push(e);
                None
            }
        })
        .collect();
    p.errors.extend(test_errors);
    // Every statement goes through the gate, which waits on DuckDB's parser; column
    // lineage is CPU work of its own and runs beside it, on a second core when there is
    // one. Nothing is applied to the project until both are done.
    let seed_headers = seed_headers(&p, &input.catalog.columns);
    let (columns, checked, refused, checks_ms, lineage_ms) = std::thread::scope(|s| {
        let project = &p;
        let lineage = std::thread::Builder::new()
            .name("column-lineage".into())
            .stack_size(column_lineage::STACK_BYTES)
            .spawn_scoped(s, || {
                let started = std::time::Instant::now();
                let models: HashMap<usize, column_lineage::Model<'_>> = rendered
                    .iter()
                    .map(|r| {
                        let model = column_lineage::Model {
                            sql: &r.own_sql,
                            parents: &r.parents,
                        };
                        (r.index, model)
                    })
                    .collect();
                let columns = column_lineage::derive(
                    &project.nodes,
                    &models,
                    &input.catalog.columns,
                    &seed_headers,
                    input.lineage,
                );
                (columns, started.elapsed().as_secs_f64() * 1000.0)
            });
        let checked = check_models(project, conn, input.gate, &rendered);
        let refused: Vec<ProjectError> = project
            .tests
            .iter()
            .filter_map(|test| {
                let e = input.gate.check(conn, &test.sql).err()?;
                Some(ProjectError::at(
                    &test.path,
                    None,
                    format!("test {}: refused: {e}", test.name),
                ))
            })
            .collect();
        let checks_ms = started.elapsed().as_secs_f64() * 1000.0 - parse_ms - render_ms;
        let (columns, lineage_ms) = lineage.ok().and_then(|h| h.join().ok()).unwrap_or_else(|| {
            let failed = vec![Err("column lineage failed".into()); project.nodes.len()];
            (failed, 0.0)
        });
        (columns, checked, refused, checks_ms, lineage_ms)
    });
    let compile_ms = started.elapsed().as_secs_f64() * 1000.0 - parse_ms - render_ms;
    apply_checks(&mut p, rendered, checked);
    p.columns = columns;
    for (i, node) in p.nodes.iter().enumerate() {
        // A model the gate refused has no SQL: no lineage either.
        if node.kind == NodeKind::Model && node.sql.is_empty() {
            p.columns[i] = Err(format!("{} did not compile", node.name));
        }
    }
    p.errors.extend(refused);
    p.dag = Dag::build(&p);
    tracing::debug!(
        models = p.nodes.len(),
        tests = p.tests.len(),
        parse_ms,
        render_ms,
        checks_ms,
        lineage_ms,
        checks_and_lineage_ms = compile_ms,
        total_ms = started.elapsed().as_secs_f64() * 1000.0,
        "models project compiled"
    );
    if let Err(cycle) = p.dag.order() {
        let names: Vec<&str> = cycle.iter().map(|&i| p.nodes[i].name.as_str()).collect();
        p.errors.push(ProjectError::at(
            p.nodes[cycle[0]].path.as_deref().unwrap_or(""),
            None,
            format!(
                "the models form a cycle (each feeds the next): {}",
                names.join(" → ")
            ),
        ));
    }
    p
}

/// The header of every seed file the warehouse does not hold yet: its columns until it
/// is loaded (a loaded seed's columns are in `known`, and its file is not opened).
fn seed_headers(p: &Project, known: &column_lineage::Known) -> HashMap<usize, Vec<String>> {
    p.seed_files
        .iter()
        .filter(|&(&i, _)| !known.contains_key(&p.nodes[i].relation.key()))
        .filter_map(|(&i, path)| {
            let file = std::fs::File::open(path).ok()?;
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(file), &mut line).ok()?;
            let names = line
                .trim_end_matches(['\r', '\n'])
                .trim_start_matches('\u{feff}')
                .split(',')
                .map(|c| c.trim().trim_matches('"').to_owned())
                .collect();
            Some((i, names))
        })
        .collect()
}

/// Property-file entries by name, and the tests they declare.
struct Props {
    models: HashMap<String, (String, NodeProperties)>,
    seeds: HashMap<String, (String, NodeProperties)>,
    sources: Vec<(String, super::properties::SourceProperties)>,
    /// (properties file, node name or `source:s.t`, column or none, test spec).
    node_tests: Vec<checks::TestSpec>,
}

impl Props {
    fn gather(files: &ProjectFiles, errors: &mut Vec<ProjectError>) -> Self {
        let mut out = Self {
            models: HashMap::new(),
            seeds: HashMap::new(),
            sources: Vec::new(),
            node_tests: Vec::new(),
        };
        for (path, file) in &files.properties {
            for (list, into) in [
                (&file.models, &mut out.models),
                (&file.seeds, &mut out.seeds),
            ] {
                for entry in list {
                    if let Some((other, _)) = into.get(&entry.name) {
                        errors.push(ProjectError::at(
                            path,
                            None,
                            format!("{} is described twice (also in {other})", entry.name),
                        ));
                        continue;
                    }
                    into.insert(entry.name.clone(), (path.clone(), entry.clone()));
                }
            }
            for source in &file.sources {
                out.sources.push((path.clone(), source.clone()));
            }
        }
        for (name, (path, entry)) in out.models.iter().chain(out.seeds.iter()) {
            push_tests(
                &mut out.node_tests,
                path,
                name,
                &entry.data_tests,
                &entry.columns,
            );
        }
        for (path, source) in &out.sources {
            for table in &source.tables {
                let node = format!("source:{}.{}", source.name, table.name);
                push_tests(
                    &mut out.node_tests,
                    path,
                    &node,
                    &table.data_tests,
                    &table.columns,
                );
            }
        }
        out.node_tests
            .sort_by(|a, b| (&a.node, &a.column).cmp(&(&b.node, &b.column)));
        out
    }
}

fn push_tests(
    into: &mut Vec<checks::TestSpec>,
    path: &str,
    node: &str,
    model_tests: &[Yaml],
    columns: &[ColumnProperties],
) {
    for spec in model_tests {
        into.push(checks::TestSpec {
            path: path.to_owned(),
            node: node.to_owned(),
            column: None,
            quote: false,
            spec: spec.clone(),
        });
    }
    for column in columns {
        for spec in &column.data_tests {
            into.push(checks::TestSpec {
                path: path.to_owned(),
                node: node.to_owned(),
                column: Some(column.name.clone()),
                quote: column.quote.unwrap_or(false),
                spec: spec.clone(),
            });
        }
    }
}

fn column_docs(columns: &[ColumnProperties], renderer: &Renderer) -> Vec<ColumnDoc> {
    columns
        .iter()
        .map(|c| ColumnDoc {
            name: c.name.clone(),
            description: render_text(renderer, c.description.as_deref().unwrap_or("")),
            data_type: c.data_type.clone(),
        })
        .collect()
}

/// Descriptions may call `doc()`.
fn render_text(renderer: &Renderer, text: &str) -> String {
    if !text.contains("{{") {
        return text.to_owned();
    }
    renderer
        .render("description", text, Scope::default())
        .map_or_else(|_| text.to_owned(), |(s, _)| s)
}

fn add_node(p: &mut Project, key: String, node: Node) -> Result<usize, String> {
    if let Some(&other) = p.by_name.get(&key) {
        let o = &p.nodes[other];
        return Err(format!(
            "two nodes are named {key}: {} and {}",
            o.path.as_deref().unwrap_or(&o.unique_id),
            node.path.as_deref().unwrap_or(&node.unique_id)
        ));
    }
    p.nodes.push(node);
    p.by_name.insert(key, p.nodes.len() - 1);
    Ok(p.nodes.len() - 1)
}

fn source_node(project: &str, source: &str, table: &str, relation: Relation) -> Node {
    Node {
        fqn: vec![source.to_owned(), table.to_owned()],
        source: Some(source.to_owned()),
        ..Node::new(
            NodeKind::Source,
            format!("{source}.{table}"),
            format!("source.{project}.{source}.{table}"),
            relation,
            Materialization::Table,
        )
    }
}

/// Kura's source tables, the `sources:` declared in property files, and the staging views.
fn add_sources(p: &mut Project, catalog: &Catalog, props: &Props, renderer: &Renderer) {
    for (source, tables) in &catalog.sources {
        for table in tables {
            let node = source_node(
                &p.name,
                source,
                table,
                Relation::new(&format!("raw_{source}"), table),
            );
            let _ = add_node(p, format!("source:{source}.{table}"), node);
        }
    }
    for (path, source) in &props.sources {
        for table in &source.tables {
            let key = format!("source:{}.{}", source.name, table.name);
            let schema = source.schema.clone().unwrap_or_else(|| source.name.clone());
            let identifier = table
                .identifier
                .clone()
                .unwrap_or_else(|| table.name.clone());
            let description = render_text(
                renderer,
                table
                    .description
                    .as_deref()
                    .or(source.description.as_deref())
                    .unwrap_or(""),
            );
            let mut tags = source.tags.0.clone();
            tags.extend(table.tags.0.iter().cloned());
            let columns = column_docs(&table.columns, renderer);
            if let Some(&i) = p.by_name.get(&key) {
                // Kura's table, described.
                let node = &mut p.nodes[i];
                node.relation = Relation::new(&schema, &identifier);
                node.description = description;
                node.tags = tags;
                node.columns = columns;
                node.path = Some(path.clone());
                continue;
            }
            let mut node = source_node(
                &p.name,
                &source.name,
                &table.name,
                Relation::new(&schema, &identifier),
            );
            node.description = description;
            node.tags = tags;
            node.columns = columns;
            node.path = Some(path.clone());
            let _ = add_node(p, key, node);
        }
    }
    for (source, tables) in &catalog.sources {
        for table in tables {
            let view = staging::view_name(source, table);
            if !catalog.staging_views.contains(&view) {
                continue;
            }
            let mut node = source_node(
                &p.name,
                source,
                table,
                Relation::new(staging::SCHEMA, &view),
            );
            node.kind = NodeKind::Staging;
            node.name = view.clone();
            node.unique_id = format!("model.{}.{view}", p.name);
            node.materialization = Materialization::View;
            node.description = format!(
                "Generated: the columns of {source}.{table} without Kura's _kura_* columns"
            );
            node.sql = format!(
                "SELECT * FROM {}",
                Relation::new(&format!("raw_{source}"), table)
            );
            node.parents = p
                .by_name
                .get(&format!("source:{source}.{table}"))
                .copied()
                .into_iter()
                .collect();
            let _ = add_node(p, view, node);
        }
    }
}

fn add_seeds(p: &mut Project, files: &ProjectFiles, props: &Props, renderer: &Renderer) {
    for seed in &files.seeds {
        let name = seed.stem().to_owned();
        let mut config = NodeConfig::from_folders(&files.dbt.seeds, &files.name, &fqn_refs(seed))
            .unwrap_or_else(|e| {
                p.errors.push(ProjectError::at("dbt_project.yml", None, e));
                NodeConfig::default()
            });
        let (description, columns) = match props.seeds.get(&name) {
            Some((path, entry)) => {
                match NodeConfig::from_mapping(&entry.config) {
                    Ok(c) => config.merge(&c),
                    Err(e) => p.errors.push(ProjectError::at(path, None, e)),
                }
                (
                    render_text(renderer, entry.description.as_deref().unwrap_or("")),
                    column_docs(&entry.columns, renderer),
                )
            }
            None => (String::new(), Vec::new()),
        };
        if config.enabled == Some(false) {
            continue;
        }
        let relation = Relation::new(
            config.schema.as_deref().unwrap_or("main"),
            config.alias.as_deref().unwrap_or(&name),
        );
        let node = Node {
            path: Some(seed.path.clone()),
            fqn: seed.fqn.clone(),
            description,
            tags: config.tags.clone(),
            columns,
            column_types: config.column_types.clone(),
            ..Node::new(
                NodeKind::Seed,
                name.clone(),
                format!("seed.{}.{name}", files.name),
                relation,
                Materialization::Seed,
            )
        };
        match add_node(p, name, node) {
            Ok(i) => {
                p.seed_files.insert(i, files.root.join(&seed.path));
            }
            Err(e) => p.errors.push(ProjectError::at(&seed.path, None, e)),
        }
    }
}

fn fqn_refs(f: &SourceFile) -> Vec<&str> {
    f.fqn.iter().map(String::as_str).collect()
}

/// A model after the parse pass.
struct Parsed {
    index: usize,
    file: SourceFile,
    refs: Vec<String>,
    sources: Vec<(String, String)>,
}

fn parse_models(
    p: &mut Project,
    files: &ProjectFiles,
    props: &Props,
    renderer: &Renderer,
) -> Vec<Parsed> {
    let mut out = Vec::new();
    for file in &files.models {
        let name = file.stem().to_owned();
        let mut config =
            match NodeConfig::from_folders(&files.dbt.models, &files.name, &fqn_refs(file)) {
                Ok(c) => c,
                Err(e) => {
                    p.errors.push(ProjectError::at("dbt_project.yml", None, e));
                    continue;
                }
            };
        let entry = props.models.get(&name);
        if let Some((path, entry)) = entry {
            match NodeConfig::from_mapping(&entry.config) {
                Ok(c) => config.merge(&c),
                Err(e) => p.errors.push(ProjectError::at(path, None, e)),
            }
            config.merge(&NodeConfig {
                tags: entry.tags.0.clone(),
                ..NodeConfig::default()
            });
        }
        let provisional = Relation::new(
            config.schema.as_deref().unwrap_or("main"),
            config.alias.as_deref().unwrap_or(&name),
        );
        let scope = Scope {
            pass: Pass::Parse,
            this: Some(provisional),
            ..Scope::default()
        };
        let scope = match renderer.render(&file.path, &file.text, scope) {
            Ok((_, scope)) => scope,
            Err((line, message)) => {
                p.errors.push(ProjectError::at(&file.path, line, message));
                continue;
            }
        };
        for call in &scope.config {
            match NodeConfig::from_mapping(call) {
                Ok(c) => config.merge(&c),
                Err(e) => {
                    p.errors
                        .push(ProjectError::at(&file.path, None, format!("config(): {e}")))
                }
            }
        }
        if config.enabled == Some(false) {
            continue;
        }
        let materialization = config.materialized.unwrap_or_default();
        let relation = Relation::new(
            config.schema.as_deref().unwrap_or("main"),
            config.alias.as_deref().unwrap_or(&name),
        );
        let (description, columns) = match entry {
            Some((_, e)) => (
                render_text(renderer, e.description.as_deref().unwrap_or("")),
                column_docs(&e.columns, renderer),
            ),
            None => (String::new(), Vec::new()),
        };
        let node = Node {
            path: Some(file.path.clone()),
            fqn: file.fqn.clone(),
            description,
            tags: config.tags.clone(),
            columns,
            raw_sql: file.text.clone(),
            unique_key: config.unique_key.clone(),
            on_schema_change: config.on_schema_change.unwrap_or_default(),
            full_refresh: config.full_refresh,
            ..Node::new(
                NodeKind::Model,
                name.clone(),
                format!("model.{}.{name}", files.name),
                relation,
                materialization,
            )
        };
        match add_node(p, name, node) {
            Ok(index) => out.push(Parsed {
                index,
                file: file.clone(),
                refs: scope.used_refs,
                sources: scope.used_sources,
            }),
            Err(e) => p.errors.push(ProjectError::at(&file.path, None, e)),
        }
    }
    // Two relations with one name (an alias or schema clash) would overwrite each other.
    let mut relations: HashMap<String, usize> = HashMap::new();
    for (i, n) in p.nodes.iter().enumerate() {
        if !n.builds() {
            continue;
        }
        if let Some(&other) = relations.get(&n.relation.key()) {
            p.errors.push(ProjectError::at(
                n.path.as_deref().unwrap_or(""),
                None,
                format!(
                    "{} and {} would both build {}",
                    p.nodes[other].name, n.name, n.relation
                ),
            ));
        }
        relations.insert(n.relation.key(), i);
    }
    out
}

/// A model rendered in the compile pass, its ephemeral parents inlined: what the gate
/// checks and column lineage reads.
struct Rendered {
    index: usize,
    path: String,
    sql: String,
    /// As rendered, the ephemeral models it reads left as references to their CTEs (what
    /// column lineage reads: their columns come from their own lineage).
    own_sql: String,
    incremental: Option<String>,
    /// From `ref()` and `source()`; the gate adds the tables the SQL names.
    parents: BTreeSet<usize>,
}

/// Renders every model with its refs resolved and inlines the ephemeral models it
/// reads; render errors go to the project.
fn render_models(p: &mut Project, renderer: &Renderer, parsed: &[Parsed]) -> Vec<Rendered> {
    let refs: Arc<BTreeMap<String, Target>> = Arc::new(
        p.nodes
            .iter()
            .filter(|n| matches!(n.kind, NodeKind::Model | NodeKind::Seed | NodeKind::Staging))
            .map(|n| {
                let target = if n.materialization == Materialization::Ephemeral {
                    Target::Cte(jinja::cte_name(&n.name))
                } else {
                    Target::Relation(n.relation.clone())
                };
                (n.name.clone(), target)
            })
            .collect(),
    );
    let sources: Arc<BTreeMap<(String, String), Relation>> = Arc::new(
        p.nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Source)
            .filter_map(|n| {
                let source = n.source.clone()?;
                let table = n.fqn.get(1)?.clone();
                Some(((source, table), n.relation.clone()))
            })
            .collect(),
    );

    // Render every model; ephemeral models first need their own SQL, so keep the
    // rendered text and inline afterwards.
    let mut rendered: HashMap<usize, (String, Option<String>)> = HashMap::new();
    let mut parents: HashMap<usize, BTreeSet<usize>> = HashMap::new();
    for parsed in parsed {
        let node = &p.nodes[parsed.index];
        let render = |incremental: bool| {
            let scope = Scope {
                pass: Pass::Compile,
                this: Some(node.relation.clone()),
                incremental,
                refs: refs.clone(),
                sources: sources.clone(),
                ..Scope::default()
            };
            renderer.render(&parsed.file.path, &parsed.file.text, scope)
        };
        let (sql, scope) = match render(false) {
            Ok(r) => r,
            Err((line, message)) => {
                p.errors
                    .push(ProjectError::at(&parsed.file.path, line, message));
                continue;
            }
        };
        let incremental = if node.materialization == Materialization::Incremental {
            match render(true) {
                Ok((sql, _)) => Some(sql),
                Err((line, message)) => {
                    p.errors
                        .push(ProjectError::at(&parsed.file.path, line, message));
                    continue;
                }
            }
        } else {
            None
        };
        let mut deps = BTreeSet::new();
        for r in parsed.refs.iter().chain(&scope.used_refs) {
            match p.by_name.get(r) {
                Some(&i) => {
                    deps.insert(i);
                }
                None => p.errors.push(ProjectError::at(
                    &parsed.file.path,
                    None,
                    format!("{} refers to {r}, which is no model or seed", node.name),
                )),
            }
        }
        for (s, t) in parsed.sources.iter().chain(&scope.used_sources) {
            if let Some(&i) = p.by_name.get(&format!("source:{s}.{t}")) {
                deps.insert(i);
            }
        }
        parents.insert(parsed.index, deps);
        rendered.insert(parsed.index, (sql, incremental));
    }

    // Inline the ephemeral models each model reads.
    let ephemeral: BTreeSet<usize> = p
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.materialization == Materialization::Ephemeral)
        .map(|(i, _)| i)
        .collect();
    // The refs are parents even of a model that goes no further (an ephemeral cycle is
    // found in the DAG through them); the gate adds the tables the SQL names.
    for (&i, deps) in &parents {
        p.nodes[i].parents = deps.iter().copied().collect();
    }
    let mut out = Vec::with_capacity(parsed.len());
    for parsed in parsed {
        let i = parsed.index;
        let Some((sql, incremental)) = rendered.get(&i) else {
            continue;
        };
        // A cycle among ephemeral models is reported with the DAG.
        let Ok(ctes) = ephemeral_chain(i, &parents, &ephemeral) else {
            continue;
        };
        let with = |body: &str| -> String {
            let defs: Vec<String> = ctes
                .iter()
                .filter_map(|e| {
                    let (s, _) = rendered.get(e)?;
                    Some(format!(
                        "{} AS (\n{}\n)",
                        jinja::cte_name(&p.nodes[*e].name),
                        s.trim().trim_end_matches(';')
                    ))
                })
                .collect();
            inline_ctes(body, &defs)
                .trim()
                .trim_end_matches(';')
                .to_owned()
        };
        out.push(Rendered {
            index: i,
            path: parsed.file.path.clone(),
            sql: with(sql),
            own_sql: sql.trim().trim_end_matches(';').to_owned(),
            incremental: incremental.as_deref().map(with),
            parents: parents.get(&i).cloned().unwrap_or_default(),
        });
    }
    out
}

/// The gate's verdict on each rendered model: the nodes its SQL names (beyond its refs),
/// or why it is refused.
fn check_models(
    p: &Project,
    conn: &Connection,
    gate: &Gate,
    rendered: &[Rendered],
) -> Vec<Result<BTreeSet<usize>, ProjectError>> {
    // Relation keys → node, to map the tables a statement names.
    let by_relation: HashMap<String, usize> = p
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.materialization != Materialization::Ephemeral)
        .map(|(i, n)| (n.relation.key(), i))
        .collect();
    rendered
        .iter()
        .map(|r| {
            let mut found = BTreeSet::new();
            for text in std::iter::once(&r.sql).chain(&r.incremental) {
                let checked = gate.check(conn, text).map_err(|e| {
                    ProjectError::at(
                        &r.path,
                        None,
                        format!("{} is refused: {e}", p.nodes[r.index].name),
                    )
                })?;
                for t in checked.tables.iter() {
                    let schema = if t.schema.is_empty() {
                        "main"
                    } else {
                        &t.schema
                    };
                    let key = Relation::new(schema, &t.table).key();
                    if let Some(&dep) = by_relation.get(&key)
                        && dep != r.index
                    {
                        found.insert(dep);
                    }
                }
            }
            Ok(found)
        })
        .collect()
}

/// Sets each model's SQL and parents from its gate verdict; a refusal is a project error.
fn apply_checks(
    p: &mut Project,
    rendered: Vec<Rendered>,
    checked: Vec<Result<BTreeSet<usize>, ProjectError>>,
) {
    for (r, verdict) in rendered.into_iter().zip(checked) {
        let node = &mut p.nodes[r.index];
        match verdict {
            Ok(found) => {
                let mut parents = r.parents;
                parents.extend(found);
                node.parents = parents.into_iter().collect();
                node.sql = r.sql;
                node.incremental_sql = r.incremental;
            }
            Err(e) => p.errors.push(e),
        }
    }
}

/// The ephemeral models `model` reaches through ephemeral models only, in the order
/// their CTEs must be defined (dependencies first).
fn ephemeral_chain(
    model: usize,
    parents: &HashMap<usize, BTreeSet<usize>>,
    ephemeral: &BTreeSet<usize>,
) -> Result<Vec<usize>, ()> {
    fn visit(
        n: usize,
        parents: &HashMap<usize, BTreeSet<usize>>,
        ephemeral: &BTreeSet<usize>,
        path: &mut Vec<usize>,
        out: &mut Vec<usize>,
    ) -> Result<(), ()> {
        for &d in parents.get(&n).into_iter().flatten() {
            if !ephemeral.contains(&d) || out.contains(&d) {
                continue;
            }
            if path.contains(&d) {
                return Err(());
            }
            path.push(d);
            visit(d, parents, ephemeral, path, out)?;
            path.pop();
            out.push(d);
        }
        Ok(())
    }
    let mut out = Vec::new();
    visit(model, parents, ephemeral, &mut vec![model], &mut out)?;
    Ok(out)
}

/// Puts CTE definitions in front of `sql`: into its own `WITH` when it has one (dbt does
/// the same), else as a new `WITH`.
fn inline_ctes(sql: &str, defs: &[String]) -> String {
    if defs.is_empty() {
        return sql.to_owned();
    }
    let body = sql.trim_start();
    let lower = body.to_ascii_lowercase();
    let starts_with_word =
        |w: &str| lower.starts_with(w) && lower[w.len()..].starts_with(|c: char| c.is_whitespace());
    if starts_with_word("with") {
        let rest = body[4..].trim_start();
        let rest_lower = rest.to_ascii_lowercase();
        if rest_lower.starts_with("recursive")
            && rest_lower[9..].starts_with(|c: char| c.is_whitespace())
        {
            return format!(
                "WITH RECURSIVE {},\n{}",
                defs.join(",\n"),
                rest[9..].trim_start()
            );
        }
        return format!("WITH {},\n{rest}", defs.join(",\n"));
    }
    format!("WITH {}\n{body}", defs.join(",\n"))
}

/// A model node with defaults, for unit tests of the parts that take nodes.
#[cfg(test)]
pub(crate) fn test_node(name: &str, parents: &[usize]) -> Node {
    Node {
        path: Some(format!("models/marts/{name}.sql")),
        fqn: vec!["marts".into(), name.into()],
        parents: parents.to_vec(),
        ..Node::new(
            NodeKind::Model,
            name.into(),
            format!("model.p.{name}"),
            Relation::new("main", name),
            Materialization::Table,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctes_go_into_the_models_own_with() {
        let defs = vec!["__dbt__cte__e AS (\nselect 1 as a\n)".to_owned()];
        assert_eq!(
            inline_ctes("select * from __dbt__cte__e", &defs),
            "WITH __dbt__cte__e AS (\nselect 1 as a\n)\nselect * from __dbt__cte__e"
        );
        assert_eq!(
            inline_ctes(
                "  with x as (select 2) select * from x, __dbt__cte__e",
                &defs
            ),
            "WITH __dbt__cte__e AS (\nselect 1 as a\n),\nx as (select 2) select * from x, __dbt__cte__e"
        );
        assert!(
            inline_ctes("WITH RECURSIVE r AS (select 1) select 1", &defs)
                .starts_with("WITH RECURSIVE __dbt__cte__e AS")
        );
        // A model named "without_x" is not a WITH.
        assert!(inline_ctes("without_x", &defs).starts_with("WITH __dbt"));
    }
}
