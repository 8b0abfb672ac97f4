//! Sources: folders of files that become tables.
//!
//! `registry` says which sources exist and which files they hold; `sync` plans per file
//! what to do from the disk and the `ledger` (`_kura.files`, in the warehouse; its only
//! owner) and runs `load` (one DuckDB transaction per file, on the single writer) for the
//! new and changed ones; `repo` keeps the sync history (metadata store); `handlers` is the
//! HTTP surface.

pub mod excel;
pub mod formats;
pub mod handlers;
pub mod inflight;
pub mod ledger;
pub mod load;
pub mod naming;
pub mod pages;
pub mod registry;
pub mod repo;
pub(crate) mod staging;
pub mod sync;
pub mod views;
