-- name: apply_batch
-- One worker write batch, as one statement (one implicit transaction, one NOTIFY):
-- per-task updates ($1, task_write records) fenced by (id, fence), then the events ($2,
-- event_write records) of the tasks whose fence held. Returns the tasks whose writes were
-- accepted, each with its status before (a process step runs only for a task that ended in
-- this statement: status_before IN_PROGRESS).
--
-- Re-running the same batch after an unknown commit outcome is harmless: only events newer
-- than the task's newest event in this statement's snapshot are inserted, values are
-- absolute, and a task already moved to the requested status under the same fence still
-- counts as accepted. If the earlier run commits while this one waits for its rows, the
-- snapshot predates it and the insert collides with those events (events_pkey):
-- WorkerQueries.apply_batch then runs the batch once more, and that run sees them.
-- Tasks it moves from IN_PROGRESS to DONE emit task.completed here (the row trigger leaves
-- that transition to this statement, migration 0033), only for tenants with an enabled
-- webhook endpoint, and once: a re-run sees them DONE already.
WITH u AS (
    SELECT * FROM unnest($1::task_write[])
), owned AS (
    UPDATE todolist t
    SET last_seq = GREATEST(t.last_seq, u.last_seq),
        status = COALESCE(u.status, t.status),
        output = COALESCE(u.output::jsonb, t.output),
        draft = COALESCE(u.draft::jsonb, t.draft),
        error = CASE WHEN u.status IS NULL THEN t.error
                     WHEN u.status = 'DONE' THEN NULL
                     ELSE COALESCE(u.error::jsonb, t.error) END,
        -- the database's clock decides when a retried task is due, as it does for claims
        run_at = CASE WHEN u.delay IS NULL THEN t.run_at
                      ELSE now() + make_interval(secs => u.delay) END,
        attempts = COALESCE(u.attempts, t.attempts),
        consumer = CASE WHEN u.status IS NULL OR u.status = 'IN_PROGRESS' THEN t.consumer END,
        lease_until = CASE WHEN u.status IS NULL OR u.status = 'IN_PROGRESS' THEN t.lease_until END,
        finished_at = CASE WHEN u.status IN ('DONE', 'FAILED', 'CANCELLED') THEN now()
                           WHEN u.status IS NULL THEN t.finished_at END,
        updated_at = now()
    FROM u JOIN todolist b ON b.id = u.id  -- b: the row in this statement's snapshot
    WHERE t.id = ANY (ARRAY(SELECT u.id FROM u)) AND t.id = u.id AND t.fence = u.fence
      AND (t.status = 'IN_PROGRESS' OR (u.status IS NOT NULL AND t.status = u.status))
    RETURNING t.id, t.tenant_id, t.proc_inst_id, t.last_seq, t.status, b.last_seq AS seq_before,
              b.status AS status_before, t.agent_orch, t.activity_id, t.user_id, t.role
), ins AS (
    INSERT INTO events (tenant_id, todo_id, seq, proc_inst_id, job_id, event_type, crew_type,
                        status, data)
    SELECT o.tenant_id, e.todo_id, e.seq, o.proc_inst_id, e.job_id, e.event_type, e.crew_type,
           e.status, e.data::jsonb
    FROM unnest($2::event_write[]) e
    JOIN owned o ON o.id = e.todo_id AND e.seq > o.seq_before
), notified AS (
    -- One notification per batch ("<todo id>:<last seq>:<status>,..."), split below the
    -- 8000-byte payload limit.
    SELECT pg_notify('processgpt_events',
                     string_agg(id::text || ':' || last_seq || ':' || status, ','))
    FROM (SELECT id, last_seq, status, (row_number() OVER ()) / 120 AS chunk FROM owned) c
    GROUP BY chunk
), completed AS (
    -- todolist_emit()'s task.completed, with the same payload
    SELECT processgpt_emit(o.tenant_id, 'task.completed',
               jsonb_build_object('task_id', o.id, 'status', o.status, 'agent_orch', o.agent_orch,
                                  'proc_inst_id', o.proc_inst_id, 'activity_id', o.activity_id,
                                  'user_id', o.user_id, 'role', o.role),
               NULL, NULL, NULL, NULL, NULL, NULL)
    FROM owned o
    WHERE o.status = 'DONE' AND o.status_before = 'IN_PROGRESS'
      AND o.tenant_id IN (  -- one probe per tenant of the batch, not per task
          SELECT w.tenant_id FROM webhook_endpoints w
          WHERE w.tenant_id = ANY (ARRAY(SELECT DISTINCT tenant_id FROM owned)) AND w.enabled)
)
SELECT o.id, o.status_before, (SELECT count(*) FROM notified) AS notifications,
       (SELECT count(*) FROM completed) AS completions
FROM owned o;

-- name: fail_task_write
-- The database refused a task's write for a reason a retry cannot fix: fail the attempt with
-- error $3 and the event ($4 job_id, $5 event_type, $6 crew_type, $7 data as JSON text)
-- numbered after whatever the log already holds (fenced like any write).
WITH upd AS (
    UPDATE todolist t
    SET status = 'FAILED', consumer = NULL, lease_until = NULL, last_seq = t.last_seq + 1,
        error = $3::jsonb, finished_at = now(), updated_at = now()
    WHERE t.id = $1 AND t.fence = $2 AND t.status = 'IN_PROGRESS'
    RETURNING t.id, t.tenant_id, t.proc_inst_id, t.last_seq
), ins AS (
    INSERT INTO events (tenant_id, todo_id, seq, proc_inst_id, job_id, event_type, crew_type,
                        data)
    SELECT tenant_id, id, last_seq, proc_inst_id, $4::text, $5::text, $6::text,
           $7::text::jsonb
    FROM upd
)
SELECT upd.id, pg_notify('processgpt_events', upd.id::text || ':' || upd.last_seq || ':FAILED')
FROM upd;

-- name: list_events
-- A page of one task's log after a sequence number, for the task's tenant.
SELECT e.id, e.todo_id, e.seq, e.event_type, e.job_id, e.crew_type, e.status, e.data,
       e.proc_inst_id, e."timestamp"
FROM events e
WHERE e.todo_id = $1 AND e.tenant_id = $2 AND e.seq > $3
ORDER BY e.seq
LIMIT $4;
