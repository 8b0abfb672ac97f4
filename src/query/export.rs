//! Streaming export of a whole result as CSV, NDJSON or Parquet, in constant memory.
//!
//! The job runs on an interactive worker: it passes the gate, starts the statement, tells
//! the handler it started (or why not: that becomes a normal JSON error), then writes
//! chunks of about 256 KB into a bounded channel that feeds the HTTP body. The channel's
//! bound is the backpressure: a slow client slows DuckDB's fetching, not memory. If the
//! client goes away the next send fails and the job stops; if the query fails mid-way the
//! body ends with an error, so the client sees a broken transfer, never a short file that
//! looks complete.

use std::io::Write;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use duckdb::Connection;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use tokio::sync::{mpsc, oneshot};

use super::run::{execution_error, in_read_only_transaction, prepare_error};
use super::values::{csv_string, json_string, write_csv, write_json};
use super::{Gate, QueryError};
use crate::db::warehouse::{JobControl, QueryConn};

const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the worker and the socket: bounds memory per export.
pub(crate) const CHANNEL_CHUNKS: usize = 8;
const PARQUET_ROW_GROUP: usize = 128 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    Ndjson,
    Parquet,
}

impl Format {
    pub(crate) fn parse(s: &str) -> Result<Self, QueryError> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(Self::Csv),
            "ndjson" | "jsonl" => Ok(Self::Ndjson),
            "parquet" => Ok(Self::Parquet),
            _ => Err(QueryError::UnknownFormat(s.to_owned())),
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Ndjson => "application/x-ndjson",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }

    pub(crate) fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
            Self::Parquet => "parquet",
        }
    }
}

/// What the body stream carries.
pub(crate) type Chunk = Result<Bytes, std::io::Error>;

/// Sends chunks from the worker thread; a failed send means the client is gone.
struct ChannelWriter {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn new(tx: mpsc::Sender<Chunk>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(CHUNK + 4096),
        }
    }

    fn send_buffer(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK + 4096),
        ));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }

    fn maybe_send(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= CHUNK {
            self.send_buffer()
        } else {
            Ok(())
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.maybe_send()?;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_buffer()
    }
}

/// What one export runs.
pub(crate) struct ExportJob {
    pub(crate) sql: String,
    pub(crate) format: Format,
    /// Prefix CSV text cells that a spreadsheet would run as a formula with `'`.
    pub(crate) escape_formulas: bool,
    /// Whose statement cache the worker may use (see `QueryConn::use_statement_cache_of`).
    pub(crate) owner: String,
}

#[derive(Clone, Copy)]
struct TextOptions {
    escape_formulas: bool,
}

/// The export job. `started` is answered once the statement runs (or with why it could
/// not); after that, errors go into the body stream.
pub(crate) fn export_job(
    qc: &QueryConn,
    control: &JobControl,
    gate: &Gate,
    request: &ExportJob,
    started: oneshot::Sender<Result<(), QueryError>>,
    tx: mpsc::Sender<Chunk>,
) {
    let mut started = Some(started);
    let sql = match gate.check(&qc.conn, &request.sql) {
        Ok(checked) => checked.sql,
        Err(e) => {
            let _ = started.take().map(|s| s.send(Err(e)));
            return;
        }
    };
    qc.use_statement_cache_of(&request.owner);
    let error_tx = tx.clone();
    let options = TextOptions {
        escape_formulas: request.escape_formulas,
    };
    let result = in_read_only_transaction(qc, control, |conn| {
        stream(
            conn,
            &sql,
            request.format,
            options,
            &mut started,
            ChannelWriter::new(tx),
        )
    });
    // A statement the memory watchdog stopped fails with DuckDB's bare interrupt: say why.
    let result = result.map_err(|e| match control.stopped_for_memory() {
        Some(limit_mb) => QueryError::MemoryLimit { limit_mb },
        None => e,
    });
    if let Err(e) = result {
        match started.take() {
            Some(s) => {
                let _ = s.send(Err(e));
            }
            None => {
                tracing::warn!(error = %e, "export failed mid-stream; aborting the response");
                let _ = error_tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        }
    }
}

fn stream(
    conn: &Connection,
    sql: &str,
    format: Format,
    options: TextOptions,
    started: &mut Option<oneshot::Sender<Result<(), QueryError>>>,
    out: ChannelWriter,
) -> Result<(), QueryError> {
    let mut stmt = conn.prepare(sql).map_err(|e| prepare_error(e, sql))?;
    let batches = stmt.stream_arrow([]).map_err(execution_error)?;
    let schema = batches.get_schema();
    // The export counts as started only once its first rows exist: until then the caller
    // applies the query timeout, so a statement that never yields a row is stopped like
    // any query instead of holding a worker for the whole export timeout.
    let mut batches = batches.peekable();
    if let Some(Err(_)) = batches.peek()
        && let Some(Err(e)) = batches.next()
    {
        return Err(execution_error(e));
    }
    match format {
        Format::Parquet => {
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(PARQUET_ROW_GROUP))
                .build();
            let mut writer =
                ArrowWriter::try_new(out, Arc::clone(&schema), Some(props)).map_err(|e| {
                    QueryError::Failed(format!("this result cannot be written as Parquet: {e}"))
                })?;
            announce(started);
            for batch in batches {
                // The writer hands finished row groups to the channel as they fill.
                writer
                    .write(&batch.map_err(execution_error)?)
                    .map_err(parquet_error)?;
            }
            writer
                .into_inner()
                .map_err(parquet_error)?
                .flush()
                .map_err(io_error)
        }
        Format::Csv | Format::Ndjson => {
            announce(started);
            write_text(batches, &schema, format, options, out)
        }
    }
}

fn announce(started: &mut Option<oneshot::Sender<Result<(), QueryError>>>) {
    if let Some(s) = started.take() {
        let _ = s.send(Ok(()));
    }
}

fn parquet_error(e: parquet::errors::ParquetError) -> QueryError {
    QueryError::Failed(format!("parquet: {e}"))
}

fn io_error(e: std::io::Error) -> QueryError {
    QueryError::Failed(format!("export stopped: {e}"))
}

fn write_text(
    batches: impl Iterator<Item = duckdb::Result<arrow::array::RecordBatch>>,
    schema: &SchemaRef,
    format: Format,
    options: TextOptions,
    mut out: ChannelWriter,
) -> Result<(), QueryError> {
    if format == Format::Csv {
        for (i, field) in schema.fields().iter().enumerate() {
            if i > 0 {
                out.buf.push(b',');
            }
            csv_string(&mut out.buf, field.name());
        }
        out.buf.extend_from_slice(b"\r\n");
    }
    // NDJSON object keys, escaped once.
    let keys: Vec<Vec<u8>> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut k = Vec::new();
            json_string(&mut k, f.name());
            k.push(b':');
            k
        })
        .collect();
    for batch in batches {
        let batch = batch.map_err(execution_error)?;
        let columns = batch.columns();
        for row in 0..batch.num_rows() {
            if format == Format::Csv {
                for (c, col) in columns.iter().enumerate() {
                    if c > 0 {
                        out.buf.push(b',');
                    }
                    let start = out.buf.len();
                    write_csv(&mut out.buf, col.as_ref(), row);
                    if options.escape_formulas && is_text(col.data_type()) {
                        escape_formula(&mut out.buf, start);
                    }
                }
                out.buf.extend_from_slice(b"\r\n");
            } else {
                out.buf.push(b'{');
                for (c, col) in columns.iter().enumerate() {
                    if c > 0 {
                        out.buf.push(b',');
                    }
                    out.buf.extend_from_slice(&keys[c]);
                    write_json(&mut out.buf, col.as_ref(), row);
                }
                out.buf.extend_from_slice(b"}\n");
            }
        }
        out.maybe_send().map_err(io_error)?;
    }
    out.flush().map_err(io_error)
}

fn is_text(t: &arrow::datatypes::DataType) -> bool {
    use arrow::datatypes::DataType;
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_text(values),
        _ => false,
    }
}

/// A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is run as a
/// formula by spreadsheets (CSV injection): it gets a leading `'`, inside its quotes if it
/// was quoted. `cell` is where the cell's bytes start in `buf`.
fn escape_formula(buf: &mut Vec<u8>, cell: usize) {
    let quoted = buf.get(cell) == Some(&b'"');
    let first = if quoted { cell + 1 } else { cell };
    if matches!(
        buf.get(first),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    ) {
        buf.insert(first, b'\'');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_escaped() {
        for (cell, expected) in [
            ("=1+2", "'=1+2"),
            ("\"=HYPERLINK(\"\"x\"\")\"", "\"'=HYPERLINK(\"\"x\"\")\""),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("-3", "'-3"),
            ("\"\tx\"", "\"'\tx\""),
            ("plain", "plain"),
            ("", ""),
        ] {
            let mut buf = b"a,".to_vec();
            buf.extend_from_slice(cell.as_bytes());
            escape_formula(&mut buf, 2);
            assert_eq!(String::from_utf8(buf).unwrap(), format!("a,{expected}"));
        }
    }

    #[test]
    fn formats_parse_case_insensitively() {
        assert_eq!(Format::parse("CSV").unwrap(), Format::Csv);
        assert_eq!(Format::parse("jsonl").unwrap(), Format::Ndjson);
        assert!(matches!(
            Format::parse("xls"),
            Err(QueryError::UnknownFormat(_))
        ));
    }
}
