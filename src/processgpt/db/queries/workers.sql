-- name: worker_presence
-- A worker's presence, in one statement: its `workers` row is written (inserted at start,
-- refreshed at every beat, re-created if a peer forgot it while it was frozen), the
-- orchestrators it serves are marked seen, and rows of workers lost longer than $8 seconds are
-- deleted (skipping rows another beat is deleting: no waits, no deadlocks between workers).
-- $1 id, $2 host, $3 pid, $4 version, $5 agents, $6 slots, $7 slots in use.
WITH seen AS (
    UPDATE orchestrators SET last_seen_at = now() WHERE name = ANY ($5::text[])
    RETURNING 1
), forgotten AS (
    DELETE FROM workers
    WHERE id IN (SELECT w.id FROM workers w
                 WHERE w.last_heartbeat_at < now() - make_interval(secs => $8) AND w.id <> $1
                 FOR UPDATE SKIP LOCKED)
    RETURNING 1
)
INSERT INTO workers (id, host, pid, version, agents, slots, slots_in_use)
VALUES ($1, $2, $3, $4, $5::text[], $6, $7)
ON CONFLICT (id) DO UPDATE
SET last_heartbeat_at = now(), slots_in_use = EXCLUDED.slots_in_use,
    agents = EXCLUDED.agents, slots = EXCLUDED.slots;

-- name: deregister_worker
DELETE FROM workers WHERE id = $1;

-- name: list_workers
-- Every registered worker, the live first; `lost`: no heartbeat for $1 seconds.
SELECT id, host, pid, version, agents, slots, slots_in_use, started_at, last_heartbeat_at,
       last_heartbeat_at < now() - make_interval(secs => $1) AS lost
FROM workers
ORDER BY lost, started_at, id;

-- name: served_agents
-- The agents some live worker serves (heartbeat within $1 seconds).
SELECT DISTINCT unnest(agents) AS agent FROM workers
WHERE last_heartbeat_at >= now() - make_interval(secs => $1);
