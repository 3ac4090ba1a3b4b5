-- A service's newest events of one type (its newest sample, the alerts firing on it, its
-- nodes' states, its rollout) read by seeking, not by walking the service's history down
-- from its newest event: through `events_by_service_time` alone, the Fleet board read every
-- row a service ever recorded to learn that none of its nodes had failed, and a storm of
-- other events on a service made each read of the board slower by the size of the storm.
CREATE INDEX IF NOT EXISTS events_by_service_type ON events (cluster_id, service, type, time_ms);
