-- name: insert_task
-- Insert a PENDING task, or return the task already stored under the same idempotency key.
-- `created` tells which. No row when proc_inst_id names another tenant's (or no) instance.
WITH ins AS (
    INSERT INTO todolist (tenant_id, agent_orch, query, input, priority, run_at, max_attempts,
                          idempotency_key, proc_inst_id, activity_id, activity_name, user_id,
                          tool, description, agent_profile, traceparent, tracestate)
    SELECT $1, $2, $3, $4, $5, COALESCE($6, now()), $7, $8, $9, $10, $11, $12, $13, $14, $15,
           $16, $17
    WHERE $9::uuid IS NULL
       OR EXISTS (SELECT 1 FROM bpm_proc_inst p WHERE p.proc_inst_id = $9 AND p.tenant_id = $1)
    ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING *
)
SELECT ins.*, true AS created FROM ins
UNION ALL
SELECT t.*, false AS created FROM todolist t
WHERE $8::text IS NOT NULL AND t.tenant_id = $1 AND t.idempotency_key = $8
  AND NOT EXISTS (SELECT 1 FROM ins);

-- name: get_task
SELECT * FROM todolist WHERE id = $1 AND tenant_id = $2;

-- name: get_task_by_key
SELECT * FROM todolist WHERE tenant_id = $1 AND idempotency_key = $2;

-- name: list_tasks
-- Newest first; the cursor is the (created_at, id) of the last row of the previous page.
-- TaskRepository.list_tasks replaces the marked line with the status wanted as a literal
-- (from the enum), so the planner can use that state's partial index.
SELECT * FROM todolist
WHERE tenant_id = $1
  AND true  -- status filter
  AND ($2::text IS NULL OR agent_orch = $2)
  AND ($3::uuid IS NULL OR proc_inst_id = $3)
  AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
  -- $7: text searched for (case-insensitive, no wildcards) in the query, the activity name,
  -- the agent and the id.
  AND ($7::text IS NULL OR strpos(lower(query), lower($7)) > 0
       OR strpos(lower(coalesce(activity_name, '')), lower($7)) > 0
       OR strpos(agent_orch, lower($7)) > 0 OR id::text = lower($7))
ORDER BY created_at DESC, id DESC
LIMIT $6;

-- name: claim_tasks
-- Claim up to $2 claimable tasks of the given orchestrators in one statement, fairly between
-- tenants; each gets an owner, a lease, a fresh fence and attempt + 1.
-- Fairness: each tenant with pending work is served in proportion to its weight. A tenant's
-- k-th candidate (its own order: highest priority first, then oldest) gets the key
-- (tasks it has running + k) / weight, and the claim takes the lowest keys, so a tenant with
-- a backlog and many tasks running yields to a tenant that has none (ties go to a random
-- tenant). Priorities order a tenant's own tasks only: a tenant cannot jump ahead of another.
-- Limits: $5/$6 name orchestrators and the most tasks each may run at once across all
-- workers (processgpt_agent_room serialises the claims of a limited orchestrator); a tenant
-- with max_tasks_per_second starts no more than its token bucket holds (its row is locked,
-- read at its newest version and charged in this statement).
-- The same round trip reads each task's context (form, people and agents, the tenant's MCP
-- configuration with its enabled mcp_servers, the agent profile, process sources), NULL when
-- absent or empty; a lookup runs only for tasks that name what it reads, and the tenant's MCP
-- configuration once per tenant of the batch.
-- Every read of pending tasks walks the claim index (agent_orch, tenant_id, priority, run_at):
-- the tenants with pending work by skipping from one tenant to the next (one descent each,
-- whatever a tenant's backlog), each tenant's candidates from its own ordered range, at most
-- $2 of them, for the $2 tenants first in line. The update finds the picked rows by primary
-- key whatever the size of the table.
WITH RECURSIVE pending_tenants (name, tenant_id) AS (
    -- The next (orchestrator, tenant) entry of the claim index after the previous one: a row
    -- comparison only that index's leading columns can bound (an index led by the tenant
    -- would have to filter every other orchestrator's backlog). NULL once past the name.
    SELECT a.name,
           (SELECT CASE WHEN t.agent_orch = a.name THEN t.tenant_id END FROM todolist t
            WHERE t.status = 'PENDING' AND (t.agent_orch, t.tenant_id) > (a.name, '')
            ORDER BY t.agent_orch, t.tenant_id LIMIT 1)
    FROM unnest($1::text[]) AS a(name)
    UNION ALL
    SELECT p.name,
           (SELECT CASE WHEN t.agent_orch = p.name THEN t.tenant_id END FROM todolist t
            WHERE t.status = 'PENDING' AND (t.agent_orch, t.tenant_id) > (p.name, p.tenant_id)
            ORDER BY t.agent_orch, t.tenant_id LIMIT 1)
    FROM pending_tenants p
    WHERE p.tenant_id IS NOT NULL
), active AS (
    -- Tenants with a task claimable now: one whose pending tasks all wait for a later run_at
    -- (a schedule, a retry's backoff) must not take a place in line from one that can run.
    -- (A LATERAL with LIMIT 1, not EXISTS: the planner may turn an EXISTS into a join with
    -- every pending task.)
    SELECT p.name, p.tenant_id FROM pending_tenants p
    CROSS JOIN LATERAL (
        SELECT FROM todolist t
        WHERE t.status = 'PENDING' AND t.agent_orch = p.name AND t.tenant_id = p.tenant_id
          AND t.run_at <= now() AND t.attempts < t.max_attempts
        ORDER BY t.priority DESC, t.run_at, t.id  -- the index's order: no plan scans the table
        LIMIT 1
    ) ready
    WHERE p.tenant_id IS NOT NULL
), usage AS (
    -- Tasks each tenant has running on these orchestrators; read only when several tenants
    -- wait (a one-time filter skips the scan otherwise).
    SELECT t.tenant_id, count(*) AS running FROM todolist t
    WHERE t.status = 'IN_PROGRESS' AND t.agent_orch = ANY ($1::text[])
      AND (SELECT count(DISTINCT tenant_id) FROM active) > 1
    GROUP BY t.tenant_id
), room AS MATERIALIZED (
    -- (no call at all without limits: a one-time filter)
    SELECT r.name, r.room FROM processgpt_agent_room($5::text[], $6::int[]) AS r
    WHERE cardinality($5::text[]) > 0
), shares AS (
    SELECT n.id AS tenant_id, n.weight, COALESCE(u.running, 0) AS running, random() AS lot
    FROM tenants n
    LEFT JOIN usage u ON u.tenant_id = n.id
    WHERE n.id IN (SELECT tenant_id FROM active)
    ORDER BY (COALESCE(u.running, 0) + 1)::float8 / n.weight, lot
    LIMIT $2
), locked_buckets AS (
    -- Rate-limited tenants in line: locked in id order (after the orchestrator locks: the
    -- room is read first), so the values read are the newest committed ones.
    SELECT n.id AS tenant_id, n.max_tasks_per_second AS rate, n.rate_tokens, n.rate_at
    FROM tenants n
    WHERE n.id IN (SELECT tenant_id FROM shares) AND n.max_tasks_per_second IS NOT NULL
      AND (SELECT count(*) FROM room) >= 0
    ORDER BY n.id
    FOR NO KEY UPDATE  -- not FOR UPDATE: the tenant's new tasks (their key-share checks) go on
), buckets AS (
    SELECT b.tenant_id, a.tokens, floor(a.tokens)::bigint AS allowance
    FROM locked_buckets b
    CROSS JOIN LATERAL (
        SELECT CASE WHEN b.rate_at IS NULL THEN greatest(b.rate, 1)
                    ELSE least(greatest(b.rate, 1), b.rate_tokens
                         + greatest(0, EXTRACT(EPOCH FROM now() - b.rate_at)::float8) * b.rate)
               END AS tokens
    ) a
), candidates AS (
    SELECT s.tenant_id, s.weight, s.running, s.lot, a.name, c.id, c.priority, c.run_at
    FROM shares s
    JOIN active a ON a.tenant_id = s.tenant_id
    LEFT JOIN buckets b ON b.tenant_id = s.tenant_id
    LEFT JOIN room r ON r.name = a.name
    CROSS JOIN LATERAL (
        SELECT t.id, t.priority, t.run_at FROM todolist t
        WHERE t.status = 'PENDING' AND t.agent_orch = a.name AND t.tenant_id = s.tenant_id
          AND t.run_at <= now() AND t.attempts < t.max_attempts
        ORDER BY t.priority DESC, t.run_at, t.id
        LIMIT least($2, b.allowance, r.room)
        FOR UPDATE SKIP LOCKED
    ) c
), ranked AS (
    SELECT c.id, c.name, c.tenant_id, c.lot, c.priority, c.run_at,
           row_number() OVER (PARTITION BY c.tenant_id ORDER BY c.priority DESC, c.run_at, c.id)
               AS n_tenant,
           (c.running + row_number() OVER (PARTITION BY c.tenant_id
                                           ORDER BY c.priority DESC, c.run_at, c.id))::float8
               / c.weight AS key
    FROM candidates c
), allowed AS (
    SELECT r.*, row_number() OVER (PARTITION BY r.name ORDER BY r.key, r.lot, r.id) AS n_agent
    FROM ranked r
    LEFT JOIN buckets b ON b.tenant_id = r.tenant_id
    WHERE b.allowance IS NULL OR r.n_tenant <= b.allowance
), picked AS (
    SELECT l.id, l.tenant_id FROM allowed l
    LEFT JOIN room m ON m.name = l.name
    WHERE m.room IS NULL OR l.n_agent <= m.room
    ORDER BY l.key, l.lot, l.priority DESC, l.run_at, l.id
    LIMIT $2
), claimed AS (
    UPDATE todolist t
    SET status = 'IN_PROGRESS', consumer = $3, lease_until = now() + make_interval(secs => $4),
        fence = t.fence + 1, attempts = t.attempts + 1, started_at = COALESCE(t.started_at, now()),
        updated_at = now()
    WHERE t.id = ANY (ARRAY(SELECT id FROM picked))
    RETURNING t.*
), charged AS (
    -- Each rate-limited tenant pays one token per task started.
    UPDATE tenants n
    SET rate_tokens = b.tokens - k.started, rate_at = greatest(now(), n.rate_at)
    FROM buckets b
    JOIN (SELECT tenant_id, count(*) AS started FROM claimed GROUP BY tenant_id) k
      ON k.tenant_id = b.tenant_id
    WHERE n.id = b.tenant_id
), tenant_ctx AS (
    -- tenants.mcp with the tenant's enabled mcp_servers rows merged in (rows win), once per
    -- tenant of the batch.
    SELECT n.id,
           CASE WHEN m.servers IS NULL THEN n.mcp
                ELSE n.mcp || jsonb_build_object('mcpServers',
                     CASE WHEN jsonb_typeof(n.mcp -> 'mcpServers') = 'object'
                          THEN n.mcp -> 'mcpServers' ELSE '{}'::jsonb END || m.servers)
           END AS mcp
    FROM tenants n
    CROSS JOIN LATERAL (
        SELECT jsonb_object_agg(s.name, s.config) AS servers FROM mcp_servers s
        WHERE s.tenant_id = n.id AND s.enabled
    ) m
    WHERE n.id IN (SELECT DISTINCT tenant_id FROM claimed)
)
SELECT c.*,
       CASE WHEN c.tool IS NOT NULL THEN
           (SELECT to_jsonb(f) FROM form_def f
            WHERE f.tenant_id = c.tenant_id
              AND f.id = CASE WHEN position(':' IN c.tool) > 0
                              THEN split_part(c.tool, ':', 2) ELSE c.tool END)
       END AS ctx_form,
       CASE WHEN c.user_id IS NOT NULL THEN
           (SELECT jsonb_agg(to_jsonb(u) ORDER BY u.id) FROM users u,
                   (SELECT COALESCE(array_agg(btrim(x)) FILTER (WHERE btrim(x) <> ''), '{}') AS list
                    FROM unnest(string_to_array(c.user_id, ',')) AS x) ids
            WHERE u.tenant_id = c.tenant_id
              AND (u.id = ANY (ids.list) OR u.email = ANY (ids.list)))
       END AS ctx_users,
       NULLIF(tc.mcp, '{}'::jsonb) AS ctx_tenant_mcp,
       CASE WHEN c.agent_profile IS NOT NULL THEN
           (SELECT to_jsonb(p) FROM agents p
            WHERE p.tenant_id = c.tenant_id AND p.name = c.agent_profile)
       END AS ctx_agent_profile,
       CASE WHEN c.proc_inst_id IS NOT NULL THEN
           (SELECT jsonb_agg(to_jsonb(s) ORDER BY s.created_at)
            FROM proc_inst_source s WHERE s.proc_inst_id = c.proc_inst_id)
       END AS ctx_sources
FROM claimed c
LEFT JOIN tenant_ctx tc ON tc.id = c.tenant_id;

-- name: next_run_at
-- Seconds until the next delayed task of these orchestrators becomes claimable (NULL: none).
SELECT EXTRACT(EPOCH FROM min(run_at) - now())::float8 FROM todolist
WHERE status = 'PENDING' AND agent_orch = ANY($1::text[]) AND run_at > now();

-- name: extend_leases
-- Heartbeat: extend the leases a worker still holds; missing ids are leases it lost.
UPDATE todolist t SET lease_until = now() + make_interval(secs => $3)
FROM unnest($1::uuid[], $2::bigint[]) AS u(id, fence)
WHERE t.id = u.id AND t.fence = u.fence AND t.status = 'IN_PROGRESS'
RETURNING t.id;

-- name: recover_expired
-- Tasks whose worker stopped renewing its lease (crashed or frozen): back to PENDING, or
-- FAILED once attempts are used up. Each gets an event; listeners are notified. A process
-- task that fails here runs its step in the same transaction (WorkerQueries.recover_expired).
WITH expired AS (
    SELECT id FROM todolist
    WHERE status = 'IN_PROGRESS' AND lease_until < now()
    ORDER BY lease_until
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), upd AS (
    UPDATE todolist t
    SET status = CASE WHEN t.attempts >= t.max_attempts THEN 'FAILED' ELSE 'PENDING' END::todo_status,
        consumer = NULL, lease_until = NULL, fence = t.fence + 1, last_seq = t.last_seq + 1,
        run_at = now(), updated_at = now(),
        finished_at = CASE WHEN t.attempts >= t.max_attempts THEN now() END,
        error = CASE WHEN t.attempts >= t.max_attempts
                THEN jsonb_build_object('code', 'lease_expired', 'message',
                     'the worker running the task stopped renewing its lease',
                     'attempt', t.attempts, 'consumer', t.consumer)
                ELSE t.error END
    FROM expired
    WHERE t.id = expired.id
    RETURNING t.id, t.tenant_id, t.proc_inst_id, t.last_seq, t.status, t.attempts, t.consumer,
              t.activity_id, t.activation, t.step_event, t.error, t.agent_orch
), ins AS (
    INSERT INTO events (tenant_id, todo_id, seq, proc_inst_id, job_id, event_type, crew_type, data)
    SELECT tenant_id, id, last_seq, proc_inst_id,
           CASE WHEN status = 'FAILED' THEN 'TASK_ERROR' ELSE 'TASK_REQUEUED' END,
           CASE WHEN status = 'FAILED' THEN 'error' ELSE 'task_requeued' END,
           'agent',
           jsonb_build_object('reason', 'lease_expired', 'attempt', attempts,
                              'message', 'the worker running the task stopped renewing its lease')
    FROM upd
)
SELECT upd.id, upd.last_seq, upd.status, upd.proc_inst_id, upd.activity_id, upd.activation,
       upd.step_event, upd.error, upd.agent_orch,
       (SELECT pg_notify('processgpt_events',
                          string_agg(u2.id::text || ':' || u2.last_seq || ':' || u2.status, ','))
        FROM upd u2) AS notified
FROM upd;

-- name: cancel_task
-- Cancel a task that has not ended; bumps the fence so its worker can write nothing more,
-- and tells that worker at once. Not a process's work item (step or judge task): those end
-- with their instance (ProcessService.cancel).
WITH upd AS (
    UPDATE todolist t
    SET status = 'CANCELLED', consumer = NULL, lease_until = NULL, fence = t.fence + 1,
        last_seq = t.last_seq + 1, finished_at = now(), updated_at = now()
    WHERE t.id = $1 AND t.tenant_id = $2
      AND t.status IN ('PENDING', 'IN_PROGRESS', 'INPUT_REQUIRED')
      AND t.activation IS NULL AND t.step_event IS NULL
    RETURNING t.*
), ins AS (
    INSERT INTO events (tenant_id, todo_id, seq, proc_inst_id, job_id, event_type, crew_type, data)
    SELECT tenant_id, id, last_seq, proc_inst_id, 'TASK_CANCELLED', 'task_cancelled', 'agent',
           jsonb_build_object('reason', $3::text)
    FROM upd
)
-- The fence in the notification lets a worker ignore it for a later claim of the same task.
SELECT upd.*, pg_notify('processgpt_control', 'cancel:' || upd.id::text || ':' || upd.fence),
       pg_notify('processgpt_events', upd.id::text || ':' || upd.last_seq || ':' || upd.status)
FROM upd;

-- name: requeue_task
-- Put a FAILED or CANCELLED task back in the queue with its attempts reset. Not a process
-- step (its failure is an incident of its instance: resolving it runs the step again); a
-- judge task may be (its verdicts are asked again).
WITH upd AS (
    UPDATE todolist t
    SET status = 'PENDING', attempts = 0, run_at = now(), error = NULL, finished_at = NULL,
        fence = t.fence + 1, last_seq = t.last_seq + 1, updated_at = now()
    WHERE t.id = $1 AND t.tenant_id = $2 AND t.status IN ('FAILED', 'CANCELLED')
      AND t.activation IS NULL
    RETURNING t.*
), ins AS (
    INSERT INTO events (tenant_id, todo_id, seq, proc_inst_id, job_id, event_type, crew_type, data)
    SELECT tenant_id, id, last_seq, proc_inst_id, 'TASK_REQUEUED', 'task_requeued', 'agent',
           jsonb_build_object('reason', 'requeued')
    FROM upd
)
SELECT upd.*, pg_notify('processgpt_events', upd.id::text || ':' || upd.last_seq || ':' || upd.status) FROM upd;

-- name: answer_task
-- A person answers a task waiting for input: the answer is stored, logged as a
-- human_response (same job_id as the question) and the task is queued again.
WITH asked AS (
    SELECT e.job_id FROM events e
    WHERE e.todo_id = $1 AND e.event_type = 'human_asked'
    ORDER BY e.seq DESC LIMIT 1
), upd AS (
    UPDATE todolist t
    SET status = 'PENDING', attempts = 0, run_at = now(), human_response = $3::jsonb,
        fence = t.fence + 1, last_seq = t.last_seq + 1, updated_at = now()
    WHERE t.id = $1 AND t.tenant_id = $2 AND t.status = 'INPUT_REQUIRED'
    RETURNING t.*
), ins AS (
    INSERT INTO events (tenant_id, todo_id, seq, proc_inst_id, job_id, event_type, crew_type,
                        status, data)
    SELECT tenant_id, id, last_seq, proc_inst_id,
           COALESCE((SELECT job_id FROM asked), 'human_response'), 'human_response', 'agent',
           'APPROVED', $3::jsonb
    FROM upd
)
SELECT upd.*, pg_notify('processgpt_events', upd.id::text || ':' || upd.last_seq || ':' || upd.status) FROM upd;

-- name: set_feedback
-- The feedback is stored on the task and queued for the learning step (memory_feedback) in
-- the same statement: feedback accepted is never lost.
WITH upd AS (
    UPDATE todolist SET feedback = $3::jsonb, updated_at = now()
    WHERE id = $1 AND tenant_id = $2
    RETURNING *
), queued AS (
    INSERT INTO memory_feedback (tenant_id, task_id, signal, agent, proc_def_id, activity_id,
                                 user_id, query, answer, feedback)
    SELECT tenant_id, id, 'feedback', COALESCE(agent_profile, agent_orch), proc_def_id,
           activity_id, user_id, left(query, 20000), COALESCE(output, draft), $3::jsonb
    FROM upd
    WHERE $3::jsonb IS NOT NULL AND $3::jsonb <> 'null'::jsonb
)
SELECT * FROM upd;

-- name: register_orchestrators
INSERT INTO orchestrators (name, description)
SELECT * FROM unnest($1::text[], $2::text[])
ON CONFLICT (name) DO UPDATE SET last_seen_at = now(), description = EXCLUDED.description;

-- name: orchestrator_exists
SELECT EXISTS (SELECT 1 FROM orchestrators WHERE name = $1);

-- name: agent_names
SELECT name FROM orchestrators
UNION
SELECT name FROM agents WHERE tenant_id = $1;

-- name: list_orchestrators
-- online: a worker serving it refreshed last_seen_at (every ~10 s) within 30 seconds.
SELECT name, description, registered_at, last_seen_at,
       last_seen_at > now() - interval '30 seconds' AS online
FROM orchestrators ORDER BY name;
