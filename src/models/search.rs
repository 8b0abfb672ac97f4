//! Catalog search (`GET /api/catalog/search`): every node of the project — Kura's
//! source tables, seeds, generated staging views and models — by name, then by
//! description, then by column, case-insensitively.
//!
//! The reference searches its dbt manifest, so only documented columns of models and
//! declared sources; here a node's columns are also the ones the warehouse has (sources,
//! seeds, views) or lineage derived (models not built yet), so a source table with no
//! model over it is found by its columns too. Within each rank an exact name comes
//! first, then a name that starts with the query, then the rest by name.

use super::compile::{Node, Project};

/// How a node matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MatchType {
    Name,
    Description,
    Column,
}

/// One hit: the node and where the query was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) node: usize,
    pub(crate) match_type: MatchType,
    pub(crate) matched_column: Option<String>,
}

/// At most this many hits (the reference's limit).
pub(crate) const MAX_HITS: usize = 50;

/// The query's length bounds, in characters (the reference's).
pub(crate) const MIN_CHARS: usize = 2;
pub(crate) const MAX_CHARS: usize = 100;

/// The hits for `query` (already trimmed, within the bounds), best first.
pub(crate) fn search(p: &Project, query: &str) -> Vec<Hit> {
    let q = query.to_lowercase();
    let mut hits: Vec<(MatchType, u8, &str, Hit)> = p
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let (match_type, matched_column) = matched(p, i, n, &q)?;
            let name = n.name.to_lowercase();
            let closeness = if name == q {
                0
            } else if name.starts_with(&q) {
                1
            } else {
                2
            };
            let hit = Hit {
                node: i,
                match_type,
                matched_column,
            };
            Some((match_type, closeness, n.name.as_str(), hit))
        })
        .collect();
    hits.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    hits.into_iter()
        .take(MAX_HITS)
        .map(|(_, _, _, hit)| hit)
        .collect()
}

/// Where `n` matches the lower-cased query: its name, its description, or a column
/// (documented, or known to the warehouse or to lineage; the first in column order).
fn matched(p: &Project, i: usize, n: &Node, q: &str) -> Option<(MatchType, Option<String>)> {
    if n.name.to_lowercase().contains(q) {
        return Some((MatchType::Name, None));
    }
    if n.description.to_lowercase().contains(q) {
        return Some((MatchType::Description, None));
    }
    let known = p.columns.get(i).and_then(|c| c.as_ref().ok());
    let names = known
        .into_iter()
        .flat_map(|c| c.iter().map(|d| d.name.as_str()))
        .chain(n.columns.iter().map(|c| c.name.as_str()));
    names
        .filter(|c| !c.is_empty())
        .find(|c| c.to_lowercase().contains(q))
        .map(|c| (MatchType::Column, Some(c.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::column_lineage::Derived;
    use crate::models::compile::{ColumnDoc, test_node};

    fn project() -> Project {
        let mut orders = test_node("orders", &[]);
        orders.description = "One row per order".into();
        let mut payments = test_node("stg_payments", &[]);
        payments.columns = vec![ColumnDoc {
            name: "order_ref".into(),
            ..ColumnDoc::default()
        }];
        let mut customers = test_node("customers", &[]);
        customers.description = "Who placed an order, and when".into();
        let order_items = test_node("order_items", &[]);
        let nodes = vec![orders, payments, customers, order_items];
        let columns = vec![
            Ok(Vec::new().into()),
            Ok(Vec::new().into()),
            Ok(vec![Derived {
                name: "first_order".into(),
                from: Vec::new(),
            }]
            .into()),
            Ok(Vec::new().into()),
        ];
        Project {
            nodes,
            columns,
            ..Project::default()
        }
    }

    #[test]
    fn names_rank_above_descriptions_above_columns_and_exact_names_first() {
        let p = project();
        let hits = search(&p, "ORDER");
        let got: Vec<(&str, MatchType, Option<&str>)> = hits
            .iter()
            .map(|h| {
                let name = p.nodes[h.node].name.as_str();
                (name, h.match_type, h.matched_column.as_deref())
            })
            .collect();
        assert_eq!(
            got,
            [
                ("order_items", MatchType::Name, None),
                ("orders", MatchType::Name, None),
                ("customers", MatchType::Description, None),
                ("stg_payments", MatchType::Column, Some("order_ref")),
            ]
        );
        let exact = search(&p, "orders");
        assert_eq!(p.nodes[exact[0].node].name, "orders");
    }

    #[test]
    fn columns_known_to_the_warehouse_or_lineage_are_searched_and_hits_are_capped() {
        let p = project();
        let hits = search(&p, "first_ord");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].matched_column.as_deref(), Some("first_order"));
        let mut many = Project::default();
        for k in 0..80 {
            many.nodes.push(test_node(&format!("t{k:02}"), &[]));
            many.columns.push(Ok(Vec::new().into()));
        }
        assert_eq!(search(&many, "t0").len(), 10);
        assert_eq!(search(&many, "t").len(), MAX_HITS);
    }
}
