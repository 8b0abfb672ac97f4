//! Sources: folders of files that become tables.
//!
//! `registry` says which sources exist and which files they hold; `sync` decides per file
//! what to do and runs `load` (one DuckDB transaction per file, on the single writer) for
//! the new and changed ones; `repo` keeps the sync history (metadata store) and reads the
//! load ledger (`_kura.files`, in the warehouse); `handlers` is the HTTP surface.

pub mod excel;
pub mod formats;
pub mod handlers;
pub mod inflight;
pub mod load;
pub mod naming;
pub mod pages;
pub mod registry;
pub mod repo;
pub mod sync;
pub mod views;
