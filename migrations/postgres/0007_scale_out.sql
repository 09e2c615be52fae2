-- Scale-out (issue 5): several `xiezhi run` instances share one store.

-- A lease per connector stream (and per backfill window): one instance at a time syncs it,
-- whether the sync is scheduled, manual or a backfill. The holder renews it while it works;
-- another instance takes it over once it expired (its holder died or lost the database).
-- Times are the database's clock, so instances' clocks need not agree.
CREATE TABLE leases (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    acquired_at timestamptz NOT NULL,
    renewed_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- The last cron occurrence each stream's schedule completed, whichever instance ran it: the
-- next due occurrence is the first one after it, so downtime is caught up once.
CREATE TABLE schedule_state (
    connector   text NOT NULL,
    stream      text NOT NULL,
    occurrence  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    holder      text NOT NULL,
    outcome     text NOT NULL,
    PRIMARY KEY (connector, stream)
);

-- Which page commit last moved a checkpoint ("<run>/<page ordinal>"): a commit retried after
-- a lost answer from the database counts its events once.
ALTER TABLE checkpoints ADD COLUMN last_commit text;

-- Per stream and sync window: what the upstream said it had against what went where. A gap is
-- a row operators see (`GET /v1/reconciliations`) and an alert.
CREATE TABLE sync_reconciliations (
    id             bigserial PRIMARY KEY,
    run_id         text NOT NULL,
    connector      text NOT NULL,
    stream         text NOT NULL,
    record_type    text NOT NULL,
    holder         text NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL,
    upstream_total bigint,
    expected       bigint,
    fetched        bigint NOT NULL,
    normalised     bigint NOT NULL,
    routed         bigint NOT NULL,
    failed         bigint NOT NULL,
    outside_window bigint NOT NULL,
    outcome        text NOT NULL,
    gaps           text NOT NULL
);
CREATE INDEX sync_reconciliations_stream ON sync_reconciliations (connector, stream, id);
