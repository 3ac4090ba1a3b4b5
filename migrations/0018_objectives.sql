-- A service's objectives, set in the console: the share of requests that must succeed,
-- and optionally the p99 a one-minute slice must stay at or under and the share of slices
-- that must. With objectives, the service's incidents open on burn-rate conditions
-- instead of the fixed error-rate rule. Who set them and when is kept (and audited).
CREATE TABLE objectives (
    cluster_id      INTEGER NOT NULL REFERENCES clusters(id),
    service         TEXT NOT NULL CHECK (length(service) BETWEEN 1 AND 256),
    availability    REAL NOT NULL CHECK (availability > 0 AND availability < 1),
    latency_p99_ms  REAL CHECK (latency_p99_ms IS NULL OR latency_p99_ms > 0),
    latency_target  REAL NOT NULL CHECK (latency_target > 0 AND latency_target < 1),
    set_by          TEXT NOT NULL,
    set_at_ms       INTEGER NOT NULL,
    PRIMARY KEY (cluster_id, service)
);
