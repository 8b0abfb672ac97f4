//! The folder watcher: notify events → debounced until stable → syncs of the sources the
//! files belong to.
//!
//! notify's callback runs on notify's own thread and only `try_send`s paths into a bounded
//! channel (a full channel sets a flag that makes the next tick rescan every source, so a
//! flood is never lost, only coalesced).
//!
//! A file is loaded when it is complete:
//! - **at once** when the kernel says it is: inotify's close-after-write (the writer closed
//!   it) or a rename into the folder (how browsers, `curl -o x.part && mv`, and careful
//!   tools publish a file). The path is checked again after a short quiet time
//!   ([`COMPLETE_QUIET`]): a writer that reopens it in that time sends a new event and the
//!   file waits for its next close;
//! - otherwise once its size and mtime have not moved for `platform.debounce_ms`: a file
//!   still growing with its writer holding it open (a copy over the network, a slow
//!   download) is never loaded half-written.
//!
//! Ready paths are grouped by source, and each source gets one sync for the whole group — a
//! burst of a thousand files is one sync, not a thousand.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::app::AppState;
use crate::sources::formats::is_ignored;
use crate::sources::sync::{self, SyncOptions, Trigger};

const CHANNEL: usize = 16_384;

/// How long a path the kernel reported complete must stay untouched before it loads.
const COMPLETE_QUIET: Duration = Duration::from_millis(25);

/// What an event says about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// Written to: a writer has it open, so no sync may load it until it is complete.
    Written,
    /// Created (possibly whole, as a hard link is), removed, renamed away.
    Changed,
    /// Complete: closed after writing, or renamed into place.
    Complete,
}

/// What `/api/watcher/status` shows.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct WatcherStatus {
    pub(crate) running: bool,
    pub(crate) directories: Vec<PathBuf>,
    pub(crate) patterns: Vec<String>,
    pub(crate) ignored: Vec<String>,
    pub(crate) debounce_ms: u64,
    pub(crate) pending_files: Vec<String>,
    pub(crate) last_event: Option<String>,
    pub(crate) last_event_path: Option<String>,
    pub(crate) error: Option<String>,
}

/// A pending path: its last observed (size, mtime) and when that last changed; and when
/// the kernel last said it is complete, if no change came after that.
struct Pending {
    seen: Option<(u64, SystemTime)>,
    since: Instant,
    complete: Option<Instant>,
}

/// Starts the watcher task. Errors (a folder that cannot be watched) are logged and shown
/// in the status; the server runs on without live loading.
pub(crate) fn start(state: &AppState) {
    let (tx, rx) = mpsc::channel::<(PathBuf, Signal)>(CHANNEL);
    let overflow = Arc::new(AtomicBool::new(false));
    let dirs = watched_dirs(state);
    let callback_overflow = overflow.clone();
    let watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) => {
                let Some(signals) = classify(&event) else {
                    return;
                };
                for (path, signal) in event.paths.into_iter().zip(signals) {
                    if tx.try_send((path, signal)).is_err() {
                        callback_overflow.store(true, Ordering::Relaxed);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "file watcher error"),
        });
    let mut status = state.watcher_status();
    status.directories = dirs.clone();
    status.debounce_ms = state.config.platform.debounce_ms;
    status.ignored = crate::sources::formats::ignored_patterns();
    status.patterns = state
        .sources()
        .values()
        .map(|s| format!("{}: {}", s.name, s.pattern))
        .collect();
    let root = state.config.root.clone();
    let models_root = state.config.models_dir();
    let (model_dirs, dbt_file) = crate::models::files::watched(&models_root);
    let mut model_paths = model_dirs.clone();
    model_paths.push(dbt_file);
    let watcher = match watcher.and_then(|mut w| {
        for dir in &dirs {
            std::fs::create_dir_all(dir).map_err(notify::Error::io)?;
            w.watch(dir, RecursiveMode::Recursive)?;
        }
        // The project's own files (schedules.yml), unless a source folder covers the root.
        if !dirs.iter().any(|d| root.starts_with(d)) {
            w.watch(&root, RecursiveMode::NonRecursive)?;
        }
        // The models project: its folders, and its own folder for dbt_project.yml.
        for dir in &model_dirs {
            if !dirs.iter().any(|d| dir.starts_with(d)) {
                w.watch(dir, RecursiveMode::Recursive)?;
            }
        }
        if models_root != root && models_root.is_dir() {
            w.watch(&models_root, RecursiveMode::NonRecursive)?;
        }
        Ok(w)
    }) {
        Ok(w) => {
            status.running = true;
            Some(w)
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the upload folders; files load only on sync");
            status.error = Some(e.to_string());
            None
        }
    };
    state.set_watcher_status(status);
    let Some(watcher) = watcher else { return };
    let task_state = state.clone();
    let token = state.tasks.token();
    state.tasks.spawn("watcher", async move {
        // The watcher value must live as long as the task.
        let _watcher: RecommendedWatcher = watcher;
        debounce_loop(task_state, rx, overflow, token, dirs, model_paths).await;
    });
}

/// What `event` says about each of its paths, or `None` if it says nothing about content.
///
/// Reads (open, access, close-without-write) are Kura's own sync reading the files, and
/// attribute-only changes (the link count from staging, `touch`) never change a file's
/// content; reacting to them would make every sync start the next one.
fn classify(event: &notify::Event) -> Option<impl Iterator<Item = Signal> + use<>> {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    let last = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Signal::Complete,
        // `Both` lists the old path and then the new one: the new one is complete.
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)) => Signal::Complete,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => return None,
        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any | ModifyKind::Other) => {
            Signal::Written
        }
        _ => Signal::Changed,
    };
    let n = event.paths.len();
    Some((0..n).map(move |i| if i + 1 == n { last } else { Signal::Changed }))
}

fn watched_dirs(state: &AppState) -> Vec<PathBuf> {
    let root = &state.config.root;
    let mut dirs: BTreeSet<PathBuf> = state
        .config
        .platform
        .watch_directories
        .iter()
        .map(|d| root.join(d))
        .collect();
    dirs.extend(state.config.sources.iter().map(|s| root.join(&s.directory)));
    dirs.into_iter().collect()
}

async fn debounce_loop(
    state: AppState,
    mut rx: mpsc::Receiver<(PathBuf, Signal)>,
    overflow: Arc<AtomicBool>,
    token: tokio_util::sync::CancellationToken,
    dirs: Vec<PathBuf>,
    model_paths: Vec<PathBuf>,
) {
    let debounce = Duration::from_millis(state.config.platform.debounce_ms);
    let tick = (debounce / 5).clamp(Duration::from_millis(20), Duration::from_millis(250));
    let mut pending: HashMap<PathBuf, Pending> = HashMap::new();
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        // The next moment a path reported complete has been quiet long enough.
        let complete_due = pending
            .values()
            .filter_map(|p| p.complete)
            .min()
            .map(|at| tokio::time::Instant::from_std(at + COMPLETE_QUIET));
        tokio::select! {
            () = token.cancelled() => return,
            received = rx.recv() => {
                let Some((path, signal)) = received else { return };
                note(&state, &dirs, &model_paths, &mut pending, path, signal);
                // Drain what else arrived, without waiting.
                while let Ok((path, signal)) = rx.try_recv() {
                    note(&state, &dirs, &model_paths, &mut pending, path, signal);
                }
            }
            () = sleep_until_some(complete_due) => {
                let ready = settle_complete(&mut pending).await;
                publish_pending(&state, &pending);
                trigger(&state, ready).await;
            }
            _ = interval.tick() => {
                if overflow.swap(false, Ordering::Relaxed) {
                    tracing::warn!("file events overflowed; syncing every source");
                    for name in state.refresh_sources().await.keys() {
                        let _ = sync::start(&state, name, SyncOptions::default(), Trigger::Watcher, true).await;
                    }
                }
                let ready = settle(&mut pending, debounce).await;
                publish_pending(&state, &pending);
                trigger(&state, ready).await;
            }
        }
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn note(
    state: &AppState,
    dirs: &[PathBuf],
    model_paths: &[PathBuf],
    pending: &mut HashMap<PathBuf, Pending>,
    path: PathBuf,
    signal: Signal,
) {
    // A file of the models project: recompile (coalesced), run what changed.
    if crate::models::files::is_project_file(&path)
        && model_paths.iter().any(|d| path.starts_with(d))
    {
        crate::models::service::files_changed(state);
        return;
    }
    // A file of the project itself (the root is watched on its own, not recursively):
    // schedules.yml tells the scheduler; nothing there is a source file.
    if path.parent() == Some(state.config.root.as_path())
        && !dirs.iter().any(|d| path.starts_with(d))
    {
        if path == crate::schedules::file_path(&state.config) {
            state.schedules.file_event();
        }
        return;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if is_ignored(&name) || path.starts_with(state.config.state_dir()) {
        return;
    }
    state.note_watcher_event(&path);
    // While a writer has it open, no sync (startup, schedule, API) loads it half-written.
    match signal {
        Signal::Written => state.set_writing(&path, true),
        Signal::Complete => state.set_writing(&path, false),
        Signal::Changed => {}
    }
    let now = Instant::now();
    let entry = pending.entry(path).or_insert(Pending {
        seen: None,
        since: now,
        complete: None,
    });
    // A change after a close means the writer is back: wait for its next close (or for
    // the file to be stable).
    entry.complete = (signal == Signal::Complete).then_some(now);
}

/// What a ready path was when last looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    File,
    Directory,
    Gone,
}

/// Returns the paths reported complete that have been quiet for [`COMPLETE_QUIET`] and
/// are still there as files (a gone or replaced path is left to the stability check).
async fn settle_complete(pending: &mut HashMap<PathBuf, Pending>) -> Vec<(PathBuf, Seen)> {
    let now = Instant::now();
    let due: Vec<PathBuf> = pending
        .iter()
        .filter(|(_, p)| {
            p.complete
                .is_some_and(|at| now.duration_since(at) >= COMPLETE_QUIET)
        })
        .map(|(path, _)| path.clone())
        .collect();
    if due.is_empty() {
        return Vec::new();
    }
    let files = crate::blocking::run(move || {
        due.into_iter()
            .map(|p| {
                let is_file = std::fs::metadata(&p).is_ok_and(|m| m.is_file());
                (p, is_file)
            })
            .collect::<Vec<_>>()
    })
    .await;
    let mut ready = Vec::new();
    for (path, is_file) in files {
        match pending.get_mut(&path) {
            // Still complete (no event since the check began) and a file: load it.
            Some(entry) if entry.complete.is_some() && is_file => ready.push((path, Seen::File)),
            Some(entry) => entry.complete = None,
            None => {}
        }
    }
    for (p, _) in &ready {
        pending.remove(p);
    }
    ready
}

/// Stats every pending path; returns those stable for `debounce` (or deleted).
async fn settle(
    pending: &mut HashMap<PathBuf, Pending>,
    debounce: Duration,
) -> Vec<(PathBuf, Seen)> {
    if pending.is_empty() {
        return Vec::new();
    }
    let paths: Vec<PathBuf> = pending.keys().cloned().collect();
    let stats = crate::blocking::run(move || {
        paths
            .into_iter()
            .map(|p| {
                let stat = std::fs::metadata(&p)
                    .ok()
                    .map(|m| (m.is_dir(), m.len(), m.modified().ok()));
                (p, stat)
            })
            .collect::<Vec<_>>()
    })
    .await;
    let now = Instant::now();
    let mut ready = Vec::new();
    for (path, stat) in stats {
        let Some(entry) = pending.get_mut(&path) else {
            continue;
        };
        match stat {
            // Deleted (or renamed away): the sync notices it is gone from disk.
            None => ready.push((path, Seen::Gone)),
            Some((true, _, _)) => ready.push((path, Seen::Directory)),
            Some((false, size, mtime)) => {
                let current = Some((size, mtime.unwrap_or(SystemTime::UNIX_EPOCH)));
                if entry.seen != current {
                    entry.seen = current;
                    entry.since = now;
                } else if now.duration_since(entry.since) >= debounce {
                    ready.push((path, Seen::File));
                }
            }
        }
    }
    for (p, _) in &ready {
        pending.remove(p);
    }
    ready
}

fn publish_pending(state: &AppState, pending: &HashMap<PathBuf, Pending>) {
    let mut names: Vec<String> = pending.keys().map(|p| p.display().to_string()).collect();
    names.sort();
    state.update_watcher_status(|s| s.pending_files = names);
}

/// Starts one sync per source that owns a ready path.
async fn trigger(state: &AppState, ready: Vec<(PathBuf, Seen)>) {
    if ready.is_empty() {
        return;
    }
    for (path, _) in &ready {
        state.set_writing(path, false);
    }
    let mut sources = state.sources();
    // A folder made, removed or renamed is a source come or gone; a path no source owns
    // may be in a folder the snapshot does not know yet. Either way, discover again (off
    // the runtime) before deciding.
    let folders_moved = ready
        .iter()
        .any(|(p, kind)| *kind != Seen::File || !sources.values().any(|s| owns(s, p)));
    if folders_moved {
        sources = state.refresh_sources().await;
    }
    let mut hit: BTreeSet<String> = BTreeSet::new();
    for (path, _) in &ready {
        // The deepest source directory that contains the path owns it.
        let owner = sources
            .values()
            .filter(|s| owns(s, path))
            .max_by_key(|s| s.directory.components().count());
        match owner {
            Some(s) => {
                hit.insert(s.name.clone());
            }
            None => tracing::debug!(path = %path.display(), "changed path belongs to no source"),
        }
    }
    for name in hit {
        match sync::start(state, &name, SyncOptions::default(), Trigger::Watcher, true).await {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(source = %name, error = %e, "cannot start a sync for changed files")
            }
        }
    }
}

fn owns(source: &crate::sources::registry::Source, path: &Path) -> bool {
    if source.recursive {
        path.starts_with(&source.directory)
    } else {
        path.parent() == Some(source.directory.as_path()) || path == source.directory
    }
}
