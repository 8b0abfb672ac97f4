//! The result cache of `POST /api/query`: repeated statements answered without DuckDB.
//!
//! An entry is the JSON answer of one deterministic statement (see [`super::Checked`]),
//! keyed by the caller's data scope and the SQL text, and valid for exactly one warehouse
//! generation. The single writer bumps the generation when a job starts and again when it
//! ends (an odd generation means a writer job is running, see
//! [`crate::db::warehouse::Warehouse::background`]), so:
//!
//! - an entry is stored only when the generation was even and unchanged from before the
//!   worker's transaction began until the answer came back: it shows the warehouse as it
//!   was at that generation, with every earlier commit in it;
//! - it is served only while the generation is that same even number: the moment a
//!   writer job starts, nothing cached is served, and when it ends the whole cache is
//!   dropped. Every signal that a commit happened (the job's answer, its events) comes
//!   after the first bump, so no caller who could know of a commit is served rows from
//!   before it.
//!
//! Bounded by `api.result_cache_mb`; when full, the oldest entries go first.
//!
//! Determinism is the gate's verdict on the statement's own text. Kura creates no views
//! today; once models do, a statement reading a view whose SQL is volatile must be marked
//! non-deterministic too (the view's body is not in the statement).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// A cached answer: the JSON body up to (not including) `,"elapsed_ms":…}`.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) head: Vec<u8>,
    pub(crate) rows: usize,
}

/// Bookkeeping per entry beyond the bytes themselves (key, map and queue slots).
const OVERHEAD: usize = 128;

pub(crate) struct ResultCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    bytes: usize,
    /// scope → SQL → entry: looked up by `&str` without building a key.
    entries: HashMap<Arc<str>, HashMap<Box<str>, Arc<Entry>>>,
    /// Insertion order, for eviction.
    order: VecDeque<(Arc<str>, Box<str>)>,
}

impl ResultCache {
    /// A cache of at most `capacity_mb` MiB (0: nothing is ever cached).
    pub(crate) fn new(capacity_mb: u64) -> Self {
        Self {
            capacity: usize::try_from(capacity_mb.saturating_mul(1024 * 1024))
                .unwrap_or(usize::MAX),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The answer to `sql` for `scope` at warehouse generation `generation`, if cached.
    pub(crate) fn get(&self, generation: u64, scope: &str, sql: &str) -> Option<Arc<Entry>> {
        if self.capacity == 0 || !is_quiet(generation) {
            return None;
        }
        let mut inner = self.lock();
        inner.roll_to(generation);
        inner.entries.get(scope)?.get(sql).cloned()
    }

    /// Keeps `entry` as the answer to `sql` for `scope`, computed in a transaction begun at
    /// `began`; `now` is the generation after the answer came back.
    pub(crate) fn put(&self, began: u64, now: u64, scope: &str, sql: &str, entry: Entry) {
        let size = entry.head.len() + sql.len() + OVERHEAD;
        if began != now || !is_quiet(began) || size > self.capacity / 4 {
            return;
        }
        let mut inner = self.lock();
        inner.roll_to(began);
        if inner.generation != began {
            return; // a newer generation is already being cached
        }
        while inner.bytes + size > self.capacity {
            let Some((s, q)) = inner.order.pop_front() else {
                break;
            };
            inner.remove(&s, &q);
        }
        let scope: Arc<str> = match inner.entries.get_key_value(scope) {
            Some((k, _)) => k.clone(),
            None => scope.into(),
        };
        let previous = inner
            .entries
            .entry(scope.clone())
            .or_default()
            .insert(sql.into(), Arc::new(entry));
        match previous {
            // Two workers answered the same statement at once: the first entry's bytes
            // and queue slot stay, the second answer replaces it in place.
            Some(old) => inner.bytes = inner.bytes - (old.head.len() + sql.len() + OVERHEAD) + size,
            None => {
                inner.bytes += size;
                inner.order.push_back((scope, sql.into()));
            }
        }
    }

    /// Bytes held (entries and their bookkeeping).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::locks::lock(&self.inner)
    }
}

/// No writer job is running at this generation.
fn is_quiet(generation: u64) -> bool {
    generation.is_multiple_of(2)
}

impl Inner {
    /// Drops everything cached for an older generation.
    fn roll_to(&mut self, generation: u64) {
        if generation > self.generation {
            self.generation = generation;
            self.entries.clear();
            self.order.clear();
            self.bytes = 0;
        }
    }

    fn remove(&mut self, scope: &str, sql: &str) {
        if let Some(by_sql) = self.entries.get_mut(scope)
            && let Some(old) = by_sql.remove(sql)
        {
            self.bytes -= old.head.len() + sql.len() + OVERHEAD;
            if by_sql.is_empty() {
                self.entries.remove(scope);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bytes: usize) -> Entry {
        Entry {
            head: vec![b'x'; bytes],
            rows: 1,
        }
    }

    #[test]
    fn an_entry_lives_for_exactly_one_quiet_generation() {
        let cache = ResultCache::new(1);
        cache.put(2, 2, "admin", "SELECT 1", entry(10));
        assert!(cache.get(2, "admin", "SELECT 1").is_some());
        // Another scope does not see it.
        assert!(cache.get(2, "viewer", "SELECT 1").is_none());
        // A writer job is running: nothing is served.
        assert!(cache.get(3, "admin", "SELECT 1").is_none());
        // It ended: everything older is gone, also for a late lookup.
        assert!(cache.get(4, "admin", "SELECT 1").is_none());
        assert!(cache.get(2, "admin", "SELECT 1").is_none());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn answers_from_a_moving_or_busy_warehouse_are_not_kept() {
        let cache = ResultCache::new(1);
        // The transaction began before a writer job that finished before the answer.
        cache.put(2, 4, "admin", "SELECT 1", entry(10));
        assert!(cache.get(4, "admin", "SELECT 1").is_none());
        // Begun while a writer job ran.
        cache.put(5, 5, "admin", "SELECT 1", entry(10));
        assert!(cache.get(5, "admin", "SELECT 1").is_none());
        // An answer from an older generation never lands in a newer one.
        cache.put(6, 6, "admin", "SELECT 2", entry(10));
        cache.put(4, 4, "admin", "SELECT 1", entry(10));
        assert!(cache.get(6, "admin", "SELECT 1").is_none());
        assert!(cache.get(6, "admin", "SELECT 2").is_some());
    }

    #[test]
    fn the_size_bound_evicts_the_oldest_first() {
        let cache = ResultCache::new(1); // 1 MiB
        for i in 0..20 {
            cache.put(0, 0, "admin", &format!("SELECT {i}"), entry(100_000));
        }
        assert!(cache.bytes() <= 1024 * 1024);
        assert!(cache.get(0, "admin", "SELECT 0").is_none());
        assert!(cache.get(0, "admin", "SELECT 19").is_some());
        // One answer larger than a quarter of the cache is never kept.
        cache.put(0, 0, "admin", "SELECT big", entry(300_000));
        assert!(cache.get(0, "admin", "SELECT big").is_none());
        // A zero-sized cache keeps nothing.
        let off = ResultCache::new(0);
        off.put(0, 0, "admin", "SELECT 1", entry(1));
        assert!(off.get(0, "admin", "SELECT 1").is_none());
    }

    #[test]
    fn the_same_answer_twice_is_counted_once() {
        let cache = ResultCache::new(1);
        cache.put(0, 0, "admin", "SELECT 1", entry(10));
        let once = cache.bytes();
        cache.put(0, 0, "admin", "SELECT 1", entry(10));
        assert_eq!(cache.bytes(), once);
    }
}
