-- name: schedule_now
SELECT now();

-- name: insert_schedule
-- $15: next_run_at (NULL when not enabled or never due); $16: last_run_at (a definition's
-- one-shot start carried over from the version before, else NULL).
INSERT INTO schedules (tenant_id, name, source, cron, timezone, cycle, target, proc_def_id,
                       proc_def_version, start_node, task, variables, roles, enabled, next_run_at,
                       last_run_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
RETURNING *;

-- name: notify_schedules
-- Wakes every worker's schedule loop (delivered when the transaction commits).
SELECT pg_notify('processgpt_schedules', '');

-- name: get_schedule
SELECT * FROM schedules WHERE tenant_id = $1 AND id = $2;

-- name: lock_schedule
SELECT * FROM schedules WHERE tenant_id = $1 AND id = $2 FOR UPDATE;

-- name: list_schedules
-- The tenant's schedules by name, after $2, a page of $3.
SELECT * FROM schedules WHERE tenant_id = $1 AND name > $2 ORDER BY name LIMIT $3;

-- name: update_schedule
UPDATE schedules
SET enabled = $3, cron = $4, timezone = $5, variables = $6, next_run_at = $7,
    updated_at = now()
WHERE tenant_id = $1 AND id = $2
RETURNING *;

-- name: delete_schedule
DELETE FROM schedules WHERE tenant_id = $1 AND id = $2 RETURNING id;

-- name: delete_definition_schedules
-- The schedules made from an earlier version's timer start events (a publish replaces them);
-- returns when each one-shot schedule last fired.
DELETE FROM schedules WHERE tenant_id = $1 AND proc_def_id = $2 AND source = 'definition'
RETURNING name, last_run_at, (cron IS NULL AND cycle IS NULL) AS once;

-- name: claim_due_schedules
-- Due ticks of any tenant, earliest first; rows another worker is firing are skipped, and
-- stay locked by this transaction until their next tick is written.
SELECT * FROM schedules
WHERE enabled AND next_run_at <= now()
ORDER BY next_run_at
LIMIT $1
FOR UPDATE SKIP LOCKED;

-- name: advance_schedule
-- After a tick: $2 the next tick (NULL: none, the schedule is done and disabled), $3 ticks
-- missed, $4 whether the work started, $5 why not.
UPDATE schedules
SET next_run_at = $2, enabled = enabled AND $2::timestamptz IS NOT NULL, last_run_at = now(),
    skipped = skipped + $3, runs = runs + $4::boolean::int, last_error = $5
WHERE id = $1;

-- name: seconds_until_next_schedule
-- Seconds until the earliest enabled tick (0 or less: due now); NULL when none is.
SELECT EXTRACT(EPOCH FROM min(next_run_at) - now())::float8 FROM schedules WHERE enabled;

-- name: proc_def_exists
-- Whether the tenant has the definition (at version $3, or any when $3 is NULL).
SELECT EXISTS (SELECT 1 FROM proc_def
               WHERE tenant_id = $1 AND id = $2 AND ($3::int IS NULL OR version = $3));
