//! DuckDB's `COLUMNS(...)` expression, expanded the way DuckDB's binder does before the
//! lineage library reads the SQL (it leaves `COLUMNS` unresolved).
//!
//! A select-list item that calls `COLUMNS('regex')` or `COLUMNS(*)` once becomes one item
//! per matching column of the item's `FROM` scope, named after that column: `COLUMNS('re')`
//! itself becomes the column, `max(COLUMNS('re'))` becomes `max(col) AS col`. The regex is
//! matched anywhere in the name and case-sensitively (RE2's partial match, as DuckDB does).
//! The scope's columns come from polyglot's own star expansion: the item is replaced by a
//! `*` between two marker columns, the query is qualified against the schema, and what
//! lands between the markers is the scope's column list. Other forms (a lambda, a list,
//! an aliased item) are left as they are; the DuckDB check then flags what stays unknown.

use std::cell::RefCell;

use polyglot_sql::expressions::{Alias, Identifier, Literal, Star};
use polyglot_sql::optimizer::qualify_columns::{QualifyColumnsOptions, qualify_columns};
use polyglot_sql::optimizer::{QualifyTablesOptions, qualify_tables};
use polyglot_sql::traversal::{ExpressionWalk, transform_map};
use polyglot_sql::{DialectType, Expression, MappingSchema};

const BEGIN: &str = "__kura_columns_begin_";
const END: &str = "__kura_columns_end_";

/// Whether `sql` may use `COLUMNS(...)` (a cheap test before parsing).
pub(crate) fn may_use(sql: &str) -> bool {
    sql.as_bytes()
        .windows(8)
        .any(|w| w.eq_ignore_ascii_case(b"columns("))
}

/// `sql` with its `COLUMNS(...)` items expanded against `schema`, as DuckDB SQL.
pub(crate) fn expand(sql: &str, schema: &MappingSchema) -> Result<String, String> {
    let dialect = DialectType::DuckDB;
    let parsed = polyglot_sql::parse_one(sql, dialect).map_err(|e| e.to_string())?;
    let calls: RefCell<Vec<(Expression, Option<regex::Regex>)>> = RefCell::new(Vec::new());
    let bad_regex: RefCell<Option<String>> = RefCell::new(None);
    let marked = transform_map(parsed, &|e| {
        let Expression::Select(mut select) = e else {
            return Ok(e);
        };
        let mut items = Vec::with_capacity(select.expressions.len());
        for item in std::mem::take(&mut select.expressions) {
            let Some(pattern) = columns_call(&item) else {
                items.push(item);
                continue;
            };
            let pattern = match pattern.map(|p| regex::Regex::new(&p)).transpose() {
                Ok(p) => p,
                Err(e) => {
                    *bad_regex.borrow_mut() = Some(e.to_string());
                    items.push(item);
                    continue;
                }
            };
            let mut calls = calls.borrow_mut();
            let n = calls.len();
            calls.push((item, pattern));
            items.push(marker(&format!("{BEGIN}{n}")));
            items.push(Expression::Star(Star {
                table: None,
                except: None,
                replace: None,
                rename: None,
                trailing_comments: Vec::new(),
                span: None,
            }));
            items.push(marker(&format!("{END}{n}")));
        }
        select.expressions = items;
        Ok(Expression::Select(select))
    })
    .map_err(|e| e.to_string())?;
    if let Some(e) = bad_regex.into_inner() {
        return Err(format!(
            "COLUMNS(...) has an invalid regular expression: {e}"
        ));
    }
    let calls = calls.into_inner();
    if calls.is_empty() {
        return Ok(sql.to_owned());
    }
    let tables = QualifyTablesOptions::new()
        .with_dialect(dialect)
        .with_alias_unaliased_tables(false)
        .with_alias_unaliased_subqueries(true);
    let columns = QualifyColumnsOptions::new()
        .with_allow_partial(true)
        .with_dialect(dialect);
    let qualified = qualify_columns(qualify_tables(marked, &tables), schema, &columns)
        .map_err(|e| e.to_string())?;
    let expanded = transform_map(qualified, &|e| {
        let Expression::Select(mut select) = e else {
            return Ok(e);
        };
        let mut items = Vec::with_capacity(select.expressions.len());
        let mut inside: Option<usize> = None;
        for item in std::mem::take(&mut select.expressions) {
            let alias = match &item {
                Expression::Alias(a) => Some(a.alias.name.as_str()),
                _ => None,
            };
            if let Some(n) = alias.and_then(|a| a.strip_prefix(BEGIN)) {
                inside = n.parse().ok();
                continue;
            }
            if alias.is_some_and(|a| a.starts_with(END)) {
                inside = None;
                continue;
            }
            let Some((template, pattern)) = inside.and_then(|n| calls.get(n)) else {
                items.push(item);
                continue;
            };
            let (name, column) = match item {
                Expression::Column(ref c) => (c.name.name.clone(), item.clone()),
                Expression::Alias(a) => (a.alias.name.clone(), a.this),
                _ => continue,
            };
            if pattern.as_ref().is_some_and(|p| !p.is_match(&name)) {
                continue;
            }
            let filled = transform_map(template.clone(), &|x| match &x {
                Expression::Function(f) if f.name.eq_ignore_ascii_case("columns") => {
                    Ok(column.clone())
                }
                _ => Ok(x),
            })?;
            items.push(if matches!(filled, Expression::Column(_)) {
                filled
            } else {
                Expression::Alias(Box::new(Alias::new(filled, quoted(&name))))
            });
        }
        select.expressions = items;
        Ok(Expression::Select(select))
    })
    .map_err(|e| e.to_string())?;
    polyglot_sql::generate(&expanded, dialect).map_err(|e| e.to_string())
}

/// The pattern of the one `COLUMNS(...)` call in `item` (`None` for `COLUMNS(*)`), when
/// the item has exactly one call of a form expanded here and no alias of its own.
fn columns_call(item: &Expression) -> Option<Option<String>> {
    let call = |e: &Expression| -> Option<Option<Option<String>>> {
        let Expression::Function(f) = e else {
            return None;
        };
        if !f.name.eq_ignore_ascii_case("columns") {
            return None;
        }
        Some(match f.args.as_slice() {
            [Expression::Literal(l)] => match l.as_ref() {
                Literal::String(s) => Some(Some(s.clone())),
                _ => None,
            },
            [Expression::Star(s)]
                if s.table.is_none() && s.except.is_none() && s.replace.is_none() =>
            {
                Some(None)
            }
            _ => None,
        })
    };
    if matches!(item, Expression::Alias(_)) {
        return None;
    }
    let found: Vec<Option<Option<String>>> = item.dfs().filter_map(call).collect();
    match found.as_slice() {
        [one] => one.clone(),
        _ => None,
    }
}

fn marker(name: &str) -> Expression {
    Expression::Alias(Box::new(Alias::new(
        Expression::Literal(Box::new(Literal::Number("1".into()))),
        Identifier::new(name),
    )))
}

fn quoted(name: &str) -> Identifier {
    Identifier {
        name: name.to_owned(),
        quoted: true,
        trailing_comments: Vec::new(),
        span: None,
    }
}

#[cfg(test)]
mod tests {
    use polyglot_sql::Schema;
    use polyglot_sql::expressions::DataType;

    use super::*;

    fn schema() -> MappingSchema {
        let mut s = MappingSchema::with_dialect(DialectType::DuckDB);
        let cols: Vec<(String, DataType)> = ["id", "customer_id", "amount", "status"]
            .iter()
            .map(|c| (c.to_string(), DataType::Unknown))
            .collect();
        s.add_table("main.orders", &cols, None).unwrap();
        s
    }

    #[test]
    fn a_regex_matches_anywhere_in_the_name_as_duckdb_does() {
        let sql = expand("select columns('id') from main.orders", &schema()).unwrap();
        assert_eq!(sql, "SELECT orders.id, orders.customer_id FROM main.orders");
    }

    #[test]
    fn a_wrapped_call_gives_one_item_per_column_named_after_it() {
        let sql = expand(
            "with o as (select * from main.orders) select max(columns('^(id|amount)$')) from o",
            &schema(),
        )
        .unwrap();
        assert!(
            sql.ends_with(r#"SELECT MAX(o.id) AS "id", MAX(o.amount) AS "amount" FROM o"#),
            "{sql}"
        );
    }

    #[test]
    fn sql_without_a_call_is_returned_as_it_is_and_a_bad_regex_is_an_error() {
        let plain = "select id from main.orders";
        assert!(!may_use(plain));
        assert_eq!(expand(plain, &schema()).unwrap(), plain);
        let err = expand("select columns('(') from main.orders", &schema()).unwrap_err();
        assert!(err.contains("invalid regular expression"), "{err}");
    }
}
