//! The two stores: the DuckDB warehouse (data) and the SQLite metadata store.
//! This is the only module that opens database connections.

pub mod lane;
pub mod meta;
pub mod warehouse;
