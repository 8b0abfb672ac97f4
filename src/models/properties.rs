//! The YAML of a dbt project: `dbt_project.yml` and the property files (`version: 2`)
//! beside the models, read into typed values. Keys Kura does not use (`exposures:`,
//! `metrics:`, `semantic_models:`, `meta:`...) are accepted and ignored, as dbt ignores
//! what an adapter does not use; keys Kura refuses (hooks, which run statements past the
//! query gate) are reported by [`super::config`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_yaml::Value as Yaml;

/// `dbt_project.yml`, the parts Kura reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct DbtProject {
    pub(crate) name: Option<String>,
    #[serde(rename = "model-paths", alias = "source-paths")]
    pub(crate) model_paths: Option<Vec<String>>,
    #[serde(rename = "seed-paths", alias = "data-paths")]
    pub(crate) seed_paths: Option<Vec<String>>,
    #[serde(rename = "macro-paths")]
    pub(crate) macro_paths: Option<Vec<String>>,
    #[serde(rename = "test-paths")]
    pub(crate) test_paths: Option<Vec<String>>,
    #[serde(rename = "docs-paths")]
    pub(crate) docs_paths: Option<Vec<String>>,
    pub(crate) vars: BTreeMap<String, Yaml>,
    /// Folder-level configs: `models: <project>: <folder>: +materialized: view`.
    pub(crate) models: Yaml,
    pub(crate) seeds: Yaml,
    #[serde(alias = "tests")]
    pub(crate) data_tests: Yaml,
}

/// One property file.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PropertyFile {
    pub(crate) models: Vec<NodeProperties>,
    pub(crate) seeds: Vec<NodeProperties>,
    pub(crate) sources: Vec<SourceProperties>,
}

/// A model's or seed's entry in a property file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct NodeProperties {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) config: Yaml,
    pub(crate) tags: Tags,
    pub(crate) columns: Vec<ColumnProperties>,
    #[serde(alias = "tests")]
    pub(crate) data_tests: Vec<Yaml>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct ColumnProperties {
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) data_type: Option<String>,
    /// Quote the column name in generated tests (dbt's `quote: true`).
    pub(crate) quote: Option<bool>,
    pub(crate) tags: Tags,
    #[serde(alias = "tests")]
    pub(crate) data_tests: Vec<Yaml>,
}

/// dbt `sources:`: names for tables Kura did not build.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct SourceProperties {
    pub(crate) name: String,
    pub(crate) schema: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) tags: Tags,
    pub(crate) tables: Vec<SourceTable>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct SourceTable {
    pub(crate) name: String,
    pub(crate) identifier: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) tags: Tags,
    pub(crate) columns: Vec<ColumnProperties>,
    #[serde(alias = "tests")]
    pub(crate) data_tests: Vec<Yaml>,
}

/// `tags:` is a list or a single string in dbt.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(from = "TagsIn")]
pub(crate) struct Tags(pub(crate) Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum TagsIn {
    One(String),
    Many(Vec<String>),
}

impl From<TagsIn> for Tags {
    fn from(t: TagsIn) -> Self {
        match t {
            TagsIn::One(s) => Self(vec![s]),
            TagsIn::Many(v) => Self(v),
        }
    }
}

/// Reads YAML text; the error names the line.
pub(crate) fn parse<T: for<'de> Deserialize<'de> + Default>(text: &str) -> Result<T, String> {
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    serde_yaml::from_str(text).map_err(|e| match e.location() {
        Some(l) => format!("line {}: {e}", l.line()),
        None => e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_files_read_tests_tags_and_sources_in_dbts_spellings() {
        let p: PropertyFile = parse(
            "version: 2\nmodels:\n  - name: orders\n    description: One row per order\n    \
             tags: finance\n    columns:\n      - name: id\n        tests: [unique, not_null]\n      \
             - name: status\n        data_tests:\n          - accepted_values:\n              \
             values: ['placed', 'shipped']\nsources:\n  - name: shop\n    schema: raw_shop\n    \
             tables:\n      - name: orders\nexposures:\n  - name: ignored\n",
        )
        .unwrap();
        let m = &p.models[0];
        assert_eq!(m.tags.0, ["finance"]);
        assert_eq!(m.columns[0].data_tests.len(), 2);
        assert_eq!(m.columns[1].data_tests.len(), 1);
        assert_eq!(p.sources[0].tables[0].name, "orders");
        let bad = parse::<PropertyFile>("models:\n  - name: [x\n").unwrap_err();
        assert!(bad.starts_with("line "), "{bad}");
    }
}
