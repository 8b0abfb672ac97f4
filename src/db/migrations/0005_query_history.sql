-- Queries run from the SQL page, per user (the page's "recent queries").
CREATE TABLE query_history (
    id INTEGER PRIMARY KEY,
    user_email TEXT NOT NULL,
    sql TEXT NOT NULL,
    ran_at TEXT NOT NULL,
    ok INTEGER NOT NULL,
    rows INTEGER,
    elapsed_ms REAL,
    error TEXT
);
CREATE INDEX query_history_user ON query_history(user_email, id);
