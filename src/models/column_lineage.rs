//! Column-level lineage: for every model, the upstream columns each of its output columns
//! comes from.
//!
//! polyglot-sql reads the compiled SQL (ephemeral models already inlined as CTEs) against
//! the columns of the model's parents and resolves stars with `EXCLUDE` and `REPLACE`,
//! CTEs, joins, subqueries and set operations; DuckDB's `COLUMNS(...)` is expanded first
//! (`columns_expr`). A model's parents are the models, seeds and sources it reads; their
//! columns are what lineage derived for them (models, in dependency order) or what the
//! warehouse holds (sources, staging views, seeds; a seed not loaded yet by its CSV
//! header). What lineage derives is a claim: [`check`] holds it against DuckDB's
//! `DESCRIBE` of the same SQL, and a difference is reported as such, never shown as right.
//!
//! Analysing a model costs about a millisecond, so results are kept by the model's SQL
//! and its parents' columns: an edit re-derives only what changed.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use duckdb::Connection;
use polyglot_sql::{AnalyzeQueryOptions, DialectType, SchemaColumn, SchemaTable, ValidationSchema};

use polyglot_sql::scope::SourceKind;

use super::compile::{Node, NodeKind};
use super::jinja::Relation;
use super::node_config::Materialization;

/// Where an output column's values come from: a column of another node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub(crate) struct Upstream {
    pub(crate) node: usize,
    pub(crate) column: String,
}

/// One output column, as lineage derived it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Derived {
    /// Empty when the SQL gives the column no name lineage can know (DuckDB names it).
    pub(crate) name: String,
    /// Empty for a constant or `count(*)`.
    pub(crate) from: Vec<Upstream>,
}

/// The stack of the thread that derives lineage: polyglot's optimizer recurses over the
/// parse tree (the parser caps its depth), and deeply nested SQL is the model author's
/// to write. Only the pages touched are ever used.
pub(crate) const STACK_BYTES: usize = 64 << 20;

/// A node's output columns in order, or why they are not known.
pub(crate) type Columns = Result<Arc<[Derived]>, String>;

/// Column names the warehouse holds, by relation key (`schema.table` in lower case).
pub(crate) type Known = HashMap<String, Vec<String>>;

/// Kept between compiles: derived columns by (SQL, parents' columns) hash, and the
/// relations each SQL text names (relation keys, by the SQL's hash).
#[derive(Debug, Default)]
pub(crate) struct Cache {
    columns: Mutex<HashMap<u64, Columns>>,
    tables: Mutex<HashMap<u64, Arc<[String]>>>,
}

const CACHE_ENTRIES: usize = 20_000;

fn put<V>(map: &Mutex<HashMap<u64, V>>, key: u64, value: V) {
    let mut map = crate::locks::lock(map);
    if map.len() >= CACHE_ENTRIES {
        map.clear();
    }
    map.insert(key, value);
}

fn hash_of(sql: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sql.hash(&mut h);
    h.finish()
}

/// A model as lineage reads it: its rendered SQL (ephemeral models referenced by their CTE
/// names) and the parents its refs name.
pub(crate) struct Model<'a> {
    pub(crate) sql: &'a str,
    pub(crate) parents: &'a BTreeSet<usize>,
}

/// Every node's columns, by node index: derived for the `models` (by node index), as
/// known for the rest. A model's parents are its refs and the tables its SQL names.
pub(crate) fn derive(
    nodes: &[Node],
    models: &HashMap<usize, Model<'_>>,
    known: &Known,
    seed_headers: &HashMap<usize, Vec<String>>,
    cache: &Cache,
) -> Vec<Columns> {
    let by_relation: HashMap<String, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (read_as(n).key(), i))
        .collect();
    let mut d = Deriver {
        nodes,
        models,
        known,
        seed_headers,
        cache,
        by_relation,
        done: vec![None; nodes.len()],
    };
    (0..nodes.len()).map(|i| d.columns(i)).collect()
}

struct Deriver<'a> {
    nodes: &'a [Node],
    models: &'a HashMap<usize, Model<'a>>,
    known: &'a Known,
    seed_headers: &'a HashMap<usize, Vec<String>>,
    cache: &'a Cache,
    by_relation: HashMap<String, usize>,
    /// `Some(Err)` while a node is being derived, so a cycle ends instead of recursing.
    done: Vec<Option<Columns>>,
}

impl Deriver<'_> {
    fn columns(&mut self, i: usize) -> Columns {
        if let Some(c) = &self.done[i] {
            return c.clone();
        }
        self.done[i] = Some(Err("the models form a cycle".into()));
        let out = match self.nodes[i].kind {
            NodeKind::Model => self.model(i),
            _ => self.stored(i),
        };
        self.done[i] = Some(out.clone());
        out
    }

    /// What the warehouse holds for a source, staging view or seed.
    fn stored(&self, i: usize) -> Columns {
        let node = &self.nodes[i];
        let names = self
            .known
            .get(&node.relation.key())
            .or_else(|| self.seed_headers.get(&i))
            .ok_or_else(|| format!("{} is not in the warehouse yet", node.relation))?;
        Ok(names
            .iter()
            .map(|n| Derived {
                name: n.clone(),
                from: Vec::new(),
            })
            .collect())
    }

    fn model(&mut self, i: usize) -> Columns {
        let node = &self.nodes[i];
        let Some(model) = self.models.get(&i) else {
            return Err(format!("{} did not compile", node.name));
        };
        // The parents' columns: derived when they are models, or else stored; a parent
        // whose columns are unknown leaves its references unresolved (and the check
        // against DuckDB tells).
        let mut named: BTreeSet<usize> = model.parents.clone();
        let sql_hash = hash_of(model.sql);
        let tables = crate::locks::lock(&self.cache.tables)
            .get(&sql_hash)
            .cloned();
        let tables = tables.unwrap_or_else(|| {
            let t = tables_named(model.sql);
            put(&self.cache.tables, sql_hash, t.clone());
            t
        });
        named.extend(
            tables
                .iter()
                .filter_map(|t| self.by_relation.get(t).copied()),
        );
        named.remove(&i);
        let mut parents: Vec<(usize, Vec<String>)> = Vec::new();
        for p in named {
            let columns = match self.columns(p) {
                Ok(c) if c.iter().all(|c| !c.name.is_empty()) => {
                    c.iter().map(|c| c.name.clone()).collect()
                }
                _ => match self.known.get(&self.nodes[p].relation.key()) {
                    Some(names) => names.clone(),
                    None => continue,
                },
            };
            parents.push((p, columns));
        }
        let key = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            sql_hash.hash(&mut h);
            for (p, columns) in &parents {
                read_as(&self.nodes[*p]).key().hash(&mut h);
                columns.hash(&mut h);
            }
            h.finish()
        };
        if let Some(hit) = crate::locks::lock(&self.cache.columns).get(&key).cloned() {
            return hit;
        }
        let out = analyse(model.sql, &parents, self.nodes, &self.by_relation);
        put(&self.cache.columns, key, out.clone());
        out
    }
}

/// The relation a model's SQL reads a node as: an ephemeral model is its CTE, referred to
/// without a schema (which resolves as `main`).
fn read_as(node: &Node) -> Relation {
    if node.materialization == Materialization::Ephemeral {
        Relation::new("main", &super::jinja::cte_name(&node.name))
    } else {
        node.relation.clone()
    }
}

/// The relations `sql` names (keys: `schema.table` in lower case, `main` when it gives
/// none), as polyglot parses it: a plain `schema.table` with no `ref()` is a parent too.
/// CTE names are among them; they match no node.
fn tables_named(sql: &str) -> Arc<[String]> {
    let Ok(parsed) = polyglot_sql::parse_one(sql, DialectType::DuckDB) else {
        return Arc::new([]);
    };
    polyglot_sql::traversal::get_all_tables(&parsed)
        .iter()
        .filter_map(|t| match t {
            polyglot_sql::Expression::Table(t) => {
                let schema = t.schema.as_ref().map_or("main", |s| s.name.as_str());
                Some(format!(
                    "{}.{}",
                    schema.to_ascii_lowercase(),
                    t.name.name.to_ascii_lowercase()
                ))
            }
            _ => None,
        })
        .collect()
}

fn analyse(
    sql: &str,
    parents: &[(usize, Vec<String>)],
    nodes: &[Node],
    by_relation: &HashMap<String, usize>,
) -> Columns {
    let schema = ValidationSchema {
        tables: parents
            .iter()
            .map(|(p, columns)| SchemaTable {
                name: read_as(&nodes[*p]).name,
                schema: Some(read_as(&nodes[*p]).schema),
                columns: columns
                    .iter()
                    .map(|c| SchemaColumn {
                        name: c.clone(),
                        data_type: String::new(),
                        nullable: None,
                        primary_key: false,
                        unique: false,
                        references: None,
                    })
                    .collect(),
                aliases: Vec::new(),
                primary_key: Vec::new(),
                unique_keys: Vec::new(),
                foreign_keys: Vec::new(),
            })
            .collect(),
        strict: None,
    };
    let expanded;
    let sql = if super::columns_expr::may_use(sql) {
        let mapping = polyglot_sql::mapping_schema_from_validation_schema_with_dialect(
            &schema,
            DialectType::DuckDB,
        );
        expanded = super::columns_expr::expand(sql, &mapping)?;
        expanded.as_str()
    } else {
        sql
    };
    let analysis = polyglot_sql::analyze_query(
        sql,
        AnalyzeQueryOptions {
            complexity_guard: None,
            dialect: DialectType::DuckDB,
            schema: Some(schema),
        },
    )
    .map_err(|e| format!("column lineage cannot read the SQL: {e}"))?;
    let parent_columns: HashMap<usize, &Vec<String>> =
        parents.iter().map(|(p, c)| (*p, c)).collect();
    let mut out = Vec::with_capacity(analysis.projections.len());
    for projection in &analysis.projections {
        if projection.is_star {
            let over = projection
                .star_table
                .as_deref()
                .unwrap_or("the FROM clause");
            return Err(format!(
                "cannot expand * over {over}: its columns are not known"
            ));
        }
        let mut from: Vec<Upstream> = projection
            .upstream
            .iter()
            .filter(|u| u.source_kind == SourceKind::Table)
            .filter_map(|u| {
                let node = *by_relation.get(&relation_key(u.source_name.as_deref()?))?;
                // DuckDB matches names case-insensitively: report the parent's spelling.
                let column = parent_columns
                    .get(&node)
                    .and_then(|cols| cols.iter().find(|c| c.eq_ignore_ascii_case(&u.column)))
                    .cloned()
                    .unwrap_or_else(|| u.column.clone());
                Some(Upstream { node, column })
            })
            .collect();
        from.sort();
        from.dedup();
        let name = projection
            .name
            .clone()
            .filter(|n| !is_generated_name(n))
            .unwrap_or_default();
        out.push(Derived { name, from });
    }
    Ok(out.into())
}

/// `schema.table` in lower case from a name lineage gives (`db.schema.table`, quoted or
/// not, or a bare table in `main`).
fn relation_key(name: &str) -> String {
    let parts: Vec<String> = name
        .split('.')
        .map(|p| p.trim_matches('"').to_ascii_lowercase())
        .collect();
    match parts.as_slice() {
        [table] => format!("main.{table}"),
        [.., schema, table] => format!("{schema}.{table}"),
        [] => String::new(),
    }
}

/// polyglot's name for a column it cannot name (`_col_0`).
fn is_generated_name(name: &str) -> bool {
    name.strip_prefix("_col_")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// What DuckDB says of the derived columns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum Check {
    /// DuckDB's columns are the derived ones, name for name, in order.
    Verified,
    /// They differ: the derived lineage is not to be trusted.
    Mismatch {
        message: String,
        duckdb: Vec<String>,
        derived: Vec<String>,
    },
    /// Nothing to compare: lineage could not be derived, or DuckDB cannot describe the
    /// SQL yet (a parent not built).
    Unverified { message: String },
}

/// Holds `derived` against DuckDB's `DESCRIBE` of `sql` (which binds the SQL, so the
/// parents must exist; nothing is run). `sql` is a model's compiled, gate-checked SQL.
/// Also returns DuckDB's (name, type) of each column when it could describe the SQL.
pub(crate) fn check(
    conn: &Connection,
    sql: &str,
    derived: &Columns,
) -> (Check, Vec<(String, String)>) {
    let duckdb = match describe(conn, sql) {
        Ok(columns) => columns,
        Err(e) => {
            let message = match derived {
                Err(d) => d.clone(),
                Ok(_) => format!("DuckDB cannot describe the SQL yet: {e}"),
            };
            return (Check::Unverified { message }, Vec::new());
        }
    };
    let check = match derived {
        Ok(d) => {
            let names: Vec<String> = duckdb.iter().map(|(n, _)| n.clone()).collect();
            compare(&names, d)
        }
        Err(e) => Check::Unverified { message: e.clone() },
    };
    (check, duckdb)
}

fn describe(conn: &Connection, sql: &str) -> duckdb::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare(&format!("DESCRIBE {sql}"))?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

fn compare(duckdb: &[String], derived: &[Derived]) -> Check {
    let names = || derived.iter().map(|d| d.name.clone()).collect::<Vec<_>>();
    if duckdb.len() != derived.len() {
        return Check::Mismatch {
            message: format!(
                "DuckDB gives {} columns, lineage derived {}",
                duckdb.len(),
                derived.len()
            ),
            duckdb: duckdb.to_vec(),
            derived: names(),
        };
    }
    let differing: Vec<String> = duckdb
        .iter()
        .zip(derived)
        .filter(|(d, l)| !l.name.is_empty() && !d.eq_ignore_ascii_case(&l.name))
        .map(|(d, l)| format!("{} (DuckDB) / {} (lineage)", d, l.name))
        .collect();
    if differing.is_empty() {
        Check::Verified
    } else {
        Check::Mismatch {
            message: format!("the column names differ: {}", differing.join(", ")),
            duckdb: duckdb.to_vec(),
            derived: names(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::compile::test_node;

    /// orders(id, customer_id, amount, status) and customers(id, name) as sources, and
    /// the model `m` over them with `sql`.
    fn project(sql: &str) -> (Vec<Node>, Known) {
        let mut orders = test_node("orders", &[]);
        orders.kind = NodeKind::Source;
        orders.relation = Relation::new("raw_shop", "orders");
        let mut customers = test_node("customers", &[]);
        customers.kind = NodeKind::Source;
        customers.relation = Relation::new("raw_shop", "customers");
        let mut m = test_node("m", &[0, 1]);
        m.sql = sql.to_owned();
        let known = Known::from([
            (
                "raw_shop.orders".to_owned(),
                vec![
                    "id".into(),
                    "customer_id".into(),
                    "amount".into(),
                    "status".into(),
                ],
            ),
            (
                "raw_shop.customers".to_owned(),
                vec!["id".into(), "Name".into()],
            ),
        ]);
        (vec![orders, customers, m], known)
    }

    /// Every model of `nodes` by its own SQL and parents.
    fn derive_all(nodes: &[Node], known: &Known) -> Vec<Columns> {
        let parents: Vec<BTreeSet<usize>> = nodes
            .iter()
            .map(|n| n.parents.iter().copied().collect())
            .collect();
        let models = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.kind == NodeKind::Model)
            .map(|(i, n)| {
                let model = Model {
                    sql: &n.sql,
                    parents: &parents[i],
                };
                (i, model)
            })
            .collect();
        derive(nodes, &models, known, &HashMap::new(), &Cache::default())
    }

    /// `name <- node.column, …` for each output column of `m`.
    fn lineage(sql: &str) -> Vec<String> {
        let (nodes, known) = project(sql);
        let columns = derive_all(&nodes, &known);
        let names = ["orders", "customers", "m"];
        columns[2]
            .as_ref()
            .unwrap()
            .iter()
            .map(|d| {
                let from: Vec<String> = d
                    .from
                    .iter()
                    .map(|u| format!("{}.{}", names[u.node], u.column))
                    .collect();
                format!("{} <- {}", d.name, from.join(", "))
            })
            .collect()
    }

    #[test]
    fn stars_exclude_replace_and_columns_name_their_upstream_columns() {
        assert_eq!(
            lineage(
                "select * exclude (status) replace (amount * 2 as amount) from raw_shop.orders"
            ),
            [
                "id <- orders.id",
                "customer_id <- orders.customer_id",
                "amount <- orders.amount"
            ]
        );
        assert_eq!(
            lineage(
                "select columns('id'), max(columns('^amount$')) from raw_shop.orders group by all"
            ),
            [
                "id <- orders.id",
                "customer_id <- orders.customer_id",
                "amount <- orders.amount"
            ]
        );
    }

    #[test]
    fn ctes_and_joins_lead_back_to_the_source_columns() {
        assert_eq!(
            lineage(
                "with o as (select * from raw_shop.orders), c as (select id, name from raw_shop.customers) \
                 select o.id as order_id, c.name, sum(o.amount) filter (where o.status = 'paid') as paid, count(*) as n \
                 from o join c on c.id = o.customer_id group by all"
            ),
            [
                "order_id <- orders.id",
                "name <- customers.Name",
                "paid <- orders.amount, orders.status",
                "n <- "
            ]
        );
    }

    #[test]
    fn a_model_reads_what_its_parent_model_derived() {
        let (mut nodes, known) = project("select id, amount * 2 as double from raw_shop.orders");
        let mut top = test_node("top", &[2]);
        top.sql = "select * from main.m".into();
        nodes[2].relation = Relation::new("main", "m");
        nodes.push(top);
        let columns = derive_all(&nodes, &known);
        let top = columns[3].as_ref().unwrap();
        assert_eq!(top.len(), 2);
        assert_eq!(top[1].name, "double");
        assert_eq!(
            top[1].from,
            [Upstream {
                node: 2,
                column: "double".into()
            }]
        );
    }

    #[test]
    fn an_ephemeral_parent_is_named_as_the_model_it_is() {
        let (mut nodes, known) = project("select id, amount from raw_shop.orders");
        nodes[2].materialization = Materialization::Ephemeral;
        let mut top = test_node("top", &[2]);
        top.sql = "select e.amount as paid from __dbt__cte__m e".into();
        nodes.push(top);
        let columns = derive_all(&nodes, &known);
        let top = columns[3].as_ref().unwrap();
        assert_eq!(top[0].name, "paid");
        assert_eq!(
            top[0].from,
            [Upstream {
                node: 2,
                column: "amount".into()
            }]
        );
    }

    #[test]
    fn a_star_over_unknown_columns_is_not_guessed() {
        let (mut nodes, _) = project("select * from raw_shop.orders");
        nodes[2].sql = "select * from raw_shop.orders".into();
        let columns = derive_all(&nodes, &Known::new());
        assert!(columns[2].as_ref().unwrap_err().contains("cannot expand *"));
    }

    #[test]
    fn deeply_nested_sql_ends_in_an_answer_not_a_crash() {
        let deep = format!(
            "select {}id{} as x from raw_shop.orders",
            "(".repeat(400),
            ")".repeat(400)
        );
        let out = std::thread::Builder::new()
            .stack_size(STACK_BYTES)
            .spawn(move || lineage_or_error(&deep))
            .unwrap()
            .join()
            .unwrap();
        assert!(out.is_ok() || out.unwrap_err().contains("lineage"));
    }

    fn lineage_or_error(sql: &str) -> Result<usize, String> {
        let (nodes, known) = project(sql);
        Ok(derive_all(&nodes, &known)[2].clone()?.len())
    }

    #[test]
    fn duckdb_agreeing_verifies_and_disagreeing_is_a_mismatch() {
        let conn = crate::db::warehouse::test_warehouse();
        conn.execute_batch(
            "CREATE SCHEMA raw_shop; CREATE TABLE raw_shop.orders(id INT, customer_id INT, amount INT, status TEXT);",
        )
        .unwrap();
        let (nodes, known) = project("select id, amount + 1 as a from raw_shop.orders");
        let derived = derive_all(&nodes, &known);
        let (verdict, duckdb) = check(&conn, &nodes[2].sql, &derived[2]);
        assert_eq!(verdict, Check::Verified);
        assert_eq!(duckdb[1], ("a".to_owned(), "INTEGER".to_owned()));
        let wrong: Columns = Ok(vec![Derived {
            name: "id".into(),
            from: Vec::new(),
        }]
        .into());
        assert!(matches!(
            check(&conn, &nodes[2].sql, &wrong).0,
            Check::Mismatch { .. }
        ));
        let (missing, _) = check(&conn, "select * from main.nowhere", &derived[2]);
        assert!(matches!(missing, Check::Unverified { .. }), "{missing:?}");
    }
}
