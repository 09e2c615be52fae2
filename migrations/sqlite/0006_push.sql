-- Push receipts: what was delivered to which upstream, when, and its answer (the evidence of
-- on-time publication), one row per target and change.
CREATE TABLE push_receipts (
    target      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    record_type TEXT NOT NULL,
    key         TEXT NOT NULL,
    version     INTEGER NOT NULL,
    op          TEXT NOT NULL,
    accepted    INTEGER NOT NULL,
    request_key TEXT NOT NULL,
    sent_at     INTEGER NOT NULL,
    answer      TEXT NOT NULL,
    PRIMARY KEY (target, seq)
);
CREATE INDEX push_receipts_record ON push_receipts (record_type, key);
