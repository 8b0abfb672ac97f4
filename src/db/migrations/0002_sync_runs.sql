-- Sync history: one row per sync of a source, with each file's outcome in `details`.
CREATE TABLE sync_runs (
    id            INTEGER PRIMARY KEY,
    source        TEXT NOT NULL,
    trigger       TEXT NOT NULL,          -- api | watcher | startup | cli | upload
    full_refresh  INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL CHECK (status IN ('running', 'success', 'partial', 'failed')),
    started_at    TEXT NOT NULL,
    ended_at      TEXT,
    duration_ms   INTEGER,
    rows          INTEGER,
    files_loaded  INTEGER,
    files_failed  INTEGER,
    error         TEXT,
    details       TEXT                    -- JSON: [{path, outcome, rows, error}]
);
CREATE INDEX sync_runs_source ON sync_runs (source, id);
