//! Running a user query on an interactive worker (runs on `warehouse-q-*` threads).
//!
//! Every user statement runs inside `BEGIN TRANSACTION READ ONLY` and is rolled back
//! afterwards, so the connection holds nothing between jobs. Results are streamed from
//! DuckDB and only `max_rows + 1` rows are ever fetched: the extra row says "truncated"
//! without materialising the rest.

use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use duckdb::Connection;

use super::values::{json_string, type_name, write_json};
use super::{Gate, QueryError};
use crate::db::warehouse::{JobControl, QueryConn};

/// A kept read-only transaction is renewed at least this often, so a worker's snapshot is
/// never old even if the generation check were to miss a change.
const MAX_TRANSACTION_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs `f` inside a read-only transaction with the job's statement marked interruptible.
///
/// `BEGIN` and `ROLLBACK` cost DuckDB more than a small query does, so a worker keeps its
/// read-only transaction open between queries while the warehouse has not changed: the
/// single writer bumps a generation counter after every job, and a transaction begun at
/// an older generation (or over a second ago, or after any error) is rolled back and begun
/// anew. The worker closes it when idle for 200 ms, so it never holds back a checkpoint.
pub fn in_read_only_transaction<R>(
    qc: &QueryConn,
    control: &JobControl,
    f: impl FnOnce(&Connection) -> Result<R, QueryError>,
) -> Result<R, QueryError> {
    if !control.statement_started(qc) {
        return Err(QueryError::Failed("the query was cancelled".into()));
    }
    let generation = qc.warehouse_generation();
    let fresh = qc
        .open_transaction
        .get()
        .is_some_and(|(g, since)| g == generation && since.elapsed() < MAX_TRANSACTION_AGE);
    let begun = if fresh {
        Ok(())
    } else {
        qc.end_kept_transaction();
        let begun = qc
            .conn
            .execute_batch("BEGIN TRANSACTION READ ONLY")
            .map_err(|e| QueryError::Failed(e.to_string()));
        if begun.is_ok() {
            qc.open_transaction
                .set(Some((generation, std::time::Instant::now())));
        }
        begun
    };
    let result = begun.and_then(|()| f(&qc.conn));
    control.statement_finished();
    if result.is_err() {
        // The transaction is aborted (or the statement was interrupted): start clean.
        qc.end_transaction();
    }
    result
}

/// Maps an error from preparing `sql` (parse, bind, catalog) to `invalid_sql`, with the
/// position DuckDB marked in its message, if any.
pub(crate) fn prepare_error(e: duckdb::Error, sql: &str) -> QueryError {
    let message = e.to_string();
    QueryError::InvalidSql {
        position: caret_position(&message, sql),
        message,
    }
}

/// DuckDB points at a bind or catalog error with a `LINE n: <text>` line and a caret line
/// under it. Returns the byte offset into `sql` the caret marks, when the quoted text is
/// found on that line of `sql` (DuckDB shortens long lines, so the quote is searched for,
/// not assumed to start the line).
pub(crate) fn caret_position(message: &str, sql: &str) -> Option<usize> {
    let mut lines = message.lines();
    let (number, quoted, prefix_len) = lines.by_ref().find_map(|l| {
        let rest = l.strip_prefix("LINE ")?;
        let (number, quoted) = rest.split_once(": ")?;
        Some((
            number.parse::<usize>().ok()?,
            quoted,
            l.len() - quoted.len(),
        ))
    })?;
    let caret = lines.next()?.find('^')?.checked_sub(prefix_len)?;
    let quoted = quoted.trim_start_matches("...").trim_end_matches("...");
    let line_start: usize = sql
        .split('\n')
        .take(number.checked_sub(1)?)
        .map(|l| l.len() + 1)
        .sum();
    let line = sql.split('\n').nth(number - 1)?;
    let at = line.find(quoted)?;
    let shift = usize::from(message.contains(&format!(": ...{quoted}"))) * 3;
    let offset = line_start + at + caret.checked_sub(shift)?;
    (offset <= sql.len()).then_some(offset)
}

/// Maps an error while executing or fetching to `query_failed`.
pub(crate) fn execution_error(e: duckdb::Error) -> QueryError {
    QueryError::Failed(e.to_string())
}

/// A capped result: schema, batches with at most `max_rows` rows, and whether more existed.
pub(crate) struct Capped {
    pub(crate) schema: SchemaRef,
    pub(crate) batches: Vec<RecordBatch>,
    pub(crate) rows: usize,
    pub(crate) truncated: bool,
}

/// Runs `sql` (already through the gate) and fetches at most `max_rows` rows. Statements
/// are cached per worker connection: dashboards repeat their queries, and DuckDB's
/// parser is most of what a small query costs. DuckDB rebinds a cached statement by
/// itself when a table it reads has changed.
pub(crate) fn fetch_capped(
    conn: &Connection,
    sql: &str,
    max_rows: usize,
) -> Result<Capped, QueryError> {
    let mut stmt = conn
        .prepare_cached(sql)
        .map_err(|e| prepare_error(e, sql))?;
    let result = read_capped(&mut stmt, max_rows);
    // A result that was not read to its end (truncated, or failed mid-way) stays open in
    // the statement, and DuckDB refuses the connection's next query until it is destroyed:
    // such a statement leaves the cache instead of going back into it.
    if !matches!(&result, Ok(c) if !c.truncated) {
        stmt.discard();
    }
    result
}

fn read_capped(stmt: &mut duckdb::Statement<'_>, max_rows: usize) -> Result<Capped, QueryError> {
    let stream = stmt.stream_arrow([]).map_err(execution_error)?;
    let schema = stream.get_schema();
    let mut batches = Vec::new();
    let mut rows = 0usize;
    let mut truncated = false;
    for batch in stream {
        let batch = batch.map_err(execution_error)?;
        let room = max_rows - rows;
        if batch.num_rows() > room {
            truncated = true;
            if room > 0 {
                batches.push(batch.slice(0, room));
                rows += room;
            }
            break;
        }
        rows += batch.num_rows();
        batches.push(batch);
    }
    Ok(Capped {
        schema,
        batches,
        rows,
        truncated,
    })
}

/// A user query's answer, before its timing is added (see [`finish_json`]).
pub(crate) struct Answer {
    /// The JSON body up to `,"elapsed_ms":…}`.
    pub(crate) head: Vec<u8>,
    pub(crate) rows: usize,
    /// The gate found nothing volatile in the statement.
    pub(crate) deterministic: bool,
    /// The warehouse generation read before the transaction that answered began.
    pub(crate) generation: u64,
}

/// The whole `POST /api/query` job: gate, run, and the JSON answer.
pub(crate) fn run_to_json(
    qc: &QueryConn,
    control: &JobControl,
    gate: &Gate,
    sql: &str,
    max_rows: usize,
    owner: &str,
) -> Result<Answer, QueryError> {
    let checked = gate.check(&qc.conn, sql)?;
    qc.use_statement_cache_of(owner);
    let generation = qc.warehouse_generation();
    let capped = in_read_only_transaction(qc, control, |conn| {
        fetch_capped(conn, &checked.sql, max_rows)
    })?;
    Ok(Answer {
        head: result_head(&capped, max_rows),
        rows: capped.rows,
        deterministic: checked.deterministic,
        generation,
    })
}

/// [`run_to_json`] for a statement Kura wrote itself (a table preview): no gate.
pub(crate) fn run_trusted_to_json(
    qc: &QueryConn,
    control: &JobControl,
    sql: &str,
    max_rows: usize,
) -> Result<Vec<u8>, QueryError> {
    let started = Instant::now();
    qc.use_statement_cache_of("");
    let capped = in_read_only_transaction(qc, control, |conn| fetch_capped(conn, sql, max_rows))?;
    Ok(finish_json(&result_head(&capped, max_rows), started, None))
}

/// Completes an answer's head with `"elapsed_ms"` since `started` and, for user queries,
/// `"cached"`.
pub(crate) fn finish_json(head: &[u8], started: Instant, cached: Option<bool>) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + 40);
    out.extend_from_slice(head);
    out.extend_from_slice(b",\"elapsed_ms\":");
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    let mut ryu = ryu::Buffer::new();
    out.extend_from_slice(ryu.format((elapsed * 1000.0).round() / 1000.0).as_bytes());
    match cached {
        Some(true) => out.extend_from_slice(b",\"cached\":true}"),
        Some(false) => out.extend_from_slice(b",\"cached\":false}"),
        None => out.push(b'}'),
    }
    out
}

/// `{"columns", "column_types", "rows", "row_count", "truncated", "warning"`: the answer
/// without its timing, which is what the result cache keeps.
fn result_head(capped: &Capped, max_rows: usize) -> Vec<u8> {
    let fields = capped.schema.fields();
    let mut out = Vec::with_capacity(256 + capped.rows * fields.len() * 8);
    out.extend_from_slice(b"{\"columns\":[");
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_string(&mut out, f.name());
    }
    out.extend_from_slice(b"],\"column_types\":[");
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json_string(&mut out, &type_name(f.data_type()));
    }
    out.extend_from_slice(b"],\"rows\":[");
    let mut first = true;
    for batch in &capped.batches {
        let columns = batch.columns();
        for row in 0..batch.num_rows() {
            out.extend_from_slice(if first { b"[" } else { b",[" });
            first = false;
            for (c, col) in columns.iter().enumerate() {
                if c > 0 {
                    out.push(b',');
                }
                write_json(&mut out, col.as_ref(), row);
            }
            out.push(b']');
        }
    }
    let mut itoa = itoa::Buffer::new();
    out.extend_from_slice(b"],\"row_count\":");
    out.extend_from_slice(itoa.format(capped.rows).as_bytes());
    out.extend_from_slice(if capped.truncated {
        b",\"truncated\":true"
    } else {
        b",\"truncated\":false"
    });
    out.extend_from_slice(b",\"warning\":");
    if capped.truncated {
        let warning = format!(
            "the result has more than {max_rows} rows; only the first {max_rows} are shown — \
             use POST /api/query/export for all of them"
        );
        json_string(&mut out, &warning);
    } else {
        out.extend_from_slice(b"null");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::caret_position;

    #[test]
    fn the_caret_under_a_quoted_line_becomes_an_offset() {
        let sql = "SELECT region,\nFROM raw_sales.orders";
        let message = "Catalog Error: Table with name orders does not exist!\n\
                       Did you mean \"sales\"?\n\nLINE 2: FROM raw_sales.orders\n             ^";
        assert_eq!(caret_position(message, sql), Some(20));
        assert_eq!(&sql[20..], "raw_sales.orders");
        assert_eq!(caret_position("Binder Error: no line", sql), None);
        // A quote that is not in the SQL gives nothing.
        assert_eq!(
            caret_position("x\nLINE 1: SELECT zzz\n        ^", sql),
            None
        );
    }
}
