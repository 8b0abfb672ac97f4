//! Application state, the server, and the ordered startup and shutdown.
//!
//! [`AppState::new`] is the only constructor, used by `main` and the tests alike; it takes
//! the project's serve lock, opens the metadata store and the warehouse (on blocking
//! threads) and builds the query gate. [`serve`] takes its listener and shutdown signal
//! from the caller, so tests bind port 0 and stop the server when they want.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use crate::auth::AuthState;
use crate::blocking;
use crate::config::Config;
use crate::db::meta::MetaDb;
use crate::db::warehouse::Warehouse;
use crate::events::EventBus;
use crate::project::ServeLock;
use crate::query::Gate;
use crate::schedules::clock::{Clock, SystemClock};
use crate::schedules::runner::ScheduleService;
use crate::sources::registry::{Source, discover};
use crate::sources::sync::SyncTracker;
use crate::tasks::Tasks;
use crate::watcher::WatcherStatus;

/// Shared application state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub(crate) config: Config,
    pub meta: MetaDb,
    pub warehouse: Warehouse,
    pub gate: Arc<Gate>,
    /// Answers of repeated deterministic queries (`api.result_cache_mb`).
    pub(crate) result_cache: crate::query::cache::ResultCache,
    pub(crate) events: EventBus,
    pub syncs: SyncTracker,
    pub(crate) tasks: Tasks,
    pub auth: AuthState,
    pub(crate) schedules: ScheduleService,
    /// The models project: the last good compile, runs going on, runs after loads.
    pub(crate) models: crate::models::ModelService,
    /// The live `/ws` connections.
    pub(crate) clients: Arc<crate::events::ws::Clients>,
    pub(crate) source_views: crate::sources::views::ViewCache,
    /// The project's `.env` secrets file and its writers' lock.
    pub(crate) env_file: Arc<crate::secrets::EnvFile>,
    /// Exports running now: at most `query_workers - 1`, so queries always have a worker.
    pub exports: Arc<tokio::sync::Semaphore>,
    pub(crate) started_at: DateTime<Utc>,
    watcher: Mutex<WatcherStatus>,
    /// The sources as last discovered (see [`AppState::sources`]).
    registry: std::sync::RwLock<Arc<BTreeMap<String, Source>>>,
    /// Files the watcher has seen change and not yet seen complete: still being written.
    writing: Mutex<std::collections::HashSet<std::path::PathBuf>>,
    lock: ServeLock,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Opens everything the project needs. Fails at once, with a clear message, if another
    /// Kura process already serves this project.
    pub async fn new(config: Config) -> anyhow::Result<Self> {
        Self::with_clock(config, Arc::new(SystemClock)).await
    }

    /// [`AppState::new`] with the scheduler's clock given (tests drive time themselves).
    pub async fn with_clock(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        config.check_exposure().map_err(anyhow::Error::msg)?;
        let state_dir = config.state_dir();
        let lock = blocking::run(move || ServeLock::acquire(&state_dir)).await?;
        // The three are independent; opened side by side (DuckDB's start is the longest).
        let discover_config = config.clone();
        let meta_path = config.state_dir().join("kura.db");
        let wh_config = config.clone();
        let (registry, meta, warehouse) = tokio::join!(
            blocking::run(move || discover(&discover_config)),
            blocking::run(move || MetaDb::open(&meta_path)),
            blocking::run(move || Warehouse::open(&wh_config)),
        );
        let (meta, warehouse) = (meta?, warehouse?);
        // The load ledger's schema, once, before any sync can run.
        warehouse
            .background(crate::sources::ledger::migrate)
            .await?
            .context("cannot bring the load ledger up to date")?;
        let gate = Arc::new(Gate::new(
            warehouse.functions().clone(),
            config.api.max_sql_bytes,
        ));
        // A sync cut off by a stop or crash never committed its file in progress; say so.
        meta.write(|tx| crate::sources::repo::close_interrupted_runs(tx))
            .await?;
        crate::models::repo::close_interrupted_runs(&meta).await?;
        let events = EventBus::new(meta.clone());
        if config.auth.enabled
            && let Some(password) = crate::auth::admin::bootstrap_admin(&meta).await?
        {
            // Shown once, on the console of whoever started the server; it must be
            // changed at first sign-in.
            eprintln!(
                "\nCreated the first admin account:\n  email:    admin@localhost\n  password: {password}\n\
                 Sign in at /login; you will be asked to choose a new password.\n"
            );
        }
        let auth_config = config.clone();
        let auth_meta = meta.clone();
        let auth = blocking::run(move || AuthState::open(&auth_config, &auth_meta)).await?;
        let exports = Arc::new(tokio::sync::Semaphore::new(
            config.api.query_workers.saturating_sub(1).max(1),
        ));
        let env_file = Arc::new(crate::secrets::EnvFile::new(crate::secrets::env_path(
            &config.root,
        )));
        let result_cache = crate::query::cache::ResultCache::new(config.api.result_cache_mb);
        Ok(Self(Arc::new(Inner {
            config,
            meta,
            warehouse,
            gate,
            result_cache,
            events,
            syncs: SyncTracker::default(),
            tasks: Tasks::new(),
            auth,
            schedules: ScheduleService::new(clock),
            models: crate::models::ModelService::default(),
            clients: Arc::default(),
            source_views: crate::sources::views::ViewCache::default(),
            env_file,
            exports,
            started_at: Utc::now(),
            watcher: Mutex::new(WatcherStatus::default()),
            writing: Mutex::default(),
            registry: std::sync::RwLock::new(Arc::new(registry)),
            lock,
        })))
    }

    /// The project's sources: a snapshot, discovered off the runtime at start and again
    /// whenever the watcher sees a folder come or go ([`AppState::refresh_sources`]), so
    /// no request lists directories on a tokio worker.
    pub(crate) fn sources(&self) -> Arc<BTreeMap<String, Source>> {
        crate::locks::read(&self.registry).clone()
    }

    /// Discovers the sources again (off the runtime) and keeps the result as the snapshot.
    pub(crate) async fn refresh_sources(&self) -> Arc<BTreeMap<String, Source>> {
        let config = self.config.clone();
        let fresh = Arc::new(blocking::run(move || discover(&config)).await);
        *crate::locks::write(&self.registry) = fresh.clone();
        fresh
    }

    /// The source named `name`; a name the snapshot lacks is looked for on disk once more
    /// (its folder may have been made a moment ago, before the watcher heard of it).
    pub(crate) async fn find_source(&self, name: &str) -> Option<Source> {
        if let Some(source) = self.sources().get(name) {
            return Some(source.clone());
        }
        self.refresh_sources().await.get(name).cloned()
    }

    /// Starts the folder watcher and syncs every source once, so files dropped while Kura
    /// was down (or a load cut off by a crash) are loaded now, exactly once.
    pub(crate) async fn start_background(&self) {
        crate::watcher::start(self);
        // Discovered again now that the folders are watched: a folder made since the state
        // was built is in the snapshot, and one made from here on is an event.
        self.refresh_sources().await;
        crate::schedules::runner::start(self).await;
        // The models project compiles beside the rest (it waits for the gate's catalog).
        let state = self.clone();
        self.tasks.spawn("models:load", async move {
            if let Err(errors) = crate::models::service::reload(&state).await {
                tracing::warn!(errors = errors.len(), "the models project has errors");
            }
        });
        let sessions = self.auth.sessions.clone();
        let stop = self.tasks.token();
        self.tasks.spawn("session-purge", async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = every.tick() => {}
                }
                match sessions.purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(sessions = n, "removed expired sessions"),
                    Err(e) => tracing::warn!(error = %e, "cannot remove expired sessions"),
                }
            }
        });
        for (name, source) in self.sources().iter() {
            if source.enabled {
                let options = crate::sources::sync::SyncOptions::default();
                let trigger = crate::sources::sync::Trigger::Startup;
                if let Err(e) =
                    crate::sources::sync::start(self, name, options, trigger, true).await
                {
                    tracing::warn!(source = %name, error = %e, "startup sync not started");
                }
            }
        }
    }

    pub(crate) fn watcher_status(&self) -> WatcherStatus {
        crate::locks::lock(&self.watcher).clone()
    }

    pub(crate) fn set_watcher_status(&self, status: WatcherStatus) {
        *crate::locks::lock(&self.watcher) = status;
    }

    pub(crate) fn update_watcher_status(&self, f: impl FnOnce(&mut WatcherStatus)) {
        f(&mut crate::locks::lock(&self.watcher));
    }

    /// Marks `path` as being written (`true`) or complete (`false`); see the watcher.
    pub(crate) fn set_writing(&self, path: &Path, writing: bool) {
        let mut set = crate::locks::lock(&self.writing);
        if writing {
            set.insert(path.to_path_buf());
        } else {
            set.remove(path);
        }
    }

    /// The watcher has seen `path` change and not yet seen it complete: a sync (started by
    /// anything) leaves it alone, and the watcher syncs it once it is whole.
    pub(crate) fn is_being_written(&self, path: &Path) -> bool {
        crate::locks::lock(&self.writing).contains(path)
    }

    pub(crate) fn note_watcher_event(&self, path: &Path) {
        self.update_watcher_status(|s| {
            s.last_event = Some(crate::time::now_text());
            s.last_event_path = Some(path.display().to_string());
        });
    }

    /// Stops background tasks, then the warehouse (interrupting queries, checkpointing),
    /// then the metadata store. Each step is logged.
    pub async fn shutdown(&self) {
        tracing::info!("stopping background tasks");
        self.tasks.shutdown(Duration::from_secs(10)).await;
        tracing::info!("stopping the warehouse");
        let warehouse = self.warehouse.clone();
        blocking::run(move || warehouse.shutdown()).await;
        let meta = self.meta.clone();
        blocking::run(move || meta.close()).await;
        tracing::info!("metadata store closed; shutdown complete");
    }
}

/// Serves the app on `listener` until `shutdown` completes, then drains in-flight requests
/// (bounded by `grace`).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    state.start_background().await;
    let router = crate::routes::build_router(state.clone());
    let token = state.tasks.token();
    // Longer than any legitimate silence on a connection: a query's run, a ping on /ws.
    let idle = Duration::from_secs(state.config.api.query_timeout_seconds.max(30) + 90);
    axum::serve(
        crate::web::conn::TimedListener::new(listener, idle),
        router.into_make_service_with_connect_info::<crate::web::conn::PeerAddr>(),
    )
    .with_graceful_shutdown(async move {
        tokio::select! {
            () = shutdown => {}
            () = token.cancelled() => {}
        }
        tracing::info!("shutdown requested; no longer accepting connections");
    })
    .await
    .context("the HTTP server failed")
}

/// How long in-flight requests may take to finish once shutdown starts.
const DRAIN_DEADLINE: Duration = Duration::from_secs(15);

/// `kura serve`: binds, serves until Ctrl-C or SIGTERM, then shuts down in order:
/// stop accepting → interrupt running queries → drain requests (bounded) → background
/// tasks → warehouse checkpoint → metadata store.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let addr = SocketAddr::new(config.platform.bind, config.platform.port);
    let state = AppState::new(config).await?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (is another program using the port?)"))?;
    let local = listener.local_addr()?;
    if let Err(e) = state.lock.record_address(local) {
        tracing::warn!(error = %e, "cannot record the server address in .kura/serve.lock");
    }
    tracing::info!(url = %format!("http://{local}"), project = %state.config.project.name, "Kura is serving");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(serve(listener, state.clone(), async {
        let _ = stop_rx.await;
    }));
    let early = tokio::select! {
        result = &mut server => Some(result),
        () = shutdown_signal() => None,
    };
    let result = match early {
        Some(result) => result.context("the HTTP server task failed")?,
        None => {
            let _ = stop_tx.send(());
            tracing::info!("interrupting running queries");
            state.warehouse.interrupt_running();
            match tokio::time::timeout(DRAIN_DEADLINE, &mut server).await {
                Ok(result) => result.context("the HTTP server task failed")?,
                Err(_) => {
                    tracing::warn!("requests still running after {DRAIN_DEADLINE:?}; closing them");
                    server.abort();
                    Ok(())
                }
            }
        }
    };
    state.shutdown().await;
    result
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
