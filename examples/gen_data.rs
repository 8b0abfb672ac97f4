//! Test data generator: orders-like rows as CSV or NDJSON, deterministic for a given size.
//!
//! ```sh
//! cargo run --release --example gen_data -- csv 1000000 /tmp/orders_1m.csv     # ~70 MB
//! cargo run --release --example gen_data -- csv 5000000 /tmp/orders_5m.csv     # ~350 MB
//! cargo run --release --example gen_data -- ndjson 1000000 /tmp/orders_1m.ndjson
//! ```
//!
//! The benchmarks include this file (`#[path]`) and call [`write`] directly.

use std::io::{BufWriter, Write};
use std::path::Path;

const REGIONS: [&str; 6] = ["north", "south", "east", "west", "central", "online"];
const PRODUCTS: [&str; 8] = [
    "widget",
    "gadget",
    "doohickey",
    "gizmo",
    "sprocket",
    "flange",
    "grommet",
    "ratchet",
];

/// Writes `rows` rows to `path` as `csv` or `ndjson`; about 70 bytes a row as CSV.
pub(crate) fn write(format: &str, rows: u64, path: &Path) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    if format == "csv" {
        writeln!(
            out,
            "order_id,customer_id,region,product,quantity,unit_price,ordered_at,note"
        )?;
    }
    // A small deterministic generator (xorshift), so every run writes the same file.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..rows {
        let r = next();
        let customer = r % 50_000;
        let region = REGIONS[(r >> 20) as usize % REGIONS.len()];
        let product = PRODUCTS[(r >> 24) as usize % PRODUCTS.len()];
        let qty = 1 + (r >> 28) % 20;
        let price = ((r >> 32) % 100_000) as f64 / 100.0;
        let day = 1 + (r >> 40) % 28;
        let month = 1 + (r >> 45) % 12;
        let (h, m, s) = ((r >> 50) % 24, (r >> 55) % 60, (r >> 58) % 60);
        if format == "csv" {
            writeln!(
                out,
                "{i},{customer},{region},{product},{qty},{price:.2},2024-{month:02}-{day:02} {h:02}:{m:02}:{s:02},ok"
            )?;
        } else {
            writeln!(
                out,
                "{{\"order_id\":{i},\"customer_id\":{customer},\"region\":\"{region}\",\"product\":\"{product}\",\"quantity\":{qty},\"unit_price\":{price:.2},\"ordered_at\":\"2024-{month:02}-{day:02} {h:02}:{m:02}:{s:02}\",\"note\":\"ok\"}}"
            )?;
        }
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

#[allow(
    dead_code,
    reason = "the benchmarks include this file for `write` only"
)]
fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(format), Some(rows), Some(path)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: gen_data <csv|ndjson> <rows> <output file>");
        std::process::exit(2);
    };
    let rows: u64 = rows
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("rows: {e}")))?;
    if format != "csv" && format != "ndjson" {
        eprintln!("format must be csv or ndjson");
        std::process::exit(2);
    }
    let bytes = write(format, rows, Path::new(path))?;
    println!("wrote {rows} rows, {:.1} MB, to {path}", bytes as f64 / 1e6);
    Ok(())
}
