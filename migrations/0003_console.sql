-- Clusters managed from the console, the event feed's search index.

-- A removed cluster is no longer watched; what was recorded from it stays.
ALTER TABLE clusters ADD COLUMN removed_ms INTEGER;
-- The built-in demo cluster: watched only in demo mode (its loopback URL changes every run).
ALTER TABLE clusters ADD COLUMN demo INTEGER NOT NULL DEFAULT 0 CHECK (demo IN (0, 1));
-- The OS keychain account that holds the cluster's token: a random id, never the token.
ALTER TABLE clusters ADD COLUMN token_ref TEXT;
UPDATE clusters SET demo = 1 WHERE name = 'demo' AND events_url LIKE 'ws://127.0.0.1:%';

-- Free-text search over events. Contentless (the text is in `events`; rowid = events.seq),
-- filled behind ingest by the writer when it is idle, so search never slows recording.
CREATE VIRTUAL TABLE events_search USING fts5(
    type, subject, service, body,
    content = '', columnsize = 0, tokenize = 'unicode61 remove_diacritics 2'
);
-- How far the search index has got: every event with seq <= indexed_seq is searchable.
CREATE TABLE search_progress (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_seq INTEGER NOT NULL
);
INSERT INTO search_progress (id, indexed_seq) VALUES (1, 0);
