-- Firebreak's foundation schema.
-- Times are INTEGER milliseconds since the Unix epoch (UTC): they sort and compare
-- as numbers, and nothing depends on a text format.
-- Migrations only move forward; a column is never repurposed.

-- A cluster Firebreak watches. Its bearer token lives in the OS keychain, never here.
CREATE TABLE clusters (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    events_url  TEXT NOT NULL CHECK (events_url LIKE 'ws://%' OR events_url LIKE 'wss://%'),
    actions_url TEXT NOT NULL CHECK (actions_url LIKE 'http://%' OR actions_url LIKE 'https://%'),
    created_ms  INTEGER NOT NULL
);

-- Every event received, as received. `seq` is local and monotonic (insertion order),
-- so the table's b-tree only ever grows at its right edge.
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY,
    cluster_id      INTEGER NOT NULL REFERENCES clusters(id),
    source          TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    stream_sequence INTEGER NOT NULL,
    type            TEXT NOT NULL,
    subject         TEXT,
    service         TEXT,
    severity        TEXT,
    time_ms         INTEGER NOT NULL,
    received_ms     INTEGER NOT NULL,
    raw             TEXT NOT NULL
);
-- One row per (source, id): CloudEvents' own identity of an event.
CREATE UNIQUE INDEX events_source_id ON events (source, event_id);
-- Resume and gap checks walk a cluster's stream by sequence.
CREATE INDEX events_cluster_sequence ON events (cluster_id, stream_sequence);

-- An incident: status moves open -> acknowledged -> mitigated -> resolved, and the time
-- of each change is kept in its own column.
CREATE TABLE incidents (
    id              INTEGER PRIMARY KEY,
    public_id       TEXT NOT NULL UNIQUE,
    cluster_id      INTEGER REFERENCES clusters(id),
    title           TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    service         TEXT,
    severity        TEXT NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'info')),
    status          TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'mitigated', 'resolved')),
    commander       TEXT,
    opened_ms       INTEGER NOT NULL,
    acknowledged_ms INTEGER,
    mitigated_ms    INTEGER,
    resolved_ms     INTEGER,
    updated_ms      INTEGER NOT NULL
);
CREATE INDEX incidents_status ON incidents (status, opened_ms);

-- The incident's timeline. Append-only: a correction is a new entry that names the
-- entry it amends; the triggers below refuse every UPDATE and DELETE.
CREATE TABLE timeline_entries (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    at_ms       INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (length(kind) BETWEEN 1 AND 40),
    author      TEXT NOT NULL CHECK (length(author) BETWEEN 1 AND 100),
    body        TEXT NOT NULL,
    data        TEXT CHECK (data IS NULL OR json_valid(data)),
    event_seq   INTEGER REFERENCES events(seq),
    amends      INTEGER REFERENCES timeline_entries(id),
    CHECK ((kind = 'correction') = (amends IS NOT NULL))
);
CREATE INDEX timeline_by_incident ON timeline_entries (incident_id, id);

CREATE TRIGGER timeline_entries_no_update BEFORE UPDATE ON timeline_entries
BEGIN
    SELECT RAISE(ABORT, 'timeline entries are append-only: add a correction instead');
END;
CREATE TRIGGER timeline_entries_no_delete BEFORE DELETE ON timeline_entries
BEGIN
    SELECT RAISE(ABORT, 'timeline entries are append-only: add a correction instead');
END;

-- Small user settings (author name, thresholds). Secrets never go here.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 64),
    value TEXT NOT NULL
);
