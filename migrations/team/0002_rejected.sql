-- Records the server could not take (they do not parse, break a rule, or name an incident
-- not shared with the team), kept as they were sent for diagnosis. The rest of their push
-- is answered as usual; the console that sent one is told why and keeps it itself.
-- `firebreak team-server rejected` lists them.
CREATE TABLE rejected (
    n           BIGSERIAL PRIMARY KEY,
    team_id     BIGINT NOT NULL REFERENCES teams(id),
    -- The record's id, when it had a readable one.
    record_id   UUID,
    author      TEXT NOT NULL,
    console     UUID NOT NULL,
    -- The record as sent (JSON text; cut at 64 KiB).
    raw         TEXT NOT NULL,
    message     TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX rejected_by_team ON rejected (team_id, n);
