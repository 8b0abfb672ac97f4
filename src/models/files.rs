//! Reading a models project from disk: `dbt_project.yml` when there is one (its paths and
//! vars), the SQL of models, macros and singular tests, seeds, property files and doc
//! blocks. Nothing here renders or runs anything; a file that cannot be read or parsed is
//! an error that names it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ProjectError;
use super::properties::{self, DbtProject, PropertyFile};

/// A text file of the project, its path relative to the project root (`/`-separated).
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    pub(crate) path: String,
    /// The folders between its search path and the file, then the file's stem: what
    /// `dbt_project.yml` folder configs and `path:` selectors match.
    pub(crate) fqn: Vec<String>,
    pub(crate) text: String,
}

impl SourceFile {
    pub(crate) fn stem(&self) -> &str {
        self.fqn.last().map_or("", String::as_str)
    }
}

/// Everything read from a project directory.
#[derive(Debug, Default)]
pub(crate) struct ProjectFiles {
    pub(crate) root: PathBuf,
    /// `name:` of `dbt_project.yml`, else the directory's name.
    pub(crate) name: String,
    pub(crate) dbt: DbtProject,
    pub(crate) models: Vec<SourceFile>,
    pub(crate) macros: Vec<SourceFile>,
    pub(crate) tests: Vec<SourceFile>,
    /// Seed CSV files (text not read: they go to DuckDB's reader).
    pub(crate) seeds: Vec<SourceFile>,
    pub(crate) properties: Vec<(String, PropertyFile)>,
    /// Doc blocks by name: (file, text).
    pub(crate) docs: BTreeMap<String, (String, String)>,
    pub(crate) errors: Vec<ProjectError>,
}

/// Folders never searched: build output, installed packages, hidden folders.
const SKIPPED_DIRS: &[&str] = &[
    "target",
    "dbt_packages",
    "dbt_modules",
    "logs",
    "node_modules",
];

/// Reads the project under `root`; `default_name` names it when it has no
/// `dbt_project.yml` (the Kura project's name). Blocking (file system): call off the
/// runtime.
pub(crate) fn read(root: &Path, default_name: &str) -> ProjectFiles {
    let mut out = ProjectFiles {
        root: root.to_path_buf(),
        ..ProjectFiles::default()
    };
    let dbt_file = root.join("dbt_project.yml");
    match std::fs::read_to_string(&dbt_file) {
        Ok(text) => match properties::parse::<DbtProject>(&text) {
            Ok(p) => out.dbt = p,
            Err(e) => out
                .errors
                .push(ProjectError::at("dbt_project.yml", None, e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => out
            .errors
            .push(ProjectError::at("dbt_project.yml", None, e.to_string())),
    }
    // dbt's project names are identifiers: they appear in unique ids (model.<name>.<m>).
    out.name = identifier(out.dbt.name.as_deref().unwrap_or(default_name));
    let paths = |given: &Option<Vec<String>>, default: &str| -> Vec<String> {
        given.clone().unwrap_or_else(|| vec![default.to_owned()])
    };
    let model_paths = paths(&out.dbt.model_paths, "models");
    let docs_paths = out
        .dbt
        .docs_paths
        .clone()
        .unwrap_or_else(|| model_paths.clone());
    for dir in &model_paths {
        for (path, fqn) in walk(root, dir, &mut out.errors) {
            match path.extension().and_then(|e| e.to_str()) {
                Some("sql") => push_text(root, &path, fqn, &mut out.models, &mut out.errors),
                Some("yml" | "yaml") => read_properties(root, &path, &mut out),
                _ => {}
            }
        }
    }
    for dir in paths(&out.dbt.macro_paths, "macros") {
        for (path, fqn) in walk(root, &dir, &mut out.errors) {
            match path.extension().and_then(|e| e.to_str()) {
                Some("sql") => push_text(root, &path, fqn, &mut out.macros, &mut out.errors),
                Some("yml" | "yaml") => read_properties(root, &path, &mut out),
                _ => {}
            }
        }
    }
    for dir in paths(&out.dbt.test_paths, "tests") {
        for (path, fqn) in walk(root, &dir, &mut out.errors) {
            if path.extension().is_some_and(|e| e == "sql") {
                push_text(root, &path, fqn, &mut out.tests, &mut out.errors);
            }
        }
    }
    for dir in paths(&out.dbt.seed_paths, "seeds") {
        for (path, fqn) in walk(root, &dir, &mut out.errors) {
            match path.extension().and_then(|e| e.to_str()) {
                Some("csv") => out.seeds.push(SourceFile {
                    path: relative(root, &path),
                    fqn,
                    text: String::new(),
                }),
                Some("yml" | "yaml") => read_properties(root, &path, &mut out),
                _ => {}
            }
        }
    }
    for dir in docs_paths {
        for (path, _) in walk(root, &dir, &mut out.errors) {
            if path.extension().is_some_and(|e| e == "md") {
                let rel = relative(root, &path);
                match std::fs::read_to_string(&path) {
                    Ok(text) => {
                        for (name, body) in doc_blocks(&text) {
                            out.docs.insert(name, (rel.clone(), body));
                        }
                    }
                    Err(e) => out.errors.push(ProjectError::at(&rel, None, e.to_string())),
                }
            }
        }
    }
    out
}

/// The folders of the project under `root` that hold its files (what the watcher
/// watches), and its `dbt_project.yml`.
pub(crate) fn watched(root: &Path) -> (Vec<PathBuf>, PathBuf) {
    let dbt_file = root.join("dbt_project.yml");
    let dbt: DbtProject = std::fs::read_to_string(&dbt_file)
        .ok()
        .and_then(|t| properties::parse(&t).ok())
        .unwrap_or_default();
    let mut dirs = Vec::new();
    for (given, default) in [
        (&dbt.model_paths, "models"),
        (&dbt.macro_paths, "macros"),
        (&dbt.seed_paths, "seeds"),
        (&dbt.test_paths, "tests"),
        (&dbt.docs_paths, "models"),
    ] {
        for dir in given.clone().unwrap_or_else(|| vec![default.to_owned()]) {
            let path = root.join(dir);
            if path.is_dir() && !dirs.contains(&path) {
                dirs.push(path);
            }
        }
    }
    (dirs, dbt_file)
}

/// Whether a changed file can change the project.
pub(crate) fn is_project_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("sql" | "yml" | "yaml" | "md" | "csv")
    )
}

fn identifier(name: &str) -> String {
    let mut out: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        out.push_str("kura");
    }
    out
}

fn read_properties(root: &Path, path: &Path, out: &mut ProjectFiles) {
    let rel = relative(root, path);
    match std::fs::read_to_string(path) {
        Ok(text) => match properties::parse::<PropertyFile>(&text) {
            Ok(p) => out.properties.push((rel, p)),
            Err(e) => out.errors.push(ProjectError::at(&rel, None, e)),
        },
        Err(e) => out.errors.push(ProjectError::at(&rel, None, e.to_string())),
    }
}

fn push_text(
    root: &Path,
    path: &Path,
    fqn: Vec<String>,
    into: &mut Vec<SourceFile>,
    errors: &mut Vec<ProjectError>,
) {
    let rel = relative(root, path);
    match std::fs::read_to_string(path) {
        Ok(text) => into.push(SourceFile {
            path: rel,
            fqn,
            text,
        }),
        Err(e) => errors.push(ProjectError::at(&rel, None, e.to_string())),
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every file under `root/dir`, sorted, with its fqn (folders below `dir`, then the stem).
fn walk(root: &Path, dir: &str, errors: &mut Vec<ProjectError>) -> Vec<(PathBuf, Vec<String>)> {
    let base = root.join(dir);
    if dir.split('/').any(|p| p == "..") {
        errors.push(ProjectError::at(
            "dbt_project.yml",
            None,
            format!("the path {dir:?} leaves the project"),
        ));
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut stack = vec![(base, Vec::<String>::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                if !SKIPPED_DIRS.contains(&name.as_str()) {
                    let mut p = prefix.clone();
                    p.push(name);
                    stack.push((path, p));
                }
            } else if kind.is_file() {
                let stem = Path::new(&name)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let mut fqn = prefix.clone();
                fqn.push(stem);
                out.push((path, fqn));
            }
        }
    }
    out.sort();
    out
}

/// `{% docs name %}…{% enddocs %}` blocks of a Markdown file (whitespace control allowed).
pub(crate) fn doc_blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{%") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("%}") else { break };
        let tag = after[..end].trim_matches(|c: char| c == '-' || c.is_whitespace());
        rest = &after[end + 2..];
        if let Some(name) = tag.strip_prefix("docs") {
            let name = name.trim().to_owned();
            let Some(close) = find_enddocs(rest) else {
                break;
            };
            out.push((name, rest[..close.0].trim().to_owned()));
            rest = &rest[close.1..];
        }
    }
    out
}

fn find_enddocs(text: &str) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(i) = text[from..].find("{%") {
        let start = from + i;
        let after = &text[start + 2..];
        let end = after.find("%}")?;
        if after[..end].trim_matches(|c: char| c == '-' || c.is_whitespace()) == "enddocs" {
            return Some((start, start + 2 + end + 2));
        }
        from = start + 2;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_blocks_are_read_with_whitespace_control() {
        let blocks = doc_blocks(
            "# Docs\n{% docs orders_status %}\nOne of **placed**, shipped.\n{% enddocs %}\n\
             {%- docs other -%}x{%- enddocs -%}",
        );
        assert_eq!(
            blocks,
            [
                ("orders_status".into(), "One of **placed**, shipped.".into()),
                ("other".into(), "x".into())
            ]
        );
    }

    #[test]
    fn a_project_is_read_from_its_paths_with_folder_fqns() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("dbt_project.yml"),
            "name: shop\nmodel-paths: [transform]\nvars:\n  since: 2024\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("transform/staging/.hidden")).unwrap();
        std::fs::create_dir_all(root.join("seeds")).unwrap();
        std::fs::write(root.join("transform/staging/stg_a.sql"), "select 1").unwrap();
        std::fs::write(root.join("transform/staging/.hidden/x.sql"), "select 2").unwrap();
        std::fs::write(
            root.join("transform/schema.yml"),
            "models:\n  - name: stg_a\n",
        )
        .unwrap();
        std::fs::write(root.join("transform/bad.yml"), "models: [\n").unwrap();
        std::fs::write(root.join("seeds/codes.csv"), "a\n1\n").unwrap();
        let p = read(root, "unused");
        assert_eq!(p.name, "shop");
        assert_eq!(p.models.len(), 1);
        assert_eq!(p.models[0].path, "transform/staging/stg_a.sql");
        assert_eq!(p.models[0].fqn, ["staging", "stg_a"]);
        assert_eq!(p.seeds[0].stem(), "codes");
        assert_eq!(p.properties.len(), 1);
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].file, "transform/bad.yml");
    }
}
