//! MetaDb: the metadata store in SQLite (`.kura/kura.db`).
//!
//! One writer thread owns the write connection (every write runs in a transaction there,
//! so writers never contend for SQLite's lock) and a read lane of two threads serves
//! reads concurrently under WAL. Migrations are numbered SQL files embedded in the binary,
//! applied in order at open and tracked with `PRAGMA user_version`; an applied migration
//! is never edited, a change is a new file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags, Transaction};

use super::lane::{Lane, LaneError};

/// Migrations in order; the index + 1 is the `user_version` after applying it.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_activity_log",
        include_str!("migrations/0001_activity_log.sql"),
    ),
    (
        "0002_sync_runs",
        include_str!("migrations/0002_sync_runs.sql"),
    ),
    (
        "0003_accounts",
        include_str!("migrations/0003_accounts.sql"),
    ),
    (
        "0004_schedule_runs",
        include_str!("migrations/0004_schedule_runs.sql"),
    ),
    (
        "0005_query_history",
        include_str!("migrations/0005_query_history.sql"),
    ),
    (
        "0006_two_factor_attempts",
        include_str!("migrations/0006_two_factor_attempts.sql"),
    ),
    (
        "0007_queued_syncs",
        include_str!("migrations/0007_queued_syncs.sql"),
    ),
    (
        "0008_model_runs",
        include_str!("migrations/0008_model_runs.sql"),
    ),
];

const READERS: usize = 2;
const QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("metadata store is busy")]
    Busy,
    #[error("metadata store is shut down")]
    Closed,
    #[error("metadata store {path}: {message}")]
    Open { path: PathBuf, message: String },
}

impl From<LaneError> for MetaError {
    fn from(e: LaneError) -> Self {
        match e {
            LaneError::Full => Self::Busy,
            LaneError::Closed => Self::Closed,
        }
    }
}

/// Handle to the metadata store; cheap to clone.
#[derive(Clone)]
pub struct MetaDb {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Lane<Connection>,
    readers: Lane<Connection>,
}

impl MetaDb {
    /// Opens (creating if needed) the store and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self, MetaError> {
        let open_err = |message: String| MetaError::Open {
            path: path.to_path_buf(),
            message,
        };
        if let Some(dir) = path.parent() {
            private_dir(dir)
                .map_err(|e| open_err(format!("cannot secure {}: {e}", dir.display())))?;
        }
        let mut writer =
            open_connection(path, OpenFlags::default()).map_err(|e| open_err(e.to_string()))?;
        migrate(&mut writer).map_err(|e| open_err(format!("migration failed: {e}")))?;
        private_files(path)
            .map_err(|e| open_err(format!("cannot secure {}: {e}", path.display())))?;
        let readers = (0..READERS)
            .map(|_| open_connection(path, OpenFlags::SQLITE_OPEN_READ_ONLY))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| open_err(e.to_string()))?;
        let spawn_err = |e: std::io::Error| open_err(format!("cannot start threads: {e}"));
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Lane::start("meta-w", vec![writer], QUEUE, |_| {}).map_err(spawn_err)?,
                readers: Lane::start("meta-r", readers, QUEUE, |_| {}).map_err(spawn_err)?,
            }),
        })
    }

    /// Runs `f` on a read connection.
    pub async fn read<F, R>(&self, f: F) -> Result<R, MetaError>
    where
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let rx = self.inner.readers.submit(move |c: &mut Connection| f(c))?;
        Ok(rx.await.map_err(|_| MetaError::Closed)??)
    }

    /// Runs `f` in a transaction on the writer thread; commits if it returns `Ok`.
    pub async fn write<F, R>(&self, f: F) -> Result<R, MetaError>
    where
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let rx = self.inner.writer.submit(move |c: &mut Connection| {
            let tx = c.transaction()?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })?;
        rx.await.map_err(|_| MetaError::Closed)?
    }

    /// Like [`MetaDb::write`], for closures that decide as well as write: a domain rule
    /// checked inside the transaction (the last admin stays an admin) returns the caller's
    /// error, and nothing is committed. The check and the write cannot be raced.
    pub(crate) async fn write_with<F, R, E>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<rusqlite::Error> + From<MetaError> + Send + 'static,
    {
        let rx = self
            .inner
            .writer
            .submit(move |c: &mut Connection| -> Result<R, E> {
                let tx = c.transaction()?;
                let value = f(&tx)?;
                tx.commit()?;
                Ok(value)
            })
            .map_err(MetaError::from)?;
        rx.await.map_err(|_| MetaError::Closed)?
    }

    pub(crate) fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The applied schema version.
    pub(crate) async fn schema_version(&self) -> Result<i64, MetaError> {
        self.read(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
            .await
    }

    /// Stops taking work, finishes what is queued and closes the connections.
    pub fn close(&self) {
        self.inner.writer.close_and_join();
        self.inner.readers.close_and_join();
    }
}

/// `.kura/` holds sessions, key hashes, the CLI token and secrets' metadata: only the
/// owner may enter it (0700), whatever the umask made of it.
pub(crate) fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// The database and its WAL and shared-memory files: owner only (0600).
fn private_files(db: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[expect(
    clippy::disallowed_methods,
    reason = "db/ is where connections are opened"
)]
fn open_connection(path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags(path, flags)?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    if !flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY) {
        c.pragma_update(None, "journal_mode", "WAL")?;
        c.pragma_update(None, "synchronous", "NORMAL")?;
    }
    c.pragma_update(None, "foreign_keys", "ON")?;
    Ok(c)
}

/// Applies every migration newer than `user_version`, each in its own transaction.
fn migrate(c: &mut Connection) -> rusqlite::Result<()> {
    let current: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate() {
        let version = i as i64 + 1;
        if version <= current {
            continue;
        }
        let tx = c.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(migration = name, version, "applied metadata migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrations_apply_once_and_reads_see_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kura.db");
        let db = MetaDb::open(&path).unwrap();
        assert_eq!(db.schema_version().await.unwrap(), MIGRATIONS.len() as i64);
        db.write(|tx| {
            tx.execute(
                "INSERT INTO activity_log (ts, type, level, message) VALUES ('t', 'x', 'info', 'm')",
                [],
            )
        })
        .await
        .unwrap();
        let n: i64 = db
            .read(|c| c.query_row("SELECT count(*) FROM activity_log", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(n, 1);
        db.close();
        // Reopening applies nothing new and keeps the data.
        let db = MetaDb::open(&path).unwrap();
        let n: i64 = db
            .read(|c| c.query_row("SELECT count(*) FROM activity_log", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(n, 1);
        db.close();
    }

    #[tokio::test]
    async fn a_failed_write_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = MetaDb::open(&dir.path().join("kura.db")).unwrap();
        let err = db
            .write(|tx| {
                tx.execute(
                    "INSERT INTO activity_log (ts, type, level, message) VALUES ('t','x','info','m')",
                    [],
                )?;
                tx.execute("INSERT INTO no_such_table VALUES (1)", [])
            })
            .await;
        assert!(err.is_err());
        let n: i64 = db
            .read(|c| c.query_row("SELECT count(*) FROM activity_log", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(n, 0);
        db.close();
    }
}
