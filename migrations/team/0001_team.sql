-- The team server's schema (PostgreSQL). The server keeps no state of its own: every
-- server process behind a load balancer reads and writes only this database.
-- Migrations only move forward; a column is never repurposed.

-- A team: the people who see one shared record. `next_seq` is the next sequence its
-- stream hands out; a push locks the team's row, so sequences are gap-free and commit in
-- the order they were given.
CREATE TABLE teams (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    next_seq   BIGINT NOT NULL DEFAULT 1 CHECK (next_seq >= 1),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A person. The token is shown once when the person is added; only its SHA-256 is kept.
CREATE TABLE people (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 100),
    token_hash BYTEA NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at TIMESTAMPTZ
);

CREATE TABLE memberships (
    person_id BIGINT NOT NULL REFERENCES people(id),
    team_id   BIGINT NOT NULL REFERENCES teams(id),
    PRIMARY KEY (person_id, team_id)
);

-- Every accepted record, in its team's stream. `id` is the pushing console's own id for
-- the record: a push retried after a lost answer finds it here and is not applied twice.
CREATE TABLE records (
    team_id     BIGINT NOT NULL REFERENCES teams(id),
    seq         BIGINT NOT NULL CHECK (seq >= 1),
    id          UUID NOT NULL,
    incident    UUID NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('open', 'append', 'command')),
    author      TEXT NOT NULL,
    console     UUID NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    accepted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    body        JSONB NOT NULL,
    PRIMARY KEY (team_id, seq),
    UNIQUE (team_id, id)
);

-- Each incident's shared fields as the accepted commands left them, with who set each
-- and when: what a stale command is checked against and refused with.
CREATE TABLE incident_fields (
    team_id  BIGINT NOT NULL REFERENCES teams(id),
    incident UUID NOT NULL,
    field    TEXT NOT NULL,
    value    JSONB NOT NULL,
    seq      BIGINT NOT NULL,
    by_name  TEXT NOT NULL,
    at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (team_id, incident, field)
);

-- Commands refused, with the answer given: a retried push gets the same answer.
CREATE TABLE refusals (
    team_id BIGINT NOT NULL REFERENCES teams(id),
    id      UUID NOT NULL,
    answer  JSONB NOT NULL,
    at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, id)
);

-- Who has a console connected, and which incident it shows. Rows are refreshed while a
-- console is connected and ignored once older than the server's presence window.
CREATE TABLE presence (
    team_id  BIGINT NOT NULL REFERENCES teams(id),
    console  UUID NOT NULL,
    name     TEXT NOT NULL,
    incident UUID,
    seen_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (team_id, console)
);
