//! Excel workbooks: the first sheet is converted to CSV in the staging folder, then loaded
//! like any CSV. (One table per workbook keeps "one file, one table" true; a workbook's
//! other sheets are reported in the file's outcome, never silently dropped.)
//!
//! A workbook is a zip archive of XML, and a tiny one can describe an enormous sheet (two
//! cells, `A1` and `XFD1048576`, span 17 billion) or inflate to gigabytes. Nothing here
//! allocates by what the file claims: the archive's declared sizes are checked before it
//! is opened, the sheet is streamed cell by cell (never as a dense range) to find its
//! extent, and a sheet whose rectangle exceeds [`MAX_SHEET_CELLS`] is refused before any
//! CSV is written.

use std::io::{Read, Seek, Write};
use std::path::Path;

use calamine::{DataRef, Reader, Xlsx};

use crate::query::values::csv_string;

/// The largest sheet rectangle (rows × columns) converted: a dense CSV of this many cells
/// is a few hundred MB.
pub(crate) const MAX_SHEET_CELLS: u64 = 20_000_000;
/// The largest total uncompressed size of a workbook's parts.
pub(crate) const MAX_UNCOMPRESSED_BYTES: u64 = 1 << 30;

fn bad(e: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

/// Refuses archives whose parts would inflate past [`MAX_UNCOMPRESSED_BYTES`] (zip bombs),
/// from the sizes the archive declares, before calamine reads anything.
fn check_archive<R: Read + Seek>(reader: R, limit: u64) -> std::io::Result<()> {
    let mut archive = zip::ZipArchive::new(reader)
        .map_err(|e| bad(format!("not a readable .xlsx workbook: {e}")))?;
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| bad(format!("not a readable .xlsx workbook: {e}")))?;
        total = total.saturating_add(entry.size());
        if total > limit {
            return Err(bad(format!(
                "the workbook inflates to more than {} MB; Kura reads workbooks up to {} MB \
                 uncompressed (export the sheet as CSV instead)",
                total / 1_000_000,
                limit / 1_000_000
            )));
        }
    }
    Ok(())
}

/// Writes the first sheet of `workbook` as CSV to `target`.
pub(crate) fn first_sheet_to_csv(workbook: &Path, target: &Path) -> std::io::Result<()> {
    convert(workbook, target, MAX_SHEET_CELLS, MAX_UNCOMPRESSED_BYTES)
}

fn convert(workbook: &Path, target: &Path, max_cells: u64, max_bytes: u64) -> std::io::Result<()> {
    check_archive(std::fs::File::open(workbook)?, max_bytes)?;
    let file = std::io::BufReader::new(std::fs::File::open(workbook)?);
    let mut book: Xlsx<_> =
        Xlsx::new(file).map_err(|e| bad(format!("not a readable .xlsx workbook: {e}")))?;
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
    let cannot = |e: calamine::XlsxError| bad(format!("cannot read sheet {first}: {e}"));

    // Pass 1: the sheet's real extent, from the cells it holds (its declared dimension
    // may be missing or wrong).
    let (mut first_row, mut last_row) = (u32::MAX, 0u32);
    let (mut first_col, mut last_col) = (u32::MAX, 0u32);
    let mut any = false;
    {
        let mut cells = book.worksheet_cells_reader(&first).map_err(cannot)?;
        while let Some(cell) = cells.next_cell().map_err(cannot)? {
            if matches!(cell.get_value(), DataRef::Empty) {
                continue;
            }
            let (row, col) = cell.get_position();
            any = true;
            first_row = first_row.min(row);
            last_row = last_row.max(row);
            first_col = first_col.min(col);
            last_col = last_col.max(col);
        }
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(target)?);
    if !any {
        return out.flush();
    }
    let rows = u64::from(last_row - first_row) + 1;
    let cols = u64::from(last_col - first_col) + 1;
    if rows.saturating_mul(cols) > max_cells {
        return Err(bad(format!(
            "sheet {first} spans {rows} rows × {cols} columns ({} cells); Kura converts \
             sheets of up to {max_cells} cells",
            rows.saturating_mul(cols)
        )));
    }

    // Pass 2: stream again, writing each row densely over the used columns (as a dense
    // range of the used cells would).
    let width = (last_col - first_col) as usize + 1;
    let mut row_cells: Vec<Option<Vec<u8>>> = vec![None; width];
    let mut current = first_row;
    let mut line = Vec::with_capacity(256);
    let mut cells = book.worksheet_cells_reader(&first).map_err(cannot)?;
    let mut flush_row = |row_cells: &mut Vec<Option<Vec<u8>>>,
                         out: &mut std::io::BufWriter<std::fs::File>|
     -> std::io::Result<()> {
        line.clear();
        for (i, cell) in row_cells.iter_mut().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            if let Some(text) = cell.take() {
                line.extend_from_slice(&text);
            }
        }
        line.push(b'\n');
        out.write_all(&line)
    };
    while let Some(cell) = cells.next_cell().map_err(cannot)? {
        let (row, col) = cell.get_position();
        if row < first_row || row > last_row || col < first_col || col > last_col {
            continue;
        }
        while current < row {
            flush_row(&mut row_cells, &mut out)?;
            current += 1;
        }
        let mut text = Vec::new();
        cell_text(&mut text, cell.get_value());
        row_cells[(col - first_col) as usize] = Some(text);
    }
    while current <= last_row {
        flush_row(&mut row_cells, &mut out)?;
        current += 1;
    }
    out.flush()
}

fn cell_text(out: &mut Vec<u8>, cell: &DataRef<'_>) {
    match cell {
        DataRef::Empty => {}
        DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => {
            csv_string(out, s)
        }
        DataRef::SharedString(s) => csv_string(out, s),
        DataRef::Float(f) => out.extend_from_slice(f.to_string().as_bytes()),
        DataRef::Int(n) => out.extend_from_slice(n.to_string().as_bytes()),
        DataRef::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        DataRef::DateTime(d) => match d.as_datetime() {
            Some(t) => out.extend_from_slice(t.format("%Y-%m-%d %H:%M:%S").to_string().as_bytes()),
            None => out.extend_from_slice(d.as_f64().to_string().as_bytes()),
        },
        DataRef::Error(e) => csv_string(out, &format!("#ERROR {e:?}")),
    }
}
