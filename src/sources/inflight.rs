//! Files whose load is under way, marked on disk (`.kura/inflight/`).
//!
//! A reader that crashes or exhausts the process (a hostile workbook, a reader bug) must
//! not take the server down twice: the marker is written and synced before a file is
//! converted or loaded, and removed when its load ends in any way the process survives.
//! A marker still there at the next sync of the file means the previous attempt killed
//! the process: the file is quarantined (recorded as failed with its content hash, and
//! left out of later syncs until its content changes or a full refresh asks for it).
//! A load cut by an operator's `kill -9` or a power cut is quarantined the same way: the
//! two cannot be told apart, and a file that crashes the server must not do it twice.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The error a quarantined file is recorded with.
pub(crate) const QUARANTINED: &str = "the server stopped while loading this file (it crashed, ran out \
     of memory or was killed); the file is quarantined: it is loaded again once it changes, \
     or by a full refresh of its source";

fn marker_path(dir: &Path, source: &str, rel: &str) -> PathBuf {
    let key = xxhash_rust::xxh3::xxh3_128(format!("{source}\0{rel}").as_bytes());
    dir.join(format!("{key:032x}"))
}

/// A load in progress; dropping it removes the marker.
pub(crate) struct Marker(PathBuf);

impl Drop for Marker {
    fn drop(&mut self) {
        // An unlink of a tiny file: cheap enough to do wherever the load ends.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Marks `rel` of `source` (with content `hash`) as being loaded, durably.
pub(crate) fn begin(dir: &Path, source: &str, rel: &str, hash: &str) -> std::io::Result<Marker> {
    std::fs::create_dir_all(dir)?;
    let path = marker_path(dir, source, rel);
    // Written under a temporary name and renamed: a marker is whole or absent, so a crash
    // right after it appears is still recognised as this content's.
    let mut temp = path.clone().into_os_string();
    temp.push(".tmp");
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(hash.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, &path)?;
    Ok(Marker(path))
}

/// True if an earlier load of this very content never ended (the process died in it).
/// The marker is consumed either way: a file whose content changed is loaded afresh.
pub(crate) fn crashed_before(dir: &Path, source: &str, rel: &str, hash: &str) -> bool {
    let path = marker_path(dir, source, rel);
    let Ok(recorded) = std::fs::read_to_string(&path) else {
        return false;
    };
    let _ = std::fs::remove_file(&path);
    recorded == hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_left_behind_quarantines_the_same_content_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("inflight");
        // A load that ends normally leaves nothing.
        drop(begin(&d, "s", "a.xlsx", "h1").unwrap());
        assert!(!crashed_before(&d, "s", "a.xlsx", "h1"));
        // A load the process did not survive (the marker is never dropped).
        std::mem::forget(begin(&d, "s", "a.xlsx", "h1").unwrap());
        assert!(!crashed_before(&d, "s", "b.xlsx", "h1"));
        assert!(crashed_before(&d, "s", "a.xlsx", "h1"));
        // Consumed: the next attempt is not quarantined again by the same marker.
        assert!(!crashed_before(&d, "s", "a.xlsx", "h1"));
        // Changed content is loaded afresh.
        std::mem::forget(begin(&d, "s", "a.xlsx", "h1").unwrap());
        assert!(!crashed_before(&d, "s", "a.xlsx", "h2"));
    }
}
