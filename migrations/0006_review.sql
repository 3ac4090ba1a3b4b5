-- Post-incident review: what the team concluded after the fire was out. Kept beside the
-- timeline, never in it: the timeline says what happened and when it was recorded; the
-- review says what the team made of it, and who said so.

-- Key moments set by a reviewer. Append-only: the newest edit of a moment wins, every
-- earlier one stays as its history. at_ms NULL puts the moment back to the recorded default.
CREATE TABLE moment_edits (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    moment      TEXT NOT NULL
                CHECK (moment IN ('impact_began', 'detected', 'acknowledged', 'mitigated', 'resolved')),
    at_ms       INTEGER,
    reason      TEXT NOT NULL CHECK (length(trim(reason)) BETWEEN 1 AND 2000),
    author      TEXT NOT NULL,
    edited_ms   INTEGER NOT NULL
);
CREATE INDEX moment_edits_by_incident ON moment_edits (incident_id, moment, id);
CREATE TRIGGER moment_edits_no_update BEFORE UPDATE ON moment_edits
BEGIN
    SELECT RAISE(ABORT, 'moment edits are append-only: add a newer edit instead');
END;
CREATE TRIGGER moment_edits_no_delete BEFORE DELETE ON moment_edits
BEGIN
    SELECT RAISE(ABORT, 'moment edits are append-only: add a newer edit instead');
END;

-- A reviewer's remark on one timeline entry.
CREATE TABLE annotations (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    entry_id    INTEGER NOT NULL REFERENCES timeline_entries(id),
    body        TEXT NOT NULL CHECK (length(trim(body)) BETWEEN 1 AND 4000),
    author      TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
);
CREATE INDEX annotations_by_incident ON annotations (incident_id, entry_id, id);

-- The root-cause category (from the editable list in settings) and who set it.
CREATE TABLE incident_reviews (
    incident_id INTEGER PRIMARY KEY REFERENCES incidents(id),
    root_cause  TEXT CHECK (root_cause IS NULL OR length(root_cause) BETWEEN 1 AND 100),
    updated_by  TEXT NOT NULL,
    updated_ms  INTEGER NOT NULL
);

-- Contributing factors, one row each, so the summit can count the ones that recur.
-- `factor` is the text as written; `factor_key` its lower-cased, space-collapsed form.
CREATE TABLE contributing_factors (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    factor      TEXT NOT NULL CHECK (length(trim(factor)) BETWEEN 1 AND 200),
    factor_key  TEXT NOT NULL,
    added_by    TEXT NOT NULL,
    added_ms    INTEGER NOT NULL,
    UNIQUE (incident_id, factor_key)
);
CREATE INDEX contributing_factors_by_key ON contributing_factors (factor_key);

CREATE TABLE follow_ups (
    id          INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    title       TEXT NOT NULL CHECK (length(trim(title)) BETWEEN 1 AND 500),
    owner       TEXT NOT NULL CHECK (length(trim(owner)) BETWEEN 1 AND 100),
    -- A calendar date, YYYY-MM-DD.
    due         TEXT CHECK (due IS NULL OR date(due) = due),
    status      TEXT NOT NULL CHECK (status IN ('open', 'in_progress', 'done')),
    created_by  TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL,
    updated_ms  INTEGER NOT NULL
);
CREATE INDEX follow_ups_by_incident ON follow_ups (incident_id, id);
CREATE INDEX follow_ups_open_by_owner ON follow_ups (owner) WHERE status <> 'done';
