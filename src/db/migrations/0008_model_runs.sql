-- Model runs (kura run / test / build / seed, the API, runs after loads) and the result
-- of every node and test in them.
CREATE TABLE model_runs (
    id INTEGER PRIMARY KEY,
    command TEXT NOT NULL,            -- run, test, build, seed
    selector TEXT NOT NULL DEFAULT '',
    trigger TEXT NOT NULL,            -- api, cli, sync, watch, schedule
    full_refresh INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,             -- running, success, error, partial
    started_at TEXT NOT NULL,
    finished_at TEXT,
    duration_ms INTEGER,
    error TEXT
);
CREATE INDEX model_runs_started ON model_runs (started_at);

CREATE TABLE model_run_nodes (
    run_id INTEGER NOT NULL REFERENCES model_runs (id) ON DELETE CASCADE,
    unique_id TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,               -- model, seed, test
    position INTEGER NOT NULL,
    status TEXT NOT NULL,             -- pending, running, success, error, skipped, pass, warn, fail
    started_at TEXT,
    duration_ms INTEGER,
    rows INTEGER,
    error TEXT,
    failures INTEGER,
    samples TEXT,                     -- JSON array of up to five failing rows
    PRIMARY KEY (run_id, unique_id)
);
-- A node's latest result (repo::last_results) is looked up by its unique id.
CREATE INDEX model_run_nodes_unique_id ON model_run_nodes (unique_id, run_id);
