-- name: lock_instances
-- Lock the instances $1 and all their ancestors (parents of child instances), in the one
-- order every step uses: by root instance, then depth from the root, then id. Returns each
-- locked row with its root, and the transaction's now(). Rows are locked as they are emitted, after the sort.
-- The state comes as JSON text (a worker that kept the state decodes nothing), with the row's
-- version: xmin, the transaction that wrote the row (see db/process_states.py).
WITH RECURSIVE chain AS (
    SELECT i.proc_inst_id AS id, i.parent_proc_inst_id AS parent, 0 AS up,
           i.proc_inst_id AS start
    FROM bpm_proc_inst i WHERE i.proc_inst_id = ANY ($1::uuid[])
    UNION ALL
    SELECT p.proc_inst_id, p.parent_proc_inst_id, c.up + 1, c.start
    FROM chain c JOIN bpm_proc_inst p ON p.proc_inst_id = c.parent
    WHERE c.up < 64
), tops AS (
    SELECT DISTINCT ON (start) start, id AS root, up AS height FROM chain
    ORDER BY start, up DESC
), members AS (
    SELECT DISTINCT c.id, t.root, t.height - c.up AS depth
    FROM chain c JOIN tops t ON t.start = c.start
)
SELECT i.proc_inst_id, i.tenant_id, i.proc_def_id, i.proc_def_version, i.status::text AS status,
       i.state::text AS state, i.parent_proc_inst_id, i.parent_node_id, i.parent_activation,
       i.subprocess_node_id, i.history_seq, i.xmin::text::bigint AS xmin, m.root, m.depth,
       now() AS now
FROM bpm_proc_inst i JOIN members m ON m.id = i.proc_inst_id
ORDER BY m.root, m.depth, i.proc_inst_id
FOR UPDATE OF i;

-- name: lock_instance_of_tenant
-- One instance of a tenant and its ancestors, locked as lock_instances does; no row when the
-- tenant has no such instance.
WITH RECURSIVE chain AS (
    SELECT i.proc_inst_id AS id, i.parent_proc_inst_id AS parent, 0 AS up
    FROM bpm_proc_inst i WHERE i.proc_inst_id = $1 AND i.tenant_id = $2
    UNION ALL
    SELECT p.proc_inst_id, p.parent_proc_inst_id, c.up + 1
    FROM chain c JOIN bpm_proc_inst p ON p.proc_inst_id = c.parent
    WHERE c.up < 64
), members AS (
    SELECT id, (SELECT max(up) FROM chain) - up AS depth FROM chain
)
SELECT i.proc_inst_id, i.tenant_id, i.proc_def_id, i.proc_def_version, i.status::text AS status,
       i.state, i.parent_proc_inst_id, i.parent_node_id, i.parent_activation,
       i.subprocess_node_id, i.history_seq, NULL::uuid AS root, m.depth, now() AS now
FROM bpm_proc_inst i JOIN members m ON m.id = i.proc_inst_id
ORDER BY m.depth
FOR UPDATE OF i;

-- name: lock_children
-- The open child instances of $1 started by (node $2, activation $3), locked (a parent
-- cancelling its child: descendants after ancestors, as lock_instances orders them).
SELECT i.proc_inst_id, i.tenant_id, i.proc_def_id, i.proc_def_version, i.status::text AS status,
       i.state, i.parent_proc_inst_id, i.parent_node_id, i.parent_activation,
       i.subprocess_node_id, i.history_seq, NULL::uuid AS root, 0 AS depth
FROM bpm_proc_inst i
WHERE i.parent_proc_inst_id = $1 AND i.parent_node_id = $2 AND i.parent_activation = $3
ORDER BY i.proc_inst_id
FOR UPDATE;

-- name: insert_instance
-- A new engine-driven instance (state filled by its first step), with the transaction's
-- now(). Returns nothing when the tenant already has an instance with idempotency key $6
-- (then read it with get_instance_by_key).
INSERT INTO bpm_proc_inst (tenant_id, proc_def_id, proc_def_version, proc_inst_name, status,
                           variables_data, state, idempotency_key, parent_proc_inst_id,
                           parent_node_id, parent_activation, subprocess_node_id,
                           traceparent, tracestate)
VALUES ($1, $2, $3, $4, 'RUNNING', $5, $7, $6, $8, $9, $10, $11, $12, $13)
ON CONFLICT (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING proc_inst_id, tenant_id, proc_def_id, proc_def_version, status::text AS status, state,
          parent_proc_inst_id, parent_node_id, parent_activation, subprocess_node_id,
          history_seq, NULL::uuid AS root, 0 AS depth, now() AS now;

-- name: get_instance_by_key
SELECT proc_inst_id FROM bpm_proc_inst WHERE tenant_id = $1 AND idempotency_key = $2;

-- name: apply_step
-- Everything one step of the engine decided for instance $1, in one statement:
-- $2 state, $3 status, $4 current_activity_ids, $5 variables, $6 history lines (JSON array of
-- {kind, node_id, activation, data, at}), $7 work items to create (JSON array; ON CONFLICT on
-- todolist_step: applying a step twice creates nothing twice), $8 work items to cancel
-- (JSON array of {activity_id, activation}), $9 cancel every open work item of the instance
-- (its cancellation), $10 timers to arm (JSON array of {key, due_at}), $11 timer keys to
-- drop, $12 the definition version (a migration; NULL keeps it), $13 why tasks are cancelled.
-- Cancelled work items get a bumped fence (their worker loses its lease), an event, and
-- their worker is told (processgpt_control); one processgpt_process notification per step.
WITH inst AS (
    UPDATE bpm_proc_inst
    SET state = $2, status = $3::proc_inst_status, current_activity_ids = $4,
        variables_data = $5,
        end_date = CASE WHEN $3 IN ('COMPLETED', 'CANCELLED') THEN COALESCE(end_date, now()) END,
        history_seq = history_seq + jsonb_array_length($6),
        proc_def_version = COALESCE($12, proc_def_version), updated_at = now()
    WHERE proc_inst_id = $1
    RETURNING proc_inst_id, tenant_id, proc_def_id, history_seq, status
), hist AS (
    INSERT INTO process_history (proc_inst_id, seq, tenant_id, kind, node_id, activation, data, at)
    SELECT inst.proc_inst_id, inst.history_seq - jsonb_array_length($6) + h.n, inst.tenant_id,
           h.e ->> 'kind', h.e ->> 'node_id', (h.e ->> 'activation')::int,
           COALESCE(h.e -> 'data', '{}'::jsonb), (h.e ->> 'at')::timestamptz
    FROM inst, jsonb_array_elements($6) WITH ORDINALITY AS h(e, n)
), new_tasks AS (
    INSERT INTO todolist (tenant_id, proc_inst_id, proc_def_id, activity_id, activation,
                          activity_name, agent_orch, agent_profile, status, user_id, role, tool,
                          description, query, input, due_at, step_event)
    SELECT inst.tenant_id, inst.proc_inst_id, inst.proc_def_id, x.activity_id, x.activation,
           x.activity_name, COALESCE(p.agent_orch, x.agent),
           CASE WHEN p.agent_orch IS NOT NULL THEN x.agent END, x.status::todo_status,
           x.user_id, x.role, x.tool, x.description, x.query, x.input, x.due_at, x.step_event
    FROM inst
    CROSS JOIN jsonb_to_recordset($7) AS x(activity_id text, activation int, activity_name text,
        agent text, status text, user_id text, role text, tool text, description text,
        query text, input jsonb, due_at timestamptz, step_event jsonb)
    LEFT JOIN agents p ON p.tenant_id = inst.tenant_id AND p.name = x.agent
    ON CONFLICT (proc_inst_id, activity_id, activation) WHERE proc_inst_id IS NOT NULL DO NOTHING
    RETURNING id
), cancelled AS (
    UPDATE todolist t
    SET status = 'CANCELLED', consumer = NULL, lease_until = NULL, fence = t.fence + 1,
        last_seq = t.last_seq + 1, finished_at = now(), updated_at = now()
    WHERE t.proc_inst_id = $1
      AND t.status IN ('PENDING', 'IN_PROGRESS', 'INPUT_REQUIRED', 'TODO')
      AND ($9 OR EXISTS (SELECT 1 FROM jsonb_to_recordset($8) AS c(activity_id text, activation int)
                         WHERE c.activity_id = t.activity_id AND c.activation = t.activation))
    RETURNING t.id, t.tenant_id, t.fence, t.last_seq
), cancel_events AS (
    INSERT INTO events (tenant_id, todo_id, seq, proc_inst_id, job_id, event_type, crew_type, data)
    SELECT c.tenant_id, c.id, c.last_seq, $1, 'TASK_CANCELLED', 'task_cancelled', 'agent',
           jsonb_build_object('reason', $13::text)
    FROM cancelled c
), armed AS (
    INSERT INTO process_timers (proc_inst_id, key, tenant_id, due_at)
    SELECT inst.proc_inst_id, x.key, inst.tenant_id, x.due_at
    FROM inst CROSS JOIN jsonb_to_recordset($10) AS x(key text, due_at timestamptz)
    ON CONFLICT (proc_inst_id, key) DO NOTHING
), dropped AS (
    DELETE FROM process_timers WHERE proc_inst_id = $1 AND key = ANY ($11::text[])
), told AS (
    SELECT pg_notify('processgpt_control', 'cancel:' || c.id::text || ':' || c.fence),
           pg_notify('processgpt_events', c.id::text || ':' || c.last_seq || ':CANCELLED')
    FROM cancelled c
)
SELECT inst.history_seq,
       (SELECT count(*) FROM new_tasks) AS created,
       (SELECT count(*) FROM told) AS cancelled,
       pg_notify('processgpt_process',
                 inst.proc_inst_id::text || ':' || inst.history_seq || ':' || inst.status) AS notified
FROM inst;

-- name: insert_judge_task
-- A judge task for instance $1 (text conditions): PENDING for agent $3 (an agent profile of
-- the tenant runs its orchestrator), step_event $7 the event waiting for its verdicts.
INSERT INTO todolist (tenant_id, proc_inst_id, proc_def_id, activity_id, activity_name,
                      agent_orch, agent_profile, status, query, input, step_event)
SELECT i.tenant_id, i.proc_inst_id, i.proc_def_id, $2, $4,
       COALESCE(p.agent_orch, $3), CASE WHEN p.agent_orch IS NOT NULL THEN $3 END, 'PENDING',
       $5, $6, $7
FROM bpm_proc_inst i LEFT JOIN agents p ON p.tenant_id = i.tenant_id AND p.name = $3
WHERE i.proc_inst_id = $1
RETURNING id;

-- name: task_to_draft
-- An agent's draft step ended: its work item goes to the person (TODO) with the agent's
-- output as the draft.
UPDATE todolist
SET status = 'TODO', draft = output, output = NULL, finished_at = NULL, updated_at = now()
WHERE id = $1 AND status = 'DONE';

-- name: mark_step_failed
-- A process task whose step could not be applied (see WorkerQueries.apply_batch): it stays
-- DONE or FAILED as its worker wrote it; its error says why its process did not move on.
UPDATE todolist SET error = $2::jsonb, updated_at = now() WHERE id = $1;

-- name: fail_judge_task
-- A judge task whose output held no usable verdicts: FAILED with error $2 (re-queue it to
-- ask again).
UPDATE todolist
SET status = 'FAILED', error = $2::jsonb, updated_at = now()
WHERE id = $1 AND status = 'DONE';

-- name: get_task_plain
-- Which instance a task of the tenant belongs to (read before locking that instance), and
-- the transaction's now().
SELECT proc_inst_id, now() AS now FROM todolist WHERE id = $1 AND tenant_id = $2;

-- name: complete_human_task
-- A person completes a TODO work item of tenant $2 with output $3 ($4 kept as its
-- human_response): DONE, its event logged (job TASK_COMPLETED) and announced. Returns the
-- task and its form's fields (the caller checks the output against them and rolls back on a
-- mismatch). No row: the task is not TODO (or not the tenant's).
WITH upd AS (
    UPDATE todolist t
    SET status = 'DONE', output = $3, finished_at = now(), updated_at = now(),
        last_seq = t.last_seq + 1, human_response = $4
    WHERE t.id = $1 AND t.tenant_id = $2 AND t.status = 'TODO'
    RETURNING t.*
), ins AS (
    INSERT INTO events (tenant_id, todo_id, seq, proc_inst_id, job_id, event_type, crew_type,
                        data)
    SELECT upd.tenant_id, upd.id, upd.last_seq, upd.proc_inst_id, 'TASK_COMPLETED',
           'task_completed', 'human', jsonb_build_object('output', $3::jsonb)
    FROM upd
)
SELECT upd.*, f.fields_json AS form_fields, f.id AS form_id,
       pg_notify('processgpt_events', upd.id::text || ':' || upd.last_seq || ':DONE')
FROM upd
LEFT JOIN form_def f ON f.tenant_id = upd.tenant_id
     AND upd.tool IS NOT NULL
     AND f.id = CASE WHEN position(':' IN upd.tool) > 0
                     THEN split_part(upd.tool, ':', 2) ELSE upd.tool END;

-- name: get_instance
SELECT * FROM bpm_proc_inst WHERE proc_inst_id = $1 AND tenant_id = $2;

-- name: child_incidents
-- The descendants of instance $1 that have open incidents, with their state.
WITH RECURSIVE tree AS (
    SELECT proc_inst_id, status, state, 1 AS depth FROM bpm_proc_inst
    WHERE parent_proc_inst_id = $1
    UNION ALL
    SELECT c.proc_inst_id, c.status, c.state, t.depth + 1
    FROM tree t JOIN bpm_proc_inst c ON c.parent_proc_inst_id = t.proc_inst_id
    WHERE t.depth < 64
)
SELECT proc_inst_id, state FROM tree WHERE status = 'INCIDENT' ORDER BY depth, proc_inst_id;

-- name: list_instances
SELECT * FROM bpm_proc_inst
WHERE tenant_id = $1
  AND ($2::text IS NULL OR proc_def_id = $2)
  AND ($3::text IS NULL OR status = $3::proc_inst_status)
  AND ($4::timestamptz IS NULL OR (start_date, proc_inst_id) < ($4, $5::uuid))
ORDER BY start_date DESC, proc_inst_id DESC
LIMIT $6;

-- name: list_history
SELECT seq, kind, node_id, activation, data, at FROM process_history
WHERE proc_inst_id = $1 AND tenant_id = $2 AND seq > $3
ORDER BY seq
LIMIT $4;

-- name: worklist
SELECT * FROM todolist
WHERE tenant_id = $1 AND status = 'TODO'
  AND ($2::text IS NULL OR $2 = ANY (string_to_array(replace(user_id, ' ', ''), ',')))
  AND ($3::text IS NULL OR role = $3)
  AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $6;

-- name: due_timers
-- Timers due now, oldest first (not locked: the firing step locks the instance first, then
-- deletes the row; the one that deletes it fires it).
SELECT proc_inst_id, key FROM process_timers WHERE due_at <= now() ORDER BY due_at LIMIT $1;

-- name: take_timer
DELETE FROM process_timers WHERE proc_inst_id = $1 AND key = $2 AND due_at <= now()
RETURNING key;

-- name: next_timer
-- Seconds until the next timer is due (NULL: none armed).
SELECT EXTRACT(EPOCH FROM min(due_at) - now())::float8 FROM process_timers;

-- name: latest_version
SELECT max(version) FROM proc_def WHERE tenant_id = $1 AND id = $2;

-- name: get_graph
SELECT definition FROM proc_def WHERE tenant_id = $1 AND id = $2 AND version = $3;

-- name: failed_steps
-- Process work items that ended FAILED outside a worker's batch (lease recovery), whose
-- step may not have run yet.
SELECT id, proc_inst_id, activity_id, activation, error FROM todolist
WHERE id = ANY ($1::uuid[]) AND status = 'FAILED' AND activation IS NOT NULL;

-- name: apply_steps
-- The plain steps of many instances in one statement (db/step_batch.py): $1 a JSON array of
-- {id, state, status, current, history, tasks, timers, drops}, at most one per instance,
-- each as apply_step takes them (no cancellations: those go through apply_step); the
-- variables are the state's. One processgpt_process notification per instance. Returns each
-- instance's history_seq and the writing transaction's id (the rows' xmin from now on).
WITH s AS (
    SELECT * FROM jsonb_to_recordset($1::text::jsonb) AS s(id uuid, state jsonb, status text, current jsonb,
        history jsonb, tasks jsonb, timers jsonb, drops jsonb)
), inst AS (
    UPDATE bpm_proc_inst i
    SET state = s.state, status = s.status::proc_inst_status,
        current_activity_ids = ARRAY(SELECT jsonb_array_elements_text(s.current)),
        variables_data = s.state -> 'variables',
        end_date = CASE WHEN s.status IN ('COMPLETED', 'CANCELLED')
                        THEN COALESCE(i.end_date, now()) END,
        history_seq = i.history_seq + jsonb_array_length(s.history), updated_at = now()
    FROM s
    WHERE i.proc_inst_id = s.id
    RETURNING i.proc_inst_id, i.tenant_id, i.proc_def_id, i.history_seq, i.status,
              jsonb_array_length(s.history) AS lines
), hist AS (
    INSERT INTO process_history (proc_inst_id, seq, tenant_id, kind, node_id, activation, data, at)
    SELECT inst.proc_inst_id, inst.history_seq - inst.lines + h.n, inst.tenant_id,
           h.e ->> 'kind', h.e ->> 'node_id', (h.e ->> 'activation')::int,
           COALESCE(h.e -> 'data', '{}'::jsonb), (h.e ->> 'at')::timestamptz
    FROM inst JOIN s ON s.id = inst.proc_inst_id
    CROSS JOIN jsonb_array_elements(s.history) WITH ORDINALITY AS h(e, n)
), new_tasks AS (
    INSERT INTO todolist (tenant_id, proc_inst_id, proc_def_id, activity_id, activation,
                          activity_name, agent_orch, agent_profile, status, user_id, role, tool,
                          description, query, input, due_at, step_event)
    SELECT inst.tenant_id, inst.proc_inst_id, inst.proc_def_id, x.activity_id, x.activation,
           x.activity_name, COALESCE(p.agent_orch, x.agent),
           CASE WHEN p.agent_orch IS NOT NULL THEN x.agent END, x.status::todo_status,
           x.user_id, x.role, x.tool, x.description, x.query, x.input, x.due_at, x.step_event
    FROM inst JOIN s ON s.id = inst.proc_inst_id
    CROSS JOIN jsonb_to_recordset(s.tasks) AS x(activity_id text, activation int,
        activity_name text, agent text, status text, user_id text, role text, tool text,
        description text, query text, input jsonb, due_at timestamptz, step_event jsonb)
    LEFT JOIN agents p ON p.tenant_id = inst.tenant_id AND p.name = x.agent
    ON CONFLICT (proc_inst_id, activity_id, activation) WHERE proc_inst_id IS NOT NULL DO NOTHING
), armed AS (
    INSERT INTO process_timers (proc_inst_id, key, tenant_id, due_at)
    SELECT inst.proc_inst_id, x.key, inst.tenant_id, x.due_at
    FROM inst JOIN s ON s.id = inst.proc_inst_id
    CROSS JOIN jsonb_to_recordset(s.timers) AS x(key text, due_at timestamptz)
    ON CONFLICT (proc_inst_id, key) DO NOTHING
), dropped AS (
    DELETE FROM process_timers t
    USING s CROSS JOIN jsonb_array_elements_text(s.drops) AS k(key)
    WHERE t.proc_inst_id = s.id AND t.key = k.key
)
, told AS (
    SELECT inst.proc_inst_id, inst.history_seq,
           pg_notify('processgpt_process',
                     inst.proc_inst_id::text || ':' || inst.history_seq || ':' || inst.status)
    FROM inst
)
SELECT proc_inst_id, history_seq, pg_current_xact_id()::xid::text::bigint AS xmin FROM told;

-- name: instance_trace_context
-- The trace context a task of instance $1 links to: the instance's, else its nearest
-- ancestor's (a sub-process instance stores none of its own). (NULL, NULL) when none.
WITH RECURSIVE up AS (
    SELECT proc_inst_id, parent_proc_inst_id, traceparent, tracestate, 0 AS depth
    FROM bpm_proc_inst WHERE proc_inst_id = $1
    UNION ALL
    SELECT p.proc_inst_id, p.parent_proc_inst_id, p.traceparent, p.tracestate, up.depth + 1
    FROM up JOIN bpm_proc_inst p ON p.proc_inst_id = up.parent_proc_inst_id
    WHERE up.traceparent IS NULL AND up.depth < 64
)
SELECT traceparent, tracestate FROM up WHERE traceparent IS NOT NULL ORDER BY depth LIMIT 1;
