-- Who is connected, and which incident each console shows, is kept in the memory of the
-- server processes and passed between them as notifications (team/presence.rs): a
-- table written by every stream every few seconds cost the database more than all the
-- records together.
DROP TABLE presence;
