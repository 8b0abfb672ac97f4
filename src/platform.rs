//! Platform endpoints: `/api/status`, `/api/config`, `/api/health/platform`.
//!
//! The numbers come from the stores themselves: table counts from DuckDB's catalog (read
//! on a query worker, never through the user gate), sizes and disk space from the file
//! system.

pub mod handlers;
pub mod page;
pub mod repo;

use std::path::Path;

use serde::Serialize;

/// Bytes of the files under `dir` (0 when it does not exist).
pub(crate) fn folder_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => folder_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// How full the warehouse is against the size this machine handles well: the smaller of
/// 4× its memory and 80 % of its disk (the reference's rule, so its monitors agree).
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Capacity {
    pub(crate) duckdb_size_bytes: u64,
    pub(crate) duckdb_capacity_pct: f64,
    pub(crate) recommended_max_db_size_bytes: u64,
    /// healthy (up to 50 %), warning (up to 75 %), critical or unknown.
    pub(crate) duckdb_capacity_status: &'static str,
    pub(crate) duckdb_capacity_warning: bool,
}

pub(crate) fn capacity(size: u64, disk_total: Option<u64>, memory_total: Option<u64>) -> Capacity {
    let recommended = match (disk_total, memory_total) {
        (Some(d), Some(m)) => Some(m.saturating_mul(4).min(d / 10 * 8)),
        (Some(d), None) => Some(d / 10 * 8),
        (None, Some(m)) => Some(m.saturating_mul(4)),
        (None, None) => None,
    };
    let Some(recommended) = recommended.filter(|r| *r > 0) else {
        return Capacity {
            duckdb_size_bytes: size,
            duckdb_capacity_pct: 0.0,
            recommended_max_db_size_bytes: 0,
            duckdb_capacity_status: "unknown",
            duckdb_capacity_warning: false,
        };
    };
    let pct = ((size as f64 / recommended as f64 * 1000.0).round() / 10.0).min(100.0);
    Capacity {
        duckdb_size_bytes: size,
        duckdb_capacity_pct: pct,
        recommended_max_db_size_bytes: recommended,
        duckdb_capacity_status: if pct > 75.0 {
            "critical"
        } else if pct > 50.0 {
            "warning"
        } else {
            "healthy"
        },
        duckdb_capacity_warning: pct > 75.0,
    }
}

/// Size in bytes of the warehouse file plus its write-ahead log.
pub(crate) fn warehouse_bytes(path: &Path) -> u64 {
    let wal = crate::db::warehouse::wal_path(path);
    [path, wal.as_path()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Free and total bytes on the disk holding `path`.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Disk {
    pub(crate) free_bytes: u64,
    pub(crate) total_bytes: u64,
}

pub(crate) fn disk(path: &Path) -> std::io::Result<Disk> {
    Ok(Disk {
        free_bytes: fs4::available_space(path)?,
        total_bytes: fs4::total_space(path)?,
    })
}

/// `ok`, `warning` (under 10 % or 5 GB free) or `critical` (under 1 GB free).
pub(crate) fn disk_status(d: &Disk) -> &'static str {
    const GB: u64 = 1 << 30;
    if d.free_bytes < GB {
        "critical"
    } else if d.free_bytes < 5 * GB || d.free_bytes.saturating_mul(10) < d.total_bytes {
        "warning"
    } else {
        "ok"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_measured_against_memory_and_disk() {
        const GB: u64 = 1 << 30;
        // 4 × 2 GB of memory is less than 80 % of 100 GB of disk.
        let c = capacity(2 * GB, Some(100 * GB), Some(2 * GB));
        assert_eq!(c.recommended_max_db_size_bytes, 8 * GB);
        assert_eq!(c.duckdb_capacity_pct, 25.0);
        assert_eq!(c.duckdb_capacity_status, "healthy");
        let full = capacity(7 * GB, Some(100 * GB), Some(2 * GB));
        assert_eq!(full.duckdb_capacity_status, "critical");
        assert!(full.duckdb_capacity_warning);
        assert_eq!(capacity(1, None, None).duckdb_capacity_status, "unknown");
    }

    #[test]
    fn disk_status_thresholds() {
        const GB: u64 = 1 << 30;
        assert_eq!(
            disk_status(&Disk {
                free_bytes: GB / 2,
                total_bytes: 100 * GB
            }),
            "critical"
        );
        assert_eq!(
            disk_status(&Disk {
                free_bytes: 3 * GB,
                total_bytes: 20 * GB
            }),
            "warning"
        );
        assert_eq!(
            disk_status(&Disk {
                free_bytes: 8 * GB,
                total_bytes: 200 * GB
            }),
            "warning"
        );
        assert_eq!(
            disk_status(&Disk {
                free_bytes: 50 * GB,
                total_bytes: 200 * GB
            }),
            "ok"
        );
    }
}

/// Memory of the Kura process and of the machine, where the system tells (Linux `/proc`).
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub(crate) struct Memory {
    pub(crate) process_rss_mb: Option<f64>,
    pub(crate) system_total_mb: Option<f64>,
    pub(crate) system_available_mb: Option<f64>,
}

/// The kB value of `key` in a `/proc` status-style file.
fn proc_kb(text: &str, key: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(key)?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse::<f64>()
            .ok()
    })
}

pub(crate) fn memory() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mb = |kb: f64| (kb / 1024.0 * 10.0).round() / 10.0;
    Memory {
        process_rss_mb: proc_kb(&status, "VmRSS:").map(mb),
        system_total_mb: proc_kb(&info, "MemTotal:").map(mb),
        system_available_mb: proc_kb(&info, "MemAvailable:").map(mb),
    }
}

#[cfg(test)]
mod memory_tests {
    #[test]
    fn proc_values_are_read_in_kb() {
        let text = "Name:\tkura\nVmRSS:\t  20480 kB\nThreads: 9\n";
        assert_eq!(super::proc_kb(text, "VmRSS:"), Some(20480.0));
        assert_eq!(super::proc_kb(text, "VmSwap:"), None);
    }
}
