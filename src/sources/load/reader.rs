//! How a staged file is read: the reader call for its format, and how forgiving it is.
//!
//! The first attempt uses DuckDB's fast defaults; an error that a more forgiving reader
//! would avoid (a value past the type sniffing sample, ragged CSV rows, a column type that
//! cannot be declared) turns on just that, and the load is tried again.

use std::path::Path;

use super::LoadError;
use crate::db::warehouse::sql_string;
use crate::sources::formats::Format;

/// How forgiving the reader is: the first attempt is DuckDB's fast default; the retries
/// cost speed and are used only when the file needs them.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Leniency {
    /// Sniff types from the whole file (mixed columns become VARCHAR).
    pub(super) full_sniff: bool,
    /// Pad short rows with NULL (single-threaded: DuckDB's parallel scanner cannot pad
    /// rows and handle quoted newlines at once).
    pub(super) ragged: bool,
    /// Store `_kura_file` and `_kura_loaded_at` per row even in a table of its own.
    pub(super) stored_columns: bool,
}

impl Leniency {
    /// What to turn on after `error`, if anything helps.
    pub(super) fn after(self, error: &LoadError, format: Format) -> Option<Self> {
        match error {
            LoadError::Declare(_) if !self.stored_columns => Some(Self {
                stored_columns: true,
                ..self
            }),
            LoadError::Parse(_) if format == Format::Parquet => None,
            // DuckDB sniffs types from a sample; a later value of another type fails.
            LoadError::Parse(msg) if is_conversion_error(msg) && !self.full_sniff => Some(Self {
                full_sniff: true,
                ..self
            }),
            LoadError::Parse(msg)
                if is_ragged_error(msg) && !self.ragged && format == Format::Csv =>
            {
                Some(Self {
                    ragged: true,
                    ..self
                })
            }
            _ => None,
        }
    }
}

/// The table function call that reads `staged`.
pub(super) fn reader(format: Format, staged: &Path, lenient: Leniency) -> String {
    reader_with(format, staged, lenient, None)
}

/// [`reader`], told the file's columns when they are known already. The JSON reader then
/// reads without sniffing the file a second time (the CSV reader would still sniff its
/// dialect, and loses its speed when given columns: it is never told).
pub(super) fn reader_with(
    format: Format,
    staged: &Path,
    lenient: Leniency,
    columns: Option<&[(String, String)]>,
) -> String {
    let path = sql_string(&staged.display().to_string());
    let sample = if lenient.full_sniff { -1 } else { 20_480 };
    match format {
        Format::Json if let Some(columns) = columns => {
            let spec: Vec<String> = columns
                .iter()
                .map(|(name, ty)| format!("{}: {}", sql_string(name), sql_string(ty)))
                .collect();
            format!(
                "read_json({path}, format = 'auto', sample_size = {sample}, columns = {{{}}})",
                spec.join(", ")
            )
        }
        Format::Csv if lenient.ragged => format!(
            "read_csv({path}, auto_detect = true, null_padding = true, parallel = false, sample_size = {sample})"
        ),
        Format::Csv => format!("read_csv({path}, auto_detect = true, sample_size = {sample})"),
        Format::Json => format!("read_json({path}, format = 'auto', sample_size = {sample})"),
        Format::Parquet => format!("read_parquet({path})"),
    }
}

/// A value that does not fit the type sniffed from a sample (CSV and JSON word it
/// differently).
fn is_conversion_error(msg: &str) -> bool {
    msg.contains("Conversion Error")
        || msg.contains("Could not convert")
        || msg.contains("sniff")
        || msg.contains("JSON transform error")
}

fn is_ragged_error(msg: &str) -> bool {
    msg.contains("Expected Number of Columns")
        || msg.contains("null_padding")
        || msg.contains("too few columns")
}
