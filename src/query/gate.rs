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
//! Verdicts depend only on the text, so they are cached (bounded) by SQL string. A verdict
//! also says whether the statement is deterministic (no volatile or per-query function such
//! as `now()` or `random()`, no `SAMPLE`): only those results may be kept by the result
//! cache (`query/cache.rs`).

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, OnceLock};

use duckdb::Connection;
use serde_json::Value;
use sqlparser::ast::{Expr, ObjectName, ObjectNamePart, Statement, TableFactor, Visit, Visitor};
use sqlparser::dialect::DuckDbDialect;
use sqlparser::parser::Parser;

use super::{ALLOWED_TABLE_FUNCTIONS, QueryError, allowed_names, is_denied_function};

const CACHE_ENTRIES: usize = 4096;

/// Functions DuckDB knows, minus the denied ones: the scalar/aggregate/window allowlist.
pub(crate) struct FunctionCatalog {
    scalar: HashSet<String>,
    /// DuckDB's own views and tables in `main` and `pg_catalog` (`pg_settings`,
    /// `pg_prepared_statements`, `duckdb_*`, `sqlite_master`, ...): an unqualified name
    /// resolves to them through the search path.
    internal_relations: HashSet<String>,
    /// Functions whose result is not set by their arguments alone (DuckDB's `stability` is
    /// `VOLATILE` or `CONSISTENT_WITHIN_QUERY`: `now()`, `current_date`, `random()`,
    /// `uuid()`…), and macros that call one.
    volatile: HashSet<String>,
}

/// The function catalog, read once after the instance opens on the warehouse's internal
/// lane: the scan of `duckdb_functions()` costs ~100 ms on a cold instance, so it runs
/// beside the rest of the start instead of before the first answer. A check that comes
/// earlier waits for it (on a warehouse worker, never on the async runtime).
#[derive(Default)]
pub(crate) struct CatalogCell(OnceLock<Result<FunctionCatalog, String>>);

impl CatalogCell {
    /// Stores the outcome of the read; only the first one counts.
    pub(crate) fn fill(&self, outcome: Result<FunctionCatalog, String>) {
        if let Err(message) = &outcome {
            tracing::error!(error = %message, "cannot read DuckDB's function catalog; queries will be refused");
        }
        let _ = self.0.set(outcome);
    }

    /// The catalog, waiting for the read if it is still running.
    pub(crate) fn wait(&self) -> Result<&FunctionCatalog, QueryError> {
        self.0.wait().as_ref().map_err(|message| {
            QueryError::Failed(format!(
                "DuckDB's function catalog could not be read: {message}"
            ))
        })
    }
}

/// The `information_schema` views a query may read: they list tables and columns, never
/// settings, paths or other users' SQL.
const INFORMATION_SCHEMA_VIEWS: &[&str] = &[
    "tables",
    "columns",
    "schemata",
    "views",
    "table_constraints",
    "key_column_usage",
    "referential_constraints",
];

/// Largest list or string the constant-size functions may build (elements or characters).
pub(crate) const MAX_CONSTANT_SIZE: f64 = 1_000_000.0;

impl FunctionCatalog {
    /// Reads DuckDB's function catalog (on an unguarded connection; user SQL never can).
    pub(crate) fn load(conn: &Connection) -> duckdb::Result<Self> {
        // One scan of duckdb_functions() (each costs DuckDB ~40 ms at startup): names for
        // the allowlist, stability for the volatile set.
        let mut stmt = conn.prepare(
            "SELECT DISTINCT lower(function_name), coalesce(stability, '') \
             FROM duckdb_functions() WHERE function_type IN ('scalar', 'aggregate', 'macro')",
        )?;
        let described = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = conn.prepare(
            "SELECT lower(view_name) FROM duckdb_views() \
             WHERE internal AND schema_name IN ('main', 'pg_catalog') \
             UNION SELECT lower(table_name) FROM duckdb_tables() \
             WHERE internal AND schema_name IN ('main', 'pg_catalog')",
        )?;
        let internal_relations = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<HashSet<_>, _>>()?;
        Ok(Self {
            scalar: allowed_names(described.iter().map(|(name, ..)| name.clone())),
            internal_relations,
            volatile: volatile_names(&described),
        })
    }

    /// A catalog from a list of names (tests without DuckDB).
    #[cfg(test)]
    pub(crate) fn from_names(names: &[&str]) -> Self {
        Self {
            scalar: allowed_names(names.iter().map(|s| (*s).to_owned())),
            internal_relations: ["pg_settings", "pg_prepared_statements", "duckdb_settings"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            volatile: ["now", "random", "current_date"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
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

impl FunctionCatalog {
    /// Checks one table reference, `[catalog.][schema.]table`, the way DuckDB will resolve
    /// it: warehouse schemas are open; DuckDB's own relations (reachable unqualified, in
    /// `main` or `pg_catalog`) and every `information_schema` view but a few are not.
    fn check_table(&self, catalog: &str, schema: &str, table: &str) -> Result<(), QueryError> {
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
        let metadata = || {
            refuse(
                "metadata",
                format!(
                    "{table} is engine metadata; use SHOW TABLES, DESCRIBE or \
                     information_schema.{{{}}}",
                    INFORMATION_SCHEMA_VIEWS.join(",")
                ),
            )
        };
        if schema == "information_schema" {
            return if INFORMATION_SCHEMA_VIEWS.contains(&table.as_str()) {
                Ok(())
            } else {
                Err(metadata())
            };
        }
        let search_path = matches!(schema.as_str(), "" | "main");
        let internal = ["duckdb_", "pragma_", "sqlite_"]
            .iter()
            .any(|p| table.starts_with(p))
            || matches!(schema.as_str(), "pg_catalog" | "temp")
            || matches!(catalog.as_str(), "system" | "temp")
            || (search_path
                && (table.starts_with("pg_") || self.internal_relations.contains(&table)));
        if internal {
            return Err(metadata());
        }
        Ok(())
    }
}

/// The gate: the function catalog plus a verdict cache.
pub struct Gate {
    catalog: Arc<CatalogCell>,
    max_bytes: usize,
    cache: Mutex<HashMap<String, Verdict>>,
}

type Verdict = Result<Checked, QueryError>;

/// A statement the gate let through.
#[derive(Debug, Clone)]
pub struct Checked {
    /// What to run: built from exactly what was checked, never the raw text.
    pub sql: Arc<str>,
    /// Its result is set by the warehouse's contents alone (no volatile function, no
    /// sample), so it may be answered from the result cache.
    pub(crate) deterministic: bool,
    /// The tables it reads (without its CTEs' names), from DuckDB's parse tree: what a
    /// model that names tables directly depends on.
    pub(crate) tables: Arc<[TableRef]>,
}

impl Gate {
    pub(crate) fn new(catalog: Arc<CatalogCell>, max_bytes: usize) -> Self {
        Self {
            catalog,
            max_bytes,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The size check alone: cheap, done before a query is queued.
    pub(crate) fn check_size(&self, sql: &str) -> Result<(), QueryError> {
        if sql.len() > self.max_bytes {
            return Err(QueryError::TooLarge {
                size: sql.len(),
                limit: self.max_bytes,
            });
        }
        if sql.trim().is_empty() {
            return Err(QueryError::Empty);
        }
        Ok(())
    }

    /// Full check of `sql`, using `conn` for DuckDB's parser. Returns the statement to
    /// run: built from exactly what was checked, never the raw text (for `EXPLAIN <query>`
    /// it is `EXPLAIN ` followed by the query DuckDB's parser checked as one unit).
    pub fn check(&self, conn: &Connection, sql: &str) -> Verdict {
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

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Verdict>> {
        crate::locks::lock(&self.cache)
    }

    fn check_uncached(&self, conn: &Connection, sql: &str) -> Verdict {
        let (offset, body) = strip_explain(sql)?;
        let catalog = self.catalog.wait()?;
        let (deterministic, tables) = check_with_duckdb(conn, body, offset, catalog)?;
        let run: Arc<str> = if offset == 0 {
            sql.into()
        } else {
            format!("EXPLAIN {body}").into()
        };
        check_with_sqlparser(&run, catalog)?;
        Ok(Checked {
            sql: run,
            deterministic,
            tables,
        })
    }
}

/// A table a statement reads, as written: `[catalog.][schema.]table`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TableRef {
    pub(crate) catalog: String,
    pub(crate) schema: String,
    pub(crate) table: String,
}

/// The tables a parse tree reads, without the names its CTEs define.
fn tables_of(statements: &Value) -> Arc<[TableRef]> {
    let mut tables = Vec::new();
    let mut ctes = HashSet::new();
    collect_tables(statements, &mut tables, &mut ctes);
    tables.retain(|t: &TableRef| {
        !(t.schema.is_empty()
            && t.catalog.is_empty()
            && ctes.contains(&t.table.to_ascii_lowercase()))
    });
    tables.sort();
    tables.dedup();
    tables.into()
}

/// Every `BASE_TABLE` of the tree, and every CTE name (a CTE may shadow a table only
/// where it is in scope; the names are few and distinct in practice, so one set serves).
fn collect_tables(node: &Value, tables: &mut Vec<TableRef>, ctes: &mut HashSet<String>) {
    match node {
        Value::Object(map) => {
            if let Some(entries) = map
                .get("cte_map")
                .and_then(|c| c.get("map"))
                .and_then(Value::as_array)
            {
                for entry in entries {
                    if let Some(key) = entry["key"].as_str() {
                        ctes.insert(key.to_ascii_lowercase());
                    }
                }
            }
            if map.get("type").and_then(Value::as_str) == Some("BASE_TABLE") {
                let part = |k: &str| map.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                tables.push(TableRef {
                    catalog: part("catalog_name"),
                    schema: part("schema_name"),
                    table: part("table_name"),
                });
            }
            for v in map.values() {
                collect_tables(v, tables, ctes);
            }
        }
        Value::Array(items) => {
            for v in items {
                collect_tables(v, tables, ctes);
            }
        }
        _ => {}
    }
}

/// DuckDB's (PostgreSQL's) whitespace: ASCII only. `\u{2028}` and other Unicode spaces
/// are not whitespace to DuckDB, so they must not be to the gate either.
fn is_sql_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Skips leading whitespace and comments exactly as DuckDB's scanner does: `--` runs to
/// the next `\n` *or* `\r`, and `/* ... */` comments nest. An unterminated block comment
/// swallows the rest (DuckDB then refuses the text).
fn skip_trivia(s: &str) -> &str {
    let bytes = s.as_bytes();
    let mut i = 0;
    loop {
        while i < bytes.len() && is_sql_space(bytes[i]) {
            i += 1;
        }
        if bytes[i..].starts_with(b"--") {
            i += 2;
            while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                i += 1;
            }
        } else if bytes[i..].starts_with(b"/*") {
            i += 2;
            let mut depth = 1usize;
            while i < bytes.len() && depth > 0 {
                if bytes[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if bytes[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                } else {
                    i += 1;
                }
            }
        } else {
            // `i` only ever stops on an ASCII byte or the end, so it is a char boundary.
            return &s[i..];
        }
    }
}

/// For `EXPLAIN <query>`, returns the query and its byte offset; otherwise the whole text.
fn strip_explain(sql: &str) -> Result<(usize, &str), QueryError> {
    let start = skip_trivia(sql);
    let bytes = start.as_bytes();
    // Bytes, not chars: `start[..7]` could split a multi-byte character.
    let is_explain = bytes.len() >= 7
        && bytes[..7].eq_ignore_ascii_case(b"explain")
        && bytes
            .get(7)
            .is_none_or(|&b| is_sql_space(b) || matches!(b, b'/' | b'-' | b'('));
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

/// Asks DuckDB's parser what `sql` is and walks its tree. Returns whether the statement
/// is deterministic, and the tables it reads.
fn check_with_duckdb(
    conn: &Connection,
    sql: &str,
    offset: usize,
    catalog: &FunctionCatalog,
) -> Result<(bool, Arc<[TableRef]>), QueryError> {
    // Prepared once per connection: a model project checks hundreds of statements.
    let json: String = conn
        .prepare_cached("SELECT json_serialize_sql(?::VARCHAR)")
        .and_then(|mut stmt| stmt.query_row([sql], |r| r.get(0)))
        .map_err(|e| QueryError::Failed(format!("the SQL check itself failed: {e}")))?;
    let tree: Value = serde_json::from_str(&json).map_err(|e| {
        if e.to_string().contains("recursion limit") {
            QueryError::InvalidSql {
                message: "the query is nested too deeply to check (more than about 60 levels \
                          of parentheses, subqueries or function calls); flatten it, e.g. with \
                          a CTE"
                    .into(),
                position: None,
            }
        } else {
            QueryError::Failed(format!("the SQL check returned bad JSON: {e}"))
        }
    })?;
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
        1 => {
            let mut deterministic = true;
            walk(&tree["statements"][0], catalog, &mut deterministic)?;
            Ok((deterministic, tables_of(&tree["statements"])))
        }
        _ => Err(refuse(
            "multiple_statements",
            "send one statement at a time".into(),
        )),
    }
}

/// Walks DuckDB's serialized parse tree and checks every function and table in it;
/// clears `deterministic` on a volatile function or a sample.
fn walk(
    node: &Value,
    catalog: &FunctionCatalog,
    deterministic: &mut bool,
) -> Result<(), QueryError> {
    match node {
        Value::Object(map) => {
            if map.get("sample").is_some_and(|s| !s.is_null()) {
                *deterministic = false;
            }
            let ty = map.get("type").and_then(Value::as_str).unwrap_or("");
            let class = map.get("class").and_then(Value::as_str).unwrap_or("");
            let str_of = |k: &str| map.get(k).and_then(Value::as_str).unwrap_or("");
            match (class, ty) {
                (_, "TABLE_FUNCTION") => {
                    let function = map.get("function").unwrap_or(&Value::Null);
                    let name = function["function_name"].as_str().unwrap_or("");
                    catalog.check_table_function(name)?;
                    // Check the arguments, but not the function itself as a scalar.
                    walk(&function["children"], catalog, deterministic)?;
                    for (k, v) in map {
                        if k != "function" {
                            walk(v, catalog, deterministic)?;
                        }
                    }
                    return Ok(());
                }
                (_, "BASE_TABLE") => catalog.check_table(
                    str_of("catalog_name"),
                    str_of("schema_name"),
                    str_of("table_name"),
                )?,
                (_, "SHOW_REF") => catalog.check_table("", "", str_of("table_name"))?,
                ("FUNCTION" | "WINDOW" | "AGGREGATE", _) => {
                    let name = str_of("function_name");
                    catalog.check_scalar(name)?;
                    check_constant_size(name, node)?;
                    if catalog.volatile.contains(&name.to_ascii_lowercase()) {
                        *deterministic = false;
                    }
                }
                // `current_date`, `now` without parentheses: DuckDB's binder reads a bare
                // name that no column has as a call of the function of that name.
                ("COLUMN_REF", _) => {
                    if let Some([name]) = map
                        .get("column_names")
                        .and_then(Value::as_array)
                        .map(Vec::as_slice)
                        && name
                            .as_str()
                            .is_some_and(|n| catalog.volatile.contains(&n.to_ascii_lowercase()))
                    {
                        *deterministic = false;
                    }
                }
                _ => {}
            }
            map.values()
                .try_for_each(|v| walk(v, catalog, deterministic))
        }
        Value::Array(items) => items
            .iter()
            .try_for_each(|v| walk(v, catalog, deterministic)),
        _ => Ok(()),
    }
}

/// The volatile functions among `described` (name, stability): those DuckDB marks so, the
/// clock keywords and the built-in macros that call one.
fn volatile_names(described: &[(String, String)]) -> HashSet<String> {
    described
        .iter()
        .filter(|(_, stability)| {
            matches!(stability.as_str(), "VOLATILE" | "CONSISTENT_WITHIN_QUERY")
        })
        .map(|(name, _)| name.as_str())
        // `error()` is volatile only so that DuckDB never folds it away; what it does is
        // set by its argument.
        .filter(|name| *name != "error")
        .chain(CLOCK_KEYWORDS.iter().copied())
        .chain(VOLATILE_MACROS.iter().copied())
        .map(str::to_owned)
        .collect()
}

/// DuckDB's built-in macros whose body calls a volatile or clock function (read from
/// `duckdb_functions().macro_definition`, which costs DuckDB 40 ms to produce, too much for
/// every start; `tests/it/query.rs` checks the list against the engine).
pub const VOLATILE_MACROS: &[&str] = &[
    "ago",
    "current_catalog",
    "pg_conf_load_time",
    "pg_postmaster_start_time",
    "pg_sleep",
];

/// The SQL clock keywords (`CURRENT_TIMESTAMP`, `LOCALTIME`…): bare names DuckDB binds to
/// clock functions, some of which its catalog marks as consistent.
const CLOCK_KEYWORDS: &[&str] = &[
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "current_localtime",
    "current_localtimestamp",
    "get_current_time",
    "get_current_timestamp",
];

/// Functions whose result size is set by an argument: DuckDB builds these lists and
/// strings outside its buffer manager, so `memory_limit` does not bound them
/// (`len(range(400000000))` grew the process past 8 GB). Each maps to the argument
/// positions that set the size; the size must be a constant of at most
/// [`MAX_CONSTANT_SIZE`].
const SIZED_FUNCTIONS: &[(&str, &[usize])] = &[
    ("repeat", &[1]),
    ("list_resize", &[1]),
    ("array_resize", &[1]),
    ("lpad", &[1]),
    ("rpad", &[1]),
    ("bar", &[3]),
];

/// A function node's argument expressions (DuckDB 2.0 wraps each as
/// `{"name", "expression"}`; older trees list them under `children`).
fn arguments(node: &Value) -> Vec<&Value> {
    if let Some(args) = node.get("arguments").and_then(Value::as_array) {
        return args
            .iter()
            .map(|a| a.get("expression").unwrap_or(a))
            .collect();
    }
    node.get("children")
        .and_then(Value::as_array)
        .map(|c| c.iter().collect())
        .unwrap_or_default()
}

/// The numeric value of a constant in DuckDB's parse tree (a literal, possibly negated
/// or cast), if it is one.
fn constant_number(node: &Value) -> Option<f64> {
    match node["class"].as_str() {
        Some("CONSTANT") => {
            if let Some(literal) = node.get("literal") {
                return match literal["kind"].as_str() {
                    Some("INTEGER" | "NUMERIC") => literal["text"].as_str()?.parse().ok(),
                    Some("NULL") => Some(0.0),
                    _ => None,
                };
            }
            let value = &node["value"];
            if value["is_null"].as_bool() == Some(true) {
                return Some(0.0);
            }
            match &value["value"] {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
        }
        Some("CAST") => constant_number(&node["child"]),
        Some("FUNCTION") if node["function_name"] == "-" => match arguments(node).as_slice() {
            [only] => constant_number(only).map(|v| -v),
            _ => None,
        },
        _ => None,
    }
}

/// True if `node` is a constant of any type (a date, a timestamp, an interval ...).
fn is_constant(node: &Value) -> bool {
    match node["class"].as_str() {
        Some("CONSTANT") => true,
        Some("CAST") => is_constant(&node["child"]),
        _ => constant_number(node).is_some(),
    }
}

fn too_large(name: &str) -> QueryError {
    refuse(
        "unbounded_size",
        format!(
            "{name}() builds its whole result in memory: its size must be a constant of at \
             most {MAX_CONSTANT_SIZE} (for more rows, use the table function: FROM range(n))"
        ),
    )
}

/// Refuses the scalar (list) forms of `range`/`generate_series` and the string and list
/// builders above unless their size is a small constant.
fn check_constant_size(name: &str, node: &Value) -> Result<(), QueryError> {
    let lower = name.to_ascii_lowercase();
    let args = arguments(node);
    if lower == "range" || lower == "generate_series" {
        let numbers: Option<Vec<f64>> = args.iter().map(|a| constant_number(a)).collect();
        let count = match numbers.as_deref() {
            Some([stop]) => *stop,
            Some([start, stop]) => stop - start,
            Some([start, stop, step]) if *step != 0.0 => (stop - start) / step,
            Some([_, _, _]) => f64::INFINITY,
            // Dates and timestamps with an interval step: constants are required; their
            // length is left to the memory watchdog.
            _ if !args.is_empty() && args.iter().all(|a| is_constant(a)) => 0.0,
            _ => f64::INFINITY,
        };
        if count.is_nan() || count > MAX_CONSTANT_SIZE {
            return Err(too_large(name));
        }
        return Ok(());
    }
    if let Some((_, positions)) = SIZED_FUNCTIONS.iter().find(|(n, _)| *n == lower) {
        for &p in *positions {
            if let Some(arg) = args.get(p) {
                match constant_number(arg) {
                    Some(v) if v <= MAX_CONSTANT_SIZE => {}
                    _ => return Err(too_large(name)),
                }
            }
        }
    }
    Ok(())
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
                self.catalog.check_table(&catalog, &schema, &table)
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

    fn rule<T: std::fmt::Debug>(r: Result<T, QueryError>) -> &'static str {
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
        let c = FunctionCatalog::from_names(&[]);
        assert!(c.check_table("", "main", "orders").is_ok());
        assert!(c.check_table("", "raw_uploads", "pg_orders").is_ok());
        assert!(c.check_table("", "information_schema", "tables").is_ok());
        assert_eq!(rule(c.check_table("", "", "data/x.csv")), "file_as_table");
        assert_eq!(rule(c.check_table("", "", "duckdb_settings")), "metadata");
        assert_eq!(rule(c.check_table("system", "main", "t")), "metadata");
        assert_eq!(rule(c.check_table("", "", "pg_settings")), "metadata");
        assert_eq!(
            rule(c.check_table("", "main", "pg_prepared_statements")),
            "metadata"
        );
        assert_eq!(
            rule(c.check_table("", "pg_catalog", "pg_class")),
            "metadata"
        );
        assert_eq!(
            rule(c.check_table("", "information_schema", "character_sets")),
            "metadata"
        );
    }

    #[test]
    fn trivia_is_skipped_as_duckdb_skips_it() {
        // Block comments nest; `--` ends at \r as well as \n; Unicode spaces are not spaces.
        assert_eq!(skip_trivia("/* /* */ SELECT 1 --*/ ANALYZE x"), "ANALYZE x");
        assert_eq!(skip_trivia("--x\rANALYZE y"), "ANALYZE y");
        assert_eq!(skip_trivia(" \t\x0b\x0c\n SELECT"), "SELECT");
        assert_eq!(skip_trivia("\u{2028}SELECT"), "\u{2028}SELECT");
        assert_eq!(skip_trivia("/* unterminated /* */"), "");
        assert_eq!(
            rule(strip_explain("EXPLAIN /* /* */ SELECT 1 --*/ ANALYZE SELECT 2").map(|_| ())),
            "explain_analyze"
        );
        assert_eq!(
            rule(strip_explain("EXPLAIN --x\rANALYZE SELECT 2 /*\nSELECT 2 --*/").map(|_| ())),
            "explain_analyze"
        );
    }

    #[test]
    fn sized_functions_need_small_constants() {
        let call = |name: &str, args: &[String]| {
            let node: Value = serde_json::from_str(&format!(
                r#"{{"class":"FUNCTION","function_name":"{name}","arguments":[{}]}}"#,
                args.iter()
                    .map(|a| format!(r#"{{"name":"","expression":{a}}}"#))
                    .collect::<Vec<_>>()
                    .join(",")
            ))
            .unwrap();
            check_constant_size(name, &node)
        };
        let num = |v: &str| {
            format!(
                r#"{{"class":"CONSTANT","type":"VALUE_CONSTANT","literal":{{"kind":"NUMERIC","text":"{v}"}}}}"#
            )
        };
        let column = r#"{"class":"COLUMN_REF","type":"COLUMN_REF"}"#.to_owned();
        call("range", &[num("1000")]).unwrap();
        assert_eq!(rule(call("range", &[num("400000000")])), "unbounded_size");
        assert_eq!(rule(call("range", &[num("1e8")])), "unbounded_size");
        assert_eq!(
            rule(call("range", std::slice::from_ref(&column))),
            "unbounded_size"
        );
        call("range", &[num("0"), num("100"), num("10")]).unwrap();
        call("repeat", &[column.clone(), num("3")]).unwrap();
        assert_eq!(
            rule(call("repeat", &[column.clone(), num("1e9")])),
            "unbounded_size"
        );
        assert_eq!(
            rule(call("lpad", &[column.clone(), column.clone()])),
            "unbounded_size"
        );
        call("lower", &[column]).unwrap();
    }
}
