//! Events: what happened, when (UTC), and to what. Serialised with a `"type"` field.

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum EventKind {
    SyncStarted {
        source: String,
        record_id: i64,
        full_refresh: bool,
        trigger: String,
    },
    SyncCompleted {
        source: String,
        record_id: i64,
        rows: u64,
        files_loaded: u64,
        files_failed: u64,
        duration_ms: u64,
    },
    SyncFailed {
        source: String,
        record_id: i64,
        error: String,
        file: Option<String>,
    },
    CsvUploaded {
        source: String,
        file: String,
        bytes: u64,
    },
    CsvDeleted {
        source: String,
        file: String,
    },
    FreshnessUpdate {
        source: String,
        last_update: String,
        row_count: u64,
    },
    SchemaDrift {
        source: String,
        table: String,
        change: String,
        breaking: bool,
    },
    /// A scheduled source's last successful sync is older than the threshold.
    SyncStale {
        source: String,
        last_success: Option<String>,
        threshold_hours: u64,
    },
    ScheduleStarted {
        schedule: String,
        job_id: i64,
        trigger: String,
        sources: Vec<String>,
    },
    ScheduleCompleted {
        schedule: String,
        job_id: i64,
        rows: u64,
        duration_ms: u64,
    },
    ScheduleFailed {
        schedule: String,
        job_id: i64,
        /// failed, timeout, cancelled or skipped
        status: String,
        error: String,
    },
    /// A model run began (`command`: run, test, build or seed).
    DbtRunStarted {
        run_id: i64,
        command: String,
        models: Vec<String>,
        trigger: String,
    },
    /// One model or seed of a run was built.
    DbtRunCompleted {
        run_id: i64,
        model: String,
        rows: Option<u64>,
        duration_ms: u64,
    },
    /// One model or seed of a run failed (its previous relation is untouched).
    DbtRunFailed {
        run_id: i64,
        model: String,
        error: String,
    },
    /// A run ended.
    DbtRunFinished {
        run_id: i64,
        /// success, partial or error
        status: String,
        built: u64,
        errors: u64,
        skipped: u64,
        tests_failed: u64,
        duration_ms: u64,
    },
    /// The models project was edited into a state that does not compile; the last good
    /// one stays in use.
    ModelsInvalid {
        errors: Vec<String>,
    },
}

impl EventKind {
    /// The activity-log level of the event.
    pub(crate) fn level(&self) -> &'static str {
        match self {
            Self::SyncFailed { .. }
            | Self::ScheduleFailed { .. }
            | Self::DbtRunFailed { .. }
            | Self::ModelsInvalid { .. } => "error",
            Self::DbtRunFinished { status, .. } if status != "success" => "warning",
            Self::SyncStale { .. } => "warning",
            Self::SchemaDrift { breaking: true, .. } => "warning",
            _ => "info",
        }
    }

    pub(crate) fn source(&self) -> Option<&str> {
        match self {
            Self::SyncStarted { source, .. }
            | Self::SyncCompleted { source, .. }
            | Self::SyncFailed { source, .. }
            | Self::CsvUploaded { source, .. }
            | Self::CsvDeleted { source, .. }
            | Self::FreshnessUpdate { source, .. }
            | Self::SchemaDrift { source, .. }
            | Self::SyncStale { source, .. } => Some(source),
            Self::ScheduleStarted { .. }
            | Self::ScheduleCompleted { .. }
            | Self::ScheduleFailed { .. }
            | Self::DbtRunStarted { .. }
            | Self::DbtRunCompleted { .. }
            | Self::DbtRunFailed { .. }
            | Self::DbtRunFinished { .. }
            | Self::ModelsInvalid { .. } => None,
        }
    }

    /// One readable line for the activity log.
    pub(crate) fn message(&self) -> String {
        match self {
            Self::SyncStarted {
                source,
                full_refresh,
                trigger,
                ..
            } => {
                let kind = if *full_refresh {
                    "full refresh"
                } else {
                    "sync"
                };
                format!("{kind} of {source} started ({trigger})")
            }
            Self::SyncCompleted {
                source,
                rows,
                files_loaded,
                files_failed,
                duration_ms,
                ..
            } => {
                let failed = if *files_failed > 0 {
                    format!(", {files_failed} failed")
                } else {
                    String::new()
                };
                format!(
                    "{source}: {files_loaded} file(s), {rows} rows loaded in {duration_ms} ms{failed}"
                )
            }
            Self::SyncFailed {
                source,
                error,
                file,
                ..
            } => match file {
                Some(f) => format!("{source}: {f} failed: {error}"),
                None => format!("{source}: sync failed: {error}"),
            },
            Self::CsvUploaded {
                source,
                file,
                bytes,
            } => format!("{file} uploaded to {source} ({bytes} bytes)"),
            Self::CsvDeleted { source, file } => format!("{file} deleted from {source}"),
            Self::FreshnessUpdate {
                source, row_count, ..
            } => format!("{source} now has {row_count} rows"),
            Self::SchemaDrift {
                source,
                table,
                change,
                ..
            } => format!("{source}: {table}: {change}"),
            Self::SyncStale {
                source,
                last_success,
                threshold_hours,
            } => match last_success {
                Some(at) => format!(
                    "{source} is stale: last successful sync {at}, more than {threshold_hours} h ago"
                ),
                None => format!(
                    "{source} is stale: no successful sync yet (threshold {threshold_hours} h)"
                ),
            },
            Self::ScheduleStarted {
                schedule,
                trigger,
                sources,
                ..
            } => format!(
                "schedule {schedule} started ({trigger}): {}",
                sources.join(", ")
            ),
            Self::ScheduleCompleted {
                schedule,
                rows,
                duration_ms,
                ..
            } => format!("schedule {schedule} completed: {rows} rows in {duration_ms} ms"),
            Self::ScheduleFailed {
                schedule,
                status,
                error,
                ..
            } => format!("schedule {schedule} {status}: {error}"),
            Self::DbtRunStarted {
                run_id,
                command,
                models,
                trigger,
            } => {
                let what = match models.len() {
                    0 => "tests".to_owned(),
                    n if n <= 5 => models.join(", "),
                    n => format!("{n} models"),
                };
                format!("model {command} #{run_id} started ({trigger}): {what}")
            }
            Self::DbtRunCompleted {
                model,
                rows,
                duration_ms,
                ..
            } => match rows {
                Some(rows) => format!("model {model} built: {rows} rows in {duration_ms} ms"),
                None => format!("model {model} built in {duration_ms} ms"),
            },
            Self::DbtRunFailed { model, error, .. } => format!("model {model} failed: {error}"),
            Self::DbtRunFinished {
                run_id,
                status,
                built,
                errors,
                skipped,
                tests_failed,
                duration_ms,
            } => format!(
                "model run #{run_id} {status} in {duration_ms} ms: {built} built, {errors} failed, \
                 {skipped} skipped, {tests_failed} failing test(s)"
            ),
            Self::ModelsInvalid { errors } => format!(
                "the models project does not compile; the last good version stays in use: {}",
                errors.join("; ")
            ),
        }
    }
}

/// An event with its time, and its level and message as the activity log shows them (so
/// a live view shows the same words as the log).
///
/// Serialised with the reference's keys beside Kura's: the discriminator as `type` (its
/// document) and as `event` (its server and pages, which call an upload `file_uploaded`);
/// `rows_loaded` and `duration_seconds` on `sync_completed`; on file events `file` is the
/// file's name and `path` its project-relative path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    pub(crate) timestamp: String,
    pub(crate) level: &'static str,
    pub(crate) message: String,
    pub(crate) kind: EventKind,
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let serde_json::Value::Object(mut m) =
            serde_json::to_value(&self.kind).map_err(S::Error::custom)?
        else {
            return Err(S::Error::custom("an event kind serialises to an object"));
        };
        let kind = m
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_owned();
        let event = if kind == "csv_uploaded" {
            "file_uploaded".to_owned()
        } else {
            kind
        };
        m.insert("event".into(), event.into());
        if let EventKind::SyncCompleted {
            rows, duration_ms, ..
        } = &self.kind
        {
            m.insert("rows_loaded".into(), (*rows).into());
            m.insert(
                "duration_seconds".into(),
                (*duration_ms as f64 / 1000.0).into(),
            );
        }
        if let EventKind::CsvUploaded { file, .. } | EventKind::CsvDeleted { file, .. } = &self.kind
        {
            let name = file.rsplit('/').next().unwrap_or(file).to_owned();
            m.insert("path".into(), file.clone().into());
            m.insert("file".into(), name.into());
        }
        m.insert("timestamp".into(), self.timestamp.clone().into());
        m.insert("level".into(), self.level.into());
        m.insert("message".into(), self.message.clone().into());
        m.serialize(s)
    }
}

impl Event {
    pub(crate) fn new(kind: EventKind, at: DateTime<Utc>) -> Self {
        Self {
            timestamp: crate::time::text(at),
            level: kind.level(),
            message: kind.message(),
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_type_timestamp_and_subject() {
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let e = Event::new(
            EventKind::CsvUploaded {
                source: "sales".into(),
                file: "a.csv".into(),
                bytes: 3,
            },
            at,
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "csv_uploaded");
        assert_eq!(v["timestamp"], "2026-01-02T03:04:05.000Z");
        assert_eq!(v["source"], "sales");
        assert_eq!(v["file"], "a.csv");
        assert_eq!(v["level"], "info");
        assert_eq!(v["message"], "a.csv uploaded to sales (3 bytes)");
    }

    #[test]
    fn frames_carry_the_reference_servers_keys_beside_the_documents() {
        let at = Utc::now();
        let upload = serde_json::to_value(Event::new(
            EventKind::CsvUploaded {
                source: "sales".into(),
                file: "data/uploads/sales/a.csv".into(),
                bytes: 3,
            },
            at,
        ))
        .unwrap();
        assert_eq!(
            (&upload["type"], &upload["event"]),
            (&"csv_uploaded".into(), &"file_uploaded".into())
        );
        assert_eq!(upload["file"], "a.csv");
        assert_eq!(upload["path"], "data/uploads/sales/a.csv");
        let done = serde_json::to_value(Event::new(
            EventKind::SyncCompleted {
                source: "sales".into(),
                record_id: 1,
                rows: 10,
                files_loaded: 1,
                files_failed: 0,
                duration_ms: 1500,
            },
            at,
        ))
        .unwrap();
        assert_eq!(done["event"], "sync_completed");
        assert_eq!(
            (&done["rows"], &done["rows_loaded"]),
            (&10.into(), &10.into())
        );
        assert_eq!(done["duration_seconds"], 1.5);
        assert_eq!(done["duration_ms"], 1500);
    }
}
