//! The folder watcher: notify events → debounced until stable → syncs of the sources the
//! files belong to.
//!
//! notify's callback runs on notify's own thread and only `try_send`s paths into a bounded
//! channel (a full channel sets a flag that makes the next tick rescan every source, so a
//! flood is never lost, only coalesced). The debounce task keeps each changed path with its
//! last seen size and mtime; a path whose size and mtime have not moved for
//! `platform.debounce_ms` is ready. Ready paths are grouped by source, and each source gets
//! one sync for the whole group — a burst of a thousand files is one sync, not a thousand.

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

/// What `/api/watcher/status` shows.
#[derive(Debug, Clone, Serialize, Default)]
pub struct WatcherStatus {
    pub running: bool,
    pub directories: Vec<PathBuf>,
    pub patterns: Vec<String>,
    pub ignored: Vec<String>,
    pub debounce_ms: u64,
    pub pending_files: Vec<String>,
    pub last_event: Option<String>,
    pub last_event_path: Option<String>,
    pub error: Option<String>,
}

/// A pending path: its last observed (size, mtime) and when that last changed.
struct Pending {
    seen: Option<(u64, SystemTime)>,
    since: Instant,
}

/// Starts the watcher task. Errors (a folder that cannot be watched) are logged and shown
/// in the status; the server runs on without live loading.
pub fn start(state: &AppState) {
    let (tx, rx) = mpsc::channel::<PathBuf>(CHANNEL);
    let overflow = Arc::new(AtomicBool::new(false));
    let dirs = watched_dirs(state);
    let callback_overflow = overflow.clone();
    let watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            // Reads (open, access, close-without-write) are Kura's own sync reading the files,
            // and attribute-only changes (the link count from staging, `touch`) never change
            // a file's content; reacting to them would make every sync start the next one.
            Ok(event)
                if matches!(
                    event.kind,
                    notify::EventKind::Access(_)
                        | notify::EventKind::Modify(notify::event::ModifyKind::Metadata(_))
                ) => {}
            Ok(event) => {
                for path in event.paths {
                    if tx.try_send(path).is_err() {
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
    let watcher = match watcher.and_then(|mut w| {
        for dir in &dirs {
            std::fs::create_dir_all(dir).map_err(notify::Error::io)?;
            w.watch(dir, RecursiveMode::Recursive)?;
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
        debounce_loop(task_state, rx, overflow, token).await;
    });
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
    mut rx: mpsc::Receiver<PathBuf>,
    overflow: Arc<AtomicBool>,
    token: tokio_util::sync::CancellationToken,
) {
    let debounce = Duration::from_millis(state.config.platform.debounce_ms);
    let tick = (debounce / 5).clamp(Duration::from_millis(20), Duration::from_millis(250));
    let mut pending: HashMap<PathBuf, Pending> = HashMap::new();
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            path = rx.recv() => {
                let Some(path) = path else { return };
                note(&state, &mut pending, path);
                // Drain what else arrived, without waiting.
                while let Ok(path) = rx.try_recv() {
                    note(&state, &mut pending, path);
                }
            }
            _ = interval.tick() => {
                if overflow.swap(false, Ordering::Relaxed) {
                    tracing::warn!("file events overflowed; syncing every source");
                    for name in state.sources().keys() {
                        let _ = sync::start(&state, name, SyncOptions::default(), Trigger::Watcher, true).await;
                    }
                }
                let ready = settle(&mut pending, debounce).await;
                publish_pending(&state, &pending);
                if !ready.is_empty() {
                    trigger(&state, ready).await;
                }
            }
        }
    }
}

fn note(state: &AppState, pending: &mut HashMap<PathBuf, Pending>, path: PathBuf) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if is_ignored(&name) || path.starts_with(state.config.state_dir()) {
        return;
    }
    state.note_watcher_event(&path);
    pending.entry(path).or_insert(Pending {
        seen: None,
        since: Instant::now(),
    });
}

/// Stats every pending path; returns those stable for `debounce` (or deleted).
async fn settle(pending: &mut HashMap<PathBuf, Pending>, debounce: Duration) -> Vec<PathBuf> {
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
            None => ready.push(path),
            Some((true, _, _)) => ready.push(path),
            Some((false, size, mtime)) => {
                let current = Some((size, mtime.unwrap_or(SystemTime::UNIX_EPOCH)));
                if entry.seen != current {
                    entry.seen = current;
                    entry.since = now;
                } else if now.duration_since(entry.since) >= debounce {
                    ready.push(path);
                }
            }
        }
    }
    for p in &ready {
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
async fn trigger(state: &AppState, ready: Vec<PathBuf>) {
    let sources = state.sources();
    let mut hit: BTreeSet<String> = BTreeSet::new();
    for path in &ready {
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
