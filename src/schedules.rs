//! Schedules from `schedules.yml`: the file's format and checks, and cron timing.
//!
//! Parsing and validation (`file`, `cron`), and running them on an injectable clock with
//! their history (`runner`, `handlers`).

pub mod clock;
pub mod cron;
pub mod file;
pub mod handlers;
pub mod notify;
pub mod page;
pub mod repo;
pub mod runner;

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::config::Config;

pub fn file_path(config: &Config) -> PathBuf {
    config.root.join("schedules.yml")
}

/// Reads and validates the project's `schedules.yml` against its sources now on disk.
pub fn load(config: &Config) -> Result<file::Schedules, Vec<String>> {
    let path = file_path(config);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(vec![format!("cannot read {}: {e}", path.display())]),
    };
    let sources: BTreeSet<String> = crate::sources::registry::discover(config)
        .into_keys()
        .collect();
    file::parse(&text, &sources)
}
