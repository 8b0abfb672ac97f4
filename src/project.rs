//! The project on disk: `kura init` writes the skeleton, [`ServeLock`] keeps a second
//! `kura serve` off the same project.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `project.yml` as `kura init` writes it: every key with its default, commented.
pub(crate) const PROJECT_YML: &str = include_str!("../project.yml.example");

/// What `kura init` puts in `models/`: (folder, file, text).
const EXAMPLE_MODELS: [(&str, &str, &str); 3] = [
    (
        "staging",
        "stg_calendar.sql",
        include_str!("project/init/stg_calendar.sql"),
    ),
    (
        "marts",
        "calendar_months.sql",
        include_str!("project/init/calendar_months.sql"),
    ),
    (
        "marts",
        "schema.yml",
        include_str!("project/init/schema.yml"),
    ),
];

const SCHEDULES_YML: &str = "\
# Schedules: when Kura syncs which sources, and whom it tells when something fails.
# This file is read at startup and again whenever it changes.
#
# schedules:
#   - name: nightly_sales        # lowercase letters, digits and _; unique
#     cron: \"0 2 * * *\"          # 5-field cron, or every_15m, every_hour, every_6h, daily, weekly
#     timezone: UTC
#     sources: [sales]
#     enabled: true
schedules: []
";

const GITIGNORE: &str = "\
# Kura's state: the warehouse, metadata and secrets stay on this machine.
.kura/
data/warehouse.duckdb
data/warehouse.duckdb.wal
.env
";

/// Why `kura init` stopped.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "{0} already holds a Kura project (project.yml exists); use --force to overwrite its \
         configuration files (data and metadata are kept)"
    )]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Creates the project skeleton in `dir` and returns the files written.
pub fn init(dir: &Path, force: bool) -> Result<Vec<PathBuf>, InitError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InitError::Io { path, source }
    };
    if dir.join("project.yml").exists() && !force {
        return Err(InitError::Exists(dir.to_path_buf()));
    }
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "kura-project".into());
    let mut written = Vec::new();
    for sub in ["data/uploads", "models", ".kura"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(io(&p))?;
    }
    let project = PROJECT_YML.replacen(
        "name: kura-project",
        &format!("name: {}", yaml_scalar(&name)),
        1,
    );
    for (file, text) in [
        ("project.yml", project.as_str()),
        ("schedules.yml", SCHEDULES_YML),
        (".gitignore", GITIGNORE),
    ] {
        let p = dir.join(file);
        std::fs::write(&p, text).map_err(io(&p))?;
        written.push(p);
    }
    // An example model per layer and their properties, unless the project has models.
    let models = dir.join("models");
    if std::fs::read_dir(&models).map_or(true, |mut d| d.next().is_none()) {
        for (sub, file, text) in EXAMPLE_MODELS {
            let folder = models.join(sub);
            std::fs::create_dir_all(&folder).map_err(io(&folder))?;
            let p = folder.join(file);
            std::fs::write(&p, text).map_err(io(&p))?;
            written.push(p);
        }
    }
    let env = dir.join(".env");
    if !env.exists() {
        write_private(
            &env,
            b"# Secrets for this project (KEY=value). Never commit this file.\n",
        )
        .map_err(io(&env))?;
        written.push(env);
    }
    Ok(written)
}

/// Writes a file readable only by its owner (mode 0600), atomically: the bytes go to a
/// temporary file beside it, are synced, and replace the file by rename, so a crash leaves
/// either the old file or the new one, never half of one.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", rand::random::<u64>()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Quotes a project name for YAML if it needs it.
fn yaml_scalar(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !s.is_empty()
    {
        s.to_owned()
    } else {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// An exclusive lock on `.kura/serve.lock`, held while a server runs on the project.
/// The file holds the server's pid and, once it listens, its address (for `kura sync`).
pub(crate) struct ServeLock {
    file: File,
}

impl ServeLock {
    /// Takes the lock, or says which process holds it.
    pub(crate) fn acquire(state_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join("serve.lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)?;
                writeln!(file, "{}", std::process::id())?;
                Ok(Self { file })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let pid = text.lines().next().unwrap_or("?");
                let project = state_dir.parent().unwrap_or(state_dir);
                anyhow::bail!(
                    "another Kura server (pid {pid}) is already serving {}; the warehouse has a \
                     single writer, so stop that server first",
                    project.display()
                )
            }
            Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }
}

impl ServeLock {
    /// Records the address the server listens on, after the pid.
    pub(crate) fn record_address(&self, addr: std::net::SocketAddr) -> std::io::Result<()> {
        let mut file = &self.file;
        file.set_len(0)?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0))?;
        writeln!(file, "{}\n{addr}", std::process::id())
    }
}

/// The address a running server recorded in `.kura/serve.lock`, if any.
pub(crate) fn running_server_address(state_dir: &Path) -> Option<std::net::SocketAddr> {
    let text = std::fs::read_to_string(state_dir.join("serve.lock")).ok()?;
    text.lines().nth(1)?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_a_loadable_project_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), false).unwrap();
        for p in [
            "project.yml",
            "schedules.yml",
            ".env",
            "data/uploads",
            ".kura",
            "models",
        ] {
            assert!(dir.path().join(p).exists(), "{p} missing");
        }
        let config = crate::config::Config::load_with_env(dir.path(), Vec::new()).unwrap();
        assert_eq!(config.platform.port, 8800);
        assert!(matches!(init(dir.path(), false), Err(InitError::Exists(_))));
        init(dir.path(), true).unwrap();
    }

    #[test]
    fn a_second_lock_on_the_same_project_fails_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let first = ServeLock::acquire(dir.path()).unwrap();
        let err = ServeLock::acquire(dir.path()).err().unwrap().to_string();
        assert!(err.contains("already serving"), "{err}");
        drop(first);
        ServeLock::acquire(dir.path()).unwrap();
    }
}
