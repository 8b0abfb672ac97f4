//! Names of sources and tables: reduced to `[a-z0-9_]`, never empty, never starting with a
//! digit, so they can be quoted into SQL safely and read the same everywhere.

/// `Sales Q1-2024.csv` stem → `sales_q1_2024`.
pub(crate) fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut last_underscore = true;
    for c in raw.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
            last_underscore = false;
        } else if !last_underscore {
            out.push('_');
            last_underscore = true;
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    if out.is_empty() {
        out.push_str("unnamed");
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "t_");
    }
    out
}

/// The file's stem without any of the extensions Kura reads (`orders.csv.gz` → `orders`).
pub(crate) fn file_stem(name: &str) -> &str {
    let mut stem = name;
    for ext in [
        ".gz", ".csv", ".tsv", ".txt", ".json", ".jsonl", ".ndjson", ".parquet", ".xlsx",
    ] {
        if stem.len() > ext.len() && stem.to_ascii_lowercase().ends_with(ext) {
            stem = &stem[..stem.len() - ext.len()];
        }
    }
    stem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_reduced_to_safe_identifiers() {
        assert_eq!(sanitize("Sales Q1-2024"), "sales_q1_2024");
        assert_eq!(sanitize("  __Orders__ "), "orders");
        assert_eq!(sanitize("2024 report"), "t_2024_report");
        assert_eq!(sanitize("ÄÖÜ"), "unnamed");
        assert_eq!(sanitize("x\"; DROP TABLE y; --"), "x_drop_table_y");
    }

    #[test]
    fn stems_drop_known_extensions() {
        assert_eq!(file_stem("orders.csv.gz"), "orders");
        assert_eq!(file_stem("Data.JSONL"), "Data");
        assert_eq!(file_stem("notes.md"), "notes.md");
    }
}
