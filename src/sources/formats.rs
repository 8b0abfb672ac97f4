//! Which files Kura reads, and how: by extension, gzip included.

/// The DuckDB reader a file goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `.csv`, `.tsv`, `.txt` (delimiter sniffed), and `.xlsx` after conversion to CSV.
    Csv,
    /// `.json` (an array or newline-delimited), `.jsonl`, `.ndjson`.
    Json,
    Parquet,
}

/// How a file reaches the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Direct(Format),
    /// An Excel workbook: its first sheet is converted to CSV in staging first.
    Excel,
}

/// The kind of a file by its name, or `None` for files Kura does not load.
pub(crate) fn detect(name: &str) -> Option<Kind> {
    let lower = name.to_ascii_lowercase();
    let base = lower.strip_suffix(".gz").unwrap_or(&lower);
    let ext = base.rsplit_once('.').map(|(_, e)| e)?;
    let gz = base.len() != lower.len();
    match ext {
        "csv" | "tsv" | "txt" => Some(Kind::Direct(Format::Csv)),
        "json" | "jsonl" | "ndjson" => Some(Kind::Direct(Format::Json)),
        "parquet" if !gz => Some(Kind::Direct(Format::Parquet)),
        "xlsx" if !gz => Some(Kind::Excel),
        _ => None,
    }
}

/// Endings (case-insensitive) of partial downloads and temp files.
const IGNORED_ENDINGS: &[&str] = &[
    ".part",
    ".crdownload",
    ".tmp",
    ".temp",
    ".swp",
    ".partial",
    ".download",
];

/// Names the watcher and the loader never touch: hidden files, editor backups, partial
/// downloads and temp files (including Kura's own upload temp files).
pub(crate) fn is_ignored(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || name.starts_with('~')
        || name.ends_with('~')
        || name.starts_with('#')
        || IGNORED_ENDINGS.iter().any(|s| lower.ends_with(s))
}

/// [`is_ignored`]'s rules as glob patterns, for the watcher's status.
pub(crate) fn ignored_patterns() -> Vec<String> {
    [".*", "~*", "*~", "#*"]
        .into_iter()
        .map(str::to_owned)
        .chain(IGNORED_ENDINGS.iter().map(|e| format!("*{e}")))
        .collect()
}

/// What `detect` accepts, in words (one sentence for every message that says it).
pub(crate) const SUPPORTED: &str =
    "csv, tsv, txt, json, jsonl, ndjson, parquet, xlsx, and .gz of the text formats";

#[cfg(test)]
mod tests {
    #[test]
    fn the_reported_patterns_are_the_rules() {
        // Every reported pattern, made concrete, is ignored; and a plain name is not.
        for pattern in super::ignored_patterns() {
            let name = pattern.replace('*', "x");
            assert!(super::is_ignored(&name), "{pattern} → {name}");
        }
        assert!(!super::is_ignored("sales.csv"));
    }

    use super::*;

    #[test]
    fn formats_by_extension() {
        assert_eq!(detect("a.CSV"), Some(Kind::Direct(Format::Csv)));
        assert_eq!(detect("a.tsv.gz"), Some(Kind::Direct(Format::Csv)));
        assert_eq!(detect("a.ndjson"), Some(Kind::Direct(Format::Json)));
        assert_eq!(detect("a.parquet"), Some(Kind::Direct(Format::Parquet)));
        assert_eq!(detect("a.xlsx"), Some(Kind::Excel));
        assert_eq!(detect("a.md"), None);
        assert_eq!(detect("noext"), None);
    }

    #[test]
    fn temp_and_hidden_files_are_ignored() {
        for n in [
            ".hidden.csv",
            "a.csv.part",
            "a.csv.crdownload",
            "a.csv~",
            "~$book.xlsx",
            "x.tmp",
        ] {
            assert!(is_ignored(n), "{n}");
        }
        assert!(!is_ignored("orders.csv"));
    }
}
