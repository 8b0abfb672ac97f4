-- Wrong codes of one pending two-factor sign-in, counted atomically: parallel requests on
-- the same session each read the session's data before any of them writes it back, so a
-- counter in the session let 20 parallel guesses through against a cap of 5.
CREATE TABLE two_factor_attempts (
    pending_id TEXT PRIMARY KEY,
    tries INTEGER NOT NULL,
    started_at INTEGER NOT NULL
);
-- Session ids are stored hashed from this version on: earlier rows can never match.
DELETE FROM sessions;
