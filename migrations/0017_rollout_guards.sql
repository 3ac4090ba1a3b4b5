-- A service's rollout guard: what the console does when a rollout's canary verdict fails
-- ('watch': shows it; 'propose': opens or updates the incident and proposes a pause;
-- 'pause_on_fail': also confirms that pause, as approved here). Who approved the policy,
-- when and why is kept beside it (and in the audit log); no row means 'watch'.
CREATE TABLE rollout_guards (
    cluster_id      INTEGER NOT NULL REFERENCES clusters(id),
    service         TEXT NOT NULL CHECK (length(service) BETWEEN 1 AND 256),
    mode            TEXT NOT NULL CHECK (mode IN ('watch', 'propose', 'pause_on_fail')),
    approved_by     TEXT NOT NULL CHECK (length(approved_by) BETWEEN 1 AND 256),
    approved_at_ms  INTEGER NOT NULL,
    reason          TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    PRIMARY KEY (cluster_id, service)
);

-- What a guard did about one rollout's failing verdict: one row per rollout (its
-- `rollout.started` event), claimed before anything is done, so a restart carries the
-- same decision on instead of taking it again. `outcome` is set when it is over.
CREATE TABLE guard_decisions (
    cluster_id      INTEGER NOT NULL REFERENCES clusters(id),
    service         TEXT NOT NULL,
    rollout_seq     INTEGER NOT NULL,
    mode            TEXT NOT NULL CHECK (mode IN ('propose', 'pause_on_fail')),
    verdict_at_ms   INTEGER NOT NULL,
    sentence        TEXT NOT NULL,
    incident_id     INTEGER REFERENCES incidents(id),
    action_id       TEXT,
    outcome         TEXT,
    decided_ms      INTEGER NOT NULL,
    PRIMARY KEY (cluster_id, service, rollout_seq)
);
