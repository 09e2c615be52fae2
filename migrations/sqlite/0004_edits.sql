-- Edited replays (issue 3): an operator's correction of a failed record, kept beside the
-- untouched original, waiting for a second person's approval (four-eyes) before it runs.

CREATE TABLE failure_edits (
    id         TEXT PRIMARY KEY,
    failure_id TEXT NOT NULL,
    editor     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    patch      TEXT,
    edited     TEXT NOT NULL,
    note       TEXT,
    status     TEXT NOT NULL,
    decided_by TEXT,
    decided_at INTEGER,
    outcome    TEXT
);
CREATE INDEX failure_edits_failure ON failure_edits (failure_id, created_at);
CREATE INDEX failure_edits_status ON failure_edits (status, created_at);
