-- Deadline alerts already raised: one per rule, record and status, so a deadline at risk or
-- missed is announced once, not at every check.
CREATE TABLE deadline_alerts (
    rule        TEXT NOT NULL,
    record_type TEXT NOT NULL,
    key         TEXT NOT NULL,
    status      TEXT NOT NULL,
    raised_at   INTEGER NOT NULL,
    PRIMARY KEY (rule, record_type, key, status)
);
