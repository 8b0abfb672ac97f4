//! Project configuration: `project.yml` → [`Config`].
//!
//! Precedence is defaults < `project.yml` < environment (`KURA__SECTION__KEY`) < CLI flags.
//! Every section denies unknown keys, and every error names the file and the key path
//! (`api.query_timeout_seconds`), so a typo is never silently ignored. The config is
//! validated once at startup and is immutable afterwards.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Prefix of environment variables that override `project.yml` keys; `__` separates levels.
pub(crate) const ENV_PREFIX: &str = "KURA__";

/// The whole project configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub project: ProjectSection,
    pub platform: PlatformSection,
    pub warehouse: WarehouseSection,
    pub api: ApiSection,
    pub auth: AuthSection,
    pub models: ModelsSection,
    /// Sources declared explicitly; sub-folders of the watched folders need no entry.
    pub(crate) sources: Vec<SourceConfig>,
    /// The project directory; not part of the file, set by [`Config::load`].
    #[serde(skip)]
    pub root: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectSection {
    /// Shown in the UI and in `/api/config`.
    pub(crate) name: String,
    pub(crate) description: String,
    /// The time zone of SQL sessions (an IANA name such as `Europe/Berlin`): what
    /// `current_date`, `::DATE` of a `TIMESTAMP WITH TIME ZONE` and `date_trunc` use.
    pub timezone: String,
}

impl Default for ProjectSection {
    fn default() -> Self {
        Self {
            name: "kura-project".into(),
            description: String::new(),
            timezone: "UTC".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PlatformSection {
    pub port: u16,
    /// Address to bind; loopback by default so a fresh project is never exposed.
    pub bind: IpAddr,
    /// Folders watched for files, relative to the project directory.
    pub(crate) watch_directories: Vec<PathBuf>,
    /// A file is loaded once its size and mtime have not changed for this long.
    pub debounce_ms: u64,
}

impl Default for PlatformSection {
    fn default() -> Self {
        Self {
            port: 8800,
            bind: IpAddr::from([127, 0, 0, 1]),
            watch_directories: vec![PathBuf::from("data/uploads")],
            debounce_ms: 500,
        }
    }
}

/// How a source treats a changed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Mode {
    /// A changed file's rows replace the rows loaded from it before.
    #[default]
    Replace,
    /// A changed file's rows are added; earlier loads stay.
    Append,
}

/// What happens to a deleted file's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OnDelete {
    #[default]
    Remove,
    Keep,
}

/// The only source type so far: files in a local directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SourceType {
    LocalFiles,
}

/// A source declared in `project.yml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceConfig {
    /// Lowercase letters, digits and `_`; the table is `raw_<name>.<name>`.
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) kind: SourceType,
    /// Relative to the project directory.
    pub(crate) directory: PathBuf,
    /// File-name pattern (`*` and `?`), e.g. `*.csv`.
    #[serde(default = "any_file")]
    pub(crate) pattern: String,
    #[serde(default)]
    pub(crate) mode: Mode,
    #[serde(default)]
    pub(crate) on_delete: OnDelete,
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
}

fn any_file() -> String {
    "*".into()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WarehouseSection {
    /// DuckDB file, relative to the project directory.
    pub(crate) path: PathBuf,
    /// DuckDB `memory_limit` (e.g. `512MB`, `2GB`).
    pub(crate) memory_limit: String,
    /// DuckDB worker threads; 0 means one per core.
    pub(crate) threads: u32,
    /// DuckDB `max_temp_directory_size`: how much a query may spill to disk.
    pub(crate) max_temp_directory_size: String,
    /// DuckDB `max_expression_depth`: bounds deeply nested user expressions.
    pub(crate) max_expression_depth: u32,
    /// The process's resident memory above which running queries are stopped (DuckDB's
    /// `memory_limit` does not cover every allocation). Empty: twice `memory_limit`.
    pub max_process_memory: String,
}

impl WarehouseSection {
    /// The memory watchdog's ceiling, in bytes.
    pub(crate) fn process_memory_ceiling(&self) -> u64 {
        parse_size(&self.max_process_memory)
            .or_else(|| parse_size(&self.memory_limit).map(|b| b.saturating_mul(2)))
            .unwrap_or(1 << 30)
    }
}

impl Default for WarehouseSection {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/warehouse.duckdb"),
            memory_limit: "512MB".into(),
            threads: 0,
            max_temp_directory_size: "10GB".into(),
            max_expression_depth: 1000,
            max_process_memory: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// Rows returned by `POST /api/query`; more set `truncated: true`.
    pub(crate) max_query_rows: usize,
    /// Largest SQL text accepted, in bytes.
    pub(crate) max_sql_bytes: usize,
    /// A query running longer is interrupted and answered with 408.
    pub query_timeout_seconds: u64,
    /// Threads running user queries, each with its own DuckDB connection.
    pub query_workers: usize,
    /// Queries waiting for a worker before new ones get 503 `busy`.
    pub query_queue: usize,
    /// An export (no row cap) running longer than this is stopped.
    pub(crate) export_timeout_seconds: u64,
    /// Largest file accepted by the upload endpoint, in MiB (413 beyond).
    pub max_upload_mb: u64,
    /// Memory for answers of repeated deterministic queries, in MiB (0: no cache).
    pub result_cache_mb: u64,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self {
            max_query_rows: 10_000,
            max_sql_bytes: 100 * 1024,
            query_timeout_seconds: 30,
            query_workers: 2,
            query_queue: 64,
            export_timeout_seconds: 3600,
            max_upload_mb: 1024,
            result_cache_mb: 64,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsSection {
    /// A view `staging.stg_<source>__<table>` per source table: its columns without
    /// Kura's `_kura_*` ones, kept in step with the table.
    pub generate_staging: bool,
    /// Where the models project lives (its `dbt_project.yml`, `models/`, `macros/`,
    /// `seeds/`, `tests/`), relative to the project directory.
    pub project_dir: String,
    /// After a source's load commits, run the models downstream of it.
    pub run_after_sync: bool,
    /// Loads within this many milliseconds of each other give one run.
    pub coalesce_ms: u64,
}

impl Default for ModelsSection {
    fn default() -> Self {
        Self {
            generate_staging: true,
            project_dir: ".".into(),
            run_after_sync: true,
            coalesce_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// Off is allowed only on a loopback bind, where Kura acts as a local admin.
    pub enabled: bool,
    /// Everyone must enrol TOTP two-factor before they can do anything else.
    pub require_2fa: bool,
    /// A session unused this long ends.
    pub(crate) session_idle_minutes: u64,
    /// A session ends this long after sign-in, however busy.
    pub(crate) session_max_hours: u64,
    /// Failed sign-ins for one email before it is locked.
    pub lockout_attempts: u32,
    pub(crate) lockout_minutes: u64,
    /// Requests that test a credential (sign-in, 2FA code, invitation, password change)
    /// per client address.
    pub rate_limit_per_minute: u32,
    pub rate_limit_burst: u32,
    /// How long an invitation link stays valid.
    pub(crate) invite_hours: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            enabled: true,
            require_2fa: false,
            session_idle_minutes: 8 * 60,
            session_max_hours: 7 * 24,
            lockout_attempts: 5,
            lockout_minutes: 15,
            rate_limit_per_minute: 300,
            rate_limit_burst: 10,
            invite_hours: 72,
        }
    }
}

/// A configuration problem, always naming where it was found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: PathBuf, message: String },
}

impl Config {
    /// Loads `<root>/project.yml` with environment overrides from the process environment.
    pub fn load(root: &Path) -> Result<Self, ConfigError> {
        Self::load_with_env(root, std::env::vars())
    }

    /// Loads `<root>/project.yml`, applying `KURA__...` overrides from `env`.
    pub fn load_with_env(
        root: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let file = root.join("project.yml");
        let text = std::fs::read_to_string(&file).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let mut config = Self::parse(&text, env).map_err(|message| ConfigError::Invalid {
            file: file.clone(),
            message,
        })?;
        // Absolute, so paths the watcher reports (always absolute) match source folders
        // even when the project was named relatively (`kura serve examples/shop`).
        config.root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        config
            .validate()
            .map_err(|message| ConfigError::Invalid { file, message })?;
        Ok(config)
    }

    /// Parses YAML text plus overrides; the error names the key path.
    fn parse(text: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, String> {
        let overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        if overrides.is_empty() {
            // Straight from the text, so errors carry line and column as well as the path.
            let de = serde_yaml::Deserializer::from_str(text);
            return serde_path_to_error::deserialize(de).map_err(describe_path_error);
        }
        let mut value: serde_yaml::Value = if text.trim().is_empty() {
            serde_yaml::Value::Null
        } else {
            serde_yaml::from_str(text).map_err(|e| e.to_string())?
        };
        for (key, raw) in overrides {
            apply_override(&mut value, &key, &raw)?;
        }
        serde_path_to_error::deserialize(value).map_err(describe_path_error)
    }

    /// Checks values that types alone cannot.
    fn validate(&self) -> Result<(), String> {
        let w = &self.warehouse;
        check_size("warehouse.memory_limit", &w.memory_limit)?;
        if !w.max_process_memory.is_empty() {
            check_size("warehouse.max_process_memory", &w.max_process_memory)?;
        }
        check_size(
            "warehouse.max_temp_directory_size",
            &w.max_temp_directory_size,
        )?;
        if !(16..=100_000).contains(&w.max_expression_depth) {
            return Err("warehouse.max_expression_depth: must be between 16 and 100000".into());
        }
        if w.path.as_os_str().is_empty() {
            return Err("warehouse.path: must not be empty".into());
        }
        let a = &self.api;
        if a.max_query_rows == 0 {
            return Err("api.max_query_rows: must be at least 1".into());
        }
        if a.max_sql_bytes < 16 {
            return Err("api.max_sql_bytes: must be at least 16".into());
        }
        if a.query_timeout_seconds == 0 {
            return Err("api.query_timeout_seconds: must be at least 1".into());
        }
        if !(1..=64).contains(&a.query_workers) {
            return Err("api.query_workers: must be between 1 and 64".into());
        }
        if a.export_timeout_seconds == 0 {
            return Err("api.export_timeout_seconds: must be at least 1".into());
        }
        if a.query_queue == 0 {
            return Err("api.query_queue: must be at least 1".into());
        }
        if a.max_upload_mb == 0 {
            return Err("api.max_upload_mb: must be at least 1".into());
        }
        let u = &self.auth;
        if u.session_idle_minutes == 0 || u.session_max_hours == 0 {
            return Err(
                "auth.session_idle_minutes / auth.session_max_hours: must be at least 1".into(),
            );
        }
        if u.lockout_attempts == 0 || u.lockout_minutes == 0 {
            return Err("auth.lockout_attempts / auth.lockout_minutes: must be at least 1".into());
        }
        if u.rate_limit_per_minute == 0 || u.rate_limit_burst == 0 {
            return Err(
                "auth.rate_limit_per_minute / auth.rate_limit_burst: must be at least 1".into(),
            );
        }
        if u.invite_hours == 0 {
            return Err("auth.invite_hours: must be at least 1".into());
        }
        self.check_exposure()?;
        let p = &self.platform;
        if !(50..=600_000).contains(&p.debounce_ms) {
            return Err("platform.debounce_ms: must be between 50 and 600000".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            let valid = s.name.starts_with(|c: char| c.is_ascii_lowercase())
                && s.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(format!(
                    "sources[{i}].name: {:?} must start with a letter and use only a-z, 0-9 and _",
                    s.name
                ));
            }
            if !names.insert(s.name.as_str()) {
                return Err(format!("sources[{i}].name: {:?} is declared twice", s.name));
            }
            if s.directory.as_os_str().is_empty() {
                return Err(format!("sources[{i}].directory: must not be empty"));
            }
        }
        Ok(())
    }

    /// Auth may be off only while nothing beyond this machine can connect. Checked at load
    /// and again at serve time, after command-line flags changed the bind address.
    pub(crate) fn check_exposure(&self) -> Result<(), String> {
        if !self.auth.enabled && !self.platform.bind.is_loopback() {
            return Err(format!(
                "auth.enabled: false is allowed only on a loopback address, and platform.bind is {}; \
                 turn auth on or bind to 127.0.0.1",
                self.platform.bind
            ));
        }
        Ok(())
    }

    /// Absolute path of the warehouse file.
    pub(crate) fn warehouse_path(&self) -> PathBuf {
        self.root.join(&self.warehouse.path)
    }

    /// The models project's folder (`models.project_dir`).
    pub(crate) fn models_dir(&self) -> PathBuf {
        self.root.join(&self.models.project_dir)
    }

    /// The `.kura` folder: metadata, staging, the serve lock.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".kura")
    }
}

fn describe_path_error(e: serde_path_to_error::Error<serde_yaml::Error>) -> String {
    let path = e.path().to_string();
    let inner = e.inner().to_string();
    // serde_yaml names the path itself when it read the text (with the line); a Value
    // merged with environment overrides has no path of its own, so add ours.
    let first = path.split(['.', '[']).next().unwrap_or("");
    if path.is_empty()
        || path == "."
        || inner.starts_with(&format!("{first}:"))
        || inner.starts_with(&format!("{first}."))
    {
        inner
    } else {
        format!("{path}: {inner}")
    }
}

/// Sets `KURA__API__QUERY_TIMEOUT_SECONDS=5` as `api.query_timeout_seconds: 5`.
fn apply_override(root: &mut serde_yaml::Value, key: &str, raw: &str) -> Result<(), String> {
    use serde_yaml::{Mapping, Value};
    let parts: Vec<String> = key[ENV_PREFIX.len()..]
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect();
    if parts.iter().any(String::is_empty) {
        return Err(format!("environment variable {key}: empty key segment"));
    }
    // The value is read as a YAML scalar so numbers and booleans keep their types.
    let parsed: Value = serde_yaml::from_str(raw).unwrap_or_else(|_| Value::String(raw.into()));
    let mut node = root;
    for (i, part) in parts.iter().enumerate() {
        if node.is_null() {
            *node = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(map) = node else {
            return Err(format!(
                "environment variable {key}: {} is not a section",
                parts[..i].join(".")
            ));
        };
        let k = Value::String(part.clone());
        if i + 1 == parts.len() {
            map.insert(k, parsed);
            return Ok(());
        }
        node = map.entry(k).or_insert(Value::Null);
    }
    Ok(())
}

/// Accepts DuckDB size strings such as `512MB`, `1.5GB`, `2GiB`.
fn check_size(key: &str, value: &str) -> Result<(), String> {
    match parse_size(value) {
        Some(_) => Ok(()),
        None => Err(format!("{key}: {value:?} is not a size like 512MB or 2GB")),
    }
}

/// A size like `512MB`, `2GB` or `1GiB` in bytes (DuckDB's units: KB = 1000, KiB = 1024).
pub(crate) fn parse_size(value: &str) -> Option<u64> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let factor: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KIB" => 1024.0,
        "MIB" => 1024.0 * 1024.0,
        "GIB" => 1024.0 * 1024.0 * 1024.0,
        "TIB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let n: f64 = number.parse().ok().filter(|n: &f64| *n > 0.0)?;
    Some((n * factor) as u64)
}

/// A JSON view of the config for `/api/config`, with anything secret-looking masked.
pub(crate) fn masked_json(config: &Config) -> serde_json::Value {
    let mut value = serde_json::to_value(config).unwrap_or(serde_json::Value::Null);
    mask_secrets(&mut value);
    value
}

fn mask_secrets(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let k = k.to_ascii_lowercase();
                let secret = ["password", "secret", "token", "api_key", "credential"]
                    .iter()
                    .any(|s| k.contains(s));
                if secret && !v.is_null() {
                    *v = Value::String("********".into());
                } else {
                    mask_secrets(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Vec::new())
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_names_its_path() {
        let err = parse("api:\n  query_timeout_secs: 5\n").unwrap_err();
        assert!(err.starts_with("api:"), "{err}");
        assert!(err.contains("unknown field `query_timeout_secs`"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn bad_value_names_its_path() {
        let err = parse("platform:\n  port: eighty\n").unwrap_err();
        assert!(err.starts_with("platform.port:"), "{err}");
    }

    #[test]
    fn environment_overrides_file() {
        let env = vec![
            (
                "KURA__API__QUERY_TIMEOUT_SECONDS".to_owned(),
                "5".to_owned(),
            ),
            ("KURA__PLATFORM__BIND".to_owned(), "0.0.0.0".to_owned()),
            ("OTHER".to_owned(), "x".to_owned()),
        ];
        let c = Config::parse("api:\n  query_timeout_seconds: 9\n", env).unwrap();
        assert_eq!(c.api.query_timeout_seconds, 5);
        assert_eq!(c.platform.bind.to_string(), "0.0.0.0");
    }

    #[test]
    fn environment_typo_is_an_error() {
        let env = vec![("KURA__API__TIMEOUT".to_owned(), "5".to_owned())];
        let err = Config::parse("", env).unwrap_err();
        assert!(err.contains("api") && err.contains("timeout"), "{err}");
    }

    #[test]
    fn sizes_are_checked() {
        assert!(check_size("k", "512MB").is_ok());
        assert!(check_size("k", "1.5 GiB").is_ok());
        assert!(check_size("k", "lots").is_err());
        assert!(check_size("k", "0GB").is_err());
    }

    #[test]
    fn secrets_are_masked() {
        let mut v = serde_json::json!({"a": {"db_password": "x", "port": 1}, "api_key": "k"});
        mask_secrets(&mut v);
        assert_eq!(v["a"]["db_password"], "********");
        assert_eq!(v["a"]["port"], 1);
        assert_eq!(v["api_key"], "********");
    }
}
