-- Feeds: each version remembers the source whose change produced it (feeds route by it), and
-- named consumers keep their cursor (the last change sequence they confirmed) per feed.
ALTER TABLE record_versions ADD COLUMN source TEXT NOT NULL DEFAULT '';

CREATE TABLE feed_cursors (
    consumer   TEXT NOT NULL,
    feed       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (consumer, feed)
);
