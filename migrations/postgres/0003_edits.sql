-- Edited replays (issue 3): an operator's correction of a failed record, kept beside the
-- untouched original, waiting for a second person's approval (four-eyes) before it runs.

CREATE TABLE failure_edits (
    id         text PRIMARY KEY,
    failure_id text NOT NULL,
    editor     text NOT NULL,
    created_at timestamptz NOT NULL,
    patch      jsonb,
    edited     jsonb NOT NULL,
    note       text,
    status     text NOT NULL,
    decided_by text,
    decided_at timestamptz,
    outcome    jsonb,
    -- Four-eyes, enforced by the database as well: nobody approves their own edit.
    CHECK (decided_by IS NULL OR decided_by <> editor)
);
CREATE INDEX failure_edits_failure ON failure_edits (failure_id, created_at);
CREATE INDEX failure_edits_status ON failure_edits (status, created_at);
