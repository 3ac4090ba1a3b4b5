-- Who may write what (TEAM.md, "Trust"). A console id belongs to the person whose token
-- first used it: another token presenting it is refused, so a console id cannot be
-- borrowed to pass as someone else's console. Bound by name: a person whose token was
-- replaced (revoked, then added again) keeps their consoles.
CREATE TABLE consoles (
    console   uuid PRIMARY KEY,
    person    text NOT NULL,
    first_at  timestamptz NOT NULL DEFAULT now()
);

-- The console that drives each action and runbook run (the one whose first record named
-- it): only that console, under the same person, may record its later states. A teammate
-- cannot mark someone else's rollback succeeded or move their runbook on.
CREATE TABLE owners (
    team_id   bigint NOT NULL REFERENCES teams(id),
    kind      text NOT NULL CHECK (kind IN ('action', 'run')),
    key       text NOT NULL,
    console   uuid NOT NULL,
    person    text NOT NULL,
    PRIMARY KEY (team_id, kind, key)
);
