-- One-click actions (rollback, failover) and the hash-chained audit log.

-- An action from proposal to verification. The idempotency key is created once, when
-- the engineer confirms, and stored before anything is sent: every retry, and every
-- restart after a crash, sends the same key, so the cluster acts at most once.
CREATE TABLE actions (
    id              INTEGER PRIMARY KEY,
    public_id       TEXT NOT NULL UNIQUE,
    incident_id     INTEGER NOT NULL REFERENCES incidents(id),
    cluster_id      INTEGER NOT NULL REFERENCES clusters(id),
    kind            TEXT NOT NULL CHECK (kind IN ('rollback', 'failover')),
    service         TEXT NOT NULL,
    -- What the request's path names: the deployment (rollback) or the service (failover).
    target          TEXT NOT NULL,
    -- The precondition sent (revision or primary region believed current) and the goal.
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
    CHECK ((state IN ('proposed', 'cancelled')) OR idempotency_key IS NOT NULL)
);
CREATE INDEX actions_by_incident ON actions (incident_id, id);
CREATE INDEX actions_unfinished ON actions (state) WHERE state IN ('pending', 'sent', 'unknown', 'accepted', 'running');

-- Every mutating action and every incident change, in order. Each record carries the
-- hash of the one before it (SHA-256 over its fields and that hash), written in the
-- same transaction as the change; `firebreak audit verify` recomputes the chain.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY,
    at_ms     INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    subject   TEXT NOT NULL,
    what      TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL UNIQUE
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
