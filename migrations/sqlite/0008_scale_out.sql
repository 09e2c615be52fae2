-- Scale-out (issue 5); see migrations/postgres/0007_scale_out.sql. Times are microseconds
-- since the epoch.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    acquired_at INTEGER NOT NULL,
    renewed_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE schedule_state (
    connector   TEXT NOT NULL,
    stream      TEXT NOT NULL,
    occurrence  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    holder      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    PRIMARY KEY (connector, stream)
) WITHOUT ROWID;

ALTER TABLE checkpoints ADD COLUMN last_commit TEXT;

CREATE TABLE sync_reconciliations (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         TEXT NOT NULL,
    connector      TEXT NOT NULL,
    stream         TEXT NOT NULL,
    record_type    TEXT NOT NULL,
    holder         TEXT NOT NULL,
    started_at     INTEGER NOT NULL,
    finished_at    INTEGER NOT NULL,
    upstream_total INTEGER,
    expected       INTEGER,
    fetched        INTEGER NOT NULL,
    normalised     INTEGER NOT NULL,
    routed         INTEGER NOT NULL,
    failed         INTEGER NOT NULL,
    outside_window INTEGER NOT NULL,
    outcome        TEXT NOT NULL,
    gaps           TEXT NOT NULL
);
CREATE INDEX sync_reconciliations_stream ON sync_reconciliations (connector, stream, id);
