-- Operators: what they need next to the failures (issue 3). The CSV header a failed line is
-- read against (replay parses the line again), an index for time windows, each failure's
-- history, the audit log, and API tokens. History and audit are append-only: triggers refuse
-- updates and deletes, so not even a bug in xiezhi can rewrite them.

ALTER TABLE failures ADD COLUMN raw_context text;
CREATE INDEX failures_last_seen ON failures (last_seen);

CREATE TABLE failure_events (
    seq        bigserial PRIMARY KEY,
    failure_id text NOT NULL,
    at         timestamptz NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    detail     jsonb NOT NULL
);
CREATE INDEX failure_events_failure ON failure_events (failure_id, seq);

CREATE TABLE audit_log (
    seq     bigserial PRIMARY KEY,
    at      timestamptz NOT NULL,
    actor   text NOT NULL,
    action  text NOT NULL,
    target  text,
    filter  jsonb NOT NULL,
    count   bigint NOT NULL,
    outcome jsonb NOT NULL
);

CREATE FUNCTION xiezhi_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER failure_events_append_only BEFORE UPDATE OR DELETE ON failure_events
    FOR EACH ROW EXECUTE FUNCTION xiezhi_append_only();
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION xiezhi_append_only();

CREATE TABLE api_tokens (
    id         text PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    role       text NOT NULL,
    token_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
