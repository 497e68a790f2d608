-- name: read_metrics_snapshot
-- The deployment's gauges as last computed, with their age by the database's clock.
SELECT data, EXTRACT(EPOCH FROM taken_at)::float8 AS taken_at,
       EXTRACT(EPOCH FROM now() - taken_at)::float8 AS age
FROM metrics_snapshot WHERE id;

-- name: lock_metrics_snapshot
-- One process at a time recomputes the snapshot (released at the end of its transaction);
-- the others do not wait.
SELECT pg_try_advisory_xact_lock(hashtext('processgpt_metrics_snapshot'));

-- name: compute_metrics_snapshot
-- The deployment's gauges as one JSON object. Reads open work only, each part through a
-- partial index (see migration 0022): O(open work), whatever the number of finished tasks.
-- Agent names come from tasks: a name that is neither a built-in ($1) nor registered by a
-- worker (orchestrators) is counted as '_unregistered', so label values stay the operator's.
WITH pending AS (
    SELECT agent_orch, count(*) AS n,
           count(*) FILTER (WHERE run_at <= now()) AS due,
           EXTRACT(EPOCH FROM now() - min(run_at) FILTER (WHERE run_at <= now()))::float8 AS oldest
    FROM todolist WHERE status = 'PENDING'
    GROUP BY agent_orch
), running AS (
    SELECT agent_orch, count(*) AS n FROM todolist WHERE status = 'IN_PROGRESS'
    GROUP BY agent_orch
), waiting AS (
    SELECT agent_orch, count(*) AS n FROM todolist WHERE status = 'INPUT_REQUIRED'
    GROUP BY agent_orch
), per_agent AS (
    -- every agent a worker registered or built in, with zeros (a series that vanishes when a
    -- queue empties would read as "no data" to an autoscaler), and any other name in use
    SELECT CASE WHEN o.name IS NOT NULL OR a.agent_orch = ANY ($1::text[]) THEN a.agent_orch
                ELSE '_unregistered' END AS agent,
           COALESCE(sum(p.n), 0) AS pending, COALESCE(sum(p.due), 0) AS due,
           COALESCE(max(p.oldest), 0) AS oldest,
           COALESCE(sum(r.n), 0) AS running, COALESCE(sum(w.n), 0) AS waiting
    FROM (SELECT agent_orch FROM pending UNION SELECT agent_orch FROM running
          UNION SELECT agent_orch FROM waiting UNION SELECT name FROM orchestrators
          UNION SELECT unnest($1::text[])) a
    LEFT JOIN orchestrators o ON o.name = a.agent_orch
    LEFT JOIN pending p ON p.agent_orch = a.agent_orch
    LEFT JOIN running r ON r.agent_orch = a.agent_orch
    LEFT JOIN waiting w ON w.agent_orch = a.agent_orch
    GROUP BY 1
), instances AS (
    SELECT status::text AS status, count(*) AS n,
           COALESCE(sum(jsonb_array_length(state -> 'incidents'))
                    FILTER (WHERE jsonb_typeof(state -> 'incidents') = 'array'), 0) AS incidents
    FROM bpm_proc_inst WHERE status IN ('RUNNING', 'INCIDENT')
    GROUP BY status
)
SELECT jsonb_build_object(
    'pending', COALESCE((SELECT jsonb_object_agg(agent, pending) FROM per_agent), '{}'),
    'pending_due', COALESCE((SELECT jsonb_object_agg(agent, due) FROM per_agent), '{}'),
    'oldest_pending_seconds',
        COALESCE((SELECT jsonb_object_agg(agent, oldest) FROM per_agent), '{}'),
    'in_progress', COALESCE((SELECT jsonb_object_agg(agent, running) FROM per_agent), '{}'),
    'input_required', COALESCE((SELECT jsonb_object_agg(agent, waiting) FROM per_agent), '{}'),
    'instances', COALESCE((SELECT jsonb_object_agg(status, n) FROM instances), '{}'),
    'incidents_open', COALESCE((SELECT sum(incidents) FROM instances), 0),
    -- webhook deliveries waiting to be sent (those of disabled endpoints excluded), through
    -- webhook_deliveries_endpoint_due (migration 0031)
    'webhooks', (
        SELECT jsonb_build_object(
            'pending', count(*),
            'due', count(*) FILTER (WHERE next_attempt_at <= now()),
            'oldest_due_seconds', COALESCE(EXTRACT(EPOCH FROM now() - min(next_attempt_at)
                FILTER (WHERE next_attempt_at <= now()))::float8, 0))
        FROM webhook_deliveries
        WHERE status = 'PENDING' AND next_attempt_at < 'infinity')
);

-- name: store_metrics_snapshot
INSERT INTO metrics_snapshot (id, taken_at, data) VALUES (true, now(), $1)
ON CONFLICT (id) DO UPDATE SET taken_at = EXCLUDED.taken_at, data = EXCLUDED.data;

-- name: tenant_queue_summary
-- One tenant's open tasks by agent and status (its console's queue view). Two branches so each
-- reads only open work whatever the tenant's history: PENDING and INPUT_REQUIRED through
-- todolist_tenant_open, IN_PROGRESS through todolist_lease (every running task of the
-- deployment, bounded by the workers' slots). One OR'ed predicate lets the planner pick a
-- sequential scan once the finished tasks dominate the statistics.
WITH open AS (
    SELECT agent_orch, status, run_at
    FROM todolist
    WHERE tenant_id = $1 AND status IN ('PENDING', 'INPUT_REQUIRED')
    UNION ALL
    SELECT agent_orch, status, run_at
    FROM todolist
    WHERE status = 'IN_PROGRESS' AND tenant_id = $1
)
SELECT agent_orch AS agent, status::text AS status, count(*) AS n,
       EXTRACT(EPOCH FROM now() - min(run_at) FILTER (WHERE status = 'PENDING'
                                                      AND run_at <= now()))::float8 AS oldest
FROM open
GROUP BY agent_orch, status;

-- name: tenant_timing_summary
-- Wait (created → first claim) and run (first claim → end, retries included) times of one
-- tenant's tasks created within the last $2 seconds that have ended, by agent: counts and
-- percentiles (p50, p90, p99), from its newest $3 tasks at most (todolist_tenant_created), so
-- a busy tenant's summary stays bounded.
WITH recent AS (
    SELECT agent_orch, created_at, started_at, finished_at, status
    FROM todolist
    WHERE tenant_id = $1 AND created_at >= now() - make_interval(secs => $2)
    ORDER BY created_at DESC, id DESC
    LIMIT $3
), ended AS (
    SELECT agent_orch,
           EXTRACT(EPOCH FROM started_at - created_at)::float8 AS wait,
           EXTRACT(EPOCH FROM finished_at - started_at)::float8 AS run, status
    FROM recent
    WHERE finished_at IS NOT NULL AND started_at IS NOT NULL
)
SELECT agent_orch AS agent, count(*) AS n,
       count(*) FILTER (WHERE status = 'DONE') AS done,
       count(*) FILTER (WHERE status = 'FAILED') AS failed,
       count(*) FILTER (WHERE status = 'CANCELLED') AS cancelled,
       percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY wait) AS wait,
       percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY run) AS run
FROM ended
GROUP BY agent_orch;
