//! The activity log (`activity_log`, metadata store): the event bus appends every event,
//! `/api/logs`, a source's logs, the logs page and the overview read it. Every read and
//! write of the table is here.

use serde::Serialize;

use super::Event;

/// Appends one published event (`payload` is its JSON, with its `type`).
pub(crate) fn append(
    c: &rusqlite::Connection,
    event: &Event,
    payload: &str,
) -> rusqlite::Result<()> {
    let kind_name = serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned))
        .unwrap_or_default();
    c.execute(
        "INSERT INTO activity_log (ts, type, level, source, message, payload) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        rusqlite::params![
            event.timestamp,
            kind_name,
            event.level,
            event.kind.source(),
            event.message,
            payload
        ],
    )
    .map(|_| ())
}

/// One line of the activity log.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LogEntry {
    pub(crate) id: i64,
    pub(crate) timestamp: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) level: String,
    pub(crate) source: Option<String>,
    pub(crate) message: String,
    pub(crate) event: serde_json::Value,
    /// The reference's grouping of log lines: `sync`, `schedule`, `auth`, ... (the part of
    /// the event type before its first `_`).
    pub(crate) category: String,
    /// The reference names its version on every line; Kura's, here.
    pub(crate) dango_version: &'static str,
}

/// Which activity-log rows to read; every field narrows.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogFilter {
    pub(crate) limit: Option<i64>,
    /// info, warning or error: that level and above.
    pub(crate) level: Option<String>,
    pub(crate) source: Option<String>,
    /// Case-insensitive text in the message.
    pub(crate) q: Option<String>,
    /// RFC 3339 times (or dates): from `since`, before `until`.
    pub(crate) since: Option<String>,
    pub(crate) until: Option<String>,
}

impl LogFilter {
    pub(crate) fn newest(source: Option<&str>, limit: i64) -> Self {
        Self {
            limit: Some(limit),
            source: source.map(str::to_owned),
            ..Self::default()
        }
    }

    /// The levels at or above `level`, or `None` for every level.
    fn levels(&self) -> Option<&'static str> {
        match self.level.as_deref()? {
            "error" => Some("error"),
            "warning" => Some("warning,error"),
            _ => None,
        }
    }
}

/// The rows `f` selects, newest first.
pub(crate) fn read(c: &rusqlite::Connection, f: &LogFilter) -> rusqlite::Result<Vec<LogEntry>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, ts, type, level, source, message, payload FROM activity_log \
         WHERE (?1 IS NULL OR source = ?1) \
           AND (?2 IS NULL OR instr(',' || ?2 || ',', ',' || level || ',') > 0) \
           AND (?3 IS NULL OR instr(lower(message), lower(?3)) > 0) \
           AND (?4 IS NULL OR ts >= ?4) AND (?5 IS NULL OR ts < ?5) \
         ORDER BY id DESC LIMIT ?6",
    )?;
    let nonempty = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let params = rusqlite::params![
        nonempty(&f.source),
        f.levels(),
        nonempty(&f.q),
        nonempty(&f.since),
        nonempty(&f.until),
        f.limit.unwrap_or(1000).clamp(1, 10_000)
    ];
    let rows = stmt.query_map(params, |r| {
        let payload: Option<String> = r.get(6)?;
        let kind: String = r.get(2)?;
        Ok(LogEntry {
            id: r.get(0)?,
            timestamp: r.get(1)?,
            category: kind.split('_').next().unwrap_or_default().to_owned(),
            dango_version: crate::VERSION,
            kind,
            level: r.get(3)?,
            source: r.get(4)?,
            message: r.get(5)?,
            event: payload
                .and_then(|p| serde_json::from_str(&p).ok())
                .unwrap_or(serde_json::Value::Null),
        })
    })?;
    rows.collect()
}
