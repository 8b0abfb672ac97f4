//! Data tests: generic ones declared in property files (`unique`, `not_null`,
//! `accepted_values`, `relationships`, and `{% test %}` macros of the project) and
//! singular ones (`tests/*.sql`). Each compiles to a query returning the failing rows;
//! a run keeps their count and up to five of them.

use duckdb::Connection;
use serde_yaml::Value as Yaml;

use super::ProjectError;
use super::compile::{NodeKind, Project};
use super::files::ProjectFiles;
use super::jinja::{Pass, Renderer, Scope};
use super::node_config::{NodeConfig, Severity};
use crate::db::warehouse::sql_ident;

/// A test as declared: where, on what, and its YAML.
#[derive(Debug, Clone)]
pub(crate) struct TestSpec {
    pub(crate) path: String,
    /// A model or seed name, or `source:<source>.<table>`.
    pub(crate) node: String,
    pub(crate) column: Option<String>,
    pub(crate) quote: bool,
    pub(crate) spec: Yaml,
}

/// A compiled test.
#[derive(Debug, Clone)]
pub(crate) struct DataTest {
    pub(crate) name: String,
    pub(crate) unique_id: String,
    /// The properties or test file that declares it.
    pub(crate) path: String,
    /// The node it is attached to (generic tests).
    pub(crate) node: Option<usize>,
    pub(crate) column: Option<String>,
    /// `not_null`, `unique`, …, or `singular`.
    pub(crate) test: String,
    pub(crate) severity: Severity,
    /// Returns the failing rows.
    pub(crate) sql: String,
    /// Every node it reads.
    pub(crate) depends_on: Vec<usize>,
}

/// Compiles the generic tests of `specs`.
pub(crate) fn generate(
    p: &Project,
    specs: &[TestSpec],
    renderer: &Renderer,
) -> Vec<Result<DataTest, ProjectError>> {
    let mut out: Vec<Result<DataTest, ProjectError>> = Vec::new();
    let mut names = std::collections::HashSet::new();
    for spec in specs {
        let result = one(p, spec, renderer).map(|mut t| {
            let base = t.name.clone();
            let mut k = 2;
            while !names.insert(t.name.clone()) {
                t.name = format!("{base}_{k}");
                k += 1;
            }
            t.unique_id = format!("test.{}.{}", p.name, t.name);
            t
        });
        // A test on a disabled or unknown node: dbt warns and drops it; say so.
        out.push(result.map_err(|message| ProjectError::at(&spec.path, None, message)));
    }
    out
}

fn one(p: &Project, spec: &TestSpec, renderer: &Renderer) -> Result<DataTest, String> {
    let (test, custom_name, args) = parse_spec(&spec.spec)?;
    let Some((index, node)) = p.node(&spec.node) else {
        return Err(format!(
            "a test of {} names no model, seed or source",
            spec.node
        ));
    };
    if node.materialization == super::node_config::Materialization::Ephemeral {
        return Err(format!(
            "{} is ephemeral (inlined where it is used, never built): it cannot be tested",
            node.name
        ));
    }
    let mut config = NodeConfig::default();
    let mut arguments = serde_yaml::Mapping::new();
    if let Yaml::Mapping(args) = &args {
        for (k, v) in args {
            let Yaml::String(key) = k else { continue };
            match key.as_str() {
                "config" => config.merge(&NodeConfig::from_mapping(v)?),
                "severity" | "where" => config.set(key, v)?,
                "arguments" => {
                    if let Yaml::Mapping(m) = v {
                        arguments.extend(m.clone());
                    }
                }
                "name" | "test_name" | "description" | "tags" | "meta" => {}
                _ => {
                    arguments.insert(k.clone(), v.clone());
                }
            }
        }
    }
    let relation_sql = match &config.where_ {
        Some(filter) => format!(
            "(SELECT * FROM {} WHERE {filter}) dbt_subquery",
            node.relation
        ),
        None => node.relation.sql(),
    };
    let column = spec
        .column
        .as_deref()
        .or_else(|| arguments.get("column_name").and_then(Yaml::as_str))
        .map(|c| column_sql(c, spec.quote));
    let need_column = || {
        column
            .clone()
            .ok_or_else(|| format!("{test} needs a column (declare it under columns:)"))
    };
    let mut depends_on = vec![index];
    let short = test.rsplit('.').next().unwrap_or(&test).to_owned();
    let mut suffix = String::new();
    let sql = match test.as_str() {
        "not_null" => format!(
            "SELECT * FROM {relation_sql} WHERE {} IS NULL",
            need_column()?
        ),
        "unique" => {
            let c = need_column()?;
            format!(
                "SELECT {c} AS unique_field, count(*) AS n_records FROM {relation_sql} \
                 WHERE {c} IS NOT NULL GROUP BY {c} HAVING count(*) > 1"
            )
        }
        "accepted_values" => {
            let c = need_column()?;
            let Some(Yaml::Sequence(values)) = arguments.get("values") else {
                return Err("accepted_values needs values: [...]".into());
            };
            let quote = arguments
                .get("quote")
                .and_then(Yaml::as_bool)
                .unwrap_or(true);
            let list: Vec<String> = values
                .iter()
                .map(|v| {
                    let text = yaml_text(v);
                    suffix.push_str(&format!("__{text}"));
                    if quote {
                        crate::db::warehouse::sql_string(&text)
                    } else {
                        text
                    }
                })
                .collect();
            format!(
                "SELECT {c} AS value_field, count(*) AS n_records FROM {relation_sql} \
                 GROUP BY {c} HAVING {c} NOT IN ({})",
                list.join(", ")
            )
        }
        "relationships" => {
            let c = need_column()?;
            let to = arguments
                .get("to")
                .and_then(Yaml::as_str)
                .ok_or("relationships needs to: ref('model') or source('s', 't')")?;
            let field = arguments
                .get("field")
                .and_then(Yaml::as_str)
                .ok_or("relationships needs field: <column of the parent>")?;
            let (parent, scope) = render_expression(p, renderer, to)?;
            depends_on.extend(referenced(p, &scope));
            suffix = format!("__{field}__{to}");
            format!(
                "SELECT child.from_field FROM (SELECT {c} AS from_field FROM {relation_sql} \
                 WHERE {c} IS NOT NULL) child LEFT JOIN (SELECT {} AS to_field FROM {parent}) parent \
                 ON child.from_field = parent.to_field WHERE parent.to_field IS NULL",
                column_sql(field, false)
            )
        }
        other => {
            // A {% test %} macro of the project.
            let model_expr = match node.kind {
                NodeKind::Source => format!(
                    "source({}, {})",
                    jinja_literal(&Yaml::String(node.source.clone().unwrap_or_default())),
                    jinja_literal(&Yaml::String(node.fqn.get(1).cloned().unwrap_or_default()))
                ),
                _ => format!("ref({})", jinja_literal(&Yaml::String(node.name.clone()))),
            };
            let mut call = format!("{{{{ test_{short}(model={model_expr}");
            if let Some(c) = &spec.column {
                call.push_str(&format!(
                    ", column_name={}",
                    jinja_literal(&Yaml::String(c.clone()))
                ));
            }
            for (k, v) in &arguments {
                if let Yaml::String(k) = k
                    && k != "column_name"
                {
                    call.push_str(&format!(", {k}={}", jinja_literal(v)));
                }
            }
            call.push_str(") }}");
            if other.contains('.') {
                return Err(format!(
                    "the test {other} comes from a package; packages are not installed here \
                     (write it as a {{% test {short} %}} macro in macros/)"
                ));
            }
            let (sql, scope) = renderer
                .render(&spec.path, &call, compile_scope(p))
                .map_err(|(_, message)| {
                    if message.contains("unknown function") {
                        format!("{other} is not a known test (not_null, unique, accepted_values, relationships, or a {{% test {other} %}} macro)")
                    } else {
                        format!("test {other}: {message}")
                    }
                })?;
            depends_on.extend(referenced(p, &scope));
            sql.trim().trim_end_matches(';').to_owned()
        }
    };
    depends_on.sort_unstable();
    depends_on.dedup();
    let subject = match node.kind {
        NodeKind::Source => format!("source_{}", node.name.replace('.', "_")),
        _ => node.name.clone(),
    };
    let name = custom_name.unwrap_or_else(|| {
        let mut n = format!("{short}_{subject}");
        if let Some(c) = &spec.column {
            n.push('_');
            n.push_str(c);
        }
        n.push_str(&suffix);
        test_name(&n)
    });
    Ok(DataTest {
        name,
        unique_id: String::new(),
        path: spec.path.clone(),
        node: Some(index),
        column: spec.column.clone(),
        test: short,
        severity: config.severity.unwrap_or_default(),
        sql,
        depends_on,
    })
}

/// dbt's test names: runs of anything but letters, digits and `_` become one `_`
/// (`relationships_orders_customer_id__customer_id__ref_customers_`).
fn test_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut replaced = false;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
            replaced = false;
        } else if !replaced {
            out.push('_');
            replaced = true;
        }
    }
    out
}

/// `unique` → ("unique", None, Null); `{accepted_values: {...}}`; `{name: n, test_name: t, …}`.
fn parse_spec(spec: &Yaml) -> Result<(String, Option<String>, Yaml), String> {
    match spec {
        Yaml::String(s) => Ok((s.clone(), None, Yaml::Null)),
        Yaml::Mapping(m) if m.contains_key("test_name") => {
            let test = m
                .get("test_name")
                .and_then(Yaml::as_str)
                .ok_or("test_name: expected a string")?;
            let name = m.get("name").and_then(Yaml::as_str).map(str::to_owned);
            Ok((test.to_owned(), name, spec.clone()))
        }
        Yaml::Mapping(m) if m.len() == 1 => {
            let (k, v) = m.iter().next().ok_or("empty test")?;
            let k = k.as_str().ok_or("a test name must be a string")?;
            let name = v.get("name").and_then(Yaml::as_str).map(str::to_owned);
            Ok((k.to_owned(), name, v.clone()))
        }
        _ => Err(format!("cannot read the test {spec:?}")),
    }
}

fn yaml_text(v: &Yaml) -> String {
    match v {
        Yaml::String(s) => s.clone(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Null => "null".into(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

/// A YAML value as a Jinja literal.
fn jinja_literal(v: &Yaml) -> String {
    match v {
        Yaml::Null => "none".into(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        Yaml::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Yaml::Sequence(items) => format!(
            "[{}]",
            items
                .iter()
                .map(jinja_literal)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Yaml::Mapping(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", jinja_literal(k), jinja_literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Yaml::Tagged(t) => jinja_literal(&t.value),
    }
}

/// A column as written in a property file: a plain identifier stays as written (DuckDB
/// matches it case-insensitively, as dbt leaves it unquoted); anything else, or
/// `quote: true`, is quoted.
fn column_sql(name: &str, quote: bool) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain && !quote {
        name.to_owned()
    } else {
        sql_ident(name)
    }
}

fn compile_scope(p: &Project) -> Scope {
    use super::jinja::Target;
    let refs = p
        .nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Model | NodeKind::Seed | NodeKind::Staging))
        .map(|n| (n.name.clone(), Target::Relation(n.relation.clone())))
        .collect();
    let sources = p
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Source)
        .filter_map(|n| {
            Some((
                (n.source.clone()?, n.fqn.get(1)?.clone()),
                n.relation.clone(),
            ))
        })
        .collect();
    Scope {
        pass: Pass::Compile,
        refs: std::sync::Arc::new(refs),
        sources: std::sync::Arc::new(sources),
        ..Scope::default()
    }
}

/// Renders a Jinja expression such as `ref('customers')`.
fn render_expression(
    p: &Project,
    renderer: &Renderer,
    expr: &str,
) -> Result<(String, Scope), String> {
    let template = if expr.contains("{{") {
        expr.to_owned()
    } else {
        format!("{{{{ {expr} }}}}")
    };
    renderer
        .render("test", &template, compile_scope(p))
        .map_err(|(_, m)| m)
}

fn referenced(p: &Project, scope: &Scope) -> Vec<usize> {
    let mut out: Vec<usize> = scope
        .used_refs
        .iter()
        .filter_map(|r| p.by_name.get(r).copied())
        .collect();
    out.extend(
        scope
            .used_sources
            .iter()
            .filter_map(|(s, t)| p.by_name.get(&format!("source:{s}.{t}")).copied()),
    );
    out
}

/// The singular tests of `tests/`.
pub(crate) fn singular(
    p: &Project,
    files: &ProjectFiles,
    renderer: &Renderer,
) -> Vec<Result<DataTest, ProjectError>> {
    files
        .tests
        .iter()
        .map(|f| {
            let (sql, scope) = renderer
                .render(&f.path, &f.text, compile_scope(p))
                .map_err(|(line, message)| ProjectError::at(&f.path, line, message))?;
            let depends_on = referenced(p, &scope);
            let mut config = NodeConfig::default();
            for c in &scope.config {
                config.merge(
                    &NodeConfig::from_mapping(c).map_err(|e| ProjectError::at(&f.path, None, e))?,
                );
            }
            Ok(DataTest {
                name: f.stem().to_owned(),
                unique_id: format!("test.{}.{}", p.name, f.stem()),
                path: f.path.clone(),
                node: depends_on.first().copied(),
                column: None,
                test: "singular".into(),
                severity: config.severity.unwrap_or_default(),
                sql: sql.trim().trim_end_matches(';').to_owned(),
                depends_on,
            })
        })
        .collect()
}

/// What a test found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct Outcome {
    pub(crate) failures: u64,
    /// Up to five failing rows, as JSON objects.
    pub(crate) samples: Vec<serde_json::Value>,
}

/// Runs a (gate-checked) test query.
pub(crate) fn run(conn: &Connection, sql: &str) -> duckdb::Result<Outcome> {
    let failures: i64 =
        conn.query_row(&format!("SELECT count(*) FROM ({sql}) dbt_test"), [], |r| {
            r.get(0)
        })?;
    let mut samples = Vec::new();
    if failures > 0 {
        let mut stmt = conn.prepare(&format!(
            "SELECT to_json(dbt_test)::VARCHAR FROM ({sql}) dbt_test LIMIT 5"
        ))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for row in rows {
            samples.push(serde_json::from_str(&row?).unwrap_or(serde_json::Value::Null));
        }
    }
    Ok(Outcome {
        failures: u64::try_from(failures).unwrap_or(0),
        samples,
    })
}
