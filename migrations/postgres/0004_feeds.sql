-- Feeds: each version remembers the source whose change produced it (feeds route by it), and
-- named consumers keep their cursor (the last change sequence they confirmed) per feed.
ALTER TABLE record_versions ADD COLUMN source text NOT NULL DEFAULT '';

CREATE TABLE feed_cursors (
    consumer   text NOT NULL,
    feed       text NOT NULL,
    seq        bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, feed)
);
