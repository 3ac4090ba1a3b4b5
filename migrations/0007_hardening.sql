-- Hardening: where a stream's numbers come from, why a stretch is missing, which frame a
-- quarantined row was, and which installation may drive an action.

-- The stream identity the server named in its hello (NULL for servers that name none).
-- A different identity means the server's sequence started over: the cursor goes back to 0.
ALTER TABLE stream_cursors ADD COLUMN stream_id TEXT;

-- Why a stretch of the stream is missing: the server no longer had it, the console skipped
-- a frame it could not read, or the stream restarted (older rows: NULL, the first reason).
ALTER TABLE stream_gaps ADD COLUMN reason TEXT;

-- The stream sequence of a quarantined frame, when it could be read.
ALTER TABLE quarantine ADD COLUMN stream_sequence INTEGER;

-- The installation (one store, one random id) whose person confirmed the action. Only that
-- installation ever sends or follows it; an imported action has another one and is history.
ALTER TABLE actions ADD COLUMN confirmed_install TEXT;
-- 1 when the action came in through an export bundle: history only, never driven.
ALTER TABLE actions ADD COLUMN imported INTEGER NOT NULL DEFAULT 0 CHECK (imported IN (0, 1));

-- This installation's id, made once. Actions confirmed here before this migration were
-- confirmed by this installation (imports did not exist apart from it until now).
INSERT OR IGNORE INTO settings (key, value) VALUES ('install_id', lower(hex(randomblob(16))));
UPDATE actions SET confirmed_install = (SELECT value FROM settings WHERE key = 'install_id')
    WHERE confirmed_by IS NOT NULL;
