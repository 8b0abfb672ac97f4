//! Layer 2 of Kura's query lockdown, inside DuckDB (see `src/guard.cpp`).
//!
//! DuckDB's settings are instance-wide, and an instance may always reach its own database
//! files even with `enable_external_access` off, so Kura's query connections — connections
//! of the writer's own instance — need a guard of their own: [`Database::lock`] gives a
//! connection a file system that refuses every file, and makes the engine refuse, after
//! binding, any statement but a read-only query and any plan that writes, calls a table
//! function outside a short allowlist, or reads settings and variables.
//!
//! The FFI lives in this crate so that Kura itself keeps `unsafe_code = "forbid"`.

use std::ffi::{CStr, CString, c_char};
use std::path::Path;

use duckdb::Connection;
use libduckdb_sys as ffi;

unsafe extern "C" {
    fn kura_guard_install(db: ffi::duckdb_database, error: *mut c_char, error_len: usize) -> i32;
    fn kura_guard_lock_connection(
        db: ffi::duckdb_database,
        connection_id: u64,
        error: *mut c_char,
        error_len: usize,
    ) -> i32;
}

/// An open DuckDB instance with the guard installed.
///
/// Connections keep the instance alive by themselves; this handle is needed for
/// [`Connection::try_clone`] (duckdb-rs opens clones through it) and for [`Database::lock`],
/// so it must outlive every call of either: keep it beside the connections and drop it last.
pub struct Database {
    raw: ffi::duckdb_database,
}

// SAFETY: the handle is a pointer to DuckDB's `DatabaseWrapper` (a `shared_ptr<DuckDB>`),
// which DuckDB lets any thread connect through; it is only read until `Drop`.
unsafe impl Send for Database {}
// SAFETY: as above; nothing mutates the wrapper through a shared reference.
unsafe impl Sync for Database {}

impl Database {
    /// Opens (or creates) the database at `path` with `options` (DuckDB setting name and
    /// value, given at instance creation), installs the guard's plan check and returns the
    /// first connection.
    pub fn open(path: &Path, options: &[(&str, String)]) -> Result<(Self, Connection), String> {
        let path = path_cstring(path)?;
        let mut config: ffi::duckdb_config = std::ptr::null_mut();
        // SAFETY: `config` is a valid out-pointer; it is destroyed below on every path.
        if unsafe { ffi::duckdb_create_config(&mut config) } != ffi::DuckDBSuccess {
            return Err("could not create a DuckDB configuration".into());
        }
        let result = (|| {
            for (name, value) in options {
                let (n, v) = (cstring(name)?, cstring(value)?);
                // SAFETY: `config` is live; the strings outlive the call.
                if unsafe { ffi::duckdb_set_config(config, n.as_ptr(), v.as_ptr()) }
                    != ffi::DuckDBSuccess
                {
                    return Err(format!("DuckDB refused the setting {name} = {value}"));
                }
            }
            let mut raw: ffi::duckdb_database = std::ptr::null_mut();
            let mut error: *mut c_char = std::ptr::null_mut();
            // SAFETY: all pointers are valid; `error` is freed with duckdb_free if set.
            let state = unsafe { ffi::duckdb_open_ext(path.as_ptr(), &mut raw, config, &mut error) };
            if state != ffi::DuckDBSuccess {
                let message = if error.is_null() {
                    "DuckDB could not open the database".to_owned()
                } else {
                    // SAFETY: DuckDB wrote a NUL-terminated message it allocated.
                    let text = unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned();
                    // SAFETY: allocated by DuckDB, freed once.
                    unsafe { ffi::duckdb_free(error.cast()) };
                    text
                };
                if !raw.is_null() {
                    // SAFETY: a wrapper DuckDB created; closed once.
                    unsafe { ffi::duckdb_close(&mut raw) };
                }
                return Err(message);
            }
            Ok(Self { raw })
        })();
        // SAFETY: created above, destroyed once.
        unsafe { ffi::duckdb_destroy_config(&mut config) };
        let db = result?;
        call(|buf, len| {
            // SAFETY: `db.raw` is an open database; `buf` has room for `len` bytes.
            unsafe { kura_guard_install(db.raw, buf, len) }
        })?;
        // SAFETY: `db.raw` is an open database that outlives the connection's clones (see
        // the type's documentation); duckdb-rs does not close it on drop.
        let conn = unsafe { Connection::open_from_raw(db.raw) }.map_err(|e| e.to_string())?;
        Ok((db, conn))
    }

    /// Locks `conn` (a connection of this database) down for user SQL: no file access at
    /// all, only read-only queries, and the plan check. Irreversible.
    pub fn lock(&self, conn: &Connection) -> Result<(), String> {
        let id: u64 = conn
            .query_row("SELECT current_connection_id()::UBIGINT", [], |r| r.get(0))
            .map_err(|e| format!("reading the connection id: {e}"))?;
        call(|buf, len| {
            // SAFETY: `self.raw` is an open database; `buf` has room for `len` bytes.
            unsafe { kura_guard_lock_connection(self.raw, id, buf, len) }
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // SAFETY: opened in `open`, closed once; live connections keep the instance itself.
        unsafe { ffi::duckdb_close(&mut self.raw) };
    }
}

fn call(f: impl FnOnce(*mut c_char, usize) -> i32) -> Result<(), String> {
    let mut buf = vec![0u8; 512];
    if f(buf.as_mut_ptr().cast(), buf.len()) == 0 {
        return Ok(());
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Err(String::from_utf8_lossy(&buf[..end]).into_owned())
}

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"))
}

fn path_cstring(path: &Path) -> Result<CString, String> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{} contains a NUL byte", path.display()))
}
