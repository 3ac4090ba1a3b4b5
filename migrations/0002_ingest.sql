-- Live ingest: resume cursors, quarantine, stream gaps, incident <-> event links.

-- The last sequence of each cluster's stream whose event is committed. Written in the
-- same transaction as the events it covers, so a restart resumes exactly after them.
CREATE TABLE stream_cursors (
    cluster_id    INTEGER PRIMARY KEY REFERENCES clusters(id),
    last_sequence INTEGER NOT NULL CHECK (last_sequence >= 0),
    updated_ms    INTEGER NOT NULL
);

-- Frames that were not valid events, kept for diagnosis: never silently dropped.
CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY,
    cluster_id  INTEGER NOT NULL REFERENCES clusters(id),
    received_ms INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    raw         BLOB NOT NULL,    -- the frame's first bytes (see raw_len)
    raw_len     INTEGER NOT NULL  -- the frame's full length in bytes
);
CREATE INDEX quarantine_by_cluster ON quarantine (cluster_id, id);

-- Ranges of a stream the server could no longer send (its gap notice).
CREATE TABLE stream_gaps (
    id            INTEGER PRIMARY KEY,
    cluster_id    INTEGER NOT NULL REFERENCES clusters(id),
    from_sequence INTEGER NOT NULL,
    to_sequence   INTEGER NOT NULL CHECK (to_sequence >= from_sequence),
    detected_ms   INTEGER NOT NULL
);

-- Events attached to an incident (its evidence), whether or not they made a timeline entry.
CREATE TABLE incident_events (
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    event_seq   INTEGER NOT NULL REFERENCES events(seq),
    PRIMARY KEY (incident_id, event_seq)
) WITHOUT ROWID;

-- Which signal opened an incident, so later signals of the same kind attach to it.
ALTER TABLE incidents ADD COLUMN opened_by TEXT;
CREATE INDEX incidents_open_by_service ON incidents (cluster_id, service, status);

-- Related events of a service in a time window, when an incident opens.
CREATE INDEX events_by_service_time ON events (cluster_id, service, time_ms);
-- Timelines read in time order (ties in recording order).
CREATE INDEX timeline_by_incident_time ON timeline_entries (incident_id, at_ms, id);
