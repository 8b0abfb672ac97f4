-- Runs of the schedules in schedules.yml (one row per job, including skipped ticks).
CREATE TABLE schedule_runs (
    id INTEGER PRIMARY KEY,
    schedule TEXT NOT NULL,
    -- cron, manual (kura schedule run), api (POST .../trigger), misfire (at start)
    trigger TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    -- running, success, failed, cancelled, timeout, skipped
    status TEXT NOT NULL,
    error TEXT,
    rows INTEGER,
    duration_ms INTEGER,
    attempts INTEGER NOT NULL DEFAULT 1,
    sync_records TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX schedule_runs_schedule ON schedule_runs(schedule, id);
