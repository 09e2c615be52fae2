-- Operators: what they need next to the failures (issue 3). The CSV header a failed line is
-- read against (replay parses the line again), an index for time windows, each failure's
-- history, the audit log, and API tokens. History and audit are append-only: triggers refuse
-- updates and deletes, so not even a bug in xiezhi can rewrite them.

ALTER TABLE failures ADD COLUMN raw_context TEXT;
CREATE INDEX failures_last_seen ON failures (last_seen);

CREATE TABLE failure_events (
    seq        INTEGER PRIMARY KEY,
    failure_id TEXT NOT NULL,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    detail     TEXT NOT NULL
);
CREATE INDEX failure_events_failure ON failure_events (failure_id, seq);
CREATE TRIGGER failure_events_append_only_update BEFORE UPDATE ON failure_events
BEGIN SELECT RAISE(ABORT, 'failure history is append-only'); END;
CREATE TRIGGER failure_events_append_only_delete BEFORE DELETE ON failure_events
BEGIN SELECT RAISE(ABORT, 'failure history is append-only'); END;

CREATE TABLE audit_log (
    seq     INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT,
    filter  TEXT NOT NULL,
    count   INTEGER NOT NULL,
    outcome TEXT NOT NULL
);
CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
