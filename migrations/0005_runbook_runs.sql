-- Guided runbook runs: where each run is, and what each step found.

-- A run keeps the runbook's steps as they were when it started, so editing the file
-- mid-incident never changes a run under way.
CREATE TABLE runbook_runs (
    id              INTEGER PRIMARY KEY,
    incident_id     INTEGER NOT NULL REFERENCES incidents(id),
    runbook_id      TEXT NOT NULL,
    runbook_title   TEXT NOT NULL,
    runbook_version TEXT NOT NULL,
    steps           TEXT NOT NULL CHECK (json_valid(steps)),
    -- The step waiting for the engineer; NULL once the run has ended.
    current_step    TEXT,
    -- The action an action step waits on.
    waiting_action  TEXT REFERENCES actions(public_id),
    state           TEXT NOT NULL CHECK (state IN ('running', 'finished', 'abandoned')),
    started_by      TEXT NOT NULL,
    started_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
);
CREATE INDEX runbook_runs_by_incident ON runbook_runs (incident_id, id);

CREATE TABLE runbook_step_results (
    id       INTEGER PRIMARY KEY,
    run_id   INTEGER NOT NULL REFERENCES runbook_runs(id),
    step_id  TEXT NOT NULL,
    outcome  TEXT NOT NULL CHECK (outcome IN ('done', 'skipped', 'value', 'branched', 'action')),
    text     TEXT NOT NULL,
    value    REAL,
    series   TEXT CHECK (series IS NULL OR json_valid(series)),
    author   TEXT NOT NULL,
    at_ms    INTEGER NOT NULL
);
CREATE INDEX runbook_step_results_by_run ON runbook_step_results (run_id, id);
