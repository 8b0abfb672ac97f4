-- A sync asked for while one runs has its record from the moment it is asked for, with
-- status 'queued' until it starts (an upload's answer names it). SQLite cannot change a
-- CHECK constraint in place: the table is rebuilt with its rows.
CREATE TABLE sync_runs_new (
    id            INTEGER PRIMARY KEY,
    source        TEXT NOT NULL,
    trigger       TEXT NOT NULL,          -- api | watcher | startup | cli | upload | schedule
    full_refresh  INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL CHECK (status IN ('queued', 'running', 'success', 'partial', 'failed')),
    started_at    TEXT NOT NULL,
    ended_at      TEXT,
    duration_ms   INTEGER,
    rows          INTEGER,
    files_loaded  INTEGER,
    files_failed  INTEGER,
    error         TEXT,
    details       TEXT                    -- JSON: [{path, outcome, rows, error}]
);
INSERT INTO sync_runs_new SELECT id, source, trigger, full_refresh, status, started_at, ended_at,
    duration_ms, rows, files_loaded, files_failed, error, details FROM sync_runs;
DROP TABLE sync_runs;
ALTER TABLE sync_runs_new RENAME TO sync_runs;
CREATE INDEX sync_runs_source ON sync_runs (source, id);
