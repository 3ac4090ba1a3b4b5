-- no-transaction
-- The rollout levers join the actions (kinds 'pause_rollout', 'resume_rollout',
-- 'abort_rollout', 'promote_rollout'). As in 0009, SQLite cannot change a CHECK constraint
-- in place, so the table is rebuilt: foreign keys off for the copy (runbook_runs refers to
-- actions), everything else in one transaction, the foreign keys checked before it commits.
-- The rebuild also lets a proposal be refused before it was sent (no idempotency key):
-- confirming re-reads the cluster, and a proposal whose precondition no longer holds is
-- refused there, which 0009's constraint did not allow.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

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
    verification    TEXT CHECK (verification IS NULL OR verification IN ('recovered', 'not_recovered')),
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

COMMIT;
PRAGMA foreign_keys = ON;
