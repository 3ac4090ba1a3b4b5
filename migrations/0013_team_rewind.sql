-- Reading the team again after its database was restored from an older copy.
--
-- The id of the team record at the cursor: on every connection the console checks that
-- the team's stream still has that record at that sequence. When it does not (or the
-- stream ends before the cursor), the team database was restored and may since have
-- numbered other records the same: the console reads the team again from the start,
-- skipping what it has, and sends its own records again (`Store::team_rewind`). NULL
-- before the first record, and on stores from before this migration until the next one.
ALTER TABLE team_link ADD COLUMN cursor_record TEXT;

-- The team record that added a runbook step mirrored from a teammate, so that reading the
-- team again does not add it twice. NULL on rows from before this migration.
ALTER TABLE team_run_steps ADD COLUMN step_record TEXT;
CREATE UNIQUE INDEX team_run_steps_by_record ON team_run_steps (step_record)
    WHERE step_record IS NOT NULL;
