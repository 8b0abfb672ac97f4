//! Excel workbooks: the first sheet is converted to CSV in the staging folder, then loaded
//! like any CSV. (One table per workbook keeps "one file, one table" true; a workbook's
//! other sheets are reported in the file's outcome, never silently dropped.)

use std::io::Write;
use std::path::Path;

use calamine::{Data, Reader, Xlsx, open_workbook};

use crate::query::values::csv_string;

/// Writes the first sheet of `workbook` as CSV to `target`.
pub fn first_sheet_to_csv(workbook: &Path, target: &Path) -> std::io::Result<()> {
    let bad = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let mut book: Xlsx<_> =
        open_workbook(workbook).map_err(|e| bad(format!("not a readable .xlsx workbook: {e}")))?;
    let sheets = book.sheet_names();
    let first = sheets
        .first()
        .cloned()
        .ok_or_else(|| bad("the workbook has no sheets".into()))?;
    if sheets.len() > 1 {
        tracing::info!(
            file = %workbook.display(),
            sheet = %first,
            others = sheets.len() - 1,
            "loading the first sheet of a workbook with several"
        );
    }
    let range = book
        .worksheet_range(&first)
        .map_err(|e| bad(format!("cannot read sheet {first}: {e}")))?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(target)?);
    let mut line = Vec::with_capacity(256);
    for row in range.rows() {
        line.clear();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            match cell {
                Data::Empty => {}
                Data::String(s) => csv_string(&mut line, s),
                Data::Float(f) => line.extend_from_slice(f.to_string().as_bytes()),
                Data::Int(n) => line.extend_from_slice(n.to_string().as_bytes()),
                Data::Bool(b) => line.extend_from_slice(if *b { b"true" } else { b"false" }),
                Data::DateTime(d) => match d.as_datetime() {
                    Some(t) => {
                        line.extend_from_slice(t.format("%Y-%m-%d %H:%M:%S").to_string().as_bytes())
                    }
                    None => line.extend_from_slice(d.as_f64().to_string().as_bytes()),
                },
                Data::DateTimeIso(s) | Data::DurationIso(s) => csv_string(&mut line, s),
                Data::Error(e) => csv_string(&mut line, &format!("#ERROR {e:?}")),
            }
        }
        line.push(b'\n');
        out.write_all(&line)?;
    }
    out.flush()
}
