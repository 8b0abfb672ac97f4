-- The activity log: every event on the bus is appended here; /api/logs and /logs read it.
CREATE TABLE activity_log (
    id      INTEGER PRIMARY KEY,
    ts      TEXT NOT NULL,               -- UTC, RFC 3339
    type    TEXT NOT NULL,               -- event type, e.g. sync_completed
    level   TEXT NOT NULL CHECK (level IN ('debug', 'info', 'warning', 'error')),
    source  TEXT,                        -- the source the event is about, if any
    message TEXT NOT NULL,
    payload TEXT                         -- the whole event as JSON
);
CREATE INDEX activity_log_ts ON activity_log (ts);
CREATE INDEX activity_log_source ON activity_log (source, ts);
