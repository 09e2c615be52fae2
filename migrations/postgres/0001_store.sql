-- The supervision store (PostgreSQL). Only records.data is jsonb (queried by feeds and
-- operators); history and per-source copies are text, because a jsonb body costs far more to
-- write than its text.

CREATE SEQUENCE change_seq AS bigint;

CREATE TABLE records (
    record_type  text NOT NULL,
    key          text NOT NULL,
    version      bigint NOT NULL,
    seq          bigint NOT NULL,
    deleted      boolean NOT NULL,
    division     text NOT NULL,
    content_hash text NOT NULL,
    data         jsonb,
    sources      text NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (record_type, key)
);

-- Bodies of contributions that differ from the merged record. Each contribution's hash,
-- lineage and deleted flag live in records.sources; a contribution equal to the merged record
-- (the common single-source case) has no row here, its body being the record's.
CREATE TABLE record_sources (
    record_type  text NOT NULL,
    key          text NOT NULL,
    connector    text NOT NULL,
    content_hash text NOT NULL,
    data         text NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (record_type, key, connector)
);

CREATE TABLE record_versions (
    record_type  text NOT NULL,
    key          text NOT NULL,
    version      bigint NOT NULL,
    seq          bigint NOT NULL,
    deleted      boolean NOT NULL,
    division     text NOT NULL,
    content_hash text NOT NULL,
    data         text,
    changed_at   timestamptz NOT NULL,
    PRIMARY KEY (record_type, key, version)
);
-- Feeds page through the change sequence.
CREATE UNIQUE INDEX record_versions_seq ON record_versions (seq);

CREATE TABLE applied_batches (
    batch_id   text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE failures (
    id          text PRIMARY KEY,
    stage       text NOT NULL,
    connector   text NOT NULL,
    stream      text NOT NULL,
    record_type text,
    natural_key text,
    upstream_id text,
    raw         text NOT NULL,
    normalized  jsonb,
    errors      jsonb NOT NULL,
    lineage     jsonb NOT NULL,
    attempts    bigint NOT NULL,
    status      text NOT NULL,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL
);
CREATE INDEX failures_status_connector ON failures (status, connector);

CREATE TABLE checkpoints (
    connector  text NOT NULL,
    stream     text NOT NULL,
    cursor     text NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (connector, stream)
);

CREATE TABLE sync_runs (
    run_id     text PRIMARY KEY,
    published  bigint NOT NULL DEFAULT 0,
    ingested   bigint NOT NULL DEFAULT 0,
    failed     bigint NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now()
);
