-- Push receipts: what was delivered to which upstream, when, and its answer (the evidence of
-- on-time publication), one row per target and change.
CREATE TABLE push_receipts (
    target      text NOT NULL,
    seq         bigint NOT NULL,
    record_type text NOT NULL,
    key         text NOT NULL,
    version     bigint NOT NULL,
    op          text NOT NULL,
    accepted    boolean NOT NULL,
    request_key text NOT NULL,
    sent_at     timestamptz NOT NULL,
    answer      jsonb NOT NULL,
    PRIMARY KEY (target, seq)
);
CREATE INDEX push_receipts_record ON push_receipts (record_type, key);
