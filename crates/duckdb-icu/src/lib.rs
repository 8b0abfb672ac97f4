//! DuckDB's ICU extension, linked statically.
//!
//! The bundled engine of `libduckdb-sys` leaves ICU out (the crate registry's size limit), and
//! without it DuckDB has no time zones: `current_date`, `now() - INTERVAL 1 DAY`,
//! `date_trunc` on a `TIMESTAMP WITH TIME ZONE`, `::DATE` casts of one, `AT TIME ZONE`… all
//! fail. DuckDB 2.0's ICU extension no longer needs the ICU library: it carries its own
//! calendars and the IANA and CLDR data, compressed, in about 4 MB of C++. This crate compiles
//! those sources of the exact engine version (vendored under `icu/` from the PyPI source
//! distribution of `duckdb` 2.0.0, with DuckDB's MIT licence) and registers them with DuckDB's
//! static-extension registry, so every database opened afterwards has the extension loaded,
//! with nothing downloaded or installed and no file read at run time.

use std::sync::OnceLock;

// The registry and the engine the extension is compiled against.
use libduckdb_sys as _;

unsafe extern "C" {
    fn kura_duckdb_icu_register() -> i32;
}

/// Registers the ICU extension for every DuckDB database this process opens from now on.
/// Call it before opening one; calling it again is free.
pub fn register() -> Result<(), String> {
    static REGISTERED: OnceLock<i32> = OnceLock::new();
    // SAFETY: the registration takes DuckDB's registry lock and copies what the describe
    // function reports; it has no other precondition.
    let status = *REGISTERED.get_or_init(|| unsafe { kura_duckdb_icu_register() });
    if status == 0 {
        Ok(())
    } else {
        Err("DuckDB refused to register the ICU extension (the reason is reported when a database opens)".into())
    }
}
