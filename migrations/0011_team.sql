-- Working incidents as a team (TEAM.md): the link to a team server, the outbox of records
-- to push, and what arrived. The outbox is filled by triggers, so every change the console
-- makes to a shared incident is queued in the same transaction as the change itself,
-- whichever code path made it (the window, the rules, the action desk, a runbook).

-- The team server this store syncs with (at most one). The token is in the OS keychain
-- under `token_ref`; `console` is this store's id on the team.
CREATE TABLE team_link (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    url        TEXT NOT NULL CHECK (url LIKE 'http://%' OR url LIKE 'https://%'),
    team       TEXT NOT NULL CHECK (length(team) BETWEEN 1 AND 64),
    token_ref  TEXT,
    ca_file    TEXT,
    console    TEXT NOT NULL,
    enabled    INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    -- The last team record applied here: the pull resumes after it.
    cursor     INTEGER NOT NULL DEFAULT 0 CHECK (cursor >= 0),
    created_ms INTEGER NOT NULL
);

-- Incidents shared with the team: opened here while linked, or arrived from the team.
CREATE TABLE team_incidents (
    incident_id INTEGER PRIMARY KEY REFERENCES incidents(id)
);

-- Records waiting to be pushed, in order, and the server's answer once pushed.
CREATE TABLE team_outbox (
    n           INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    kind        TEXT NOT NULL CHECK (kind IN ('open', 'append', 'command')),
    at_ms       INTEGER NOT NULL,
    body        TEXT NOT NULL CHECK (json_valid(body)),
    answered_ms INTEGER,
    outcome     TEXT CHECK (outcome IN ('accepted', 'duplicate', 'refused', 'invalid')),
    seq         INTEGER,
    answer      TEXT CHECK (answer IS NULL OR json_valid(answer))
);
CREATE INDEX team_outbox_pending ON team_outbox (n) WHERE answered_ms IS NULL;

-- Each shared timeline entry's team record id: made here for an entry written here (an
-- opened or changed entry shares its open or command record's id), taken from the record
-- for one that arrived.
CREATE TABLE team_entries (
    entry_id INTEGER PRIMARY KEY REFERENCES timeline_entries(id),
    record   TEXT NOT NULL UNIQUE
);

-- Holds a row only inside a transaction that writes what arrived from the team (or a
-- note only for this console), so the triggers below do not send it back.
CREATE TABLE team_applying (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);

-- A record id: a random (version 4) UUID.
CREATE VIEW team_new_id AS SELECT lower(
    hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' ||
    substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))
) AS id;

-- An incident opened while linked is shared, unless it is on a demo cluster.
CREATE TRIGGER team_share_open AFTER INSERT ON incidents
WHEN EXISTS (SELECT 1 FROM team_link)
 AND NOT EXISTS (SELECT 1 FROM team_applying)
 AND NOT EXISTS (SELECT 1 FROM clusters WHERE id = NEW.cluster_id AND demo = 1)
BEGIN
    INSERT INTO team_incidents (incident_id) VALUES (NEW.id);
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT id, NEW.id, 'open', NEW.opened_ms, json_object(
        'title', NEW.title, 'severity', NEW.severity, 'service', NEW.service,
        'cluster', (SELECT name FROM clusters WHERE id = NEW.cluster_id), 'entry', '')
    FROM team_new_id;
END;

-- A shared incident's timeline entries: the opened and changed entries ride on their
-- open or command record; every other one is an append of its own.
CREATE TRIGGER team_share_entry AFTER INSERT ON timeline_entries
WHEN NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_incidents WHERE incident_id = NEW.incident_id)
BEGIN
    UPDATE team_outbox SET body = json_set(body, '$.entry', NEW.body)
    WHERE NEW.kind IN ('opened', 'status_changed', 'severity_changed', 'commander_changed')
      AND n = (SELECT max(n) FROM team_outbox WHERE incident_id = NEW.incident_id
               AND kind IN ('open', 'command') AND answered_ms IS NULL);
    INSERT INTO team_entries (entry_id, record)
    SELECT NEW.id, id FROM team_outbox
    WHERE NEW.kind IN ('opened', 'status_changed', 'severity_changed', 'commander_changed')
      AND n = (SELECT max(n) FROM team_outbox WHERE incident_id = NEW.incident_id
               AND kind IN ('open', 'command') AND answered_ms IS NULL);
    INSERT INTO team_entries (entry_id, record)
    SELECT NEW.id, id FROM team_new_id
    WHERE NEW.kind NOT IN ('opened', 'status_changed', 'severity_changed', 'commander_changed');
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT te.record, NEW.incident_id, 'append', NEW.at_ms, json_object(
        'entry_kind', NEW.kind, 'author', NEW.author, 'text', NEW.body,
        'data', json(NEW.data),
        'event', (SELECT json_object('source', e.source, 'id', e.event_id) FROM events e WHERE e.seq = NEW.event_seq),
        'amends', (SELECT record FROM team_entries WHERE entry_id = NEW.amends))
    FROM team_entries te WHERE te.entry_id = NEW.id
      AND NEW.kind NOT IN ('opened', 'status_changed', 'severity_changed', 'commander_changed');
END;

-- Changes of a shared incident's fields are commands, each with the value it replaced.
CREATE TRIGGER team_share_status AFTER UPDATE OF status ON incidents
WHEN OLD.status IS NOT NEW.status
 AND NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_incidents WHERE incident_id = NEW.id)
BEGIN
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT id, NEW.id, 'command', NEW.updated_ms, json_object(
        'field', 'status', 'expect', OLD.status, 'value', NEW.status, 'entry', '')
    FROM team_new_id;
END;

CREATE TRIGGER team_share_severity AFTER UPDATE OF severity ON incidents
WHEN OLD.severity IS NOT NEW.severity
 AND NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_incidents WHERE incident_id = NEW.id)
BEGIN
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT id, NEW.id, 'command', NEW.updated_ms, json_object(
        'field', 'severity', 'expect', OLD.severity, 'value', NEW.severity, 'entry', '')
    FROM team_new_id;
END;

CREATE TRIGGER team_share_commander AFTER UPDATE OF commander ON incidents
WHEN OLD.commander IS NOT NEW.commander
 AND NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_incidents WHERE incident_id = NEW.id)
BEGIN
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT id, NEW.id, 'command', NEW.updated_ms, json_object(
        'field', 'commander', 'expect', OLD.commander, 'value', NEW.commander, 'entry', '')
    FROM team_new_id;
END;

CREATE TRIGGER team_share_title AFTER UPDATE OF title ON incidents
WHEN OLD.title IS NOT NEW.title
 AND NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_incidents WHERE incident_id = NEW.id)
BEGIN
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT id, NEW.id, 'command', NEW.updated_ms, json_object(
        'field', 'title', 'expect', OLD.title, 'value', NEW.title, 'entry', '')
    FROM team_new_id;
END;

-- The review travels too (TEAM.md): key-moment edits, annotations, contributing factors
-- and follow-ups as appends of kind `review.*` (applied to the review's tables, never to
-- the timeline); the root cause as a command, like the incident's own fields.

-- Each shared follow-up's team record id (the record that created it).
CREATE TABLE team_follow_ups (
    follow_up_id INTEGER PRIMARY KEY REFERENCES follow_ups(id),
    record       TEXT NOT NULL UNIQUE
);

CREATE TRIGGER team_share_moment AFTER INSERT ON moment_edits
WHEN NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_incidents WHERE incident_id = NEW.incident_id)
BEGIN
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT id, NEW.incident_id, 'append', NEW.edited_ms, json_object(
        'entry_kind', 'review.moment', 'author', NEW.author, 'text', NEW.reason,
        'data', json_object('moment', NEW.moment, 'at_ms', NEW.at_ms))
    FROM team_new_id;
END;

CREATE TRIGGER team_share_annotation AFTER INSERT ON annotations
WHEN NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_incidents WHERE incident_id = NEW.incident_id)
 AND EXISTS (SELECT 1 FROM team_entries WHERE entry_id = NEW.entry_id)
BEGIN
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT id, NEW.incident_id, 'append', NEW.created_ms, json_object(
        'entry_kind', 'review.annotation', 'author', NEW.author, 'text', NEW.body,
        'data', json_object('entry', (SELECT record FROM team_entries WHERE entry_id = NEW.entry_id)))
    FROM team_new_id;
END;

CREATE TRIGGER team_share_factor_added AFTER INSERT ON contributing_factors
WHEN NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_incidents WHERE incident_id = NEW.incident_id)
BEGIN
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT id, NEW.incident_id, 'append', NEW.added_ms, json_object(
        'entry_kind', 'review.factor', 'author', NEW.added_by, 'text', NEW.factor,
        'data', json_object('op', 'add'))
    FROM team_new_id;
END;

CREATE TRIGGER team_share_factor_removed AFTER DELETE ON contributing_factors
WHEN NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_incidents WHERE incident_id = OLD.incident_id)
BEGIN
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT id, OLD.incident_id, 'append', CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), json_object(
        'entry_kind', 'review.factor',
        'author', COALESCE((SELECT value FROM settings WHERE key = 'author'), OLD.added_by),
        'text', OLD.factor, 'data', json_object('op', 'remove'))
    FROM team_new_id;
END;

CREATE TRIGGER team_share_follow_up AFTER INSERT ON follow_ups
WHEN NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_incidents WHERE incident_id = NEW.incident_id)
BEGIN
    INSERT INTO team_follow_ups (follow_up_id, record) SELECT NEW.id, id FROM team_new_id;
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT record, NEW.incident_id, 'append', NEW.created_ms, json_object(
        'entry_kind', 'review.follow_up', 'author', NEW.created_by, 'text', NEW.title,
        'data', json_object('owner', NEW.owner, 'due', NEW.due, 'status', NEW.status))
    FROM team_follow_ups WHERE follow_up_id = NEW.id;
END;

CREATE TRIGGER team_share_follow_up_change AFTER UPDATE ON follow_ups
WHEN NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_follow_ups WHERE follow_up_id = NEW.id)
BEGIN
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT id, NEW.incident_id, 'append', NEW.updated_ms, json_object(
        'entry_kind', 'review.follow_up', 'author', NEW.updated_by, 'text', NEW.title,
        'data', json_object('follow_up', (SELECT record FROM team_follow_ups WHERE follow_up_id = NEW.id),
                            'owner', NEW.owner, 'due', NEW.due, 'status', NEW.status))
    FROM team_new_id;
END;

CREATE TRIGGER team_share_root_cause_set AFTER INSERT ON incident_reviews
WHEN NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_incidents WHERE incident_id = NEW.incident_id)
 AND NEW.root_cause IS NOT NULL
BEGIN
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT id, NEW.incident_id, 'command', NEW.updated_ms, json_object(
        'field', 'root_cause', 'expect', NULL, 'value', NEW.root_cause,
        'entry', NEW.updated_by || ' filed the root cause as ' || NEW.root_cause)
    FROM team_new_id;
END;

CREATE TRIGGER team_share_root_cause AFTER UPDATE OF root_cause ON incident_reviews
WHEN OLD.root_cause IS NOT NEW.root_cause
 AND NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_incidents WHERE incident_id = NEW.incident_id)
BEGIN
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT id, NEW.incident_id, 'command', NEW.updated_ms, json_object(
        'field', 'root_cause', 'expect', OLD.root_cause, 'value', NEW.root_cause,
        'entry', NEW.updated_by || ' filed the root cause as ' || COALESCE(NEW.root_cause, 'not yet known'))
    FROM team_new_id;
END;

-- Actions and runbook runs travel as appends too (`action.state`, `runbook.run`,
-- `runbook.step`), into mirrors of their own on the other consoles: only the console that
-- confirmed an action drives it (its desk reads `actions`, never these), and only the
-- console that started a run moves it on.

-- What teammates' consoles did, as their last record said.
CREATE TABLE team_actions (
    public_id    TEXT PRIMARY KEY,
    incident_id  INTEGER NOT NULL REFERENCES incidents(id),
    kind         TEXT NOT NULL,
    service      TEXT NOT NULL,
    target       TEXT NOT NULL,
    from_value   TEXT NOT NULL,
    to_value     TEXT NOT NULL,
    state        TEXT NOT NULL,
    proposed_by  TEXT NOT NULL,
    confirmed_by TEXT,
    reason       TEXT,
    error        TEXT,
    verification TEXT,
    created_ms   INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL,
    -- The person whose console pushed it.
    by_name      TEXT NOT NULL
);
CREATE INDEX team_actions_by_incident ON team_actions (incident_id, created_ms);

-- Each shared runbook run's team record id (the record that started it), on the console
-- that runs it.
CREATE TABLE team_run_ids (
    run_id INTEGER PRIMARY KEY REFERENCES runbook_runs(id),
    record TEXT NOT NULL UNIQUE
);

CREATE TABLE team_runs (
    record        TEXT PRIMARY KEY,
    incident_id   INTEGER NOT NULL REFERENCES incidents(id),
    runbook_id    TEXT NOT NULL,
    runbook_title TEXT NOT NULL,
    current_step  TEXT,
    state         TEXT NOT NULL,
    started_by    TEXT NOT NULL,
    started_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL,
    by_name       TEXT NOT NULL
);
CREATE INDEX team_runs_by_incident ON team_runs (incident_id, started_ms);

CREATE TABLE team_run_steps (
    id      INTEGER PRIMARY KEY,
    record  TEXT NOT NULL REFERENCES team_runs(record),
    step_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    text    TEXT NOT NULL,
    value   REAL,
    author  TEXT NOT NULL,
    at_ms   INTEGER NOT NULL
);
CREATE INDEX team_run_steps_by_run ON team_run_steps (record, id);

CREATE TRIGGER team_share_action AFTER INSERT ON actions
WHEN NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_incidents WHERE incident_id = NEW.incident_id)
BEGIN
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT id, NEW.incident_id, 'append', NEW.updated_ms, json_object(
        'entry_kind', 'action.state', 'author', NEW.proposed_by, 'text', NEW.state,
        'data', json_object('public_id', NEW.public_id, 'kind', NEW.kind, 'service', NEW.service,
            'target', NEW.target, 'from', NEW.from_value, 'to', NEW.to_value, 'state', NEW.state,
            'proposed_by', NEW.proposed_by, 'confirmed_by', NEW.confirmed_by, 'reason', NEW.reason,
            'error', NEW.error, 'verification', NEW.verification, 'created_ms', NEW.created_ms))
    FROM team_new_id;
END;

CREATE TRIGGER team_share_action_change AFTER UPDATE ON actions
WHEN NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_incidents WHERE incident_id = NEW.incident_id)
 AND (OLD.state IS NOT NEW.state OR OLD.verification IS NOT NEW.verification
      OR OLD.confirmed_by IS NOT NEW.confirmed_by OR OLD.error IS NOT NEW.error)
BEGIN
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT id, NEW.incident_id, 'append', NEW.updated_ms, json_object(
        'entry_kind', 'action.state', 'author', COALESCE(NEW.confirmed_by, NEW.proposed_by), 'text', NEW.state,
        'data', json_object('public_id', NEW.public_id, 'kind', NEW.kind, 'service', NEW.service,
            'target', NEW.target, 'from', NEW.from_value, 'to', NEW.to_value, 'state', NEW.state,
            'proposed_by', NEW.proposed_by, 'confirmed_by', NEW.confirmed_by, 'reason', NEW.reason,
            'error', NEW.error, 'verification', NEW.verification, 'created_ms', NEW.created_ms))
    FROM team_new_id;
END;

CREATE TRIGGER team_share_run AFTER INSERT ON runbook_runs
WHEN NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_incidents WHERE incident_id = NEW.incident_id)
BEGIN
    INSERT INTO team_run_ids (run_id, record) SELECT NEW.id, id FROM team_new_id;
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT record, NEW.incident_id, 'append', NEW.started_ms, json_object(
        'entry_kind', 'runbook.run', 'author', NEW.started_by, 'text', NEW.runbook_title,
        'data', json_object('runbook_id', NEW.runbook_id, 'current_step', NEW.current_step,
            'state', NEW.state, 'started_ms', NEW.started_ms))
    FROM team_run_ids WHERE run_id = NEW.id;
END;

CREATE TRIGGER team_share_run_change AFTER UPDATE OF current_step, state ON runbook_runs
WHEN NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_run_ids WHERE run_id = NEW.id)
 AND (OLD.current_step IS NOT NEW.current_step OR OLD.state IS NOT NEW.state)
BEGIN
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT id, NEW.incident_id, 'append', NEW.updated_ms, json_object(
        'entry_kind', 'runbook.run', 'author', NEW.started_by, 'text', NEW.runbook_title,
        'data', json_object('run', (SELECT record FROM team_run_ids WHERE run_id = NEW.id),
            'runbook_id', NEW.runbook_id, 'current_step', NEW.current_step,
            'state', NEW.state, 'started_ms', NEW.started_ms))
    FROM team_new_id;
END;

CREATE TRIGGER team_share_run_step AFTER INSERT ON runbook_step_results
WHEN NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_run_ids WHERE run_id = NEW.run_id)
BEGIN
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT id, (SELECT incident_id FROM runbook_runs WHERE id = NEW.run_id), 'append', NEW.at_ms, json_object(
        'entry_kind', 'runbook.step', 'author', NEW.author, 'text', NEW.text,
        'data', json_object('run', (SELECT record FROM team_run_ids WHERE run_id = NEW.run_id),
            'step_id', NEW.step_id, 'outcome', NEW.outcome, 'value', NEW.value))
    FROM team_new_id;
END;

-- The audit records of a shared incident's actions, as the console that drove them wrote
-- them (its hash chain's records, with their hashes): `firebreak audit verify` checks
-- each one's hash on every console. This console's own chain also records each team
-- record it applied.
CREATE TABLE team_audit (
    record    TEXT PRIMARY KEY,
    by_name   TEXT NOT NULL,
    audit_id  INTEGER NOT NULL,
    at_ms     INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    subject   TEXT NOT NULL,
    what      TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX team_audit_by_subject ON team_audit (subject, audit_id);

CREATE TRIGGER team_share_action_audit AFTER INSERT ON audit_log
WHEN NEW.subject LIKE 'action/%'
 AND NOT EXISTS (SELECT 1 FROM team_applying)
 AND EXISTS (SELECT 1 FROM team_incidents WHERE incident_id =
             (SELECT incident_id FROM actions WHERE public_id = substr(NEW.subject, 8)))
BEGIN
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT id, (SELECT incident_id FROM actions WHERE public_id = substr(NEW.subject, 8)), 'append', NEW.at_ms,
        json_object('entry_kind', 'audit.record', 'author', NEW.actor, 'text', NEW.what,
            'data', json_object('id', NEW.id, 'at_ms', NEW.at_ms, 'subject', NEW.subject,
                'detail', NEW.detail, 'prev_hash', NEW.prev_hash, 'hash', NEW.hash))
    FROM team_new_id;
END;
