-- Retention (runtime/retention.py): finished work older than its tenant's retention goes, in
-- small batches, each its own short transaction. Rows are taken FOR UPDATE SKIP LOCKED, and
-- only finished rows are ever taken, so a claim (which locks PENDING rows) never waits for a
-- batch, and a batch never waits for a claim. A task's events go with it (the statement
-- trigger of migration 0006); an instance's history, timers, sources, child instances and
-- tasks go with it (ON DELETE CASCADE); the files of deleted tasks and instances are deleted
-- in the same statement (their storage keys returned: the bytes go after the commit).

-- name: retention_cutoffs
-- Each tenant whose finished work expires, with the time before which it has expired. $1:
-- the deployment's default days (0: forever); a tenant's own retention_days wins.
SELECT id AS tenant_id,
       now() - make_interval(days => COALESCE(retention_days, $1::int)) AS cutoff
FROM tenants
WHERE COALESCE(retention_days, $1::int) > 0
ORDER BY id;

-- name: retention_delete_tasks
-- Up to $3 tasks of tenant $1 that finished before $2 and belong to no process instance
-- (those go with their instance), after the key ($4 created_at, $5 id) of the previous batch.
-- Nothing finishes before it was created, so the walk is a range of todolist_tenant_created.
WITH doomed AS (
    SELECT id FROM todolist
    WHERE tenant_id = $1 AND created_at < $2 AND (created_at, id) > ($4, $5)
      AND finished_at < $2 AND proc_inst_id IS NULL
    ORDER BY created_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), gone_files AS (
    -- The tasks' files go with them (a file a document was made from or into stays: it is
    -- the document's); their bytes are the caller's to delete once this commits.
    DELETE FROM files f USING doomed
    WHERE f.task_id = doomed.id
      AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.file_id = f.id)
    RETURNING f.task_id, f.storage || ':' || f.storage_key AS file
)
DELETE FROM todolist t USING doomed WHERE t.id = doomed.id
RETURNING t.created_at, t.id, t.last_seq,
          ARRAY(SELECT g.file FROM gone_files g WHERE g.task_id = t.id) AS files;

-- name: retention_delete_instances
-- Up to $3 top-level process instances of tenant $1 that ended before $2, with nothing in
-- their tree (child instances, tasks of any of them) unfinished or finished since $2. An
-- instance of the one-task form (no engine state: it stays RUNNING, see domain/process/
-- instance.py) has ended when it has tasks and every one of them ended before $2.
WITH doomed AS (
    SELECT p.proc_inst_id FROM bpm_proc_inst p
    WHERE p.tenant_id = $1 AND p.start_date < $2 AND p.parent_proc_inst_id IS NULL
      AND (p.end_date < $2
           OR (p.state IS NULL AND p.status IN ('NEW', 'RUNNING')
               AND EXISTS (SELECT 1 FROM todolist t WHERE t.proc_inst_id = p.proc_inst_id)))
      AND NOT EXISTS (
          SELECT 1 FROM bpm_proc_inst c
          WHERE c.proc_inst_id IN (SELECT processgpt_instance_tree(p.proc_inst_id))
            AND c.proc_inst_id <> p.proc_inst_id
            AND (c.end_date IS NULL OR c.end_date >= $2))
      AND NOT EXISTS (
          SELECT 1 FROM todolist t
          WHERE t.proc_inst_id IN (SELECT processgpt_instance_tree(p.proc_inst_id))
            AND (t.finished_at IS NULL OR t.finished_at >= $2))
    ORDER BY p.start_date
    LIMIT $3
    FOR UPDATE OF p SKIP LOCKED
), tree AS (
    SELECT processgpt_instance_tree(d.proc_inst_id) AS id FROM doomed d
), counted AS (
    SELECT count(*) AS tasks, COALESCE(sum(t.last_seq), 0)::bigint AS events
    FROM todolist t WHERE t.proc_inst_id IN (SELECT id FROM tree)
), gone_files AS (
    -- The files of the instances and of their tasks (not those documents were made from or
    -- into), through files_proc_inst and files_task.
    DELETE FROM files f
    WHERE (f.proc_inst_id IN (SELECT id FROM tree)
           OR f.task_id IN (SELECT t.id FROM todolist t
                            WHERE t.proc_inst_id IN (SELECT id FROM tree)))
      AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.file_id = f.id)
    RETURNING f.storage || ':' || f.storage_key AS file
), gone AS (
    DELETE FROM bpm_proc_inst p USING doomed WHERE p.proc_inst_id = doomed.proc_inst_id
    RETURNING p.proc_inst_id
)
SELECT (SELECT count(*) FROM gone) AS roots,
       (SELECT count(*) FROM tree) AS instances,
       counted.tasks, counted.events,
       ARRAY(SELECT g.file FROM gone_files g) AS files
FROM counted;

-- name: retention_preview
-- What a run would delete now for tenant $1 and cutoff $2, without deleting: standalone
-- tasks, top-level instances (and every instance and task of their trees), events (a task's
-- events are numbered 1..last_seq), and the files of those tasks and instances.
WITH tasks AS (
    SELECT count(*) AS n, COALESCE(sum(last_seq), 0)::bigint AS events FROM todolist
    WHERE tenant_id = $1 AND created_at < $2 AND finished_at < $2 AND proc_inst_id IS NULL
), roots AS (
    SELECT p.proc_inst_id FROM bpm_proc_inst p
    WHERE p.tenant_id = $1 AND p.start_date < $2 AND p.parent_proc_inst_id IS NULL
      AND (p.end_date < $2
           OR (p.state IS NULL AND p.status IN ('NEW', 'RUNNING')
               AND EXISTS (SELECT 1 FROM todolist t WHERE t.proc_inst_id = p.proc_inst_id)))
      AND NOT EXISTS (
          SELECT 1 FROM bpm_proc_inst c
          WHERE c.proc_inst_id IN (SELECT processgpt_instance_tree(p.proc_inst_id))
            AND c.proc_inst_id <> p.proc_inst_id
            AND (c.end_date IS NULL OR c.end_date >= $2))
      AND NOT EXISTS (
          SELECT 1 FROM todolist t
          WHERE t.proc_inst_id IN (SELECT processgpt_instance_tree(p.proc_inst_id))
            AND (t.finished_at IS NULL OR t.finished_at >= $2))
), tree AS (
    SELECT processgpt_instance_tree(r.proc_inst_id) AS id FROM roots r
), tree_tasks AS (
    SELECT count(*) AS n, COALESCE(sum(t.last_seq), 0)::bigint AS events
    FROM todolist t WHERE t.proc_inst_id IN (SELECT id FROM tree)
), doomed_files AS (
    SELECT count(*) AS n FROM files f
    WHERE f.tenant_id = $1
      AND (f.task_id IN (SELECT t.id FROM todolist t
                         WHERE t.tenant_id = $1 AND t.created_at < $2 AND t.finished_at < $2
                           AND t.proc_inst_id IS NULL)
           OR f.proc_inst_id IN (SELECT id FROM tree)
           OR f.task_id IN (SELECT t.id FROM todolist t
                            WHERE t.proc_inst_id IN (SELECT id FROM tree)))
      AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.file_id = f.id)
)
SELECT (SELECT count(*) FROM roots) AS roots,
       (SELECT count(*) FROM tree) AS instances,
       tasks.n + tree_tasks.n AS tasks,
       tasks.events + tree_tasks.events AS events,
       doomed_files.n AS files
FROM tasks, tree_tasks, doomed_files;

-- name: retention_delete_notices
-- Up to $3 notifications of tenant $1 written before $2, and up to $3 of its webhook
-- deliveries that ended (DELIVERED, DEAD) before $2 (pending ones are never deleted here;
-- an endpoint's deletion takes its deliveries with it). Oldest first, through
-- notifications_list and webhook_deliveries_endpoint.
WITH notes AS (
    SELECT id FROM notifications
    WHERE tenant_id = $1 AND created_at < $2
    ORDER BY id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), gone_notes AS (
    DELETE FROM notifications n USING notes WHERE n.id = notes.id RETURNING 1
), sent AS (
    SELECT d.id FROM webhook_deliveries d
    WHERE d.endpoint_id IN (SELECT e.id FROM webhook_endpoints e WHERE e.tenant_id = $1)
      AND d.status <> 'PENDING' AND d.finished_at < $2
    ORDER BY d.id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
), gone_sent AS (
    DELETE FROM webhook_deliveries d USING sent WHERE d.id = sent.id RETURNING 1
)
SELECT (SELECT count(*) FROM gone_notes) AS notifications,
       (SELECT count(*) FROM gone_sent) AS deliveries;
