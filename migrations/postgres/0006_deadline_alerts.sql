-- Deadline alerts already raised: one per rule, record and status, so a deadline at risk or
-- missed is announced once, not at every check.
CREATE TABLE deadline_alerts (
    rule        text NOT NULL,
    record_type text NOT NULL,
    key         text NOT NULL,
    status      text NOT NULL,
    raised_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule, record_type, key, status)
);
