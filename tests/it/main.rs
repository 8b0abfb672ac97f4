//! The one integration-test binary: a real server on 127.0.0.1:0 per test, driven over HTTP.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers fail loudly, like the tests"
)]

mod accounts;
mod browser;
mod cli;
mod contract;
mod corpus;
mod harness;
mod ingest;
mod live;
mod models;
mod platform;
mod query;
mod schedules;
mod security;
mod webdriver;
mod xlsx;
