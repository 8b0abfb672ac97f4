//! Which sources exist and which files belong to each.
//!
//! - Files directly in a watched folder (default `data/uploads/`) form the source
//!   `uploads`, one table per file: `raw_uploads.<file stem>`.
//! - A sub-folder of a watched folder is a source named after it; its files (recursively)
//!   are unioned into one table, `raw_<source>.<source>`.
//! - `sources:` in `project.yml` declares a source over any directory with a file-name
//!   pattern; a declared source takes precedence over a sub-folder with the same directory.
//!
//! Discovery reads the file system only (no database), so it can run on every sync and
//! every watcher event; it is cheap for the folder sizes a workbench sees.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::formats::{Kind, detect, is_ignored};
use super::naming::{file_stem, sanitize};
use crate::config::{Config, Mode, OnDelete};

/// How a source's files map to tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Layout {
    /// One table per file, named after the file.
    TablePerFile,
    /// Every file unioned into one table.
    Union,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Source {
    pub(crate) name: String,
    /// `local_files` for declared sources, `folder` for discovered ones.
    pub(crate) kind: &'static str,
    pub(crate) directory: PathBuf,
    pub(crate) recursive: bool,
    pub(crate) pattern: String,
    pub(crate) layout: Layout,
    pub(crate) mode: Mode,
    pub(crate) on_delete: OnDelete,
    pub(crate) enabled: bool,
}

impl Source {
    /// `raw_<name>`.
    pub(crate) fn schema(&self) -> String {
        format!("raw_{}", self.name)
    }

    /// The table a file at `path` loads into.
    pub(crate) fn table_for(&self, path: &Path) -> String {
        match self.layout {
            Layout::Union => self.name.clone(),
            Layout::TablePerFile => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                sanitize(file_stem(&name))
            }
        }
    }
}

/// A file on disk that belongs to a source.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DiskFile {
    pub(crate) path: PathBuf,
    /// Relative to the project directory, with `/`: the ledger key.
    pub(crate) rel: String,
    pub(crate) size: u64,
    pub(crate) mtime: DateTime<Utc>,
    /// `None` for files Kura does not read (listed, never loaded).
    #[serde(skip)]
    pub(crate) kind: Option<Kind>,
}

/// All sources of the project, by name.
pub(crate) fn discover(config: &Config) -> BTreeMap<String, Source> {
    let mut sources = BTreeMap::new();
    for declared in &config.sources {
        sources.insert(
            declared.name.clone(),
            Source {
                name: declared.name.clone(),
                kind: "local_files",
                directory: config.root.join(&declared.directory),
                recursive: true,
                pattern: declared.pattern.clone(),
                layout: Layout::Union,
                mode: declared.mode,
                on_delete: declared.on_delete,
                enabled: declared.enabled,
            },
        );
    }
    let declared_dirs: Vec<PathBuf> = sources.values().map(|s| normalize(&s.directory)).collect();
    for watch in &config.platform.watch_directories {
        let dir = config.root.join(watch);
        let folder = |name: String, directory: PathBuf, recursive, layout| Source {
            name,
            kind: "folder",
            directory,
            recursive,
            pattern: "*".into(),
            layout,
            mode: Mode::Replace,
            on_delete: OnDelete::Remove,
            enabled: true,
        };
        if !declared_dirs.contains(&normalize(&dir)) {
            sources.entry("uploads".into()).or_insert_with(|| {
                folder("uploads".into(), dir.clone(), false, Layout::TablePerFile)
            });
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut subdirs: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter(|e| !is_ignored(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        subdirs.sort();
        for sub in subdirs {
            if declared_dirs.contains(&normalize(&sub)) {
                continue;
            }
            let name = sanitize(
                &sub.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            // Two folders that reduce to one name: the first keeps it, the second is
            // reported by `conflicts`.
            sources
                .entry(name.clone())
                .or_insert_with(|| folder(name, sub, true, Layout::Union));
        }
    }
    sources
}

/// Folders that could not become sources because their name is taken.
pub(crate) fn conflicts(config: &Config, sources: &BTreeMap<String, Source>) -> Vec<String> {
    let mut out = Vec::new();
    for watch in &config.platform.watch_directories {
        let Ok(entries) = std::fs::read_dir(config.root.join(watch)) else {
            continue;
        };
        for e in entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        {
            let raw = e.file_name().to_string_lossy().into_owned();
            if is_ignored(&raw) {
                continue;
            }
            let name = sanitize(&raw);
            if let Some(s) = sources.get(&name)
                && normalize(&s.directory) != normalize(&e.path())
                && s.kind == "folder"
            {
                out.push(format!(
                    "folder {} maps to the source name {name}, already used by {}",
                    e.path().display(),
                    s.directory.display()
                ));
            }
        }
    }
    out
}

fn normalize(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// The files of `source` on disk, sorted by path. Hidden and temporary files are skipped.
pub(crate) fn files(root: &Path, source: &Source) -> std::io::Result<Vec<DiskFile>> {
    let mut out = Vec::new();
    if source.directory.is_dir() {
        collect(root, source, &source.directory, &mut out)?;
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

fn collect(
    root: &Path,
    source: &Source,
    dir: &Path,
    out: &mut Vec<DiskFile>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_ignored(&name) {
            continue;
        }
        let ty = entry.file_type()?;
        if ty.is_dir() {
            if source.recursive {
                collect(root, source, &entry.path(), out)?;
            }
            continue;
        }
        if !ty.is_file() || !glob_match(&source.pattern, &name) {
            continue;
        }
        let meta = entry.metadata()?;
        let path = entry.path();
        out.push(DiskFile {
            rel: relative(root, &path),
            size: meta.len(),
            // Microseconds: what the ledger (a DuckDB TIMESTAMPTZ) keeps, so that an
            // unchanged file compares equal and is not even hashed again.
            mtime: chrono::SubsecRound::trunc_subsecs(
                meta.modified()
                    .map(DateTime::<Utc>::from)
                    .unwrap_or_else(|_| DateTime::<Utc>::from(SystemTime::UNIX_EPOCH)),
                6,
            ),
            kind: detect(&name),
            path,
        });
    }
    Ok(())
}

/// `path` relative to `root`, with forward slashes.
pub(crate) fn relative(root: &Path, path: &Path) -> String {
    let root = normalize(root);
    let full = normalize(path);
    let rel = full.strip_prefix(&root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// `*` matches any run, `?` one character; case-insensitive.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let n: Vec<char> = name.to_lowercase().chars().collect();
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", "a.csv"));
        assert!(glob_match("*.csv", "Orders.CSV"));
        assert!(glob_match("sales_????.csv", "sales_2024.csv"));
        assert!(!glob_match("*.csv", "a.json"));
        assert!(glob_match("a*b*c", "axxbyyc"));
    }

    #[test]
    fn folders_become_sources_and_top_level_files_the_uploads_source() {
        let dir = tempfile::tempdir().unwrap();
        crate::project::init(dir.path(), false).unwrap();
        let uploads = dir.path().join("data/uploads");
        std::fs::create_dir_all(uploads.join("Sales 2024")).unwrap();
        std::fs::write(uploads.join("Orders.csv"), "a\n1\n").unwrap();
        std::fs::write(uploads.join("Sales 2024/jan.csv"), "a\n1\n").unwrap();
        std::fs::write(uploads.join("Sales 2024/.hidden.csv"), "a\n1\n").unwrap();
        std::fs::write(uploads.join("Sales 2024/feb.csv.part"), "a\n").unwrap();
        let config = Config::load_with_env(dir.path(), Vec::new()).unwrap();
        let sources = discover(&config);
        assert_eq!(
            sources.keys().collect::<Vec<_>>(),
            ["sales_2024", "uploads"]
        );
        let up = &sources["uploads"];
        let files = files(dir.path(), up).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].rel, "data/uploads/Orders.csv");
        assert_eq!(up.table_for(&files[0].path), "orders");
        let sales = &sources["sales_2024"];
        let files = super::files(dir.path(), sales).unwrap();
        assert_eq!(
            files.iter().map(|f| f.rel.as_str()).collect::<Vec<_>>(),
            ["data/uploads/Sales 2024/jan.csv"]
        );
        assert_eq!(sales.table_for(&files[0].path), "sales_2024");
        assert_eq!(sales.schema(), "raw_sales_2024");
    }
}
