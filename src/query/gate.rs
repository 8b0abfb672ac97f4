//! Layer 1 of DESIGN.md §3: the statement gate.
//!
//! A statement passes only if
//! 1. it fits in `api.max_sql_bytes`;
//! 2. **DuckDB's own parser** (`json_serialize_sql`, the engine that will run it) finds
//!    exactly one statement and it is a SELECT — DuckDB turns `FROM`-first queries,
//!    `PIVOT`, `SUMMARIZE`, `DESCRIBE` and `SHOW` into SELECTs, and refuses everything
//!    else. `EXPLAIN` is accepted only in front of such a statement, never with ANALYZE
//!    (which runs it) or options;
//! 3. every function, table function and table in DuckDB's parse tree is allowed: scalar,
//!    aggregate and window functions come from DuckDB's own catalog minus a denylist
//!    (files, network, settings, metadata, the SQL executor), table functions from a short
//!    allowlist (`range`, `unnest`, ...), and table names may not look like files
//!    (DuckDB's replacement scans read `FROM 'x.csv'` or `FROM "x.parquet"`) or name the
//!    catalog internals (`duckdb_*`, `pragma_*`, `sqlite_*`, `pg_catalog`, `system`);
//! 4. **sqlparser** (DuckDB dialect), parsing the text independently, agrees where it can:
//!    if it parses, it must see one query/EXPLAIN/DESCRIBE/SHOW statement whose functions
//!    and tables pass the same rules. sqlparser 0.63 cannot parse some DuckDB syntax
//!    (`SUMMARIZE`, the `PIVOT` statement, `USING SAMPLE`); for those DuckDB's tree —
//!    the one that is executed — decides alone.
//!
//! Verdicts depend only on the text, so they are cached (bounded) by SQL string.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::Mutex;

use duckdb::Connection;
use serde_json::Value;
use sqlparser::ast::{Expr, ObjectName, ObjectNamePart, Statement, TableFactor, Visit, Visitor};
use sqlparser::dialect::DuckDbDialect;
use sqlparser::parser::Parser;

use super::{ALLOWED_TABLE_FUNCTIONS, QueryError, allowed_names, is_denied_function};

const CACHE_ENTRIES: usize = 4096;

/// Functions DuckDB knows, minus the denied ones: the scalar/aggregate/window allowlist.
pub struct FunctionCatalog {
    scalar: HashSet<String>,
}

impl FunctionCatalog {
    /// Reads DuckDB's function catalog (before the lockdown; user SQL never can).
    pub fn load(conn: &Connection) -> duckdb::Result<Self> {
        let mut stmt = conn.prepare(
            "SELECT DISTINCT lower(function_name) FROM duckdb_functions() \
             WHERE function_type IN ('scalar', 'aggregate', 'macro')",
        )?;
        let names = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            scalar: allowed_names(names),
        })
    }

    /// A catalog from a list of names (tests without DuckDB).
    pub fn from_names(names: &[&str]) -> Self {
        Self {
            scalar: allowed_names(names.iter().map(|s| (*s).to_owned())),
        }
    }

    fn check_scalar(&self, name: &str) -> Result<(), QueryError> {
        let lower = name.to_ascii_lowercase();
        if self.scalar.contains(&lower) {
            Ok(())
        } else if is_denied_function(&lower) {
            Err(refuse(
                "function",
                format!("the function {name}() is not allowed in queries"),
            ))
        } else {
            // Unknown to DuckDB too: let DuckDB's binder report it with its own message.
            Ok(())
        }
    }

    fn check_table_function(&self, name: &str) -> Result<(), QueryError> {
        let lower = name.to_ascii_lowercase();
        if ALLOWED_TABLE_FUNCTIONS.contains(&lower.as_str()) {
            Ok(())
        } else {
            Err(refuse(
                "table_function",
                format!(
                    "the table function {name}() is not allowed; allowed are: {}",
                    ALLOWED_TABLE_FUNCTIONS.join(", ")
                ),
            ))
        }
    }
}

fn refuse(rule: &'static str, message: String) -> QueryError {
    QueryError::NotReadOnly { rule, message }
}

/// Checks one table reference: `[catalog.][schema.]table`.
fn check_table(catalog: &str, schema: &str, table: &str) -> Result<(), QueryError> {
    for part in [catalog, schema, table] {
        if part.contains(['.', '/', '\\', ':', '~', '*', '?']) || part.starts_with('\'') {
            return Err(refuse(
                "file_as_table",
                format!("{part:?} looks like a file; queries may only read warehouse tables"),
            ));
        }
    }
    let lower = |s: &str| s.to_ascii_lowercase();
    let (catalog, schema, table) = (lower(catalog), lower(schema), lower(table));
    let internal = ["duckdb_", "pragma_", "sqlite_"]
        .iter()
        .any(|p| table.starts_with(p))
        || schema == "pg_catalog"
        || catalog == "system";
    if internal {
        return Err(refuse(
            "metadata",
            format!("{table} is engine metadata; use SHOW TABLES, DESCRIBE or information_schema"),
        ));
    }
    Ok(())
}

/// The gate: the function catalog plus a verdict cache.
pub struct Gate {
    catalog: std::sync::Arc<FunctionCatalog>,
    max_bytes: usize,
    cache: Mutex<HashMap<String, Result<(), QueryError>>>,
}

impl Gate {
    pub fn new(catalog: std::sync::Arc<FunctionCatalog>, max_bytes: usize) -> Self {
        Self {
            catalog,
            max_bytes,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The size check alone: cheap, done before a query is queued.
    pub fn check_size(&self, sql: &str) -> Result<(), QueryError> {
        if sql.len() > self.max_bytes {
            return Err(QueryError::TooLarge {
                size: sql.len(),
                limit: self.max_bytes,
            });
        }
        if sql.trim().is_empty() {
            return Err(QueryError::InvalidSql {
                message: "the SQL text is empty".into(),
                position: None,
            });
        }
        Ok(())
    }

    /// Full check of `sql`, using `conn` for DuckDB's parser.
    pub fn check(&self, conn: &Connection, sql: &str) -> Result<(), QueryError> {
        self.check_size(sql)?;
        if let Some(verdict) = self.lock().get(sql) {
            return verdict.clone();
        }
        let verdict = self.check_uncached(conn, sql);
        // Internal failures of the check itself are not cached.
        if !matches!(verdict, Err(QueryError::Failed(_))) {
            let mut cache = self.lock();
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(sql.to_owned(), verdict.clone());
        }
        verdict
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Result<(), QueryError>>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check_uncached(&self, conn: &Connection, sql: &str) -> Result<(), QueryError> {
        let (offset, body) = strip_explain(sql)?;
        check_with_duckdb(conn, body, offset, &self.catalog)?;
        check_with_sqlparser(sql, &self.catalog)
    }
}

/// Skips leading whitespace and comments.
fn skip_trivia(s: &str) -> &str {
    let mut rest = s;
    loop {
        let trimmed = rest.trim_start();
        if let Some(after) = trimmed.strip_prefix("--") {
            rest = after.find('\n').map_or("", |i| &after[i + 1..]);
        } else if let Some(after) = trimmed.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |i| &after[i + 2..]);
        } else {
            return trimmed;
        }
    }
}

/// For `EXPLAIN <query>`, returns the query and its byte offset; otherwise the whole text.
fn strip_explain(sql: &str) -> Result<(usize, &str), QueryError> {
    let start = skip_trivia(sql);
    let is_explain = start.len() >= 7
        && start[..7].eq_ignore_ascii_case("explain")
        && start[7..]
            .chars()
            .next()
            .is_none_or(|c| c.is_whitespace() || c == '/' || c == '-' || c == '(');
    if !is_explain {
        return Ok((0, sql));
    }
    let rest = skip_trivia(&start[7..]);
    let word: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
    if word.eq_ignore_ascii_case("analyze") || word.eq_ignore_ascii_case("analyse") {
        return Err(refuse(
            "explain_analyze",
            "EXPLAIN ANALYZE runs the statement; use EXPLAIN".into(),
        ));
    }
    if rest.starts_with('(') || word.eq_ignore_ascii_case("verbose") {
        return Err(refuse(
            "explain_options",
            "EXPLAIN takes no options here; use plain EXPLAIN".into(),
        ));
    }
    Ok((sql.len() - rest.len(), rest))
}

/// Asks DuckDB's parser what `sql` is and walks its tree.
fn check_with_duckdb(
    conn: &Connection,
    sql: &str,
    offset: usize,
    catalog: &FunctionCatalog,
) -> Result<(), QueryError> {
    let json: String = conn
        .query_row("SELECT json_serialize_sql(?::VARCHAR)", [sql], |r| r.get(0))
        .map_err(|e| QueryError::Failed(format!("the SQL check itself failed: {e}")))?;
    let tree: Value = serde_json::from_str(&json)
        .map_err(|e| QueryError::Failed(format!("the SQL check returned bad JSON: {e}")))?;
    if tree["error"].as_bool() == Some(true) {
        let message = tree["error_message"]
            .as_str()
            .unwrap_or("the SQL could not be parsed");
        if message.contains("Only SELECT statements") {
            return Err(refuse(
                "statement_type",
                "only read-only queries (SELECT, WITH, FROM, PIVOT, SUMMARIZE, DESCRIBE, SHOW, \
                 EXPLAIN) may run here"
                    .into(),
            ));
        }
        let position = tree["position"]
            .as_str()
            .and_then(|p| p.parse::<usize>().ok())
            .map(|p| p + offset);
        return Err(QueryError::InvalidSql {
            message: format!("Parser Error: {message}"),
            position,
        });
    }
    let statements = tree["statements"].as_array().map_or(0, Vec::len);
    match statements {
        0 => Err(QueryError::InvalidSql {
            message: "the SQL text holds no statement".into(),
            position: None,
        }),
        1 => walk(&tree["statements"][0], catalog),
        _ => Err(refuse(
            "multiple_statements",
            "send one statement at a time".into(),
        )),
    }
}

/// Walks DuckDB's serialized parse tree and checks every function and table in it.
fn walk(node: &Value, catalog: &FunctionCatalog) -> Result<(), QueryError> {
    match node {
        Value::Object(map) => {
            let ty = map.get("type").and_then(Value::as_str).unwrap_or("");
            let class = map.get("class").and_then(Value::as_str).unwrap_or("");
            let str_of = |k: &str| map.get(k).and_then(Value::as_str).unwrap_or("");
            match (class, ty) {
                (_, "TABLE_FUNCTION") => {
                    let function = map.get("function").unwrap_or(&Value::Null);
                    let name = function["function_name"].as_str().unwrap_or("");
                    catalog.check_table_function(name)?;
                    // Check the arguments, but not the function itself as a scalar.
                    walk(&function["children"], catalog)?;
                    for (k, v) in map {
                        if k != "function" {
                            walk(v, catalog)?;
                        }
                    }
                    return Ok(());
                }
                (_, "BASE_TABLE") => check_table(
                    str_of("catalog_name"),
                    str_of("schema_name"),
                    str_of("table_name"),
                )?,
                (_, "SHOW_REF") => check_table("", "", str_of("table_name"))?,
                ("FUNCTION" | "WINDOW" | "AGGREGATE", _) => {
                    catalog.check_scalar(str_of("function_name"))?
                }
                _ => {}
            }
            map.values().try_for_each(|v| walk(v, catalog))
        }
        Value::Array(items) => items.iter().try_for_each(|v| walk(v, catalog)),
        _ => Ok(()),
    }
}

/// The second, independent parser.
fn check_with_sqlparser(sql: &str, catalog: &FunctionCatalog) -> Result<(), QueryError> {
    let Ok(statements) = Parser::parse_sql(&DuckDbDialect {}, sql) else {
        // DuckDB-only syntax sqlparser does not know; DuckDB's tree was checked above.
        return Ok(());
    };
    let [statement] = statements.as_slice() else {
        return Err(refuse(
            "multiple_statements",
            "send one statement at a time".into(),
        ));
    };
    let allowed = match statement {
        Statement::Query(_)
        | Statement::ExplainTable { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. } => true,
        Statement::Explain {
            analyze,
            statement,
            options,
            ..
        } => {
            if *analyze {
                return Err(refuse(
                    "explain_analyze",
                    "EXPLAIN ANALYZE runs the statement; use EXPLAIN".into(),
                ));
            }
            options.is_none() && matches!(**statement, Statement::Query(_))
        }
        _ => false,
    };
    if !allowed {
        return Err(refuse(
            "statement_type",
            "only read-only queries may run here".into(),
        ));
    }
    match statement.visit(&mut SqlparserCheck { catalog }) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(()),
    }
}

struct SqlparserCheck<'a> {
    catalog: &'a FunctionCatalog,
}

fn name_parts(name: &ObjectName) -> Result<Vec<String>, QueryError> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(ident) if ident.quote_style == Some('\'') => Err(refuse(
                "file_as_table",
                format!(
                    "'{}' is a string used as a table; queries may only read warehouse tables",
                    ident.value
                ),
            )),
            ObjectNamePart::Identifier(ident) => Ok(ident.value.clone()),
            ObjectNamePart::Function(_) => Err(refuse(
                "table_function",
                "computed object names are not allowed".into(),
            )),
        })
        .collect()
}

fn last_part(name: &ObjectName) -> Result<String, QueryError> {
    Ok(name_parts(name)?.pop().unwrap_or_default())
}

impl Visitor for SqlparserCheck<'_> {
    type Break = QueryError;

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<QueryError> {
        let result = match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => {
                last_part(name).and_then(|n| self.catalog.check_table_function(&n))
            }
            TableFactor::Table {
                name, args: None, ..
            } => name_parts(name).and_then(|parts| {
                let mut parts = parts.into_iter().rev();
                let table = parts.next().unwrap_or_default();
                let schema = parts.next().unwrap_or_default();
                let catalog = parts.next().unwrap_or_default();
                check_table(&catalog, &schema, &table)
            }),
            TableFactor::TableFunction {
                expr: Expr::Function(f),
                ..
            } => last_part(&f.name).and_then(|n| self.catalog.check_table_function(&n)),
            TableFactor::TableFunction { .. } => Err(refuse(
                "table_function",
                "this table expression is not allowed".into(),
            )),
            _ => Ok(()),
        };
        match result {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<QueryError> {
        if let Expr::Function(f) = expr {
            let name = match last_part(&f.name) {
                Ok(n) => n,
                Err(e) => return ControlFlow::Break(e),
            };
            // A table function in FROM is also visited as an expression; its name was
            // checked against the table allowlist, and the scalar check would refuse it.
            if ALLOWED_TABLE_FUNCTIONS.contains(&name.to_ascii_lowercase().as_str()) {
                return ControlFlow::Continue(());
            }
            if let Err(e) = self.catalog.check_scalar(&name) {
                return ControlFlow::Break(e);
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlparser_verdict(sql: &str) -> Result<(), QueryError> {
        let catalog = FunctionCatalog::from_names(&["sum", "count", "lower", "read_csv", "range"]);
        check_with_sqlparser(sql, &catalog)
    }

    fn rule(r: Result<(), QueryError>) -> &'static str {
        match r {
            Err(QueryError::NotReadOnly { rule, .. }) => rule,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn explain_is_stripped_but_analyze_refused() {
        assert_eq!(
            strip_explain("  explain SELECT 1").unwrap(),
            (10, "SELECT 1")
        );
        assert_eq!(strip_explain("SELECT 1").unwrap(), (0, "SELECT 1"));
        assert_eq!(
            rule(strip_explain("EXPLAIN /* x */ ANALYZE SELECT 1").map(|_| ())),
            "explain_analyze"
        );
        assert_eq!(
            rule(strip_explain("-- c\nEXPLAIN (ANALYZE) SELECT 1").map(|_| ())),
            "explain_options"
        );
    }

    #[test]
    fn sqlparser_refuses_writes_and_file_reads() {
        assert_eq!(
            rule(sqlparser_verdict("COPY t TO 'x.csv'")),
            "statement_type"
        );
        assert_eq!(
            rule(sqlparser_verdict("SELECT * FROM read_csv('x')")),
            "table_function"
        );
        assert_eq!(
            rule(sqlparser_verdict("SELECT * FROM 'x.csv'")),
            "file_as_table"
        );
        assert_eq!(
            rule(sqlparser_verdict("SELECT * FROM \"x.parquet\"")),
            "file_as_table"
        );
        assert_eq!(
            rule(sqlparser_verdict("SELECT 1; SELECT 2")),
            "multiple_statements"
        );
        assert_eq!(rule(sqlparser_verdict("SELECT read_csv('x')")), "function");
    }

    #[test]
    fn sqlparser_accepts_ordinary_queries() {
        sqlparser_verdict("SELECT lower(a), sum(b) FROM t GROUP BY 1").unwrap();
        sqlparser_verdict("SELECT * FROM range(10) r").unwrap();
        sqlparser_verdict("DESCRIBE t").unwrap();
    }

    #[test]
    fn tables_that_look_like_files_or_internals_are_refused() {
        assert!(check_table("", "main", "orders").is_ok());
        assert!(check_table("", "information_schema", "tables").is_ok());
        assert_eq!(rule(check_table("", "", "data/x.csv")), "file_as_table");
        assert_eq!(rule(check_table("", "", "duckdb_settings")), "metadata");
        assert_eq!(rule(check_table("system", "main", "t")), "metadata");
    }
}
