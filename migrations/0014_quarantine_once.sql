-- A bad frame is kept once, however often the stream replays it (each reconnect resends
-- what came after the cursor, bad frames included). `frame_key` names the frame: its
-- stream and sequence where the sequence could be read, else a digest of its reason and
-- bytes; a frame seen again counts on its first row (`times`, `last_ms`). Rows from before
-- have no key and stay as they were.
ALTER TABLE quarantine ADD COLUMN frame_key TEXT;
ALTER TABLE quarantine ADD COLUMN times INTEGER NOT NULL DEFAULT 1;
ALTER TABLE quarantine ADD COLUMN last_ms INTEGER;
CREATE UNIQUE INDEX quarantine_by_frame ON quarantine (cluster_id, frame_key);
