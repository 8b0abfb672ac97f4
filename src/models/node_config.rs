//! A node's config (dbt's word): materialization, schema, tags, keys. It is layered as
//! dbt layers it — `dbt_project.yml` folder levels from the project down to the file, then
//! the property file, then the model's own `config()` call; each later layer overrides a
//! value, and tags add up.

use serde_yaml::Value as Yaml;

/// How a model is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Materialization {
    #[default]
    View,
    Table,
    Incremental,
    Ephemeral,
    /// Seeds: a CSV file loaded as a table.
    Seed,
}

impl Materialization {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Table => "table",
            Self::Incremental => "incremental",
            Self::Ephemeral => "ephemeral",
            Self::Seed => "seed",
        }
    }

    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "view" => Ok(Self::View),
            "table" => Ok(Self::Table),
            "incremental" => Ok(Self::Incremental),
            "ephemeral" => Ok(Self::Ephemeral),
            "seed" => Ok(Self::Seed),
            other => Err(format!(
                "materialized: {other:?} is not one of view, table, incremental, ephemeral"
            )),
        }
    }
}

/// What an incremental model does with columns its new rows have and its table lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum OnSchemaChange {
    /// dbt's default: the new columns are not added.
    #[default]
    Ignore,
    AppendNewColumns,
    Fail,
}

/// The layered config of one node. `None` means "not set at this layer".
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct NodeConfig {
    pub(crate) materialized: Option<Materialization>,
    pub(crate) schema: Option<String>,
    pub(crate) alias: Option<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) unique_key: Option<Vec<String>>,
    pub(crate) enabled: Option<bool>,
    pub(crate) on_schema_change: Option<OnSchemaChange>,
    /// `full_refresh: false` keeps an incremental model from ever being rebuilt.
    pub(crate) full_refresh: Option<bool>,
    /// Seeds: declared column types (`column_types: {id: INTEGER}`).
    pub(crate) column_types: Vec<(String, String)>,
    /// Tests: `severity: warn|error`.
    pub(crate) severity: Option<Severity>,
    /// Tests: a filter on the tested relation.
    pub(crate) where_: Option<String>,
}

/// How much a failing test counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Severity {
    #[default]
    Error,
    Warn,
}

/// Config keys dbt knows that Kura reads or safely ignores; a key outside this list and
/// without `+` in `dbt_project.yml` is a folder name.
const KNOWN: &[&str] = &[
    "materialized",
    "schema",
    "alias",
    "tags",
    "unique_key",
    "enabled",
    "on_schema_change",
    "full_refresh",
    "column_types",
    "severity",
    "where",
    "database",
    "docs",
    "persist_docs",
    "meta",
    "grants",
    "contract",
    "quote_columns",
    "delimiter",
    "incremental_strategy",
    "store_failures",
    "limit",
    "warn_if",
    "error_if",
    "group",
    "access",
    "quoting",
    "sql_header",
    "event_time",
    "pre-hook",
    "post-hook",
    "pre_hook",
    "post_hook",
];

/// Keys refused with a reason: they would run statements the query gate never sees.
const REFUSED: &[(&str, &str)] = &[
    (
        "pre-hook",
        "hooks run arbitrary statements on the warehouse; Kura builds models only from their SELECT",
    ),
    (
        "post-hook",
        "hooks run arbitrary statements on the warehouse; Kura builds models only from their SELECT",
    ),
    (
        "sql_header",
        "a SQL header runs statements before the model; Kura builds models only from their SELECT",
    ),
];

/// Whether `key` (without `+`) names a config rather than a folder.
pub(crate) fn is_config_key(key: &str) -> bool {
    KNOWN.contains(&key)
}

impl NodeConfig {
    /// Lays `over` on top of `self`.
    pub(crate) fn merge(&mut self, over: &NodeConfig) {
        fn take<T: Clone>(to: &mut Option<T>, from: &Option<T>) {
            if from.is_some() {
                to.clone_from(from);
            }
        }
        take(&mut self.materialized, &over.materialized);
        take(&mut self.schema, &over.schema);
        take(&mut self.alias, &over.alias);
        take(&mut self.unique_key, &over.unique_key);
        take(&mut self.enabled, &over.enabled);
        take(&mut self.on_schema_change, &over.on_schema_change);
        take(&mut self.full_refresh, &over.full_refresh);
        take(&mut self.severity, &over.severity);
        take(&mut self.where_, &over.where_);
        for t in &over.tags {
            if !self.tags.contains(t) {
                self.tags.push(t.clone());
            }
        }
        for (c, t) in &over.column_types {
            self.column_types.retain(|(k, _)| k != c);
            self.column_types.push((c.clone(), t.clone()));
        }
    }

    /// Sets one key (`+` already stripped) from its YAML value.
    pub(crate) fn set(&mut self, key: &str, value: &Yaml) -> Result<(), String> {
        if let Some((_, why)) = REFUSED
            .iter()
            .find(|(k, _)| *k == key || k.replace('-', "_") == key)
        {
            let empty = match value {
                Yaml::Null => true,
                Yaml::Sequence(s) => s.is_empty(),
                Yaml::String(s) => s.trim().is_empty(),
                _ => false,
            };
            return if empty {
                Ok(())
            } else {
                Err(format!("{key}: {why}"))
            };
        }
        let text = |v: &Yaml| -> Result<String, String> {
            match v {
                Yaml::String(s) => Ok(s.clone()),
                Yaml::Bool(b) => Ok(b.to_string()),
                Yaml::Number(n) => Ok(n.to_string()),
                _ => Err(format!("{key}: expected a string")),
            }
        };
        let list = |v: &Yaml| -> Result<Vec<String>, String> {
            match v {
                Yaml::Sequence(items) => items.iter().map(text).collect(),
                Yaml::Null => Ok(Vec::new()),
                other => Ok(vec![text(other)?]),
            }
        };
        match key {
            "materialized" => self.materialized = Some(Materialization::parse(&text(value)?)?),
            "schema" => self.schema = non_empty(text(value)?),
            "alias" => self.alias = non_empty(text(value)?),
            "tags" => {
                for t in list(value)? {
                    if !self.tags.contains(&t) {
                        self.tags.push(t);
                    }
                }
            }
            "unique_key" => {
                // dbt takes a column, a list, or "a, b".
                let keys: Vec<String> = list(value)?
                    .iter()
                    .flat_map(|k| k.split(','))
                    .map(|k| k.trim().to_owned())
                    .filter(|k| !k.is_empty())
                    .collect();
                self.unique_key = (!keys.is_empty()).then_some(keys);
            }
            "enabled" => self.enabled = Some(boolean(key, value)?),
            "full_refresh" => self.full_refresh = Some(boolean(key, value)?),
            "on_schema_change" => {
                self.on_schema_change = Some(match text(value)?.as_str() {
                    "ignore" => OnSchemaChange::Ignore,
                    "append_new_columns" => OnSchemaChange::AppendNewColumns,
                    "fail" => OnSchemaChange::Fail,
                    other => {
                        return Err(format!(
                            "on_schema_change: {other:?} is not one of ignore, append_new_columns, fail \
                             (sync_all_columns is not supported)"
                        ));
                    }
                })
            }
            "incremental_strategy" => match text(value)?.as_str() {
                "merge" | "append" | "delete+insert" => {}
                other => {
                    return Err(format!(
                        "incremental_strategy: {other:?} is not supported; Kura merges on \
                         unique_key, or appends without one"
                    ));
                }
            },
            "column_types" => {
                let Yaml::Mapping(m) = value else {
                    return Err("column_types: expected a mapping of column to type".into());
                };
                for (c, t) in m {
                    let (Yaml::String(c), Yaml::String(t)) = (c, t) else {
                        return Err("column_types: expected column: TYPE".into());
                    };
                    self.column_types.retain(|(k, _)| k != c);
                    self.column_types.push((c.clone(), t.clone()));
                }
            }
            "severity" => {
                self.severity = Some(match text(value)?.to_ascii_lowercase().as_str() {
                    "warn" => Severity::Warn,
                    "error" => Severity::Error,
                    other => return Err(format!("severity: {other:?} is not warn or error")),
                })
            }
            "where" => self.where_ = non_empty(text(value)?),
            _ => {}
        }
        Ok(())
    }

    /// Reads a `config:` mapping (property files, `config()` keyword arguments).
    pub(crate) fn from_mapping(value: &Yaml) -> Result<Self, String> {
        let mut c = Self::default();
        if let Yaml::Mapping(m) = value {
            for (k, v) in m {
                let Yaml::String(k) = k else { continue };
                c.set(k.trim_start_matches('+'), v)?;
            }
        }
        Ok(c)
    }

    /// The config a `dbt_project.yml` section gives a node at `path` (folders below the
    /// model path, then the file's stem): each level's config keys, from the top down.
    pub(crate) fn from_folders(
        section: &Yaml,
        project: &str,
        path: &[&str],
    ) -> Result<Self, String> {
        let mut out = Self::default();
        let Yaml::Mapping(top) = section else {
            return Ok(out);
        };
        apply_level(&mut out, top)?;
        let Some(Yaml::Mapping(mut level)) = top.get(project).cloned() else {
            return Ok(out);
        };
        apply_level(&mut out, &level)?;
        for part in path {
            match level.get(*part) {
                Some(Yaml::Mapping(next)) => {
                    let next = next.clone();
                    apply_level(&mut out, &next)?;
                    level = next;
                }
                _ => break,
            }
        }
        Ok(out)
    }
}

fn apply_level(out: &mut NodeConfig, level: &serde_yaml::Mapping) -> Result<(), String> {
    for (k, v) in level {
        let Yaml::String(k) = k else { continue };
        if let Some(key) = k.strip_prefix('+') {
            out.set(key, v)?;
        } else if is_config_key(k) && !matches!(v, Yaml::Mapping(_)) || k == "column_types" {
            out.set(k, v)?;
        }
    }
    Ok(())
}

fn boolean(key: &str, value: &Yaml) -> Result<bool, String> {
    match value {
        Yaml::Bool(b) => Ok(*b),
        Yaml::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Yaml::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(format!("{key}: expected true or false")),
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.trim().is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Yaml {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn folder_levels_apply_from_the_top_down_with_and_without_plus() {
        let section = yaml(
            "shop:\n  materialized: table\n  +tags: [all]\n  staging:\n    +materialized: view\n    \
             schema: stg\n    tags: staging\n  marts:\n    finance:\n      materialized: incremental\n",
        );
        let staging = NodeConfig::from_folders(&section, "shop", &["staging", "stg_a"]).unwrap();
        assert_eq!(staging.materialized, Some(Materialization::View));
        assert_eq!(staging.schema.as_deref(), Some("stg"));
        assert_eq!(staging.tags, ["all", "staging"]);
        let marts = NodeConfig::from_folders(&section, "shop", &["marts", "x"]).unwrap();
        assert_eq!(marts.materialized, Some(Materialization::Table));
        let finance =
            NodeConfig::from_folders(&section, "shop", &["marts", "finance", "y"]).unwrap();
        assert_eq!(finance.materialized, Some(Materialization::Incremental));
        // Another project's section does not apply.
        let other = NodeConfig::from_folders(&section, "other", &["staging"]).unwrap();
        assert_eq!(other.materialized, None);
    }

    #[test]
    fn later_layers_override_and_tags_add_up() {
        let mut c = NodeConfig::from_mapping(&yaml("materialized: view\ntags: [a]")).unwrap();
        c.merge(
            &NodeConfig::from_mapping(&yaml("materialized: table\ntags: b\nunique_key: 'id, day'"))
                .unwrap(),
        );
        assert_eq!(c.materialized, Some(Materialization::Table));
        assert_eq!(c.tags, ["a", "b"]);
        assert_eq!(
            c.unique_key.as_deref(),
            Some(&["id".into(), "day".into()][..])
        );
    }

    #[test]
    fn hooks_and_unknown_materializations_are_refused_with_the_reason() {
        let e = NodeConfig::from_mapping(&yaml("post-hook: \"drop table x\"")).unwrap_err();
        assert!(e.contains("query gate") || e.contains("arbitrary"), "{e}");
        assert!(NodeConfig::from_mapping(&yaml("+pre-hook: []")).is_ok());
        let e = NodeConfig::from_mapping(&yaml("materialized: snapshot")).unwrap_err();
        assert!(e.contains("snapshot"), "{e}");
    }
}
