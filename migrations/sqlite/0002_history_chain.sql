-- History as a chain instead of an index. Every version row names the change sequence of the
-- record's previous version (NULL for the first), and records.seq names the current one, so a
-- record's history is found by following prev_seq from records.seq. The unique index on
-- (record_type, key, version) it replaces was written at a random position for every stored
-- version, which at a million records cost more WAL pages per commit than the bodies did.

ALTER TABLE record_versions ADD COLUMN prev_seq INTEGER;

UPDATE record_versions AS v SET prev_seq = (
    SELECT p.seq FROM record_versions AS p
    WHERE p.record_type = v.record_type AND p.key = v.key AND p.version = v.version - 1
);

DROP INDEX record_versions_key;
