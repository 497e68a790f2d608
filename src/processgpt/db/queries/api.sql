-- name: ensure_tenant
INSERT INTO tenants (id, name) VALUES ($1, $1) ON CONFLICT (id) DO NOTHING;

-- name: insert_api_key
INSERT INTO api_keys (tenant_id, name, prefix, key_hash, role) VALUES ($1, $2, $3, $4, $5)
RETURNING id, tenant_id, name, prefix, role, created_at;

-- name: find_api_key
SELECT id, tenant_id, role FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL;

-- name: list_api_keys
SELECT prefix, name, role, created_at, revoked_at FROM api_keys
WHERE tenant_id = $1 ORDER BY created_at, prefix;

-- name: revoke_api_key
-- Revoke a tenant's key by its prefix. API processes forget the keys they cached as soon as
-- the revocation commits (the notification).
WITH revoked AS (
    UPDATE api_keys SET revoked_at = now()
    WHERE tenant_id = $1 AND prefix = $2 AND revoked_at IS NULL
    RETURNING prefix
)
SELECT prefix, pg_notify('processgpt_keys', prefix) FROM revoked;

-- name: tenant_exists
SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1);

-- name: list_tenants
SELECT id, name, max_pending_tasks, retention_days, weight, max_tasks_per_second, created_at
FROM tenants ORDER BY id;

-- name: get_tenant
SELECT id, name, max_pending_tasks, retention_days, weight, max_tasks_per_second, created_at
FROM tenants WHERE id = $1;

-- name: upsert_tenant
-- Create the tenant or change its settings. $3: whether $2 (the pending-task limit, NULL for
-- the server default) was given at all; an absent limit keeps the current one. $4 and $5: the
-- same for the retention in days. $6: the tenant's weight in claims (NULL keeps it). $8:
-- whether $7 (task starts per second, NULL for no limit) was given; a changed rate starts
-- with a full bucket.
INSERT INTO tenants (id, name, max_pending_tasks, retention_days, weight, max_tasks_per_second)
VALUES ($1, $1, $2, $4, COALESCE($6, 1), $7)
ON CONFLICT (id) DO UPDATE
    SET max_pending_tasks = CASE WHEN $3 THEN EXCLUDED.max_pending_tasks
                                 ELSE tenants.max_pending_tasks END,
        retention_days = CASE WHEN $5 THEN EXCLUDED.retention_days
                              ELSE tenants.retention_days END,
        weight = COALESCE($6, tenants.weight),
        max_tasks_per_second = CASE WHEN $8 THEN EXCLUDED.max_tasks_per_second
                                    ELSE tenants.max_tasks_per_second END,
        rate_at = CASE WHEN $8 THEN NULL ELSE tenants.rate_at END
RETURNING id, name, max_pending_tasks, retention_days, weight, max_tasks_per_second, created_at,
          (xmax = 0) AS created;

-- name: pending_count
-- A tenant's pending tasks, counted no further than its limit ($2: the server default), so
-- a create costs at most `limit` index entries however long the backlog is.
WITH lim AS (
    SELECT COALESCE((SELECT max_pending_tasks FROM tenants WHERE id = $1), $2) AS n
)
SELECT (SELECT count(*) FROM (SELECT 1 FROM todolist
                              WHERE tenant_id = $1 AND status = 'PENDING'
                              LIMIT (SELECT n FROM lim)) p) AS pending,
       (SELECT n FROM lim) AS max_pending;

-- name: insert_proc_inst
INSERT INTO bpm_proc_inst (tenant_id, proc_def_id, proc_def_version, proc_inst_name, status,
                           variables_data)
VALUES ($1, $2, $3, $4, 'RUNNING', $5)
RETURNING *;

-- name: get_proc_inst
SELECT * FROM bpm_proc_inst WHERE proc_inst_id = $1 AND tenant_id = $2;

-- name: proc_def_version
SELECT max(version) FROM proc_def WHERE tenant_id = $1 AND id = $2;

-- name: list_proc_inst_tasks
SELECT * FROM todolist WHERE proc_inst_id = $1 AND tenant_id = $2 ORDER BY created_at, id;
