-- no-transaction
-- A verification has three outcomes: 'recovered', 'not_recovered' and 'unverified' (the
-- cluster gave no evidence either way: no metrics, no rollout state). As in 0010, SQLite
-- cannot change a CHECK constraint in place, so the table is rebuilt with the foreign keys
-- off for the copy. Dropping the table drops the team triggers on it, and the audit trigger
-- reads it: all three are made again, as 0011 wrote them.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

DROP TRIGGER team_share_action_audit;

CREATE TABLE actions_rebuilt (
    id              INTEGER PRIMARY KEY,
    public_id       TEXT NOT NULL UNIQUE,
    incident_id     INTEGER NOT NULL REFERENCES incidents(id),
    cluster_id      INTEGER NOT NULL REFERENCES clusters(id),
    kind            TEXT NOT NULL CHECK (kind IN ('rollback', 'failover', 'silence',
                        'pause_rollout', 'resume_rollout', 'abort_rollout', 'promote_rollout')),
    service         TEXT NOT NULL,
    -- What the request names: the deployment (rollback, a rollout lever), the service
    -- (failover), the alert (silence).
    target          TEXT NOT NULL,
    -- The precondition sent (revision or primary region believed current; a silence's
    -- region; the revision rolling out, for a lever) and the goal (revision, region; a
    -- silence's length in seconds; a lever's outcome: paused, running, the stable
    -- revision, next wave, all waves).
    from_value      TEXT NOT NULL,
    to_value        TEXT NOT NULL,
    preview         TEXT NOT NULL CHECK (json_valid(preview)),
    state           TEXT NOT NULL CHECK (state IN ('proposed', 'pending', 'cancelled', 'sent',
                        'unknown', 'refused', 'accepted', 'running', 'succeeded', 'failed')),
    proposed_by     TEXT NOT NULL,
    confirmed_by    TEXT,
    reason          TEXT,
    idempotency_key TEXT UNIQUE,
    send_after_ms   INTEGER,
    remote_id       TEXT,
    error           TEXT,
    succeeded_ms    INTEGER,
    -- 'unverified': the action succeeded and nothing the cluster gave in the window (no
    -- metrics, no rollout state) said whether the service recovered.
    verification    TEXT CHECK (verification IS NULL OR verification IN ('recovered', 'not_recovered', 'unverified')),
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    confirmed_install TEXT,
    imported        INTEGER NOT NULL DEFAULT 0 CHECK (imported IN (0, 1)),
    -- A proposal refused at confirmation (the cluster moved on since it was proposed) was
    -- never sent, so it has no key either.
    CHECK ((state IN ('proposed', 'cancelled', 'refused')) OR idempotency_key IS NOT NULL)
);
INSERT INTO actions_rebuilt (id, public_id, incident_id, cluster_id, kind, service, target,
    from_value, to_value, preview, state, proposed_by, confirmed_by, reason, idempotency_key,
    send_after_ms, remote_id, error, succeeded_ms, verification, created_ms, updated_ms,
    confirmed_install, imported)
SELECT id, public_id, incident_id, cluster_id, kind, service, target,
    from_value, to_value, preview, state, proposed_by, confirmed_by, reason, idempotency_key,
    send_after_ms, remote_id, error, succeeded_ms, verification, created_ms, updated_ms,
    confirmed_install, imported
FROM actions;
DROP TABLE actions;
ALTER TABLE actions_rebuilt RENAME TO actions;
CREATE INDEX actions_by_incident ON actions (incident_id, id);
CREATE INDEX actions_unfinished ON actions (state) WHERE state IN ('pending', 'sent', 'unknown', 'accepted', 'running');


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

COMMIT;
PRAGMA foreign_keys = ON;
