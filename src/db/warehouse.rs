//! The warehouse: the one DuckDB instance of the process, its threads, and its lockdown.
//!
//! - Opened once (a second instance on the same file is unsafe). The *interactive* lane has
//!   `api.query_workers` threads, each owning a `try_clone()` connection, for user queries;
//!   the *background* lane has one thread and is the only writer (loads, housekeeping), so
//!   writes never contend for a lock. Readers never wait for it: DuckDB's MVCC gives each
//!   query a snapshot. A one-thread *internal* lane reads the catalog for status and health
//!   pages, so those answer even while every query worker runs a long query.
//! - The engine lockdown of DESIGN.md §3 is applied in its order and read back; a setting
//!   that does not read back as set stops startup ([`WarehouseError::Lockdown`]).
//! - The only directory the instance may touch is `.kura/staging/`, emptied at startup.
//! - Interrupts: DuckDB keeps an interrupt that arrives while a connection is idle and fails
//!   that connection's next statement with it. [`JobControl`] therefore only lets an
//!   interrupt through while the job has marked a statement as running.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use duckdb::{Connection, InterruptHandle};

use super::lane::{Lane, LaneError};
use crate::config::Config;
use crate::locks::lock;

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error(
        "the warehouse {path} is in use by another process ({detail}); stop it first — \
         only one process may open a warehouse"
    )]
    Locked { path: PathBuf, detail: String },
    #[error("cannot open the warehouse {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error("warehouse lockdown failed: {0}")]
    Lockdown(String),
    #[error("every query worker is busy and the queue is full")]
    Busy,
    #[error("the warehouse is shut down")]
    Closed,
    #[error("the job was cancelled")]
    Cancelled,
    #[error("the job ran past its time limit of {0:?}")]
    Timeout(Duration),
    /// Stopped by the memory watchdog: the process passed `warehouse.max_process_memory`.
    #[error("the process passed its memory ceiling of {limit_mb} MB while the job ran")]
    MemoryCeiling { limit_mb: u64 },
}

impl From<LaneError> for WarehouseError {
    fn from(e: LaneError) -> Self {
        match e {
            LaneError::Full => Self::Busy,
            LaneError::Closed => Self::Closed,
        }
    }
}

/// A connection owned by one interactive worker, with its interrupt handle and the
/// read-only transaction it may keep open between queries (see `query::run`).
pub struct QueryConn {
    pub conn: Connection,
    handle: Arc<InterruptHandle>,
    /// The warehouse generation and start time of the open read-only transaction.
    pub(crate) open_transaction: std::cell::Cell<Option<(u64, std::time::Instant)>>,
    generation: Arc<std::sync::atomic::AtomicU64>,
    /// Whose statements the connection's prepared-statement cache holds: statements are
    /// never shared between users (a cached statement is another user's SQL, literals
    /// included).
    cache_owner: std::cell::RefCell<String>,
}

impl QueryConn {
    /// Empties the prepared-statement cache if it holds another caller's statements.
    pub(crate) fn use_statement_cache_of(&self, owner: &str) {
        let mut current = self.cache_owner.borrow_mut();
        if *current != owner {
            self.conn.flush_prepared_statement_cache();
            owner.clone_into(&mut current);
        }
    }

    /// How many writer jobs have finished so far: a read-only transaction begun at an
    /// older generation may miss committed data.
    pub(crate) fn warehouse_generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Forgets the kept transaction and rolls back whatever is open, always: a failed
    /// statement leaves DuckDB's transaction aborted, and duckdb-rs's `is_autocommit` does
    /// not tell. "No transaction is active" is the normal answer when none was. An interrupt
    /// that arrived just as a statement finished fails the first ROLLBACK and is cleared by
    /// it, so one retry always suffices.
    pub fn end_transaction(&self) {
        self.open_transaction.set(None);
        rollback(&self.conn);
    }

    /// Ends the kept read-only transaction, if there is one.
    pub(crate) fn end_kept_transaction(&self) {
        if self.open_transaction.get().is_some() {
            self.end_transaction();
        }
    }
}

/// Rolls back `conn`'s transaction, if any. An interrupt that arrived just as a statement
/// finished fails the first ROLLBACK and is cleared by it, so one retry always suffices;
/// without it the transaction would stay open and the connection's next BEGIN would fail.
pub(crate) fn rollback(conn: &Connection) {
    for attempt in 0..2 {
        match conn.execute_batch("ROLLBACK") {
            Ok(()) => return,
            Err(e) if e.to_string().contains("no transaction is active") => return,
            Err(e) if attempt == 0 => {
                tracing::debug!(error = %e, "rollback failed; retrying");
            }
            Err(e) => tracing::error!(error = %e, "a connection could not roll back"),
        }
    }
}

/// Lane hook (idle for 200 ms, and at shutdown): a kept transaction never holds back a
/// checkpoint.
fn end_idle_transaction(qc: &mut QueryConn) {
    qc.end_kept_transaction();
}

/// Whether a job's statement may be interrupted right now.
#[derive(Default)]
enum JobState {
    #[default]
    Queued,
    Running(Arc<InterruptHandle>),
    Idle,
    Cancelled,
}

/// Shared between the async caller and the worker running its job: the caller cancels,
/// the worker says when a statement is running so that only then the interrupt is sent.
#[derive(Default)]
pub struct JobControl {
    state: Mutex<JobState>,
    /// Set (to the ceiling in MB) when the memory watchdog stopped the job.
    out_of_memory: std::sync::atomic::AtomicU64,
}

impl JobControl {
    fn lock(&self) -> std::sync::MutexGuard<'_, JobState> {
        crate::locks::lock(&self.state)
    }

    /// Marks `conn`'s statements as interruptible. Returns false if the job was cancelled.
    pub(crate) fn statement_started(&self, conn: &QueryConn) -> bool {
        self.statement_started_on(&conn.handle)
    }

    /// Like [`JobControl::statement_started`], for a connection known by its handle.
    pub(crate) fn statement_started_on(&self, handle: &Arc<InterruptHandle>) -> bool {
        let mut state = self.lock();
        if matches!(*state, JobState::Cancelled) {
            return false;
        }
        *state = JobState::Running(handle.clone());
        true
    }

    /// No statement runs any more: interrupts from now on are ignored.
    pub(crate) fn statement_finished(&self) {
        let mut state = self.lock();
        if matches!(*state, JobState::Running(_)) {
            *state = JobState::Idle;
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        matches!(*self.lock(), JobState::Cancelled)
    }

    fn is_running(&self) -> bool {
        matches!(*self.lock(), JobState::Running(_))
    }

    /// Cancels the job because the process ran out of memory (see [`memory_watchdog`]).
    fn stop_for_memory(&self, ceiling_mb: u64) {
        self.out_of_memory
            .store(ceiling_mb.max(1), std::sync::atomic::Ordering::Release);
        self.cancel();
    }

    /// The ceiling (MB) if the memory watchdog stopped this job.
    pub(crate) fn stopped_for_memory(&self) -> Option<u64> {
        match self
            .out_of_memory
            .load(std::sync::atomic::Ordering::Acquire)
        {
            0 => None,
            mb => Some(mb),
        }
    }

    /// Cancels the job: a queued job is skipped, a running statement is interrupted.
    pub(crate) fn cancel(&self) {
        let mut state = self.lock();
        if let JobState::Running(handle) = &*state {
            handle.interrupt();
        }
        *state = JobState::Cancelled;
    }
}

/// Cancels the job if the waiting future is dropped (client disconnected).
struct CancelOnDrop(Option<Arc<JobControl>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(control) = self.0.take() {
            control.cancel();
        }
    }
}

/// One setting of the lockdown: its name, the value to set, and how it must read back.
struct Lock {
    name: &'static str,
    value: String,
}

/// The engine settings as read back at startup, for `/api/status`.
pub(crate) type Settings = Vec<(String, String)>;

/// Bumps the generation when dropped: at the end of a writer job, even one that panicked.
struct BumpOnDrop<'a>(&'a std::sync::atomic::AtomicU64);

impl Drop for BumpOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Release);
    }
}

/// Handle to the warehouse; cheap to clone.
#[derive(Clone)]
pub struct Warehouse {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    staging: PathBuf,
    interactive: Lane<QueryConn>,
    background: Lane<Connection>,
    internal: Lane<Connection>,
    interrupts: Vec<Arc<InterruptHandle>>,
    /// The single writer's interrupt handle, for cancelling a load (see [`JobControl`]).
    writer_interrupt: Arc<InterruptHandle>,
    generation: Arc<std::sync::atomic::AtomicU64>,
    settings: Settings,
    functions: Arc<crate::query::CatalogCell>,
    /// The thread reading the function catalog; joined at shutdown before the instance goes.
    catalog_reader: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Interactive jobs queued or running, for the memory watchdog.
    running: Mutex<HashMap<u64, Arc<JobControl>>>,
    next_job: std::sync::atomic::AtomicU64,
    /// Dropped at shutdown: the watchdog thread stops.
    watchdog_stop: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    /// The instance handle that connections are cloned through. Declared last so that it
    /// is dropped last: no `try_clone` may outlive it.
    #[expect(dead_code, reason = "held for its lifetime, never read after open")]
    database: duckdb_guard::Database,
}

impl Warehouse {
    /// Opens the warehouse file of `config`, locks it down and starts the worker threads.
    pub(crate) fn open(config: &Config) -> Result<Self, WarehouseError> {
        let path = config.warehouse_path();
        let staging = config.state_dir().join("staging");
        prepare_dirs(&path, &staging).map_err(|e| WarehouseError::Open {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let opening = std::time::Instant::now();
        let (database, db) = open_instance(&path, config)?;
        tracing::debug!(
            ms = opening.elapsed().as_secs_f64() * 1000.0,
            "DuckDB instance open"
        );
        // Analysts write lambdas as `x -> x * 2` as well as `lambda x: x * 2`; DuckDB 2.0
        // accepts the arrow only when told to, and only before the configuration is locked.
        db.execute_batch("SET GLOBAL lambda_syntax = 'ENABLE_SINGLE_ARROW'")
            .map_err(|e| WarehouseError::Lockdown(format!("lambda_syntax: {e}")))?;
        set_time_zone(&db, &path, &config.project.timezone)?;
        let settings = lock_down(&db, config, &staging)?;
        let writer_interrupt = db.interrupt_handle();

        let mut conns = Vec::with_capacity(config.api.query_workers);
        let mut interrupts = Vec::new();
        let generation = Arc::new(std::sync::atomic::AtomicU64::new(0));
        for _ in 0..config.api.query_workers {
            let conn = db.try_clone().map_err(|e| WarehouseError::Open {
                path: path.clone(),
                message: e.to_string(),
            })?;
            // Layer 2 inside the engine: this connection can touch no file at all and
            // prepares nothing but read-only queries (see the duckdb-guard crate).
            database.lock(&conn).map_err(|message| {
                WarehouseError::Lockdown(format!("query connection: {message}"))
            })?;
            // Room for the repeated queries of a few dashboards, per worker.
            conn.set_prepared_statement_cache_capacity(256);
            let handle = conn.interrupt_handle();
            interrupts.push(handle.clone());
            conns.push(QueryConn {
                conn,
                handle,
                open_transaction: std::cell::Cell::new(None),
                generation: generation.clone(),
                cache_owner: std::cell::RefCell::new(String::new()),
            });
        }
        // The query gate's allowlist, read beside the rest of the start (see CatalogCell) on
        // an unguarded connection of its own, so that the internal lane is free at once.
        let functions = Arc::new(crate::query::CatalogCell::default());
        let catalog_reader = {
            let conn = db.try_clone().map_err(|e| WarehouseError::Open {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let cell = functions.clone();
            std::thread::Builder::new()
                .name("warehouse-catalog".into())
                .spawn(move || {
                    let reading = std::time::Instant::now();
                    cell.fill(
                        crate::query::FunctionCatalog::load(&conn).map_err(|e| e.to_string()),
                    );
                    tracing::debug!(
                        ms = reading.elapsed().as_secs_f64() * 1000.0,
                        "function catalog read"
                    );
                })
                .map_err(|e| WarehouseError::Open {
                    path: path.clone(),
                    message: e.to_string(),
                })?
        };
        let internal_conn = db.try_clone().map_err(|e| WarehouseError::Open {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let spawn_err = |e: std::io::Error| WarehouseError::Open {
            path: path.clone(),
            message: e.to_string(),
        };
        let internal =
            Lane::start("warehouse-i", vec![internal_conn], 64, |_| {}).map_err(spawn_err)?;
        let interactive = Lane::start_with_idle(
            "warehouse-q",
            conns,
            config.api.query_queue,
            end_idle_transaction,
            Some((
                std::time::Duration::from_millis(200),
                Arc::new(end_idle_transaction),
            )),
        )
        .map_err(spawn_err)?;
        let background = Lane::start_with_idle(
            "warehouse-w",
            vec![db],
            256,
            checkpoint,
            Some((WRITER_IDLE_CHECKPOINT, {
                let wal = wal_path(&path);
                Arc::new(move |conn: &mut Connection| checkpoint_when_idle(conn, &wal))
            })),
        )
        .map_err(spawn_err)?;
        let (watchdog_stop, watchdog_ticks) = std::sync::mpsc::channel::<()>();
        let warehouse = Self {
            inner: Arc::new(Inner {
                path,
                staging,
                interactive,
                background,
                internal,
                interrupts,
                writer_interrupt,
                generation,
                settings,
                functions,
                catalog_reader: Mutex::new(Some(catalog_reader)),
                running: Mutex::default(),
                next_job: std::sync::atomic::AtomicU64::new(0),
                watchdog_stop: Mutex::new(Some(watchdog_stop)),
                database,
            }),
        };
        let weak = Arc::downgrade(&warehouse.inner);
        let ceiling = config.warehouse.process_memory_ceiling();
        std::thread::Builder::new()
            .name("memory-watchdog".into())
            .spawn(move || memory_watchdog(&weak, ceiling, &watchdog_ticks))
            .map_err(|e| WarehouseError::Open {
                path: warehouse.path().to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(warehouse)
    }

    /// Runs `job` on an interactive worker. After `timeout` the job is cancelled (its
    /// running statement interrupted) and, once the worker confirms within `grace`,
    /// [`WarehouseError::Timeout`] is returned. Dropping the future cancels the job too.
    pub async fn interactive<R, F>(&self, timeout: Duration, job: F) -> Result<R, WarehouseError>
    where
        F: FnOnce(&QueryConn, &JobControl) -> R + Send + 'static,
        R: Send + 'static,
    {
        let control = Arc::new(JobControl::default());
        let _registered = Registered::new(&self.inner, control.clone());
        let worker_control = control.clone();
        let mut rx = self.inner.interactive.submit(move |conn: &mut QueryConn| {
            if worker_control.is_cancelled() {
                return None;
            }
            let out = job(conn, &worker_control);
            worker_control.statement_finished();
            Some(out)
        })?;
        let mut guard = CancelOnDrop(Some(control.clone()));
        let outcome = match tokio::time::timeout(timeout, &mut rx).await {
            Ok(answer) => answer.ok().flatten().ok_or(WarehouseError::Cancelled),
            Err(_) => {
                control.cancel();
                // Wait (briefly) until the worker has really stopped, so a 408 means the
                // statement is gone and the worker is free again.
                let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
                Err(WarehouseError::Timeout(timeout))
            }
        };
        guard.0 = None;
        if let Some(limit_mb) = control.stopped_for_memory() {
            return Err(WarehouseError::MemoryCeiling { limit_mb });
        }
        outcome
    }

    /// Runs `job` on the single writer thread (loads, housekeeping).
    pub async fn background<R, F>(&self, job: F) -> Result<R, WarehouseError>
    where
        F: FnOnce(&Connection) -> R + Send + 'static,
        R: Send + 'static,
    {
        let generation = self.inner.generation.clone();
        let rx = self.inner.background.submit(move |conn: &mut Connection| {
            // Odd while the job runs: the result cache serves and keeps nothing until the
            // job is over, so no answer can straddle its commit.
            generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            // After the job's commit (or its panic): readers begin new transactions from
            // here on.
            let _ended = BumpOnDrop(&generation);
            job(conn)
        })?;
        rx.await.map_err(|_| WarehouseError::Closed)
    }

    /// Bumped when a writer job starts (to an odd number) and when it ends (to an even one):
    /// what was read at one even generation holds until it moves.
    pub(crate) fn generation(&self) -> u64 {
        self.inner
            .generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Runs a catalog read (status, health) on the internal lane. Never for user SQL.
    pub async fn internal<R, F>(&self, job: F) -> Result<R, WarehouseError>
    where
        F: FnOnce(&Connection) -> R + Send + 'static,
        R: Send + 'static,
    {
        let rx = self
            .inner
            .internal
            .submit(move |conn: &mut Connection| job(conn))?;
        rx.await.map_err(|_| WarehouseError::Closed)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The writer connection's interrupt handle: hand it to [`JobControl::statement_started_on`]
    /// around a load statement that may be cancelled.
    pub(crate) fn writer_interrupt(&self) -> Arc<InterruptHandle> {
        self.inner.writer_interrupt.clone()
    }

    pub(crate) fn staging_dir(&self) -> &Path {
        &self.inner.staging
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub(crate) fn functions(&self) -> &Arc<crate::query::CatalogCell> {
        &self.inner.functions
    }

    /// Interactive jobs whose statement is running now.
    pub fn statements_running(&self) -> usize {
        lock(&self.inner.running)
            .values()
            .filter(|c| c.is_running())
            .count()
    }

    /// (workers, queued jobs) of the interactive lane.
    pub fn interactive_load(&self) -> (usize, usize) {
        (
            self.inner.interactive.threads(),
            self.inner.interactive.queued(),
        )
    }

    /// Interrupts whatever user queries are running (shutdown only: DuckDB keeps an
    /// interrupt sent to an idle connection and fails its next statement with it).
    pub(crate) fn interrupt_running(&self) {
        for handle in &self.inner.interrupts {
            handle.interrupt();
        }
    }

    /// Stops taking work, interrupts running queries, drains the writer and checkpoints.
    pub(crate) fn shutdown(&self) {
        lock(&self.inner.watchdog_stop).take();
        if let Some(reader) = lock(&self.inner.catalog_reader).take() {
            let _ = reader.join();
        }
        self.interrupt_running();
        self.inner.interactive.close_and_join();
        self.inner.internal.close_and_join();
        self.inner.background.close_and_join();
        tracing::info!(path = %self.inner.path.display(), "warehouse checkpointed and closed");
    }
}

/// An interactive job known to the watchdog for as long as its caller waits for it.
struct Registered<'a> {
    inner: &'a Inner,
    id: u64,
}

impl<'a> Registered<'a> {
    fn new(inner: &'a Inner, control: Arc<JobControl>) -> Self {
        let id = inner
            .next_job
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock(&inner.running).insert(id, control);
        Self { inner, id }
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        lock(&self.inner.running).remove(&self.id);
    }
}

/// How often the watchdog reads the process's resident memory.
const WATCHDOG_PERIOD: Duration = Duration::from_millis(100);

/// DuckDB's buffer manager does not track every allocation (`range()` lists, `repeat()`
/// strings, ...), so `memory_limit` alone does not bound a query: this thread stops every
/// running user query while the process's resident memory is above the ceiling, and they
/// answer `memory_limit_exceeded`. Loads on the writer are left to finish.
///
/// Memory freed by a stopped query is not always given back to the system, so the
/// ceiling is measured from the resident memory of the last moment no query ran: at least
/// `ceiling` bytes, and at least half of it above that idle level. Memory kept after one
/// episode is reused by the next allocations, so this does not let a query grow without
/// bound; without it, a process that stayed above the ceiling would stop every query.
fn memory_watchdog(
    inner: &std::sync::Weak<Inner>,
    ceiling: u64,
    ticks: &std::sync::mpsc::Receiver<()>,
) {
    let mut idle_rss = 0u64;
    let mut quiet = Quiet::default();
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = ticks.recv_timeout(WATCHDOG_PERIOD)
    {
        let Some(inner) = inner.upgrade() else { return };
        let running: Vec<Arc<JobControl>> = lock(&inner.running).values().cloned().collect();
        let activity = (
            inner.next_job.load(std::sync::atomic::Ordering::Relaxed),
            inner.generation.load(std::sync::atomic::Ordering::Acquire),
        );
        if quiet.tick(activity, running.is_empty()) {
            release_code_pages();
        }
        let Some(rss) = resident_bytes() else {
            continue;
        };
        if running.is_empty() {
            idle_rss = rss;
            continue;
        }
        if rss <= ceiling.max(idle_rss.saturating_add(ceiling / 2)) {
            continue;
        }
        let stopped = running.iter().filter(|c| !c.is_cancelled()).count();
        for control in &running {
            control.stop_for_memory(ceiling / 1_000_000);
        }
        if stopped > 0 {
            tracing::warn!(
                rss_mb = rss / 1_000_000,
                ceiling_mb = ceiling / 1_000_000,
                stopped,
                "memory ceiling passed: running queries stopped"
            );
        }
    }
}

/// When the executable's code pages are given back (see [`release_code_pages`]): once the
/// warehouse has been quiet this long after start-up, then after each longer quiet spell
/// that follows work.
const FIRST_RELEASE_AFTER: Duration = Duration::from_secs(1);
const RELEASE_AFTER: Duration = Duration::from_secs(30);

/// Counts quiet watchdog ticks (no job running, none started, the writer's generation
/// unmoved) and says when the code pages are due to be released: after work (start-up
/// counts as work) followed by a quiet spell.
#[derive(Default)]
struct Quiet {
    last: Option<(u64, u64)>,
    quiet_ticks: u32,
    releases: u32,
    worked: bool,
}

impl Quiet {
    /// Records one tick; true when the pages should be released now.
    fn tick(&mut self, activity: (u64, u64), idle: bool) -> bool {
        if !idle || self.last != Some(activity) {
            self.last = Some(activity);
            self.quiet_ticks = 0;
            self.worked = true;
            return false;
        }
        self.quiet_ticks += 1;
        let wait = if self.releases == 0 {
            FIRST_RELEASE_AFTER
        } else {
            RELEASE_AFTER
        };
        if self.worked && WATCHDOG_PERIOD * self.quiet_ticks >= wait {
            self.worked = false;
            self.releases += 1;
            return true;
        }
        false
    }
}

/// Opening DuckDB runs the registration code of a few thousand built-in functions, spread
/// over the whole executable, and the kernel maps a page-cache window around each page it
/// touches: ~35 MB of code that never runs again stays resident. Unmapping the read-only
/// segments (`exe-pages`) costs nothing: the pages stay in the page cache, and the code a
/// query needs is mapped back by minor faults as it runs.
fn release_code_pages() {
    let before = resident_bytes().unwrap_or(0);
    match exe_pages::release() {
        Ok(_) => tracing::debug!(
            rss_before_mb = before / 1_000_000,
            rss_after_mb = resident_bytes().unwrap_or(0) / 1_000_000,
            "code pages of the executable released"
        ),
        Err(e) => tracing::debug!(error = %e, "cannot release the executable's code pages"),
    }
}

/// The process's resident set size, from `/proc/self/status` (Linux).
pub(crate) fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn prepare_dirs(path: &Path, staging: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // Anything left in staging is from a previous run: the writer only ever loads files
    // it put there itself during this run.
    if staging.exists() {
        std::fs::remove_dir_all(staging)?;
    }
    std::fs::create_dir_all(staging)
}

/// Opens the one instance of the process with the settings that can only be given at
/// creation, and the engine guard installed (`duckdb-guard`).
fn open_instance(
    path: &Path,
    config: &Config,
) -> Result<(duckdb_guard::Database, Connection), WarehouseError> {
    let w = &config.warehouse;
    let mut options = vec![
        ("autoload_known_extensions", "false".to_owned()),
        ("autoinstall_known_extensions", "false".to_owned()),
        ("allow_community_extensions", "false".to_owned()),
    ];
    if w.threads > 0 {
        options.push(("threads", w.threads.to_string()));
    }
    // Time zones come from DuckDB's ICU extension, compiled into the binary (duckdb-icu):
    // registered before the instance opens, it is loaded with the built-in ones.
    duckdb_icu::register().map_err(|message| WarehouseError::Open {
        path: path.to_path_buf(),
        message,
    })?;
    duckdb_guard::Database::open(path, &options).map_err(|message| {
        if message.contains("Could not set lock") || message.contains("Conflicting lock") {
            WarehouseError::Locked {
                path: path.to_path_buf(),
                detail: message,
            }
        } else {
            WarehouseError::Open {
                path: path.to_path_buf(),
                message,
            }
        }
    })
}

/// Sets the instance's time zone to `project.timezone` (before the configuration is locked).
fn set_time_zone(db: &Connection, path: &Path, zone: &str) -> Result<(), WarehouseError> {
    let known: bool = db
        .query_row(
            "SELECT count(*) > 0 FROM pg_timezone_names() WHERE name = ?",
            [zone],
            |r| r.get(0),
        )
        .map_err(|e| WarehouseError::Lockdown(format!("reading the time zones: {e}")))?;
    if !known {
        return Err(WarehouseError::Open {
            path: path.to_path_buf(),
            message: format!(
                "project.timezone: '{zone}' is not a time zone name (use an IANA name such as 'UTC' or 'Europe/Berlin')"
            ),
        });
    }
    db.execute_batch(&format!("SET GLOBAL TimeZone = {}", sql_string(zone)))
        .map_err(|e| WarehouseError::Lockdown(format!("TimeZone: {e}")))
}

/// Applies the lockdown in the order DESIGN.md §3 gives, then reads every setting back.
fn lock_down(db: &Connection, config: &Config, staging: &Path) -> Result<Settings, WarehouseError> {
    let w = &config.warehouse;
    let staging_dir = format!("{}/", staging.display());
    let locks = [
        Lock {
            name: "autoinstall_known_extensions",
            value: "false".into(),
        },
        Lock {
            name: "autoload_known_extensions",
            value: "false".into(),
        },
        Lock {
            name: "allow_community_extensions",
            value: "false".into(),
        },
        Lock {
            name: "allow_unsigned_extensions",
            value: "false".into(),
        },
        Lock {
            name: "allow_persistent_secrets",
            value: "false".into(),
        },
        Lock {
            name: "memory_limit",
            value: w.memory_limit.clone(),
        },
        Lock {
            name: "max_temp_directory_size",
            value: w.max_temp_directory_size.clone(),
        },
        Lock {
            name: "max_expression_depth",
            value: w.max_expression_depth.to_string(),
        },
        // DuckDB checkpoints when a commit takes the WAL past this; the checkpoint runs
        // inside that commit and, on a large warehouse, takes seconds. The writer also
        // checkpoints whenever it has been idle for a second (see `checkpoint_when_idle`),
        // so in practice the automatic one only fires during a long uninterrupted burst.
        Lock {
            name: "wal_autocheckpoint",
            value: "256MB".into(),
        },
        Lock {
            name: "allowed_directories",
            value: format!("[{}]", sql_string(&staging_dir)),
        },
        Lock {
            name: "enable_external_access",
            value: "false".into(),
        },
        Lock {
            name: "lock_configuration",
            value: "true".into(),
        },
    ];
    for lock in &locks {
        let value = match lock.name {
            "allowed_directories" => lock.value.clone(),
            "memory_limit" | "max_temp_directory_size" | "wal_autocheckpoint" => {
                sql_string(&lock.value)
            }
            _ => lock.value.clone(),
        };
        let sql = format!("SET {} = {value}", lock.name);
        // allow_unsigned_extensions / allow_community_extensions cannot change once the
        // instance runs; they were given at open and are only verified below.
        if let Err(e) = db.execute_batch(&sql)
            && !matches!(
                lock.name,
                "allow_unsigned_extensions" | "allow_community_extensions"
            )
        {
            return Err(WarehouseError::Lockdown(format!("{sql}: {e}")));
        }
    }
    let mut settings = Vec::new();
    for lock in &locks {
        let actual: String = db
            .query_row("SELECT current_setting(?)::VARCHAR", [lock.name], |r| {
                r.get(0)
            })
            .map_err(|e| WarehouseError::Lockdown(format!("reading {}: {e}", lock.name)))?;
        let expected_ok = match lock.name {
            // DuckDB reports sizes in its own units (e.g. 488.2 MiB): only check it is set.
            "memory_limit" | "max_temp_directory_size" | "wal_autocheckpoint" => !actual.is_empty(),
            "allowed_directories" => actual.contains(staging_dir.trim_end_matches('/')),
            _ => actual.eq_ignore_ascii_case(&lock.value),
        };
        if !expected_ok {
            return Err(WarehouseError::Lockdown(format!(
                "{} reads back as {actual:?}, expected {:?}; refusing to start",
                lock.name, lock.value
            )));
        }
        settings.push((lock.name.to_owned(), actual));
    }
    Ok(settings)
}

/// How long the writer waits for more work before it checkpoints.
const WRITER_IDLE_CHECKPOINT: Duration = Duration::from_secs(1);

/// Below this much WAL an idle checkpoint is not worth its fixed cost (which a load
/// arriving meanwhile would wait for); large loads write their data blocks directly and
/// leave little WAL, so this mostly gathers many small loads.
const IDLE_CHECKPOINT_MIN_WAL: u64 = 8 * 1024 * 1024;

/// The write-ahead log DuckDB keeps beside `db` (`<file>.wal`).
pub(crate) fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".wal");
    PathBuf::from(name)
}

/// Checkpoints while nothing waits for the writer, so that a load does not pay for it.
/// (A commit that takes the WAL past `wal_autocheckpoint` checkpoints inside the commit,
/// measured at 1-4 s on a warehouse of a few GB: the tail of drop-to-queryable.) A query
/// transaction still open makes DuckDB refuse; the next idle moment tries again.
fn checkpoint_when_idle(conn: &mut Connection, wal: &Path) {
    let size = std::fs::metadata(wal).map_or(0, |m| m.len());
    if size < IDLE_CHECKPOINT_MIN_WAL {
        return;
    }
    if let Err(e) = conn.execute_batch("CHECKPOINT") {
        tracing::debug!(error = %e, "idle checkpoint skipped");
    }
}

fn checkpoint(conn: &mut Connection) {
    if let Err(e) = conn.execute_batch("CHECKPOINT") {
        tracing::warn!(error = %e, "final warehouse checkpoint failed");
    }
}

/// Quotes a string as a SQL literal.
pub(crate) fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Quotes an identifier (schema, table, column) for DuckDB.
pub(crate) fn sql_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// An in-memory DuckDB with the load ledger's schema: what a warehouse job of a storage
/// unit test runs against (no guard, no lanes).
#[cfg(test)]
#[expect(
    clippy::disallowed_methods,
    reason = "a storage test runs warehouse jobs against an in-memory DuckDB"
)]
pub(crate) fn test_warehouse() -> Connection {
    let conn = Connection::open_in_memory().expect("an in-memory DuckDB");
    crate::sources::ledger::migrate(&conn).expect("the ledger's schema");
    conn
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticks_until_release(quiet: &mut Quiet, activity: (u64, u64)) -> Option<u32> {
        (1..=1000).find(|_| quiet.tick(activity, true))
    }

    #[test]
    fn code_pages_are_released_after_start_then_after_long_quiet_spells_that_follow_work() {
        let mut quiet = Quiet::default();
        let per_second = (Duration::from_secs(1).as_millis() / WATCHDOG_PERIOD.as_millis()) as u32;
        // Start-up is work (the first tick sees the counters for the first time): the
        // first release follows one quiet second.
        assert!(!quiet.tick((0, 2), true));
        assert_eq!(ticks_until_release(&mut quiet, (0, 2)), Some(per_second));
        // Quiet on: nothing more to release.
        assert_eq!(ticks_until_release(&mut quiet, (0, 2)), None);
        // A query ran (job counter moved), then 30 quiet seconds.
        assert!(!quiet.tick((1, 2), true));
        assert_eq!(
            ticks_until_release(&mut quiet, (1, 2)),
            Some(30 * per_second)
        );
        // A running job holds the release off however long it runs.
        for _ in 0..1000 {
            assert!(!quiet.tick((2, 2), false));
        }
        // A load (the writer's generation moved) counts as work too.
        assert!(!quiet.tick((2, 4), true));
        assert_eq!(
            ticks_until_release(&mut quiet, (2, 4)),
            Some(30 * per_second)
        );
    }
}
