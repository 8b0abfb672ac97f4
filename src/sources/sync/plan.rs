//! What a sync does with each file, decided from the files on disk and the ledger alone:
//! no IO, so every rule is a unit test. [`plan`] decides before hashing; for the files it
//! sends to be examined, [`after_hash`] decides once their content hash is known. The sync
//! (`super::sync_files`) carries the actions out.

use std::collections::{BTreeMap, HashSet};

use crate::sources::inflight;
use crate::sources::ledger::{Entry, FileStatus};
use crate::sources::registry::{DiskFile, Layout};

/// The source's rules that shape a plan.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rules {
    /// Reload every file, changed or not (quarantined ones included).
    pub(super) full_refresh: bool,
    pub(super) layout: Layout,
    /// A file gone from disk keeps its rows (`on_delete: keep`).
    pub(super) keep_deleted: bool,
}

/// One step of a sync. `file` indexes the disk listing given to [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// Not a file type Kura loads.
    Unsupported { file: usize },
    /// A table-per-file source whose earlier file already fills this file's table.
    TableTaken {
        file: usize,
        table: String,
        other: String,
    },
    /// Loaded before with the same size and modification time: not even hashed.
    Unchanged { file: usize },
    /// The watcher saw it change and not yet complete: it syncs it once it is whole.
    Writing { file: usize },
    /// New, changed, failed before, or refreshed: hash it, then [`after_hash`] decides.
    Examine { file: usize, table: String },
    /// On record, gone from disk: remove its rows (or keep them).
    Remove {
        path: String,
        table: String,
        keep: bool,
    },
}

/// The actions for `disk` (in its order), then for the files only the ledger knows.
pub(super) fn plan(
    disk: &[DiskFile],
    ledger: &BTreeMap<String, Entry>,
    rules: Rules,
    table_for: impl Fn(&DiskFile) -> String,
    being_written: impl Fn(&DiskFile) -> bool,
) -> Vec<Action> {
    let mut actions = Vec::with_capacity(disk.len());
    let mut tables_taken: BTreeMap<String, &str> = BTreeMap::new();
    for (index, file) in disk.iter().enumerate() {
        if file.kind.is_none() {
            actions.push(Action::Unsupported { file: index });
            continue;
        }
        let table = table_for(file);
        if rules.layout == Layout::TablePerFile {
            if let Some(other) = tables_taken.get(&table) {
                actions.push(Action::TableTaken {
                    file: index,
                    table,
                    other: (*other).to_owned(),
                });
                continue;
            }
            tables_taken.insert(table.clone(), &file.rel);
        }
        let previous = ledger.get(&file.rel);
        let same_stat = previous
            .is_some_and(|p| p.status.settled() && p.size == file.size && p.mtime == file.mtime);
        actions.push(if !rules.full_refresh && same_stat {
            Action::Unchanged { file: index }
        } else if being_written(file) {
            Action::Writing { file: index }
        } else {
            Action::Examine { file: index, table }
        });
    }
    let on_disk: HashSet<&str> = disk.iter().map(|f| f.rel.as_str()).collect();
    for (path, entry) in ledger {
        if on_disk.contains(path.as_str()) || entry.status == FileStatus::Deleted {
            continue;
        }
        actions.push(Action::Remove {
            path: path.clone(),
            table: entry.table_name.clone(),
            keep: rules.keep_deleted,
        });
    }
    actions
}

/// What to do with an examined file, given its content hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterHash {
    /// Its load killed the process before (see `inflight`): it stays out until its content
    /// changes or a full refresh asks for it.
    Quarantined,
    /// Same content as loaded (only size or time moved): the ledger takes the new ones.
    Touch,
    Load,
}

pub(super) fn after_hash(previous: Option<&Entry>, hash: &str, full_refresh: bool) -> AfterHash {
    let Some(previous) = previous else {
        return AfterHash::Load;
    };
    if full_refresh {
        AfterHash::Load
    } else if previous.status == FileStatus::Failed
        && previous.hash == hash
        && previous.error.as_deref() == Some(inflight::QUARANTINED)
    {
        AfterHash::Quarantined
    } else if previous.status.settled() && previous.hash == hash {
        AfterHash::Touch
    } else {
        AfterHash::Load
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::formats::{Format, Kind};
    use chrono::{DateTime, Utc};

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    fn file(rel: &str, size: u64, mtime: i64) -> DiskFile {
        DiskFile {
            path: format!("/p/{rel}").into(),
            rel: rel.to_owned(),
            size,
            mtime: at(mtime),
            kind: rel.ends_with(".csv").then_some(Kind::Direct(Format::Csv)),
        }
    }

    fn entry(status: FileStatus, size: u64, mtime: i64, hash: &str) -> Entry {
        Entry {
            size,
            mtime: at(mtime),
            hash: hash.to_owned(),
            status,
            table_name: "raw_s.s".to_owned(),
            error: None,
        }
    }

    const UNION: Rules = Rules {
        full_refresh: false,
        layout: Layout::Union,
        keep_deleted: false,
    };

    fn plan_of(disk: &[DiskFile], ledger: &[(&str, Entry)], rules: Rules) -> Vec<Action> {
        let ledger = ledger
            .iter()
            .map(|(p, e)| ((*p).to_owned(), e.clone()))
            .collect();
        plan(
            disk,
            &ledger,
            rules,
            |f| f.rel.trim_end_matches(".csv").replace('/', "_"),
            |f| f.rel.starts_with("growing"),
        )
    }

    #[test]
    fn unchanged_files_are_not_hashed_changed_and_new_ones_are() {
        let disk = [
            file("a.csv", 10, 100),
            file("b.csv", 20, 200),
            file("c.csv", 5, 5),
        ];
        let ledger = [
            ("a.csv", entry(FileStatus::Loaded, 10, 100, "ha")),
            ("b.csv", entry(FileStatus::Loaded, 20, 150, "hb")),
        ];
        assert_eq!(
            plan_of(&disk, &ledger, UNION),
            [
                Action::Unchanged { file: 0 },
                Action::Examine {
                    file: 1,
                    table: "b".into()
                },
                Action::Examine {
                    file: 2,
                    table: "c".into()
                },
            ]
        );
        // A full refresh examines everything.
        let refresh = Rules {
            full_refresh: true,
            ..UNION
        };
        assert!(matches!(
            plan_of(&disk, &ledger, refresh)[0],
            Action::Examine { file: 0, .. }
        ));
    }

    #[test]
    fn a_failed_file_is_examined_again_even_with_the_same_size_and_time() {
        let disk = [file("a.csv", 10, 100)];
        let ledger = [("a.csv", entry(FileStatus::Failed, 10, 100, "ha"))];
        assert!(matches!(
            plan_of(&disk, &ledger, UNION)[0],
            Action::Examine { file: 0, .. }
        ));
    }

    #[test]
    fn unsupported_files_growing_files_and_taken_tables_are_reported() {
        let disk = [
            file("notes.txt", 1, 1),
            file("growing.csv", 1, 1),
            file("x/a.csv", 1, 1),
            file("x_a.csv", 1, 1),
        ];
        let per_file = Rules {
            layout: Layout::TablePerFile,
            ..UNION
        };
        assert_eq!(
            plan_of(&disk, &[], per_file),
            [
                Action::Unsupported { file: 0 },
                Action::Writing { file: 1 },
                Action::Examine {
                    file: 2,
                    table: "x_a".into()
                },
                Action::TableTaken {
                    file: 3,
                    table: "x_a".into(),
                    other: "x/a.csv".into()
                },
            ]
        );
        // A union source gathers files into one table: nothing is taken.
        assert!(
            plan_of(&disk[2..], &[], UNION)
                .iter()
                .all(|a| matches!(a, Action::Examine { .. }))
        );
    }

    #[test]
    fn files_gone_from_disk_are_removed_or_kept_once() {
        let ledger = [
            ("gone.csv", entry(FileStatus::Loaded, 1, 1, "h")),
            ("kept-before.csv", entry(FileStatus::Deleted, 1, 1, "h")),
        ];
        assert_eq!(
            plan_of(&[], &ledger, UNION),
            [Action::Remove {
                path: "gone.csv".into(),
                table: "raw_s.s".into(),
                keep: false
            }]
        );
        let keep = Rules {
            keep_deleted: true,
            ..UNION
        };
        assert!(matches!(
            &plan_of(&[], &ledger, keep)[..],
            [Action::Remove { keep: true, .. }]
        ));
    }

    #[test]
    fn after_hashing_same_content_is_a_touch_and_quarantine_holds_until_content_changes() {
        let loaded = entry(FileStatus::Loaded, 1, 1, "h");
        assert_eq!(after_hash(None, "h", false), AfterHash::Load);
        assert_eq!(after_hash(Some(&loaded), "h", false), AfterHash::Touch);
        assert_eq!(after_hash(Some(&loaded), "other", false), AfterHash::Load);
        assert_eq!(after_hash(Some(&loaded), "h", true), AfterHash::Load);
        let quarantined = Entry {
            error: Some(inflight::QUARANTINED.to_owned()),
            ..entry(FileStatus::Failed, 1, 1, "h")
        };
        assert_eq!(
            after_hash(Some(&quarantined), "h", false),
            AfterHash::Quarantined
        );
        assert_eq!(
            after_hash(Some(&quarantined), "new", false),
            AfterHash::Load
        );
        assert_eq!(after_hash(Some(&quarantined), "h", true), AfterHash::Load);
        // An ordinary failure with the same content is tried again.
        let failed = entry(FileStatus::Failed, 1, 1, "h");
        assert_eq!(after_hash(Some(&failed), "h", false), AfterHash::Load);
    }
}
