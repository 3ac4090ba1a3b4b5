-- An incident's own demo mark, beside its cluster's (`clusters.demo`). An incident
-- imported from a bundle recorded on a demo cluster lands here on a cluster that may not be
-- one (a removed cluster made from the bundle, or a real cluster of the same name), and must
-- still say it is demo data: in the window, its reports and the summit. An incident is demo
-- when either mark says so.
ALTER TABLE incidents ADD COLUMN demo INTEGER NOT NULL DEFAULT 0 CHECK (demo IN (0, 1));

-- Demo data is never shared with a team, whichever mark says it is demo.
DROP TRIGGER team_share_open;
CREATE TRIGGER team_share_open AFTER INSERT ON incidents
WHEN EXISTS (SELECT 1 FROM team_link)
 AND NOT EXISTS (SELECT 1 FROM team_applying)
 AND NEW.demo = 0
 AND NOT EXISTS (SELECT 1 FROM clusters WHERE id = NEW.cluster_id AND demo = 1)
BEGIN
    INSERT INTO team_incidents (incident_id) VALUES (NEW.id);
    INSERT INTO team_outbox (id, incident_id, kind, at_ms, body)
    SELECT id, NEW.id, 'open', NEW.opened_ms, json_object(
        'title', NEW.title, 'severity', NEW.severity, 'service', NEW.service,
        'cluster', (SELECT name FROM clusters WHERE id = NEW.cluster_id), 'entry', '')
    FROM team_new_id;
END;
