-- The supervision store (SQLite, the embedded default). Same tables as PostgreSQL, except that
-- records has no body column: a record's body is stored once, in the history row of its current
-- version (PostgreSQL keeps a jsonb copy in records for queries). Bodies are JSON text and times
-- are microseconds since the Unix epoch.

CREATE TABLE change_seq (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
);
INSERT INTO change_seq (id, last) VALUES (1, 0);

CREATE TABLE records (
    record_type  TEXT NOT NULL,
    key          TEXT NOT NULL,
    version      INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    deleted      INTEGER NOT NULL,
    division     TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    sources      TEXT NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (record_type, key)
);

-- Bodies of contributions that differ from the merged record. Each contribution's hash,
-- lineage and deleted flag live in records.sources; a contribution equal to the merged record
-- (the common single-source case) has no row here, its body being the record's.
CREATE TABLE record_sources (
    record_type  TEXT NOT NULL,
    key          TEXT NOT NULL,
    connector    TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    data         TEXT NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (record_type, key, connector)
);

CREATE TABLE record_versions (
    seq          INTEGER PRIMARY KEY,
    record_type  TEXT NOT NULL,
    key          TEXT NOT NULL,
    version      INTEGER NOT NULL,
    deleted      INTEGER NOT NULL,
    division     TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    data         TEXT,
    changed_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX record_versions_key ON record_versions (record_type, key, version);

CREATE TABLE applied_batches (
    batch_id   TEXT PRIMARY KEY,
    applied_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE failures (
    id          TEXT PRIMARY KEY,
    stage       TEXT NOT NULL,
    connector   TEXT NOT NULL,
    stream      TEXT NOT NULL,
    record_type TEXT,
    natural_key TEXT,
    upstream_id TEXT,
    raw         TEXT NOT NULL,
    normalized  TEXT,
    errors      TEXT NOT NULL,
    lineage     TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    status      TEXT NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
);
CREATE INDEX failures_status_connector ON failures (status, connector);

CREATE TABLE checkpoints (
    connector  TEXT NOT NULL,
    stream     TEXT NOT NULL,
    cursor     TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (connector, stream)
) WITHOUT ROWID;

CREATE TABLE sync_runs (
    run_id     TEXT PRIMARY KEY,
    published  INTEGER NOT NULL DEFAULT 0,
    ingested   INTEGER NOT NULL DEFAULT 0,
    failed     INTEGER NOT NULL DEFAULT 0,
    started_at INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
