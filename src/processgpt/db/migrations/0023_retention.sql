-- Retention: finished tasks, their events and finished process instances are deleted once
-- they are older than the tenant's retention (db/queries/retention.sql, runtime/retention.py).
--
-- retention_days: NULL follows the deployment's default (PROCESSGPT_RETENTION_DAYS); 0 keeps
-- the tenant's finished work forever whatever the default says.
ALTER TABLE tenants ADD COLUMN retention_days integer
    CHECK (retention_days BETWEEN 0 AND 36500);

-- No index is added: the retention job walks a tenant's old tasks through
-- todolist_tenant_created (tenant_id, created_at DESC, id DESC) and its old instances through
-- bpm_proc_inst_tenant (tenant_id, start_date DESC), since nothing finishes before it was
-- created. An index on finished_at would cost every task's finishing write an index entry.

-- The instance and every instance under it (call activities, embedded sub-processes), at any
-- depth: deleting an instance deletes them all (ON DELETE CASCADE of parent_proc_inst_id), so
-- retention looks at the whole tree before it deletes a root.
CREATE FUNCTION processgpt_instance_tree(root uuid) RETURNS SETOF uuid
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path FROM CURRENT AS $$
    WITH RECURSIVE tree (id) AS (
        SELECT root
        UNION ALL
        SELECT c.proc_inst_id FROM bpm_proc_inst c JOIN tree ON c.parent_proc_inst_id = tree.id
    )
    SELECT id FROM tree
$$;
