//! The DAG of a project: parents and children of every node, a topological order (a
//! cycle is named in full), up- and downstream sets (each node once, however many paths
//! lead to it), and dbt's node selection syntax.

use std::collections::{BTreeSet, VecDeque};

use petgraph::graph::{DiGraph, NodeIndex};

use super::compile::{NodeKind, Project};
use super::node_config::Materialization;

#[derive(Debug, Clone)]
pub(crate) struct Dag {
    pub(crate) parents: Vec<Vec<usize>>,
    pub(crate) children: Vec<Vec<usize>>,
    /// The topological order, or the cycle that prevents one.
    order: Result<Vec<usize>, Vec<usize>>,
}

impl Default for Dag {
    fn default() -> Self {
        Self {
            parents: Vec::new(),
            children: Vec::new(),
            order: Ok(Vec::new()),
        }
    }
}

impl Dag {
    pub(crate) fn build(p: &Project) -> Self {
        let n = p.nodes.len();
        let parents: Vec<Vec<usize>> = p.nodes.iter().map(|node| node.parents.clone()).collect();
        let mut children = vec![Vec::new(); n];
        let mut graph = DiGraph::<usize, ()>::with_capacity(n, n);
        let ids: Vec<NodeIndex> = (0..n).map(|i| graph.add_node(i)).collect();
        for (child, ps) in parents.iter().enumerate() {
            for &parent in ps {
                children[parent].push(child);
                graph.add_edge(ids[parent], ids[child], ());
            }
        }
        for c in &mut children {
            c.sort_unstable();
            c.dedup();
        }
        let order = match petgraph::algo::toposort(&graph, None) {
            Ok(order) => Ok(order.into_iter().map(|i| graph[i]).collect()),
            Err(cycle) => Err(find_cycle(&graph, cycle.node_id())),
        };
        Self {
            parents,
            children,
            order,
        }
    }

    /// Nodes, parents before children; or the cycle.
    pub(crate) fn order(&self) -> Result<&[usize], &[usize]> {
        match &self.order {
            Ok(o) => Ok(o),
            Err(c) => Err(c),
        }
    }

    /// Every node below `i` (not `i`), each once; `depth` limits the hops.
    pub(crate) fn downstream(&self, i: usize, depth: Option<usize>) -> BTreeSet<usize> {
        walk(&self.children, i, depth)
    }

    pub(crate) fn upstream(&self, i: usize, depth: Option<usize>) -> BTreeSet<usize> {
        walk(&self.parents, i, depth)
    }
}

fn walk(edges: &[Vec<usize>], start: usize, depth: Option<usize>) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([(start, 0usize)]);
    while let Some((n, d)) = queue.pop_front() {
        if depth.is_some_and(|max| d >= max) {
            continue;
        }
        for &next in edges.get(n).into_iter().flatten() {
            if next != start && seen.insert(next) {
                queue.push_back((next, d + 1));
            }
        }
    }
    seen
}

/// The cycle through `start`: a path from it back to itself, found by a breadth-first
/// search inside its strongly connected component, named from `start` round to `start`.
fn find_cycle(graph: &DiGraph<usize, ()>, start: NodeIndex) -> Vec<usize> {
    let component: BTreeSet<NodeIndex> = petgraph::algo::tarjan_scc(graph)
        .into_iter()
        .find(|c| c.contains(&start))
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut previous = std::collections::HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for next in graph.neighbors(n) {
            if !component.contains(&next) {
                continue;
            }
            if next == start {
                let mut path = vec![graph[start]];
                let mut at = n;
                while at != start {
                    path.push(graph[at]);
                    at = previous[&at];
                }
                path.push(graph[start]);
                let last = path.len() - 1;
                path[1..last].reverse();
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = previous.entry(next) {
                e.insert(n);
                queue.push_back(next);
            }
        }
    }
    // A node with an edge to itself.
    vec![graph[start], graph[start]]
}

/// Resolves dbt selectors (`--select`): space-separated terms are a union, a comma inside
/// a term an intersection. A term is `[N+|+]method:value[+|+N]` (`@` too), with methods
/// `tag:`, `path:`, `source:`, `config.materialized:`, `resource_type:` and plain names
/// (`*` matches any run of characters). Unknown names are an error, not an empty run.
pub(crate) fn select(p: &Project, selectors: &[String]) -> Result<BTreeSet<usize>, String> {
    let mut out = BTreeSet::new();
    for term in selectors.iter().flat_map(|s| s.split_whitespace()) {
        let mut inter: Option<BTreeSet<usize>> = None;
        for part in term.split(',') {
            let set = select_one(p, part)?;
            inter = Some(match inter {
                None => set,
                Some(prev) => prev.intersection(&set).copied().collect(),
            });
        }
        out.extend(inter.unwrap_or_default());
    }
    Ok(out)
}

fn select_one(p: &Project, term: &str) -> Result<BTreeSet<usize>, String> {
    let (at, term) = match term.strip_prefix('@') {
        Some(t) => (true, t),
        None => (false, term),
    };
    let (up, term) = split_prefix(term);
    let (term, down) = split_suffix(term);
    let base = match_method(p, term)?;
    let mut out = base.clone();
    for &i in &base {
        if let Some(depth) = up {
            out.extend(p.dag.upstream(i, depth));
        }
        if let Some(depth) = down {
            out.extend(p.dag.downstream(i, depth));
        }
        if at {
            for d in p.dag.downstream(i, None) {
                out.insert(d);
                out.extend(p.dag.upstream(d, None));
            }
        }
    }
    Ok(out)
}

/// `+x` → unlimited upstream, `2+x` → two hops.
fn split_prefix(term: &str) -> (Option<Option<usize>>, &str) {
    let digits = term.chars().take_while(char::is_ascii_digit).count();
    if term[digits..].starts_with('+') {
        let depth = term[..digits].parse().ok();
        (Some(depth), &term[digits + 1..])
    } else {
        (None, term)
    }
}

fn split_suffix(term: &str) -> (&str, Option<Option<usize>>) {
    let digits = term.chars().rev().take_while(char::is_ascii_digit).count();
    let head = &term[..term.len() - digits];
    match head.strip_suffix('+') {
        Some(rest) if !rest.is_empty() => (rest, Some(term[head.len()..].parse().ok())),
        _ => (term, None),
    }
}

fn glob(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == name;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = name;
    for (k, part) in parts.iter().enumerate() {
        if k == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if k == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

fn match_method(p: &Project, term: &str) -> Result<BTreeSet<usize>, String> {
    let nodes = p.nodes.iter().enumerate();
    let (method, value) = term.split_once(':').unwrap_or(("", term));
    let set: BTreeSet<usize> = match method {
        "" | "fqn" => nodes
            .filter(|(_, n)| n.kind != NodeKind::Source && glob(value, &n.name))
            .map(|(i, _)| i)
            .collect(),
        "tag" => nodes
            .filter(|(_, n)| n.tags.iter().any(|t| glob(value, t)))
            .map(|(i, _)| i)
            .collect(),
        "path" => {
            let value = value.trim_end_matches('/');
            nodes
                .filter(|(_, n)| {
                    n.path.as_deref().is_some_and(|path| {
                        path == value
                            || path.starts_with(&format!("{value}/"))
                            || path.trim_end_matches(".sql") == value
                    })
                })
                .map(|(i, _)| i)
                .collect()
        }
        "source" => {
            let (source, table) = value.split_once('.').unwrap_or((value, "*"));
            nodes
                .filter(|(_, n)| {
                    n.kind == NodeKind::Source
                        && n.source.as_deref().is_some_and(|s| glob(source, s))
                        && n.fqn.get(1).is_some_and(|t| glob(table, t))
                })
                .map(|(i, _)| i)
                .collect()
        }
        "config.materialized" => nodes
            .filter(|(_, n)| n.kind == NodeKind::Model && n.materialization.as_str() == value)
            .map(|(i, _)| i)
            .collect(),
        "resource_type" => nodes
            .filter(|(_, n)| match value {
                "model" => n.kind == NodeKind::Model,
                "seed" => n.kind == NodeKind::Seed,
                "source" => n.kind == NodeKind::Source,
                _ => false,
            })
            .map(|(i, _)| i)
            .collect(),
        other => {
            return Err(format!(
                "unknown selector method {other:?}; use a name, tag:, path:, source:, \
                 config.materialized: or resource_type:"
            ));
        }
    };
    if set.is_empty() {
        return Err(format!("the selector {term:?} matches no node"));
    }
    Ok(set)
}

/// The nodes a run of `selected` builds, in DAG order (models and seeds; ephemeral
/// models are inlined where used and never built).
pub(crate) fn buildable_in_order(p: &Project, selected: &BTreeSet<usize>) -> Vec<usize> {
    p.dag
        .order()
        .unwrap_or_default()
        .iter()
        .copied()
        .filter(|i| selected.contains(i))
        .filter(|&i| {
            let n = &p.nodes[i];
            matches!(n.kind, NodeKind::Model | NodeKind::Seed)
                && n.materialization != Materialization::Ephemeral
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::compile::Node;

    fn node(name: &str, parents: &[usize], tags: &[&str]) -> Node {
        let mut n = crate::models::compile::test_node(name, parents);
        n.tags = tags.iter().map(|t| (*t).to_owned()).collect();
        n
    }

    fn project(nodes: Vec<Node>) -> Project {
        let mut p = Project {
            by_name: nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (n.name.clone(), i))
                .collect(),
            nodes,
            ..Project::default()
        };
        p.dag = Dag::build(&p);
        p
    }

    fn names(p: &Project, set: &BTreeSet<usize>) -> Vec<String> {
        set.iter().map(|&i| p.nodes[i].name.clone()).collect()
    }

    #[test]
    fn a_diamond_has_three_downstream_nodes_and_selectors_follow_dbt() {
        // a → b → d, a → c → d, d → e
        let p = project(vec![
            node("a", &[], &["nightly"]),
            node("b", &[0], &[]),
            node("c", &[0], &["nightly"]),
            node("d", &[1, 2], &[]),
            node("e", &[3], &[]),
        ]);
        assert_eq!(p.dag.downstream(0, None).len(), 4);
        assert_eq!(names(&p, &p.dag.downstream(0, Some(2))), ["b", "c", "d"]);
        let sel = |s: &str| names(&p, &select(&p, &[s.to_owned()]).unwrap());
        assert_eq!(sel("d"), ["d"]);
        assert_eq!(sel("+d"), ["a", "b", "c", "d"]);
        assert_eq!(sel("d+"), ["d", "e"]);
        assert_eq!(sel("1+d"), ["b", "c", "d"]);
        assert_eq!(sel("b+1"), ["b", "d"]);
        assert_eq!(sel("tag:nightly"), ["a", "c"]);
        assert_eq!(sel("tag:nightly,c+"), ["c"]);
        assert_eq!(sel("b c"), ["b", "c"]);
        assert_eq!(sel("path:models/marts"), ["a", "b", "c", "d", "e"]);
        assert_eq!(sel("*d"), ["d"]);
        assert!(
            select(&p, &["nope".into()])
                .unwrap_err()
                .contains("matches no node")
        );
        let order = p.dag.order().unwrap();
        let pos = |n: usize| order.iter().position(|&x| x == n).unwrap();
        assert!(pos(0) < pos(1) && pos(1) < pos(3) && pos(2) < pos(3) && pos(3) < pos(4));
    }

    #[test]
    fn a_cycle_is_named_whole() {
        let p = project(vec![
            node("a", &[], &[]),
            node("b", &[0, 3], &[]),
            node("c", &[1], &[]),
            node("d", &[2], &[]),
        ]);
        let cycle: Vec<&str> = p
            .dag
            .order()
            .unwrap_err()
            .iter()
            .map(|&i| p.nodes[i].name.as_str())
            .collect();
        assert_eq!(cycle.len(), 4, "{cycle:?}");
        assert_eq!(cycle.first(), cycle.last());
        for n in ["b", "c", "d"] {
            assert!(cycle.contains(&n), "{cycle:?}");
        }
    }
}
